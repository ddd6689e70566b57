//! `POST /oauth/revoke` (RFC 7009).

use reqwest::StatusCode;
use sesame::store::ClientKind;

use crate::common::{Reply, Server, decode_parts, jti};

async fn revoke(server: &Server, client: (&str, &str), form: &[(&str, &str)]) -> Reply {
    server.post_form("/oauth/revoke", Some(client), form).await
}

fn assert_ok_empty(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.is_empty(), "body: {}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
}

/// Creates a password client and a user, and returns the client's credentials and first
/// access and refresh tokens.
async fn password_setup(server: &Server) -> (String, String, String, String) {
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;
    (id, secret, access, refresh)
}

#[tokio::test]
async fn access_token_revoked_and_rejected() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "read").await;
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());

    let reply = revoke(&server, (&id, &secret), &[("token", &token)]).await;

    assert_ok_empty(&reply);
    let row = jti(&token);
    assert_eq!(server.flag("oauth_access_tokens", &row, "revoked").await, 1);
    let (status, challenge, body) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

#[tokio::test]
async fn refresh_token_revokes_family_and_access_tokens() {
    let server = Server::start().await;
    let (id, secret, first_access, first_refresh) = password_setup(&server).await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first_refresh),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    let reply = revoke(
        &server,
        (&id, &secret),
        &[("token", &refresh), ("token_type_hint", "refresh_token")],
    )
    .await;

    assert_ok_empty(&reply);
    let (status, _, _) = server.get_with("/oauth/userinfo", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = server.get_with("/oauth/userinfo", &first_access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let live = server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
        .await;
    assert_eq!(live, 0);
    let live = server
        .count("SELECT COUNT(*) FROM oauth_access_tokens WHERE revoked = FALSE")
        .await;
    assert_eq!(live, 0);
}

#[tokio::test]
async fn wrong_hint_still_revokes() {
    let server = Server::start().await;
    let (id, secret, access, refresh) = password_setup(&server).await;

    let reply = revoke(
        &server,
        (&id, &secret),
        &[("token", &access), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_ok_empty(&reply);
    assert_eq!(
        server
            .flag("oauth_access_tokens", &jti(&access), "revoked")
            .await,
        1
    );

    let reply = revoke(
        &server,
        (&id, &secret),
        &[("token", &refresh), ("token_type_hint", "access_token")],
    )
    .await;
    assert_ok_empty(&reply);
    let live = server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
        .await;
    assert_eq!(live, 0);
}

#[tokio::test]
async fn unknown_hint_ignored() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;

    let reply = revoke(
        &server,
        (&id, &secret),
        &[("token", &token), ("token_type_hint", "foo")],
    )
    .await;

    assert_ok_empty(&reply);
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
}

#[tokio::test]
async fn unknown_garbage_and_revoked_tokens_answer_200() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    assert_ok_empty(&revoke(&server, (&id, &secret), &[("token", &token)]).await);
    let before = server.counts().await;

    let (header, _) = token.split_once('.').expect("jwt");
    let unknown_jwt = format!("{header}.eyJqdGkiOiJub3BlIn0.c2ln");
    for candidate in [
        token.as_str(),
        "garbage",
        "a.b.c",
        unknown_jwt.as_str(),
        "x' OR '1'='1",
        "'; DROP TABLE oauth_access_tokens; --",
        &"z".repeat(4000),
    ] {
        let reply = revoke(&server, (&id, &secret), &[("token", candidate)]).await;
        assert_ok_empty(&reply);
    }
    // A NUL byte makes any form parameter malformed, before the token is looked at.
    let reply = revoke(&server, (&id, &secret), &[("token", "\u{0}")]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn expired_token_answers_200() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    server.clock.advance(3600 + 120);

    let reply = revoke(&server, (&id, &secret), &[("token", &token)]).await;

    assert_ok_empty(&reply);
}

#[tokio::test]
async fn other_clients_access_token_refused() {
    let server = Server::start().await;
    let (owner, owner_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (other, other_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&owner, &owner_secret, "").await;
    let before = server.counts().await;

    let reply = revoke(&server, (&other, &other_secret), &[("token", &token)]).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "unauthorized_client");
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(server.counts().await, before);
    assert_eq!(
        server
            .flag("oauth_access_tokens", &jti(&token), "revoked")
            .await,
        0
    );
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());

    let reply = revoke(&server, (&owner, &owner_secret), &[("token", &token)]).await;
    assert_ok_empty(&reply);
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
}

#[tokio::test]
async fn other_clients_refresh_token_refused() {
    let server = Server::start().await;
    let (owner, owner_secret, access, refresh) = password_setup(&server).await;
    let (other, other_secret) = server.client(ClientKind::Password, None).await;

    let reply = revoke(&server, (&other, &other_secret), &[("token", &refresh)]).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "unauthorized_client");
    let live = server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
        .await;
    assert_eq!(live, 1);
    assert!(server.sesame.authenticate_bearer(&access).await.is_ok());
    let (status, body) = server
        .token(
            &owner,
            &owner_secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn client_authentication_required() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let before = server.counts().await;

    let anonymous = server
        .post_form("/oauth/revoke", None, &[("token", &token)])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"], "invalid_client");
    assert!(
        anonymous
            .header("www-authenticate")
            .starts_with("Basic realm="),
        "{:?}",
        anonymous.headers
    );
    assert_eq!(anonymous.header("cache-control"), "no-store");

    let wrong_basic = revoke(&server, (&id, "wrong"), &[("token", &token)]).await;
    assert_eq!(wrong_basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_basic.json()["error"], "invalid_client");
    assert!(wrong_basic.header("www-authenticate").starts_with("Basic"));

    let wrong_body = server
        .post_form(
            "/oauth/revoke",
            None,
            &[
                ("token", &token),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    assert_eq!(wrong_body.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_body.json()["error"], "invalid_client");

    assert_eq!(server.counts().await, before);
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());
}

#[tokio::test]
async fn body_credentials_accepted() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;

    let reply = server
        .post_form(
            "/oauth/revoke",
            None,
            &[
                ("token", &token),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;

    assert_ok_empty(&reply);
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
}

#[tokio::test]
async fn revoked_client_cannot_revoke() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    server
        .sesame
        .store()
        .revoke_client(&id, server.sesame.now())
        .await
        .expect("revoke client");

    let reply = revoke(&server, (&id, &secret), &[("token", &token)]).await;

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert_eq!(
        server
            .flag("oauth_access_tokens", &jti(&token), "revoked")
            .await,
        0
    );
}

#[tokio::test]
async fn malformed_requests_invalid_request() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let before = server.counts().await;

    let missing = revoke(
        &server,
        (&id, &secret),
        &[("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"], "invalid_request");

    let empty = revoke(&server, (&id, &secret), &[("token", "")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.json()["error"], "invalid_request");

    let repeated = revoke(
        &server,
        (&id, &secret),
        &[("token", &token), ("token", "x")],
    )
    .await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST);
    assert_eq!(repeated.json()["error"], "invalid_request");

    let json = server
        .http
        .post(server.url("/oauth/revoke"))
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"token": token}))
        .send()
        .await
        .expect("request");
    let json = Reply::read(json).await;
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert_eq!(json.json()["error"], "invalid_request");
    assert_eq!(json.header("cache-control"), "no-store");

    assert_eq!(server.counts().await, before);
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());
}

