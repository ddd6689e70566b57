//! Rate limits per client address and per client, and the sign-in errors that must not tell
//! unknown users from wrong passwords.

use reqwest::StatusCode;
use sesame::config::RateLimit;
use sesame::store::ClientKind;

use crate::common::{Reply, Server, data_dir};

const OFF: RateLimit = RateLimit {
    per_minute: 0,
    burst: 0,
};

/// A limit of `burst` requests at once, refilled at one request a minute.
fn tight(burst: u32) -> RateLimit {
    RateLimit {
        per_minute: 1,
        burst,
    }
}

async fn start_limited(per_address: RateLimit, per_client: RateLimit) -> Server {
    Server::start_with(data_dir(""), |config| {
        config.rate_limit_per_address = per_address;
        config.rate_limit_per_client = per_client;
    })
    .await
}

async fn post(server: &Server, path: &str, forwarded_for: Option<&str>) -> Reply {
    let mut request = server.http.post(server.url(path)).form(&[
        ("client_id", "nobody"),
        ("grant_type", "client_credentials"),
    ]);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    Reply::read(request.send().await.expect("request")).await
}

fn assert_oauth_429(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    let seconds: u64 = reply
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
    assert_eq!(reply.header("cache-control"), "no-store");
}

#[tokio::test]
async fn token_endpoint_limited_per_address() {
    let server = start_limited(tight(3), OFF).await;
    for _ in 0..3 {
        let reply = post(&server, "/oauth/token", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    assert_oauth_429(&post(&server, "/oauth/token", None).await);

    // Each endpoint has its own budget, and endpoints without a limit are not counted.
    let reply = post(&server, "/oauth/device/code", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    let reply = post(&server, "/oauth/revoke", None).await;
    assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn device_code_endpoint_limited() {
    let server = start_limited(tight(2), OFF).await;
    for _ in 0..2 {
        let reply = post(&server, "/oauth/device/code", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    assert_oauth_429(&post(&server, "/oauth/device/code", None).await);
}

#[tokio::test]
async fn pages_answer_429_with_a_page() {
    let server = start_limited(tight(2), OFF).await;
    for path in ["/login", "/oauth/device"] {
        for _ in 0..2 {
            let reply = post(&server, path, None).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path}: {}",
                reply.text
            );
        }
        let reply = post(&server, path, None).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{path}: {}",
            reply.header("content-type")
        );
        assert!(
            reply.text.contains("Too many requests"),
            "{path}: {}",
            reply.text
        );
        assert!(!reply.header("retry-after").is_empty(), "{path}");
    }
    // Showing the sign-in form is not limited.
    let shown = server
        .http
        .get(server.url("/login"))
        .send()
        .await
        .expect("request");
    assert_eq!(shown.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_address_used_only_from_trusted_proxy() {
    let server = Server::start_with(data_dir(""), |config| {
        config.rate_limit_per_address = tight(1);
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("valid")];
    })
    .await;
    let first = post(&server, "/oauth/token", Some("192.0.2.1")).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_oauth_429(&post(&server, "/oauth/token", Some("192.0.2.1")).await);
    let other = post(&server, "/oauth/token", Some("192.0.2.2")).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{}", other.text);

    // Without a trusted proxy the header is ignored, so changing it does not help.
    let server = start_limited(tight(1), OFF).await;
    let first = post(&server, "/oauth/token", Some("192.0.2.1")).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_oauth_429(&post(&server, "/oauth/token", Some("192.0.2.2")).await);
}

#[tokio::test]
async fn token_endpoint_limited_per_client() {
    let server = start_limited(OFF, tight(2)).await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (other_id, other_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let form = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        let reply = server
            .post_form("/oauth/token", Some((&id, &secret)), &form)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let reply = server
        .post_form("/oauth/token", Some((&id, &secret)), &form)
        .await;
    assert_oauth_429(&reply);

    // Failed authentications are not counted against a client, so nobody without its
    // secret can use up its budget: after three wrong secrets the other client still has two
    // requests.
    for _ in 0..3 {
        let reply = server
            .post_form("/oauth/token", Some((&other_id, "wrong")), &form)
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    for _ in 0..2 {
        let reply = server
            .post_form("/oauth/token", Some((&other_id, &other_secret)), &form)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_alike() {
    let server = Server::start().await;
    server.user("alice", "right password").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let mut replies = Vec::new();
    for username in ["alice", "nobody"] {
        let reply = server
            .post_form(
                "/oauth/token",
                Some((&id, &secret)),
                &[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", "wrong password"),
                ],
            )
            .await;
        replies.push(reply);
    }
    assert_eq!(replies[0].status, StatusCode::BAD_REQUEST);
    assert_eq!(replies[0].status, replies[1].status);
    assert_eq!(replies[0].text, replies[1].text);
}

#[tokio::test]
async fn sign_in_page_errors_alike() {
    let server = Server::start().await;
    server.user("alice", "right password").await;
    let mut pages = Vec::new();
    for username in ["alice", "nobody"] {
        let browser = crate::browser::Browser::new(&server);
        let page = browser.sign_in(username, "wrong password", "/").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{username}");
        assert!(
            page.body
                .contains("The user name or password is incorrect."),
            "{username}: {}",
            page.body
        );
        pages.push(page.body.replace(username, "NAME"));
    }
    // Apart from the echoed name and the form's CSRF token, the pages are the same.
    let without_csrf = |body: &str| {
        body.lines()
            .filter(|line| !line.contains("_csrf"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_csrf(&pages[0]), without_csrf(&pages[1]));
}

/// Sends a password grant for `username` with `password` as the password client `client`.
async fn password_grant(
    server: &Server,
    client: &(String, String),
    username: &str,
    password: &str,
) -> Reply {
    server
        .post_form(
            "/oauth/token",
            Some((&client.0, &client.1)),
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

// catalogue 121: repeated wrong passwords for one user through the password grant.
#[tokio::test]
async fn password_guessing_backs_off_per_user() {
    let server = start_limited(OFF, OFF).await;
    server.user("alice", "right password").await;
    server.user("bob", "bob password").await;
    let client = server.client(ClientKind::Password, None).await;
    for _ in 0..5 {
        let reply = password_grant(&server, &client, "alice", "guess").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }

    // The right password is refused during the back-off, so guessing cannot confirm it.
    let blocked = password_grant(&server, &client, "alice", "right password").await;
    assert_oauth_429(&blocked);
    let tokens = server
        .count("SELECT COUNT(*) FROM oauth_access_tokens")
        .await;
    assert_eq!(tokens, 0);

    // Another user of the same client is not locked out by alice's failures.
    let bob = password_grant(&server, &client, "bob", "bob password").await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.text);
}

// A burst of concurrent guesses for one user must not get more checks than the threshold:
// each check waits for the one before it, so it reads that failure.
#[tokio::test]
async fn concurrent_guesses_back_off_per_user() {
    let server = start_limited(OFF, OFF).await;
    server.user("carol", "right password").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let request = server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "carol"),
                ("password", "guess"),
            ])
            .send();
        tasks.spawn(async move { request.await.expect("request").status() });
    }
    let mut checked = 0;
    let mut limited = 0;
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            StatusCode::BAD_REQUEST => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(checked, 5, "{limited} limited");
    assert_eq!(limited, 19);
}

// catalogue 122: one password tried against many user names from one address.
#[tokio::test]
async fn password_spraying_limited_per_address() {
    let server = start_limited(tight(4), OFF).await;
    let client = server.client(ClientKind::Password, None).await;
    for index in 0..4 {
        let reply = password_grant(&server, &client, &format!("user{index}"), "Summer2026").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    let limited = password_grant(&server, &client, "user9", "Summer2026").await;
    assert_oauth_429(&limited);
}

#[tokio::test]
async fn public_client_id_cannot_spend_its_budget() {
    let server = start_limited(OFF, tight(2)).await;
    let (id, _) = server.client(ClientKind::Device, None).await;
    // A public client proves nothing but its id, so anyone could send these.
    for _ in 0..5 {
        let reply = server
            .post_form(
                "/oauth/token",
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", "bogus"),
                    ("client_id", &id),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }
}
