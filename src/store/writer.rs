//! Group commit for access token rows written on their own, as client credentials and personal
//! access tokens are. One task takes every row waiting at that moment and inserts them with one
//! multi-row INSERT, so concurrent token requests share one statement and one commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lookup::BatchReceiver;
use super::{HeldConnection, NewAccessToken, Store};
use crate::error::Result;

/// Rows written by one INSERT at most. Ten columns each keeps the statement far below every
/// backend's bound-parameter limit (32,766 on SQLite 3.32+, 65,535 on PostgreSQL and MySQL).
const MAX_BATCH: usize = 64;

/// Requests waiting for the writer at most; past it, senders wait for room.
const QUEUE: usize = 1024;

/// The maximum time a batch waits for rows whose signatures are under way (see [`Signing`]).
const MAX_LINGER: Duration = Duration::from_millis(2);

struct Job {
    row: NewAccessToken,
    done: oneshot::Sender<Result<()>>,
}

/// A handle to the writer task. Dropping every handle ends the task after it wrote the rows
/// already sent.
#[derive(Clone, Debug)]
pub(crate) struct TokenWriter {
    sender: mpsc::Sender<Job>,
    signing: Arc<Signing>,
}

/// Rows on their way to the writer. Each commit writes whole pages to the WAL, so a commit of
/// one row costs nearly as much as a commit of ten. With RS256, signing takes about 0.7 ms and
/// rows arrive one at a time, so a batch that waits for the signatures under way, never longer
/// than one signature takes, shares its commit with them.
#[derive(Debug, Default)]
struct Signing {
    /// Rows being signed: announced and not yet sent to the writer.
    rows: AtomicUsize,
    /// How long a signature took, averaged over the recent ones, in nanoseconds.
    average_nanos: AtomicU64,
}

/// A row being signed, from [`TokenWriter::announce`] until it is dropped.
pub(crate) struct Announced(Arc<Signing>);

impl Announced {
    /// Records how long the row's signature took.
    pub(crate) fn signed_in(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let average = self.0.average_nanos.load(Ordering::Relaxed);
        let updated = average - average / 8 + nanos / 8;
        self.0.average_nanos.store(updated, Ordering::Relaxed);
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        self.0.rows.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TokenWriter {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(store: Store) -> TokenWriter {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = BatchReceiver::new(&store, receiver);
        let signing = Arc::new(Signing::default());
        tokio::spawn(write_batches(store, receiver, signing.clone()));
        TokenWriter { sender, signing }
    }

    /// Announces a row that is about to be signed and then inserted, so that the batch open
    /// at that moment may wait for it. Keep the guard until [`Self::insert`] takes it.
    pub(crate) fn announce(&self) -> Announced {
        self.signing.rows.fetch_add(1, Ordering::Relaxed);
        Announced(self.signing.clone())
    }

    /// Inserts `row` and returns once its commit is done, so a token is never handed out
    /// for a row that was not stored. Inserts directly when the writer task is gone (its
    /// runtime shut down).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] when the row could not be inserted.
    pub(crate) async fn insert(
        &self,
        store: &Store,
        row: NewAccessToken,
        announced: Announced,
    ) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let job = Job { row, done };
        let sent = self.sender.send(job).await;
        drop(announced);
        let row = match sent {
            Ok(()) => match outcome.await {
                Ok(result) => return result,
                Err(_) => return Err(crate::Error::Database(sqlx::Error::WorkerCrashed)),
            },
            Err(mpsc::error::SendError(job)) => job.row,
        };
        insert_one(store, &row).await
    }
}

/// Writes whatever is waiting as one INSERT, after waiting up to one signature's time for rows
/// still being signed. When the batch fails, each row is tried alone so that one bad row fails
/// only its own request and each request gets its own error.
async fn write_batches(store: Store, mut receiver: BatchReceiver<Job>, signing: Arc<Signing>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut task_connection = HeldConnection::default();
    let mut open = true;
    while open && receiver.next(&mut batch, MAX_BATCH).await {
        let linger = Duration::from_nanos(signing.average_nanos.load(Ordering::Relaxed));
        let deadline = Instant::now() + linger.min(MAX_LINGER);
        while batch.len() < MAX_BATCH && signing.rows.load(Ordering::Relaxed) > 0 {
            let room = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(deadline, receiver.next(&mut batch, room)).await {
                Ok(true) => {}
                Ok(false) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        let rows: Vec<&NewAccessToken> = batch.iter().map(|job| &job.row).collect();
        let written = write_batch(&store, &mut task_connection, &rows).await;
        if written.is_err() {
            task_connection.discard();
        }
        match written {
            Ok(()) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, rows = batch.len(), "batched token insert failed; retrying rows one by one");
                for job in batch.drain(..) {
                    let result = insert_one(&store, &job.row).await;
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

async fn write_batch(
    store: &Store,
    task_connection: &mut HeldConnection,
    rows: &[&NewAccessToken],
) -> Result<()> {
    let _turn = store.write_turn().await?;
    let connection = task_connection.get(store).await?;
    store.insert_access_tokens(connection, rows).await
}

async fn insert_one(store: &Store, row: &NewAccessToken) -> Result<()> {
    let _turn = store.write_turn().await?;
    let mut connection = store.pool().acquire().await?;
    store.insert_access_token(&mut connection, row).await
}
