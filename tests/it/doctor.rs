//! `sesame doctor` on the database the suite runs against: SQLite, or PostgreSQL or MariaDB
//! when `SESAME_TEST_DATABASE` names one.

use serde_json::Value;
use sesame::keys::{KeyAlgorithm, SigningKey};

use crate::common::{TestDatabase, data_dir, run_cli};

#[tokio::test]
async fn doctor_checks_every_backend() {
    let dir = data_dir("");
    let database = TestDatabase::create().await;
    let mut env = Vec::new();
    if let Some(database) = &database {
        env.push(("SESAME_DATABASE_URL", database.url.as_str()));
    }

    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor", "--json"], &env);
    assert_eq!(
        code, 1,
        "an empty database is not healthy\n{stdout}\n{stderr}"
    );

    let (code, stdout, stderr) = run_cli(dir.path(), &["install"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor", "--json"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("doctor prints JSON");
    assert_eq!(report["healthy"], true, "{report}");

    let url = match &database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("sesame.db").display()),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query("DELETE FROM oauth_clients")
        .execute(&pool)
        .await
        .expect("delete clients");
    pool.close().await;
    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor", "--json"], &env);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("doctor prints JSON");
    let fixes: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|finding| finding["fix"].as_str())
        .collect();
    assert!(fixes.contains(&"sesame client --personal"), "{fixes:?}");
}

/// A key file no rotation recorded, and a second current key, which concurrent rotations of
/// older builds could leave, are both reported.
#[tokio::test]
async fn stray_key_file_and_second_current_key_reported() {
    let dir = data_dir("");
    let database = TestDatabase::create().await;
    let mut env = Vec::new();
    if let Some(database) = &database {
        env.push(("SESAME_DATABASE_URL", database.url.as_str()));
    }
    let (code, stdout, stderr) = run_cli(dir.path(), &["install"], &env);
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    let (stray, pem) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key");
    sesame::keys::write_rotated_key_file(dir.path(), &stray, &pem).expect("key file");
    let (second, _) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key");
    let url = match &database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("sesame.db").display()),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    let insert = format!(
        "INSERT INTO sesame_keys (kid, alg, jwk, state, replaces, created_at, updated_at) \
         VALUES ('{}', 'ES256', '{}', 'current', NULL, 1, 1)",
        second.kid(),
        second.public_jwk()
    );
    sqlx::query(&insert)
        .execute(&pool)
        .await
        .expect("second current key");
    pool.close().await;

    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor", "--json"], &env);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("doctor prints JSON");
    let problems: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["ok"] == false)
        .filter_map(|finding| finding["message"].as_str())
        .collect();
    let stray_file = format!("key file {}.pem was not recorded", stray.kid());
    assert!(
        problems.iter().any(|message| message.contains(&stray_file)),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|message| message.starts_with("2 keys are current")
                && message.contains(second.kid())),
        "{problems:?}"
    );
}
