//! Hostile requests around the authorization code: malformed authorization requests, codes
//! redeemed after their grant changed, and consent and sessions shared between users.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame::store::ClientKind;

use super::{
    App, CHALLENGE, REDIRECT, app, approve, code_for, code_query, post_token, redeem_form,
};
use crate::browser::{Browser, query_param, urlencode};
use crate::common::{Server, decode_parts};

async fn setup() -> (Server, App, Browser) {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    (server, app, browser)
}

/// Sends an authorization request and returns the `error` and `state` of its redirect.
async fn redirect_error(browser: &Browser, query: &str) -> (String, Option<String>) {
    let page = browser.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{query}: {}", page.body);
    let location = page.location.expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(query_param(&location, "code").is_none(), "{location}");
    (
        query_param(&location, "error").unwrap_or_default(),
        query_param(&location, "state"),
    )
}

// catalogue 110, 116: a repeated `state` is a malformed request, and so is an empty PKCE
// challenge, because an empty value counts as a missing one.
#[tokio::test]
async fn ambiguous_or_empty_parameters_redirect_invalid_request() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let public = app(&server, ClientKind::Public, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let base = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read",
        public.id,
        urlencode(REDIRECT)
    );
    let pkce = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256");
    for query in [
        format!("{base}&state=a&state=b{pkce}"),
        format!("{base}&state=s&code_challenge=&code_challenge_method=S256"),
        format!("{base}&state=s&code_challenge={CHALLENGE}&code_challenge_method="),
        format!("{base}&state=s{pkce}&code_challenge={CHALLENGE}"),
        format!("{base}&state=s{pkce}&scope=read"),
    ] {
        let (error, _) = redirect_error(&browser, &query).await;
        assert_eq!(error, "invalid_request", "{query}");
    }
    let (_, state) = redirect_error(&browser, &format!("{base}&state=a&state=b{pkce}")).await;
    assert_eq!(state, None, "neither copy of a repeated state is echoed");
    let (error, _) = redirect_error(
        &browser,
        &format!("{base}&state=s{pkce}&response_mode=fragment"),
    )
    .await;
    assert_eq!(
        error, "invalid_request",
        "only response_mode=query is supported"
    );
    let page = browser
        .get(&format!(
            "/oauth/authorize?{base}&state=s&code_challenge=&code_challenge_method=S256"
        ))
        .await;
    let location = page.location.expect("location");
    let description = query_param(&location, "error_description").unwrap_or_default();
    assert!(
        description.contains("without a code_challenge"),
        "the description names the missing challenge, not the method: {description}"
    );
    let codes = server.count("SELECT COUNT(*) FROM oauth_auth_codes").await;
    assert_eq!(codes, 0);
}

