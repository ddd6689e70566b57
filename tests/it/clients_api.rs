//! The account APIs: `/oauth/clients` and `/oauth/tokens`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame::store::{ClientKind, NewAccessToken, NewRefreshToken};
use sesame::token::jwt::{AccessClaims, sign};
use sesame::token::secret::Secret;

use crate::common::{Reply, Server};

async fn account(server: &Server, name: &str) -> (i64, String) {
    let user_id = server.user(name, "pw").await;
    let token = server.pat(user_id, &["sesame:account", "read"]).await;
    (user_id, token)
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    server
        .send_json(method, path, Some(token), body.as_ref())
        .await
}

async fn create(server: &Server, token: &str, body: Value) -> Reply {
    call(server, Method::POST, "/oauth/clients", token, Some(body)).await
}

fn new_client() -> Value {
    json!({"name": "My App", "redirect_uris": ["https://app.example/callback"]})
}

/// Issues an access token and a refresh token for `client_id` to `user_id`, as the
/// authorization code flow does: signed by the server's key, with rows in the database.
async fn seed_tokens(server: &Server, client_id: &str, user_id: i64) -> (String, String) {
    let sesame = &server.sesame;
    let now = sesame.now();
    let key = sesame.signing_key();
    let id = uuid::Uuid::now_v7().to_string();

    let row = NewAccessToken {
        id: id.clone(),
        user_id: Some(user_id),
        client_id: client_id.to_owned(),
        name: None,
        scopes: vec!["read".into()],
        kid: key.kid().to_owned(),
        created_at: now,
        expires_at: now + 3600,
    };
    let claims = AccessClaims {
        iss: server.base.clone(),
        sub: user_id.to_string(),
        aud: server.base.clone(),
        client_id: client_id.to_owned(),
        jti: id.clone(),
        iat: now,
        exp: now + 3600,
        scope: "read".into(),
        scopes: vec!["read".into()],
    };
    let access = sign(&key, &claims).expect("sign");

    let refresh = Secret::generate().expect("secret");
    let refresh_row = NewRefreshToken {
        id: uuid::Uuid::now_v7().to_string(),
        token_hash: refresh.stored(),
        access_token_id: id,
        family_id: uuid::Uuid::now_v7().to_string(),
        client_id: client_id.to_owned(),
        user_id: Some(user_id),
        scopes: vec!["read".into()],
        created_at: now,
        expires_at: now + 86400,
    };

    let store = sesame.store();
    let mut connection = store.pool().acquire().await.expect("connection");
    store
        .insert_access_token(&mut connection, &row)
        .await
        .expect("insert access token");
    store
        .insert_refresh_token(&mut connection, &refresh_row)
        .await
        .expect("insert refresh token");
    (access, refresh.expose().to_owned())
}

/// Checks a client secret by authenticating at the revocation endpoint with a token that
/// does not exist: 200 for a working secret, 401 otherwise.
async fn secret_status(server: &Server, id: &str, secret: &str) -> StatusCode {
    server
        .post_form("/oauth/revoke", Some((id, secret)), &[("token", "none")])
        .await
        .status
}

#[tokio::test]
async fn create_confidential_client() {
    let server = Server::start().await;
    let (user_id, token) = account(&server, "alice").await;

    let reply = create(&server, &token, new_client()).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
    let body = reply.json();
    let id = body["id"].as_str().expect("id");
    let secret = body["secret"].as_str().expect("secret");
    assert_eq!(body["name"], "My App");
    assert_eq!(body["confidential"], true);
    assert_eq!(body["first_party"], false);
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        body["redirect_uris"],
        json!(["https://app.example/callback"])
    );

    let client = server
        .sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("stored");
    assert_eq!(client.user_id, Some(user_id));
    assert!(!client.first_party);
    assert!(!client.personal_access_client);
    assert!(!client.password_client);
    let stored = client.secret_hash.expect("hash");
    assert!(stored.starts_with("sha256:"), "the secret is stored hashed");
    assert_ne!(stored, secret);
    assert_eq!(secret_status(&server, id, secret).await, StatusCode::OK);
}

