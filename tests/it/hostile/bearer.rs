//! Hostile bearer tokens and the state behind them: forged headers, principals confused with
//! users, and tokens whose client, user or row is gone. Also the published keys.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::keys::{KeyAlgorithm, SigningKey};
use sesame::store::ClientKind;

use crate::common::{Server, decode_parts};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Re-signs `token`'s claims with `key` under `header`.
fn resign(token: &str, header: &Value, key: &SigningKey) -> String {
    let (_, claims) = decode_parts(token);
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    format!("{input}.{}", b64(key.sign(input.as_bytes()).expect("sign")))
}

/// Asserts the RFC 6750 answer to a bad token: 401, `invalid_token` in body and challenge.
async fn assert_invalid_token(server: &Server, path: &str, token: &str, case: &str) {
    let (status, challenge, body) = server.get_with(path, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_token", "{case}");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{case}: {challenge}"
    );
}

// catalogue 52: keys named or embedded in the header (`jku`, `x5u`, `jwk`) are never fetched
// or trusted; only recorded keys verify.
#[tokio::test]
async fn header_supplied_keys_ignored() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["read"]).await;
    let (attacker, _) = SigningKey::generate(KeyAlgorithm::Rs256, 2048).expect("key");
    let real_kid = server.sesame.signing_key().kid().to_owned();
    let headers = [
        json!({"alg": "RS256", "typ": "at+jwt", "kid": real_kid, "jku": "http://127.0.0.1:9/jwks"}),
        json!({"alg": "RS256", "typ": "at+jwt", "kid": real_kid, "x5u": "http://127.0.0.1:9/cert"}),
        json!({"alg": "RS256", "typ": "at+jwt", "kid": real_kid, "jwk": attacker.public_jwk()}),
        json!({"alg": "RS256", "typ": "at+jwt", "jwk": attacker.public_jwk()}),
        json!({"alg": "RS256", "typ": "at+jwt", "kid": attacker.kid(), "jku": "http://127.0.0.1:9/"}),
    ];
    for header in headers {
        let forged = resign(&token, &header, &attacker);
        assert_invalid_token(&server, "/oauth/userinfo", &forged, &header.to_string()).await;
    }
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::OK, "the genuine token still works");
}

// catalogue 61, 155, B6: a client whose id looks like a user id gets a client principal;
// user endpoints refuse it and no user is resolved from `sub`.
#[tokio::test]
async fn client_id_equal_to_user_id_is_not_that_user() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    for fake_id in [
        user_id.to_string(),
        format!("{user_id}abc"),
        format!("0{user_id}"),
    ] {
        let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
        server
            .execute(&format!(
                "UPDATE oauth_clients SET id = '{fake_id}' WHERE id = '{id}'"
            ))
            .await;
        let token = server.client_token(&fake_id, &secret, "").await;
        let (_, claims) = decode_parts(&token);
        assert_eq!(claims["sub"], fake_id.as_str());

        for path in [
            "/oauth/userinfo",
            "/oauth/personal-access-tokens",
            "/oauth/clients",
            "/oauth/tokens",
        ] {
            let (status, _, body) = server.get_with(path, &token).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{fake_id} at {path}: {body}");
            assert!(body.get("sub").is_none(), "{fake_id} at {path}: {body}");
            assert!(body.get("name").is_none(), "{fake_id} at {path}: {body}");
        }
    }
}