// catalogue 115: a client id with a NUL byte names no client, so no redirect.
#[tokio::test]
async fn nul_in_client_id_shows_page() {
    let (_server, app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    for client_id in [format!("{}%00", app.id), format!("{}%00evil", app.id)] {
        let query = format!(
            "response_type=code&client_id={client_id}&redirect_uri={}\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            urlencode(REDIRECT)
        );
        let page = browser.get(&format!("/oauth/authorize?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        assert!(page.location.is_none(), "{client_id}");
    }
}

// catalogue 28, 35: out-of-range verifiers and damaged codes are `invalid_grant`, never 500.
#[tokio::test]
async fn damaged_codes_and_verifiers_invalid_grant() {
    let (server, app, browser) = setup().await;
    // 8,000 characters stays under the form value limit (8 KiB), above which the request is
    // `invalid_request` before the verifier is read, as the last check below shows.
    for verifier in ["a".repeat(42), "a".repeat(129), "a".repeat(8_000)] {
        let code = code_for(&browser, &app, "alice").await;
        let mut form = redeem_form(&app, &code);
        form[3].1 = verifier.clone();
        let (status, body) = post_token(&server, app.basic(), &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{} chars", verifier.len());
        assert_eq!(body["error"], "invalid_grant", "{} chars", verifier.len());
    }

    let code = code_for(&browser, &app, "alice").await;
    let mut form = redeem_form(&app, &code);
    form[3].1 = "a".repeat(10_000);
    let (status, body) = post_token(&server, app.basic(), &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");

    let code = code_for(&browser, &app, "alice").await;
    let mut flipped = code.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let longer = format!("{code}A");
    for bad in [flipped.as_str(), longer.as_str(), &"A".repeat(4000)] {
        let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(!description.contains("decrypt"), "{description}");
    }
    let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "damaged copies do not spend the code: {body}"
    );
}

// catalogue 103: the token request cannot add scopes to what the user consented to.
#[tokio::test]
async fn token_request_scope_cannot_widen_grant() {
    let (server, app, browser) = setup().await;
    let code = code_for(&browser, &app, "alice").await;
    let mut form = redeem_form(&app, &code);
    form.push(("scope".to_owned(), "read write".to_owned()));

    let (status, body) = post_token(&server, app.basic(), &form).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["scopes"], json!(["read"]));
}

// catalogue 34: a code is worth nothing once its client is revoked or its user is gone.
#[tokio::test]
async fn code_dies_with_client_or_user() {
    let (server, app, browser) = setup().await;
    let code = code_for(&browser, &app, "alice").await;
    server
        .sesame
        .store()
        .revoke_client(&app.id, server.sesame.now())
        .await
        .expect("revoke client");

    let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");

    for statement in ["UPDATE users SET disabled = TRUE", "DELETE FROM users"] {
        let (server, app, browser) = setup().await;
        let code = code_for(&browser, &app, "alice").await;
        server.execute(statement).await;
        let before = server.counts().await;

        let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{statement}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{statement}");
        assert_eq!(server.counts().await, before, "{statement}");
    }
}

// catalogue 160: replaying a code revokes what its first redemption issued, as introspection
// shows.
#[tokio::test]
async fn code_replay_makes_first_tokens_inactive() {
    let (server, app, browser) = setup().await;
    let code = code_for(&browser, &app, "alice").await;
    let (status, first) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    let (status, _) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    for name in ["access_token", "refresh_token"] {
        let token = first[name].as_str().expect("token");
        let reply = server
            .post_form("/oauth/introspect", app.basic(), &[("token", token)])
            .await;
        assert_eq!(reply.json(), json!({"active": false}), "{name}");
    }
    let access = first["access_token"].as_str().expect("access_token");
    let (status, challenge, _) = server.get_with("/oauth/userinfo", access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

// catalogue 158: remembered consent covers one redirect URI; another registered URI asks
// again.
#[tokio::test]
async fn other_redirect_uri_asks_consent_again() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let second = "https://client.example/second";
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT, second]).await;
    let browser = Browser::new(&server);
    approve(&browser, &code_query(&app, REDIRECT, ""), "alice").await;
    let again = browser
        .get(&format!(
            "/oauth/authorize?{}",
            code_query(&app, REDIRECT, "")
        ))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "consent remembered");

    let page = browser
        .get(&format!(
            "/oauth/authorize?{}",
            code_query(&app, second, "")
        ))
        .await;

    assert_eq!(page.status, StatusCode::OK, "a new redirect URI asks again");
    assert!(page.location.is_none());
}

// Remembered consent belongs to the whole redirect URI, also where two URIs share their first
// 255 characters, the prefix that the MySQL schema indexes.
#[tokio::test]
async fn long_redirect_uris_keep_own_consent() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let shared = format!("{REDIRECT}/{}", "p".repeat(300));
    let (first, second) = (format!("{shared}/one"), format!("{shared}/two"));
    let app = app(&server, ClientKind::AuthorizationCode, &[&first, &second]).await;
    let browser = Browser::new(&server);
    let query = |uri: &str, scope: &str| {
        code_query(&app, uri, "").replace("&scope=read&", &format!("&scope={scope}&"))
    };
    approve(&browser, &query(&first, "read"), "alice").await;
    approve(&browser, &query(&second, "read%20write"), "alice").await;

    let page = browser
        .get(&format!(
            "/oauth/authorize?{}",
            query(&first, "read%20write")
        ))
        .await;

    assert_eq!(page.status, StatusCode::OK, "the first URI asks for write");
    assert!(page.location.is_none());
}

