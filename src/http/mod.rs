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
mod metrics;
mod observe;
mod pages;
mod personal;
mod rate_limit;
mod revoke;
mod token;
mod tokens;
mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::Sesame;
use crate::error::Error;
use crate::grant::{GrantError, OAuthError};

/// The largest request body any endpoint reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The maximum time a request may run before Sesame responds 503. The pool's acquire timeout bounds
/// the wait for a connection, but not a query on a connection whose network went silent, which
/// would otherwise hold the request until the operating system gives up on the socket.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds Sesame's router with `sesame` as its state. Mount it at the root of an axum app
/// (its paths start with `/oauth`, `/.well-known`, `/login`, `/logout`, `/account`,
/// `/assets`, `/healthz`, `/readyz` and `/metrics`).
///
/// Every request through it runs in a `request` tracing span carrying its `request_id`,
/// which the response echoes in `X-Request-Id`.
///
/// The rate limits of `/oauth/token`, `POST /login` and the device endpoints are kept in
/// memory by the returned router, so each router (each node) counts its own requests. Serve
/// it with `into_make_service_with_connect_info::<SocketAddr>()`: without the peer address
/// the per-address limits are off.
pub fn router(sesame: Sesame) -> Router {
    let config = sesame.config();
    let limits = Arc::new(rate_limit::RateLimits::new(
        config.rate_limit_per_address,
        config.rate_limit_per_client,
    ));
    let limit_state = rate_limit::LimitState {
        sesame: sesame.clone(),
        limits: limits.clone(),
    };
    let same_origin_routes = Router::new()
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
        .route("/oauth/scopes", get(jwks::scopes))
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
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            limit_state.clone(),
            rate_limit::limit_by_address,
        ));
    Router::new()
        .merge(cross_origin_routes(&config.cors_origins, limit_state))
        .merge(same_origin_routes)
        .fallback(not_found)
        .layer(Extension(limits))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(limit_duration))
        .layer(axum::middleware::from_fn_with_state(
            sesame.clone(),
            observe::observe,
        ))
        .with_state(sesame)
}

/// Builds the routes browsers may call from other origins: token, revocation, introspection,
/// userinfo, JWKS and metadata. Only the exact origins in `origins` get
/// `Access-Control-Allow-Origin`, and never with credentials, because these endpoints take
/// explicit credentials and no cookies. The page routes stay same-origin.
///
/// The rate limit layer, built from `limit_state`, goes inside the CORS layer so that a 429 carries the
/// CORS headers and the calling page can read it.
fn cross_origin_routes(origins: &[String], limit_state: rate_limit::LimitState) -> Router<Sesame> {
    let routes = Router::new()
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .route(
            "/oauth/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route("/oauth/jwks", get(jwks::jwks))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::oauth_authorization_server),
        )
        .route(
            "/.well-known/openid-configuration",
            get(metadata::openid_configuration),
        )
        .layer(axum::middleware::from_fn_with_state(
            limit_state,
            rate_limit::limit_by_address,
        ));
    // Origins were checked when the configuration loaded, so none is dropped here.
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return routes;
    }
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .expose_headers([WWW_AUTHENTICATE, RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    routes.layer(cors)
}

pub(crate) async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Responds 413 at once to a request whose declared `Content-Length` exceeds
/// [`MAX_BODY_BYTES`], and 503 to a request that runs longer than [`REQUEST_TIMEOUT`]: a
/// silent database, or a client that stops sending its body. Dropping the handler cancels its
/// query, and the pool replaces the connection.
async fn limit_duration(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        let mut error = OAuthError::invalid_request(format!(
            "the request body is larger than {MAX_BODY_BYTES} bytes"
        ));
        error.status = StatusCode::PAYLOAD_TOO_LARGE.as_u16();
        return error.into_response();
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_seconds = REQUEST_TIMEOUT.as_secs(),
                "request timed out; the database or the client is too slow"
            );
            let body = json!({
                "error": "temporarily_unavailable",
                "error_description": format!(
                    "the request did not complete within {} seconds; retry shortly",
                    REQUEST_TIMEOUT.as_secs()
                ),
            });
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            no_store(response)
        }
    }
}

/// Builds a 503 `temporarily_unavailable` response for a node that has no current signing
/// key, as after `sesame keys --force` beside a running server. `/readyz` reports the same, so
/// a load balancer sends the requests to other nodes until this one is restarted.
fn no_signing_key() -> Response {
    let body = json!({
        "error": "temporarily_unavailable",
        "error_description": "this server has no current signing key; its operator must fix \
                              the key setup (see the server log)",
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// Builds a 503 `temporarily_unavailable` response with `Retry-After`, for a database that
/// cannot be reached.
fn unavailable() -> Response {
    let body = json!({
        "error": "temporarily_unavailable",
        "error_description": "the database is unavailable; retry shortly",
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
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
        return unavailable();
    }
    if let Error::NoSigningKey { .. } = error {
        // The message names the fix, which only the operator can make.
        tracing::error!(%error, "cannot sign tokens");
        return no_signing_key();
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
        response
            .extensions_mut()
            .insert(observe::OAuthErrorCode(self.code));
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
            GrantError::Internal(error) => {
                let code = if error.is_unavailable() || matches!(error, Error::NoSigningKey { .. })
                {
                    "temporarily_unavailable"
                } else {
                    "server_error"
                };
                let mut response = no_store(internal_error(&error));
                response
                    .extensions_mut()
                    .insert(observe::OAuthErrorCode(code));
                response
            }
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
