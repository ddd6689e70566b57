//! Concurrent use of single-use credentials: an authorization code, a refresh token and a
//! device code each succeed exactly once, however many requests race for them. The store
//! enforces this with a conditional UPDATE checked by rows affected, so these tests also run
//! against PostgreSQL and MariaDB (`SESAME_TEST_DATABASE`), where requests truly overlap.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use super::{App, REDIRECT, app, at_once, code_for, post_token, redeem_form};
use crate::browser::Browser;
use crate::common::Server;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Splits race outcomes into the successful bodies, and checks every other outcome is
/// `400 invalid_grant`.
fn winners(outcomes: Vec<(StatusCode, Value)>) -> Vec<Value> {
    let mut successes = Vec::new();
    for (status, body) in outcomes {
        if status == StatusCode::OK {
            successes.push(body);
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    successes
}

async fn refresh_fails(server: &Server, app: &App, refresh_token: &str) -> bool {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let (status, _) = post_token(server, app.basic(), &form).await;
    status == StatusCode::BAD_REQUEST
}

// catalogue 31, B1, B2: two racers leave the widest window between a loser's read of the
// code and its update; fifty load the database.
#[tokio::test]
async fn code_race_one_winner_whose_tokens_end_revoked() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    for racers in [2, 2, 2, 2, 2, 50] {
        let code = code_for(&browser, &app, "alice").await;
        let rows_before = server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await;
        let form = redeem_form(&app, &code);

        let outcomes = at_once(racers, |_| post_token(&server, app.basic(), &form)).await;

        let winners = winners(outcomes);
        assert_eq!(winners.len(), 1, "{racers} racers");
        let access = winners[0]["access_token"].as_str().expect("access_token");
        let refresh = winners[0]["refresh_token"].as_str().expect("refresh_token");
        assert!(
            server.sesame.authenticate_bearer(access).await.is_err(),
            "a replay must revoke the winner's access token ({racers} racers)"
        );
        assert!(
            refresh_fails(&server, &app, refresh).await,
            "a replay must revoke the winner's refresh token ({racers} racers)"
        );
        let rows_after = server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await;
        assert_eq!(rows_after - rows_before, 1, "one token family per code");
    }
}

// catalogue 37, 164: with no grace window, one refresh wins and the family never has two
// live branches.
#[tokio::test]
async fn refresh_race_one_winner() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let client = App { id, secret };
    for racers in [2, 2, 2, 2, 2, 10] {
        let (_, refresh) = server
            .password_tokens(&client.id, &client.secret, "alice", "pw", "read")
            .await;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];

        let outcomes = at_once(racers, |_| post_token(&server, client.basic(), &form)).await;

        assert_eq!(winners(outcomes).len(), 1, "{racers} racers");
        let live = server
            .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
            .await;
        assert!(
            live <= 1,
            "{live} live refresh tokens after {racers} racers"
        );
        // Revoke what is left so the next round counts only its own family.
        server
            .execute("UPDATE oauth_refresh_tokens SET revoked = TRUE")
            .await;
    }
}