// Malformed percent-encoding, invalid UTF-8 or a NUL in any parameter is invalid_request: on a
// page for client_id and redirect_uri, at the redirect URI for the rest, and a malformed state
// is never echoed in an altered form.
#[tokio::test]
async fn malformed_parameters_rejected() {
    let (_server, app, browser) = setup().await;
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let base = code_query(&app, REDIRECT, "").replace("&state=xyz", "");
    for extra in [
        "&state=%FF",
        "&state=%ZZ",
        "&state=a%00b",
        "&state=s&nonce=%E9",
        "&state=s&x%ZZ=1",
    ] {
        let (error, state) = redirect_error(&browser, &format!("{base}{extra}")).await;
        assert_eq!(error, "invalid_request", "{extra}");
        if !extra.starts_with("&state=s") {
            assert_eq!(state, None, "{extra}");
        }
    }

    // RFC 6749 allows only printable ASCII in error_description, so such a name is left out.
    let page = browser
        .get(&format!("/oauth/authorize?{base}&state=s&%0D%0A%FF=1"))
        .await;
    let location = page.location.expect("location");
    let description = query_param(&location, "error_description").unwrap_or_default();
    assert!(description.starts_with("a parameter"), "{description}");

    let malformed_client = base.replace(&app.id, &format!("{}%ZZ", app.id));
    let malformed_uri = base.replace("redirect_uri=", "redirect_uri=%E9");
    for query in [malformed_client, malformed_uri] {
        let page = browser.get(&format!("/oauth/authorize?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.location.is_none(), "{query}");
    }
}

// catalogue B15: after reuse revokes a family, the same user and client can start over.
#[tokio::test]
async fn fresh_authorization_works_after_reuse() {
    let (server, app, browser) = setup().await;
    let code = code_for(&browser, &app, "alice").await;
    let (_, first) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;
    let refresh = first["refresh_token"].as_str().expect("refresh_token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, _) = post_token(&server, app.basic(), &form).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post_token(&server, app.basic(), &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let code = code_for(&browser, &app, "alice").await;
    let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, claims) = decode_parts(body["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["sub"], "1");
}

// catalogue B16: codes are bound to the user who approved them, not to the browser, so a
// second user signing in neither revokes the first code nor inherits it.
#[tokio::test]
async fn codes_stay_with_approving_user() {
    let (server, app, browser) = setup().await;
    let bob = server.user("bob", "pw").await;
    let alice_code = code_for(&browser, &app, "alice").await;
    let csrf = browser.get("/account/tokens").await.field("_csrf");
    let signed_out = browser.post("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    let bob_code = code_for(&browser, &app, "bob").await;

    let subject = |body: &Value| {
        decode_parts(body["access_token"].as_str().expect("access_token")).1["sub"].clone()
    };
    let (status, alice_tokens) =
        post_token(&server, app.basic(), &redeem_form(&app, &alice_code)).await;
    assert_eq!(status, StatusCode::OK, "{alice_tokens}");
    assert_eq!(subject(&alice_tokens), "1");
    let (status, bob_tokens) =
        post_token(&server, app.basic(), &redeem_form(&app, &bob_code)).await;
    assert_eq!(status, StatusCode::OK, "{bob_tokens}");
    assert_eq!(subject(&bob_tokens), bob.to_string());
}

// catalogue B10: any user may authorize any client (ownership decides who manages it), and
// a client a user registered is third-party, so another user sees the consent page.
#[tokio::test]
async fn user_may_authorize_another_users_client() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let robert = server.user("robert", "pw").await;
    let robert_token = server.pat(robert, &["sesame:account"]).await;
    let created = server
        .send_json(
            Method::POST,
            "/oauth/clients",
            Some(&robert_token),
            Some(&json!({"name": "Robert's App", "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created = created.json();
    let app = App {
        id: created["id"].as_str().expect("id").to_owned(),
        secret: created["secret"].as_str().expect("secret").to_owned(),
    };
    let browser = Browser::new(&server);

    let consent = browser
        .authorize(&code_query(&app, REDIRECT, ""), "alice", "pw")
        .await;

    assert_eq!(
        consent.status,
        StatusCode::OK,
        "third-party clients ask consent"
    );
    let location = browser
        .decide(&consent, true)
        .await
        .location
        .expect("location");
    let code = query_param(&location, "code").expect("code");
    let (status, body) = post_token(&server, app.basic(), &redeem_form(&app, &code)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read");
}