#[tokio::test]
async fn forged_token_naming_real_row_ignored() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let (_, claims) = decode_parts(&token);
    let (attacker, _) =
        sesame::keys::SigningKey::generate(sesame::keys::KeyAlgorithm::Es256, 2048).expect("key");
    let forged_claims: sesame::token::jwt::AccessClaims =
        serde_json::from_value(claims).expect("claims");
    let forged = sesame::token::jwt::sign(&attacker, &forged_claims).expect("sign");

    let reply = revoke(&server, (&id, &secret), &[("token", &forged)]).await;

    assert_ok_empty(&reply);
    assert_eq!(
        server
            .flag("oauth_access_tokens", &jti(&token), "revoked")
            .await,
        0
    );
}

#[tokio::test]
async fn public_client_revokes_own_token() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["read"]).await;
    let (_, claims) = decode_parts(&token);
    let personal_client = claims["client_id"].as_str().expect("client_id").to_owned();

    let reply = server
        .post_form(
            "/oauth/revoke",
            None,
            &[("token", &token), ("client_id", &personal_client)],
        )
        .await;

    assert_ok_empty(&reply);
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn concurrent_revoke_and_refresh_leave_nothing_live() {
    for _ in 0..5 {
        let server = Server::start().await;
        let (id, secret, _, refresh) = password_setup(&server).await;

        let revoke_form = [("token", refresh.as_str())];
        let refresh_form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];
        let revocation = revoke(&server, (&id, &secret), &revoke_form);
        let rotation = server.token(&id, &secret, &refresh_form);
        let (revoked, (status, body)) = tokio::join!(revocation, rotation);

        assert_ok_empty(&revoked);
        if status == StatusCode::OK {
            let access = body["access_token"].as_str().expect("access_token");
            assert!(server.sesame.authenticate_bearer(access).await.is_err());
            let successor = body["refresh_token"].as_str().expect("refresh_token");
            let (status, _) = server
                .token(
                    &id,
                    &secret,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", successor),
                    ],
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
        let live = server
            .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
            .await;
        assert_eq!(live, 0);
    }
}
