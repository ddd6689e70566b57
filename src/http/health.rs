//! `GET /healthz` and `GET /readyz`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::Sesame;
use crate::store::SchemaStatus;

/// Answers 200 while the process serves.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Returns 200 when the database responds, the schema is current and this node has a current
/// signing key, and 503 otherwise.
pub(crate) async fn readyz(State(sesame): State<Sesame>) -> Response {
    let status = sesame.store().schema_status().await;
    let (code, detail) = match status {
        Ok(SchemaStatus::Current) if !sesame.can_sign() => {
            (StatusCode::SERVICE_UNAVAILABLE, "no current signing key")
        }
        Ok(SchemaStatus::Current) => (StatusCode::OK, "ok"),
        Ok(SchemaStatus::Pending(_)) => (StatusCode::SERVICE_UNAVAILABLE, "migrations pending"),
        Ok(SchemaStatus::TooNew { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "schema newer than this binary",
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    };
    (code, axum::Json(json!({"status": detail}))).into_response()
}
