//! The device authorization grant (RFC 8628) and the code entry page.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use crate::browser::Browser;
use crate::common::Server;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn start(server: &Server, client_id: &str, scope: &str) -> Value {
    let response = server
        .http
        .post(server.url("/oauth/device/code"))
        .form(&[("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.json().await.expect("json");
    crate::log_capture::record_json(&body);
    body
}

async fn poll(server: &Server, client_id: &str, device_code: &str) -> (StatusCode, Value) {
    crate::log_capture::record("device_code", device_code);
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", GRANT),
            ("device_code", device_code),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    crate::log_capture::record_json(&body);
    (status, body)
}

async fn setup() -> (Server, String, Browser) {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, _) = server.client(ClientKind::Device, None).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    (server, id, browser)
}

async fn decide(browser: &Browser, typed: &str, decision: &str) -> crate::browser::Page {
    let entry = browser.get("/oauth/device").await;
    let csrf = entry.field("_csrf");
    let confirm = browser
        .post(
            "/oauth/device",
            &[("_csrf", &csrf), ("user_code", typed), ("action", "lookup")],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let code = confirm.field("user_code");
    browser
        .post(
            "/oauth/device",
            &[
                ("_csrf", &csrf),
                ("user_code", &code),
                ("decision", decision),
            ],
        )
        .await
}

#[tokio::test]
async fn approve_then_poll_gets_tokens_once() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "read").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let user_code = started["user_code"].as_str().expect("user_code");
    assert_eq!(started["interval"], 5);
    assert_eq!(
        started["verification_uri"],
        format!("{}/oauth/device", server.base)
    );
    assert!(
        user_code.len() == 9 && user_code.as_bytes()[4] == b'-',
        "{user_code}"
    );
    let (status, body) = poll(&server, &id, device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "authorization_pending");

    let typed = user_code.to_lowercase();
    let done = decide(&browser, &typed, "approve").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    server.clock.advance(6);
    let (status, body) = poll(&server, &id, device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    let (status, body) = poll(&server, &id, device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn confirm_page_names_client_and_scopes() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "read write").await;
    let entry = browser.get("/oauth/device").await;
    let code = started["user_code"]
        .as_str()
        .expect("code")
        .replace('-', " ");
    let confirm = browser
        .post(
            "/oauth/device",
            &[
                ("_csrf", &entry.field("_csrf")),
                ("user_code", &code),
                ("action", "lookup"),
            ],
        )
        .await;
    assert!(
        confirm.body.contains("Device Application") || confirm.body.contains("test"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("Read things") && confirm.body.contains("Write things"));
}

#[tokio::test]
async fn deny_answers_access_denied() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "").await;
    decide(
        &browser,
        started["user_code"].as_str().expect("code"),
        "deny",
    )
    .await;
    let (status, body) = poll(&server, &id, started["device_code"].as_str().expect("code")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "access_denied");
}

#[tokio::test]
async fn fast_polling_slows_down_then_recovers() {
    let (server, id, _browser) = setup().await;
    let started = start(&server, &id, "").await;
    let device_code = started["device_code"].as_str().expect("code");
    poll(&server, &id, device_code).await;
    let (_, body) = poll(&server, &id, device_code).await;
    assert_eq!(body["error"], "slow_down");
    server.clock.advance(10);
    let (_, body) = poll(&server, &id, device_code).await;
    assert_eq!(
        body["error"], "authorization_pending",
        "obeying the new interval works"
    );
}

#[tokio::test]
async fn expired_device_code() {
    let (server, id, _browser) = setup().await;
    let started = start(&server, &id, "").await;
    server.clock.advance(601);
    let (status, body) = poll(&server, &id, started["device_code"].as_str().expect("code")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "expired_token");
}

#[tokio::test]
async fn other_client_cannot_poll() {
    let (server, id, browser) = setup().await;
    let (other, _) = server.client(ClientKind::Device, None).await;
    let started = start(&server, &id, "").await;
    decide(
        &browser,
        started["user_code"].as_str().expect("code"),
        "approve",
    )
    .await;
    let (status, body) = poll(
        &server,
        &other,
        started["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn disabled_user_gets_no_token() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "").await;
    decide(
        &browser,
        started["user_code"].as_str().expect("code"),
        "approve",
    )
    .await;
    server.execute("UPDATE users SET disabled = TRUE").await;
    let (status, body) = poll(&server, &id, started["device_code"].as_str().expect("code")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_codes_back_off() {
    let (server, _id, browser) = setup().await;
    let entry = browser.get("/oauth/device").await;
    let csrf = entry.field("_csrf");
    for _ in 0..5 {
        let page = browser
            .post(
                "/oauth/device",
                &[
                    ("_csrf", &csrf),
                    ("user_code", "BBBB-BBBB"),
                    ("action", "lookup"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
    }
    let page = browser
        .post(
            "/oauth/device",
            &[
                ("_csrf", &csrf),
                ("user_code", "BBBB-BBBB"),
                ("action", "lookup"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.contains_key("retry-after"));
    let _ = server;
}

#[tokio::test]
async fn entry_requires_sign_in_and_csrf() {
    let server = Server::start().await;
    let browser = Browser::new(&server);
    let page = browser.get("/oauth/device?user_code=BCDF-GHJK").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location
            .expect("location")
            .starts_with("/login?return_to=")
    );
    let page = browser
        .post(
            "/oauth/device",
            &[("user_code", "BCDF-GHJK"), ("decision", "approve")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn client_without_device_grant_refused() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let response = server
        .http
        .post(server.url("/oauth/device/code"))
        .basic_auth(&id, Some(&secret))
        .form(&[("scope", "")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
}
