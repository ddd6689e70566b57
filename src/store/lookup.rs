//! Coalesced reads by primary key for the hot paths: the client at the token endpoint and the
//! access token row behind every guarded request. One task per kind takes every lookup
//! waiting at that moment and resolves them all with one `WHERE id IN (...)` query, so
//! concurrent requests share one round trip to the database instead of each making its own.
//! Before it sends the query, the task lets the requests that are ready to run have their
//! turn, so a request whose bytes arrived with the first one's joins the same query.
//!
//! Nothing is cached. A lookup that arrives while a query runs waits for the next query,
//! which starts after it arrived. Its result therefore includes every write committed before
//! the lookup was made, such as a client or token revoked a moment ago by any process.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{HeldConnection, Store};
use crate::error::Result;

/// Keys read by one query at most, far below every backend's bound-parameter limit.
const MAX_BATCH: usize = 64;

/// Lookups waiting for the task at most; past it, callers wait for room.
const QUEUE: usize = 1024;

/// A row kind that can be read by a list of primary keys.
pub(crate) trait Keyed: Clone + Send + Sync + 'static {
    /// Returns the row's primary key, which the lookup compares byte for byte with the
    /// requested key (MySQL collations would match `'a '` to `'a'`).
    fn key(&self) -> &str;

    /// Reads the rows whose keys are in `keys`. Missing keys are left out of the result.
    fn fetch_many(
        store: &Store,
        connection: &mut AnyConnection,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Self>>> + Send;
}

/// Builds the placeholder list for `count` keys, padded up to a power of two so each
/// connection prepares a handful of statements instead of one per batch size. Returns the
/// list and its number of slots; [`bind_padded`] fills the extra slots with the last key.
fn padded_placeholders(count: usize) -> (String, usize) {
    let slots = count.max(1).next_power_of_two();
    let list = vec!["?"; slots].join(", ");
    (list, slots)
}

/// Binds `keys` to a statement made with [`padded_placeholders`], repeating the last key
/// into the padding slots.
fn bind_padded<'q>(
    mut statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    keys: &[&'q str],
    slots: usize,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let last = keys.last().copied().unwrap_or("");
    for index in 0..slots {
        statement = statement.bind(keys.get(index).copied().unwrap_or(last));
    }
    statement
}

/// Runs `select`, a query that ends in `IN`, completed with a placeholder list for `ids`, and
/// converts each row found with `from_row`. Ids that match no row are left out.
pub(super) async fn rows_by_ids<T>(
    store: &Store,
    connection: &mut AnyConnection,
    select: &str,
    ids: &[&str],
    from_row: fn(&AnyRow) -> Result<T>,
) -> Result<Vec<T>> {
    let (list, slots) = padded_placeholders(ids.len());
    let query = format!("{select} ({list})");
    let query = store.sql(&query);
    let statement = bind_padded(sqlx::query(&query), ids, slots);
    let rows = statement.fetch_all(connection).await?;
    rows.iter().map(from_row).collect()
}

/// The receiving end of a batching task's queue, which also ends when the store closes.
pub(super) struct BatchReceiver<T> {
    receiver: mpsc::Receiver<T>,
    closing: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    gather: bool,
}

impl<T> BatchReceiver<T> {
    /// Wraps `receiver`, which then also ends once [`Store::close`] begins. With `gather`,
    /// [`Self::next`] yields to the runtime once before it takes a batch.
    pub(super) fn new(
        store: &Store,
        receiver: mpsc::Receiver<T>,
        gather: bool,
    ) -> BatchReceiver<T> {
        BatchReceiver {
            receiver,
            closing: Box::pin(store.closing()),
            gather,
        }
    }

