//! The `sesame_keys` table: every public key that signs or verifies tokens.

use sqlx::Row as _;

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
        let rows = sqlx::query(&self.sql(
            "SELECT kid, alg, jwk, state FROM sesame_keys WHERE state IN (?, ?, ?) \
             ORDER BY created_at, kid",
        ))
        .bind(KeyState::Next.as_str())
        .bind(KeyState::Current.as_str())
        .bind(KeyState::Previous.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeyRecord {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    jwk: row.try_get("jwk")?,
                    state: row.try_get("state")?,
                })
            })
            .collect()
    }
}
