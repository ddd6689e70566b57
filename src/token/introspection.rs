//! Token introspection (RFC 7662): a confidential client learns whether a token is active.

use serde_json::{Value, json};

use crate::app::Sesame;
use crate::grant::{GrantError, OAuthError};
use crate::guard::{BearerError, Principal, ValidatedAccessToken};
use crate::store::{ClientRecord, RefreshTokenRecord};
use crate::token::revocation::{SearchOrder, find_refresh_token};

/// Describes `token` to `client`.
///
/// An access token is active only if it passes every check of the bearer guard, for any
/// audience Sesame issued it for. Its details go only to the client it was issued to, or to a
/// resource server whose audience is in its `aud`. A refresh token is active if it is unspent,
/// unrevoked and unexpired and its client and user are still valid, and its details go only to
/// its own client. Everything else gets exactly `{"active": false}`, so the response never
/// tells why.
///
/// # Errors
///
/// `invalid_client` when `client` is public (it cannot authenticate), `temporarily_unavailable`
/// when the database cannot be asked.
pub async fn introspect(
    sesame: &Sesame,
    client: &ClientRecord,
    token: &str,
    order: SearchOrder,
) -> Result<Value, GrantError> {
    if !client.is_confidential() {
        let mut error = OAuthError::invalid_client("public clients cannot use introspection");
        error.basic_challenge = true;
        return Err(error.into());
    }
    let answer = match order {
        SearchOrder::AccessFirst => match describe_access_token(sesame, client, token).await? {
            Some(answer) => Some(answer),
            None => describe_refresh_token(sesame, client, token).await?,
        },
        SearchOrder::RefreshFirst => match describe_refresh_token(sesame, client, token).await? {
            Some(answer) => Some(answer),
            None => describe_access_token(sesame, client, token).await?,
        },
    };
    Ok(answer.unwrap_or_else(inactive))
}

/// Returns the response for every token that is not active for the caller.
pub fn inactive() -> Value {
    json!({"active": false})
}

async fn describe_access_token(
    sesame: &Sesame,
    client: &ClientRecord,
    token: &str,
) -> Result<Option<Value>, GrantError> {
    if token.split('.').count() != 3 {
        return Ok(None);
    }
    let validated = match sesame.validate_access_token(token, None).await {
        Ok(validated) => validated,
        Err(BearerError::Unavailable) => {
            return Err(
                OAuthError::temporarily_unavailable("the token could not be checked").into(),
            );
        }
        Err(_) => return Ok(None),
    };
    let ValidatedAccessToken {
        bearer,
        claims,
        user,
    } = validated;
    let owner = bearer.client_id == client.id;
    let audience = client
        .audience
        .as_deref()
        .is_some_and(|audience| claims.aud.contains(audience));
    if !owner && !audience {
        return Ok(None);
    }

    let mut answer = json!({
        "active": true,
        "scope": bearer.scopes.join(" "),
        "client_id": bearer.client_id,
        "token_type": "Bearer",
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf.unwrap_or(claims.iat),
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "jti": claims.jti,
    });
    if let Principal::User(_) = bearer.principal
        && let Some((name, _)) = user
    {
        answer["username"] = json!(name);
    }
    Ok(Some(answer))
}

async fn describe_refresh_token(
    sesame: &Sesame,
    client: &ClientRecord,
    token: &str,
) -> Result<Option<Value>, GrantError> {
    let Some(refresh) = find_refresh_token(sesame, token).await? else {
        return Ok(None);
    };
    if refresh.client_id != client.id || !refresh_token_active(sesame, &refresh).await? {
        return Ok(None);
    }
    let sub = match refresh.user_id {
        Some(user_id) => user_id.to_string(),
        None => refresh.client_id.clone(),
    };
    let mut answer = json!({
        "active": true,
        "scope": refresh.scopes.join(" "),
        "client_id": refresh.client_id,
        "exp": refresh.expires_at,
        "iat": refresh.created_at,
        "sub": sub,
        "iss": sesame.config().issuer,
    });
    if let Some(user_id) = refresh.user_id
        && let Some(name) = user_name(sesame, user_id).await?
    {
        answer["username"] = json!(name);
    }
    Ok(Some(answer))
}

/// Whether the refresh token grant would accept `refresh`: unspent and unrevoked, unexpired,
/// its client present and not revoked, and its user, if any, present and not disabled.
async fn refresh_token_active(
    sesame: &Sesame,
    refresh: &RefreshTokenRecord,
) -> Result<bool, GrantError> {
    if refresh.revoked || refresh.expires_at <= sesame.now() {
        return Ok(false);
    }
    let store = sesame.store();
    match store.client(&refresh.client_id).await? {
        Some(client) if !client.revoked => {}
        _ => return Ok(false),
    }
    if let Some(user_id) = refresh.user_id {
        match store.user(user_id).await? {
            Some(user) if !user.disabled => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

async fn user_name(sesame: &Sesame, user_id: i64) -> Result<Option<String>, GrantError> {
    Ok(sesame.store().user(user_id).await?.map(|user| user.name))
}
