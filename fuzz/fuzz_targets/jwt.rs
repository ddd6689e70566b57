//! The access-token verifier, with a real key ring of one RS256, one ES256 and one EdDSA key.
//!
//! The first input byte picks a mode:
//! - arbitrary: the rest is a token, which must never verify because it carries no valid
//!   signature;
//! - mutated: the rest edits a valid token; an edited token may verify only if its signed
//!   header and payload text is unchanged;
//! - signed: the rest is a header and a payload (split at the first 0x00 byte) that a trusted
//!   key or a stranger's key signs. `$kid` and `$alg` in the header become the signing key's
//!   `kid` and algorithm. A token that verifies must come from a trusted key, name that key and
//!   its algorithm, have `typ` `at+jwt`, no `crit`, and claims valid at `NOW`.
//!
//! Verification must never panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sesame::fuzzing::{KeyRing, sign_raw};
use sesame::keys::{KeyAlgorithm, SigningKey};
use sesame::token::jwt::{AccessClaims, LEEWAY_SECONDS, VerifiedClaims};

const ISSUER: &str = "https://sesame.test";
const AUDIENCE: &str = "https://api.sesame.test";
/// The verification time, fixed so seeds can carry matching `iat` and `exp` values.
const NOW: i64 = 1_800_000_000;

struct Setup {
    ring: KeyRing,
    stranger: SigningKey,
    /// One valid token per trusted key.
    tokens: Vec<String>,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let ring = KeyRing::generate().expect("key generation");
    let (stranger, _pem) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key generation");
    let tokens: Vec<String> = (0..ring.keys().len())
        .map(|index| {
            let claims = AccessClaims {
                iss: ISSUER.to_owned(),
                sub: "42".to_owned(),
                aud: AUDIENCE.to_owned(),
                client_id: "fuzz-client".to_owned(),
                jti: format!("token-{index}"),
                iat: NOW - 10,
                exp: NOW + 3600,
                scope: "read write".to_owned(),
                scopes: vec!["read".to_owned(), "write".to_owned()],
            };
            ring.sign(index, &claims).expect("signing")
        })
        .collect();
    for token in &tokens {
        ring.verify(token, ISSUER, Some(AUDIENCE), NOW)
            .expect("a freshly signed token verifies");
    }
    Setup {
        ring,
        stranger,
        tokens,
    }
});

fuzz_target!(|data: &[u8]| {
    let setup = &*SETUP;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_arbitrary(setup, rest),
        1 => check_mutated(setup, rest),
        _ => check_signed(setup, rest),
    }
});

fn verify(setup: &Setup, token: &str) -> Option<VerifiedClaims> {
    // Without an audience any audience passes, as introspection verifies; it must not panic.
    let _ = setup.ring.verify(token, ISSUER, None, NOW);
    setup.ring.verify(token, ISSUER, Some(AUDIENCE), NOW).ok()
}

fn check_arbitrary(setup: &Setup, data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    assert!(
        verify(setup, &token).is_none(),
        "an unsigned input verified"
    );
}

/// Applies edits of three bytes each: an operation, a position and a byte.
fn check_mutated(setup: &Setup, data: &[u8]) {
    let Some((&which, edits)) = data.split_first() else {
        return;
    };
    let original = &setup.tokens[usize::from(which) % setup.tokens.len()];
    let mut token = original.as_bytes().to_vec();
    for edit in edits.chunks_exact(3) {
        let position = usize::from(edit[1]) * token.len().max(1) / 256;
        match edit[0] % 3 {
            0 if position < token.len() => token[position] = edit[2],
            1 if position < token.len() => {
                token.remove(position);
            }
            _ => token.insert(position.min(token.len()), edit[2]),
        }
    }
    let token = String::from_utf8_lossy(&token);
    if verify(setup, &token).is_none() {
        return;
    }
    assert_eq!(
        signed_part(&token),
        signed_part(original),
        "an edited header or payload verified"
    );
}

fn signed_part(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(signed, _)| signed)
}

fn check_signed(setup: &Setup, data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let keys = setup.ring.keys();
    let index = usize::from(which) % (keys.len() + 1);
    let key = keys.get(index).unwrap_or(&setup.stranger);
    let trusted = index < keys.len();

    let split = rest
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(rest.len());
    let header = String::from_utf8_lossy(&rest[..split])
        .replace("$kid", key.kid())
        .replace("$alg", key.alg().name());
    let payload = rest.get(split + 1..).unwrap_or_default();
    let token = sign_raw(key, header.as_bytes(), payload).expect("signing");

    let Some(claims) = verify(setup, &token) else {
        return;
    };
    assert!(trusted, "a token signed by an untrusted key verified");
    let header: serde_json::Value =
        serde_json::from_str(&header).expect("a verified header is JSON");
    let typ = header["typ"].as_str().map(str::to_ascii_lowercase);
    assert!(
        matches!(typ.as_deref(), Some("at+jwt" | "application/at+jwt")),
        "a token with typ {typ:?} verified"
    );
    assert_eq!(
        header["alg"].as_str(),
        Some(key.alg().name()),
        "alg differs"
    );
    assert_eq!(header["kid"].as_str(), Some(key.kid()), "kid differs");
    assert!(header.get("crit").is_none(), "a token with crit verified");
    assert_eq!(claims.iss, ISSUER);
    assert!(
        claims.aud.contains(AUDIENCE),
        "a token for another audience verified"
    );
    assert!(
        claims.exp.saturating_add(LEEWAY_SECONDS) >= NOW,
        "an expired token verified"
    );
    assert!(
        claims.iat <= NOW + LEEWAY_SECONDS,
        "a token issued in the future verified"
    );
    if let Some(nbf) = claims.nbf {
        assert!(
            nbf <= NOW + LEEWAY_SECONDS,
            "a token not yet valid verified"
        );
    }
}
