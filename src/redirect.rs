//! Redirect URIs: what may be registered, how a requested URI is matched, and how response
//! parameters are added.
//!
//! Matching is a byte-for-byte comparison with no normalisation (RFC 9700 §4.1.3), except
//! that a loopback IP literal with the `http` scheme may use any port (RFC 8252 §7.3).

/// Checks a redirect URI for registration: one rule set for the CLI and the clients API,
/// [`crate::clients::validate_redirect_uri`]. Returns the reason on rejection.
pub fn validate_registration(uri: &str) -> Result<(), String> {
    crate::clients::validate_redirect_uri(uri).map_err(|error| error.to_string())
}

/// Returns the registered URI that `requested` matches, if any. A requested URI longer than
/// any registered URI may be matches none, even with a loopback port, so that every stored
/// copy of it fits its column.
pub fn find_match<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    if requested.len() > crate::clients::MAX_REDIRECT_URI_BYTES {
        return None;
    }
    registered
        .iter()
        .map(String::as_str)
        .find(|candidate| matches(candidate, requested))
}

/// Whether `requested` matches `registered`: identical bytes, or identical once the port of an
/// `http` loopback IP literal (`127.0.0.1` or `[::1]`) is removed from both.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        strip_loopback_port(registered),
        strip_loopback_port(requested),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Removes the port from `http://127.0.0.1:PORT...` or `http://[::1]:PORT...` when the port is
/// at most 65535 and followed by the end, `/` or `?`. Returns `None` for any other URI.
fn strip_loopback_port(uri: &str) -> Option<String> {
    let hosts = ["http://127.0.0.1", "http://[::1]"];
    let host = hosts.iter().find(|host| uri.starts_with(**host))?;
    let rest = &uri[host.len()..];
    let after_port = match rest.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            // Port 0 and ports above 65535 cannot be connected to, and a leading zero is a
            // second spelling of another port, so only the canonical form 1 to 65535 varies.
            let port = &port_and_rest[..digits];
            let canonical = !port.starts_with('0');
            if digits == 0 || digits > 5 || !canonical || port.parse::<u16>().is_err() {
                return None;
            }
            &port_and_rest[digits..]
        }
        None => rest,
    };
    if !(after_port.is_empty() || after_port.starts_with('/') || after_port.starts_with('?')) {
        return None;
    }
    Some(format!("{host}{after_port}"))
}

/// Appends form-encoded query parameters to a redirect URI, after any query it has.
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        serializer.append_pair(name, value);
    }
    let encoded = serializer.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn exact_match_only() {
        let list = registered(&["https://client.example/cb"]);
        assert!(find_match(&list, "https://client.example/cb").is_some());
        for bad in [
            "https://client.example/cb/",
            "https://client.example/cb?x=1",
            "https://client.example/cb#a",
            "https://Client.example/cb",
            "https://client.example:443/cb",
            "https://client.example/cb/../../evil",
            "https://client.example/cb%2F..%2Fevil",
            "https://client.example/cb/..;/evil",
            "http://client.example/cb",
            "https://client.example.evil.net/cb",
            "https://a@b@evil.com/cb",
        ] {
            assert!(find_match(&list, bad).is_none(), "{bad} matched");
        }
    }

    #[test]
    fn loopback_port_may_vary() {
        let list = registered(&["http://127.0.0.1/callback", "http://[::1]:8000/cb"]);
        assert!(find_match(&list, "http://127.0.0.1:51234/callback").is_some());
        assert!(find_match(&list, "http://[::1]:9/cb").is_some());
        for bad in [
            "http://127.0.0.1:1234/callback?bar=foo",
            "http://localhost:51234/callback",
            "http://127.0.0.1:80@evil.com/callback",
            "http://127.0.0.1.evil.com/callback",
            "http://127.0.0.1:123456/callback",
            "https://127.0.0.1:1234/callback",
        ] {
            assert!(find_match(&list, bad).is_none(), "{bad} matched");
        }
    }

    #[test]
    fn loopback_port_zero_or_padded_rejected() {
        let registered = "http://127.0.0.1:9000/callback";
        assert!(!matches(registered, "http://127.0.0.1:0/callback"));
        assert!(!matches(registered, "http://127.0.0.1:09000/callback"));
        assert!(!matches(registered, "http://127.0.0.1:00/callback"));
        assert!(matches(registered, "http://127.0.0.1:9001/callback"));
    }

    #[test]
    fn loopback_port_above_65535_rejected() {
        let list = registered(&["http://127.0.0.1/callback", "http://[::1]/cb"]);
        assert!(find_match(&list, "http://127.0.0.1:65535/callback").is_some());
        assert!(find_match(&list, "http://127.0.0.1:65536/callback").is_none());
        assert!(find_match(&list, "http://127.0.0.1:99999/callback").is_none());
        assert!(find_match(&list, "http://[::1]:65536/cb").is_none());
    }

    #[test]
    fn localhost_port_does_not_vary() {
        let list = registered(&["http://localhost/cb"]);
        assert!(find_match(&list, "http://localhost:1234/cb").is_none());
        assert!(find_match(&list, "http://localhost@evil.com/cb").is_none());
    }

    #[test]
    fn registration_rules() {
        for good in [
            "https://client.example/cb",
            "https://client.example/cb?tenant=a",
            "http://127.0.0.1/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth",
        ] {
            assert!(validate_registration(good).is_ok(), "{good} rejected");
        }
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,hi",
            "http://client.example/cb",
            "https://client.example/cb#frag",
            "https://user:pw@client.example/cb",
            "/relative",
            "myapp:/cb",
            "https://client.example/callb\u{e4}ck",
            "https://client.example/cb?code=evil",
            "https://client.example/cb?state=x",
        ] {
            assert!(validate_registration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn params_appended_after_query() {
        assert_eq!(
            with_params(
                "https://c.example/cb?tenant=a",
                &[("code", "x y"), ("state", "&")]
            ),
            "https://c.example/cb?tenant=a&code=x+y&state=%26"
        );
        assert_eq!(
            with_params("https://c.example/cb", &[("code", "1")]),
            "https://c.example/cb?code=1"
        );
    }
}
