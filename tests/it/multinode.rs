//! Three `sesame serve` processes on one network database, driven alternately: what one node
//! issues, revokes or rotates, every other node honours at once.
//!
//! These tests need a network database, so they run in the PostgreSQL and MariaDB passes
//! (`SESAME_TEST_DATABASE=postgres` or `mysql`) and return early in the SQLite pass.

use reqwest::StatusCode;
use serde_json::Value;
use sesame::Sesame;
use sesame::install::{ClientSpec, create_client_with};
use sesame::store::ClientKind;

use crate::browser::{Browser, query_param, urlencode};
use crate::common::{Reply, TestDatabase, data_dir, run_cli};
use crate::nodes::{ISSUER, Node, SharedKeys, Started, admin, node_env};

const REDIRECT: &str = "https://client.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct App {
    id: String,
    secret: String,
}

/// Creates a database on the backend `SESAME_TEST_DATABASE` names; returns `None` in the
/// SQLite pass.
pub async fn network_database(test: &str) -> Option<TestDatabase> {
    let database = TestDatabase::create().await;
    if database.is_none() {
        eprintln!("{test}: skipped, it needs SESAME_TEST_DATABASE=postgres or mysql");
    }
    database
}

/// Builds a browser whose cookie jar goes from node to node, as behind a load balancer.
fn browser_at(node: &Node) -> Browser {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Browser {
        http,
        base: node.base.clone(),
    }
}

async fn code_client(sesame: &Sesame) -> App {
    let mut spec = ClientSpec::new(ClientKind::AuthorizationCode, "Example App");
    spec.redirect_uris = vec![REDIRECT.to_owned()];
    let (client, secret) = create_client_with(sesame, &spec).await.expect("client");
    App {
        id: client.id,
        secret: secret.map(|s| s.expose().to_owned()).expect("secret"),
    }
}

/// Runs sign-in and consent (consent is remembered after the first time) at the browser's
/// current node and returns the code.
async fn authorize(browser: &Browser, app: &App) -> String {
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        app.id,
        urlencode(REDIRECT)
    );
    let page = browser.authorize(&query, "alice", "pw").await;
    let done = if page.status == StatusCode::OK {
        browser.decide(&page, true).await
    } else {
        page
    };
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.location.expect("location");
    assert_eq!(query_param(&location, "iss").as_deref(), Some(ISSUER));
    query_param(&location, "code").expect("code")
}

async fn post_form(node: &Node, path: &str, app: &App, form: &[(&str, &str)]) -> Reply {
    let response = node
        .http
        .post(node.url(path))
        .basic_auth(&app.id, Some(&app.secret))
        .form(form)
        .send()
        .await
        .expect("request");
    Reply::read(response).await
}

