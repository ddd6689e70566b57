//! Deleting revoked and expired token rows in batches.
//!
//! Each batch is one short statement with its own transaction, so a large purge never holds
//! the write lock for long and a server keeps issuing tokens meanwhile. Batches walk the table
//! in key order, so the whole purge reads each row about once.

use super::Store;
use crate::error::Result;

/// Access token rows deleted per statement.
pub const ACCESS_BATCH: usize = 5000;

/// Refresh token families deleted per statement.
pub const FAMILY_BATCH: usize = 1000;

/// The rows a purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeFilter {
    /// Delete revoked rows.
    pub revoked: bool,
    /// Delete expired rows.
    pub expired: bool,
    /// Keep rows that ended (expired or were revoked) after this time, seconds since the
    /// epoch.
    pub ended_before: i64,
}

/// Binds the values of the access token condition that `purge_access_tokens` builds, in its
/// order. A macro because sqlx's query types share no trait for `bind`.
macro_rules! bind_access_condition {
    ($query:expr, $filter:expr) => {{
        let mut query = $query;
        if $filter.expired {
            query = query.bind($filter.ended_before);
        }
        if $filter.revoked {
            query = query.bind(true).bind($filter.ended_before);
        }
        query
    }};
}

impl Store {
    /// Deletes access token rows that expired, or were revoked, at or before
    /// `filter.ended_before`. Returns how many were deleted.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure; batches deleted before it stay deleted.
    pub async fn purge_access_tokens(&self, filter: &PurgeFilter) -> Result<u64> {
        let condition = match (filter.revoked, filter.expired) {
            (true, true) => "(expires_at <= ? OR (revoked = ? AND updated_at <= ?))",
            (false, true) => "expires_at <= ?",
            (true, false) => "revoked = ? AND updated_at <= ?",
            (false, false) => return Ok(0),
        };
        // The id that ends the next batch: the last of the next ACCESS_BATCH matching rows.
        let batch_end = format!(
            "SELECT id FROM oauth_access_tokens WHERE id > ? AND {condition} \
             ORDER BY id LIMIT 1 OFFSET ?"
        );
        let batch_end = self.sql(&batch_end);
        let delete_batch =
            format!("DELETE FROM oauth_access_tokens WHERE id > ? AND id <= ? AND {condition}");
        let delete_batch = self.sql(&delete_batch);
        let delete_rest = format!("DELETE FROM oauth_access_tokens WHERE id > ? AND {condition}");
        let delete_rest = self.sql(&delete_rest);

        let mut after = String::new();
        let mut deleted = 0;
        loop {
            let query = sqlx::query_scalar::<_, String>(&batch_end).bind(after.clone());
            let end = bind_access_condition!(query, filter)
                .bind(batch_limit(ACCESS_BATCH - 1))
                .fetch_optional(&self.pool)
                .await?;
            let Some(end) = end else {
                let query = sqlx::query(&delete_rest).bind(after.clone());
                let result = bind_access_condition!(query, filter)
                    .execute(&self.pool)
                    .await?;
                deleted += result.rows_affected();
                break;
            };
            let query = sqlx::query(&delete_batch)
                .bind(after.clone())
                .bind(end.clone());
            let result = bind_access_condition!(query, filter)
                .execute(&self.pool)
                .await?;
            deleted += result.rows_affected();
            after = end;
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    /// Deletes the refresh token families that ended at or before `filter.ended_before`, and
    /// returns how many rows were deleted. With `expired`, a family ends when its newest token
    /// expires. With `revoked`, it ends when no unrevoked token is left, because the family
    /// was revoked or reuse was detected. A spent token of a live family is kept, so presenting
    /// it again still revokes the family.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure; batches deleted before it stay deleted.
    pub async fn purge_refresh_tokens(&self, filter: &PurgeFilter) -> Result<u64> {
        const EXPIRED: &str = "MAX(expires_at) <= ?";
        // A family's end is its latest revocation, spend or issue time.
        const REVOKED: &str = "(SUM(CASE WHEN revoked = ? THEN 1 ELSE 0 END) = 0 \
                               AND MAX(COALESCE(revoked_at, used_at, created_at)) <= ?)";
        let condition = match (filter.revoked, filter.expired) {
            (true, true) => format!("{EXPIRED} OR {REVOKED}"),
            (false, true) => EXPIRED.to_owned(),
            (true, false) => REVOKED.to_owned(),
            (false, false) => return Ok(0),
        };
        let select = format!(
            "SELECT family_id FROM oauth_refresh_tokens WHERE family_id > ? \
             GROUP BY family_id HAVING {condition} ORDER BY family_id LIMIT ?"
        );
        let select = self.sql(&select);
        let mut after = String::new();
        let mut deleted = 0;
        loop {
            let mut query = sqlx::query_scalar::<_, String>(&select).bind(after.clone());
            if filter.expired {
                query = query.bind(filter.ended_before);
            }
            if filter.revoked {
                query = query.bind(false).bind(filter.ended_before);
            }
            let families = query
                .bind(batch_limit(FAMILY_BATCH))
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = families.last() else { break };
            after = last.clone();
            deleted += self
                .delete_where_in("oauth_refresh_tokens", "family_id", &families)
                .await?;
            if families.len() < FAMILY_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    /// Deletes browser sessions, pending authorization requests, authorization codes and
    /// device codes that expired at or before `before`, in batches. Returns the numbers of
    /// sessions, authorization codes and device codes deleted.
    ///
    /// A spent authorization code is kept until it expires, so presenting it again while it
    /// could still be valid revokes the tokens it issued.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure; batches deleted before it stay deleted.
    pub async fn purge_expired_flows(&self, before: i64) -> Result<(u64, u64, u64)> {
        self.purge_expired_rows("sesame_auth_requests", "id_hash", before)
            .await?;
        let sessions = self
            .purge_expired_rows("sesame_sessions", "id_hash", before)
            .await?;
        let codes = self
            .purge_expired_rows("oauth_auth_codes", "id", before)
            .await?;
        let device_codes = self
            .purge_expired_rows("oauth_device_codes", "id", before)
            .await?;
        Ok((sessions, codes, device_codes))
    }

    /// Deletes the rows of `table` whose `expires_at` is at or before `before`, in batches of
    /// [`FAMILY_BATCH`] keys. `table` and `key` are fixed names from this module, never input.
    async fn purge_expired_rows(&self, table: &str, key: &str, before: i64) -> Result<u64> {
        let select = format!("SELECT {key} FROM {table} WHERE expires_at <= ? LIMIT ?");
        let select = self.sql(&select);
        let mut deleted = 0;
        loop {
            let keys = sqlx::query_scalar::<_, String>(&select)
                .bind(before)
                .bind(batch_limit(FAMILY_BATCH))
                .fetch_all(&self.pool)
                .await?;
            if keys.is_empty() {
                break;
            }
            deleted += self.delete_where_in(table, key, &keys).await?;
            if keys.len() < FAMILY_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    /// Deletes the rows of `table` whose `column` is one of `values`, in one statement.
    /// `table` and `column` are fixed names from this module, never input.
    async fn delete_where_in(&self, table: &str, column: &str, values: &[String]) -> Result<u64> {
        let placeholders = vec!["?"; values.len()].join(", ");
        let statement = format!("DELETE FROM {table} WHERE {column} IN ({placeholders})");
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement);
        for value in values {
            query = query.bind(value);
        }
        let result = query.execute(&self.pool).await?;
        Ok(result.rows_affected())
    }
}

/// Converts a batch size to the integer type every backend binds for `LIMIT`.
fn batch_limit(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

// One batch is bound as one parameter per row, which must stay under SQLite's limit of 32,766
// bind parameters (PostgreSQL's and MySQL's is 65,535).
const _: () = assert!(ACCESS_BATCH < 32_766 && FAMILY_BATCH < 32_766);
