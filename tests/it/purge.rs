//! `sesame purge` and [`sesame::Sesame::purge`].

use std::time::Instant;

use reqwest::StatusCode;
use sesame::purge::PurgeOptions;
use sesame::store::ClientKind;

use crate::common::{Server, data_dir, jti, run_cli};

/// SQLite accepts at most this many bound parameters in one statement.
const SQLITE_MAX_PARAMETERS: usize = 32_766;

/// Inserts `count` access token rows that expired at `expires_at`, with multi-row INSERTs in
/// one transaction, as many rows per statement as the parameter limit allows.
async fn seed_access_tokens(
    store: &sesame::store::Store,
    count: usize,
    expires_at: i64,
    revoked: bool,
) {
    const PARAMETERS_PER_ROW: usize = 4;
    let rows_per_statement = SQLITE_MAX_PARAMETERS / PARAMETERS_PER_ROW;
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let mut transaction = store.pool().begin().await.expect("begin");
    let mut inserted = 0;
    while inserted < count {
        let rows = rows_per_statement.min(count - inserted);
        let flag = if revoked { "TRUE" } else { "FALSE" };
        let row = format!("(?, 'seed-client', '[]', {flag}, 'seed-kid', ?, ?, ?)");
        let values = vec![row; rows].join(", ");
        let statement = format!(
            "INSERT INTO oauth_access_tokens (id, client_id, scopes, revoked, kid, created_at, \
             updated_at, expires_at) VALUES {values}"
        );
        let statement = store.sql(&statement).into_owned();
        let mut query = sqlx::query(&statement);
        for index in inserted..inserted + rows {
            query = query
                .bind(format!("seed-{prefix}-{index:07}"))
                .bind(expires_at - 3600)
                .bind(expires_at - 3600)
                .bind(expires_at);
        }
        query.execute(&mut *transaction).await.expect("seed insert");
        inserted += rows;
    }
    transaction.commit().await.expect("commit");
}

async fn refresh_rows(server: &Server) -> i64 {
    server
        .count("SELECT COUNT(*) FROM oauth_refresh_tokens")
        .await
}

#[tokio::test]
async fn purges_100k_expired_rows_and_keeps_live_ones() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let (cc, cc_secret) = server.client(ClientKind::ClientCredentials, None).await;
    let user_id = server.user("alice", "pw").await;
    let (access, refresh) = server
        .password_tokens(&id, &secret, "alice", "pw", "read")
        .await;
    let client_token = server.client_token(&cc, &cc_secret, "").await;
    let personal = server.pat(user_id, &["read"]).await;
    let now = server.sesame.now();
    let started = Instant::now();
    seed_access_tokens(server.sesame.store(), 100_000, now - 10, false).await;
    let seeded_in = started.elapsed();
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        100_003
    );

    let started = Instant::now();
    let purge = server.sesame.purge(PurgeOptions::default());
    let issue_meanwhile = async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let form = [("grant_type", "client_credentials")];
            statuses.push(server.token(&cc, &cc_secret, &form).await.0);
        }
        statuses
    };
    let (report, statuses) = tokio::join!(purge, issue_meanwhile);
    let report = report.expect("purge");
    let purged_in = started.elapsed();
    assert!(
        statuses.iter().all(|status| *status == StatusCode::OK),
        "tokens issued during a purge: {statuses:?}"
    );

    eprintln!("seeded in {seeded_in:?}, purged in {purged_in:?}");
    assert_eq!(report.access_tokens, 100_000);
    assert_eq!(report.refresh_tokens, 0);
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        3 + 5
    );
    for token in [&access, &client_token, &personal] {
        assert!(
            server.sesame.authenticate_bearer(token).await.is_ok(),
            "a live token was purged"
        );
    }
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn purged_revoked_token_stays_invalid() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let token = server.client_token(&id, &secret, "").await;
    let reply = server
        .post_form("/oauth/revoke", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let report = server
        .sesame
        .purge(PurgeOptions::default())
        .await
        .expect("purge");

    assert_eq!(report.access_tokens, 1);
    let row = format!(
        "SELECT COUNT(*) FROM oauth_access_tokens WHERE id = '{}'",
        jti(&token)
    );
    assert_eq!(server.count(&row).await, 0);
    let (status, challenge, body) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let reply = server
        .post_form(
            "/oauth/introspect",
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(reply.json(), serde_json::json!({"active": false}));
}

#[tokio::test]
async fn hours_keep_recent_endings() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let revoked = server.client_token(&id, &secret, "").await;
    server
        .post_form(
            "/oauth/revoke",
            Some((&id, &secret)),
            &[("token", &revoked)],
        )
        .await;
    let now = server.sesame.now();
    seed_access_tokens(server.sesame.store(), 10, now - 60, false).await;
    let keep_an_hour = PurgeOptions {
        keep_hours: 1,
        ..PurgeOptions::default()
    };

    let report = server.sesame.purge(keep_an_hour).await.expect("purge");
    assert_eq!(report.access_tokens, 0);

    server.clock.advance(2 * 3600);
    let report = server.sesame.purge(keep_an_hour).await.expect("purge");
    assert_eq!(report.access_tokens, 11);
}

