//! The client credentials grant (RFC 6749 §4.4): a confidential client gets a token for
//! itself.

use crate::app::Sesame;
use crate::grant::{
    GrantError, Issue, OAuthError, Params, TokenResponse, issue_standalone_access_token,
    requested_scopes, ttl_seconds,
};
use crate::store::ClientRecord;

/// Issues an access token whose subject is the client. No refresh token is issued.
///
/// # Errors
///
/// `unauthorized_client` for a public client or one without this grant, `invalid_scope`.
pub async fn grant(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, GrantError> {
    issue(sesame, client, params, false).await
}

/// Issues a token as [`grant`] does, to a client read from the client cache. The token is
/// stored and returned only if the stored client still equals `client`.
///
/// # Errors
///
/// As [`grant`], and [`crate::Error::ClientChanged`] when the stored client differs.
pub(crate) async fn grant_cached(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, GrantError> {
    issue(sesame, client, params, true).await
}

async fn issue(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
    cached: bool,
) -> Result<TokenResponse, GrantError> {
    if !client.is_confidential() || !client.allows_grant("client_credentials") {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the client_credentials grant",
        )
        .into());
    }
    let scopes = requested_scopes(sesame, client, params)?;
    let ttl = ttl_seconds(sesame.config().access_ttl);
    let issue = Issue {
        user_id: None,
        client_id: &client.id,
        scopes: &scopes,
        ttl_seconds: ttl,
        name: None,
    };
    let (access_token, _) =
        issue_standalone_access_token(sesame, issue, cached.then_some(client)).await?;
    Ok(TokenResponse {
        token_type: "Bearer",
        expires_in: ttl,
        access_token,
        refresh_token: None,
        scope: scopes.join(" "),
        id_token: None,
    })
}
