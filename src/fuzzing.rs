//! Entry points for the fuzz targets in `fuzz/`, built only with the `fuzzing` feature.
//!
//! These functions reach parsers and checks that are private to the crate, so the targets
//! exercise the code that serves requests instead of copies of it. They are not a stable API.

use std::collections::HashMap;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};

use crate::error::Result;
use crate::grant::OAuthError;
use crate::grant::client_auth::ClientCredentials;
use crate::keys::{KeyAlgorithm, SigningKey};
use crate::token::jwt::{self, AccessClaims, Rejection, VerifiedClaims, Verifier};
use crate::token::secret::b64;

/// Parses a token request body as the token endpoint does.
///
/// # Errors
///
/// The `invalid_request` error the endpoint would return.
pub fn parse_form(body: &[u8]) -> std::result::Result<HashMap<String, String>, OAuthError> {
    crate::http::form::parse_form(body).map(|params| params.0)
}

/// Reads client credentials from `Authorization` header values and a form body as the token
/// endpoint does. Header values that are not valid header bytes are skipped, because the HTTP
/// layer rejects them before they reach Sesame.
///
/// # Errors
///
/// The `invalid_request` or `invalid_client` error the endpoint would return.
pub fn client_credentials(
    authorization: &[&[u8]],
    body: &[u8],
) -> std::result::Result<Option<ClientCredentials>, OAuthError> {
    let mut headers = HeaderMap::new();
    for value in authorization {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let params = crate::http::form::parse_form(body)?;
    crate::http::form::client_credentials(&headers, &params)
}

/// A key ring of one key per algorithm, and a verifier that trusts exactly those keys.
pub struct KeyRing {
    keys: Vec<SigningKey>,
    verifier: Verifier,
}

impl KeyRing {
    /// Generates one RS256, one ES256 and one EdDSA key and trusts all three.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Crypto`] if key generation fails.
    pub fn generate() -> Result<KeyRing> {
        let mut keys = Vec::new();
        for alg in [
            KeyAlgorithm::Rs256,
            KeyAlgorithm::Es256,
            KeyAlgorithm::EdDsa,
        ] {
            let (key, _pem) = SigningKey::generate(alg, 2048)?;
            keys.push(key);
        }
        let verifier = Verifier::new(&keys[0]);
        for key in &keys[1..] {
            verifier.add_local(key);
        }
        verifier.reload_from(&[]);
        Ok(KeyRing { keys, verifier })
    }

    /// Returns the trusted keys.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Signs access-token claims with the trusted key at `index` (modulo the ring size).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Crypto`] if signing fails.
    pub fn sign(&self, index: usize, claims: &AccessClaims) -> Result<String> {
        jwt::sign(&self.keys[index % self.keys.len()], claims)
    }

    /// Verifies a token as the bearer guard does, without a database: the issuer must be
    /// `issuer`, the audience `audience` (any when `None`), and times are checked at `now`.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] the guard would turn into `invalid_token`.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        now: i64,
    ) -> std::result::Result<VerifiedClaims, Rejection> {
        self.verifier.verify_loaded(token, issuer, audience, now)
    }
}

/// Builds a compact JWS from raw header and payload bytes, signed by `key`. This lets a fuzz
/// target vary the header and claims freely while keeping the signature valid.
///
/// # Errors
///
/// [`crate::Error::Crypto`] if signing fails.
pub fn sign_raw(key: &SigningKey, header: &[u8], payload: &[u8]) -> Result<String> {
    let mut token = b64(header);
    token.push('.');
    token.push_str(&b64(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64(signature));
    Ok(token)
}