#[tokio::test]
async fn revoked_and_expired_flags_select_rows() {
    let server = Server::start().await;
    let store = server.sesame.store();
    let now = server.sesame.now();
    seed_access_tokens(store, 7, now - 60, false).await;
    seed_access_tokens(store, 5, now + 3600, true).await;

    let revoked_only = PurgeOptions {
        revoked: true,
        expired: false,
        keep_hours: 0,
    };
    let report = server.sesame.purge(revoked_only).await.expect("purge");
    assert_eq!(report.access_tokens, 5);

    let expired_only = PurgeOptions {
        revoked: false,
        expired: true,
        keep_hours: 0,
    };
    let report = server.sesame.purge(expired_only).await.expect("purge");
    assert_eq!(report.access_tokens, 7);
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        0
    );
}

#[tokio::test]
async fn spent_refresh_token_kept_for_reuse_detection() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (_, spent) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;
    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &spent)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let live_access = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();

    let report = server
        .sesame
        .purge(PurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(report.refresh_tokens, 0, "the family is live");
    assert_eq!(report.access_tokens, 1, "the rotated-out access token");
    assert_eq!(refresh_rows(&server).await, 2);

    let (status, body) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &spent)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &live)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "reuse revoked the family");
    assert!(
        server
            .sesame
            .authenticate_bearer(&live_access)
            .await
            .is_err()
    );

    let report = server
        .sesame
        .purge(PurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(report.refresh_tokens, 2);
    assert_eq!(refresh_rows(&server).await, 0);
}

#[tokio::test]
async fn expired_refresh_family_purged() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let (_, first) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;
    server
        .token(
            &id,
            &secret,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    let expired_only = PurgeOptions {
        revoked: false,
        expired: true,
        keep_hours: 0,
    };

    server.clock.advance(29 * 24 * 3600);
    let report = server.sesame.purge(expired_only).await.expect("purge");
    assert_eq!(
        report.refresh_tokens, 0,
        "the newest refresh token lives 30 days"
    );
    assert_eq!(report.access_tokens, 2, "access tokens live an hour");

    server.clock.advance(2 * 24 * 3600);
    let report = server.sesame.purge(expired_only).await.expect("purge");
    assert_eq!(report.refresh_tokens, 2);
    assert_eq!(refresh_rows(&server).await, 0);
}

#[tokio::test]
async fn cli_prints_counts() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["install"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let url = format!("sqlite://{}", dir.path().join("sesame.db").display());
    let store = sesame::store::Store::connect(&url).await.expect("connect");
    let now = sesame::clock::Clock::now(&sesame::clock::SystemClock);
    seed_access_tokens(&store, 12, now - 60, false).await;
    seed_access_tokens(&store, 3, now + 3600, true).await;
    store.close().await;

    let (code, stdout, stderr) = run_cli(dir.path(), &["purge", "--revoked", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["access_tokens"], 3);
    assert_eq!(report["refresh_tokens"], 0);
    assert_eq!(report["retired_keys"], serde_json::json!([]));

    let (code, stdout, stderr) = run_cli(dir.path(), &["purge"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Deleted 12 access tokens and 0 refresh tokens."),
        "{stdout}"
    );

    let (code, _, stderr) = run_cli(dir.path(), &["purge", "--hours", "-1"], &[]);
    assert_eq!(code, 2, "{stderr}");
}
