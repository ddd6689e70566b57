//! Hostile and edge-case requests, one module per category. Each test is named by the
//! behaviour it checks; `docs/hostile-cases.md` lists which test covers which catalogue case.

mod authorize;
mod bearer;
mod input;
mod races;
mod redirect;
mod token;

use std::future::Future;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use sesame::install::{ClientSpec, create_client_with};
use sesame::store::ClientKind;

use crate::browser::{Browser, query_param, urlencode};
use crate::common::Server;

/// The redirect URI the test applications register.
pub const REDIRECT: &str = "https://client.example/cb";
/// The PKCE verifier and S256 challenge of RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A registered application: its id and, for confidential clients, its secret.
pub struct App {
    pub id: String,
    pub secret: String,
}

impl App {
    /// Returns the Basic credentials of a confidential client, or `None` for a public one.
    pub fn basic(&self) -> Option<(&str, &str)> {
        (!self.secret.is_empty()).then_some((self.id.as_str(), self.secret.as_str()))
    }
}

/// Registers a third-party application of `kind` with `uris` as its redirect URIs.
pub async fn app(server: &Server, kind: ClientKind, uris: &[&str]) -> App {
    let mut spec = ClientSpec::new(kind, "Hostile Test App");
    spec.redirect_uris = uris.iter().map(|uri| (*uri).to_owned()).collect();
    let (client, secret) = create_client_with(&server.sesame, &spec)
        .await
        .expect("client created");
    App {
        id: client.id,
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    }
}

/// Builds an authorization request query for `app` at `redirect_uri`, with scope `read`,
/// state `xyz`, the S256 challenge, and `extra` appended as is.
pub fn code_query(app: &App, redirect_uri: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        app.id,
        urlencode(redirect_uri)
    )
}

/// Runs sign-in as `user` (password `pw`) and approval for `query`, and returns the
/// redirect location, which starts with `REDIRECT`.
pub async fn approve(browser: &Browser, query: &str, user: &str) -> String {
    let page = browser.authorize(query, user, "pw").await;
    // Remembered consent and first-party clients skip the page.
    let done = if page.status == StatusCode::OK {
        browser.decide(&page, true).await
    } else {
        page
    };
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.location.expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    location
}

/// Runs the authorization request for `app` as `user` and returns the code.
pub async fn code_for(browser: &Browser, app: &App, user: &str) -> String {
    let location = approve(browser, &code_query(app, REDIRECT, ""), user).await;
    query_param(&location, "code").expect("code")
}

/// Builds the form that redeems `code` at `REDIRECT` with the matching verifier.
pub fn redeem_form(app: &App, code: &str) -> Vec<(String, String)> {
    let mut form = vec![
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".to_owned(), code.to_owned()),
        ("redirect_uri".to_owned(), REDIRECT.to_owned()),
        ("code_verifier".to_owned(), VERIFIER.to_owned()),
    ];
    if app.secret.is_empty() {
        form.push(("client_id".to_owned(), app.id.clone()));
    }
    form
}

/// Builds a token request now and returns a future that sends it and reads the status and
/// JSON body. The future owns everything it needs, so it can run on another task.
pub fn post_token<K: AsRef<str>, V: AsRef<str>>(
    server: &Server,
    basic: Option<(&str, &str)>,
    form: &[(K, V)],
) -> impl Future<Output = (StatusCode, Value)> + Send + 'static {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    let mut request = server.http.post(server.url("/oauth/token")).form(&pairs);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    async move {
        let response = request.send().await.expect("token request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Starts every future `make` returns on its own task, releases them together behind a
/// barrier, and returns their outputs in completion order.
pub async fn at_once<T, F, Fut>(count: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        let work = make(index);
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            work.await
        });
    }
    let mut outputs = Vec::with_capacity(count);
    while let Some(output) = tasks.join_next().await {
        outputs.push(output.expect("task finished"));
    }
    outputs
}
