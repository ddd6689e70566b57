//! The SQLite store's WAL checkpoint task.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Server;

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// Rows committed to the WAL reach the database file although no commit grows the WAL far
/// enough to checkpoint by itself, and closing the store leaves no WAL file behind.
#[tokio::test]
async fn wal_copied_and_removed_on_close() {
    if std::env::var("SESAME_TEST_DATABASE").is_ok() {
        return;
    }
    let server = Server::start().await;
    let database = server.sesame.config().data_dir.join("sesame.db");
    let wal = server.sesame.config().data_dir.join("sesame.db-wal");
    let before = file_size(&database);

    // One commit of about 1.6 MB (16,000 rows of about 100 bytes), which is 400 pages: far
    // below the 10,000 pages at which a commit checkpoints.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16000) \
         INSERT INTO oauth_access_tokens (id, user_id, client_id, name, scopes, revoked, kid, \
         created_at, updated_at, expires_at) \
         SELECT printf('checkpoint-%06d', i), NULL, 'none', NULL, '[]', 0, 'none', 0, 0, 0 FROM n",
    )
    .execute(server.sesame.store().pool())
    .await
    .expect("insert rows");
    assert!(
        file_size(&wal) > 1_000_000,
        "the rows were not written to the WAL: WAL {} bytes, database {} bytes, {} before",
        file_size(&wal),
        file_size(&database),
        before
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while file_size(&database) < before + 500_000 {
        assert!(
            Instant::now() < deadline,
            "the database file did not grow within 10 s: {} bytes before, {} now",
            before,
            file_size(&database)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.sesame.close().await;
    assert!(!wal.exists(), "closing left {} behind", wal.display());
}
