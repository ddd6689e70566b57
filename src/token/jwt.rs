//! JWT access tokens (RFC 9068): signing with the parsed key, and verification against every
//! published key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::{SigningKey, VerifyingKey};
use crate::store::{KeyRecord, KeyState, Store};
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
    sign_with_header(key, key.access_token_header(), claims)
}

/// Serialises `claims` and signs them as a compact JWS with header `typ`, `alg` and `kid`.
///
/// # Errors
///
/// [`crate::Error::Crypto`] if signing fails.
pub fn sign_jws(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Result<String> {
    sign_with_header(key, &encode_header(key, typ), claims)
}

/// Returns the base64url-encoded JWS header with `key`'s `alg` and `kid` and the given `typ`.
pub(crate) fn encode_header(key: &SigningKey, typ: &str) -> String {
    let header = serde_json::json!({"alg": key.alg().name(), "typ": typ, "kid": key.kid()});
    b64(header.to_string())
}

/// Signs `claims` under an already encoded header. The token is built in one buffer, since
/// every access token request signs one.
fn sign_with_header(key: &SigningKey, header: &str, claims: &impl Serialize) -> Result<String> {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    // Base64url makes 4 characters of every 3 bytes, and an RSA-4096 signature is 512 bytes.
    let mut token = String::with_capacity(header.len() + 2 + (payload.len() + 512) * 4 / 3 + 2);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
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
    /// The signature, a time or a required claim is wrong.
    Invalid,
    /// A correctly signed token names another issuer, such as a CLI run without the server's
    /// `SESAME_BIND` or `SESAME_ISSUER`.
    WrongIssuer,
    /// A correctly signed token is not for the audience the guard accepts.
    WrongAudience,
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
            Rejection::WrongIssuer => "the access token was issued for another issuer",
            Rejection::WrongAudience => "the access token is not for this audience",
            Rejection::Expired => "the access token expired",
        }
    }
}

/// The claims of a token whose signature and standard claims checked out.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifiedClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience: one resource server or several.
    pub aud: Audience,
    /// Client id.
    pub client_id: String,
    /// Token id.
    pub jti: String,
    /// Issue time.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Not-before time, when the token carries one.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
}

/// The `aud` claim, which RFC 7519 allows as one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Checks whether `audience` is one of the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|item| item == audience),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    typ: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    /// Any `crit` member, `null` included, since a header that has one is rejected.
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde_json::Value>,
}

/// Deserialises a member that is present, whatever its value, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

type KeyMap = HashMap<String, Arc<VerifyingKey>>;

/// The public keys tokens are verified with: every key recorded as next, current or
/// previous, plus this node's own keys that are not recorded at all (a read-only database
/// could not record them). A key recorded as retired never verifies, even on a node that
/// has it. The keys are reloaded from the database when an unknown `kid` appears (at most
/// once per second) and whenever the node refreshes its keys.
pub struct Verifier {
    keys: RwLock<Arc<KeyMap>>,
    local: RwLock<Arc<KeyMap>>,
    last_reload: std::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    pub(crate) fn new(own_key: &SigningKey) -> Verifier {
        let verifier = Verifier {
            keys: RwLock::new(Arc::new(KeyMap::new())),
            local: RwLock::new(Arc::new(KeyMap::new())),
            last_reload: std::sync::Mutex::new(None),
        };
        verifier.add_local(own_key);
        if let Ok(mut keys) = verifier.keys.write() {
            *keys = verifier.local_keys();
        }
        verifier
    }

    /// Adds one of this node's keys, trusted until the database records it as retired.
    pub(crate) fn add_local(&self, key: &SigningKey) {
        let Some(verifying) = VerifyingKey::from_jwk(key.public_jwk()) else {
            return;
        };
        if let Ok(mut local) = self.local.write() {
            let mut map = KeyMap::clone(&local);
            map.insert(key.kid().to_owned(), Arc::new(verifying));
            *local = Arc::new(map);
        }
    }

    fn local_keys(&self) -> Arc<KeyMap> {
        self.local
            .read()
            .map(|local| local.clone())
            .unwrap_or_default()
    }

    /// Reloads the keys from the database.
    pub(crate) async fn reload(&self, store: &Store) -> Result<()> {
        let records = store.keys().await?;
        self.reload_from(&records);
        Ok(())
    }

    /// Rebuilds the key map from every recorded key and this node's unrecorded keys.
    pub(crate) fn reload_from(&self, records: &[KeyRecord]) {
        let mut map = KeyMap::new();
        for record in records {
            if !matches!(
                record.key_state(),
                KeyState::Next | KeyState::Current | KeyState::Previous
            ) {
                continue;
            }
            let Ok(jwk) = serde_json::from_str::<serde_json::Value>(&record.jwk) else {
                tracing::warn!(kid = %record.kid, "stored key has a malformed JWK; skipped");
                continue;
            };
            if let Some(key) = VerifyingKey::from_jwk(&jwk) {
                map.insert(record.kid.clone(), Arc::new(key));
            }
        }
        for (kid, key) in self.local_keys().iter() {
            if !records.iter().any(|record| &record.kid == kid) {
                map.insert(kid.clone(), key.clone());
            }
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = Arc::new(map);
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(Instant::now());
        }
    }

