//! `POST /oauth/token`: every grant.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::form::{OAuthForm, client_credentials, missing_client_credentials};
use super::no_store;
use super::rate_limit::RateLimits;
use crate::app::Sesame;
use crate::error::Error;
use crate::grant::client_auth::ClientCredentials;
use crate::grant::{self, GrantError, OAuthError};
use crate::store::ClientRecord;

/// The `grant_type` values the token endpoint accepts.
const SUPPORTED_GRANTS: [&str; 5] = [
    "authorization_code",
    "client_credentials",
    "password",
    "refresh_token",
    crate::store::DEVICE_CODE_GRANT,
];

/// Authenticates the client, dispatches on `grant_type` and responds with tokens or an
/// RFC 6749 §5.2 error, always with `Cache-Control: no-store`.
pub(crate) async fn token(
    State(sesame): State<Sesame>,
    Extension(limits): Extension<Arc<RateLimits>>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let grant_type = params.get("grant_type").unwrap_or_default().to_owned();
    if SUPPORTED_GRANTS.contains(&grant_type.as_str()) {
        tracing::Span::current().record("grant_type", grant_type.as_str());
    }
    // A transaction the database aborted for a concurrent one's sake is run again, a few
    // times, before it becomes a 500.
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        match token_inner(&sesame, &limits, &headers, &params, &grant_type).await {
            Err(GrantError::Internal(error)) if error.is_transaction_conflict() && attempts < 4 => {
                tracing::debug!(%error, attempts, "retrying a token request after a conflict");
            }
            other => break other,
        }
    };
    match result {
        Ok(response) => {
            tracing::debug!(grant_type, "issued tokens");
            if let Some(metrics) = sesame.metrics()
                && let Some(grant) = SUPPORTED_GRANTS.iter().find(|g| **g == grant_type)
            {
                metrics.record_token_issued(grant);
            }
            no_store(axum::Json(response).into_response())
        }
        Err(error) => {
            if let GrantError::OAuth(oauth) = &error {
                tracing::debug!(grant_type, error = oauth.code, "token request rejected");
            }
            error.into_response()
        }
    }
}

async fn token_inner(
    sesame: &Sesame,
    limits: &RateLimits,
    headers: &HeaderMap,
    params: &grant::Params,
    grant_type: &str,
) -> Result<grant::TokenResponse, GrantError> {
    if grant_type.is_empty() {
        return Err(OAuthError::invalid_request("missing grant_type").into());
    }
    if !SUPPORTED_GRANTS.contains(&grant_type) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {grant_type:?} is not supported"
        ))
        .into());
    }
    let credentials =
        client_credentials(headers, params)?.ok_or_else(missing_client_credentials)?;
    if grant_type == "client_credentials" {
        return client_credentials_token(sesame, limits, &credentials, params).await;
    }
    let client = authenticate(sesame, limits, &credentials).await?;
    match grant_type {
        "password" => grant::password::grant(sesame, &client, params).await,
        "authorization_code" => grant::authorization_code::grant(sesame, &client, params).await,
        "refresh_token" => grant::refresh_token::grant(sesame, &client, params).await,
        _ => grant::device_code::grant(sesame, &client, params).await,
    }
}

/// Authenticates the client from its stored row and counts the request against its rate limit.
async fn authenticate(
    sesame: &Sesame,
    limits: &RateLimits,
    credentials: &ClientCredentials,
) -> Result<ClientRecord, GrantError> {
    let client = grant::client_auth::authenticate(sesame, credentials).await?;
    tracing::Span::current().record("client_id", client.id.as_str());
    // Only clients that proved a secret are counted, so sending another client's id cannot
    // spend its budget, and unknown ids take no memory. A public client's id is not secret,
    // so its requests count only against the per-address limit.
    if client.is_confidential() {
        limits.check_client(&client.id)?;
    }
    Ok(client)
}

/// Runs the client_credentials grant, first with the client from the client cache. A change to
/// the client can explain some failures of that attempt: the token writer found the stored
/// client changed, or the grant or a scope was refused. Then the entry is dropped and the
/// request is handled again with the stored client. A success from the stored client puts it
/// in the cache.
async fn client_credentials_token(
    sesame: &Sesame,
    limits: &RateLimits,
    credentials: &ClientCredentials,
    params: &grant::Params,
) -> Result<grant::TokenResponse, GrantError> {
    let cached = grant::client_auth::authenticate_cached(sesame, credentials);
    if let Some(client) = &cached {
        tracing::Span::current().record("client_id", client.id.as_str());
        limits.check_client(&client.id)?;
        match grant::client_credentials::grant_cached(sesame, client, params).await {
            Err(error) if may_follow_from_change(&error) => {
                tracing::debug!(client_id = %client.id, "cached client is stale; reading it again");
                sesame.client_cache().forget(&client.id);
            }
            result => return result,
        }
    }
    // The cached attempt already counted this request against the client's rate limit.
    let client = match cached {
        Some(_) => grant::client_auth::authenticate(sesame, credentials).await?,
        None => authenticate(sesame, limits, credentials).await?,
    };
    let response = grant::client_credentials::grant(sesame, &client, params).await?;
    sesame.client_cache().put(&client);
    Ok(response)
}

/// Checks whether a client_credentials attempt with a cached client may have failed because
/// the cached record is out of date.
fn may_follow_from_change(error: &GrantError) -> bool {
    match error {
        GrantError::Internal(Error::ClientChanged) => true,
        GrantError::OAuth(error) => matches!(error.code, "unauthorized_client" | "invalid_scope"),
        GrantError::Internal(_) => false,
    }
}
