//! The authorization code flow with PKCE: sign-in, consent, code redemption and the hostile
//! requests around them.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use sesame::install::{ClientSpec, create_client_with};
use sesame::store::ClientKind;

use crate::browser::{Browser, Page, check_page_headers, query_param, urlencode};
use crate::common::{Server, data_dir};

const REDIRECT: &str = "https://client.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct App {
    id: String,
    secret: String,
}

async fn app(server: &Server, kind: ClientKind, first_party: bool, uris: &[&str]) -> App {
    let mut spec = ClientSpec::new(kind, "Example App");
    spec.redirect_uris = uris.iter().map(|u| (*u).to_owned()).collect();
    spec.first_party = first_party;
    let (client, secret) = create_client_with(&server.sesame, &spec)
        .await
        .expect("client");
    App {
        id: client.id,
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    }
}

fn query(app: &App, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        app.id,
        urlencode(REDIRECT)
    )
}

async fn setup() -> (Server, App, Browser) {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, false, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    (server, app, browser)
}

/// Runs sign-in and approval and returns the code.
async fn code_for(server: &Server, app: &App, browser: &Browser, extra: &str) -> String {
    let consent = browser.authorize(&query(app, extra), "alice", "pw").await;
    // Consent given once is remembered, so later requests go straight back to the client.
    let done = if consent.status == StatusCode::OK {
        browser.decide(&consent, true).await
    } else {
        consent
    };
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.location.expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    query_param(&location, "code").expect("code")
}

async fn redeem(
    server: &Server,
    app: &App,
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    server.token(&app.id, &app.secret, &form).await
}

#[tokio::test]
async fn full_flow_issues_tokens() {
    let (server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.body.contains("Example App"));
    assert!(
        consent.body.contains("Read things"),
        "scope description shown"
    );
    let done = browser.decide(&consent, true).await;
    let location = done.location.expect("location");
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    let code = query_param(&location, "code").expect("code");
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    assert!(body["refresh_token"].is_string());
    let stored: String = sqlx::query_scalar("SELECT code_hash FROM oauth_auth_codes")
        .fetch_one(server.sesame.store().pool())
        .await
        .expect("row");
    assert!(stored.starts_with("sha256:"));
    assert!(!stored.contains(&code));
}

