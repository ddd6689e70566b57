//! The bearer guard: which tokens it accepts and how it refuses the rest (RFC 6750 §3.1).

use axum::routing::get;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;
use sesame::store::ClientKind;
use sesame::token::jwt::{AccessClaims, sign};
use sesame::{AllScopes, AnyScope, Bearer, ScopeList};

use crate::common::{Server, decode_parts};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// Re-encodes a token's header and claims with `edit` applied, keeping the signature.
fn tamper(
    token: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    let (mut header, mut claims) = decode_parts(token);
    edit(&mut header, &mut claims);
    let signature = token.rsplit('.').next().expect("signature");
    format!(
        "{}.{}.{signature}",
        b64(header.to_string()),
        b64(claims.to_string())
    )
}

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
        scope: String::new(),
        scopes: Vec::new(),
    }
}

async fn user_token(server: &Server) -> (i64, String) {
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["profile", "read"]).await;
    (user_id, token)
}

#[tokio::test]
async fn valid_user_token_reaches_userinfo() {
    let server = Server::start().await;
    let (user_id, token) = user_token(&server).await;
    let (status, _, body) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sub"], user_id.to_string());
    assert_eq!(body["name"], "alice");
    assert!(body.get("email").is_none(), "email without the email scope");
}

#[tokio::test]
async fn no_credentials_bare_challenge() {
    let server = Server::start().await;
    let response = server
        .http
        .get(server.url("/oauth/userinfo"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn malformed_tokens_invalid_token() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    let parts: Vec<&str> = token.split('.').collect();
    let array_header = format!("{}.{}.{}", b64("[1,2]"), parts[1], parts[2]);
    let cases = vec![
        "abc".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}.extra"),
        format!("{}.{}.!!!", parts[0], parts[1]),
        array_header,
        "a".repeat(8000),
    ];
    for case in cases {
        let (status, challenge, body) = server.get_with("/oauth/userinfo", &case).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(body["error"], "invalid_token", "{case}");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn duplicate_authorization_header_invalid_request() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    let response = server
        .http
        .get(server.url("/oauth/userinfo"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn tampered_claims_or_signature_rejected() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    let before = server.counts().await;
    let forged_claims = tamper(&token, |_, claims| {
        claims["scope"] = json!("read write admin")
    });
    let (input, signature) = token.rsplit_once('.').expect("signature");
    let mut signature = b64_decode(signature);
    signature[10] ^= 0x01;
    let forged_signature = format!("{input}.{}", b64(&signature));
    for (case, forged) in [("claims", forged_claims), ("signature", forged_signature)] {
        let (status, _, body) = server.get_with("/oauth/userinfo", &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(body["error"], "invalid_token", "{case}");
    }
    assert_eq!(server.counts().await, before);
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK, "the untampered token still works");
}

#[tokio::test]
async fn alg_none_rejected() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    let before = server.counts().await;
    let forged = tamper(&token, |header, _| header["alg"] = json!("none"));
    let unsigned = format!("{}.", forged.rsplit_once('.').expect("dot").0);
    for candidate in [forged, unsigned] {
        let (status, _, body) = server.get_with("/oauth/userinfo", &candidate).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{candidate}");
        assert_eq!(body["error"], "invalid_token");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn hs256_with_public_key_rejected() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    let before = server.counts().await;
    let (mut header, claims) = decode_parts(&token);
    header["alg"] = json!("HS256");
    let public_pem = server.sesame.signing_key().public_pem();
    let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public_pem.as_bytes());
    let signature = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    let forged = format!("{signing_input}.{}", b64(signature.as_ref()));
    let (status, _, body) = server.get_with("/oauth/userinfo", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn attacker_key_with_real_kid_rejected() {
    let server = Server::start().await;
    let (user_id, token) = user_token(&server).await;
    let (_, claims) = decode_parts(&token);
    let (attacker, _) =
        sesame::keys::SigningKey::generate(sesame::keys::KeyAlgorithm::Rs256, 2048).expect("key");
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": server.sesame.signing_key().kid()});
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = attacker.sign(input.as_bytes()).expect("sign");
    let forged = format!("{input}.{}", b64(signature));
    let (status, _, _) = server.get_with("/oauth/userinfo", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The attacker's own kid is unknown as well, even with an embedded jwk header.
    let claims = claims_for(&server, &user_id.to_string(), "x", "y");
    let mut own = sign(&attacker, &claims).expect("sign");
    own = tamper(&own, |header, _| {
        header["jwk"] = attacker.public_jwk().clone()
    });
    let (status, _, _) = server.get_with("/oauth/userinfo", &own).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_token_rejected_after_leeway() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    server.clock.advance(3600 + 30);
    let check = |server: &Server| {
        let sesame = server.sesame.clone();
        let token = token.clone();
        async move { sesame.authenticate_bearer(&token).await }
    };
    assert!(check(&server).await.is_ok(), "within the 60 s leeway");
    server.clock.advance(31);
    let error = check(&server).await.expect_err("expired");
    assert_eq!(
        error,
        sesame::BearerError::InvalidToken("the access token expired")
    );
}

/// Adds a user with a personal access token and returns the user's id and the token's `jti`
/// and `client_id`, so a test can sign claims that name a stored row.
async fn stored_personal_token(server: &Server) -> (i64, String, String) {
    let user_id = server.user("alice", "pw").await;
    let real = server.pat(user_id, &[]).await;
    let (_, claims) = decode_parts(&real);
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    let client_id = claims["client_id"].as_str().expect("client_id").to_owned();
    (user_id, jti, client_id)
}

#[tokio::test]
async fn wrong_issuer_audience_or_type_rejected() {
    let server = Server::start().await;
    let (user_id, jti, client_id) = stored_personal_token(&server).await;
    let (jti, client_id) = (jti.as_str(), client_id.as_str());
    let key = &server.sesame.signing_key();
    let mut cases = Vec::new();
    let mut claims = claims_for(&server, &user_id.to_string(), client_id, jti);
    claims.iss = format!("{}/", server.base);
    cases.push(sign(key, &claims).expect("sign"));
    let mut claims = claims_for(&server, &user_id.to_string(), client_id, jti);
    claims.aud = "https://other.example".into();
    cases.push(sign(key, &claims).expect("sign"));
    let good = sign(
        key,
        &claims_for(&server, &user_id.to_string(), client_id, jti),
    )
    .expect("sign");
    cases.push(tamper_and_resign(&good, key, |header| {
        header["typ"] = json!("JWT")
    }));
    cases.push(tamper_and_resign(&good, key, |header| {
        header.as_object_mut().expect("object").remove("typ");
    }));
    cases.push(tamper_and_resign(&good, key, |header| {
        header["crit"] = json!(["exp"])
    }));
    cases.push(tamper_and_resign(&good, key, |header| {
        header["crit"] = json!(null)
    }));
    let no_exp = {
        let (header, mut claims) = decode_parts(&good);
        claims.as_object_mut().expect("object").remove("exp");
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        format!("{input}.{}", b64(key.sign(input.as_bytes()).expect("sign")))
    };
    cases.push(no_exp);
    let (status, _, _) = server.get_with("/oauth/userinfo", &good).await;
    assert_eq!(status, StatusCode::OK, "the control token must pass");
    for case in cases {
        let (status, _, body) = server.get_with("/oauth/userinfo", &case).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{:?}",
            decode_parts(&case)
        );
        assert_eq!(body["error"], "invalid_token");
    }
}

#[tokio::test]
async fn signed_mismatches_named_in_description() {
    let server = Server::start().await;
    let (user_id, jti, client_id) = stored_personal_token(&server).await;
    let (jti, client_id) = (jti.as_str(), client_id.as_str());
    let key = &server.sesame.signing_key();
    let subject = user_id.to_string();

    let mut claims = claims_for(&server, &subject, client_id, jti);
    claims.iss = "http://127.0.0.1:1".into();
    let other_issuer = sign(key, &claims).expect("sign");
    let error = server
        .sesame
        .authenticate_bearer(&other_issuer)
        .await
        .expect_err("issuer");
    let expected = "the access token was issued for another issuer";
    assert_eq!(error, sesame::BearerError::InvalidToken(expected));

    let other_client = sign(key, &claims_for(&server, &subject, "another-client", jti));
    let other_client = other_client.expect("sign");
    let error = server
        .sesame
        .authenticate_bearer(&other_client)
        .await
        .expect_err("client");
    let expected = "the access token does not match its record";
    assert_eq!(error, sesame::BearerError::InvalidToken(expected));

    let other_subject = sign(key, &claims_for(&server, "999", client_id, jti)).expect("sign");
    let error = server
        .sesame
        .authenticate_bearer(&other_subject)
        .await
        .expect_err("subject");
    assert_eq!(error, sesame::BearerError::InvalidToken(expected));
}

fn tamper_and_resign(
    token: &str,
    key: &sesame::keys::SigningKey,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let (mut header, claims) = decode_parts(token);
    edit(&mut header);
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    format!("{input}.{}", b64(key.sign(input.as_bytes()).expect("sign")))
}

#[tokio::test]
async fn deleted_row_rejected_even_with_valid_signature() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    server.execute("DELETE FROM oauth_access_tokens").await;
    let (status, _, body) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn revoked_client_token_rejected() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());
    server
        .sesame
        .store()
        .revoke_client(&id, server.sesame.now())
        .await
        .expect("revoke");
    let before = server.counts().await;
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
    let base = embedded_app(&server).await;
    let response = server
        .http
        .get(format!("{base}/any-token"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.counts().await, before);
    server.execute("DELETE FROM oauth_clients").await;
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
}

#[tokio::test]
async fn disabled_user_token_rejected() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    server.execute("UPDATE users SET disabled = TRUE").await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn personal_token_survives_client_loss() {
    let server = Server::start().await;
    let (_, token) = user_token(&server).await;
    server
        .execute("UPDATE oauth_clients SET revoked = TRUE")
        .await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK);
    server.execute("DELETE FROM oauth_clients").await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn client_token_refused_at_userinfo() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let (status, challenge, body) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn principal_comes_from_row_not_sub() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let (_, claims) = decode_parts(&token);
    // A token signed by the real key whose row has no user but whose sub names a user.
    let mut forged = claims_for(
        &server,
        &user_id.to_string(),
        &id,
        claims["jti"].as_str().expect("jti"),
    );
    forged.scope = String::new();
    let forged = sign(&server.sesame.signing_key(), &forged).expect("sign");
    let (status, _, _) = server.get_with("/oauth/userinfo", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

struct ReadWrite;
impl ScopeList for ReadWrite {
    const SCOPES: &'static [&'static str] = &["read", "write"];
}

async fn embedded_app(server: &Server) -> String {
    let app = axum::Router::new()
        .route(
            "/all",
            get(|scoped: AllScopes<ReadWrite>| async move { scoped.token_id.clone() }),
        )
        .route(
            "/any",
            get(|scoped: AnyScope<ReadWrite>| async move { scoped.token_id.clone() }),
        )
        .route(
            "/any-token",
            get(|bearer: Bearer| async move { bearer.client_id }),
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

#[tokio::test]
async fn scope_extractors_all_and_any() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let base = embedded_app(&server).await;
    let read_only = server.pat(user_id, &["read"]).await;
    let both = server.pat(user_id, &["read", "write"]).await;
    let none = server.pat(user_id, &[]).await;
    let call = |path: &str, token: &str| {
        let request = server
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send();
        async move { request.await.expect("request") }
    };
    assert_eq!(call("/all", &both).await.status(), StatusCode::OK);
    assert_eq!(call("/any", &read_only).await.status(), StatusCode::OK);
    assert_eq!(call("/any-token", &none).await.status(), StatusCode::OK);
    for (path, token) in [("/all", &read_only), ("/all", &none), ("/any", &none)] {
        let response = call(path, token).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"read write\""), "{challenge}");
    }
}
