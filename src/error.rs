//! The library's error type.

use std::path::PathBuf;

/// Errors from Sesame's library API, the CLI and server start-up.
///
/// Protocol errors answered to OAuth clients are [`crate::OAuthError`]; this type is for the
/// operator and the embedding application. Messages never contain secrets or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid or missing.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The database returned an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {source}")]
    DatabaseUnavailable {
        /// The database URL with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// Running the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The database holds migrations this binary does not know, so it was made by a newer
    /// Sesame. Sesame never downgrades a schema.
    #[error(
        "the database schema (version {version}) is newer than this sesame binary; \
         upgrade sesame instead of downgrading the schema"
    )]
    SchemaTooNew {
        /// The newest applied migration version that this binary does not know.
        version: i64,
    },

    /// The schema has migrations pending and migrating was turned off.
    #[error("the database schema is out of date; run `sesame migrate`")]
    SchemaOutdated,

    /// A network database was never installed, so Sesame refuses to touch it.
    #[error("the database at {url} has no Sesame installation; run `sesame install` first")]
    NotInstalled {
        /// The database URL with any password removed.
        url: String,
    },

    /// No usable personal access client exists and Sesame may not create one (auto-install is
    /// off or the database is read-only).
    #[error("personal access client not found; run `{fix}` to create one")]
    PersonalAccessClientMissing {
        /// The command that repairs the installation.
        fix: &'static str,
    },

    /// No signing key exists and Sesame may not generate one.
    #[error(
        "no signing key found in {dir}; run `sesame keys` or set SESAME_PRIVATE_KEY_FILE",
        dir = .dir.display()
    )]
    KeysMissing {
        /// The key directory that was searched.
        dir: PathBuf,
    },

    /// A key exists but cannot be used. `origin` names the file or environment variable; the
    /// key's contents are never included.
    #[error("signing key from {origin} is unusable: {reason}")]
    InvalidKey {
        /// The file path or environment variable that supplied the key.
        origin: String,
        /// Why the key was rejected.
        reason: String,
    },

    /// The configured public key is not the private key's pair.
    #[error(
        "the public key in {origin} does not belong to the private key; \
         run `sesame keys --force` to make a new pair"
    )]
    KeyPairMismatch {
        /// The file path or environment variable that supplied the public key.
        origin: String,
    },

    /// Signing keys already exist and `--force` was not given.
    #[error("signing keys already exist in {dir}; pass --force to replace them", dir = .dir.display())]
    KeysExist {
        /// The key directory.
        dir: PathBuf,
    },

    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}", path = .path.display())]
    Io {
        /// What was being done, such as "cannot write".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// None of this node's keys is current, so it cannot sign tokens.
    #[error(
        "no signing key of this node is current; restart it if its key file was replaced \
         (`sesame keys --force`), copy the current key file into {dir}, or run `sesame keys \
         --rotate` and wait SESAME_JWKS_MAX_AGE for the new key to become current",
        dir = .dir.display()
    )]
    NoSigningKey {
        /// The key directory.
        dir: PathBuf,
    },

    /// A rotation is already waiting for its key to become current.
    #[error(
        "key {kid} is already waiting to become current (at {current_at}, Unix time); wait for \
         it, or retire it with `sesame keys --retire {kid} --now`"
    )]
    RotationPending {
        /// The waiting key.
        kid: String,
        /// When it becomes current, seconds since the epoch.
        current_at: i64,
    },

    /// Retiring the key would leave no current signing key.
    #[error(
        "key {kid} is the only current signing key; run `sesame keys --rotate` first, then \
         retire it and the new key becomes current at once"
    )]
    LastSigningKey {
        /// The key that was to be retired.
        kid: String,
    },

    /// A user, client or token named by the caller does not exist.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// "user", "client", "token" or "key".
        kind: &'static str,
        /// The identifier that was looked up.
        id: String,
    },

    /// The caller's input was rejected, with the reason.
    #[error("{0}")]
    InvalidInput(String),

    /// A redirect URI was rejected, with the URI and the reason.
    #[error("{0}")]
    InvalidRedirectUri(String),

    /// A requested scope is neither declared in the configuration nor built in.
    #[error("unknown scope {0:?}; declare it under [scopes] in sesame.toml")]
    UnknownScope(String),

    /// A user name is already taken.
    #[error("a user named {0:?} already exists")]
    UserExists(String),

    /// The bound on concurrent password hashes was reached; retry later.
    #[error("too many password hashes in progress; retry later")]
    Busy,

    /// Signing or key generation failed inside the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),

    /// A client was changed, revoked or deleted after a token request read it from the
    /// client cache, so the token was not stored. The token endpoint then handles the request
    /// again with the stored client.
    #[error("the client changed while its token was issued")]
    ClientChanged,
}

impl Error {
    /// Whether the error means the database cannot be reached right now (connection lost,
    /// pool exhausted or closed), so the request may succeed when retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(error)) => {
                error.code().as_deref().is_some_and(is_unavailable_code)
            }
            Error::Database(error) => matches!(
                error,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
            ),
            Error::DatabaseUnavailable { .. } => true,
            _ => false,
        }
    }
}

/// Tells whether a database error code means the server cannot serve right now, rather than
/// that the query was wrong.
///
/// PostgreSQL: connection exceptions (class 08), insufficient resources (class 53, such as
/// too many connections), shutdown or start-up (57P01 to 57P03) and a missing database
/// (3D000, as after a drop). MySQL and MariaDB: communication failure (08S01), too many
/// connections (1040), unknown database (1049) and server shutdown (1053).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "3D000" | "1040" | "1049" | "1053"
        )
}

impl Error {
    /// Checks whether the database aborted the transaction to resolve a conflict with a concurrent
    /// one (a deadlock or a serialization failure), so running it again may succeed.
    pub fn is_transaction_conflict(&self) -> bool {
        let Error::Database(sqlx::Error::Database(error)) = self else {
            return false;
        };
        // PostgreSQL: serialization_failure, deadlock_detected. MySQL: ER_LOCK_DEADLOCK,
        // ER_LOCK_WAIT_TIMEOUT.
        matches!(
            error.code().as_deref(),
            Some("40001" | "40P01" | "1213" | "1205")
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::VersionMissing(version) => Error::SchemaTooNew { version },
            other => Error::Migrate(other),
        }
    }
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::is_unavailable_code;

    #[test]
    fn unavailable_codes_recognised() {
        for code in [
            "08006", "53300", "57P01", "57P03", "3D000", "08S01", "1040", "1049",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn query_errors_not_unavailable() {
        for code in ["23505", "42P01", "22P02", "40001", "1062"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}