// catalogue 62, 161, B9: a client deleted by hand takes its tokens with it: the API answers
// `invalid_token` (not 500), introspection says inactive, and refresh fails.
#[tokio::test]
async fn hard_deleted_client_tokens_dead() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (machine, machine_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let machine_token = server.client_token(&machine, &machine_secret, "").await;
    let (password, password_secret) = server.client(ClientKind::Password, None).await;
    let (user_access, user_refresh) = server
        .password_tokens(&password, &password_secret, "alice", "pw", "")
        .await;
    let (resource, resource_secret) = server.client(ClientKind::ResourceServer, None).await;
    assert!(
        server
            .sesame
            .authenticate_bearer(&machine_token)
            .await
            .is_ok()
    );

    server
        .execute(&format!(
            "DELETE FROM oauth_clients WHERE id IN ('{machine}', '{password}')"
        ))
        .await;

    let (status, _, _) = server.get_with("/oauth/userinfo", &user_access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_invalid_token(&server, "/oauth/userinfo", &user_access, "user token").await;
    let error = server
        .sesame
        .authenticate_bearer(&machine_token)
        .await
        .expect_err("client token of a deleted client");
    assert!(
        matches!(error, sesame::BearerError::InvalidToken(_)),
        "{error:?}"
    );
    for token in [&machine_token, &user_access, &user_refresh] {
        let reply = server
            .post_form(
                "/oauth/introspect",
                Some((&resource, &resource_secret)),
                &[("token", token)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), json!({"active": false}));
    }
    let (status, body) = server
        .token(
            &password,
            &password_secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &user_refresh),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
}

// catalogue 175: a token whose user row was deleted by hand is invalid, not a 500.
#[tokio::test]
async fn deleted_user_token_invalid() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["read"]).await;

    server.execute("DELETE FROM users").await;

    assert_invalid_token(&server, "/oauth/userinfo", &token, "deleted user").await;
    let (status, _, _) = server
        .get_with("/oauth/personal-access-tokens", &token)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// catalogue 68: after the token tables are emptied (a database refresh that keeps the keys),
// old tokens still carry a valid signature but are refused.
#[tokio::test]
async fn tokens_unknown_to_database_refused() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;

    server.execute("DELETE FROM oauth_access_tokens").await;
    server.execute("DELETE FROM oauth_refresh_tokens").await;

    assert_invalid_token(&server, "/oauth/userinfo", &access, "row gone").await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

// catalogue 169: nodes share revocation through the database, so a token revoked on one is
// refused by another at once.
#[tokio::test]
async fn revocation_seen_by_other_node_at_once() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let other_node = sesame::Sesame::open(server.node_config())
        .await
        .expect("second node");
    assert!(other_node.authenticate_bearer(&token).await.is_ok());

    let reply = server
        .post_form("/oauth/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;

    assert_eq!(reply.status, StatusCode::OK);
    let error = other_node
        .authenticate_bearer(&token)
        .await
        .expect_err("revoked on the first node");
    assert!(
        matches!(error, sesame::BearerError::InvalidToken(_)),
        "{error:?}"
    );
    other_node.close().await;
}

// catalogue 70, 148, 149: the key set lists public RSA members only, marked for signing and
// cacheable, and names the key of every token issued.
#[tokio::test]
async fn jwks_public_members_only() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let (header, _) = decode_parts(&token);
    for path in ["/oauth/jwks", "/.well-known/jwks.json"] {
        let response = server
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("jwks");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let cache = response.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(cache.contains("max-age="), "{path}: {cache}");
        let document: Value = response.json().await.expect("json");

        let keys = document["keys"].as_array().expect("keys");
        assert!(!keys.is_empty(), "{path}");
        for key in keys {
            assert_eq!(key["kty"], "RSA", "{key}");
            assert_eq!(key["use"], "sig", "{key}");
            assert_eq!(key["alg"], "RS256", "{key}");
            assert!(key["kid"].is_string(), "{key}");
            assert!(key["e"].is_string(), "{key}");
            let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key["n"].as_str().expect("n"))
                .expect("base64url n");
            assert!(modulus.len() >= 256, "{} bit modulus", modulus.len() * 8);
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(key.get(private).is_none(), "{path} publishes {private}");
            }
        }
        assert!(
            keys.iter().any(|key| key["kid"] == header["kid"]),
            "{path} lacks the token's kid"
        );
    }
    assert_eq!(header["typ"], "at+jwt");
}