    /// Waits for work and moves up to `limit` waiting items into `batch`. Returns `false`
    /// when every sender is gone or the store is closing, and the task should end.
    ///
    /// Once the first item is in, a receiver made with `gather` yields to the runtime before
    /// it takes the rest.
    /// Requests already woken on this worker, which are parsing or verifying, then add their
    /// items, so one round trip to the database serves them all. On SQLite each round trip
    /// wakes the connection's worker thread, which takes a core from the requests. Measured
    /// on two cores under the bench's guarded load, the yield cut those wake-ups from one per
    /// two requests to one per sixteen.
    pub(super) async fn next(&mut self, batch: &mut Vec<T>, limit: usize) -> bool {
        let mut received = tokio::select! {
            received = self.receiver.recv_many(batch, limit) => received,
            () = &mut self.closing => 0,
        };
        if received == 0 {
            return false;
        }
        if !self.gather {
            return true;
        }
        tokio::task::yield_now().await;
        while received < limit {
            let Ok(item) = self.receiver.try_recv() else {
                break;
            };
            batch.push(item);
            received += 1;
        }
        true
    }
}

struct Job<V> {
    key: String,
    done: oneshot::Sender<Result<Option<V>>>,
}

/// A handle to one lookup task. Dropping every handle ends the task.
#[derive(Debug)]
pub(crate) struct Lookup<V> {
    sender: mpsc::Sender<Job<V>>,
}

impl<V: Keyed> Lookup<V> {
    /// Starts the lookup task on the current tokio runtime.
    pub(crate) fn spawn(store: Store) -> Lookup<V> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let receiver = BatchReceiver::new(&store, receiver, true);
        tokio::spawn(read_batches(store, receiver));
        Lookup { sender }
    }

    /// Reads the row with primary key `key`, sharing the query with every lookup waiting at
    /// the same time. Reads alone when the task is gone (its runtime shut down).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] when the row could not be read.
    pub(crate) async fn get(&self, store: &Store, key: &str) -> Result<Option<V>> {
        // PostgreSQL rejects NUL in text, and no key contains one.
        if key.contains('\0') {
            return Ok(None);
        }
        let (done, outcome) = oneshot::channel();
        let job = Job {
            key: key.to_owned(),
            done,
        };
        if self.sender.send(job).await.is_ok()
            && let Ok(result) = outcome.await
        {
            return result;
        }
        read_one(store, key).await
    }
}

async fn read_one<V: Keyed>(store: &Store, key: &str) -> Result<Option<V>> {
    let mut connection = store.pool().acquire().await?;
    let rows = V::fetch_many(store, &mut connection, &[key]).await?;
    Ok(rows.into_iter().find(|row| row.key() == key))
}

/// Resolves every waiting lookup with one query. When the query fails, each key is read
/// alone so that each caller gets its own row or its own error.
async fn read_batches<V: Keyed>(store: Store, mut receiver: BatchReceiver<Job<V>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut task_connection = HeldConnection::default();
    while receiver.next(&mut batch, MAX_BATCH).await {
        let mut keys: Vec<&str> = batch.iter().map(|job| job.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let fetched = match task_connection.get(&store).await {
            Ok(connection) => V::fetch_many(&store, connection, &keys).await,
            Err(error) => Err(error),
        };
        if fetched.is_err() {
            task_connection.discard();
        }
        match fetched {
            Ok(rows) => {
                let found: HashMap<&str, &V> = rows.iter().map(|row| (row.key(), row)).collect();
                for job in batch.drain(..) {
                    let row = found.get(job.key.as_str()).map(|row| (*row).clone());
                    let _ = job.done.send(Ok(row));
                }
            }
            Err(error) => {
                tracing::warn!(%error, keys = keys.len(), "batched lookup failed; reading keys one by one");
                for job in batch.drain(..) {
                    let result = read_one(&store, &job.key).await;
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::padded_placeholders;

    #[test]
    fn placeholders_pad_to_power_of_two() {
        assert_eq!(padded_placeholders(0), ("?".to_owned(), 1));
        assert_eq!(padded_placeholders(1), ("?".to_owned(), 1));
        assert_eq!(padded_placeholders(3), ("?, ?, ?, ?".to_owned(), 4));
        assert_eq!(padded_placeholders(64).1, 64);
    }
}
