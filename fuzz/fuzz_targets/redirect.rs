//! Redirect URI registration and matching.
//!
//! The input is read as lines: the last is the requested URI, the others are candidates for
//! registration. When registration accepts a candidate and the requested URI matches it, both
//! must parse as URLs with the same scheme, host, path and query. Their ports may differ only
//! for `http` on the loopback IP literals 127.0.0.1 and [::1] (RFC 8252 §7.3).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame::redirect::{find_match, matches, validate_registration};
use url::{Host, Url};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let Some(requested) = lines.pop() else {
        return;
    };
    let registered: Vec<String> = lines
        .iter()
        .take(8)
        .filter(|uri| validate_registration(uri).is_ok())
        .map(|uri| (*uri).to_owned())
        .collect();
    for uri in &registered {
        if matches(uri, requested) {
            check_same_target(uri, requested);
        }
    }
    let any = registered.iter().any(|uri| matches(uri, requested));
    assert_eq!(find_match(&registered, requested).is_some(), any);
});

fn check_same_target(registered: &str, requested: &str) {
    let expected = Url::parse(registered).expect("a registered URI parses");
    let Ok(actual) = Url::parse(requested) else {
        panic!("{requested:?} matched {registered:?} but is not a valid URL");
    };
    assert_eq!(actual.scheme(), expected.scheme(), "scheme differs");
    assert_eq!(actual.host(), expected.host(), "host differs");
    assert_eq!(actual.path(), expected.path(), "path differs");
    assert_eq!(actual.query(), expected.query(), "query differs");
    assert_eq!(actual.username(), expected.username(), "username differs");
    assert_eq!(actual.password(), expected.password(), "password differs");
    if actual.port() != expected.port() {
        let loopback = match actual.host() {
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            _ => false,
        };
        assert!(
            actual.scheme() == "http" && loopback,
            "the port of {registered:?} varied on a non-loopback URI"
        );
    }
}
