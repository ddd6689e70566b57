//! `sesame serve` killed with SIGKILL under concurrent load, then restarted on the same data:
//! every token whose issue returned 200 is still valid, every revocation that returned 200
//! still holds, and no row is half-made.
//!
//! SIGKILL ends the process but not the machine, so this shows nothing about power loss: on
//! SQLite, Sesame runs WAL with `synchronous = NORMAL`, which can lose the last commits when
//! the operating system itself stops.
//!
//! The test runs in every pass: on SQLite in the node's data directory in the default pass,
//! and on the database `SESAME_TEST_DATABASE` names in the PostgreSQL and MariaDB passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::Sesame;
use sesame::store::ClientKind;
use tokio::sync::{Mutex, Notify};

use crate::common::{TestDatabase, data_dir};
use crate::nodes::{Node, SharedKeys, admin, node_env, sqlite_url};

/// Number of tasks that send requests at once.
const WORKERS: usize = 6;

/// Successful operations to wait for before the kill, so that it lands mid-load.
const OPERATIONS_BEFORE_KILL: usize = 120;

/// Credentials and tokens the load uses.
#[derive(Clone)]
struct Fixture {
    service: (String, String),
    password_client: (String, String),
    account_token: String,
}

/// Requests that returned success before the node died.
#[derive(Default)]
struct Outcomes {
    /// Access tokens (client credentials and personal) whose issue returned 200 or 201.
    issued: Vec<String>,
    /// Tokens whose revocation returned 200.
    revoked: Vec<String>,
    /// Tokens whose revocation was sent. One sent as the node died may have committed without
    /// its response arriving, so such a token may be either active or inactive afterwards.
    revoke_sent: Vec<String>,
}

/// Sends requests in a loop until one fails because the node died: issues a client token,
/// creates a personal token, revokes one of each every third round and rotates a refresh token.
async fn run_worker(
    base: String,
    fixture: Fixture,
    outcomes: Arc<Mutex<Outcomes>>,
    done: Arc<AtomicUsize>,
    threshold: Arc<Notify>,
) {
    let http = reqwest::Client::new();
    let count = || {
        if done.fetch_add(1, Ordering::SeqCst) + 1 == OPERATIONS_BEFORE_KILL {
            threshold.notify_one();
        }
    };
    let mut refresh_token: Option<String> = None;
    for round in 0usize.. {
        let (id, secret) = &fixture.service;
        let Ok(response) = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
        else {
            return;
        };
        let Some(client_token) = success_body(response)
            .await
            .and_then(|body| body["access_token"].as_str().map(str::to_owned))
        else {
            return;
        };
        outcomes.lock().await.issued.push(client_token.clone());
        count();

        let Ok(response) = http
            .post(format!("{base}/oauth/personal-access-tokens"))
            .bearer_auth(&fixture.account_token)
            .json(&json!({"name": format!("load {round}"), "scopes": ["read"]}))
            .send()
            .await
        else {
            return;
        };
        let Some(created) = success_body(response).await else {
            return;
        };
        let personal_token = created["accessToken"].as_str().expect("accessToken");
        let personal_id = created["token"]["id"].as_str().expect("id");
        outcomes.lock().await.issued.push(personal_token.to_owned());
        count();

        if round % 3 == 0 {
            outcomes.lock().await.revoke_sent.push(client_token.clone());
            let Ok(response) = http
                .post(format!("{base}/oauth/revoke"))
                .basic_auth(id, Some(secret))
                .form(&[("token", client_token.as_str())])
                .send()
                .await
            else {
                return;
            };
            if response.status() != StatusCode::OK {
                return;
            }
            outcomes.lock().await.revoked.push(client_token);
            count();

            outcomes
                .lock()
                .await
                .revoke_sent
                .push(personal_token.to_owned());
            let Ok(response) = http
                .delete(format!("{base}/oauth/personal-access-tokens/{personal_id}"))
                .bearer_auth(&fixture.account_token)
                .send()
                .await
            else {
                return;
            };
            if !response.status().is_success() {
                return;
            }
            outcomes
                .lock()
                .await
                .revoked
                .push(personal_token.to_owned());
            count();
        }

        let (id, secret) = &fixture.password_client;
        let form = match &refresh_token {
            Some(token) => vec![("grant_type", "refresh_token"), ("refresh_token", token)],
            None => vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "pw"),
                ("scope", "read"),
            ],
        };
        let Ok(response) = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
        else {
            return;
        };
        let Some(body) = success_body(response).await else {
            return;
        };
        refresh_token = body["refresh_token"].as_str().map(str::to_owned);
        count();
    }
}

