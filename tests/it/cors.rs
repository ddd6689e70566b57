//! CORS: only listed origins, only the endpoints made for cross-origin calls, never with
//! credentials.

use reqwest::{Method, StatusCode};
use sesame::config::RateLimit;

use crate::common::{Reply, Server, data_dir};

const ALLOWED: &str = "https://app.example.com";

/// Endpoints that accept cross-origin requests from listed origins.
const CROSS_ORIGIN: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("GET", "/oauth/userinfo"),
    ("GET", "/oauth/jwks"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
];

/// Browser pages, which must stay same-origin.
const PAGES: &[(&str, &str)] = &[
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/oauth/authorize"),
    ("GET", "/oauth/device"),
    ("GET", "/account/tokens"),
];

async fn start(origins: &[&str]) -> Server {
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    Server::start_with(data_dir(""), move |config| config.cors_origins = origins).await
}

async fn preflight(server: &Server, method: &str, path: &str, origin: &str) -> Reply {
    let request = server
        .http
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        );
    Reply::read(request.send().await.expect("request")).await
}

async fn call(server: &Server, method: &str, path: &str, origin: &str) -> Reply {
    let method: Method = method.parse().expect("method");
    let request = server
        .http
        .request(method, server.url(path))
        .header("origin", origin)
        .form(&[("token", "x")]);
    Reply::read(request.send().await.expect("request")).await
}

#[tokio::test]
async fn listed_origin_allowed_on_api_endpoints() {
    let server = start(&[ALLOWED]).await;
    for (method, path) in CROSS_ORIGIN {
        let reply = preflight(&server, method, path, ALLOWED).await;
        assert!(reply.status.is_success(), "{path}: {}", reply.status);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            ALLOWED,
            "{path}"
        );
        let methods = reply.header("access-control-allow-methods");
        assert!(methods.contains(method), "{path}: {methods}");
        let headers = reply.header("access-control-allow-headers").to_lowercase();
        assert!(headers.contains("authorization"), "{path}: {headers}");
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            "",
            "{path}"
        );

        let reply = call(&server, method, path, ALLOWED).await;
        assert_eq!(
            reply.header("access-control-allow-origin"),
            ALLOWED,
            "{path}"
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            "",
            "{path}"
        );
        assert!(
            reply.header("vary").to_lowercase().contains("origin"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn other_origin_gets_no_cors_headers() {
    let server = start(&[ALLOWED]).await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "null",
    ] {
        for (method, path) in CROSS_ORIGIN {
            let reply = preflight(&server, method, path, origin).await;
            assert_eq!(
                reply.header("access-control-allow-origin"),
                "",
                "{origin} {path}"
            );
            assert_eq!(reply.header("access-control-allow-credentials"), "");
            let reply = call(&server, method, path, origin).await;
            assert_eq!(
                reply.header("access-control-allow-origin"),
                "",
                "{origin} {path}"
            );
        }
    }
}

#[tokio::test]
async fn pages_never_cross_origin() {
    let server = start(&[ALLOWED]).await;
    for (method, path) in PAGES {
        let reply = preflight(&server, method, path, ALLOWED).await;
        assert_eq!(reply.header("access-control-allow-origin"), "", "{path}");
        let reply = call(&server, method, path, ALLOWED).await;
        assert_eq!(reply.header("access-control-allow-origin"), "", "{path}");
    }
}

#[tokio::test]
async fn no_origins_by_default() {
    let server = Server::start().await;
    for (method, path) in CROSS_ORIGIN {
        let reply = preflight(&server, method, path, ALLOWED).await;
        assert_eq!(reply.header("access-control-allow-origin"), "", "{path}");
        let reply = call(&server, method, path, ALLOWED).await;
        assert_eq!(reply.header("access-control-allow-origin"), "", "{path}");
    }
}

#[tokio::test]
async fn rate_limited_token_reply_readable_cross_origin() {
    let server = Server::start_with(data_dir(""), |config| {
        config.cors_origins = vec![ALLOWED.to_owned()];
        config.rate_limit_per_address = RateLimit {
            per_minute: 1,
            burst: 1,
        };
    })
    .await;
    let first = call(&server, "POST", "/oauth/token", ALLOWED).await;
    assert_ne!(first.status, StatusCode::TOO_MANY_REQUESTS);
    let limited = call(&server, "POST", "/oauth/token", ALLOWED).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("access-control-allow-origin"), ALLOWED);
    let exposed = limited
        .header("access-control-expose-headers")
        .to_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
}
