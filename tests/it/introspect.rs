//! `POST /oauth/introspect` (RFC 7662).

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::store::ClientKind;

use crate::common::{Reply, Server, decode_parts};

async fn introspect(server: &Server, client: (&str, &str), form: &[(&str, &str)]) -> Reply {
    server
        .post_form("/oauth/introspect", Some(client), form)
        .await
}

fn assert_not_cacheable(reply: &Reply) {
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("pragma"), "no-cache");
}

/// Asserts a 200 whose body is exactly `{"active": false}`.
fn assert_inactive(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.text);
    assert_eq!(reply.json(), json!({"active": false}), "{case}");
    assert_not_cacheable(reply);
}

async fn resource_server(server: &Server, audience: Option<&str>) -> (String, String) {
    let (client, secret) = sesame::install::create_resource_server(&server.sesame, "api", audience)
        .await
        .expect("resource server");
    (client.id, secret.expect("secret").expose().to_owned())
}

#[tokio::test]
async fn owner_sees_active_access_token() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "read write").await;
    let (_, claims) = decode_parts(&token);

    let reply = introspect(&server, (&id, &secret), &[("token", &token)]).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_not_cacheable(&reply);
    let body = reply.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], id);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["sub"], id);
    assert_eq!(body["iss"], server.base);
    assert_eq!(body["aud"], server.base);
    assert_eq!(body["jti"], claims["jti"]);
    assert_eq!(body["exp"], claims["exp"]);
    assert!(body["exp"].is_i64(), "exp is a NumericDate: {body}");
    assert_eq!(body["iat"], claims["iat"]);
    assert_eq!(body["nbf"], claims["iat"]);
    assert!(body.get("username").is_none(), "a client token has no user");
}

#[tokio::test]
async fn user_token_names_user() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let user_id = server.user("alice", "pw").await;
    let (access, _) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;

    let reply = introspect(&server, (&id, &secret), &[("token", &access)]).await;

    let body = reply.json();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["sub"], user_id.to_string());
    assert_eq!(body["scope"], "read");
}

#[tokio::test]
async fn owner_sees_active_refresh_token() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let user_id = server.user("alice", "pw").await;
    let (_, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;

    for hint in [None, Some("refresh_token"), Some("access_token"), Some("x")] {
        let mut form = vec![("token", refresh.as_str())];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let reply = introspect(&server, (&id, &secret), &form).await;
        let body = reply.json();
        assert_eq!(body["active"], true, "{hint:?}: {body}");
        assert_eq!(body["client_id"], id);
        assert_eq!(body["scope"], "read");
        assert_eq!(body["username"], "alice");
        assert_eq!(body["sub"], user_id.to_string());
        assert_eq!(body["iss"], server.base);
        assert!(body["exp"].is_i64());
        assert!(body["iat"].is_i64());
        assert!(body.get("token_type").is_none(), "{body}");
    }
}

#[tokio::test]
async fn invalid_tokens_exactly_inactive() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let revoked = server.client_token(&id, &secret, "").await;
    let reply = server
        .post_form(
            "/oauth/revoke",
            Some((&id, &secret)),
            &[("token", &revoked)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let deleted = server.client_token(&id, &secret, "").await;
    server
        .execute(&format!(
            "DELETE FROM oauth_access_tokens WHERE id = '{}'",
            crate::common::jti(&deleted)
        ))
        .await;
    let (header, _) = revoked.split_once('.').expect("jwt");
    let unknown_jwt = format!("{header}.eyJqdGkiOiJub3BlIn0.c2ln");

    for (case, token) in [
        ("revoked", revoked.as_str()),
        ("row deleted", deleted.as_str()),
        ("unknown string", "no-such-token"),
        ("unknown jwt", unknown_jwt.as_str()),
        ("sql", "x' OR '1'='1"),
    ] {
        let reply = introspect(&server, (&id, &secret), &[("token", token)]).await;
        assert_inactive(&reply, case);
    }
}

#[tokio::test]
async fn expired_tokens_inactive() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;

    server.clock.advance(3600 + 61 + 1);
    let reply = introspect(&server, (&id, &secret), &[("token", &access)]).await;
    assert_inactive(&reply, "expired access token");
    let reply = introspect(&server, (&id, &secret), &[("token", &refresh)]).await;
    assert_eq!(
        reply.json()["active"],
        true,
        "the refresh token lives 30 days"
    );

    server.clock.advance(30 * 24 * 3600);
    let reply = introspect(&server, (&id, &secret), &[("token", &refresh)]).await;
    assert_inactive(&reply, "expired refresh token");
}

