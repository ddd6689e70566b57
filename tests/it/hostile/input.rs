//! NUL bytes in every place a request carries text: form bodies, Basic credentials, the
//! authorization query, path segments and JSON bodies. PostgreSQL cannot store a NUL in a
//! text column, so an unchecked one would turn into a database error and a 500.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sesame::store::ClientKind;

use super::{CHALLENGE, REDIRECT, app};
use crate::browser::{Browser, urlencode};
use crate::common::Server;

// catalogue 115
#[tokio::test]
async fn nul_in_form_or_basic_is_client_error() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;
    let bodies = [
        format!("grant_type=password&username=alice%00&password=pw&client_id={id}%00"),
        "grant_type=password&username=alice%00&password=pw".to_owned(),
        "grant_type=refresh_token&refresh_token=abc%00".to_owned(),
        "grant_type=password&username=alice&password=pw&scope=read%00".to_owned(),
    ];
    for (index, body) in bodies.iter().enumerate() {
        let mut request = server
            .http
            .post(server.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if index > 0 {
            request = request.basic_auth(&id, Some(&secret));
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        assert!(status.is_client_error(), "{body}: {status}");
    }

    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let reply = server
            .post_form(path, Some((&id, &secret)), &[("token", "abc\u{0}")])
            .await;
        assert!(
            reply.status.is_client_error() || reply.status == StatusCode::OK,
            "{path}"
        );
        assert_ne!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }

    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}%00:{secret}"));
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .header("authorization", format!("Basic {encoded}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let device = server
        .http
        .post(server.url("/oauth/device/code"))
        .form(&[("client_id", "device\u{0}")])
        .send()
        .await
        .expect("request");
    assert!(device.status().is_client_error(), "{}", device.status());
    assert_eq!(server.counts().await, before);
}

// catalogue 115
#[tokio::test]
async fn nul_in_browser_requests_is_client_error() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    // Page queries reject a NUL like any malformed parameter, with an error page.
    let login = browser.get("/login?return_to=%2Fx%00").await;
    assert_eq!(login.status, StatusCode::BAD_REQUEST);

    let page = browser.sign_in("alice\u{0}", "pw", "/").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    browser.sign_in("alice", "pw", "/account/tokens%00").await;

    for query in [
        format!(
            "response_type=code&client_id={}&redirect_uri={}%00&code_challenge={CHALLENGE}\
             &code_challenge_method=S256",
            app.id,
            urlencode(REDIRECT)
        ),
        format!(
            "response_type=code&client_id={}&redirect_uri={}&state=%00&scope=read%00\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            app.id,
            urlencode(REDIRECT)
        ),
        format!(
            "response_type=code&client_id={}&redirect_uri={}&nonce=%00\
             &code_challenge={CHALLENGE}%00&code_challenge_method=S256",
            app.id,
            urlencode(REDIRECT)
        ),
    ] {
        let page = browser.get(&format!("/oauth/authorize?{query}")).await;
        assert_ne!(page.status, StatusCode::INTERNAL_SERVER_ERROR, "{query}");
        assert!(
            page.status == StatusCode::BAD_REQUEST || page.status == StatusCode::SEE_OTHER,
            "{query}: {}",
            page.status
        );
    }

    let device = browser.get("/oauth/device?user_code=BCDF%00GHJK").await;
    assert_ne!(device.status, StatusCode::INTERNAL_SERVER_ERROR);
}

// catalogue 113, 115
#[tokio::test]
async fn nul_in_account_api_is_client_error() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account", "read"]).await;
    let before = server.counts().await;
    for (method, path) in [
        (Method::GET, "/oauth/clients/abc%00"),
        (Method::PUT, "/oauth/clients/abc%00"),
        (Method::DELETE, "/oauth/clients/abc%00"),
        (Method::POST, "/oauth/clients/abc%00/secret"),
        (Method::DELETE, "/oauth/personal-access-tokens/abc%00"),
        (Method::DELETE, "/oauth/tokens/abc%00"),
    ] {
        let body = json!({"name": "x", "redirect_uris": ["https://a.example/cb"]});
        let reply = server
            .send_json(method.clone(), path, Some(&token), Some(&body))
            .await;
        assert!(
            reply.status.is_client_error(),
            "{method} {path}: {} {}",
            reply.status,
            reply.text
        );
    }
    let bodies = [
        (
            "/oauth/clients",
            json!({"name": "x\u{0}", "redirect_uris": ["https://a.example/cb"]}),
        ),
        (
            "/oauth/clients",
            json!({"name": "x", "redirect_uris": ["https://a.example/cb\u{0}"]}),
        ),
        (
            "/oauth/personal-access-tokens",
            json!({"name": "x\u{0}", "scopes": ["read"]}),
        ),
        (
            "/oauth/personal-access-tokens",
            json!({"name": "x", "scopes": ["read\u{0}"]}),
        ),
    ];
    for (path, body) in bodies {
        let reply = server
            .send_json(Method::POST, path, Some(&token), Some(&body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            reply.text
        );
    }
    assert_eq!(server.counts().await, before);
}
