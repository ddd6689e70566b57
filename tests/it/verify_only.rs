//! The verify-only guard (`VerifiedToken`): it applies the signature and claim checks of
//! `Bearer` and reads no token row, so a revoked token keeps passing until it expires.

use axum::routing::get;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::store::ClientKind;
use sesame::token::jwt::{AccessClaims, sign};
use sesame::{Bearer, BearerError, ScopeList, VerifiedToken};

use crate::common::{Reply, Server, decode_parts, jti};

struct ReadScope;
impl ScopeList for ReadScope {
    const SCOPES: &'static [&'static str] = &["read"];
}

struct ReadOrWrite;
impl ScopeList for ReadOrWrite {
    const SCOPES: &'static [&'static str] = &["read", "write"];
}

fn describe(token: &VerifiedToken) -> Value {
    json!({
        "subject": token.subject,
        "client_id": token.client_id,
        "scopes": token.scopes,
        "token_id": token.token_id,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
    })
}

/// Serves an application on the server's Sesame with verify-only routes and one `Bearer`
/// route, and returns its base URL.
async fn guarded_app(server: &Server) -> String {
    let app = axum::Router::new()
        .route(
            "/verified",
            get(|token: VerifiedToken| async move { axum::Json(describe(&token)) }),
        )
        .route(
            "/verified/read",
            get(|token: VerifiedToken| async move {
                token.require_all(ReadScope::SCOPES)?;
                Ok::<_, BearerError>(axum::Json(describe(&token)))
            }),
        )
        .route(
            "/verified/read-or-write",
            get(|token: VerifiedToken| async move {
                token.require_any(ReadOrWrite::SCOPES)?;
                Ok::<_, BearerError>(axum::Json(describe(&token)))
            }),
        )
        .route(
            "/bearer",
            get(|bearer: Bearer| async move { bearer.token_id }),
        )
        .with_state(server.sesame.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

async fn call(server: &Server, url: String, token: Option<&str>) -> Reply {
    let mut request = server.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Reply::read(request.send().await.expect("request")).await
}

/// Claims like the server's own tokens, valid for ten minutes from the server's clock.
fn claims_for(server: &Server, sub: &str, client_id: &str, jti: &str) -> AccessClaims {
    let now = server.sesame.now();
    AccessClaims {
        iss: server.base.clone(),
        sub: sub.to_owned(),
        aud: server.base.clone(),
        client_id: client_id.to_owned(),
        jti: jti.to_owned(),
        iat: now,
        exp: now + 600,
        scope: "read".to_owned(),
        scopes: vec!["read".to_owned()],
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn valid_token_passes_with_claims() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["profile", "read"]).await;
    let (_, claims) = decode_parts(&token);

    let reply = call(&server, format!("{base}/verified/read"), Some(&token)).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["subject"], user_id.to_string());
    assert_eq!(body["client_id"], claims["client_id"]);
    assert_eq!(body["scopes"], json!(["profile", "read"]));
    assert_eq!(body["token_id"], jti(&token));
    assert_eq!(body["issued_at"], claims["iat"]);
    assert_eq!(body["expires_at"], claims["exp"]);
}

#[tokio::test]
async fn revoked_token_passes_only_verify_only() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "read").await;
    let before = call(&server, format!("{base}/bearer"), Some(&token)).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);

    let revoked = server
        .post_form("/oauth/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);

    let bearer = call(&server, format!("{base}/bearer"), Some(&token)).await;
    let verified = call(&server, format!("{base}/verified/read"), Some(&token)).await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED, "{}", bearer.text);
    assert_eq!(bearer.json()["error"], "invalid_token");
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(verified.json()["token_id"], jti(&token));
}

#[tokio::test]
async fn revoked_client_and_disabled_user_pass() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let user_id = server.user("alice", "pw").await;
    let user_token = server.pat(user_id, &["read"]).await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let client_token = server.client_token(&id, &secret, "read").await;

    server
        .sesame
        .store()
        .revoke_client(&id, server.sesame.now())
        .await
        .expect("client revoked");
    server
        .sesame
        .disable_user("alice")
        .await
        .expect("user disabled");

    for token in [&client_token, &user_token] {
        let bearer = call(&server, format!("{base}/bearer"), Some(token)).await;
        let verified = call(&server, format!("{base}/verified"), Some(token)).await;
        assert_eq!(bearer.status, StatusCode::UNAUTHORIZED, "{}", bearer.text);
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    }
}

#[tokio::test]
async fn closed_database_does_not_stop_guard() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["read"]).await;
    let (attacker, _) =
        sesame::keys::SigningKey::generate(sesame::keys::KeyAlgorithm::Es256, 0).expect("key");
    let unknown_kid = sign(&attacker, &claims_for(&server, "1", "c", "t")).expect("sign");

    server.sesame.close().await;

    let bearer = call(&server, format!("{base}/bearer"), Some(&token)).await;
    let verified = call(&server, format!("{base}/verified/read"), Some(&token)).await;
    // An unknown kid makes the verifier try to reload the keys, which fails here, and the
    // token stays rejected.
    let unknown = call(&server, format!("{base}/verified"), Some(&unknown_kid)).await;
    assert_eq!(
        bearer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        bearer.text
    );
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{}", unknown.text);
}

