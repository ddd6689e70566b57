//! The embedding example: an axum application that mounts Sesame and guards its own routes,
//! one with the row-checked `AllScopes` and one with the verify-only `VerifiedToken`.

use reqwest::StatusCode;
use sesame::Sesame;
use sesame::store::ClientKind;

use crate::common::{Reply, TestDatabase, config_for, data_dir};

#[path = "../../examples/embedded.rs"]
#[allow(dead_code)]
mod example;

/// Serves the example's application on a loopback port and returns its base URL, its Sesame
/// and what must outlive the test.
async fn serve_example() -> (String, Sesame, impl Drop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let dir = data_dir("");
    let database = TestDatabase::create().await;
    let mut config = config_for(dir.path(), &base);
    if let Some(database) = &database {
        config.database_url = database.url.clone();
        config.auto_install = true;
    }
    let sesame = Sesame::open(config).await.expect("sesame opens");
    let task = tokio::spawn(axum::serve(listener, example::app(sesame.clone())).into_future());
    let guard = Running {
        task,
        _dir: dir,
        _database: database,
    };
    (base, sesame, guard)
}

struct Running {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn embedded_route_checks_scope() {
    let (base, sesame, _running) = serve_example().await;
    let (client, secret) = sesame::install::create_client(
        &sesame,
        ClientKind::ClientCredentials,
        "reports",
        Some(vec!["read".to_owned(), "write".to_owned()]),
    )
    .await
    .expect("client created");
    let secret = secret.expect("confidential client secret");
    let http = reqwest::Client::new();
    let token = |scope: &'static str| {
        http.post(format!("{base}/oauth/token"))
            .basic_auth(&client.id, Some(secret.expose()))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };
    let read: serde_json::Value = token("read")
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let write: serde_json::Value = token("write")
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let read = read["access_token"].as_str().expect("read token");
    let write = write["access_token"].as_str().expect("write token");
    let reports = |token: Option<&str>| {
        let mut request = http.get(format!("{base}/reports"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let allowed = Reply::read(reports(Some(read)).await.expect("request")).await;
    let forbidden = Reply::read(reports(Some(write)).await.expect("request")).await;
    let anonymous = Reply::read(reports(None).await.expect("request")).await;

    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    assert_eq!(allowed.json()["scopes"], serde_json::json!(["read"]));
    assert_eq!(allowed.json()["client_id"], client.id.as_str());
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert!(
        forbidden
            .header("www-authenticate")
            .contains("insufficient_scope"),
        "{}",
        forbidden.header("www-authenticate")
    );
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");
    let home = http.get(format!("{base}/")).send().await.expect("request");
    assert_eq!(home.status(), StatusCode::OK);
}

#[tokio::test]
async fn summary_route_skips_revocation_lookup() {
    let (base, sesame, _running) = serve_example().await;
    let (client, secret) = sesame::install::create_client(
        &sesame,
        ClientKind::ClientCredentials,
        "reports",
        Some(vec!["read".to_owned(), "write".to_owned()]),
    )
    .await
    .expect("client created");
    let secret = secret.expect("confidential client secret");
    let http = reqwest::Client::new();
    let token = |scope: &'static str| {
        http.post(format!("{base}/oauth/token"))
            .basic_auth(&client.id, Some(secret.expose()))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
    };
    let read: serde_json::Value = token("read")
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let write: serde_json::Value = token("write")
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let read = read["access_token"].as_str().expect("read token");
    let write = write["access_token"].as_str().expect("write token");
    let get = |path: &'static str, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let allowed = Reply::read(get("/summary", Some(read)).await.expect("request")).await;
    let forbidden = Reply::read(get("/summary", Some(write)).await.expect("request")).await;
    let anonymous = Reply::read(get("/summary", None).await.expect("request")).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    assert_eq!(allowed.json()["scopes"], serde_json::json!(["read"]));
    assert_eq!(allowed.json()["client_id"], client.id.as_str());
    assert_eq!(allowed.json()["subject"], client.id.as_str());
    assert_eq!(
        forbidden.status,
        StatusCode::FORBIDDEN,
        "{}",
        forbidden.text
    );
    assert!(
        forbidden
            .header("www-authenticate")
            .contains("scope=\"read\""),
        "{}",
        forbidden.header("www-authenticate")
    );
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");

    let revoked = http
        .post(format!("{base}/oauth/revoke"))
        .basic_auth(&client.id, Some(secret.expose()))
        .form(&[("token", read)])
        .send()
        .await
        .expect("request");
    assert_eq!(revoked.status(), StatusCode::OK);
    let reports = Reply::read(get("/reports", Some(read)).await.expect("request")).await;
    let summary = Reply::read(get("/summary", Some(read)).await.expect("request")).await;
    assert_eq!(reports.status, StatusCode::UNAUTHORIZED, "{}", reports.text);
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.text);
}