#[tokio::test]
async fn spent_and_revoked_refresh_tokens_inactive() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (_, spent) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &spent)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let successor = body["refresh_token"].as_str().expect("refresh_token");

    let reply = introspect(&server, (&id, &secret), &[("token", &spent)]).await;
    assert_inactive(&reply, "spent refresh token");

    let revoked = server
        .post_form(
            "/oauth/revoke",
            Some((&id, &secret)),
            &[("token", successor)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let reply = introspect(&server, (&id, &secret), &[("token", successor)]).await;
    assert_inactive(&reply, "revoked refresh token");
}

#[tokio::test]
async fn revoked_client_and_disabled_user_inactive() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;
    let (observer, observer_secret) = resource_server(&server, None).await;

    server.execute("UPDATE users SET disabled = TRUE").await;
    let reply = introspect(&server, (&id, &secret), &[("token", &access)]).await;
    assert_inactive(&reply, "access token of a disabled user");
    let reply = introspect(&server, (&id, &secret), &[("token", &refresh)]).await;
    assert_inactive(&reply, "refresh token of a disabled user");

    server.execute("UPDATE users SET disabled = FALSE").await;
    server
        .sesame
        .store()
        .revoke_client(&id, server.sesame.now())
        .await
        .expect("revoke");
    let reply = introspect(
        &server,
        (&observer, &observer_secret),
        &[("token", &access)],
    )
    .await;
    assert_inactive(&reply, "access token of a revoked client");

    server
        .execute(&format!("DELETE FROM oauth_clients WHERE id = '{id}'"))
        .await;
    let reply = introspect(
        &server,
        (&observer, &observer_secret),
        &[("token", &access)],
    )
    .await;
    assert_inactive(&reply, "access token of a deleted client");
}

#[tokio::test]
async fn other_client_sees_inactive() {
    let server = Server::start().await;
    let (owner, owner_secret) = server.client(ClientKind::Password, None).await;
    let (other, other_secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&owner, &owner_secret, "alice", "pw", "")
        .await;
    let before = server.counts().await;

    for token in [&access, &refresh] {
        let reply = introspect(&server, (&other, &other_secret), &[("token", token)]).await;
        assert_inactive(&reply, "token of another client");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn resource_server_sees_its_audience() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let user_id = server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;
    let personal = server.pat(user_id, &["read"]).await;
    let (api, api_secret) = resource_server(&server, None).await;
    let (elsewhere, elsewhere_secret) =
        resource_server(&server, Some("https://other-api.example")).await;

    for token in [&access, &personal] {
        let reply = introspect(&server, (&api, &api_secret), &[("token", token)]).await;
        let body = reply.json();
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["username"], "alice");
        assert_ne!(body["client_id"], Value::String(api.clone()));

        let reply = introspect(
            &server,
            (&elsewhere, &elsewhere_secret),
            &[("token", token)],
        )
        .await;
        assert_inactive(&reply, "token for another audience");
    }
    let reply = introspect(&server, (&api, &api_secret), &[("token", &refresh)]).await;
    assert_inactive(&reply, "another client's refresh token");
}

#[tokio::test]
async fn client_authentication_required() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;

    let anonymous = server
        .post_form("/oauth/introspect", None, &[("token", &token)])
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["error"], "invalid_client");
    assert!(
        anonymous
            .header("www-authenticate")
            .starts_with("Basic realm=")
    );
    assert_not_cacheable(&anonymous);
    assert!(anonymous.json().get("active").is_none());

    let wrong = introspect(&server, (&id, "wrong"), &[("token", &token)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_client");
    assert!(wrong.header("www-authenticate").starts_with("Basic"));
    assert_not_cacheable(&wrong);
}

#[tokio::test]
async fn public_client_cannot_introspect() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &[]).await;
    let (_, claims) = decode_parts(&token);
    let personal_client = claims["client_id"].as_str().expect("client_id");

    let reply = server
        .post_form(
            "/oauth/introspect",
            None,
            &[("token", &token), ("client_id", personal_client)],
        )
        .await;

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert!(reply.json().get("active").is_none());
}

#[tokio::test]
async fn malformed_requests_invalid_request() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;

    let missing = introspect(&server, (&id, &secret), &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"], "invalid_request");
    assert_not_cacheable(&missing);

    let repeated = introspect(&server, (&id, &secret), &[("token", "a"), ("token", "b")]).await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST);
    assert_eq!(repeated.json()["error"], "invalid_request");
}

#[tokio::test]
async fn introspection_changes_nothing() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;
    let before = server.counts().await;

    for token in [&access, &refresh, &"garbage".to_owned()] {
        introspect(&server, (&id, &secret), &[("token", token)]).await;
    }

    assert_eq!(server.counts().await, before);
    let live = server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
        .await;
    assert_eq!(live, 1);
}
