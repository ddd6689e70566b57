//! Token revocation (RFC 7009): a client revokes one of its own access or refresh tokens.

use crate::app::Sesame;
use crate::grant::{GrantError, OAuthError};
use crate::store::{AccessTokenRecord, ClientRecord, RefreshTokenRecord};
use crate::token::secret::hash_secret;

/// The kind of token to look for first. RFC 7009 makes `token_type_hint` only a hint, so
/// both kinds are always searched and an unknown hint changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOrder {
    /// Access tokens first (no hint, an unknown hint, or `access_token`).
    AccessFirst,
    /// Refresh tokens first (`refresh_token`).
    RefreshFirst,
}

impl SearchOrder {
    /// Reads the `token_type_hint` parameter.
    pub fn from_hint(hint: Option<&str>) -> SearchOrder {
        match hint {
            Some("refresh_token") => SearchOrder::RefreshFirst,
            _ => SearchOrder::AccessFirst,
        }
    }
}

/// Revokes `token` for `client`.
///
/// A refresh token revokes its whole family and every access token issued with it; an access
/// token revokes its own row. An unknown, malformed, expired or already revoked token succeeds
/// and changes nothing, as RFC 7009 §2.2 requires. An access token is found only after its
/// signature verifies, so a forged `jti` cannot name a row.
///
/// # Errors
///
/// `unauthorized_client` when the token belongs to another client, which leaves it valid; an
/// internal error when the database fails.
pub async fn revoke(
    sesame: &Sesame,
    client: &ClientRecord,
    token: &str,
    order: SearchOrder,
) -> Result<(), GrantError> {
    let found = match order {
        SearchOrder::AccessFirst => {
            let access = find_access_token(sesame, token).await?;
            match access {
                Some(access) => Some(Found::Access(access)),
                None => find_refresh_token(sesame, token).await?.map(Found::Refresh),
            }
        }
        SearchOrder::RefreshFirst => {
            let refresh = find_refresh_token(sesame, token).await?;
            match refresh {
                Some(refresh) => Some(Found::Refresh(refresh)),
                None => find_access_token(sesame, token).await?.map(Found::Access),
            }
        }
    };
    let Some(found) = found else {
        tracing::debug!(client_id = %client.id, "revocation of an unknown token ignored");
        return Ok(());
    };
    if found.client_id() != client.id {
        tracing::info!(
            client_id = %client.id,
            "revocation refused: the token belongs to another client"
        );
        return Err(
            OAuthError::unauthorized_client("the token was not issued to this client").into(),
        );
    }

    let store = sesame.store();
    let now = sesame.now();
    let mut transaction = store.begin_write().await?;
    match &found {
        Found::Access(access) => {
            store
                .revoke_access_token(&mut transaction, &access.id, now)
                .await?;
        }
        Found::Refresh(refresh) => {
            // Revoking the presented row first takes its lock, so a concurrent refresh of the
            // same token either waits and then fails, or committed its successor before the
            // family statements below run and see it.
            store
                .revoke_refresh_token_row(&mut transaction, &refresh.id, now)
                .await?;
            store
                .revoke_refresh_family(&mut transaction, &refresh.family_id, now)
                .await?;
        }
    }
    transaction.commit().await?;
    tracing::info!(client_id = %client.id, kind = found.kind(), "revoked token");
    Ok(())
}

enum Found {
    Access(AccessTokenRecord),
    Refresh(RefreshTokenRecord),
}

impl Found {
    fn client_id(&self) -> &str {
        match self {
            Found::Access(access) => &access.client_id,
            Found::Refresh(refresh) => &refresh.client_id,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Found::Access(_) => "access_token",
            Found::Refresh(_) => "refresh_token",
        }
    }
}

/// Finds the row of an access token whose signature, type and issuer verify. Expired and
/// forged tokens are not found.
async fn find_access_token(
    sesame: &Sesame,
    token: &str,
) -> Result<Option<AccessTokenRecord>, GrantError> {
    if token.split('.').count() != 3 {
        return Ok(None);
    }
    let verified = sesame
        .verifier()
        .verify(
            token,
            sesame.store(),
            &sesame.config().issuer,
            None,
            sesame.now(),
        )
        .await;
    let Ok(claims) = verified else {
        return Ok(None);
    };
    let row = sesame.store().access_token(&claims.jti).await?;
    Ok(row.filter(|row| row.client_id == claims.client_id))
}

/// Finds a refresh token by the hash of its value.
pub(crate) async fn find_refresh_token(
    sesame: &Sesame,
    token: &str,
) -> Result<Option<RefreshTokenRecord>, GrantError> {
    let store = sesame.store();
    let mut connection = store.pool().acquire().await?;
    Ok(store
        .refresh_token_by_hash(&mut connection, &hash_secret(token))
        .await?)
}
