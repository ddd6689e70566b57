//! `sesame token list` and `sesame token revoke` from the command line.

use serde_json::Value;
use sesame::{Config, Sesame};

use crate::common::{data_dir, run_cli};

/// Issues a personal access token for `user` and returns its id and the token.
fn issue(dir: &std::path::Path, user: &str, name: &str) -> (String, String) {
    let (code, stdout, stderr) = run_cli(
        dir,
        &["--json", "token", "--user", user, "--name", name],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).expect("json output");
    let id = created["token"]["id"].as_str().expect("id").to_owned();
    let token = created["accessToken"].as_str().expect("token").to_owned();
    (id, token)
}

fn listed_ids(dir: &std::path::Path, user: &str) -> Vec<String> {
    let (code, stdout, stderr) = run_cli(dir, &["--json", "token", "list", "--user", user], &[]);
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("json output");
    let tokens = listed["tokens"].as_array().expect("tokens");
    tokens
        .iter()
        .map(|token| token["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn token_list_and_revoke() {
    let dir = data_dir("");
    for name in ["alice", "bob"] {
        let (code, _, stderr) = run_cli(dir.path(), &["user", "add", name], &[]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (laptop_id, laptop) = issue(dir.path(), "alice", "laptop");
    let (ci_id, ci) = issue(dir.path(), "alice", "ci");
    let (bob_id, _) = issue(dir.path(), "bob", "phone");

    let mut listed = listed_ids(dir.path(), "alice");
    listed.sort();
    let mut expected = vec![laptop_id.clone(), ci_id.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let (code, stdout, _) = run_cli(dir.path(), &["token", "list", "--user", "alice"], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("{laptop_id}  laptop  []")),
        "{stdout}"
    );

    let (code, stdout, stderr) = run_cli(dir.path(), &["token", "revoke", &laptop_id], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Revoked personal access token"), "{stdout}");
    assert_eq!(listed_ids(dir.path(), "alice"), vec![ci_id.clone()]);
    assert_eq!(listed_ids(dir.path(), "bob"), vec![bob_id]);

    let sesame = Sesame::open(Config::for_data_dir(dir.path()).expect("config"))
        .await
        .expect("opens");
    let error = sesame
        .authenticate_bearer(&laptop)
        .await
        .expect_err("revoked");
    let revoked = sesame::BearerError::InvalidToken("the access token was revoked");
    assert_eq!(error, revoked);
    assert!(sesame.authenticate_bearer(&ci).await.is_ok());
    sesame.close().await;

    for id in [laptop_id.as_str(), "01a24757-0000-7000-8000-00000000cafe"] {
        let (code, stdout, stderr) = run_cli(dir.path(), &["token", "revoke", id], &[]);
        assert_eq!(code, 1, "{stdout}");
        assert!(
            stderr.contains("personal access token not found or already revoked"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn token_revoke_refuses_client_token() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["install"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query(
        "INSERT INTO oauth_access_tokens (id, user_id, client_id, name, scopes, revoked, kid, \
         created_at, updated_at, expires_at) \
         VALUES ('machine-token', NULL, 'machine', NULL, '[]', 0, 'kid', 0, 0, 4000000000)",
    )
    .execute(&pool)
    .await
    .expect("insert a client token row");

    let (code, _, stderr) = run_cli(dir.path(), &["token", "revoke", "machine-token"], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("personal access token not found or already revoked"),
        "{stderr}"
    );
    let revoked: i64 =
        sqlx::query_scalar("SELECT revoked FROM oauth_access_tokens WHERE id = 'machine-token'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(revoked, 0);
    pool.close().await;
}
