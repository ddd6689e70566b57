//! The middleware around every request: request id, tracing span, access log line and
//! request metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::app::Sesame;

/// The header that carries a request's id in and out.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Maximum length of an incoming request id that is kept, in bytes.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The `error` code of an OAuth error response, attached as a response extension so that
/// [`observe`] can count it without parsing the body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OAuthErrorCode(pub &'static str);

/// Runs a request inside a `request` span that carries its id, method, route and, where the
/// handler records them, grant type and client id. Then logs one line with status and latency,
/// records the request metrics and echoes the id in `X-Request-Id`.
///
/// The log line never contains the query string, headers or body, which may carry codes and
/// credentials.
pub(crate) async fn observe(
    State(sesame): State<Sesame>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Handlers fill `grant_type` and `client_id` where they apply, so that the one line logged
    // per request names the grant and the client.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        %method,
        route,
        grant_type = tracing::field::Empty,
        client_id = tracing::field::Empty,
    );

    let mut response = next.run(request).instrument(span.clone()).await;

    let latency = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Some(metrics) = sesame.metrics() {
        metrics.record_request(&route, method, status, latency);
        if let Some(OAuthErrorCode(code)) = response.extensions().get::<OAuthErrorCode>() {
            metrics.record_oauth_error(code);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// Returns the incoming `X-Request-Id` when it is one header of at most 64 characters from
/// `[A-Za-z0-9._-]`, and a new UUID v7 otherwise, so that a client cannot put line breaks,
/// markup or kilobytes into log lines.
fn request_id(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    let incoming = match (values.next(), values.next()) {
        (Some(value), None) => Some(value.as_bytes()),
        _ => None,
    };
    match incoming {
        Some(bytes) if is_safe_request_id(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// Returns the name of a method from RFC 9110 or PATCH, and "other" for any other method.
/// hyper accepts any token as a method, so logging or counting it as sent would let a client
/// write kilobytes into each log line and add a metric series for every name it invents.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

fn is_safe_request_id(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_for(values: &[&[u8]]) -> String {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                X_REQUEST_ID,
                HeaderValue::from_bytes(value).expect("header value"),
            );
        }
        request_id(&headers)
    }

    #[test]
    fn invented_methods_labelled_other() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let long = Method::from_bytes("M".repeat(32_000).as_bytes()).expect("a token");
        assert_eq!(method_label(&long), "other");
        let invented = Method::from_bytes(b"PURGE").expect("a token");
        assert_eq!(method_label(&invented), "other");
    }

    #[test]
    fn safe_request_id_kept() {
        assert_eq!(id_for(&[b"abc-123_x.y"]), "abc-123_x.y");
        let longest = "a".repeat(64);
        assert_eq!(id_for(&[longest.as_bytes()]), longest);
    }

    #[test]
    fn unsafe_request_id_replaced() {
        let too_long = "a".repeat(65);
        let cases: [&[&[u8]]; 7] = [
            &[],
            &[b""],
            &[too_long.as_bytes()],
            &[b"a b"],
            &[b"a\"b<script>"],
            &[b"caf\xc3\xa9"],
            &[b"one", b"two"],
        ];
        for values in cases {
            let id = id_for(values);
            let parsed = uuid::Uuid::parse_str(&id).expect("a new uuid");
            assert_eq!(parsed.get_version_num(), 7, "{values:?}");
        }
    }
}
