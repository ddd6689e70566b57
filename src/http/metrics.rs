//! `GET /metrics`.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::app::Sesame;

/// The media type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders Sesame's metrics in the Prometheus text format, after reading the database pool
/// gauges. Answers 404 like an unknown path when `SESAME_METRICS` is off.
pub(crate) async fn metrics(State(sesame): State<Sesame>) -> Response {
    let Some(metrics) = sesame.metrics() else {
        return super::not_found().await;
    };
    let pool = sesame.store().pool();
    metrics.record_pool(
        pool.size(),
        pool.num_idle(),
        pool.options().get_max_connections(),
    );
    let mut response = metrics.render().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}
