//! The verify-only guard: [`VerifiedToken`] accepts an access token on its signature and
//! claims, without reading its row.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::{BearerError, bearer_token, require_all_of, require_any_of};
use crate::app::Sesame;
use crate::token::jwt::VerifiedClaims;

/// An access token accepted on its signature and claims alone, without a database read.
///
/// Extracting it applies every check of [`Bearer`](super::Bearer) that needs no row: a
/// signature by a published key with that key's algorithm, `typ: at+jwt`, the issuer byte for
/// byte, the configured audience, and `exp`, `iat` and `nbf` with 60 s of leeway. It never
/// reads the token row, so the following trade-off applies.
///
/// **A revoked token, a revoked client or a disabled user keeps passing this guard until the
/// token expires.** That is up to `SESAME_ACCESS_TTL` (1 hour by default) for an access token
/// and up to `SESAME_PAT_TTL` (1 year by default) for a personal access token. The same holds
/// for a token whose row was purged. A signing key retired on another node or with `sesame keys
/// --retire` stops verifying here only when this node next refreshes its keys, within
/// [`Sesame::key_refresh_interval`] while [`Sesame::spawn_key_maintenance`] runs. Use it only
/// where accepting revocation that late is acceptable, and use [`Bearer`](super::Bearer)
/// everywhere else.
///
/// The guard also cannot tell whether the token speaks for a user or for a client. Sesame
/// decides that from the stored row, and `sub` alone would let a client whose id equals a
/// user id pass as that user. So [`VerifiedToken::subject`] is only the claim, and there is no
/// `Principal` and no `user_id()`. Endpoints about a user need [`Bearer`](super::Bearer).
///
/// A known `kid` is looked up in memory. An unknown `kid` makes the guard reload the keys
/// from the database at most once per second per process, so a flood of tokens with made-up
/// key ids cannot turn into a database read per request.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The `sub` claim: a user id or a client id. Which one is not known without the row.
    pub subject: String,
    /// The `client_id` claim: the client the token was issued to.
    pub client_id: String,
    /// The scopes of the `scope` claim.
    pub scopes: Vec<String>,
    /// The `jti` claim, which is the token's row id.
    pub token_id: String,
    /// Issue time (`iat`), seconds since the epoch.
    pub issued_at: i64,
    /// Expiry (`exp`), seconds since the epoch.
    pub expires_at: i64,
}

impl VerifiedToken {
    fn from_claims(claims: VerifiedClaims) -> VerifiedToken {
        VerifiedToken {
            scopes: claims
                .scope
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            subject: claims.sub,
            client_id: claims.client_id,
            token_id: claims.jti,
            issued_at: claims.iat,
            expires_at: claims.exp,
        }
    }

    /// Checks whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// Requires every scope in `scopes`.
    ///
    /// # Errors
    ///
    /// [`BearerError::InsufficientScope`] naming the scopes when one is missing. An empty
    /// grant never satisfies a non-empty requirement.
    pub fn require_all(&self, scopes: &[&str]) -> Result<(), BearerError> {
        require_all_of(&self.scopes, scopes)
    }

    /// Requires at least one scope in `scopes`.
    ///
    /// # Errors
    ///
    /// [`BearerError::InsufficientScope`] naming the scopes when none is granted.
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), BearerError> {
        require_any_of(&self.scopes, scopes)
    }
}

impl Sesame {
    /// Verifies an access token as the [`VerifiedToken`] extractor does: signature and claims
    /// only, with no read of the token row. See [`VerifiedToken`] for what that trade-off
    /// lets through.
    ///
    /// # Errors
    ///
    /// [`BearerError::InvalidToken`] when the signature, key, type, issuer, audience or
    /// times are wrong.
    pub async fn verify_bearer(&self, token: &str) -> Result<VerifiedToken, BearerError> {
        let config = self.config();
        let claims = self
            .verifier()
            .verify(
                token,
                self.store(),
                &config.issuer,
                Some(config.audience.as_str()),
                self.now(),
            )
            .await
            .map_err(|rejection| BearerError::InvalidToken(rejection.description()))?;
        Ok(VerifiedToken::from_claims(claims))
    }
}

impl<S> FromRequestParts<S> for VerifiedToken
where
    Sesame: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BearerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?.ok_or(BearerError::Missing)?;
        let sesame = Sesame::from_ref(state);
        sesame.verify_bearer(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scope: &str) -> VerifiedToken {
        VerifiedToken {
            subject: "1".into(),
            client_id: "c".into(),
            scopes: scope.split_ascii_whitespace().map(str::to_owned).collect(),
            token_id: "t".into(),
            issued_at: 0,
            expires_at: 0,
        }
    }

    #[test]
    fn scope_checks_name_required_scopes() {
        let read = token("read");
        assert!(read.has_scope("read"));
        assert!(!read.has_scope("write"));
        assert_eq!(read.require_all(&["read"]), Ok(()));
        assert_eq!(
            read.require_all(&["read", "write"]),
            Err(BearerError::InsufficientScope("read write".to_owned()))
        );
        assert_eq!(read.require_any(&["write", "read"]), Ok(()));
        assert_eq!(
            read.require_any(&["write"]),
            Err(BearerError::InsufficientScope("write".to_owned()))
        );
    }

    #[test]
    fn empty_grant_fails_scope_requirement() {
        let none = token("");
        assert!(none.scopes.is_empty());
        assert!(none.require_all(&["read"]).is_err());
        assert!(none.require_any(&["read"]).is_err());
    }
}
