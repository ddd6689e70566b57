//! The device authorization grant (RFC 8628) and the code entry page.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use crate::browser::{Browser, Page};
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

/// Looks up `typed` on the entry page and returns the confirmation form's CSRF token and
/// normalised user code.
async fn confirm_form(browser: &Browser, typed: &str) -> (String, String) {
    let entry = browser.get("/oauth/device").await;
    let csrf = entry.field("_csrf");
    let confirm = lookup(browser, &csrf, typed).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    (csrf, confirm.field("user_code"))
}

async fn lookup(browser: &Browser, csrf: &str, typed: &str) -> Page {
    browser
        .post(
            "/oauth/device",
            &[("_csrf", csrf), ("user_code", typed), ("action", "lookup")],
        )
        .await
}

async fn submit_decision(browser: &Browser, csrf: &str, code: &str, decision: &str) -> Page {
    browser
        .post(
            "/oauth/device",
            &[("_csrf", csrf), ("user_code", code), ("decision", decision)],
        )
        .await
}

async fn decide(browser: &Browser, typed: &str, decision: &str) -> Page {
    let (csrf, code) = confirm_form(browser, typed).await;
    submit_decision(browser, &csrf, &code, decision).await
}

async fn attempt_rows(server: &Server) -> i64 {
    server.count("SELECT COUNT(*) FROM sesame_attempts").await
}

/// Signs in a second user in a new session, from the same loopback address as every other
/// browser, and checks that a fresh code still reaches the confirmation page.
async fn fresh_code_accepted(server: &Server, client_id: &str) {
    server.user("bob", "pw").await;
    let bob = Browser::new(server);
    bob.sign_in("bob", "pw", "/account/tokens").await;
    let started = start(server, client_id, "read").await;
    let user_code = started["user_code"].as_str().expect("user_code");
    let entry = bob.get("/oauth/device").await;

    let confirm = lookup(&bob, &entry.field("_csrf"), user_code).await;

    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(confirm.body.contains("Read things"), "{}", confirm.body);
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

#[tokio::test]
async fn repeated_approval_does_not_back_off() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "read").await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let (csrf, code) = confirm_form(&browser, started["user_code"].as_str().expect("code")).await;
    let first = submit_decision(&browser, &csrf, &code, "approve").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);

    // Six resubmits, one more than the unknown codes that start the back-off.
    for _ in 0..6 {
        let again = submit_decision(&browser, &csrf, &code, "approve").await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
        assert!(again.body.contains("already approved"), "{}", again.body);
    }
    let denial = submit_decision(&browser, &csrf, &code, "deny").await;

    assert_eq!(denial.status, StatusCode::CONFLICT, "{}", denial.body);
    assert!(denial.body.contains("already approved"), "{}", denial.body);
    server.clock.advance(6);
    let (status, body) = poll(&server, &id, device_code).await;
    assert_eq!(status, StatusCode::OK, "first decision is final: {body}");
    assert_eq!(attempt_rows(&server).await, 0);
    fresh_code_accepted(&server, &id).await;
}

#[tokio::test]
async fn used_code_hides_decision_from_others() {
    let (server, id, alice) = setup().await;
    let approved = start(&server, &id, "read").await;
    let denied = start(&server, &id, "read").await;
    let approved_code = approved["user_code"].as_str().expect("code");
    let denied_code = denied["user_code"].as_str().expect("code");
    assert_eq!(
        decide(&alice, approved_code, "approve").await.status,
        StatusCode::OK
    );
    assert_eq!(
        decide(&alice, denied_code, "deny").await.status,
        StatusCode::OK
    );
    server.user("mallory", "pw").await;
    let mallory = Browser::new(&server);
    mallory.sign_in("mallory", "pw", "/account/tokens").await;
    let csrf = mallory.get("/oauth/device").await.field("_csrf");

    for code in [approved_code, denied_code] {
        for page in [
            lookup(&mallory, &csrf, code).await,
            submit_decision(&mallory, &csrf, code, "approve").await,
            submit_decision(&mallory, &csrf, code, "deny").await,
        ] {
            assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
            assert!(page.body.contains("already used"), "{}", page.body);
            assert!(!page.body.contains("approved"), "{}", page.body);
            assert!(!page.body.contains("denied"), "{}", page.body);
            assert!(!page.body.contains("Read things"), "{}", page.body);
        }
    }

    server.clock.advance(6);
    let (status, body) = poll(
        &server,
        &id,
        approved["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = poll(&server, &id, denied["device_code"].as_str().expect("code")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "access_denied");
    assert_eq!(attempt_rows(&server).await, 0);
}

#[tokio::test]
async fn expired_code_does_not_back_off() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "read").await;
    let user_code = started["user_code"].as_str().expect("code");
    let csrf = browser.get("/oauth/device").await.field("_csrf");
    server.clock.advance(601);

    for _ in 0..6 {
        let page = lookup(&browser, &csrf, user_code).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert!(page.body.contains("has expired"), "{}", page.body);
    }

    assert_eq!(attempt_rows(&server).await, 0);
    fresh_code_accepted(&server, &id).await;
}

