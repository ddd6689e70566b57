//! JWT access tokens (RFC 9068): signing with the parsed key, and verification against every
//! published key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::{KeyAlgorithm, SigningKey, decoding_key};
use crate::store::Store;
use crate::token::secret::b64;

/// Clock skew tolerated when checking `exp`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;

/// The claims Sesame puts in an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id, or the client id for client credentials; always a string.
    pub sub: String,
    /// The resource server the token is for.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The token's row id.
    pub jti: String,
    /// Issue time.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Granted scopes as an array, as Passport's tokens carry them.
    pub scopes: Vec<String>,
}

/// Serialises and signs access-token claims with `key`.
///
/// # Errors
///
/// [`crate::Error::Crypto`] if signing fails.
pub fn sign(key: &SigningKey, claims: &AccessClaims) -> Result<String> {
    sign_jws(key, "at+jwt", claims)
}

/// Serialises `claims` and signs them as a compact JWS with header `typ`, `alg` and `kid`.
///
/// # Errors
///
/// [`crate::Error::Crypto`] if signing fails.
pub fn sign_jws(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Result<String> {
    let header = serde_json::json!({"alg": key.alg().name(), "typ": typ, "kid": key.kid()});
    let mut token = b64(header.to_string());
    token.push('.');
    token.push_str(&b64(serde_json::to_vec(claims).unwrap_or_default()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64(signature));
    Ok(token)
}

/// Why a token failed verification. Shown to clients only as a short description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url segments with a JSON object header.
    Malformed,
    /// `typ` is not `at+jwt`.
    WrongType,
    /// The header names a critical extension Sesame does not understand.
    UnknownCritical,
    /// No published key has the header's `kid`.
    UnknownKey,
    /// The header's `alg` is not the key's algorithm.
    WrongAlgorithm,
    /// Signature, issuer, audience or a required claim is wrong.
    Invalid,
    /// `exp` has passed (beyond the leeway).
    Expired,
}

impl Rejection {
    /// A short description for `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Rejection::Malformed => "the access token is malformed",
            Rejection::WrongType => "the token is not an access token",
            Rejection::UnknownCritical => "the token uses an unsupported critical header",
            Rejection::UnknownKey => "the token was not signed by a known key",
            Rejection::WrongAlgorithm => "the token's algorithm does not match its key",
            Rejection::Invalid => "the access token is invalid",
            Rejection::Expired => "the access token expired",
        }
    }
}

/// The claims of a token whose signature and standard claims checked out.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifiedClaims {
    /// Subject.
    pub sub: String,
    /// Client id.
    pub client_id: String,
    /// Token id.
    pub jti: String,
    /// Issue time.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    crit: Option<serde_json::Value>,
}

type KeyMap = HashMap<String, (KeyAlgorithm, Arc<jsonwebtoken::DecodingKey>)>;

/// The public keys tokens are verified with: every key recorded as next, current or
/// previous, reloaded from the database when an unknown `kid` appears (at most once per
/// second), plus this node's own signing key.
pub struct Verifier {
    keys: RwLock<Arc<KeyMap>>,
    last_reload: std::sync::Mutex<Option<Instant>>,
    own: (String, KeyAlgorithm, Arc<jsonwebtoken::DecodingKey>),
}

impl Verifier {
    pub(crate) fn new(own_key: &SigningKey) -> Verifier {
        let own = decoding_key(own_key.public_jwk())
            .map(|(alg, key)| (own_key.kid().to_owned(), alg, Arc::new(key)))
            .unwrap_or_else(|| {
                // A generated or parsed key always has a valid JWK; this keeps the type total.
                (
                    String::new(),
                    own_key.alg(),
                    Arc::new(jsonwebtoken::DecodingKey::from_secret(&[])),
                )
            });
        Verifier {
            keys: RwLock::new(Arc::new(KeyMap::new())),
            last_reload: std::sync::Mutex::new(None),
            own,
        }
    }

    /// Reloads the published keys from the database.
    pub(crate) async fn reload(&self, store: &Store) -> Result<()> {
        let mut map = KeyMap::new();
        for record in store.published_keys().await? {
            let Ok(jwk) = serde_json::from_str::<serde_json::Value>(&record.jwk) else {
                tracing::warn!(kid = %record.kid, "stored key has a malformed JWK; skipped");
                continue;
            };
            if let Some((alg, key)) = decoding_key(&jwk) {
                map.insert(record.kid, (alg, Arc::new(key)));
            }
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(map);
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(Instant::now());
        }
        Ok(())
    }

    fn lookup(&self, kid: &str) -> Option<(KeyAlgorithm, Arc<jsonwebtoken::DecodingKey>)> {
        if kid == self.own.0 {
            return Some((self.own.1, self.own.2.clone()));
        }
        let keys = self.keys.read().ok()?.clone();
        keys.get(kid).cloned()
    }

    fn may_reload(&self) -> bool {
        let Ok(mut last) = self.last_reload.lock() else {
            return false;
        };
        match *last {
            Some(at) if at.elapsed() < Duration::from_secs(1) => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// The published keys as a JWKS document.
    pub(crate) async fn jwks(&self, store: &Store) -> Result<serde_json::Value> {
        let keys: Vec<serde_json::Value> = store
            .published_keys()
            .await?
            .into_iter()
            .filter_map(|record| serde_json::from_str(&record.jwk).ok())
            .collect();
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// Verifies a token's header, signature, issuer, audience and expiry at time `now`.
    ///
    /// The algorithm comes from the key the `kid` names, never from the header alone; `jku`,
    /// `x5u` and `jwk` header members are ignored.
    pub(crate) async fn verify(
        &self,
        token: &str,
        store: &Store,
        issuer: &str,
        audience: &str,
        now: i64,
    ) -> std::result::Result<VerifiedClaims, Rejection> {
        let header = parse_header(token)?;
        match header
            .typ
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("at+jwt" | "application/at+jwt") => {}
            _ => return Err(Rejection::WrongType),
        }
        if header.crit.is_some() {
            return Err(Rejection::UnknownCritical);
        }
        let kid = header.kid.ok_or(Rejection::UnknownKey)?;
        let (alg, key) = match self.lookup(&kid) {
            Some(found) => found,
            None if self.may_reload() => {
                if let Err(error) = self.reload(store).await {
                    tracing::warn!(%error, "reloading verification keys failed");
                }
                self.lookup(&kid).ok_or(Rejection::UnknownKey)?
            }
            None => return Err(Rejection::UnknownKey),
        };
        if header.alg.as_deref() != Some(alg.name()) {
            return Err(Rejection::WrongAlgorithm);
        }
        let mut validation = jsonwebtoken::Validation::new(alg.jsonwebtoken());
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is checked below against Sesame's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<VerifiedClaims>(token, &key, &validation)
            .map_err(|_| Rejection::Invalid)?;
        let claims = data.claims;
        if claims.exp + LEEWAY_SECONDS < now {
            return Err(Rejection::Expired);
        }
        if claims.iat > now + LEEWAY_SECONDS {
            return Err(Rejection::Invalid);
        }
        Ok(claims)
    }
}

fn parse_header(token: &str) -> std::result::Result<Header, Rejection> {
    let mut segments = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Rejection::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice::<Header>(&bytes).map_err(|_| Rejection::Malformed)
}
