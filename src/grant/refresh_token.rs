//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14).

use crate::app::Sesame;
use crate::grant::{
    GrantError, Issue, OAuthError, Params, TokenResponse, issue_access_token, issue_refresh_token,
    ttl_seconds,
};
use crate::store::ClientRecord;
use crate::token::secret::hash_secret;

/// Exchanges a refresh token for a new access token and a new refresh token.
///
/// The presented token is spent by a conditional update, so of concurrent uses only one
/// can succeed. Presenting a token that was already spent revokes every token of its family
/// (the thief's and the owner's alike) and answers `invalid_grant`. The old access token is
/// revoked on rotation, as Passport does. A narrower `scope` narrows the new access token;
/// the new refresh token keeps the original grant.
///
/// # Errors
///
/// `unauthorized_client` for clients without the grant, `invalid_request` without a token,
/// `invalid_grant` for an unknown, expired, revoked, spent or foreign token or a disabled
/// user, `invalid_scope` for a scope beyond the original grant.
pub async fn grant(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, GrantError> {
    if !client.allows_grant("refresh_token") {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the refresh_token grant",
        )
        .into());
    }
    let presented = params.require("refresh_token")?;
    let store = sesame.store();
    let now = sesame.now();
    let invalid = || GrantError::OAuth(OAuthError::invalid_grant("the refresh token is invalid"));

    let mut transaction = store.begin_write().await?;
    let Some(token) = store
        .refresh_token_by_hash(&mut transaction, &hash_secret(presented))
        .await?
    else {
        return Err(invalid());
    };
    if token.client_id != client.id {
        return Err(invalid());
    }
    if token.revoked {
        if token.used_at.is_some() {
            store
                .revoke_refresh_family(&mut transaction, &token.family_id, now)
                .await?;
            transaction.commit().await?;
            tracing::warn!(
                client_id = %client.id,
                family_id = %token.family_id,
                "refresh token reused; revoked its family"
            );
        }
        return Err(invalid());
    }
    if token.expires_at <= now {
        return Err(invalid());
    }
    if let Some(user_id) = token.user_id {
        match store.user_in(&mut transaction, user_id).await? {
            Some(user) if !user.disabled => {}
            _ => return Err(invalid()),
        }
    }
    let scopes = match params.get("scope") {
        None => token.scopes.clone(),
        Some(text) => {
            let requested =
                crate::scopes::parse(text).map_err(|error| OAuthError::invalid_scope(error.0))?;
            if let Some(extra) = requested.iter().find(|s| !token.scopes.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {extra:?} was not part of the original grant"
                ))
                .into());
            }
            requested
        }
    };
    if !store
        .spend_refresh_token(&mut transaction, &token.id, now)
        .await?
    {
        return Err(invalid());
    }
    store
        .revoke_access_token(&mut transaction, &token.access_token_id, now)
        .await?;

    let ttl = ttl_seconds(sesame.config().access_ttl);
    let issue = Issue {
        user_id: token.user_id,
        client_id: &client.id,
        scopes: &scopes,
        ttl_seconds: ttl,
        name: None,
    };
    let (access_token, row) = issue_access_token(sesame, &mut transaction, issue).await?;
    let refresh_token = issue_refresh_token(
        sesame,
        &mut transaction,
        &row,
        &token.family_id,
        &token.scopes,
    )
    .await?;
    transaction.commit().await?;
    Ok(TokenResponse {
        token_type: "Bearer",
        expires_in: ttl,
        access_token,
        refresh_token: Some(refresh_token),
        scope: scopes.join(" "),
        id_token: None,
    })
}
