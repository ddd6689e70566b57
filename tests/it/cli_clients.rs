//! `sesame hash` and `sesame client --resource-server` from the command line.

use std::path::Path;

use serde_json::Value;
use sesame::grant::client_auth::ClientCredentials;
use sesame::{Config, Sesame};

use crate::common::{data_dir, run_cli};

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).expect("json output")
}

#[tokio::test]
async fn hash_replaces_plain_secrets_once() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(dir.path(), &["client", "--client", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let plain_id = json(&stdout)["id"].as_str().expect("id").to_owned();
    let (_, stdout, _) = run_cli(dir.path(), &["client", "--client", "--json"], &[]);
    let hashed_id = json(&stdout)["id"].as_str().expect("id").to_owned();
    let bcrypt = bcrypt::hash("passport-secret", 4)
        .expect("bcrypt")
        .replacen("$2b$", "$2y$", 1);
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE oauth_clients SET secret = 'plain-passport-secret' WHERE id = ?")
        .bind(&plain_id)
        .execute(&pool)
        .await
        .expect("plant plain secret");
    sqlx::query("UPDATE oauth_clients SET secret = ? WHERE id = ?")
        .bind(&bcrypt)
        .bind(&hashed_id)
        .execute(&pool)
        .await
        .expect("plant bcrypt secret");
    pool.close().await;

    assert!(
        !authenticates(dir.path(), &plain_id, "plain-passport-secret").await,
        "a plain stored secret must never be compared"
    );

    let (code, stdout, stderr) = run_cli(dir.path(), &["hash", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json(&stdout)["hashed"], 1);
    let (code, stdout, _) = run_cli(dir.path(), &["hash"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing changed"), "{stdout}");

    let sesame = open(dir.path()).await;
    let stored = stored_secret(&sesame, &plain_id).await.expect("secret");
    assert!(stored.starts_with("sha256:"), "{stored}");
    assert!(!stored.contains("plain-passport-secret"));
    assert_eq!(stored_secret(&sesame, &hashed_id).await, Some(bcrypt));
    sesame.close().await;
    assert!(authenticates(dir.path(), &plain_id, "plain-passport-secret").await);
    assert!(!authenticates(dir.path(), &plain_id, &stored).await);
    assert!(authenticates(dir.path(), &hashed_id, "passport-secret").await);
}

async fn open(dir: &Path) -> Sesame {
    let config = Config::for_data_dir(dir).expect("config");
    Sesame::open(config).await.expect("opens")
}

async fn stored_secret(sesame: &Sesame, id: &str) -> Option<String> {
    sesame
        .store()
        .client(id)
        .await
        .expect("query")
        .expect("client")
        .secret_hash
}

/// Checks whether the client authenticates with `secret`, as the token endpoint does.
async fn authenticates(dir: &Path, id: &str, secret: &str) -> bool {
    let sesame = open(dir).await;
    let credentials = ClientCredentials {
        client_id: id.to_owned(),
        secret: Some(secret.to_owned()),
        via_basic: true,
    };
    let result = sesame::grant::client_auth::authenticate(&sesame, &credentials).await;
    sesame.close().await;
    result.is_ok()
}

#[tokio::test]
async fn resource_server_clients() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(
        dir.path(),
        &["client", "--resource-server", "--json"],
        &[("SESAME_ISSUER", "https://auth.example.com")],
    );
    assert_eq!(code, 0, "{stderr}");
    let created = json(&stdout);
    assert_eq!(created["audience"], "https://auth.example.com");
    assert_eq!(created["grant_types"], serde_json::json!([]));
    assert_eq!(created["confidential"], true);
    assert!(created["secret"].is_string());

    let (code, stdout, stderr) = run_cli(
        dir.path(),
        &[
            "client",
            "--resource-server",
            "--audience",
            "https://api.example.com",
            "--name",
            "API",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Audience: https://api.example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("Client secret:"), "{stdout}");

    let (code, _, stderr) = run_cli(
        dir.path(),
        &[
            "client",
            "--client",
            "--audience",
            "https://api.example.com",
        ],
        &[],
    );
    assert_eq!(code, 2, "--audience needs --resource-server: {stderr}");
    for bad in ["not a uri", "https://api.example.com/#x", "/relative"] {
        let (code, _, stderr) = run_cli(
            dir.path(),
            &["client", "--resource-server", "--audience", bad],
            &[],
        );
        assert_eq!(code, 1, "{bad}: {stderr}");
        assert!(stderr.contains("audience"), "{stderr}");
    }
    let (_, stdout, _) = run_cli(dir.path(), &["client", "list", "--json"], &[]);
    let audiences: Vec<Value> = json(&stdout)["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|client| client["audience"].clone())
        .filter(|audience| !audience.is_null())
        .collect();
    assert_eq!(audiences.len(), 2, "{stdout}");
    assert!(
        !stdout.contains("secret\":\""),
        "list never shows secrets: {stdout}"
    );
}

#[test]
fn arguments_that_do_not_fit_together_exit_2() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(dir.path(), &["client", "--name", "web"], &[]);
    assert_eq!(code, 2, "no client kind is a usage error: {stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--redirect-uri"), "{stderr}");
    let (code, _, stderr) = run_cli(
        dir.path(),
        &["client", "--resource-server", "--scopes", "read"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("drop --scopes"), "{stderr}");
    let (code, _, stderr) = run_cli(dir.path(), &["client", "revoke", "no-such-client"], &[]);
    assert_eq!(
        code, 1,
        "a client that does not exist is not a usage error: {stderr}"
    );
}

#[test]
fn bad_argument_values_exit_2() {
    let dir = data_dir("");
    let cases: [(&[&str], &str); 9] = [
        (&["client", "--public"], "--redirect-uri"),
        (&["client", "--client", "--name", ""], "--name"),
        (&["client", "--client", "--name", "  "], "--name"),
        (&["user", "add", " "], "NAME"),
        (
            &["keys", "--alg", "es256", "--length", "4096"],
            "RSA keys only",
        ),
        (
            &["keys", "--force", "--length", "100"],
            "2048, 3072 or 4096",
        ),
        (&["install", "--length", "1024"], "2048, 3072 or 4096"),
        (&["purge", "--hours", "-1"], "--hours"),
        (&["user", "add", ""], "NAME"),
    ];
    for (args, named) in cases {
        let (code, stdout, stderr) = run_cli(dir.path(), args, &[]);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("sesame.db").exists(),
        "a usage error installs nothing"
    );
}

#[test]
fn redirect_uris_checked_as_over_http() {
    let dir = data_dir("");
    let many: Vec<String> = (0..33)
        .map(|n| format!("https://app.example/{n}"))
        .collect();
    let long: Vec<String> = (0..5)
        .map(|n| format!("https://app.example/{n}/{}", "p".repeat(1970)))
        .collect();
    for (uris, named) in [(many, "at most 32"), (long, "8000")] {
        let mut args = vec!["client", "--name", "web"];
        for uri in &uris {
            args.extend(["--redirect-uri", uri.as_str()]);
        }
        let (code, stdout, stderr) = run_cli(dir.path(), &args, &[]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("database"), "{stderr}");
    }
    let (code, stdout, _) = run_cli(dir.path(), &["client", "list", "--json"], &[]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("\"web\""), "{stdout}");
}

#[test]
fn list_marks_current_personal_client() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(dir.path(), &["install", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let installed = json(&stdout);
    let first_personal = installed["personal_access_client"].as_str().expect("id");
    let password = installed["password_client"].as_str().expect("id");
    let (code, stdout, stderr) = run_cli(dir.path(), &["client", "--personal", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let created = json(&stdout);
    assert_eq!(created["current_personal_access_client"], true, "{stdout}");
    let second_personal = created["id"].as_str().expect("id").to_owned();
    let (code, stdout, stderr) = run_cli(dir.path(), &["client", "--client", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        json(&stdout)["current_personal_access_client"],
        false,
        "{stdout}"
    );
    let machine = json(&stdout)["id"].as_str().expect("id").to_owned();

    let current = |id: &str| {
        let (_, stdout, _) = run_cli(dir.path(), &["client", "list", "--json"], &[]);
        json(&stdout)["clients"]
            .as_array()
            .expect("clients")
            .iter()
            .find(|client| client["id"] == id)
            .map(|client| client["current_personal_access_client"].clone())
    };
    assert_eq!(current(first_personal), Some(Value::Bool(false)));
    assert_eq!(current(&second_personal), Some(Value::Bool(true)));
    assert_eq!(current(password), Some(Value::Bool(false)));
    assert_eq!(current(&machine), Some(Value::Bool(false)));

    let (_, text, _) = run_cli(dir.path(), &["client", "list"], &[]);
    let marked: Vec<&str> = text
        .lines()
        .filter(|line| line.ends_with("current personal access client"))
        .collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(marked[0].starts_with(&second_personal), "{text}");

    // A revoked personal client is not current, although the record still names it.
    let (code, _, stderr) = run_cli(dir.path(), &["client", "revoke", &second_personal], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(current(&second_personal), Some(Value::Bool(false)));
    let (_, text, _) = run_cli(dir.path(), &["client", "list"], &[]);
    assert!(!text.contains("current"), "{text}");
}
