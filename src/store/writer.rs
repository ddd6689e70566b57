//! Group commit for access token rows written on their own, as client credentials and personal
//! access tokens are. One task takes every row waiting at that moment and inserts them with one
//! multi-row INSERT, so concurrent token requests share one statement and one commit.

use tokio::sync::{mpsc, oneshot};

use super::lookup::BatchReceiver;
use super::{HeldConnection, NewAccessToken, Store};
use crate::error::Result;

/// Rows written by one INSERT at most. Ten columns each keeps the statement far below every
/// backend's bound-parameter limit (32,766 on SQLite 3.32+, 65,535 on PostgreSQL and MySQL).
const MAX_BATCH: usize = 64;

/// Requests waiting for the writer at most; past it, senders wait for room.
const QUEUE: usize = 1024;

struct Job {
    row: NewAccessToken,
    done: oneshot::Sender<Result<()>>,
}

/// A handle to the writer task. Dropping every handle ends the task after it wrote the rows
/// already sent.
#[derive(Clone, Debug)]
pub(crate) struct TokenWriter {
    sender: mpsc::Sender<Job>,
}

impl TokenWriter {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(store: Store) -> TokenWriter {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = BatchReceiver::new(&store, receiver);
        tokio::spawn(write_batches(store, receiver));
        TokenWriter { sender }
    }

    /// Inserts `row` and returns once its commit is done, so a token is never handed out
    /// for a row that was not stored. Inserts directly when the writer task is gone (its
    /// runtime shut down).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] when the row could not be inserted.
    pub(crate) async fn insert(&self, store: &Store, row: NewAccessToken) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let job = Job { row, done };
        let row = match self.sender.send(job).await {
            Ok(()) => match outcome.await {
                Ok(result) => return result,
                Err(_) => return Err(crate::Error::Database(sqlx::Error::WorkerCrashed)),
            },
            Err(mpsc::error::SendError(job)) => job.row,
        };
        insert_one(store, &row).await
    }
}

/// Writes whatever is waiting as one INSERT. When the batch fails, each row is tried alone so
/// that one bad row fails only its own request and each request gets its own error.
async fn write_batches(store: Store, mut receiver: BatchReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut task_connection = HeldConnection::default();
    while receiver.next(&mut batch, MAX_BATCH).await {
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