#[tokio::test]
async fn bad_tokens_rejected_as_invalid_token() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let user_id = server.user("alice", "pw").await;
    let real = server.pat(user_id, &["read"]).await;
    let (_, real_claims) = decode_parts(&real);
    let sub = user_id.to_string();
    let client_id = real_claims["client_id"].as_str().expect("client_id");
    let jti = real_claims["jti"].as_str().expect("jti");
    let key = server.sesame.signing_key();
    let now = server.sesame.now();
    let good = sign(&key, &claims_for(&server, &sub, client_id, jti)).expect("sign");

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut claims = claims_for(&server, &sub, client_id, jti);
    claims.iss = format!("{}/", server.base);
    cases.push((
        "issuer with a trailing slash",
        sign(&key, &claims).expect("sign"),
    ));
    let mut claims = claims_for(&server, &sub, client_id, jti);
    claims.aud = "https://other.example".to_owned();
    cases.push(("other audience", sign(&key, &claims).expect("sign")));
    let mut claims = claims_for(&server, &sub, client_id, jti);
    claims.iat = now - 3600;
    claims.exp = now - 61;
    cases.push((
        "expired beyond the leeway",
        sign(&key, &claims).expect("sign"),
    ));
    let (header, mut claims) = decode_parts(&good);
    claims["scope"] = json!("read write");
    let signature = good.rsplit('.').next().expect("signature");
    let tampered = format!(
        "{}.{}.{signature}",
        b64(header.to_string()),
        b64(claims.to_string())
    );
    cases.push(("claims changed after signing", tampered));
    let (attacker, _) =
        sesame::keys::SigningKey::generate(sesame::keys::KeyAlgorithm::Es256, 0).expect("key");
    let unknown_kid = sign(&attacker, &claims_for(&server, &sub, client_id, jti)).expect("sign");
    cases.push(("unknown kid", unknown_kid));
    let (mut header, claims) = decode_parts(&good);
    header["typ"] = json!("JWT");
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = b64(key.sign(input.as_bytes()).expect("sign"));
    cases.push(("typ JWT", format!("{input}.{signature}")));
    cases.push(("not a JWT", "abc".to_owned()));

    let control = call(&server, format!("{base}/verified"), Some(&good)).await;
    assert_eq!(control.status, StatusCode::OK, "{}", control.text);
    for (case, token) in cases {
        let reply = call(&server, format!("{base}/verified"), Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_token", "{case}");
        let challenge = reply.header("www-authenticate");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{case}: {challenge}"
        );
    }
}

#[tokio::test]
async fn expiry_uses_same_leeway() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "read").await;
    let (_, claims) = decode_parts(&token);
    let expires_at = claims["exp"].as_i64().expect("exp");
    let now = server.sesame.now();

    // Margins of 10 s keep a second boundary between two reads of the clock harmless.
    server.clock.advance(expires_at - now + 50);
    let within = server.sesame.verify_bearer(&token).await;
    assert!(within.is_ok(), "within the 60 s leeway: {within:?}");
    server.clock.advance(20);
    let error = server
        .sesame
        .verify_bearer(&token)
        .await
        .expect_err("expired");
    assert_eq!(error, BearerError::InvalidToken("the access token expired"));
}

#[tokio::test]
async fn missing_scope_insufficient_scope() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let user_id = server.user("alice", "pw").await;
    let profile_only = server.pat(user_id, &["profile"]).await;
    let write = server.pat(user_id, &["write"]).await;

    let all = call(
        &server,
        format!("{base}/verified/read"),
        Some(&profile_only),
    )
    .await;
    let any = call(
        &server,
        format!("{base}/verified/read-or-write"),
        Some(&profile_only),
    )
    .await;
    let any_write = call(
        &server,
        format!("{base}/verified/read-or-write"),
        Some(&write),
    )
    .await;

    assert_eq!(all.status, StatusCode::FORBIDDEN, "{}", all.text);
    assert_eq!(all.json()["error"], "insufficient_scope");
    let challenge = all.header("www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"read\""), "{challenge}");
    assert_eq!(any.status, StatusCode::FORBIDDEN, "{}", any.text);
    let challenge = any.header("www-authenticate");
    assert!(challenge.contains("scope=\"read write\""), "{challenge}");
    assert_eq!(any_write.status, StatusCode::OK, "{}", any_write.text);
}

#[tokio::test]
async fn no_credentials_bare_challenge() {
    let server = Server::start().await;
    let base = guarded_app(&server).await;
    let reply = call(&server, format!("{base}/verified"), None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), "Bearer");
}
