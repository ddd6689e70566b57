//! Client credentials from HTTP Basic and the form body.
//!
//! The first input byte picks a mode. Raw mode splits the rest at the first 0x00 byte into one
//! `Authorization` value and a form body: reading them must never panic, and accepted Basic
//! credentials must have a client id and no second secret in the body. Round-trip mode encodes
//! a client id and secret as RFC 6749 §2.3.1 prescribes (form-encoding, then base64): Sesame
//! must read back exactly those two strings, or reject an empty client id.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_raw(rest);
    } else {
        check_round_trip(rest);
    }
});

fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&byte| byte == 0) {
        Some(index) => (&data[..index], &data[index + 1..]),
        None => (data, &[]),
    }
}

fn check_raw(data: &[u8]) {
    let (header, body) = split_at_nul(data);
    let Ok(Some(credentials)) = sesame::fuzzing::client_credentials(&[header], body) else {
        return;
    };
    assert!(
        !credentials.client_id.is_empty(),
        "credentials accepted with an empty client id"
    );
    if credentials.via_basic {
        let params = sesame::fuzzing::parse_form(body).expect("the body parsed once already");
        let body_secret = params
            .get("client_secret")
            .filter(|value| !value.is_empty());
        assert!(
            body_secret.is_none(),
            "Basic credentials accepted beside a body client_secret"
        );
        assert!(
            credentials.secret.is_some(),
            "Basic credentials without a secret"
        );
    }
}

fn check_round_trip(data: &[u8]) {
    let (id, secret) = split_at_nul(data);
    let id = String::from_utf8_lossy(id);
    let secret = String::from_utf8_lossy(secret);
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(&id), encode(&secret));
    let header = format!("Basic {}", STANDARD.encode(pair));
    let result = sesame::fuzzing::client_credentials(&[header.as_bytes()], b"");
    if id.is_empty() {
        assert!(result.is_err(), "an empty client id was accepted");
        return;
    }
    let credentials = result
        .expect("well-formed Basic credentials were rejected")
        .expect("Basic credentials were not found");
    assert_eq!(credentials.client_id, id);
    assert_eq!(credentials.secret.as_deref(), Some(secret.as_ref()));
    assert!(credentials.via_basic);
}
