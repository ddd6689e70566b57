//! The client cache at the token endpoint. A client that got a client_credentials token is
//! kept, and a change made to it afterwards by any process or node, with nothing telling this
//! server, must be seen by the next request.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;
use sesame::token::secret::Secret;

use crate::common::Server;
use crate::log_capture;

/// Makes a client with `scopes` and gets two tokens for it: the first puts the client in the
/// cache and the second is issued from there.
async fn cached_client(server: &Server, scopes: Option<&[&str]>) -> (String, String) {
    let (id, secret) = server.client(ClientKind::ClientCredentials, scopes).await;
    server.client_token(&id, &secret, "read").await;
    server.client_token(&id, &secret, "read").await;
    (id, secret)
}

async fn request(server: &Server, id: &str, secret: &str, scope: &str) -> (StatusCode, Value) {
    let form = [("grant_type", "client_credentials"), ("scope", scope)];
    server.token(id, secret, &form).await
}

#[tokio::test]
async fn revoked_client_refused_at_once() {
    let server = Server::start().await;
    let (id, secret) = cached_client(&server, None).await;
    let now = server.sesame.now();
    let revoked = server.sesame.store().revoke_client(&id, now).await;
    assert!(revoked.expect("revoke"));

    let before = server.counts().await;
    let (status, body) = request(&server, &id, &secret, "read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn new_secret_ends_old_one_at_once() {
    let server = Server::start().await;
    let (id, old_secret) = cached_client(&server, None).await;
    let new_secret = Secret::generate().expect("secret");
    log_capture::record("client_secret", new_secret.expose());
    let now = server.sesame.now();
    let store = server.sesame.store();
    let changed = store
        .set_client_secret(&id, &new_secret.stored(), now)
        .await;
    assert!(changed.expect("new secret"));

    let before = server.counts().await;
    let (status, body) = request(&server, &id, &old_secret, "read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(server.counts().await, before);
    let (status, body) = request(&server, &id, new_secret.expose(), "read").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn deleted_client_refused_at_once() {
    let server = Server::start().await;
    let (id, secret) = cached_client(&server, None).await;
    server
        .execute(&format!("DELETE FROM oauth_clients WHERE id = '{id}'"))
        .await;

    let (status, body) = request(&server, &id, &secret, "read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn narrowed_client_refused_at_once() {
    let server = Server::start().await;
    let (id, secret) = cached_client(&server, None).await;
    server
        .execute(&format!(
            "UPDATE oauth_clients SET scopes = '[\"read\"]' WHERE id = '{id}'"
        ))
        .await;
    let (status, body) = request(&server, &id, &secret, "write").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");

    server
        .execute(&format!(
            "UPDATE oauth_clients SET grant_types = '[\"authorization_code\"]' WHERE id = '{id}'"
        ))
        .await;
    let before = server.counts().await;
    let (status, body) = request(&server, &id, &secret, "read").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn widened_client_served_at_once() {
    let server = Server::start().await;
    let (id, secret) = cached_client(&server, Some(&["read"])).await;
    server
        .execute(&format!(
            "UPDATE oauth_clients SET scopes = '[\"read\", \"write\"]' WHERE id = '{id}'"
        ))
        .await;

    let (status, body) = request(&server, &id, &secret, "write").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "write");
}

/// A bcrypt secret moved from Passport is checked on the hashing threads on every request, and
/// a client with one is not kept, so a new bcrypt secret ends the old one at once.
#[tokio::test]
async fn bcrypt_secret_checked_each_time() {
    let server = Server::start().await;
    let (id, _) = server.client(ClientKind::ClientCredentials, None).await;
    let set_bcrypt = |secret: &str| {
        let hash = bcrypt::hash(secret, 4)
            .expect("bcrypt")
            .replacen("$2b$", "$2y$", 1);
        format!("UPDATE oauth_clients SET secret = '{hash}' WHERE id = '{id}'")
    };
    log_capture::record("client_secret", "passport secret one");
    log_capture::record("client_secret", "passport secret two");
    server.execute(&set_bcrypt("passport secret one")).await;
    for _ in 0..2 {
        let (status, body) = request(&server, &id, "passport secret one", "read").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = request(&server, &id, "passport secret two", "read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    server.execute(&set_bcrypt("passport secret two")).await;
    let (status, _) = request(&server, &id, "passport secret one", "read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = request(&server, &id, "passport secret two", "read").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
