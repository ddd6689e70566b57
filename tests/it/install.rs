//! Installing and the personal access client: the failure Passport users know as "Personal
//! access client not found" must not happen, and must name its fix when it cannot be avoided.

use std::sync::Arc;
use std::time::Duration;

use sesame::{Config, Sesame};

use crate::common::{
    Server, TestDatabase, data_dir, decode_parts, run_cli, run_cli_expecting_exit,
};

const PERSONAL_CLIENTS: &str =
    "SELECT COUNT(*) FROM oauth_clients WHERE personal_access_client = TRUE";

/// Runs a `SELECT COUNT(*)` query on the database at `url`.
async fn count_at(url: &str, query: &str) -> i64 {
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    sqlx::query_scalar::<_, i64>(query)
        .fetch_one(&mut connection)
        .await
        .expect("count query")
}

#[tokio::test]
async fn cli_token_works_on_fresh_data_dir() {
    let dir = data_dir("");
    let database = TestDatabase::create().await;
    sqlx::any::install_default_drivers();
    // Auto-install is off by default on a network database, so the test turns it on, as it
    // is by default on SQLite.
    let (url, env) = match &database {
        Some(database) => (
            database.url.clone(),
            vec![
                ("SESAME_DATABASE_URL", database.url.as_str()),
                ("SESAME_AUTO_INSTALL", "true"),
            ],
        ),
        None => (
            format!("sqlite://{}", dir.path().join("sesame.db").display()),
            Vec::new(),
        ),
    };
    // `migrate` makes the tables and nothing else, and the user is added by SQL, so that no
    // command has installed anything before `token` runs.
    let (code, _, stderr) = run_cli(dir.path(), &["migrate"], &env);
    assert_eq!(code, 0, "{stderr}");
    {
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("connect");
        sqlx::query("INSERT INTO users (name, created_at, updated_at) VALUES ('alice', 0, 0)")
            .execute(&mut connection)
            .await
            .expect("insert user");
    }
    assert!(!dir.path().join("oauth-private.key").exists());
    assert!(!dir.path().join("oauth-public.key").exists());
    for table in ["oauth_clients", "sesame_meta", "sesame_keys"] {
        let query = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(count_at(&url, &query).await, 0, "{table} before `token`");
    }

    let (code, stdout, stderr) = run_cli(
        dir.path(),
        &["token", "--user", "alice", "--scopes", "read"],
        &env,
    );

    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().split('.').count(), 3, "{stdout}");
    assert!(dir.path().join("oauth-private.key").exists());
    assert!(dir.path().join("oauth-public.key").exists());
    assert_eq!(count_at(&url, PERSONAL_CLIENTS).await, 1);
    let (_, claims) = decode_parts(stdout.trim());
    let client_id = claims["client_id"].as_str().expect("client_id");
    let personal = format!("{PERSONAL_CLIENTS} AND id = '{client_id}' AND revoked = FALSE");
    assert_eq!(
        count_at(&url, &personal).await,
        1,
        "token of another client"
    );
}

#[tokio::test]
async fn wiped_clients_repaired_by_create_token() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    server.execute("DELETE FROM oauth_clients").await;
    let token = server
        .sesame
        .create_token(user_id, "after wipe", &[])
        .await
        .expect("repaired");
    assert!(
        server
            .sesame
            .authenticate_bearer(&token.access_token)
            .await
            .is_ok()
    );
    assert_eq!(server.count(PERSONAL_CLIENTS).await, 1);
    server
        .sesame
        .create_token(user_id, "again", &[])
        .await
        .expect("second token");
    assert_eq!(server.count(PERSONAL_CLIENTS).await, 1);
}

#[tokio::test]
async fn revoked_personal_client_replaced() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let before = server.pat(user_id, &[]).await;
    server
        .execute("UPDATE oauth_clients SET revoked = TRUE WHERE personal_access_client = TRUE")
        .await;
    let after = server
        .sesame
        .create_token(user_id, "new", &[])
        .await
        .expect("token");
    assert_ne!(after.token.client_id, "");
    let active = "SELECT COUNT(*) FROM oauth_clients WHERE personal_access_client = TRUE AND revoked = FALSE";
    assert_eq!(server.count(active).await, 1);
    assert!(
        server.sesame.authenticate_bearer(&before).await.is_ok(),
        "old PATs stay valid"
    );
}

