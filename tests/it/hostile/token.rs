//! Hostile requests at `POST /oauth/token`: client authentication, grant permissions, scope
//! strings and malformed parameters. Every refusal leaves the stored rows unchanged.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use super::{REDIRECT, app, code_for, post_token, redeem_form};
use crate::browser::Browser;
use crate::common::{Server, decode_parts};

const FORM: &str = "application/x-www-form-urlencoded";

/// Posts `body` as is, so tests can send bytes a form encoder would escape.
async fn raw_token(
    server: &Server,
    basic: Option<(&str, &str)>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(server.url("/oauth/token"))
        .header("content-type", FORM)
        .body(body.to_owned());
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("token request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

// catalogue 4: client credentials need a confidential client.
#[tokio::test]
async fn public_client_gets_no_client_credentials_token() {
    let server = Server::start().await;
    let public = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let before = server.counts().await;

    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", &public.id),
    ];
    let (status, body) = post_token(&server, None, &form).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(body.get("access_token").is_none());
    let (status, body) = post_token(
        &server,
        Some((&public.id, "made-up-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a public client has no secret"
    );
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(server.counts().await, before);
}

// catalogue 2: Basic plus a full set of body credentials is two methods at once.
#[tokio::test]
async fn basic_with_body_id_and_secret_rejected() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let before = server.counts().await;
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");

    let (status, json) = raw_token(&server, Some((&id, &secret)), &body).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_request");
    assert_eq!(server.counts().await, before);
}

// catalogue 119, 130: a client uses only its own grants; the password grant is for password
// clients, never a public one.
#[tokio::test]
async fn grant_outside_client_kind_unauthorized() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let web = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let public = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let password = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "pw"),
    ];
    let before = server.counts().await;

    let (status, body) = post_token(&server, web.basic(), &password).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");

    let (status, body) = post_token(
        &server,
        web.basic(),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");

    let mut public_password = password.to_vec();
    public_password.push(("client_id", &public.id));
    let (status, body) = post_token(&server, None, &public_password).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");

    assert_eq!(server.counts().await, before);
}

// catalogue 104: scopes are case-sensitive tokens separated by single spaces; `%20` and `+`
// both decode to a space, so they name two scopes.
#[tokio::test]
async fn scope_string_tricks_grant_nothing_extra() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let before = server.counts().await;
    for scope in [
        "read%20admin",
        "read+admin",
        "read,admin",
        "read%2Cwrite",
        "READ",
        "read%09write",
        "read%20%20write",
        "r%D0%B5ad",
        "%20read",
        "read%20",
    ] {
        let body = format!("grant_type=client_credentials&scope={scope}");

        let (status, json) = raw_token(&server, Some((&id, &secret)), &body).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{scope}: {json}");
        assert_eq!(json["error"], "invalid_scope", "{scope}");
    }
    assert_eq!(server.counts().await, before);

    let body = "grant_type=client_credentials&scope=read+read";
    let (status, json) = raw_token(&server, Some((&id, &secret)), body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["scope"], "read", "a repeated scope counts once");
}

