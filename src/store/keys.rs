//! The `sesame_keys` table: every public key that signs or verifies tokens.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use super::{Backend, Store};
use crate::error::Result;

/// The life-cycle state of a recorded key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published and verifying, no longer signing.
    Previous,
    /// Neither published nor verifying.
    Retired,
}

impl KeyState {
    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<KeyState> {
        match text {
            "next" => Some(KeyState::Next),
            "current" => Some(KeyState::Current),
            "previous" => Some(KeyState::Previous),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
        }
    }
}

/// A recorded public key.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// Public JWK as JSON text.
    pub jwk: String,
    /// Stored state name.
    pub state: String,
    /// For a key made by a rotation, the kid of the key it takes over from.
    pub replaces: Option<String>,
    /// When the key was recorded, seconds since the epoch.
    pub created_at: i64,
    /// When its state last changed, seconds since the epoch.
    pub updated_at: i64,
}

impl KeyRecord {
    /// The parsed state; an unknown stored name reads as retired, which trusts nothing.
    pub fn key_state(&self) -> KeyState {
        KeyState::parse(&self.state).unwrap_or(KeyState::Retired)
    }
}

const KEY_COLUMNS: &str = "kid, alg, jwk, state, replaces, created_at, updated_at";

fn key_from_row(row: &AnyRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        jwk: row.try_get("jwk")?,
        state: row.try_get("state")?,
        replaces: row.try_get("replaces")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Records a public key in `state` unless its kid is already recorded. Returns whether it
    /// was new.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn record_key(
        &self,
        kid: &str,
        alg: &str,
        jwk: &str,
        state: KeyState,
        now: i64,
    ) -> Result<bool> {
        let query = match self.backend {
            Backend::MySql => {
                "INSERT IGNORE INTO sesame_keys (kid, alg, jwk, state, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?)"
            }
            _ => {
                "INSERT INTO sesame_keys (kid, alg, jwk, state, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kid) DO NOTHING"
            }
        };
        let result = sqlx::query(&self.sql(query))
            .bind(kid)
            .bind(alg)
            .bind(jwk)
            .bind(state.as_str())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Lists keys in the next, current and previous states: the ones JWKS publishes and the
    /// guard verifies with.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn published_keys(&self) -> Result<Vec<KeyRecord>> {
        let query = format!(
            "SELECT {KEY_COLUMNS} FROM sesame_keys WHERE state IN (?, ?, ?) \
             ORDER BY created_at, kid"
        );
        let rows = sqlx::query(&self.sql(&query))
            .bind(KeyState::Next.as_str())
            .bind(KeyState::Current.as_str())
            .bind(KeyState::Previous.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Lists every recorded key in any state, oldest first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>> {
        let mut connection = self.pool.acquire().await?;
        self.keys_in(&mut connection).await
    }

    /// Lists every recorded key on a given connection (inside a transaction), oldest first.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn keys_in(&self, connection: &mut AnyConnection) -> Result<Vec<KeyRecord>> {
        let query = format!("SELECT {KEY_COLUMNS} FROM sesame_keys ORDER BY created_at, kid");
        let rows = sqlx::query(&self.sql(&query)).fetch_all(connection).await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Records a key made by a rotation as `next`, naming the current key it takes over from.
    ///
    /// A node running an older build, whose key refresh recorded every key file it found,
    /// may share the key directory, load the new key file and record the key first, as `next`
    /// with no key to replace. That record is completed instead. Returns
    /// false when the kid is already recorded in any other way.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn insert_next_key(
        &self,
        connection: &mut AnyConnection,
        record: &KeyRecord,
    ) -> Result<bool> {
        let next = KeyState::Next.as_str();
        let insert =
            format!("INSERT INTO sesame_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)");
        let query = match self.backend {
            Backend::MySql => format!(
                "{insert} ON DUPLICATE KEY UPDATE replaces = \
                 IF(state = '{next}' AND replaces IS NULL, VALUES(replaces), replaces)"
            ),
            _ => format!(
                "{insert} ON CONFLICT (kid) DO UPDATE SET replaces = excluded.replaces \
                 WHERE sesame_keys.state = '{next}' AND sesame_keys.replaces IS NULL"
            ),
        };
        sqlx::query(&self.sql(&query))
            .bind(&record.kid)
            .bind(&record.alg)
            .bind(&record.jwk)
            .bind(next)
            .bind(record.replaces.as_deref())
            .bind(record.created_at)
            .bind(record.updated_at)
            .execute(&mut *connection)
            .await?;
        // Row counts of an upsert differ between backends, so read the result back.
        let stored = self.keys_in(connection).await?;
        Ok(stored.iter().any(|stored| {
            stored.kid == record.kid
                && stored.key_state() == KeyState::Next
                && stored.replaces == record.replaces
        }))
    }

    /// Locks a key's row until the transaction ends, so that two rotations of one key take
    /// turns. SQLite's write transactions already exclude each other.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn lock_key(&self, connection: &mut AnyConnection, kid: &str) -> Result<()> {
        if self.backend == Backend::Sqlite {
            return Ok(());
        }
        let query = "SELECT kid FROM sesame_keys WHERE kid = ? FOR UPDATE";
        sqlx::query(&self.sql(query))
            .bind(kid)
            .fetch_optional(connection)
            .await?;
        Ok(())
    }

    /// Moves a key from state `from` to state `to`. Returns whether it was in state `from`, so
    /// of two nodes making the same change only one does it.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn change_key_state(
        &self,
        connection: &mut AnyConnection,
        kid: &str,
        from: KeyState,
        to: KeyState,
        now: i64,
    ) -> Result<bool> {
        let result =
            sqlx::query(&self.sql(
                "UPDATE sesame_keys SET state = ?, updated_at = ? WHERE kid = ? AND state = ?",
            ))
            .bind(to.as_str())
            .bind(now)
            .bind(kid)
            .bind(from.as_str())
            .execute(connection)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Whether an unrevoked access token row signed by `kid` is unexpired at `now`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Database`] on a query failure.
    pub async fn key_has_live_tokens(
        &self,
        connection: &mut AnyConnection,
        kid: &str,
        now: i64,
    ) -> Result<bool> {
        let row = sqlx::query(&self.sql(
            "SELECT id FROM oauth_access_tokens WHERE kid = ? AND revoked = ? AND expires_at > ? \
             LIMIT 1",
        ))
        .bind(kid)
        .bind(false)
        .bind(now)
        .fetch_optional(connection)
        .await?;
        Ok(row.is_some())
    }
}
