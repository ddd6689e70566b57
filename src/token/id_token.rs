//! OpenID Connect ID tokens (OpenID Connect Core 1.0 §2).

use aws_lc_rs::digest;
use serde::Serialize;

use crate::app::Sesame;
use crate::error::Result;
use crate::token::jwt::sign_jws;
use crate::token::secret::b64;

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
}

/// The user, client and sign-in an ID token describes.
pub struct IdTokenFor<'a> {
    /// The signed-in user.
    pub user_id: i64,
    /// The client, which is the token's audience.
    pub client_id: &'a str,
    /// The nonce of the authorization request.
    pub nonce: Option<&'a str>,
    /// When the user signed in.
    pub auth_time: i64,
    /// The access token issued beside it, for `at_hash`.
    pub access_token: &'a str,
    /// Seconds the ID token is valid.
    pub ttl_seconds: i64,
}

/// Signs an ID token with the current signing key. `at_hash` is the base64url left half of
/// the access token's SHA-256 (the hash of the RS256, ES256 and EdDSA families used here).
///
/// # Errors
///
/// [`crate::Error::Crypto`] if signing fails.
pub async fn sign_id_token(sesame: &Sesame, subject: &IdTokenFor<'_>) -> Result<String> {
    let now = sesame.now();
    let hash = digest::digest(&digest::SHA256, subject.access_token.as_bytes());
    let claims = IdClaims {
        iss: &sesame.config().issuer,
        sub: subject.user_id.to_string(),
        aud: subject.client_id,
        exp: now + subject.ttl_seconds,
        iat: now,
        auth_time: subject.auth_time,
        nonce: subject.nonce,
        at_hash: b64(&hash.as_ref()[..16]),
    };
    let key = sesame.issuing_key().await?;
    sign_jws(&key, "JWT", &claims)
}
