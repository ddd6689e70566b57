//! Concurrent requests share one query for the client and token lookups and queue their
//! writes on SQLite. Each must still get the response for its own credentials, and a change
//! committed before a request must be seen by it.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;
use tokio::task::JoinSet;

use crate::common::{Server, jti};

/// What one concurrent request should get: the status and, when it passes, the `sub`.
struct Expected {
    token: String,
    status: StatusCode,
    sub: Option<String>,
}

#[tokio::test]
async fn concurrent_guard_lookups_stay_separate() {
    let server = Server::start().await;
    let alice = server.user("alice", "alice password").await;
    let bob = server.user("bob", "bob password").await;
    let mut expected = Vec::new();
    for index in 0..12 {
        let user = if index % 2 == 0 { alice } else { bob };
        let token = server.pat(user, &["profile"]).await;
        let revoke = index % 3 == 0;
        if revoke {
            let revoked = server
                .sesame
                .store()
                .revoke_personal_token(&jti(&token), user, server.sesame.now())
                .await
                .expect("revoke");
            assert!(revoked);
        }
        expected.push(Expected {
            token,
            status: if revoke {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            },
            sub: (!revoke).then(|| user.to_string()),
        });
    }
    let mut tasks = JoinSet::new();
    for round in 0..3 {
        for (index, case) in expected.iter().enumerate() {
            let request = server
                .http
                .get(server.url("/oauth/userinfo"))
                .bearer_auth(&case.token)
                .send();
            tasks.spawn(async move {
                let response = request.await.expect("request");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (round, index, status, body)
            });
        }
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (round, index, status, body) = joined.expect("task");
        let case = &expected[index];
        assert_eq!(status, case.status, "round {round}, token {index}: {body}");
        if let Some(sub) = &case.sub {
            assert_eq!(body["sub"], sub.as_str(), "round {round}, token {index}");
        }
        answered += 1;
    }
    assert_eq!(answered, 36);
}

#[tokio::test]
async fn concurrent_client_lookups_stay_separate() {
    let server = Server::start().await;
    let (good, good_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (revoked, revoked_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (other, _) = server.client(ClientKind::ClientCredentials, None).await;
    assert!(
        server
            .sesame
            .store()
            .revoke_client(&revoked, server.sesame.now())
            .await
            .expect("revoke")
    );
    // The right secret of one client presented for another must fail even when both are
    // looked up by the same query.
    let cases = [
        (good.clone(), good_secret.clone(), StatusCode::OK),
        (revoked, revoked_secret, StatusCode::UNAUTHORIZED),
        (other, good_secret.clone(), StatusCode::UNAUTHORIZED),
        (
            "no-such-client".to_owned(),
            good_secret,
            StatusCode::UNAUTHORIZED,
        ),
    ];
    let mut tasks = JoinSet::new();
    for round in 0..8 {
        for (index, (id, secret, _)) in cases.iter().enumerate() {
            let request = server
                .http
                .post(server.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send();
            tasks.spawn(async move {
                let response = request.await.expect("request");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (round, index, status, body)
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (round, index, status, body) = joined.expect("task");
        let (id, _, want) = &cases[index];
        assert_eq!(status, *want, "round {round}, case {index}: {body}");
        if status == StatusCode::OK {
            let token = body["access_token"].as_str().expect("access_token");
            crate::log_capture::record("access_token", token);
            let (_, claims) = crate::common::decode_parts(token);
            assert_eq!(claims["client_id"], id.as_str());
        } else {
            assert_eq!(
                body["error"], "invalid_client",
                "round {round}, case {index}"
            );
        }
    }
}

/// Nothing is cached: a revocation committed before a request is seen by that request, for
/// tokens and for clients, however many requests shared a lookup just before.
#[tokio::test]
async fn next_request_sees_revocation() {
    let server = Server::start().await;
    let user = server.user("carol", "carol password").await;
    for _ in 0..5 {
        let token = server.pat(user, &["profile"]).await;
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let request = server
                .http
                .get(server.url("/oauth/userinfo"))
                .bearer_auth(&token)
                .send();
            tasks.spawn(async move { request.await.expect("request").status() });
        }
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.expect("task"), StatusCode::OK);
        }
        server
            .sesame
            .store()
            .revoke_personal_token(&jti(&token), user, server.sesame.now())
            .await
            .expect("revoke");
        let (status, _, body) = server.get_with("/oauth/userinfo", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "").await;
    server
        .sesame
        .store()
        .revoke_client(&id, server.sesame.now())
        .await
        .expect("revoke client");
    let (status, body) = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// Refresh rotations are write transactions; on SQLite they queue for the write lock inside
/// the process. Many at once must all succeed, each with a new working pair.
#[tokio::test]
async fn concurrent_refresh_rotations_succeed() {
    let server = Server::start().await;
    server.user("dave", "dave password").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let mut refresh_tokens = Vec::new();
    for _ in 0..16 {
        let (status, body) = server
            .token(
                &id,
                &secret,
                &[
                    ("grant_type", "password"),
                    ("username", "dave"),
                    ("password", "dave password"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let refresh = body["refresh_token"].as_str().expect("refresh_token");
        refresh_tokens.push(refresh.to_owned());
    }
    let mut tasks = JoinSet::new();
    for refresh in &refresh_tokens {
        let request = server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .send();
        tasks.spawn(async move {
            let response = request.await.expect("request");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (status, body) = joined.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = body["access_token"].as_str().expect("access_token");
        crate::log_capture::record("access_token", access);
        if let Some(refresh) = body["refresh_token"].as_str() {
            crate::log_capture::record("refresh_token", refresh);
        }
        let (status, _, body) = server.get_with("/oauth/userinfo", access).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// The lookup and writer tasks keep a connection each; closing must not wait for them forever.
#[tokio::test]
async fn close_returns_kept_connections() {
    let server = Server::start().await;
    let user = server.user("erin", "erin password").await;
    let token = server.pat(user, &["profile"]).await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "").await;
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(20), server.sesame.close()).await;
    assert!(
        closed.is_ok(),
        "closing the store waited for the kept connections"
    );
}
