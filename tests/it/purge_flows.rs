//! `sesame purge` on the rows of unfinished flows: browser sessions, authorization codes and
//! device codes.

use serde_json::Value;
use sesame::store::{ClientKind, NewAuthCode};

use crate::common::{Server, sesame_bin};

/// Runs `sesame purge ARGS` on the server's database with the system clock, checks that it
/// succeeded and returns its stdout.
fn purge_cli(server: &Server, args: &[&str]) -> String {
    let mut command = std::process::Command::new(sesame_bin());
    command
        .arg("--data-dir")
        .arg(server.data_path())
        .arg("purge")
        .args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("SESAME_") {
            command.env_remove(name);
        }
    }
    command.env("SESAME_DATABASE_URL", &server.sesame.config().database_url);
    let output = command.output().expect("sesame runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts one flow of each kind: an anonymous browser session, an authorization code and a
/// device code, each still valid.
async fn start_flows(server: &Server) {
    let user_id = server.user("alice", "pw").await;
    let login = server
        .http
        .get(server.url("/login"))
        .send()
        .await
        .expect("request");
    assert!(login.status().is_success());

    // The code table has no foreign key, so any client id serves for a stored code.
    let (device_client, _) = server.client(ClientKind::Device, None).await;
    let now = server.sesame.now();
    let code = NewAuthCode {
        id: uuid::Uuid::now_v7().to_string(),
        code_hash: format!("hash-{}", uuid::Uuid::new_v4()),
        user_id,
        client_id: device_client.clone(),
        scopes: vec!["read".to_owned()],
        redirect_uri: None,
        code_challenge: None,
        nonce: None,
        auth_time: now,
        created_at: now,
        expires_at: now + 60,
    };
    server
        .sesame
        .store()
        .insert_auth_code(&code)
        .await
        .expect("code stored");

    let started = server
        .http
        .post(server.url("/oauth/device/code"))
        .form(&[("client_id", device_client.as_str())])
        .send()
        .await
        .expect("request");
    assert!(started.status().is_success());
}

async fn flow_counts(server: &Server) -> [i64; 3] {
    [
        server.count("SELECT COUNT(*) FROM sesame_sessions").await,
        server.count("SELECT COUNT(*) FROM oauth_auth_codes").await,
        server
            .count("SELECT COUNT(*) FROM oauth_device_codes")
            .await,
    ]
}

#[tokio::test]
async fn purge_deletes_only_expired_flows() {
    let server = Server::start().await;
    start_flows(&server).await;
    assert_eq!(flow_counts(&server).await, [1, 1, 1]);

    let stdout = purge_cli(&server, &["--json"]);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["sessions"], 0, "{stdout}");
    assert_eq!(report["authorization_codes"], 0, "{stdout}");
    assert_eq!(report["device_codes"], 0, "{stdout}");
    assert_eq!(flow_counts(&server).await, [1, 1, 1]);

    for table in ["sesame_sessions", "oauth_auth_codes", "oauth_device_codes"] {
        server
            .execute(&format!("UPDATE {table} SET expires_at = 1"))
            .await;
    }
    let stdout = purge_cli(&server, &["--revoked"]);
    assert!(!stdout.contains("expired sessions"), "{stdout}");
    assert_eq!(
        flow_counts(&server).await,
        [1, 1, 1],
        "--revoked keeps them"
    );

    let stdout = purge_cli(&server, &[]);
    assert!(
        stdout.contains("Deleted 1 expired sessions, 1 authorization codes and 1 device codes."),
        "{stdout}"
    );
    assert_eq!(flow_counts(&server).await, [0, 0, 0]);
}

#[tokio::test]
async fn keep_hours_applies_to_flows() {
    let server = Server::start().await;
    start_flows(&server).await;
    let now = server.sesame.now();
    for table in ["sesame_sessions", "oauth_auth_codes", "oauth_device_codes"] {
        server
            .execute(&format!("UPDATE {table} SET expires_at = {}", now - 1800))
            .await;
    }
    let stdout = purge_cli(&server, &["--hours", "1", "--json"]);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["sessions"], 0, "{stdout}");
    assert_eq!(flow_counts(&server).await, [1, 1, 1]);
    let stdout = purge_cli(&server, &["--json"]);
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["sessions"], 1, "{stdout}");
    assert_eq!(report["authorization_codes"], 1, "{stdout}");
    assert_eq!(report["device_codes"], 1, "{stdout}");
}