#[tokio::test]
async fn create_public_client() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let mut body = new_client();
    body["confidential"] = json!(false);

    let reply = create(&server, &token, body).await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["confidential"], false);
    assert!(body["secret"].is_null());
    let id = body["id"].as_str().expect("id");
    let client = server
        .sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("row");
    assert!(client.secret_hash.is_none());
}

#[tokio::test]
async fn secret_never_listed() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let created = create(&server, &token, new_client()).await.json();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();

    let list = call(&server, Method::GET, "/oauth/clients", &token, None).await;

    assert_eq!(list.status, StatusCode::OK);
    let clients = list.json();
    assert_eq!(clients.as_array().expect("array").len(), 1);
    assert_eq!(clients[0]["id"], id);
    assert!(clients[0].get("secret").is_none(), "{clients}");
    assert!(!list.text.contains(&secret));
    assert!(!list.text.contains("sha256:"));
}

#[tokio::test]
async fn redirect_uris_validated() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let before = server.counts().await;

    for uri in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://app.example/callback",
        "https://app.example/callback#fragment",
        "https://user@app.example/callback",
        "/relative",
        "myapp://callback",
    ] {
        let body = json!({"name": "x", "redirect_uris": [uri]});
        let reply = create(&server, &token, body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_redirect_uri", "{uri}");
        assert!(reply.json()["message"].is_string(), "{uri}");
    }
    let empty = create(&server, &token, json!({"name": "x", "redirect_uris": []})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.json()["error"], "invalid_redirect_uri");
    assert_eq!(server.counts().await, before);

    for uri in [
        "http://127.0.0.1:8000/cb",
        "http://[::1]/cb",
        "com.example.app:/oauth2redirect",
    ] {
        let body = json!({"name": "x", "redirect_uris": [uri]});
        let reply = create(&server, &token, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{uri}: {}", reply.text);
    }
}

#[tokio::test]
async fn malformed_bodies_rejected() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let before = server.counts().await;

    for body in [
        json!({"name": "x", "redirect_uris": "https://app.example/cb"}),
        json!({"name": 5, "redirect_uris": ["https://app.example/cb"]}),
        json!({"name": null, "redirect_uris": ["https://app.example/cb"]}),
        json!({"redirect_uris": ["https://app.example/cb"]}),
        json!({"name": "x"}),
        json!({"name": "x", "redirect_uris": [123]}),
        json!({"name": "x", "redirect_uris": ["https://app.example/cb"], "confidential": "no"}),
        json!({"name": "x", "redirect_uris": ["https://app.example/cb"], "first_party": true}),
        json!({"name": "x", "redirect_uris": ["https://app.example/cb"], "grant_types": ["password"]}),
        json!({"name": {"$ne": null}, "redirect_uris": ["https://app.example/cb"]}),
        json!(null),
        json!(123),
        json!([]),
    ] {
        let reply = create(&server, &token, body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_request", "{body}");
    }
    for name in ["", "   ", &"n".repeat(256)] {
        let body = json!({"name": name, "redirect_uris": ["https://app.example/cb"]});
        let reply = create(&server, &token, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(reply.json()["error"], "invalid_request");
    }
    let not_json = server
        .http
        .post(server.url("/oauth/clients"))
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn sql_in_name_stored_literally() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let name = "x'); DROP TABLE oauth_clients;--";
    let body = json!({"name": name, "redirect_uris": ["https://app.example/cb"]});

    let reply = create(&server, &token, body).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["name"], name);
    let list = call(&server, Method::GET, "/oauth/clients", &token, None).await;
    assert_eq!(list.json()[0]["name"], name);
    assert!(server.count("SELECT COUNT(*) FROM oauth_clients").await >= 3);
}

#[tokio::test]
async fn callers_without_account_access_refused() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let without_scope = server.pat(user_id, &["read"]).await;
    let (cc, cc_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let client_token = server.client_token(&cc, &cc_secret, "").await;
    let before = server.counts().await;

    let anonymous = server
        .send_json(Method::POST, "/oauth/clients", None, Some(&new_client()))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");

    let paths = [
        (Method::GET, "/oauth/clients"),
        (Method::POST, "/oauth/clients"),
        (Method::PUT, "/oauth/clients/x"),
        (Method::DELETE, "/oauth/clients/x"),
        (Method::POST, "/oauth/clients/x/secret"),
        (Method::GET, "/oauth/tokens"),
        (Method::DELETE, "/oauth/tokens/x"),
    ];
    for (method, path) in paths {
        let reply = call(
            &server,
            method.clone(),
            path,
            &without_scope,
            Some(new_client()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            reply.json()["error"],
            "insufficient_scope",
            "{method} {path}"
        );
        assert!(reply.header("www-authenticate").contains("sesame:account"));

        let reply = call(
            &server,
            method.clone(),
            path,
            &client_token,
            Some(new_client()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");

        let reply = server
            .send_json(method.clone(), path, None, Some(&new_client()))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn other_users_client_is_404() {
    let server = Server::start().await;
    let (_, alice) = account(&server, "alice").await;
    let (_, bob) = account(&server, "bob").await;
    let created = create(&server, &alice, new_client()).await.json();
    let id = created["id"].as_str().expect("id");
    let secret = created["secret"].as_str().expect("secret");
    let before = server.counts().await;
    let client_before = format!(
        "{:?}",
        server.sesame.store().client(id).await.expect("query")
    );

    let update = json!({"name": "stolen", "redirect_uris": ["https://evil.example/cb"]});
    for (method, path, body) in [
        (Method::PUT, format!("/oauth/clients/{id}"), Some(update)),
        (Method::DELETE, format!("/oauth/clients/{id}"), None),
        (Method::POST, format!("/oauth/clients/{id}/secret"), None),
    ] {
        let reply = call(&server, method.clone(), &path, &bob, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.json()["error"], "not_found");
    }
    let list = call(&server, Method::GET, "/oauth/clients", &bob, None).await;
    assert_eq!(list.json(), json!([]));

    assert_eq!(server.counts().await, before);
    let client = server
        .sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("row");
    assert_eq!(format!("{:?}", Some(&client)), client_before);
    assert_eq!(client.name, "My App");
    assert_eq!(client.redirect_uris, ["https://app.example/callback"]);
    assert!(!client.revoked);
    assert_eq!(secret_status(&server, id, secret).await, StatusCode::OK);
}

#[tokio::test]
async fn update_replaces_name_and_redirect_uris() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let created = create(&server, &token, new_client()).await.json();
    let id = created["id"].as_str().expect("id");
    let path = format!("/oauth/clients/{id}");

    let body = json!({"name": "Renamed", "redirect_uris": ["https://app.example/v2"]});
    let reply = call(&server, Method::PUT, &path, &token, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["name"], "Renamed");
    assert_eq!(
        reply.json()["redirect_uris"],
        json!(["https://app.example/v2"])
    );
    assert!(reply.json().get("secret").is_none());

    let bad = json!({"name": "Bad", "redirect_uris": ["javascript:alert(1)"]});
    let reply = call(&server, Method::PUT, &path, &token, Some(bad)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_redirect_uri");
    let confidential =
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "confidential": false});
    let reply = call(&server, Method::PUT, &path, &token, Some(confidential)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let client = server
        .sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("row");
    assert_eq!(client.name, "Renamed");
    assert_eq!(client.redirect_uris, ["https://app.example/v2"]);
    assert!(client.is_confidential());
}

#[tokio::test]
async fn new_secret_replaces_old() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let created = create(&server, &token, new_client()).await.json();
    let id = created["id"].as_str().expect("id");
    let old = created["secret"].as_str().expect("secret");

    let reply = call(
        &server,
        Method::POST,
        &format!("/oauth/clients/{id}/secret"),
        &token,
        None,
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
    let new = reply.json()["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    let old_reply = server
        .post_form("/oauth/revoke", Some((id, old)), &[("token", "none")])
        .await;
    assert_eq!(old_reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old_reply.json()["error"], "invalid_client");
    assert_eq!(secret_status(&server, id, &new).await, StatusCode::OK);
    let list = call(&server, Method::GET, "/oauth/clients", &token, None).await;
    assert!(!list.text.contains(&new));
}

#[tokio::test]
async fn public_client_has_no_secret_to_replace() {
    let server = Server::start().await;
    let (_, token) = account(&server, "alice").await;
    let mut body = new_client();
    body["confidential"] = json!(false);
    let created = create(&server, &token, body).await.json();
    let id = created["id"].as_str().expect("id");

    let reply = call(
        &server,
        Method::POST,
        &format!("/oauth/clients/{id}/secret"),
        &token,
        None,
    )
    .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_request");
    let client = server
        .sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("row");
    assert!(client.secret_hash.is_none());
}

#[tokio::test]
async fn delete_revokes_client_and_tokens() {
    let server = Server::start().await;
    let (user_id, token) = account(&server, "alice").await;
    let created = create(&server, &token, new_client()).await.json();
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let (access, refresh) = seed_tokens(&server, &id, user_id).await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &access).await;
    assert_eq!(status, StatusCode::OK);

    let path = format!("/oauth/clients/{id}");
    let reply = call(&server, Method::DELETE, &path, &token, None).await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let (status, _, body) = server.get_with("/oauth/userinfo", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let list = call(&server, Method::GET, "/oauth/clients", &token, None).await;
    assert_eq!(list.json(), json!([]));
    let again = call(&server, Method::DELETE, &path, &token, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_list_shows_application_tokens() {
    let server = Server::start().await;
    let (user_id, token) = account(&server, "alice").await;
    let (bob_id, _) = account(&server, "bob").await;
    let created = create(&server, &token, new_client()).await.json();
    let id = created["id"].as_str().expect("id").to_owned();
    let (access, _) = seed_tokens(&server, &id, user_id).await;
    seed_tokens(&server, &id, bob_id).await;
    let (expired, _) = seed_tokens(&server, &id, user_id).await;
    server
        .execute(&format!(
            "UPDATE oauth_access_tokens SET expires_at = 0 WHERE id = '{}'",
            crate::common::jti(&expired)
        ))
        .await;

    let reply = call(&server, Method::GET, "/oauth/tokens", &token, None).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let tokens = reply.json();
    let tokens = tokens.as_array().expect("array");
    assert_eq!(
        tokens.len(),
        1,
        "only alice's live application token: {tokens:?}"
    );
    assert_eq!(tokens[0]["id"], crate::common::jti(&access));
    assert_eq!(tokens[0]["client"]["id"], id);
    assert_eq!(tokens[0]["client"]["name"], "My App");
    assert_eq!(tokens[0]["scopes"], json!(["read"]));
    assert!(
        !reply.text.contains(&access),
        "the token itself is never listed"
    );
}

#[tokio::test]
async fn token_delete_revokes_refresh_family() {
    let server = Server::start().await;
    let (user_id, token) = account(&server, "alice").await;
    let created = create(&server, &token, new_client()).await.json();
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let (access, refresh) = seed_tokens(&server, &id, user_id).await;
    let path = format!("/oauth/tokens/{}", crate::common::jti(&access));

    let reply = call(&server, Method::DELETE, &path, &token, None).await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let (status, _, _) = server.get_with("/oauth/userinfo", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let again = call(&server, Method::DELETE, &path, &token, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_users_token_is_404() {
    let server = Server::start().await;
    let (alice_id, alice) = account(&server, "alice").await;
    let (_, bob) = account(&server, "bob").await;
    let created = create(&server, &alice, new_client()).await.json();
    let id = created["id"].as_str().expect("id").to_owned();
    let (access, _) = seed_tokens(&server, &id, alice_id).await;
    let alice_pat = server.pat(alice_id, &[]).await;
    let before = server.counts().await;

    for target in [crate::common::jti(&access), crate::common::jti(&alice_pat)] {
        let path = format!("/oauth/tokens/{target}");
        let reply = call(&server, Method::DELETE, &path, &bob, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let own_pat = format!("/oauth/tokens/{}", crate::common::jti(&alice_pat));
    let reply = call(&server, Method::DELETE, &own_pat, &alice, None).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "personal tokens have their own API"
    );

    assert_eq!(server.counts().await, before);
    let (status, _, _) = server.get_with("/oauth/userinfo", &access).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.get_with("/oauth/userinfo", &alice_pat).await;
    assert_eq!(status, StatusCode::OK);
}
