//! The resource owner password credentials grant (RFC 6749 §4.3), kept for Passport's
//! password clients. OAuth 2.1 drops it; `SESAME_PASSWORD_GRANT=false` turns it off.

use crate::app::Sesame;
use crate::grant::{
    GrantError, Issue, OAuthError, Params, TokenResponse, issue_access_token, issue_refresh_token,
    requested_scopes, ttl_seconds,
};
use crate::store::ClientRecord;

/// Failed sign-ins counted per user name (and, on the sign-in page, per address) before
/// sign-in backs off.
pub(crate) const LOGIN_THRESHOLD: i64 = 5;
/// The window failed sign-ins are counted in, in seconds; also the longest back-off.
pub(crate) const LOGIN_WINDOW_SECONDS: i64 = 900;

/// Checks the user's name and password and issues an access and a refresh token.
///
/// Unknown users and wrong passwords get the same answer after the same work (a dummy hash
/// is verified for unknown users), so the response does not reveal whether a user exists.
///
/// # Errors
///
/// `unsupported_grant_type` when the grant is off, `unauthorized_client` for clients without
/// it, `invalid_request` for missing credentials, `invalid_grant` for wrong credentials or a
/// disabled user, `invalid_scope`.
pub async fn grant(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, GrantError> {
    if !sesame.config().password_grant {
        return Err(OAuthError::unsupported_grant_type("the password grant is disabled").into());
    }
    if !client.is_confidential() || !client.allows_grant("password") {
        return Err(
            OAuthError::unauthorized_client("this client may not use the password grant").into(),
        );
    }
    let username = params.require("username")?;
    let password = params.require("password")?;
    let scopes = requested_scopes(sesame, client, params)?;

    // Failed passwords count against the same per-user back-off as the sign-in page, so
    // this grant is no way around it.
    let store = sesame.store();
    let now = sesame.now();
    let user_key = crate::users::sign_in_attempt_key(username);
    let _turn = sesame.sign_in_turns().wait(&user_key).await?;
    if let Some(until) = store.attempt_blocked_until(&user_key, now).await? {
        let mut error = OAuthError::temporarily_unavailable(format!(
            "too many failed sign-ins for this user; retry in {} seconds",
            until - now
        ));
        error.status = 429;
        error.retry_after = Some(until - now);
        return Err(error.into());
    }
    let user = store.user_by_name(username).await?;
    let stored_hash = user.as_ref().and_then(|user| user.password_hash.clone());
    let verified = sesame
        .hasher()
        .verify(stored_hash, password.to_owned())
        .await?;
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        _ => {
            store
                .record_failure(&user_key, now, LOGIN_WINDOW_SECONDS, LOGIN_THRESHOLD)
                .await?;
            return Err(OAuthError::invalid_grant("the user credentials are invalid").into());
        }
    };
    store.clear_failures(&user_key).await?;

    let ttl = ttl_seconds(sesame.config().access_ttl);
    let mut transaction = sesame.store().begin_write().await?;
    let issue = Issue {
        user_id: Some(user.id),
        client_id: &client.id,
        scopes: &scopes,
        ttl_seconds: ttl,
        name: None,
    };
    let (access_token, row) = issue_access_token(sesame, &mut transaction, issue).await?;
    let family_id = uuid::Uuid::now_v7().to_string();
    let refresh_token =
        issue_refresh_token(sesame, &mut transaction, &row, &family_id, &scopes).await?;
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