async fn start_device_flow(server: &Server, client_id: &str) -> Value {
    let response = server
        .http
        .post(server.url("/oauth/device/code"))
        .form(&[("client_id", client_id), ("scope", "read")])
        .send()
        .await
        .expect("device authorization");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

/// Looks up `user_code` on the device page and returns the confirmation form's fields.
async fn confirm_form(browser: &Browser, user_code: &str) -> (String, String) {
    let entry = browser.get("/oauth/device").await;
    let confirm = browser
        .post(
            "/oauth/device",
            &[
                ("_csrf", &entry.field("_csrf")),
                ("user_code", user_code),
                ("action", "lookup"),
            ],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    (confirm.field("_csrf"), confirm.field("user_code"))
}

// catalogue 85: after approval, concurrent polls get one token set.
#[tokio::test]
async fn device_poll_race_one_winner() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, _) = server.client(ClientKind::Device, None).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    for racers in [2, 2, 2, 10] {
        let started = start_device_flow(&server, &id).await;
        let user_code = started["user_code"].as_str().expect("user_code");
        let (csrf, code) = confirm_form(&browser, user_code).await;
        let decided = browser
            .post(
                "/oauth/device",
                &[
                    ("_csrf", &csrf),
                    ("user_code", &code),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
        server.clock.advance(6);
        let rows_before = server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await;
        let form = [
            ("grant_type", DEVICE_GRANT),
            (
                "device_code",
                started["device_code"].as_str().expect("code"),
            ),
            ("client_id", id.as_str()),
        ];

        let outcomes = at_once(racers, |_| post_token(&server, None, &form)).await;

        assert_eq!(winners(outcomes).len(), 1, "{racers} racers");
        let rows_after = server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await;
        assert_eq!(rows_after - rows_before, 1, "one token set per device code");
    }
}

// catalogue 166: an approval and a denial from two sessions race; exactly one decision
// counts, and the device gets tokens only when the approval did.
#[tokio::test]
async fn device_approve_deny_race_single_outcome() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, _) = server.client(ClientKind::Device, None).await;
    let approver = Browser::new(&server);
    let denier = Browser::new(&server);
    approver.sign_in("alice", "pw", "/account/tokens").await;
    denier.sign_in("alice", "pw", "/account/tokens").await;
    // Three rounds, because which request wins varies from round to round.
    for _ in 0..3 {
        let started = start_device_flow(&server, &id).await;
        let user_code = started["user_code"].as_str().expect("user_code");
        let approve_form = confirm_form(&approver, user_code).await;
        let deny_form = confirm_form(&denier, user_code).await;
        let decide = |browser: &Browser, (csrf, code): &(String, String), decision: &str| {
            let request = browser
                .http
                .post(format!("{}/oauth/device", browser.base))
                .form(&[
                    ("_csrf", csrf.as_str()),
                    ("user_code", code.as_str()),
                    ("decision", decision),
                ]);
            async move { request.send().await.expect("decision").status() }
        };
        let approval = decide(&approver, &approve_form, "approve");
        let denial = decide(&denier, &deny_form, "deny");

        let (approved, denied) = tokio::join!(approval, denial);

        let winners = [approved, denied]
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count();
        assert_eq!(winners, 1, "approval {approved}, denial {denied}");
        // The loser gets 409 whether its lookup ran before or after the winner committed.
        for status in [approved, denied] {
            let expected = [StatusCode::OK, StatusCode::CONFLICT];
            assert!(expected.contains(&status), "{status}");
        }
        server.clock.advance(6);
        let form = [
            ("grant_type", DEVICE_GRANT),
            (
                "device_code",
                started["device_code"].as_str().expect("code"),
            ),
            ("client_id", id.as_str()),
        ];
        let (status, body) = post_token(&server, None, &form).await;
        if approved == StatusCode::OK {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "access_denied");
        }
    }
}

/// Serves `sesame` on a new loopback port and returns its base URL.
async fn serve(sesame: sesame::Sesame) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let service =
        sesame::router(sesame).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, service).await;
    });
    base
}

// catalogue 178: a spent refresh token stays spent on another node sharing the database, so
// replaying it there is detected as reuse and revokes the family.
#[tokio::test]
async fn spent_refresh_token_refused_by_other_node() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let (_, first) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first.as_str()),
    ];
    let (status, rotated) = post_token(&server, Some((&id, &secret)), &form).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let other_node = sesame::Sesame::open(server.node_config())
        .await
        .expect("second node");
    let other_base = serve(other_node.clone()).await;

    let replay = server
        .http
        .post(format!("{other_base}/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&form)
        .send()
        .await
        .expect("replay");

    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let body: Value = replay.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    let successor = rotated["refresh_token"].as_str().expect("refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", successor),
    ];
    let (status, body) = post_token(&server, Some((&id, &secret)), &form).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the family must be revoked"
    );
    assert_eq!(body["error"], "invalid_grant");
    let access = rotated["access_token"].as_str().expect("access_token");
    assert!(server.sesame.authenticate_bearer(access).await.is_err());
    other_node.close().await;
}

// A neighbour of catalogue 31: the consent form posted several times at once (a double click,
// or a replayed form) yields one code.
#[tokio::test]
async fn consent_race_one_code() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    let consent = browser
        .authorize(&super::code_query(&app, REDIRECT, ""), "alice", "pw")
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let form = [
        ("_csrf", consent.field("_csrf")),
        ("auth_request", consent.field("auth_request")),
        ("decision", "approve".to_owned()),
    ];

    let statuses = at_once(5, |_| {
        let request = browser
            .http
            .post(format!("{}/oauth/authorize", browser.base))
            .form(&form);
        async move { request.send().await.expect("decision").status() }
    })
    .await;

    let redirects = statuses
        .iter()
        .filter(|status| **status == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(redirects, 1, "{statuses:?}");
    for status in &statuses {
        let expected = [StatusCode::SEE_OTHER, StatusCode::BAD_REQUEST];
        assert!(expected.contains(status), "{statuses:?}");
    }
    let codes = server.count("SELECT COUNT(*) FROM oauth_auth_codes").await;
    assert_eq!(codes, 1);
}