async fn redeem(node: &Node, app: &App, code: &str) -> (String, String) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let reply = post_form(node, "/oauth/token", app, &form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

async fn refresh(node: &Node, app: &App, refresh_token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    post_form(node, "/oauth/token", app, &form).await
}

async fn is_active(node: &Node, app: &App, token: &str) -> bool {
    let reply = post_form(node, "/oauth/introspect", app, &[("token", token)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["active"].as_bool().expect("active")
}

async fn userinfo(node: &Node, token: &str) -> StatusCode {
    node.http
        .get(node.url("/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

/// Starts three nodes on one fresh database with shared keys, and a user and a client.
async fn deployment(database: &TestDatabase) -> (Vec<Node>, Sesame, App) {
    let keys = SharedKeys::generate();
    let env = node_env(&database.url, &keys);
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&env)).collect();
    let (sesame, _dir) = admin(&database.url, &keys).await;
    sesame
        .add_user("alice", Some("alice@example.com"), Some("pw"))
        .await
        .expect("user added");
    let app = code_client(&sesame).await;
    (nodes, sesame, app)
}

#[tokio::test]
async fn code_from_one_node_redeemed_at_another() {
    let Some(database) = network_database("code_from_one_node_redeemed_at_another").await else {
        return;
    };
    let (nodes, _sesame, app) = deployment(&database).await;
    let browser = browser_at(&nodes[0]);
    let code = authorize(&browser, &app).await;
    let (access, _) = redeem(&nodes[1], &app, &code).await;
    assert_eq!(userinfo(&nodes[2], &access).await, StatusCode::OK);

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let replay = post_form(&nodes[2], "/oauth/token", &app, &form).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    assert_eq!(replay.json()["error"], "invalid_grant");
    assert!(
        !is_active(&nodes[0], &app, &access).await,
        "a replayed code revokes the tokens it issued"
    );
}

#[tokio::test]
async fn revoke_at_one_node_holds_at_another() {
    let Some(database) = network_database("revoke_at_one_node_holds_at_another").await else {
        return;
    };
    let (nodes, _sesame, app) = deployment(&database).await;
    let browser = browser_at(&nodes[0]);
    let code = authorize(&browser, &app).await;
    let (access, _) = redeem(&nodes[0], &app, &code).await;
    assert!(is_active(&nodes[2], &app, &access).await);
    assert_eq!(userinfo(&nodes[2], &access).await, StatusCode::OK);

    let reply = post_form(&nodes[1], "/oauth/revoke", &app, &[("token", &access)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    assert!(!is_active(&nodes[2], &app, &access).await);
    assert_eq!(userinfo(&nodes[2], &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(userinfo(&nodes[0], &access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_replay_at_another_node_revokes_family() {
    let Some(database) = network_database("refresh_replay_at_another_node_revokes_family").await
    else {
        return;
    };
    let (nodes, _sesame, app) = deployment(&database).await;
    let browser = browser_at(&nodes[0]);
    let code = authorize(&browser, &app).await;
    let (_, first_refresh) = redeem(&nodes[0], &app, &code).await;

    let rotated = refresh(&nodes[0], &app, &first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let rotated: Value = rotated.json();
    let new_access = rotated["access_token"].as_str().expect("access_token");
    let new_refresh = rotated["refresh_token"].as_str().expect("refresh_token");
    assert!(is_active(&nodes[1], &app, new_access).await);

    let replay = refresh(&nodes[2], &app, &first_refresh).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text);
    assert_eq!(replay.json()["error"], "invalid_grant");

    let after = refresh(&nodes[1], &app, new_refresh).await;
    assert_eq!(after.status, StatusCode::BAD_REQUEST, "{}", after.text);
    assert_eq!(after.json()["error"], "invalid_grant");
    assert!(!is_active(&nodes[1], &app, new_access).await);
    assert!(!is_active(&nodes[2], &app, new_refresh).await);
    assert_eq!(
        userinfo(&nodes[0], new_access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn session_cookie_works_at_every_node() {
    let Some(database) = network_database("session_cookie_works_at_every_node").await else {
        return;
    };
    let (nodes, _sesame, app) = deployment(&database).await;
    let stranger = browser_at(&nodes[1]);
    let page = stranger.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "no session, so sign in");

    let mut browser = browser_at(&nodes[0]);
    let signed_in = browser.sign_in("alice", "pw", "/account/tokens").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );

    for node in &nodes[1..] {
        browser.base = node.base.clone();
        let page = browser.get("/account/tokens").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("alice"), "{}", page.body);
    }

    // The consent given at node 2 is remembered at node 3: the session and consent are
    // shared, so the request goes straight back to the client.
    browser.base = nodes[1].base.clone();
    let code = authorize(&browser, &app).await;
    browser.base = nodes[2].base.clone();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=read&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        app.id,
        urlencode(REDIRECT)
    );
    let page = browser.get(&format!("/oauth/authorize?{query}")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location.expect("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    let (access, _) = redeem(&nodes[0], &app, &code).await;
    assert_eq!(userinfo(&nodes[1], &access).await, StatusCode::OK);
}

/// The deployment steps the README gives: a shared key file, `sesame migrate` and
/// `sesame install` run once, then nodes started with `--no-migrate`, JSON logs and
/// `/readyz`, and `sesame purge` and `sesame doctor` run beside them.
#[tokio::test]
async fn installed_deployment_serves_without_migrating() {
    let Some(database) = network_database("installed_deployment_serves_without_migrating").await
    else {
        return;
    };
    let keys = SharedKeys::generate();
    let shared = tempfile::tempdir().expect("temp dir");
    let key_file = shared.path().join("oauth-private.key");
    std::fs::write(&key_file, &keys.private_pem).expect("key file");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let owner_only = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&key_file, owner_only).expect("chmod");
    }
    let key_path = key_file.display().to_string();
    let cli_env = [
        ("SESAME_DATABASE_URL", database.url.as_str()),
        ("SESAME_PRIVATE_KEY_FILE", key_path.as_str()),
        ("SESAME_ISSUER", ISSUER),
    ];
    let operator = data_dir("");

    let (code, _, stderr) = run_cli(operator.path(), &["migrate"], &cli_env);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run_cli(operator.path(), &["install"], &cli_env);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.is_empty(), "install prints what it made");

    let node_env: Vec<(String, String)> = cli_env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .chain([("SESAME_LOG_FORMAT".to_owned(), "json".to_owned())])
        .collect();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        match Node::try_start_with_args(data_dir(""), &["--no-migrate"], &node_env) {
            Started::Listening(node) => nodes.push(node),
            Started::Exited { code, log } => panic!("a node exited with {code}:\n{log}"),
        }
    }
    for node in &nodes {
        let response = node
            .http
            .get(node.url("/readyz"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{}", node.log());
        let log = node.log();
        assert!(!log.is_empty());
        for line in log.lines() {
            let parsed: Result<Value, _> = serde_json::from_str(line);
            assert!(parsed.is_ok(), "not a JSON log line: {line}");
        }
    }

    let (code, stdout, stderr) = run_cli(operator.path(), &["purge", "--hours", "24"], &cli_env);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = run_cli(operator.path(), &["doctor"], &cli_env);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
