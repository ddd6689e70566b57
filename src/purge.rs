//! `sesame purge`: deleting revoked and expired tokens, and retiring keys no token needs.

use crate::app::Sesame;
use crate::error::Result;
use crate::store::PurgeFilter;

/// The tokens a purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Delete revoked tokens.
    pub revoked: bool,
    /// Delete expired tokens.
    pub expired: bool,
    /// Keep tokens that ended within this many hours.
    pub keep_hours: u32,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            revoked: true,
            expired: true,
            keep_hours: 0,
        }
    }
}

/// The result of a purge.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Access token rows deleted.
    pub access_tokens: u64,
    /// Refresh token rows deleted.
    pub refresh_tokens: u64,
    /// Keys moved from previous to retired.
    pub retired_keys: Vec<String>,
    /// Expired browser sessions deleted (only when expired rows are purged).
    pub sessions: u64,
    /// Expired authorization codes deleted.
    pub authorization_codes: u64,
    /// Expired device codes deleted.
    pub device_codes: u64,
}

impl Sesame {
    /// Deletes revoked and expired token rows in batches, deletes expired sessions,
    /// authorization codes and device codes, and retires `previous` keys that no live token
    /// needs. Sessions and codes are deleted only with `options.expired`, and `keep_hours`
    /// applies to them too.
    ///
    /// A deleted access token stays invalid, because the guard requires a row. A spent refresh
    /// token stays until its family's newest token expires or the family is revoked, so reuse
    /// detection keeps working.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure; rows deleted before it stay deleted.
    pub async fn purge(&self, options: PurgeOptions) -> Result<PurgeReport> {
        let keep_seconds = i64::from(options.keep_hours) * 3600;
        let filter = PurgeFilter {
            revoked: options.revoked,
            expired: options.expired,
            ended_before: self.now().saturating_sub(keep_seconds),
        };
        let store = self.store();
        // Refresh rows go first: while they exist, their access rows can still be revoked
        // with the family.
        let refresh_tokens = store.purge_refresh_tokens(&filter).await?;
        let access_tokens = store.purge_access_tokens(&filter).await?;
        let (sessions, authorization_codes, device_codes) = if options.expired {
            store.purge_expired_flows(filter.ended_before).await?
        } else {
            (0, 0, 0)
        };
        let retired_keys = self.retire_unused_keys().await?;
        let report = PurgeReport {
            access_tokens,
            refresh_tokens,
            retired_keys,
            sessions,
            authorization_codes,
            device_codes,
        };
        tracing::info!(
            access_tokens,
            refresh_tokens,
            sessions,
            authorization_codes,
            device_codes,
            retired_keys = report.retired_keys.len(),
            "purged tokens"
        );
        Ok(report)
    }
}
