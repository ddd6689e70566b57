//! Several `sesame serve` processes started at the same moment on one empty network
//! database: with `SESAME_AUTO_INSTALL=true` one installation results, and without it the
//! database is rejected before anything is written to it.
//!
//! These tests need a network database, so they run in the PostgreSQL and MariaDB passes
//! (`SESAME_TEST_DATABASE=postgres` or `mysql`) and return early in the SQLite pass.

use reqwest::StatusCode;
use sqlx::AnyPool;

use crate::common::{TestDatabase, data_dir};
use crate::multinode::network_database;
use crate::nodes::{Node, SharedKeys, Started, node_env};

/// Number of nodes that start at once.
const NODES: usize = 4;

/// Counts the migration files of the backend `url` names, each of which is one version.
fn migration_count(url: &str) -> i64 {
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "mysql"
    };
    let dir = format!("{}/src/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let files = std::fs::read_dir(dir).expect("migrations directory");
    let count = files
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
        .count();
    i64::try_from(count).expect("count fits")
}

async fn connect(database: &TestDatabase) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(&database.url).await.expect("connect")
}

async fn count(pool: &AnyPool, query: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(query)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("{query}: {error}"))
}

/// Starts `NODES` nodes at once, each on its own thread, and returns what became of each.
fn start_together(env: &[(String, String)]) -> Vec<Started> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(NODES));
    let threads: Vec<_> = (0..NODES)
        .map(|_| {
            let env = env.to_vec();
            let barrier = barrier.clone();
            let dir = data_dir("");
            std::thread::spawn(move || {
                barrier.wait();
                Node::try_start(dir, &env)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| thread.join().expect("thread"))
        .collect()
}

#[tokio::test]
async fn nodes_starting_together_install_once() {
    let Some(database) = network_database("nodes_starting_together_install_once").await else {
        return;
    };
    let keys = SharedKeys::generate();
    let env = node_env(&database.url, &keys);
    let mut nodes = Vec::new();
    for started in start_together(&env) {
        match started {
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
    }

    let pool = connect(&database).await;
    let applied = count(&pool, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert_eq!(applied, migration_count(&database.url));
    let failed = count(
        &pool,
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = FALSE",
    )
    .await;
    assert_eq!(failed, 0);
    let personal = count(
        &pool,
        "SELECT COUNT(*) FROM oauth_clients WHERE personal_access_client = TRUE",
    )
    .await;
    assert_eq!(personal, 1);
    let password = count(
        &pool,
        "SELECT COUNT(*) FROM oauth_clients WHERE password_client = TRUE",
    )
    .await;
    assert_eq!(password, 1);
    let clients = count(&pool, "SELECT COUNT(*) FROM oauth_clients").await;
    assert_eq!(
        clients, 2,
        "no client was made and left behind by a losing node"
    );
    let recorded = count(
        &pool,
        "SELECT COUNT(*) FROM sesame_meta WHERE name IN \
         ('installed_at', 'personal_access_client', 'password_client')",
    )
    .await;
    assert_eq!(recorded, 3);
    let current_personal = count(
        &pool,
        "SELECT COUNT(*) FROM sesame_meta m JOIN oauth_clients c ON c.id = m.value \
         WHERE m.name = 'personal_access_client' AND c.personal_access_client = TRUE",
    )
    .await;
    assert_eq!(
        current_personal, 1,
        "the recorded personal client is the one made"
    );
    pool.close().await;
}

#[tokio::test]
async fn uninstalled_network_database_rejected() {
    let Some(database) = network_database("uninstalled_network_database_rejected").await else {
        return;
    };
    let keys = SharedKeys::generate();
    let base_env: Vec<(String, String)> = node_env(&database.url, &keys)
        .into_iter()
        .filter(|(name, _)| name != "SESAME_AUTO_INSTALL")
        .collect();
    let mut explicit_off = base_env.clone();
    explicit_off.push(("SESAME_AUTO_INSTALL".into(), "false".into()));

    for env in [base_env, explicit_off] {
        let Started::Exited { code, log } = Node::try_start(data_dir(""), &env) else {
            panic!("sesame serve started on a database never installed");
        };
        assert_eq!(code, 1, "{log}");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].starts_with("error: "), "{log}");
        assert!(lines[0].contains("run `sesame install` first"), "{log}");
        assert!(!lines[0].contains("BEGIN"), "no key material in {log}");
    }

    let pool = connect(&database).await;
    let tables = count(
        &pool,
        &format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'",
            if database.url.starts_with("postgres") {
                "public".to_owned()
            } else {
                database.url.rsplit('/').next().expect("name").to_owned()
            }
        ),
    )
    .await;
    assert_eq!(tables, 0, "nothing was created in the database");
    pool.close().await;

    let mut auto_install = node_env(&database.url, &keys);
    auto_install.push(("SESAME_LOG_FORMAT".into(), "text".into()));
    let started = Node::try_start_with_args(data_dir(""), &["--no-migrate"], &auto_install);
    let Started::Exited { code, log } = started else {
        panic!("sesame serve --no-migrate started with migrations pending");
    };
    assert_eq!(code, 1, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("run `sesame migrate`"), "{log}");
}