#[tokio::test]
async fn deny_redirects_access_denied() {
    let (server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    let done = browser.decide(&consent, false).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let location = done.location.expect("location");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn http_delete_denies_access() {
    let (server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    // The consent form's fields without `decision` or `_method`, so only the HTTP method
    // can deny.
    let form = [
        ("_csrf", consent.field("_csrf")),
        ("auth_request", consent.field("auth_request")),
    ];
    let response = browser
        .http
        .delete(server.url("/oauth/authorize"))
        .form(&form)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    assert!(query_param(&location, "code").is_none(), "{location}");
    assert_eq!(
        server.count("SELECT COUNT(*) FROM oauth_auth_codes").await,
        0
    );

    // The same fields sent with POST approve.
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    assert_eq!(consent.status, StatusCode::OK, "a denial is not remembered");
    let form = [
        ("_csrf", consent.field("_csrf")),
        ("auth_request", consent.field("auth_request")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let approved = browser.post("/oauth/authorize", &form).await;
    let location = approved.location.expect("location");
    assert!(query_param(&location, "code").is_some(), "{location}");
}

#[tokio::test]
async fn consent_decision_needs_csrf() {
    let (server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    let request = consent.field("auth_request");
    for csrf in ["", "forged"] {
        let page = browser
            .post(
                "/oauth/authorize",
                &[
                    ("_csrf", csrf),
                    ("auth_request", &request),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.location.is_none());
    }
    assert_eq!(
        server.count("SELECT COUNT(*) FROM oauth_auth_codes").await,
        0
    );
    // Another browser's session cannot use this page's request id and token.
    let other = Browser::new(&server);
    other.sign_in("alice", "pw", "/account/tokens").await;
    let page = other
        .post(
            "/oauth/authorize",
            &[
                ("_csrf", &consent.field("_csrf")),
                ("auth_request", &request),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_consent_decision_rejected() {
    let (server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    let csrf = consent.field("_csrf");
    let request = consent.field("auth_request");
    for decision in ["maybe", "DENY", "approve "] {
        let page = browser
            .post(
                "/oauth/authorize",
                &[
                    ("_csrf", &csrf),
                    ("auth_request", &request),
                    ("decision", decision),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{decision:?}");
        assert!(page.location.is_none(), "{decision:?}");
    }
    let codes = server.count("SELECT COUNT(*) FROM oauth_auth_codes").await;
    assert_eq!(codes, 0);

    // The request stays open, and a form without a decision approves it.
    let approved = browser
        .post(
            "/oauth/authorize",
            &[("_csrf", &csrf), ("auth_request", &request)],
        )
        .await;

    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let location = approved.location.expect("location");
    assert!(query_param(&location, "code").is_some(), "{location}");
}

#[tokio::test]
async fn consent_answered_once() {
    let (_server, app, browser) = setup().await;
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    assert_eq!(
        browser.decide(&consent, true).await.status,
        StatusCode::SEE_OTHER
    );
    let again = browser.decide(&consent, true).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unregistered_redirects_show_page_never_redirect() {
    let (_server, app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    for uri in [
        "https://evil.example/cb",
        "https://client.example/cb/extra",
        "https://client.example/cb/../../evil",
        "http://client.example/cb",
        "https://client.example/cb#frag",
        "https://client.example/cb?x=1",
        "https://CLIENT.example/cb",
        "https://client.example/cb/",
    ] {
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
            app.id,
            urlencode(uri)
        );
        let page = browser.get(&format!("/oauth/authorize?{q}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(page.location.is_none(), "{uri} redirected");
    }
}

#[tokio::test]
async fn unknown_client_shows_page() {
    let (_server, _app, browser) = setup().await;
    let page = browser
        .get("/oauth/authorize?response_type=code&client_id=nope&redirect_uri=https%3A%2F%2Fevil.example%2F")
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location.is_none());
    let page = browser.get("/oauth/authorize?response_type=code").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn duplicate_redirect_uri_shows_page() {
    let (_server, app, browser) = setup().await;
    let q = format!("{}&redirect_uri={}", query(&app, ""), urlencode(REDIRECT));
    let page = browser.get(&format!("/oauth/authorize?{q}")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location.is_none());
}

async fn error_after_trust(browser: &Browser, q: &str) -> (String, Option<String>) {
    let page = browser.get(&format!("/oauth/authorize?{q}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location.expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    (
        query_param(&location, "error").unwrap_or_default(),
        query_param(&location, "state"),
    )
}

#[tokio::test]
async fn request_errors_redirect_with_state() {
    let (_server, app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let base = format!(
        "client_id={}&redirect_uri={}&state=s1",
        app.id,
        urlencode(REDIRECT)
    );
    let pkce = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256");
    let cases = [
        (format!("{base}{pkce}"), "invalid_request"),
        (
            format!("{base}&response_type=token{pkce}"),
            "unsupported_response_type",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=plain"
            ),
            "invalid_request",
        ),
        (
            format!("{base}&response_type=code&code_challenge={CHALLENGE}"),
            "invalid_request",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=s256"
            ),
            "invalid_request",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={CHALLENGE}&code_challenge_method=S512"
            ),
            "invalid_request",
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={CHALLENGE}%3D&code_challenge_method=S256"
            ),
            "invalid_request",
        ),
        (format!("{base}&response_type=code"), "invalid_request"),
        (
            format!("{base}&response_type=code&scope=admin{pkce}"),
            "invalid_scope",
        ),
        (
            format!("{base}&response_type=code&scope=*{pkce}"),
            "invalid_scope",
        ),
        (
            format!("{base}&response_type=code&scope=sesame%3Aaccount{pkce}"),
            "invalid_scope",
        ),
        (
            format!("{base}&response_type=code&response_type=code{pkce}"),
            "invalid_request",
        ),
        (
            format!("{base}&response_type=code&prompt=none&prompt=none{pkce}"),
            "invalid_request",
        ),
    ];
    for (q, expected) in cases {
        let (error, state) = error_after_trust(&browser, &q).await;
        assert_eq!(error, expected, "{q}");
        assert_eq!(state.as_deref(), Some("s1"), "{q}");
    }
}

#[tokio::test]
async fn long_hostile_state_echoed_encoded() {
    let (server, app, browser) = setup().await;
    let state = format!("<script>\"'\r\n{}", "x".repeat(4000));
    let consent = browser
        .authorize(
            &query(&app, "").replace("state=xyz", &format!("state={}", urlencode(&state))),
            "alice",
            "pw",
        )
        .await;
    assert!(!consent.body.contains("<script>\""), "state reflected raw");
    let done = browser.decide(&consent, true).await;
    let location = done.location.expect("location");
    assert!(!location.contains('\n'));
    assert!(!location.contains('<'));
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.as_str())
    );
    let _ = server;
}

#[tokio::test]
async fn pkce_failures_burn_the_code() {
    let (server, app, browser) = setup().await;
    for bad in [
        None,
        Some("A".repeat(43).as_str().to_owned()),
        Some("short".to_owned()),
        Some(format!("{}+/=", "a".repeat(43))),
    ] {
        let code = code_for(&server, &app, &browser, "").await;
        let (status, body) = redeem(&server, &app, &code, bad.as_deref()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(body["error"], "invalid_grant", "{bad:?}");
        let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a failed attempt must spend the code"
        );
    }
}

#[tokio::test]
async fn verifier_refused_for_code_without_challenge() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let mut spec = ClientSpec::new(ClientKind::AuthorizationCode, "Legacy");
    spec.redirect_uris = vec![REDIRECT.to_owned()];
    spec.require_pkce = false;
    let (client, secret) = create_client_with(&server.sesame, &spec)
        .await
        .expect("client");
    let app = App {
        id: client.id,
        secret: secret.expect("secret").expose().to_owned(),
    };
    let browser = Browser::new(&server);
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read",
        app.id,
        urlencode(REDIRECT)
    );
    let consent = browser.authorize(&q, "alice", "pw").await;
    let location = browser
        .decide(&consent, true)
        .await
        .location
        .expect("location");
    let code = query_param(&location, "code").expect("code");
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn code_reuse_revokes_first_tokens() {
    let (server, app, browser) = setup().await;
    let code = code_for(&server, &app, &browser, "").await;
    let (status, first) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["access_token"].as_str().expect("access");
    assert!(server.sesame.authenticate_bearer(access).await.is_ok());
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(server.sesame.authenticate_bearer(access).await.is_err());
    let rt = first["refresh_token"].as_str().expect("refresh");
    let (status, _) = server
        .token(
            &app.id,
            &app.secret,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_redemptions_one_winner() {
    let (server, app, browser) = setup().await;
    let code = code_for(&server, &app, &browser, "").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url, id, secret, code, barrier) = (
            server.http.clone(),
            server.url("/oauth/token"),
            app.id.clone(),
            app.secret.clone(),
            code.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ];
            let response = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .expect("request");
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.expect("task");
        if status == StatusCode::OK {
            winners.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert_eq!(winners.len(), 1);
    let access = winners[0]["access_token"].as_str().expect("access");
    assert!(
        server.sesame.authenticate_bearer(access).await.is_err(),
        "replays revoke the winner's token"
    );
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        1,
        "one token family"
    );
}

#[tokio::test]
async fn code_bound_to_client() {
    let (server, app, browser) = setup().await;
    let other = self::app(&server, ClientKind::AuthorizationCode, false, &[REDIRECT]).await;
    let code = code_for(&server, &app, &browser, "").await;
    let (status, body) = redeem(&server, &other, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another client's attempt does not spend the code"
    );
}

#[tokio::test]
async fn redirect_uri_must_match_at_token() {
    let (server, app, browser) = setup().await;
    let code = code_for(&server, &app, &browser, "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://client.example/other"),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = server.token(&app.id, &app.secret, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let code = code_for(&server, &app, &browser, "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let (status, _) = server.token(&app.id, &app.secret, &form).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "omitted at the token endpoint"
    );
}

#[tokio::test]
async fn expired_code_refused() {
    let (server, app, browser) = setup().await;
    let code = code_for(&server, &app, &browser, "").await;
    server.clock.advance(601);
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn garbage_codes_invalid_grant() {
    let (server, app, browser) = setup().await;
    let code = code_for(&server, &app, &browser, "").await;
    let truncated = &code[..code.len() - 1];
    for bad in [truncated, "x", "' OR 1=1 --"] {
        let (status, body) = redeem(&server, &app, bad, Some(VERIFIER)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_grant");
    }
    let (status, body) = server
        .token(
            &app.id,
            &app.secret,
            &[("grant_type", "authorization_code"), ("code", "")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn remembered_consent_skips_page() {
    let (server, app, browser) = setup().await;
    code_for(&server, &app, &browser, "").await;
    let page = browser
        .get(&format!("/oauth/authorize?{}", query(&app, "")))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.expect("location").starts_with(REDIRECT));
    let wider = query(&app, "").replace("scope=read", "scope=read+write");
    let page = browser.get(&format!("/oauth/authorize?{wider}")).await;
    assert_eq!(page.status, StatusCode::OK, "new scope asks again");
    let page = browser
        .get(&format!(
            "/oauth/authorize?{}&prompt=consent",
            query(&app, "")
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "prompt=consent asks again");
}

#[tokio::test]
async fn public_client_always_asks() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::Public, false, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    for _ in 0..2 {
        let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
        assert_eq!(consent.status, StatusCode::OK, "consent page every time");
        let location = browser
            .decide(&consent, true)
            .await
            .location
            .expect("location");
        let code = query_param(&location, "code").expect("code");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", app.id.as_str()),
        ];
        let response = server
            .http
            .post(server.url("/oauth/token"))
            .form(&form)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn public_client_needs_pkce() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::Public, false, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=s",
        app.id,
        urlencode(REDIRECT)
    );
    let (error, _) = error_after_trust(&browser, &q).await;
    assert_eq!(error, "invalid_request");
}

#[tokio::test]
async fn first_party_skips_consent() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, true, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    let page = browser.authorize(&query(&app, ""), "alice", "pw").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(query_param(&page.location.expect("location"), "code").is_some());
}

#[tokio::test]
async fn prompt_none_without_session() {
    let (_server, app, browser) = setup().await;
    let (error, state) =
        error_after_trust(&browser, &format!("{}&prompt=none", query(&app, ""))).await;
    assert_eq!(error, "login_required");
    assert_eq!(state.as_deref(), Some("xyz"));
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let (error, _) = error_after_trust(&browser, &format!("{}&prompt=none", query(&app, ""))).await;
    assert_eq!(error, "consent_required");
}

#[tokio::test]
async fn prompt_login_asks_signed_in_user_again() {
    let (_server, app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let request = format!("{}&prompt=login%20consent", query(&app, ""));

    let first = browser.get(&format!("/oauth/authorize?{request}")).await;

    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let login = first.location.expect("location");
    assert!(login.starts_with("/login?"), "{login}");
    let form = browser.get(&login).await;
    assert_eq!(
        form.status,
        StatusCode::OK,
        "the form shows to a signed-in user"
    );
    let return_to = form.field("return_to");
    assert!(return_to.contains("prompt=consent"), "{return_to}");
    assert!(!return_to.contains("login"), "{return_to}");
    let mut last = None;
    for (password, expected) in [
        ("wrong", StatusCode::UNAUTHORIZED),
        ("pw", StatusCode::SEE_OTHER),
    ] {
        let form = [
            ("_csrf", form.field("_csrf")),
            ("return_to", return_to.clone()),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = browser.post("/login", &form).await;
        assert_eq!(page.status, expected, "{password}: {}", page.body);
        last = Some(page);
    }
    let signed_in = last.expect("signed in");
    let consent = browser
        .get(signed_in.location.as_deref().expect("location"))
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(
        consent.body.contains("auth_request"),
        "the consent page shows"
    );

    for prompt in ["none%20login", "select_account", "login%20bogus"] {
        let q = format!("{}&prompt={prompt}", query(&app, ""));
        let (error, _) = error_after_trust(&browser, &q).await;
        assert_eq!(error, "invalid_request", "{prompt}");
    }
}

#[tokio::test]
async fn second_registered_uri_used_exactly() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let second = "https://client.example/second?tenant=a";
    let app = app(
        &server,
        ClientKind::AuthorizationCode,
        false,
        &[REDIRECT, second],
    )
    .await;
    let browser = Browser::new(&server);
    let q = query(&app, "").replace(&urlencode(REDIRECT), &urlencode(second));
    let consent = browser.authorize(&q, "alice", "pw").await;
    let location = browser
        .decide(&consent, true)
        .await
        .location
        .expect("location");
    assert!(
        location.starts_with("https://client.example/second?tenant=a&code="),
        "{location}"
    );
    for changed in [
        "https://client.example/second?tenant=b",
        "https://client.example/second?tenant=a&x=1",
    ] {
        let q = query(&app, "").replace(&urlencode(REDIRECT), &urlencode(changed));
        let page = browser.get(&format!("/oauth/authorize?{q}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{changed}");
    }
    // Without redirect_uri, a client with two registered URIs must say which.
    let q = format!(
        "response_type=code&client_id={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        app.id
    );
    let page = browser.get(&format!("/oauth/authorize?{q}")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn loopback_redirect_any_port() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(
        &server,
        ClientKind::Public,
        false,
        &["http://127.0.0.1/callback"],
    )
    .await;
    let browser = Browser::new(&server);
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256",
        app.id,
        urlencode("http://127.0.0.1:51234/callback")
    );
    let consent = browser.authorize(&q, "alice", "pw").await;
    assert_eq!(consent.status, StatusCode::OK);
    let location = browser
        .decide(&consent, true)
        .await
        .location
        .expect("location");
    assert!(location.starts_with("http://127.0.0.1:51234/callback?code="));
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let (_server, app, browser) = setup().await;
    check_page_headers(&browser.get("/login").await);
    let consent = browser.authorize(&query(&app, ""), "alice", "pw").await;
    check_page_headers(&consent);
    let done = browser.decide(&consent, true).await;
    assert_eq!(done.headers["referrer-policy"], "no-referrer");
    check_page_headers(&browser.get("/oauth/device").await);
    check_page_headers(&browser.get("/account/tokens").await);
}

#[tokio::test]
async fn login_return_to_stays_local() {
    let (_server, _app, browser) = setup().await;
    for target in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "http:/evil.com",
    ] {
        let other = Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: browser.base.clone(),
        };
        let page = other.sign_in("alice", "pw", target).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(
            page.location.as_deref(),
            Some("/account/tokens"),
            "{target}"
        );
    }
}

#[tokio::test]
async fn session_id_changes_at_sign_in() {
    let (server, _app, _browser) = setup().await;
    let login = server
        .http
        .get(server.url("/login"))
        .send()
        .await
        .expect("login page");
    let before = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        before.contains("HttpOnly") && before.contains("SameSite=Lax"),
        "{before}"
    );
    let cookie = before.split(';').next().expect("pair").to_owned();
    let html = login.text().await.expect("body");
    let page = Page {
        status: StatusCode::OK,
        location: None,
        headers: Default::default(),
        body: html,
    };
    let response = server
        .http
        .post(server.url("/login"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", page.field("_csrf").as_str()),
            ("username", "alice"),
            ("password", "pw"),
            ("return_to", "/x"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let new_cookie = after.split(';').next().expect("pair").to_owned();
    assert_ne!(cookie, new_cookie, "session id must change at sign-in");
    // The pre-login session id no longer exists, so it cannot be used.
    let response = server
        .http
        .get(server.url("/account/tokens"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = server
        .http
        .get(server.url("/account/tokens"))
        .header("cookie", &new_cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_same_message_and_backoff() {
    let (server, _app, browser) = setup().await;
    let mut bodies = Vec::new();
    for user in ["alice", "nobody"] {
        let page = browser.sign_in(user, "wrong", "/").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        bodies.push(
            page.body
                .contains("The user name or password is incorrect."),
        );
    }
    assert_eq!(bodies, [true, true]);
    for _ in 0..4 {
        browser.sign_in("alice", "wrong", "/").await;
    }
    let blocked = browser.sign_in("alice", "pw", "/").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers.contains_key("retry-after"));
    server.clock.advance(901);
    let page = browser.sign_in("alice", "pw", "/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "the back-off ends");
}

#[tokio::test]
async fn login_form_needs_csrf() {
    let (server, _app, _browser) = setup().await;
    let response = server
        .http
        .post(server.url("/login"))
        .form(&[("username", "alice"), ("password", "pw")])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_needs_csrf() {
    let (server, _app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let csrf = browser.get("/account/tokens").await.field("_csrf");
    let sessions = "SELECT COUNT(*) FROM sesame_sessions WHERE user_id IS NOT NULL";
    assert_eq!(server.count(sessions).await, 1);
    for form in [vec![], vec![("_csrf", "forged")]] {
        let page = browser.post("/logout", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(page.headers.get("set-cookie").is_none(), "{form:?}");
        assert_eq!(
            browser.get("/account/tokens").await.status,
            StatusCode::OK,
            "still signed in after {form:?}"
        );
        assert_eq!(server.count(sessions).await, 1, "{form:?}");
    }
    let page = browser.post("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/login"));
    assert_eq!(
        browser.get("/account/tokens").await.status,
        StatusCode::SEE_OTHER,
        "signed out with the CSRF token"
    );
    assert_eq!(server.count(sessions).await, 0);
}

/// Returns the `Set-Cookie` header of a response.
fn set_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Gets the sign-in page and signs in as alice with plain requests, since a cookie store
/// would not send a `Secure` cookie over HTTP. Returns both `Set-Cookie` headers.
async fn sign_in_cookies(server: &Server) -> (String, String) {
    let login = server
        .http
        .get(server.url("/login"))
        .send()
        .await
        .expect("login page");
    let anonymous = set_cookie(&login);
    let page = Page {
        status: StatusCode::OK,
        location: None,
        headers: Default::default(),
        body: login.text().await.expect("body"),
    };
    let response = server
        .http
        .post(server.url("/login"))
        .header("cookie", anonymous.split(';').next().expect("pair"))
        .form(&[
            ("_csrf", page.field("_csrf").as_str()),
            ("username", "alice"),
            ("password", "pw"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    (anonymous, set_cookie(&response))
}

#[tokio::test]
async fn session_cookie_secure_with_https_issuer() {
    let server = Server::start_with(data_dir(""), |config| {
        config.issuer = "https://sesame.example".to_owned();
    })
    .await;
    server.user("alice", "pw").await;
    let (anonymous, signed_in) = sign_in_cookies(&server).await;
    for cookie in [&anonymous, &signed_in] {
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert!(attributes.contains(&"Secure"), "{cookie}");
        assert!(attributes.contains(&"HttpOnly"), "{cookie}");
        assert!(attributes.contains(&"SameSite=Lax"), "{cookie}");
    }

    let plain = Server::start().await;
    plain.user("alice", "pw").await;
    let (anonymous, signed_in) = sign_in_cookies(&plain).await;
    for cookie in [&anonymous, &signed_in] {
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert!(!attributes.contains(&"Secure"), "http issuer: {cookie}");
    }
}

#[tokio::test]
async fn disabled_user_session_ends() {
    let (server, _app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    assert_eq!(browser.get("/account/tokens").await.status, StatusCode::OK);
    server.execute("UPDATE users SET disabled = TRUE").await;
    assert_eq!(
        browser.get("/account/tokens").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn challenge_matches_rfc_example() {
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, VERIFIER.as_bytes()));
    assert_eq!(computed, CHALLENGE);
}

#[tokio::test]
async fn openid_scope_yields_id_token() {
    let (server, app, browser) = setup().await;
    let extra = "&nonce=n-0S6_WzA2Mj";
    let q = query(&app, extra).replace("scope=read", "scope=openid+read");
    let consent = browser.authorize(&q, "alice", "pw").await;
    let location = browser
        .decide(&consent, true)
        .await
        .location
        .expect("location");
    let code = query_param(&location, "code").expect("code");
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = body["id_token"].as_str().expect("id_token");
    let jwk = server.sesame.signing_key().public_jwk().clone();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&app.id]);
    validation.set_issuer(&[&server.base]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .expect("valid id_token")
        .claims;
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["sub"], "1");
    assert!(claims["auth_time"].as_i64().is_some());
    let access = body["access_token"].as_str().expect("access");
    let hash = digest::digest(&digest::SHA256, access.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]);
    assert_eq!(claims["at_hash"], expected);
    let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let no_openid = code_for(&server, &app, &browser, "").await;
    let (_, body) = redeem(&server, &app, &no_openid, Some(VERIFIER)).await;
    assert!(body.get("id_token").is_none());
}