#[tokio::test]
async fn stale_personal_client_record_repaired() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let first = server.pat(user_id, &[]).await;
    let first_client = decode_parts(&first).1["client_id"].clone();
    let is_personal = async |id: &str| {
        let query = format!(
            "SELECT COUNT(*) FROM oauth_clients WHERE id = '{id}' AND personal_access_client = TRUE"
        );
        server.count(&query).await == 1
    };

    // The record names the password client, then no client at all: neither may issue.
    server
        .execute(
            "UPDATE sesame_meta SET value = (SELECT id FROM oauth_clients \
             WHERE password_client = TRUE) WHERE name = 'personal_access_client'",
        )
        .await;
    let repaired = server
        .sesame
        .create_token(user_id, "after", &[])
        .await
        .expect("token");
    assert_ne!(repaired.token.client_id, first_client);
    assert!(is_personal(&repaired.token.client_id).await, "{repaired:?}");

    server
        .execute("DELETE FROM sesame_meta WHERE name = 'personal_access_client'")
        .await;
    let again = server
        .sesame
        .create_token(user_id, "again", &[])
        .await
        .expect("token");
    assert!(is_personal(&again.token.client_id).await, "{again:?}");
}

#[tokio::test]
async fn concurrent_first_calls_make_one_client() {
    let dir = data_dir("");
    let config = Config::for_data_dir(dir.path()).expect("config");
    let sesame = Sesame::open(config).await.expect("opens");
    let user_id = sesame.add_user("alice", None, None).await.expect("user");
    sqlx::query("DELETE FROM oauth_clients")
        .execute(sesame.store().pool())
        .await
        .expect("wipe");
    sqlx::query("DELETE FROM sesame_meta")
        .execute(sesame.store().pool())
        .await
        .expect("wipe");
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..8 {
        let (sesame, barrier) = (sesame.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            sesame
                .create_token(user_id, &format!("t{index}"), &[])
                .await
                .map(|t| t.token.client_id)
        });
    }
    let mut client_ids = Vec::new();
    while let Some(result) = tasks.join_next().await {
        client_ids.push(result.expect("task").expect("token"));
    }
    client_ids.dedup();
    assert_eq!(client_ids.len(), 1, "{client_ids:?}");
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM oauth_clients WHERE personal_access_client = TRUE",
    )
    .fetch_one(sesame.store().pool())
    .await
    .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn concurrent_processes_on_empty_dir_make_one_client() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["user", "add", "alice"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let sqlite = dir.path().join("sesame.db");
    let wipe = format!("sqlite://{}", sqlite.display());
    {
        let pool = sqlx::SqlitePool::connect(&wipe).await.expect("connect");
        sqlx::query("DELETE FROM oauth_clients")
            .execute(&pool)
            .await
            .expect("wipe");
        sqlx::query("DELETE FROM sesame_meta WHERE name = 'personal_access_client'")
            .execute(&pool)
            .await
            .expect("wipe");
        pool.close().await;
    }
    let path = dir.path().to_owned();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || run_cli(&path, &["token", "--user", "alice"], &[]))
        })
        .collect();
    for handle in handles {
        let (code, _, stderr) = handle.join().expect("thread");
        assert_eq!(code, 0, "{stderr}");
    }
    let pool = sqlx::SqlitePool::connect(&wipe).await.expect("connect");
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM oauth_clients WHERE personal_access_client = TRUE",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn auto_install_off_names_fix() {
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["user", "add", "alice"], &[]);
    assert_eq!(code, 0);
    let wipe = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let pool = sqlx::SqlitePool::connect(&wipe).await.expect("connect");
    sqlx::query("DELETE FROM oauth_clients")
        .execute(&pool)
        .await
        .expect("wipe");
    pool.close().await;

    let env = [("SESAME_AUTO_INSTALL", "false")];
    let (code, stdout, stderr) = run_cli(dir.path(), &["token", "--user", "alice"], &env);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: personal access client not found"),
        "{stderr}"
    );
    assert!(lines[0].contains("`sesame client --personal`"), "{stderr}");

    let mut config = Config::for_data_dir(dir.path()).expect("config");
    config.auto_install = false;
    let sesame = Sesame::open(config).await.expect("opens");
    let error = sesame
        .create_token(1, "x", &[])
        .await
        .expect_err("missing client");
    assert!(
        matches!(error, sesame::Error::PersonalAccessClientMissing { .. }),
        "{error}"
    );

    let (code, _, stderr) = run_cli(dir.path(), &["client", "--personal"], &env);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run_cli(dir.path(), &["token", "--user", "alice"], &env);
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn missing_keys_without_auto_install_name_fix() {
    let dir = data_dir("");
    let database = TestDatabase::create().await;
    let mut env = vec![("SESAME_AUTO_INSTALL", "false")];
    if let Some(database) = &database {
        env.push(("SESAME_DATABASE_URL", database.url.as_str()));
    }
    let (code, _, stderr) = run_cli(dir.path(), &["install"], &env);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run_cli(dir.path(), &["user", "add", "alice"], &env);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_file(dir.path().join("oauth-private.key")).expect("remove private key");
    std::fs::remove_file(dir.path().join("oauth-public.key")).expect("remove public key");

    let token = run_cli(dir.path(), &["token", "--user", "alice"], &env);
    let serve = run_cli_expecting_exit(
        dir.path(),
        &["serve", "--bind", "127.0.0.1:0"],
        &env,
        Duration::from_secs(60),
    );

    for (command, (code, stdout, stderr)) in [("token", token), ("serve", serve)] {
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(stdout.is_empty(), "{command}: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{command}: {stderr}");
        assert!(
            lines[0].starts_with("error: no signing key found in"),
            "{command}: {stderr}"
        );
        assert!(
            lines[0].contains("run `sesame keys`"),
            "{command}: {stderr}"
        );
        assert!(
            lines[0].contains("SESAME_PRIVATE_KEY_FILE"),
            "{command}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("oauth-private.key").exists(),
        "no key generated with auto-install off"
    );

    let (code, _, stderr) = run_cli(dir.path(), &["keys"], &env);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run_cli(dir.path(), &["token", "--user", "alice"], &env);
    assert_eq!(code, 0, "the named fix works: {stderr}");
    assert_eq!(stdout.trim().split('.').count(), 3, "{stdout}");
}

#[tokio::test]
async fn read_only_database_names_fix() {
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["user", "add", "alice"], &[]);
    assert_eq!(code, 0);
    let path = dir.path().join("sesame.db");
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query("DELETE FROM oauth_clients")
        .execute(&pool)
        .await
        .expect("wipe");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    pool.close().await;
    let read_only = format!("sqlite://{}?mode=ro", path.display());
    let (code, _, stderr) = run_cli(
        dir.path(),
        &["--no-migrate", "token", "--user", "alice"],
        &[("SESAME_DATABASE_URL", &read_only)],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("personal access client not found"),
        "{stderr}"
    );
    assert!(stderr.contains("sesame client --personal"), "{stderr}");
}