// catalogue 116: an empty scope means no scope requested, not every scope.
#[tokio::test]
async fn empty_scope_grants_no_scope() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;

    let (status, json) = raw_token(
        &server,
        Some((&id, &secret)),
        "grant_type=client_credentials&scope=",
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["scope"], "");
    let (_, claims) = decode_parts(json["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["scopes"], serde_json::json!([]));
}

// catalogue 109: repeated parameters are ambiguous, whichever grant they belong to.
#[tokio::test]
async fn repeated_grant_parameters_invalid_request() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let web = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    let code = code_for(&browser, &web, "alice").await;
    let (password_id, password_secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;
    let redeem = format!(
        "grant_type=authorization_code&code={code}&code=x&redirect_uri={REDIRECT}\
         &code_verifier={}",
        super::VERIFIER
    );

    let (status, json) = raw_token(&server, web.basic(), &redeem).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_request");

    for body in [
        "grant_type=password&grant_type=client_credentials&username=alice&password=pw",
        "grant_type=password&username=alice&username=bob&password=pw",
        "grant_type=password&username=alice&password=pw&password=pw",
    ] {
        let (status, json) = raw_token(&server, Some((&password_id, &password_secret)), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_eq!(json["error"], "invalid_request", "{body}");
    }
    assert_eq!(server.counts().await, before);

    let form = redeem_form(&web, &code);
    let (status, json) = post_token(&server, web.basic(), &form).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a refused request does not spend the code: {json}"
    );
}

// catalogue 115: NUL bytes and invalid UTF-8 are malformed parameters, so they never reach SQL.
#[tokio::test]
async fn nul_and_invalid_utf8_refused() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;

    let body =
        format!("grant_type=client_credentials&client_id={id}%00evil&client_secret={secret}");
    let (status, json) = raw_token(&server, None, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_request");

    for username in [
        "alice%00",
        "alice%00evil",
        "%00",
        "%C0%AF",
        "%FF",
        "alice%C3%28",
    ] {
        let body = format!("grant_type=password&username={username}&password=pw");
        let (status, json) = raw_token(&server, Some((&id, &secret)), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{username}: {json}");
        assert_eq!(json["error"], "invalid_request", "{username}");
    }
    assert_eq!(server.counts().await, before);
}

// catalogue 127: SQL in any field is data: the usual error, never a 500 or SQL text.
#[tokio::test]
async fn sql_in_parameters_is_plain_data() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "pw"),
                ("scope", "read') OR 1=1--"),
            ],
            "invalid_scope",
        ),
        (
            &[
                ("grant_type", "password"),
                ("username", "alice' OR '1'='1"),
                ("password", "' OR '1'='1"),
            ],
            "invalid_grant",
        ),
        (
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    "x' UNION SELECT token_hash FROM oauth_refresh_tokens --",
                ),
            ],
            "invalid_grant",
        ),
        (
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "pw"),
                ("scope", "read'; DROP TABLE users; --"),
            ],
            "invalid_scope",
        ),
    ];

    for (form, expected) in cases {
        let (status, body) = post_token(&server, Some((&id, &secret)), form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert_eq!(body["error"], expected, "{form:?}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(!description.to_lowercase().contains("sql"), "{description}");
    }

    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let reply = server
            .post_form(path, Some((&id, &secret)), &[("token", "x' OR '1'='1")])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }

    let (status, body) = post_token(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "' OR '1'='1"),
            ("client_secret", "' OR '1'='1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(server.counts().await, before);
}

// catalogue 145: a public client's refresh token is bound to it and needs its client_id.
#[tokio::test]
async fn public_refresh_bound_to_client_id() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let public = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let other = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    let code = code_for(&browser, &public, "alice").await;
    let (status, tokens) = post_token(&server, None, &redeem_form(&public, &code)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");

    let without_client = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, body) = post_token(&server, None, &without_client).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");

    let mut as_other = without_client.to_vec();
    as_other.push(("client_id", &other.id));
    let (status, body) = post_token(&server, None, &as_other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    let mut as_owner = without_client.to_vec();
    as_owner.push(("client_id", &public.id));
    let (status, body) = post_token(&server, None, &as_owner).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "failed attempts do not spend the token: {body}"
    );
}

// A neighbour of catalogue 115: identifiers compare byte for byte on every backend, so a
// changed case or a trailing space names nothing, even where MySQL would ignore them.
#[tokio::test]
async fn identifier_variants_name_nothing() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let before = server.counts().await;
    for variant in [format!("{id} "), id.to_uppercase(), format!(" {id}")] {
        let form = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "pw"),
            ("client_id", variant.as_str()),
            ("client_secret", secret.as_str()),
        ];

        let (status, body) = post_token(&server, None, &form).await;

        assert_eq!(status, StatusCode::UNAUTHORIZED, "{variant:?}: {body}");
        assert_eq!(body["error"], "invalid_client", "{variant:?}");
    }

    for username in ["alice ", "ALICE", "Alice", " alice"] {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", "pw"),
        ];

        let (status, body) = post_token(&server, Some((&id, &secret)), &form).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{username:?}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{username:?}");
    }
    assert_eq!(server.counts().await, before);
}