#[tokio::test]
async fn approve_deny_race_does_not_back_off() {
    let (server, id, browser) = setup().await;
    // Ten racers per round, half approving and half denying. A loser whose lookup runs after
    // the winner committed finds a decided code, which must not count as an unknown one.
    for round in 0..3 {
        let started = start(&server, &id, "read").await;
        let (csrf, code) =
            confirm_form(&browser, started["user_code"].as_str().expect("code")).await;
        let url = format!("{}/oauth/device", browser.base);

        let outcomes = crate::hostile::at_once(10, |index| {
            let decision = if index % 2 == 0 { "approve" } else { "deny" };
            let request = browser.http.post(&url).form(&[
                ("_csrf", csrf.as_str()),
                ("user_code", code.as_str()),
                ("decision", decision),
            ]);
            async move {
                let response = request.send().await.expect("decision");
                let status = response.status();
                (decision, status, response.text().await.expect("body"))
            }
        })
        .await;

        let winners: Vec<&str> = outcomes
            .iter()
            .filter(|(_, status, _)| *status == StatusCode::OK)
            .map(|(decision, _, _)| *decision)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = if winners[0] == "approve" {
            "already approved"
        } else {
            "already denied"
        };
        for (decision, status, body) in &outcomes {
            if *status != StatusCode::OK {
                assert_eq!(*status, StatusCode::CONFLICT, "{decision}: {body}");
                assert!(body.contains(stored), "{decision}: {body}");
            }
        }
        server.clock.advance(6);
        let (status, body) =
            poll(&server, &id, started["device_code"].as_str().expect("code")).await;
        if winners[0] == "approve" {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "access_denied");
        }
    }

    assert_eq!(attempt_rows(&server).await, 0);
    fresh_code_accepted(&server, &id).await;
}

#[tokio::test]
async fn unknown_codes_back_off_among_resubmits() {
    let (server, id, browser) = setup().await;
    let started = start(&server, &id, "read").await;
    let (csrf, code) = confirm_form(&browser, started["user_code"].as_str().expect("code")).await;
    let first = submit_decision(&browser, &csrf, &code, "approve").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);

    // Each unknown code counts and each resubmit of the used code does not, so the back-off
    // starts with the fifth unknown code, as it does without resubmits in between.
    for guess in 1..=5 {
        let page = lookup(&browser, &csrf, "BBBB-BBBB").await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "guess {guess}");
        assert!(page.body.contains("not valid"), "{}", page.body);
        let again = submit_decision(&browser, &csrf, &code, "approve").await;
        let expected = if guess < 5 {
            StatusCode::CONFLICT
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(
            again.status, expected,
            "after guess {guess}: {}",
            again.body
        );
    }

    let blocked = lookup(&browser, &csrf, "BBBB-BBBB").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = blocked.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    // The first block lasts 15 s, or 14 s once the clock has ticked since it began.
    assert!((14..=15).contains(&retry_after), "{retry_after}");

    server.user("bob", "pw").await;
    let bob = Browser::new(&server);
    bob.sign_in("bob", "pw", "/account/tokens").await;
    let fresh = start(&server, &id, "read").await;
    let entry = bob.get("/oauth/device").await;
    let page = lookup(
        &bob,
        &entry.field("_csrf"),
        fresh["user_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is blocked for every session"
    );
}
