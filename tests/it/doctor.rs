//! `sesame doctor` on the database the suite runs against: SQLite, or PostgreSQL or MariaDB
//! when `SESAME_TEST_DATABASE` names one.

use serde_json::Value;

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
