//! Redirect URIs at the authorization endpoint: a requested URI must equal a registered one
//! byte for byte (only a loopback IP literal's port may vary), and any mismatch shows an
//! error page instead of redirecting.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sesame::store::ClientKind;

use super::{CHALLENGE, REDIRECT, app, approve, code_query};
use crate::browser::{Browser, query_param, urlencode};
use crate::common::Server;

/// Requests authorization at each of `uris` and asserts an error page with no redirect,
/// and that no code was stored.
async fn assert_error_pages(server: &Server, browser: &Browser, client_id: &str, uris: &[&str]) {
    for uri in uris {
        let query = format!(
            "response_type=code&client_id={client_id}&redirect_uri={}&state=s\
             &code_challenge={CHALLENGE}&code_challenge_method=S256",
            urlencode(uri)
        );
        let page = browser.get(&format!("/oauth/authorize?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(page.location.is_none(), "{uri} redirected");
        assert!(!page.body.contains("evil"), "{uri} reflected in the page");
    }
    let codes = server.count("SELECT COUNT(*) FROM oauth_auth_codes").await;
    assert_eq!(codes, 0);
}

// catalogue 10, 11, 13, 43, 176, B14, B20
#[tokio::test]
async fn near_miss_redirect_uris_show_page() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let uris = [
        "https://client.example/cb/../../evil",
        "https://client.example/cb%2F..%2Fevil",
        "https://client.example/cb/..;/evil",
        "https://client.example/cb?x=1",
        "https://client.example/cb#a",
        "https://client.example/cb?code=evil&state=x",
        "https://client.example/cb#code=evil&iss=x",
        "https://CLIENT.EXAMPLE/cb",
        "https://client.example/CB",
        "https://client.example/cb/",
        "https://client.example:443/cb",
        "https://a@b@evil.com/cb",
        "https://client.example@evil.com/cb",
        "https://client.example.evil.net/cb",
        "https://client.example/cb\u{0}evil",
        "https://client.example/cb ",
    ];
    assert_error_pages(&server, &browser, &app.id, &uris).await;
}

// catalogue B14: a registered host with capitals matches only itself.
#[tokio::test]
async fn registered_host_case_must_match() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let registered = "https://Client.Example/cb";
    let app = app(&server, ClientKind::AuthorizationCode, &[registered]).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    assert_error_pages(
        &server,
        &browser,
        &app.id,
        &["https://client.example/cb", "https://Client.Example/CB"],
    )
    .await;

    let page = browser
        .get(&format!(
            "/oauth/authorize?{}",
            code_query(&app, registered, "")
        ))
        .await;

    assert_eq!(
        page.status,
        StatusCode::OK,
        "the exact URI gets the consent page"
    );
}

// catalogue 14, 41, B17: a loopback registration never reaches another host, a loopback
// IP's port may vary but its path and query may not, and `localhost` is a name whose port
// is fixed.
#[tokio::test]
async fn loopback_registration_never_reaches_other_hosts() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(
        &server,
        ClientKind::Public,
        &["http://localhost/cb", "http://127.0.0.1/callback"],
    )
    .await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let uris = [
        "http://localhost@evil.com/cb",
        "http://localhost.evil.com/cb",
        "http://localhost:51234/cb",
        "http://127.0.0.1:80@evil.com/callback",
        "http://127.0.0.1.evil.com/callback",
        "http://127.0.0.1:1234/callback?bar=foo",
        "http://127.0.0.1:1234/callback/",
        "http://localhost:51234/callback",
        "https://127.0.0.1:1234/callback",
    ];
    assert_error_pages(&server, &browser, &app.id, &uris).await;

    let query = code_query(&app, "http://127.0.0.1:40000/callback", "");
    let page = browser.get(&format!("/oauth/authorize?{query}")).await;

    assert_eq!(
        page.status,
        StatusCode::OK,
        "another port on 127.0.0.1 is fine"
    );
}

// catalogue 80: success and error redirects carry `iss`, equal to the metadata issuer.
#[tokio::test]
async fn redirects_carry_metadata_issuer() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let app = app(&server, ClientKind::AuthorizationCode, &[REDIRECT]).await;
    let browser = Browser::new(&server);
    let metadata: serde_json::Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let issuer = metadata["issuer"].as_str().expect("issuer");

    let success = approve(&browser, &code_query(&app, REDIRECT, ""), "alice").await;
    let error_query = code_query(&app, REDIRECT, "").replace("scope=read", "scope=admin");
    let error = browser
        .get(&format!("/oauth/authorize?{error_query}"))
        .await
        .location
        .expect("error redirect");

    assert_eq!(query_param(&success, "iss").as_deref(), Some(issuer));
    assert_eq!(
        query_param(&error, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(query_param(&error, "iss").as_deref(), Some(issuer));
    assert_eq!(query_param(&error, "state").as_deref(), Some("xyz"));
}

// catalogue 44, 176: the clients API refuses URIs that could run script, leave TLS, or carry
// the authorization response's own parameters.
#[tokio::test]
async fn clients_api_rejects_dangerous_redirect_uris() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    for uri in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://client.example/cb",
        "https://client.example/cb?code=evil",
        "https://client.example/cb?state=x",
        "https://client.example/cb?iss=x",
        "https://client.example/cb?error=x",
        "https://client.example/cb#code=evil",
        "https://client.example*",
        "https://evil.example\\@client.example/cb",
    ] {
        let body = json!({"name": "App", "redirect_uris": [uri]});

        let reply = server
            .send_json(Method::POST, "/oauth/clients", Some(&token), Some(&body))
            .await;

        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_redirect_uri", "{uri}");
    }
    let stored = server
        .count("SELECT COUNT(*) FROM oauth_clients WHERE user_id IS NOT NULL")
        .await;
    assert_eq!(stored, 0);
}

// Every redirect URI that passes the checks fits the columns that store it on every backend:
// a client's URIs together, and a loopback URI of the longest registrable length once a port
// is added.
#[tokio::test]
async fn longest_redirect_uris_never_500() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    let long = |n: usize| format!("https://client.example/{n}/{}", "p".repeat(1970));
    let body = json!({"name": "App", "redirect_uris": (0..5).map(long).collect::<Vec<_>>()});

    let reply = server
        .send_json(Method::POST, "/oauth/clients", Some(&token), Some(&body))
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_redirect_uri");
    let stored = server
        .count("SELECT COUNT(*) FROM oauth_clients WHERE user_id IS NOT NULL")
        .await;
    assert_eq!(stored, 0);

    let loopback = "http://127.0.0.1/cb";
    let longest = format!("{loopback}{}", "p".repeat(2000 - loopback.len()));
    let app = app(&server, ClientKind::AuthorizationCode, &[&longest]).await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let with_port = longest.replacen("127.0.0.1", "127.0.0.1:65535", 1);
    assert_error_pages(&server, &browser, &app.id, &[&with_port]).await;
}
