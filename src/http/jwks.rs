//! `GET /oauth/jwks` (also `/.well-known/jwks.json`) and `GET /oauth/scopes`.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::internal_error;
use crate::app::Sesame;
use crate::config::BUILT_IN_SCOPES;

/// Publishes every key in the next, current and previous states, cacheable for
/// `SESAME_JWKS_MAX_AGE`.
pub(crate) async fn jwks(State(sesame): State<Sesame>) -> Response {
    match sesame.verifier().jwks(sesame.store()).await {
        Ok(document) => {
            let mut response = axum::Json(document).into_response();
            let max_age = sesame.config().jwks_max_age.as_secs();
            if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
                response.headers_mut().insert(CACHE_CONTROL, value);
            }
            response
        }
        Err(error) => internal_error(&error),
    }
}

/// Lists declared and built-in scopes with their descriptions, as Passport's `/oauth/scopes`.
pub(crate) async fn scopes(State(sesame): State<Sesame>) -> Response {
    let declared = sesame
        .config()
        .scopes
        .iter()
        .map(|(id, description)| json!({"id": id, "description": description}));
    let built_in = BUILT_IN_SCOPES
        .iter()
        .filter(|(id, _)| !sesame.config().scopes.contains_key(*id))
        .map(|(id, description)| json!({"id": id, "description": description}));
    axum::Json(declared.chain(built_in).collect::<Vec<_>>()).into_response()
}
