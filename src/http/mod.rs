//! HTTP: the axum router and the one place errors become responses.

mod account;
mod account_page;
mod authorize;
mod clients;
mod device;
pub(crate) mod form;
mod health;
mod introspect;
mod jwks;
mod login;
mod metadata;
mod pages;
mod personal;
mod revoke;
mod token;
mod tokens;
mod userinfo;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde_json::json;

use crate::app::Sesame;
use crate::error::Error;
use crate::grant::{GrantError, OAuthError};

/// The largest request body any endpoint reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds Sesame's router with `sesame` as its state. Mount it at the root of an axum app
/// (its paths start with `/oauth`, `/.well-known`, `/healthz` and `/readyz`).
pub fn router(sesame: Sesame) -> Router {
    Router::new()
        .route("/oauth/token", post(token::token))
        .route(
            "/oauth/authorize",
            get(authorize::show)
                .post(authorize::decide)
                .delete(authorize::decide),
        )
        .route("/oauth/device/code", post(device::device_code))
        .route("/oauth/device", get(device::show).post(device::submit))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/account/tokens",
            get(account_page::show).post(account_page::create),
        )
        .route("/account/tokens/{id}/revoke", post(account_page::revoke))
        .route("/assets/{name}", get(pages::asset))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::oauth_authorization_server),
        )
        .route(
            "/.well-known/openid-configuration",
            get(metadata::openid_configuration),
        )
        .route("/oauth/jwks", get(jwks::jwks))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .route("/oauth/scopes", get(jwks::scopes))
        .route(
            "/oauth/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            "/oauth/personal-access-tokens",
            get(personal::list).post(personal::create),
        )
        .route(
            "/oauth/personal-access-tokens/{id}",
            delete(personal::revoke),
        )
        .route("/oauth/clients", get(clients::list).post(clients::create))
        .route(
            "/oauth/clients/{id}",
            put(clients::update).delete(clients::revoke),
        )
        .route("/oauth/clients/{id}/secret", post(clients::replace_secret))
        .route("/oauth/tokens", get(tokens::list))
        .route("/oauth/tokens/{id}", delete(tokens::revoke))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(sesame)
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Logs one line per request: method, route, status and latency. Never the query string,
/// headers or body, which may carry codes and credentials.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// A JSON error body `{"error": ..., "message": ...}` for the non-OAuth JSON APIs.
pub(crate) fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "message": message})),
    )
        .into_response()
}

/// Answers an internal failure with a generic 500 and logs the detail once under an id the
/// response carries; a database that cannot be reached gets 503 with `Retry-After`.
pub(crate) fn internal_error(error: &Error) -> Response {
    if error.is_unavailable() {
        tracing::warn!(%error, "database unavailable");
        let body = json!({
            "error": "temporarily_unavailable",
            "error_description": "the database is unavailable; retry shortly",
        });
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let error_id = uuid::Uuid::new_v4().simple().to_string();
    let error_id = &error_id[..12];
    tracing::error!(error_id, %error, "internal error");
    let body = json!({
        "error": "server_error",
        "error_description": "internal server error",
        "error_id": error_id,
    });
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache`, as token responses need.
pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({"error": self.code, "error_description": self.description});
        let mut response = (status, axum::Json(body)).into_response();
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sesame\""),
            );
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        no_store(response)
    }
}

impl IntoResponse for GrantError {
    fn into_response(self) -> Response {
        match self {
            GrantError::OAuth(error) => error.into_response(),
            GrantError::Internal(error) => no_store(internal_error(&error)),
        }
    }
}

/// Errors of the JSON account APIs.
pub(crate) enum ApiError {
    Bearer(crate::guard::BearerError),
    Status(StatusCode, &'static str, String),
    Internal(Error),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidInput(message) => {
                ApiError::Status(StatusCode::BAD_REQUEST, "invalid_request", message)
            }
            Error::InvalidRedirectUri(message) => {
                ApiError::Status(StatusCode::BAD_REQUEST, "invalid_redirect_uri", message)
            }
            Error::UnknownScope(scope) => ApiError::Status(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("unknown scope {scope:?}"),
            ),
            Error::NotFound { kind, id } => ApiError::Status(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{kind} {id} not found"),
            ),
            Error::Busy => ApiError::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server is busy; retry shortly".into(),
            ),
            other => ApiError::Internal(other),
        }
    }
}

impl From<crate::guard::BearerError> for ApiError {
    fn from(error: crate::guard::BearerError) -> Self {
        ApiError::Bearer(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Bearer(error) => error.into_response(),
            ApiError::Status(status, code, message) => json_error(status, code, &message),
            ApiError::Internal(error) => internal_error(&error),
        }
    }
}
