//! [`Sesame`]: the opened installation that every command, endpoint and extractor works with.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::grant::client_auth::ClientCache;
use crate::keys::{self, KeyAlgorithm, SigningKey};
use crate::metrics::Metrics;
use crate::password::{PasswordHasher, SignInTurns};
use crate::rotation::KeyRing;
use crate::store::{
    AccessTokenRecord, Announced, ClientRecord, Lookup, NewAccessToken, Store, TokenWriter,
};
use crate::token::jwt::Verifier;

/// How [`Sesame::open_with`] treats the database and keys.
#[derive(Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Apply pending migrations (the default). When off, pending migrations are an error.
    pub migrate: bool,
    /// Create the clients of a database never installed, where installing is automatic (the
    /// default). `sesame install` turns it off to report what it creates itself.
    pub install: bool,
    /// The time source; the system clock by default.
    pub clock: Arc<dyn Clock>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            migrate: true,
            install: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl OpenOptions {
    /// Sets whether pending migrations are applied.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Sets whether a database never installed gets its clients on open.
    pub fn install(mut self, install: bool) -> Self {
        self.install = install;
        self
    }

    /// Sets the time source.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// An opened Sesame installation: configuration, database, signing keys and verifier.
///
/// Cheap to clone; clones share one pool and key ring. Use it as axum state for
/// [`crate::router`] and the [`crate::Bearer`] extractor.
#[derive(Clone)]
pub struct Sesame {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    keys: KeyRing,
    verifier: Verifier,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    sign_in_turns: SignInTurns,
    metrics: Option<Metrics>,
    /// Started on first use, on the runtime that serves requests.
    token_writer: std::sync::OnceLock<TokenWriter>,
    client_lookup: std::sync::OnceLock<Lookup<ClientRecord>>,
    token_lookup: std::sync::OnceLock<Lookup<AccessTokenRecord>>,
    client_cache: ClientCache,
}

impl std::fmt::Debug for Sesame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sesame")
            .field("issuer", &self.inner.config.issuer)
            .field("kid", &self.signing_key().kid())
            .finish_non_exhaustive()
    }
}

impl Sesame {
    /// Opens the installation `config` describes, with default options.
    ///
    /// Runs pending migrations, loads the signing keys, promotes rotated keys that came due,
    /// and, where installing is automatic and the database was never installed, generates keys
    /// and creates the personal access and password clients.
    ///
    /// # Errors
    ///
    /// [`Error::NotInstalled`] for a network database that was never installed,
    /// [`Error::KeysMissing`] when no key exists and auto-install is off, and the database,
    /// migration and key errors of the steps above.
    pub async fn open(config: Config) -> Result<Sesame> {
        Self::open_with(config, OpenOptions::default()).await
    }