    fn lookup(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
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

    /// Verifies a token's header, signature, issuer, audience and expiry at time `now`. With
    /// `audience` of `None` any audience passes, and the caller decides what it may see.
    ///
    /// The algorithm comes from the key the `kid` names, never from the header alone; `jku`,
    /// `x5u` and `jwk` header members are ignored.
    pub(crate) async fn verify(
        &self,
        token: &str,
        store: &Store,
        issuer: &str,
        audience: Option<&str>,
        now: i64,
    ) -> std::result::Result<VerifiedClaims, Rejection> {
        let header = parse_header(token)?;
        let kid = check_header(&header)?;
        let key = match self.lookup(kid) {
            Some(found) => found,
            None if self.may_reload() => {
                if let Err(error) = self.reload(store).await {
                    tracing::warn!(%error, "reloading verification keys failed");
                }
                self.lookup(kid).ok_or(Rejection::UnknownKey)?
            }
            None => return Err(Rejection::UnknownKey),
        };
        verify_signed(token, &header, &key, issuer, audience, now)
    }

    /// Verifies a token as [`Verifier::verify`] does, against the keys already loaded: an
    /// unknown `kid` is rejected without asking the database.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn verify_loaded(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        now: i64,
    ) -> std::result::Result<VerifiedClaims, Rejection> {
        let header = parse_header(token)?;
        let kid = check_header(&header)?;
        let key = self.lookup(kid).ok_or(Rejection::UnknownKey)?;
        verify_signed(token, &header, &key, issuer, audience, now)
    }
}

/// Checks the header's `typ` and `crit` and returns its `kid`.
fn check_header(header: &Header) -> std::result::Result<&str, Rejection> {
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
    header.kid.as_deref().ok_or(Rejection::UnknownKey)
}

/// Checks the header's algorithm and the signature with `key`, then the issuer, audience and
/// times at `now`.
fn verify_signed(
    token: &str,
    header: &Header,
    key: &VerifyingKey,
    issuer: &str,
    audience: Option<&str>,
    now: i64,
) -> std::result::Result<VerifiedClaims, Rejection> {
    if header.alg.as_deref() != Some(key.alg().name()) {
        return Err(Rejection::WrongAlgorithm);
    }
    let claims = verified_claims(token, key)?;
    if claims.iss != issuer {
        return Err(Rejection::WrongIssuer);
    }
    if let Some(audience) = audience
        && !claims.aud.contains(audience)
    {
        return Err(Rejection::WrongAudience);
    }
    // Times are checked against Sesame's clock, which tests can set. A forged or hostile
    // `exp` near i64::MAX must not overflow.
    if claims.exp.saturating_add(LEEWAY_SECONDS) < now {
        return Err(Rejection::Expired);
    }
    let not_yet = claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS));
    if claims.iat > now.saturating_add(LEEWAY_SECONDS) || not_yet {
        return Err(Rejection::Invalid);
    }
    Ok(claims)
}

/// Checks the signature of a compact JWS whose header was already parsed, then decodes its
/// payload. `exp`, `iss`, `aud` and `sub` must be present, because [`VerifiedClaims`] has no
/// default for them.
fn verified_claims(
    token: &str,
    key: &VerifyingKey,
) -> std::result::Result<VerifiedClaims, Rejection> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
    let (_, payload) = signing_input.split_once('.').ok_or(Rejection::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Rejection::Invalid)?;
    if !key.verify(signing_input.as_bytes(), &signature) {
        return Err(Rejection::Invalid);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Rejection::Invalid)?;
    serde_json::from_slice(&payload).map_err(|_| Rejection::Invalid)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    const ISSUER: &str = "https://sesame.test";
    const AUDIENCE: &str = "https://api.sesame.test";
    const NOW: i64 = 1_800_000_000;

    fn claims(iat: i64, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.to_owned(),
            sub: "42".to_owned(),
            aud: AUDIENCE.to_owned(),
            client_id: "client".to_owned(),
            jti: "token".to_owned(),
            iat,
            exp,
            scope: "read".to_owned(),
            scopes: vec!["read".to_owned()],
        }
    }

    fn verify_at_now(iat: i64, exp: i64) -> std::result::Result<VerifiedClaims, Rejection> {
        let (key, _pem) = SigningKey::generate(KeyAlgorithm::EdDsa, 2048).expect("key");
        let verifier = Verifier::new(&key);
        let token = sign(&key, &claims(iat, exp)).expect("signed");
        verifier.verify_loaded(&token, ISSUER, Some(AUDIENCE), NOW)
    }

    #[test]
    fn expiry_at_i64_max_does_not_overflow() {
        let claims = verify_at_now(NOW, i64::MAX).expect("a token expiring at i64::MAX is valid");
        assert_eq!(claims.exp, i64::MAX);
    }

    #[test]
    fn extreme_times_rejected_without_overflow() {
        assert_eq!(
            verify_at_now(NOW - 120, NOW - 61).err(),
            Some(Rejection::Expired)
        );
        // A negative `exp` lies in the past, so the token is expired, not a panic.
        assert_eq!(verify_at_now(NOW, i64::MIN).err(), Some(Rejection::Expired));
        assert_eq!(verify_at_now(i64::MAX, NOW).err(), Some(Rejection::Invalid));
        assert!(verify_at_now(i64::MIN, NOW + 10).is_ok());
    }

    #[test]
    fn issuer_and_audience_rejections_named() {
        let (key, _pem) = SigningKey::generate(KeyAlgorithm::EdDsa, 2048).expect("key");
        let verifier = Verifier::new(&key);
        let token = sign(&key, &claims(NOW, NOW + 60)).expect("signed");
        let other_issuer =
            verifier.verify_loaded(&token, "http://127.0.0.1:1", Some(AUDIENCE), NOW);
        assert_eq!(other_issuer.err(), Some(Rejection::WrongIssuer));
        let other_audience = verifier.verify_loaded(&token, ISSUER, Some("https://other"), NOW);
        assert_eq!(other_audience.err(), Some(Rejection::WrongAudience));
    }
}