/// Returns the JSON body of a 2xx response; `None` for any other status or a cut-off body.
async fn success_body(response: reqwest::Response) -> Option<Value> {
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn fixture(sesame: &Sesame) -> Fixture {
    let created = |kind| async move {
        let (client, secret) = sesame::install::create_client(sesame, kind, "load", None)
            .await
            .expect("client");
        (client.id, secret.expect("secret").expose().to_owned())
    };
    let service = created(ClientKind::ClientCredentials).await;
    let password_client = created(ClientKind::Password).await;
    let user_id = sesame
        .add_user("alice", Some("alice@example.com"), Some("pw"))
        .await
        .expect("user added");
    let account_token = sesame
        .create_token(user_id, "account", &["sesame:account", "read"])
        .await
        .expect("account token")
        .access_token;
    Fixture {
        service,
        password_client,
        account_token,
    }
}

async fn introspect(node: &Node, resource_server: &(String, String), token: &str) -> bool {
    let response = node
        .http
        .post(node.url("/oauth/introspect"))
        .basic_auth(&resource_server.0, Some(&resource_server.1))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["active"].as_bool().expect("active")
}

async fn count(sesame: &Sesame, query: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(query)
        .fetch_one(sesame.store().pool())
        .await
        .unwrap_or_else(|error| panic!("{query}: {error}"))
}

// The load runs on the worker threads while the test's own thread kills and restarts the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_keeps_acknowledged_writes() {
    let database = TestDatabase::create().await;
    let dir = data_dir("");
    let database_url = match &database {
        Some(database) => database.url.clone(),
        None => sqlite_url(dir.path()),
    };
    let keys = SharedKeys::generate();
    let mut env = node_env(&database_url, &keys);
    if database.is_none() {
        // The node's default: SQLite in its data directory, created on first start.
        env.retain(|(name, _)| name != "SESAME_DATABASE_URL");
    }
    let node = Node::start_in(dir, &env);
    let (sesame, _admin_dir) = admin(&database_url, &keys).await;
    let fixture = fixture(&sesame).await;
    let resource_server = sesame::install::create_resource_server(&sesame, "api", None)
        .await
        .map(|(client, secret)| (client.id, secret.expect("secret").expose().to_owned()))
        .expect("resource server");

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let threshold = Arc::new(Notify::new());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(run_worker(
                node.base.clone(),
                fixture.clone(),
                outcomes.clone(),
                done.clone(),
                threshold.clone(),
            ))
        })
        .collect();
    threshold.notified().await;
    let dir = node.kill();
    for worker in workers {
        worker.await.expect("worker");
    }

    let node = Node::start_in(dir, &env);
    let outcomes = outcomes.lock().await;
    eprintln!(
        "killed after {} successful operations: {} tokens issued, {} revoked",
        done.load(Ordering::SeqCst),
        outcomes.issued.len(),
        outcomes.revoked.len()
    );
    assert!(outcomes.issued.len() >= OPERATIONS_BEFORE_KILL / 3);
    assert!(!outcomes.revoked.is_empty());
    for token in &outcomes.issued {
        if outcomes.revoke_sent.contains(token) {
            continue;
        }
        assert!(
            introspect(&node, &resource_server, token).await,
            "a token whose issue returned success is inactive after the restart"
        );
    }
    for token in &outcomes.revoked {
        assert!(
            !introspect(&node, &resource_server, token).await,
            "a revocation that returned success did not survive the restart"
        );
    }

    let secretless = count(
        &sesame,
        "SELECT COUNT(*) FROM oauth_clients WHERE secret IS NULL \
         AND personal_access_client = FALSE",
    )
    .await;
    assert_eq!(
        secretless, 0,
        "every confidential client has its secret hash"
    );
    let orphan_refresh = count(
        &sesame,
        "SELECT COUNT(*) FROM oauth_refresh_tokens r WHERE NOT EXISTS \
         (SELECT 1 FROM oauth_access_tokens a WHERE a.id = r.access_token_id)",
    )
    .await;
    assert_eq!(
        orphan_refresh, 0,
        "every refresh token has its access token row"
    );
    let live_per_family = count(
        &sesame,
        "SELECT COUNT(*) FROM (SELECT family_id FROM oauth_refresh_tokens \
         WHERE revoked = FALSE AND used_at IS NULL GROUP BY family_id HAVING COUNT(*) > 1) f",
    )
    .await;
    assert_eq!(live_per_family, 0, "a family has one unspent refresh token");
    let orphan_access = count(
        &sesame,
        "SELECT COUNT(*) FROM oauth_access_tokens a WHERE NOT EXISTS \
         (SELECT 1 FROM oauth_clients c WHERE c.id = a.client_id)",
    )
    .await;
    assert_eq!(orphan_access, 0, "every access token names a stored client");
    let unsigned = count(
        &sesame,
        "SELECT COUNT(*) FROM oauth_access_tokens a WHERE NOT EXISTS \
         (SELECT 1 FROM sesame_keys k WHERE k.kid = a.kid)",
    )
    .await;
    assert_eq!(unsigned, 0, "every access token names a recorded key");
    let rotated_unrevoked = count(
        &sesame,
        "SELECT COUNT(*) FROM oauth_refresh_tokens r JOIN oauth_access_tokens a \
         ON a.id = r.access_token_id WHERE r.used_at IS NOT NULL AND a.revoked = FALSE",
    )
    .await;
    assert_eq!(
        rotated_unrevoked, 0,
        "a spent refresh token's access token was revoked with the rotation"
    );
}
