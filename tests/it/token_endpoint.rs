//! `POST /oauth/token`: grants, client authentication and malformed requests.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use crate::common::{Server, data_dir, decode_parts};

async fn raw_token(
    server: &Server,
    body: impl Into<reqwest::Body>,
    content_type: &str,
    basic: Option<(&str, &str)>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .post(server.url("/oauth/token"))
        .header("content-type", content_type)
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn client_credentials_issues_signed_token() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    let (header, claims) = decode_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], server.sesame.signing_key().kid());
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["aud"], server.base);
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scopes"], serde_json::json!(["read"]));
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        1
    );
}

#[tokio::test]
async fn body_credentials_accepted() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (status, _, json) = raw_token(&server, body, FORM, None).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn token_response_not_cacheable() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (status, headers, _) = raw_token(
        &server,
        "grant_type=client_credentials",
        FORM,
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

#[tokio::test]
async fn wrong_secret_basic_is_401_with_challenge() {
    let server = Server::start().await;
    let (id, _) = server.client(ClientKind::ClientCredentials, None).await;
    let before = server.counts().await;
    let (status, headers, body) = raw_token(
        &server,
        "grant_type=client_credentials",
        FORM,
        Some((&id, "wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let challenge = headers["www-authenticate"].to_str().expect("ascii");
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn missing_credentials_is_401_with_challenge() {
    let server = Server::start().await;
    let before = server.counts().await;
    for path in ["/oauth/token", "/oauth/device/code"] {
        let response = server
            .post_form(path, None, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.json()["error"], "invalid_client", "{path}");
        let challenge = response.header("www-authenticate");
        assert!(challenge.starts_with("Basic realm="), "{path}: {challenge}");
        assert_eq!(response.header("cache-control"), "no-store", "{path}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn wrong_secret_in_body_is_401() {
    let server = Server::start().await;
    let (id, _) = server.client(ClientKind::ClientCredentials, None).await;
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret=nope");
    let (status, _, json) = raw_token(&server, body, FORM, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"], "invalid_client");
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let server = Server::start().await;
    let (status, _, body) = raw_token(
        &server,
        "grant_type=client_credentials",
        FORM,
        Some(("' OR '1'='1", "x")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn missing_client_is_invalid_client() {
    let server = Server::start().await;
    let (status, _, body) = raw_token(&server, "grant_type=client_credentials", FORM, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn revoked_client_rejected() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let (other_id, other_secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&other_id, &other_secret, "read").await;
    assert!(
        server
            .sesame
            .store()
            .revoke_client(&id, server.sesame.now())
            .await
            .expect("revoke")
    );
    let before = server.counts().await;
    let (status, body) = server
        .token(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn unknown_grant_type_unsupported() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "read").await;
    let before = server.counts().await;
    for grant in ["implicit", "urn:example:grant", "CLIENT_CREDENTIALS"] {
        let (status, body) = server.token(&id, &secret, &[("grant_type", grant)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grant}");
        assert_eq!(body["error"], "unsupported_grant_type", "{grant}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn missing_or_empty_grant_type_invalid_request() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "read").await;
    let before = server.counts().await;
    for body in ["", "grant_type=", "scope=read"] {
        let (status, _, json) = raw_token(&server, body, FORM, Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(json["error"], "invalid_request", "{body:?}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn unknown_scope_invalid_scope() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let before = server.counts().await;
    for scope in [
        "admin",
        "READ",
        "read  write",
        "read\twrite",
        "*",
        "r\u{0435}ad",
    ] {
        let (status, body) = server
            .token(
                &id,
                &secret,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{scope:?}");
        assert_eq!(body["error"], "invalid_scope", "{scope:?}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn scope_outside_client_allowance_rejected() {
    let server = Server::start().await;
    let (id, secret) = server
        .client(ClientKind::ClientCredentials, Some(&["read"]))
        .await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "write")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn account_scope_refused_to_third_party_client() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "sesame:account"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn duplicate_parameters_invalid_request() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let before = server.counts().await;
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials",
        "grant_type=client_credentials&scope=read&scope=write",
    ] {
        let (status, _, json) = raw_token(&server, body, FORM, Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], "invalid_request", "{body}");
    }
    let body = format!(
        "grant_type=client_credentials&client_id={id}&client_id={id}&client_secret={secret}"
    );
    let (status, _, json) = raw_token(&server, body, FORM, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn basic_and_body_secret_together_rejected() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let body = format!("grant_type=client_credentials&client_secret={secret}");
    let (status, _, json) = raw_token(&server, body, FORM, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn malformed_bodies_invalid_request() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "read").await;
    let before = server.counts().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"grant_type=client_credentials&scope=%zz".to_vec(), FORM),
        (b"grant_type=client_credentials&scope=%".to_vec(), FORM),
        (
            b"grant_type=client_credentials&scope=\xff\xfe".to_vec(),
            FORM,
        ),
        (b"grant_type=client_credentials&scope=%C3%28".to_vec(), FORM),
        (
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            "application/json",
        ),
        (b"grant_type=client_credentials".to_vec(), "text/plain"),
    ];
    for (body, content_type) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, headers, json) =
            raw_token(&server, body, content_type, Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}");
        assert_eq!(json["error"], "invalid_request", "{shown}");
        assert_eq!(headers["cache-control"], "no-store", "{shown}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn oversize_body_is_413() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    server.client_token(&id, &secret, "read").await;
    let before = server.counts().await;
    let body = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(200 * 1024)
    );
    let (status, _, json) = raw_token(&server, body, FORM, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"], "invalid_request");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn basic_id_with_colon_is_form_decoded() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .header("authorization", format!("Basic {encoded}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // "a%3Ab" names the client "a:b", which does not exist.
    let encoded = base64::engine::general_purpose::STANDARD.encode("a%3Ab:secret");
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .header("authorization", format!("Basic {encoded}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn password_grant_issues_refresh_token() {
    let server = Server::start().await;
    let user_id = server.user("alice", "correct horse").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "correct horse"),
        ("scope", "read"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], user_id.to_string());
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM oauth_refresh_tokens")
        .fetch_one(server.sesame.store().pool())
        .await
        .expect("row");
    assert!(stored.starts_with("sha256:"));
    assert!(!stored.contains(body["refresh_token"].as_str().expect("token")));
}

#[tokio::test]
async fn password_grant_wrong_credentials_invalid_grant() {
    let server = Server::start().await;
    server.user("alice", "correct horse").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;
    for (username, password) in [
        ("alice", "wrong"),
        ("nobody", "correct horse"),
        ("admin'--", "x"),
    ] {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        let (status, body) = server.token(&id, &secret, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{username}");
        assert_eq!(body["error"], "invalid_grant", "{username}");
        assert_eq!(
            body["error_description"],
            "the user credentials are invalid"
        );
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn missing_grant_parameters_invalid_request() {
    let server = Server::start().await;
    let (id, secret, _) = password_tokens(&server, "read").await;
    let before = server.counts().await;
    let cases: [&[(&str, &str)]; 4] = [
        &[("grant_type", "password"), ("username", "alice")],
        &[("grant_type", "password"), ("password", "pw")],
        &[("grant_type", "refresh_token")],
        &[("grant_type", "refresh_token"), ("refresh_token", "")],
    ];
    for form in cases {
        let (status, body) = server.token(&id, &secret, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(body["error"], "invalid_request", "{form:?}: {body}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn password_grant_disabled_user_refused() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    server.execute("UPDATE users SET disabled = TRUE").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "pw"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn password_grant_needs_password_client() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "pw"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn password_grant_can_be_disabled() {
    let server = Server::start_with(data_dir("password_grant = false\n"), |_| {}).await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "pw"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
}

async fn password_tokens(server: &Server, scope: &str) -> (String, String, Value) {
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "pw"),
        ("scope", scope),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (id, secret, body)
}

#[tokio::test]
async fn refresh_rotates_and_old_token_refused() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "read write").await;
    let old = first["refresh_token"].as_str().expect("refresh");
    let (status, second) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", old)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "read write");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", old)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

/// Introspects `token` as the client that owns it and returns the response body.
async fn introspect(server: &Server, id: &str, secret: &str, token: &str) -> Value {
    let reply = server
        .post_form("/oauth/introspect", Some((id, secret)), &[("token", token)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

#[tokio::test]
async fn refresh_reuse_revokes_family() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "profile").await;
    let old = first["refresh_token"].as_str().expect("refresh");
    let (_, second) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", old)],
        )
        .await;
    let new_access = second["access_token"].as_str().expect("access");
    let new_refresh = second["refresh_token"].as_str().expect("refresh");
    let (status, _, _) = server.get_with("/oauth/userinfo", new_access).await;
    assert_eq!(status, StatusCode::OK);
    for token in [new_access, new_refresh] {
        let reply = introspect(&server, &id, &secret, token).await;
        assert_eq!(reply["active"], true, "before the replay: {reply}");
    }

    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", old)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    for (name, token) in [("access", new_access), ("refresh", new_refresh)] {
        let reply = introspect(&server, &id, &secret, token).await;
        assert_eq!(
            reply,
            serde_json::json!({"active": false}),
            "new {name} token"
        );
    }
    let (status, _, body) = server.get_with("/oauth/userinfo", new_access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", new_refresh),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_revokes_previous_access_token() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "").await;
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            first["refresh_token"].as_str().expect("rt"),
        ),
    ];
    let (status, _) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .get_with(
            "/oauth/userinfo",
            first["access_token"].as_str().expect("at"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_narrower_scope_keeps_grant() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "read write").await;
    let rt = first["refresh_token"].as_str().expect("rt");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("scope", "read"),
    ];
    let (status, second) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "read");
    let rt = second["refresh_token"].as_str().expect("rt");
    let (status, third) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(third["scope"], "read write");
}

#[tokio::test]
async fn refresh_wider_scope_invalid_scope() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "read").await;
    let rt = first["refresh_token"].as_str().expect("rt");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("scope", "read write"),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope");
    // The failed attempt did not spend the token.
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (status, _) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_by_other_client_refused() {
    let server = Server::start().await;
    let (_, _, first) = password_tokens(&server, "").await;
    let (other_id, other_secret) = server.client(ClientKind::Password, None).await;
    let rt = first["refresh_token"].as_str().expect("rt");
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (status, body) = server.token(&other_id, &other_secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_garbage_token_invalid_grant() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    for token in ["x", "' UNION SELECT 1 --", &"a".repeat(4000)] {
        let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
        let (status, body) = server.token(&id, &secret, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
}

#[tokio::test]
async fn refresh_expired_token_refused() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "").await;
    server.clock.advance(31 * 24 * 3600);
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            first["refresh_token"].as_str().expect("rt"),
        ),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_row_of_deleted_access_token_still_works() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "").await;
    server.execute("DELETE FROM oauth_access_tokens").await;
    let form = [
        ("grant_type", "refresh_token"),
        (
            "refresh_token",
            first["refresh_token"].as_str().expect("rt"),
        ),
    ];
    let (status, body) = server.token(&id, &secret, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn concurrent_refresh_has_one_winner() {
    let server = Server::start().await;
    let (id, secret, first) = password_tokens(&server, "").await;
    let rt = first["refresh_token"].as_str().expect("rt").to_owned();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (http, url, id, secret, rt, barrier) = (
            server.http.clone(),
            server.url("/oauth/token"),
            id.clone(),
            secret.clone(),
            rt.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            let response = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("request");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let mut successes = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.expect("task");
        if status == StatusCode::OK {
            successes.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert!(successes.len() <= 1, "{} successes", successes.len());
    let live = server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens WHERE revoked = FALSE")
        .await;
    assert!(live <= 1, "{live} live refresh tokens");
}