#[tokio::test]
async fn install_twice_changes_nothing() {
    let dir = data_dir("");
    let (code, first, stderr) = run_cli(dir.path(), &["install", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&first).expect("json");
    assert_eq!(first["keys_created"], true);
    assert!(first["password_client_secret"].is_string());
    let key_before = std::fs::read(dir.path().join("oauth-private.key")).expect("key");

    let (code, second, stderr) = run_cli(dir.path(), &["install", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let second: serde_json::Value = serde_json::from_str(&second).expect("json");
    assert_eq!(second["keys_created"], false);
    assert_eq!(second["personal_access_client_created"], false);
    assert!(second["password_client_secret"].is_null());
    assert_eq!(
        first["personal_access_client"],
        second["personal_access_client"]
    );
    assert_eq!(first["password_client"], second["password_client"]);
    assert_eq!(
        key_before,
        std::fs::read(dir.path().join("oauth-private.key")).expect("key")
    );
    let (_, list, _) = run_cli(dir.path(), &["client", "list", "--json"], &[]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(
        list["clients"].as_array().expect("array").len(),
        2,
        "{list}"
    );
}

#[tokio::test]
async fn revoked_password_client_stays_revoked() {
    let dir = data_dir("");
    let (_, first, _) = run_cli(dir.path(), &["install", "--json"], &[]);
    let first: serde_json::Value = serde_json::from_str(&first).expect("json");
    let id = first["password_client"].as_str().expect("id");
    let (code, _, _) = run_cli(dir.path(), &["client", "revoke", id], &[]);
    assert_eq!(code, 0);
    let (code, _, _) = run_cli(dir.path(), &["install"], &[]);
    assert_eq!(code, 0);
    let (_, list, _) = run_cli(dir.path(), &["client", "list", "--json"], &[]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    let password: Vec<_> = list["clients"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["password_client"] == true)
        .collect();
    assert_eq!(password.len(), 1);
    assert_eq!(password[0]["revoked"], true);
}

#[tokio::test]
async fn doctor_reports_and_names_fixes() {
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["install"], &[]);
    assert_eq!(code, 0);
    let (code, stdout, _) = run_cli(dir.path(), &["doctor"], &[]);
    assert_eq!(code, 0, "{stdout}");
    let wipe = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let pool = sqlx::SqlitePool::connect(&wipe).await.expect("connect");
    sqlx::query("DELETE FROM oauth_clients")
        .execute(&pool)
        .await
        .expect("wipe");
    pool.close().await;
    let (code, stdout, _) = run_cli(dir.path(), &["doctor", "--json"], &[]);
    assert_eq!(code, 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["healthy"], false);
    let fixes: Vec<&str> = report["findings"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["fix"].as_str())
        .collect();
    assert!(fixes.contains(&"sesame client --personal"), "{fixes:?}");
    assert!(fixes.contains(&"sesame client --password"), "{fixes:?}");
}

#[tokio::test]
async fn doctor_reports_tokens_of_unknown_key() {
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["user", "add", "alice"], &[]);
    assert_eq!(code, 0);
    let (code, _, _) = run_cli(dir.path(), &["token", "--user", "alice"], &[]);
    assert_eq!(code, 0);
    let wipe = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let pool = sqlx::SqlitePool::connect(&wipe).await.expect("connect");
    sqlx::query("DELETE FROM sesame_keys")
        .execute(&pool)
        .await
        .expect("wipe");
    pool.close().await;
    let (code, stdout, _) = run_cli(dir.path(), &["doctor"], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("live token(s) were signed by key"),
        "{stdout}"
    );
}

#[tokio::test]
async fn network_database_never_installed_refused() {
    let dir = data_dir("");
    let env = [("SESAME_DATABASE_URL", "postgres://127.0.0.1:1/none")];
    let (code, _, stderr) = run_cli(dir.path(), &["token", "--user", "alice"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn health_and_readiness() {
    let server = Server::start().await;
    let response = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let response = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    server.sesame.store().pool().close().await;
    let response = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
}

/// The version of the newest migration, which [`revert_newest_migration`] undoes.
const NEWEST_MIGRATION: i64 = 3;

/// Undoes migration 0003 on the server's database, as restoring a backup taken before it
/// would, and removes its row from sqlx's migration table.
async fn revert_newest_migration(server: &Server) {
    let newest = server
        .count("SELECT MAX(version) FROM _sqlx_migrations")
        .await;
    assert_eq!(
        newest, NEWEST_MIGRATION,
        "a migration was added: make revert_newest_migration undo it"
    );
    // MySQL names the table in DROP INDEX.
    let drop_index = |index: &str, table: &str| match server.sesame.store().backend() {
        sesame::store::Backend::MySql => format!("DROP INDEX {index} ON {table}"),
        _ => format!("DROP INDEX {index}"),
    };
    let statements = [
        drop_index("oauth_clients_user_id_index", "oauth_clients"),
        drop_index(
            "oauth_access_tokens_expires_at_index",
            "oauth_access_tokens",
        ),
        "ALTER TABLE oauth_clients DROP COLUMN audience".to_owned(),
        "ALTER TABLE sesame_keys DROP COLUMN replaces".to_owned(),
        "ALTER TABLE oauth_refresh_tokens DROP COLUMN revoked_at".to_owned(),
        format!("DELETE FROM _sqlx_migrations WHERE version = {NEWEST_MIGRATION}"),
    ];
    for statement in statements {
        server.execute(&statement).await;
    }
}

async fn readyz(server: &Server) -> (reqwest::StatusCode, serde_json::Value) {
    let response = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn readiness_waits_for_pending_migration() {
    let server = Server::start().await;
    let (status, _) = readyz(&server).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    revert_newest_migration(&server).await;

    let (status, body) = readyz(&server).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "migrations pending");
    let healthz = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(healthz.status(), reqwest::StatusCode::OK);

    let database_url = server.sesame.config().database_url.clone();
    let env = [("SESAME_DATABASE_URL", database_url.as_str())];
    let (code, stdout, stderr) = run_cli(server.data_path(), &["migrate"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Applied 1 migration; the database schema is current."),
        "{stdout}"
    );
    let (status, body) = readyz(&server).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    let (code, stdout, stderr) = run_cli(server.data_path(), &["migrate"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("was already current"), "{stdout}");
}