    /// Opens the installation with explicit options. See [`Sesame::open`].
    ///
    /// # Errors
    ///
    /// As [`Sesame::open`]; with `migrate` off, [`Error::SchemaOutdated`] when migrations are
    /// pending.
    pub async fn open_with(config: Config, options: OpenOptions) -> Result<Sesame> {
        if config.is_sqlite() {
            prepare_data_dir(&config)?;
        }
        let store = Store::connect(&config.database_url).await?;
        if config.is_sqlite() {
            restrict_database_files(&config);
        }
        let installed = crate::install::is_installed(&store).await;
        if !installed && !config.is_sqlite() && !config.auto_install {
            return Err(Error::NotInstalled {
                url: crate::config::redact_url(&config.database_url),
            });
        }
        prepare_schema(&store, options.migrate).await?;

        let loaded = match keys::load(&config)? {
            Some(loaded) => loaded,
            None if config.auto_install => {
                tracing::info!(dir = %config.keys_dir.display(), "generating a signing key");
                generate_key_files(&config, KeyAlgorithm::Rs256, 2048, false).await?
            }
            None => {
                return Err(Error::KeysMissing {
                    dir: config.keys_dir.clone(),
                });
            }
        };
        let primary_kid = loaded.key.kid().to_owned();
        let rotated = keys::load_rotated(&config.keys_dir, |kid| kid == primary_kid);
        for warning in rotated
            .iter()
            .chain([&loaded])
            .flat_map(|key| &key.warnings)
        {
            tracing::warn!("{warning}");
        }
        let rotated_keys: Vec<SigningKey> = rotated.into_iter().map(|key| key.key).collect();
        let primary = loaded.key;
        let install_clients = options.install;
        // Rotated keys verify tokens only once they are recorded. Only the primary key verifies
        // without a record, because a read-only database cannot record it.
        let verifier = Verifier::new(&primary);
        let hasher = PasswordHasher::new(config.max_concurrent_hashes)?;
        let metrics = config.metrics.then(Metrics::new);
        let sesame = Sesame {
            inner: Arc::new(Inner {
                config,
                store,
                keys: KeyRing::new(primary, rotated_keys),
                verifier,
                clock: options.clock,
                hasher,
                sign_in_turns: SignInTurns::default(),
                metrics,
                token_writer: std::sync::OnceLock::new(),
                client_lookup: std::sync::OnceLock::new(),
                token_lookup: std::sync::OnceLock::new(),
                client_cache: ClientCache::default(),
            }),
        };
        sesame.refresh_keys().await?;
        if !installed && sesame.config().auto_install && install_clients {
            match crate::install::install_clients(&sesame).await {
                Ok(report) => report.log(),
                Err(error) if crate::store::is_read_only(&error) => {
                    tracing::warn!("the database is read-only, so Sesame was not installed");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(sesame)
    }

    /// The configuration this installation runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub(crate) fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// Returns the per-user queue of password checks in this process.
    pub(crate) fn sign_in_turns(&self) -> &SignInTurns {
        &self.inner.sign_in_turns
    }

    /// Sesame's metrics, or `None` when `SESAME_METRICS` is off.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// Inserts an access token row that is written outside any transaction, through the
    /// group-commit writer. Returns after the row is committed. A row issued to a client
    /// from the client cache passes that record as `cached_client`.
    ///
    /// # Errors
    ///
    /// [`Error::ClientChanged`] when the stored client no longer equals `cached_client`, and
    /// [`Error::Database`] when the row could not be inserted.
    pub(crate) async fn insert_access_token(
        &self,
        row: NewAccessToken,
        cached_client: Option<ClientRecord>,
        announced: Announced,
    ) -> Result<()> {
        self.token_writer()
            .insert(&self.inner.store, row, cached_client, announced)
            .await
    }

    /// Returns the clients kept for client_credentials requests.
    pub(crate) fn client_cache(&self) -> &ClientCache {
        &self.inner.client_cache
    }

    /// Announces an access token row that is about to be signed and then passed to
    /// [`Self::insert_access_token`].
    pub(crate) fn announce_access_token(&self) -> Announced {
        self.token_writer().announce()
    }

    fn token_writer(&self) -> &TokenWriter {
        self.inner
            .token_writer
            .get_or_init(|| TokenWriter::spawn(self.inner.store.clone()))
    }

    /// Reads a client by id. The query is shared with every client lookup made at the same
    /// moment (see `store::lookup`), and nothing is read from a cache.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the row could not be read.
    pub(crate) async fn lookup_client(&self, id: &str) -> Result<Option<ClientRecord>> {
        let lookup = self
            .inner
            .client_lookup
            .get_or_init(|| Lookup::spawn(self.inner.store.clone()));
        lookup.get(&self.inner.store, id).await
    }

    /// Reads an access token row with its client, user and key state. The query is shared with
    /// every token lookup made at the same moment, and nothing is read from a cache.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the row could not be read.
    pub(crate) async fn lookup_access_token(&self, id: &str) -> Result<Option<AccessTokenRecord>> {
        let lookup = self
            .inner
            .token_lookup
            .get_or_init(|| Lookup::spawn(self.inner.store.clone()));
        lookup.get(&self.inner.store, id).await
    }

    /// The current time, seconds since the epoch, from the configured clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Closes the database pool.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }
}

/// Creates the data directory, readable by its owner only, when it does not exist yet, so the
/// SQLite file can be made there.
fn prepare_data_dir(config: &Config) -> Result<()> {
    let dir = &config.data_dir;
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::Io {
        action: "cannot create",
        path: dir.clone(),
        source,
    })
}

/// Makes the SQLite files in the data directory readable by their owner only: they hold
/// password hashes and session state.
fn restrict_database_files(config: &Config) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for name in ["sesame.db", "sesame.db-wal", "sesame.db-shm"] {
            let path = config.data_dir.join(name);
            if let Ok(metadata) = std::fs::metadata(&path)
                && metadata.permissions().mode() & 0o077 != 0
            {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    let _ = config;
}

async fn prepare_schema(store: &Store, migrate: bool) -> Result<()> {
    use crate::store::SchemaStatus;
    if migrate {
        return store.migrate().await;
    }
    match store.schema_status().await? {
        SchemaStatus::Current => Ok(()),
        SchemaStatus::Pending(_) => Err(Error::SchemaOutdated),
        SchemaStatus::TooNew { version } => Err(Error::SchemaTooNew { version }),
    }
}

/// Generates a key off the async runtime and writes it into the key directory.
///
/// # Errors
///
/// [`Error::KeysExist`] without `force` when key files exist, and generation and write errors.
pub async fn generate_key_files(
    config: &Config,
    alg: KeyAlgorithm,
    rsa_bits: u32,
    force: bool,
) -> Result<keys::LoadedKey> {
    let dir = config.keys_dir.clone();
    if !force && dir.join(keys::PRIVATE_KEY_FILE).exists() {
        return Err(Error::KeysExist { dir });
    }
    let (key, pem_text) = tokio::task::spawn_blocking(move || SigningKey::generate(alg, rsa_bits))
        .await
        .map_err(|_| Error::Crypto("key generation task failed"))??;
    match keys::write_key_files(&dir, &key, &pem_text, force) {
        Ok(()) => {}
        // Another process created the key between the check above and the write.
        Err(Error::KeysExist { .. }) if !force => {
            if let Some(loaded) = keys::load(config)? {
                return Ok(loaded);
            }
            return Err(Error::KeysExist { dir });
        }
        Err(error) => return Err(error),
    }
    let path = dir.join(keys::PRIVATE_KEY_FILE);
    Ok(keys::LoadedKey {
        key,
        origin: keys::KeyOrigin::File(path),
        warnings: Vec::new(),
    })
}
