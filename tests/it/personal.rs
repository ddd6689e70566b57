//! Personal access tokens over HTTP: `/oauth/personal-access-tokens`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::store::ClientKind;

use crate::common::{Server, decode_parts};

async fn account_token(server: &Server, name: &str) -> (i64, String) {
    let user_id = server.user(name, "pw").await;
    let token = server.pat(user_id, &["sesame:account", "read"]).await;
    (user_id, token)
}

async fn create(server: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url("/oauth/personal-access-tokens"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn create_list_and_revoke() {
    let server = Server::start().await;
    let (user_id, token) = account_token(&server, "alice").await;
    let (status, created) =
        create(&server, &token, json!({"name": "ci", "scopes": ["read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let new_token = created["accessToken"].as_str().expect("accessToken");
    let id = created["token"]["id"].as_str().expect("id");
    assert_eq!(created["token"]["name"], "ci");
    let (_, claims) = decode_parts(new_token);
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["scopes"], json!(["read"]));

    let (status, _, list) = server
        .get_with("/oauth/personal-access-tokens", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(ids.contains(&id), "{list}");
    assert!(
        list.to_string().find(new_token).is_none(),
        "list must not show tokens"
    );

    let response = server
        .http
        .delete(server.url(&format!("/oauth/personal-access-tokens/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _, body) = server.get_with("/oauth/userinfo", new_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn account_scope_required() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["read"]).await;
    let (status, challenge, _) = server
        .get_with("/oauth/personal-access-tokens", &token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains("sesame:account"), "{challenge}");
    let (status, _) = create(&server, &token, json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn anonymous_request_is_401() {
    let server = Server::start().await;
    let response = server
        .http
        .get(server.url("/oauth/personal-access-tokens"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn client_principal_refused() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let (status, challenge, body) = server
        .get_with("/oauth/personal-access-tokens", &token)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn cannot_mint_more_scopes_than_held() {
    let server = Server::start().await;
    let (_, token) = account_token(&server, "alice").await;
    let before = server.counts().await;
    let response = server
        .http
        .post(server.url("/oauth/personal-access-tokens"))
        .bearer_auth(&token)
        .json(&json!({"name": "x", "scopes": ["read", "write"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\"")
            && challenge.ends_with("scope=\"write\""),
        "the challenge names the scope the token lacks: {challenge}"
    );
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["error"], "insufficient_scope");
    let (status, body) = create(&server, &token, json!({"name": "x", "scopes": ["*"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"], "invalid_scope",
        "an unknown scope is invalid, not withheld"
    );
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn bearer_cannot_pass_on_account_scope() {
    let server = Server::start().await;
    let (_, token) = account_token(&server, "alice").await;
    let before = server.counts().await;
    let body = json!({"name": "x", "scopes": ["read", "sesame:account"]});

    let (status, response) = create(&server, &token, body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(response["error"], "invalid_scope");
    assert!(
        response["message"]
            .as_str()
            .is_some_and(|message| message.contains("sesame token")),
        "the message names the command that can: {response}"
    );
    assert_eq!(server.counts().await, before);
    let (status, response) =
        create(&server, &token, json!({"name": "x", "scopes": ["read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
}

#[tokio::test]
async fn other_users_token_not_revocable() {
    let server = Server::start().await;
    let (_, alice) = account_token(&server, "alice").await;
    let (bob_id, _) = account_token(&server, "bob").await;
    let bobs = server
        .sesame
        .create_token(bob_id, "bob's", &[])
        .await
        .expect("pat");
    let response = server
        .http
        .delete(server.url(&format!("/oauth/personal-access-tokens/{}", bobs.token.id)))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, _, _) = server.get_with("/oauth/userinfo", &bobs.access_token).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, list) = server
        .get_with("/oauth/personal-access-tokens", &alice)
        .await;
    assert!(
        !list.to_string().contains(&bobs.token.id),
        "alice sees bob's token"
    );
}

#[tokio::test]
async fn malformed_create_bodies_rejected() {
    let server = Server::start().await;
    let (_, token) = account_token(&server, "alice").await;
    let before = server.counts().await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(300)}),
        json!({"name": 5}),
        json!({"name": "x", "extra": 1}),
    ] {
        let (status, response) = create(&server, &token, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {response}");
        assert_eq!(response["error"], "invalid_request", "{body}");
    }
    let response = server
        .http
        .post(server.url("/oauth/personal-access-tokens"))
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn library_create_token_validates_input() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let sesame = &server.sesame;
    assert!(matches!(
        sesame.create_token(user_id, "", &[]).await,
        Err(sesame::Error::InvalidInput(_))
    ));
    assert!(matches!(
        sesame.create_token(user_id, "x", &["admin"]).await,
        Err(sesame::Error::UnknownScope(_))
    ));
    assert!(matches!(
        sesame.create_token(user_id + 100, "x", &[]).await,
        Err(sesame::Error::NotFound { .. })
    ));
    let token = sesame
        .create_token(user_id, "x", &["read", "read"])
        .await
        .expect("pat");
    assert_eq!(token.token.scopes, ["read"]);
    assert_eq!(
        token.token.expires_at - token.token.created_at,
        365 * 24 * 3600
    );
}
