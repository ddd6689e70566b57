//! Group commit for access token rows written on their own, as client credentials and personal
//! access tokens are. One task takes every row waiting at that moment and inserts them with one
//! multi-row INSERT, so concurrent token requests share one statement and one commit.
//!
//! A row issued from the client cache names the client as the request saw it. Before the
//! INSERT, the task reads those clients again and fails the rows whose client has changed
//! since, been revoked or deleted, so a cached client never outlives a change to it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use sqlx::AnyConnection;

use super::lookup::{BatchReceiver, Keyed};
use super::{Backend, ClientRecord, HeldConnection, NewAccessToken, Store};
use crate::error::{Error, Result};

/// Rows written by one INSERT at most. Ten columns each keeps the statement far below every
/// backend's bound-parameter limit (32,766 on SQLite 3.32+, 65,535 on PostgreSQL and MySQL).
const MAX_BATCH: usize = 64;

/// Requests waiting for the writer at most; past it, senders wait for room.
const QUEUE: usize = 1024;

/// The maximum time a batch waits for rows whose signatures are under way (see [`Signing`]).
const MAX_LINGER: Duration = Duration::from_millis(2);

struct Job {
    row: NewAccessToken,
    /// The client as the request read it from the client cache, if it did.
    cached_client: Option<ClientRecord>,
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
        // On SQLite each commit wakes the connection's worker thread, so larger batches save
        // CPU. On PostgreSQL, gathering measured about 5% slower for ES256 client_credentials
        // (bench loads, with the database server on the same two cores).
        let gather = store.backend() == Backend::Sqlite;
        let receiver = BatchReceiver::new(&store, receiver, gather);
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
    /// for a row that was not stored. With `cached_client`, the client the request read from
    /// the client cache, the row is inserted only if the stored client still equals it.
    /// Inserts directly when the writer task is gone (its runtime shut down).
    ///
    /// # Errors
    ///
    /// [`Error::ClientChanged`] when the stored client differs from `cached_client` or is
    /// gone, and [`Error::Database`] when the row could not be inserted.
    pub(crate) async fn insert(
        &self,
        store: &Store,
        row: NewAccessToken,
        cached_client: Option<ClientRecord>,
        announced: Announced,
    ) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let job = Job {
            row,
            cached_client,
            done,
        };
        let sent = self.sender.send(job).await;
        drop(announced);
        let job = match sent {
            Ok(()) => match outcome.await {
                Ok(result) => return result,
                Err(_) => return Err(Error::Database(sqlx::Error::WorkerCrashed)),
            },
            Err(mpsc::error::SendError(job)) => job,
        };
        let mut connection = store.pool().acquire().await?;
        let changed = changed_clients(store, &mut connection, std::slice::from_ref(&job)).await?;
        if !changed.is_empty() {
            return Err(Error::ClientChanged);
        }
        drop(connection);
        insert_one(store, &job.row).await
    }
}

/// Writes whatever is waiting as one INSERT, after waiting up to one signature's time for rows
/// still being signed. Rows whose cached client changed are failed first. When the batch fails,
/// each row is tried alone so that one bad row fails only its own request and each request gets
/// its own error.
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
        if batch.iter().any(|job| job.cached_client.is_some()) {
            fail_changed_clients(&store, &mut task_connection, &mut batch).await;
            if batch.is_empty() {
                continue;
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

/// Sends [`Error::ClientChanged`] to the jobs in `batch` whose cached client no longer equals
/// its stored row, and removes them. When the clients cannot be read, every job with a cached
/// client gets that error, so its request is handled again without the cache.
async fn fail_changed_clients(
    store: &Store,
    task_connection: &mut HeldConnection,
    batch: &mut Vec<Job>,
) {
    let checked = match task_connection.get(store).await {
        Ok(connection) => changed_clients(store, connection, batch).await,
        Err(error) => Err(error),
    };
    let changed = checked.unwrap_or_else(|error| {
        task_connection.discard();
        tracing::warn!(%error, "reading cached clients again failed");
        cached_ids(batch).into_iter().map(str::to_owned).collect()
    });
    if changed.is_empty() {
        return;
    }
    let (stale, kept): (Vec<Job>, Vec<Job>) = batch.drain(..).partition(|job| {
        job.cached_client
            .as_ref()
            .is_some_and(|client| changed.contains(&client.id))
    });
    batch.extend(kept);
    for job in stale {
        let _ = job.done.send(Err(Error::ClientChanged));
    }
}

/// Lists the ids of the cached clients in `jobs`, each once.
fn cached_ids(jobs: &[Job]) -> Vec<&str> {
    let mut ids: Vec<&str> = jobs
        .iter()
        .filter_map(|job| job.cached_client.as_ref())
        .map(|client| client.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Reads the cached clients of `jobs` again and returns the ids of those whose stored row
/// differs from the cached one or is gone.
async fn changed_clients(
    store: &Store,
    connection: &mut AnyConnection,
    jobs: &[Job],
) -> Result<HashSet<String>> {
    let ids = cached_ids(jobs);
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let stored = ClientRecord::fetch_many(store, connection, &ids).await?;
    Ok(jobs
        .iter()
        .filter_map(|job| job.cached_client.as_ref())
        .filter(|cached| !stored.contains(cached))
        .map(|cached| cached.id.clone())
        .collect())
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
