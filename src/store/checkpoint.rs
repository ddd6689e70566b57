//! WAL checkpoints on SQLite, run by a task of their own so that requests rarely wait for one.
//!
//! By default SQLite checkpoints inside the commit that grows the WAL past 1,000 pages: that
//! connection copies the WAL into the database file and syncs both before its commit returns.
//! Under load that connection was usually the token writer, so every token request queued
//! behind the checkpoint. Store connections raise that threshold to [`AUTOCHECKPOINT_PAGES`],
//! a safety net, and this task checkpoints every [`INTERVAL`] in two steps:
//!
//! 1. Two passive checkpoints copy the WAL frames while this process keeps writing, because a
//!    passive checkpoint waits for neither readers nor writers. The second copies what was
//!    written during the first, so that little is left for the next step.
//! 2. A third passive checkpoint, run while holding the store's write turn, copies the few
//!    frames written meanwhile. With every frame copied and no write in between, the next
//!    writer starts the WAL over from its beginning, which no checkpoint that runs beside
//!    writers lets happen, so without this step the WAL grows to the safety net.
//!
//! The turn holds off only this process's writers that take it (the token writer and
//! [`super::Store::begin_write`]). A single-statement write, another process such as the CLI,
//! or a reader still on an older snapshot can keep the WAL from starting over at one tick.
//! The next tick tries again, and `journal_size_limit` shrinks the file when the WAL restarts.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::error::Result;

/// Returns one row: whether it was blocked, the frames in the WAL, and the frames copied.
const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// Time between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// Time the last step waits for the write turn before it leaves the work to the next tick.
const TURN_WAIT: Duration = Duration::from_secs(1);

/// WAL size in pages at which a committing connection checkpoints by itself, in case this
/// task falls behind: 10,000 pages of 4 KiB, about 40 MB.
pub(super) const AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// Size in bytes to which SQLite truncates the WAL file when the WAL starts over, so that one
/// burst of writes does not keep a large file on disk.
pub(super) const WAL_SIZE_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

/// Starts the checkpoint task on the current tokio runtime. It keeps no connection between
/// checkpoints, and it ends when [`super::Store::close`] begins or when every `Store` handle
/// is gone (`closing` then reports its sender dropped).
pub(super) fn spawn(
    pool: AnyPool,
    write_turn: Arc<Mutex<()>>,
    closing: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(pool, write_turn, closing))
}

async fn run(pool: AnyPool, write_turn: Arc<Mutex<()>>, mut closing: watch::Receiver<bool>) {
    // The first checkpoint waits one interval, so a CLI command that ends sooner runs none.
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + INTERVAL, INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            changed = closing.wait_for(|closing| *closing) => {
                // Either closing began or every sender is gone; both end the task.
                let _ = changed;
                return;
            }
            _ = interval.tick() => {}
        }
        match checkpoint(&pool, &write_turn).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("WAL checkpoints succeed again");
            }
            Ok(()) => {}
            Err(error) if super::is_read_only(&error) => {
                tracing::info!("the SQLite database is read-only; WAL checkpoints stop");
                return;
            }
            // Logged once per run of failures, not at every tick.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "WAL checkpoint failed; retrying every 200 ms");
            }
            Err(_) => {}
        }
    }
}

/// Runs the checkpoint steps the module documentation describes.
async fn checkpoint(pool: &AnyPool, write_turn: &Mutex<()>) -> Result<()> {
    let mut connection = pool.acquire().await?;
    sqlx::query(CHECKPOINT).execute(&mut *connection).await?;
    sqlx::query(CHECKPOINT).execute(&mut *connection).await?;
    // Under load the turn passes from writer to writer in order; past the wait the last step
    // is left to the next tick.
    let Ok(_turn) = tokio::time::timeout(TURN_WAIT, write_turn.lock()).await else {
        return Ok(());
    };
    let (_, wal_frames, copied): (i64, i64, i64) = sqlx::query_as(CHECKPOINT)
        .fetch_one(&mut *connection)
        .await?;
    if copied > 0 {
        tracing::trace!(wal_frames, copied, "WAL checkpoint");
    }
    Ok(())
}
