//! Key rotation: the private keys this node holds, which of them signs, promoting `next` keys
//! once caching verifiers have had `SESAME_JWKS_MAX_AGE` to fetch them, and retiring keys.
//!
//! The database is the one record of key states, so every node makes the same choice. A node
//! refreshes its view at start, on the task [`Sesame::spawn_key_maintenance`] runs, and in the
//! background when it signs with a view older than [`Sesame::key_refresh_interval`] or a `next`
//! key has come due. Signing treats a due `next` key as current before the database records the
//! promotion, so every node switches on time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::app::Sesame;
use crate::error::{Error, Result};
use crate::keys::{self, KeyAlgorithm, SigningKey};
use crate::store::{KeyRecord, KeyState, is_read_only};
use crate::token::jwt::LEEWAY_SECONDS;

/// The private keys of this node and the one that signs.
pub(crate) struct KeyRing {
    /// The key loaded at start from `oauth-private.key`, `SESAME_PRIVATE_KEY_FILE` or
    /// `SESAME_PRIVATE_KEY`.
    primary: Arc<SigningKey>,
    state: RwLock<RingState>,
    /// Held while refreshing, so concurrent refreshes do not repeat the work.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

struct RingState {
    local: HashMap<String, Arc<SigningKey>>,
    /// The key states as last read from the database.
    records: Vec<KeyRecord>,
    /// `SESAME_JWKS_MAX_AGE` in seconds, as of the last refresh.
    max_age: i64,
    signing: Option<Arc<SigningKey>>,
    /// When the earliest `next` key becomes current, seconds since the epoch.
    next_due: Option<i64>,
    refreshed_at: Option<Instant>,
}

impl KeyRing {
    pub(crate) fn new(primary: SigningKey, rotated: Vec<SigningKey>) -> KeyRing {
        let primary = Arc::new(primary);
        let mut local = HashMap::new();
        local.insert(primary.kid().to_owned(), primary.clone());
        for key in rotated {
            local.insert(key.kid().to_owned(), Arc::new(key));
        }
        KeyRing {
            // Until the first refresh reads the key states, the primary key signs, as it did
            // before rotation existed.
            state: RwLock::new(RingState {
                local,
                records: Vec::new(),
                max_age: 0,
                signing: Some(primary.clone()),
                next_due: None,
                refreshed_at: None,
            }),
            primary,
            refresh: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub(crate) fn primary(&self) -> &Arc<SigningKey> {
        &self.primary
    }

    fn signing(&self) -> Option<Arc<SigningKey>> {
        self.state.read().ok()?.signing.clone()
    }

    /// Returns the key to sign with at `now`. When a `next` key has come due since the last
    /// refresh, the choice treats it as current already, so signing switches on time even
    /// before the database records the promotion.
    fn signing_at(&self, now: i64) -> Option<Arc<SigningKey>> {
        let state = self.state.read().ok()?;
        if state.next_due.is_none_or(|due| now < due) {
            return state.signing.clone();
        }
        let effective = promoted_at(&state.records, now, state.max_age);
        choose_signing_key(&effective, &state.local, &self.primary)
    }

    fn local_keys(&self) -> Vec<Arc<SigningKey>> {
        self.state
            .read()
            .map(|state| state.local.values().cloned().collect())
            .unwrap_or_default()
    }

    fn holds(&self, kid: &str) -> bool {
        self.state
            .read()
            .map(|state| state.local.contains_key(kid))
            .unwrap_or(false)
    }

    fn add(&self, key: Arc<SigningKey>) {
        if let Ok(mut state) = self.state.write() {
            state.local.insert(key.kid().to_owned(), key);
        }
    }

    fn needs_refresh(&self, now: i64, interval: Duration) -> bool {
        let Ok(state) = self.state.read() else {
            return true;
        };
        let due = state.next_due.is_some_and(|due| now >= due);
        let stale = state.refreshed_at.is_none_or(|at| at.elapsed() >= interval);
        due || stale
    }

    /// Stores freshly read key states and picks the signing key from them.
    fn update(&self, records: Vec<KeyRecord>, max_age: i64) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        let signing = choose_signing_key(&records, &state.local, &self.primary);
        let before = state.signing.as_ref().map(|key| key.kid().to_owned());
        let after = signing.as_ref().map(|key| key.kid().to_owned());
        if before != after {
            match &after {
                Some(kid) => tracing::info!(kid, "signing with key"),
                None => tracing::warn!(
                    "no key of this node is current, so it cannot sign tokens; \
                     see `sesame keys --rotate`"
                ),
            }
        }
        state.signing = signing;
        state.next_due = records
            .iter()
            .filter(|record| record.key_state() == KeyState::Next)
            .map(|record| record.updated_at.saturating_add(max_age).saturating_add(1))
            .min();
        state.records = records;
        state.max_age = max_age;
        state.refreshed_at = Some(Instant::now());
    }
}

/// Picks the signing key from recorded states: the newest current key this node holds, or
/// the primary key when the database has no record of it (a read-only database could not
/// record it).
fn choose_signing_key(
    records: &[KeyRecord],
    local: &HashMap<String, Arc<SigningKey>>,
    primary: &Arc<SigningKey>,
) -> Option<Arc<SigningKey>> {
    let newest_current = records
        .iter()
        .filter(|record| record.key_state() == KeyState::Current)
        .filter_map(|record| {
            let key = local.get(&record.kid)?;
            Some((record.created_at, record.kid.as_str(), key))
        })
        .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, key)| key.clone());
    let unrecorded = !records.iter().any(|record| record.kid == primary.kid());
    newest_current.or_else(|| unrecorded.then(|| primary.clone()))
}

/// Checks whether a `next` key has been recorded for `max_age` seconds at `now`. Times are
/// whole seconds, so a key is due only once more than `max_age` seconds have passed on the
/// clock; otherwise it could sign up to a second before caching verifiers have seen it.
fn is_due(record: &KeyRecord, now: i64, max_age: i64) -> bool {
    record.key_state() == KeyState::Next && record.updated_at.saturating_add(max_age) < now
}

/// Fails with [`Error::RotationPending`] when a `next` key already waits to replace
/// `replaced`.
fn pending_rotation(records: &[KeyRecord], replaced: Option<&str>, max_age: i64) -> Result<()> {
    let pending = records.iter().find(|record| {
        record.key_state() == KeyState::Next && record.replaces.as_deref() == replaced
    });
    match pending {
        Some(pending) => Err(Error::RotationPending {
            current_at: pending.updated_at.saturating_add(max_age),
            kid: pending.kid.clone(),
        }),
        None => Ok(()),
    }
}

/// Returns the key states as they are once every due `next` key is promoted, as
/// [`Sesame::promote_due_keys`] does. In order, each due key replaces its current key. A due
/// key whose key is no longer current, because another rotation replaced it first, is retired.
fn promoted_at(records: &[KeyRecord], now: i64, max_age: i64) -> Vec<KeyRecord> {
    let mut effective = records.to_vec();
    for index in 0..effective.len() {
        if !is_due(&effective[index], now, max_age) {
            continue;
        }
        let to = match effective[index].replaces.clone() {
            None => KeyState::Current,
            Some(kid) => match effective.iter().position(|record| record.kid == kid) {
                Some(position) if effective[position].key_state() == KeyState::Current => {
                    effective[position].state = KeyState::Previous.as_str().to_owned();
                    KeyState::Current
                }
                _ => KeyState::Retired,
            },
        };
        effective[index].state = to.as_str().to_owned();
    }
    effective
}

/// A key made by [`Sesame::rotate_key`].
#[derive(Debug, Clone)]
pub struct RotatedKey {
    /// The new key's kid.
    pub kid: String,
    /// Its algorithm.
    pub alg: KeyAlgorithm,
    /// The private key file, `<kid>.pem` in the key directory.
    pub path: PathBuf,
    /// The current key it takes over from, if this node had one.
    pub replaces: Option<String>,
    /// When it becomes current, seconds since the epoch.
    pub current_at: i64,
}

/// The outcome of [`Sesame::retire_key`].
#[derive(Debug, Clone)]
pub struct RetiredKey {
    /// The retired key's kid.
    pub kid: String,
    /// The state it had.
    pub previous_state: KeyState,
    /// Keys that became current at once because they were waiting to replace it.
    pub promoted: Vec<String>,
}

impl Sesame {
    /// Returns the key this node signs new tokens with, which is the newest current key whose
    /// private key it has. When none of its keys is current, this is the key loaded at start,
    /// and issuing fails with [`Error::NoSigningKey`] instead of signing with it.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        let ring = self.key_ring();
        ring.signing().unwrap_or_else(|| ring.primary().clone())
    }

    /// Returns the key to sign a new token with. When a `next` key has come due or the last
    /// refresh is older than [`Sesame::key_refresh_interval`], a refresh starts in the
    /// background: the caller may hold SQLite's write lock in its own transaction, which a
    /// refresh that writes would wait for.
    pub(crate) async fn issuing_key(&self) -> Result<Arc<SigningKey>> {
        let ring = self.key_ring();
        let now = self.now();
        if ring.needs_refresh(now, self.key_refresh_interval())
            && let Ok(guard) = ring.refresh.clone().try_lock_owned()
        {
            let sesame = self.clone();
            tokio::spawn(async move {
                if let Err(error) = sesame.refresh_keys_locked().await {
                    tracing::warn!(%error, "refreshing signing keys failed");
                }
                drop(guard);
            });
        }
        ring.signing_at(now).ok_or_else(|| Error::NoSigningKey {
            dir: self.config().keys_dir.clone(),
        })
    }

    /// Checks whether this node has a current key to sign new tokens with.
    pub(crate) fn can_sign(&self) -> bool {
        self.key_ring().signing_at(self.now()).is_some()
    }

    /// Returns how often a node refreshes its keys: half of `SESAME_JWKS_MAX_AGE`, between 1
    /// and 60 seconds. A retirement made on another node or by the CLI reaches this node's
    /// signing and verification within this interval. The guard rejects tokens of a retired
    /// key at once, because it reads the key state with the token row.
    pub fn key_refresh_interval(&self) -> Duration {
        let half = self.config().jwks_max_age / 2;
        half.clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Refreshes this node's keys. It loads new `<kid>.pem` files from the key directory and
    /// records keys the database does not know, the primary key as current and others as next.
    /// It promotes the `next` keys recorded for `SESAME_JWKS_MAX_AGE`, and the key each one
    /// replaces becomes previous. Then it reloads the verification keys and picks the signing
    /// key.
    ///
    /// A read-only database only logs a warning, and the node keeps its last view.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the key states cannot be read or written.
    pub async fn refresh_keys(&self) -> Result<()> {
        let _guard = self.key_ring().refresh.lock().await;
        self.refresh_keys_locked().await
    }

    async fn refresh_keys_locked(&self) -> Result<()> {
        let first = self
            .key_ring()
            .state
            .read()
            .map(|state| state.refreshed_at.is_none())
            .unwrap_or(true);
        self.load_new_key_files().await;

        let store = self.store();
        let now = self.now();
        let max_age = i64::try_from(self.config().jwks_max_age.as_secs()).unwrap_or(i64::MAX);
        let mut records = store.keys().await?;
        let mut changed = false;
        // Only the primary key is recorded here, as current at once, because a fresh
        // installation or a node with its own key needs it to sign. A `<kid>.pem` file is
        // recorded by the rotation that wrote it. A refresh that recorded one itself, before
        // that rotation did or after it failed, made a key that replaced nothing, and that
        // became a second current key.
        let primary = self.key_ring().primary().clone();
        if !records.iter().any(|record| record.kid == primary.kid()) {
            let state = KeyState::Current;
            let jwk = primary.public_jwk().to_string();
            match store
                .record_key(primary.kid(), primary.alg().name(), &jwk, state, now)
                .await
            {
                Ok(inserted) => {
                    changed |= inserted;
                    if inserted {
                        tracing::info!(kid = primary.kid(), state = state.as_str(), "recorded key");
                    }
                }
                Err(error) if is_read_only(&error) => {
                    if first {
                        let kid = primary.kid();
                        tracing::warn!(kid, "database is read-only; key not recorded");
                    }
                }
                Err(error) => return Err(error),
            }
        }

        let due = records.iter().any(|record| is_due(record, now, max_age));
        if due {
            match self.promote_due_keys(now, max_age).await {
                Ok(()) => changed = true,
                Err(error) if is_read_only(&error) => {
                    tracing::warn!("database is read-only; due keys not promoted");
                }
                Err(error) => return Err(error),
            }
        }
        if changed {
            records = store.keys().await?;
        }

        self.verifier().reload_from(&records);
        self.key_ring().update(records, max_age);
        Ok(())
    }

    /// Loads `<kid>.pem` files this node does not hold yet, such as a key another node's
    /// `sesame keys --rotate` wrote into a shared key directory.
    async fn load_new_key_files(&self) {
        let dir = self.config().keys_dir.clone();
        let ring_keys: Vec<String> = self
            .key_ring()
            .local_keys()
            .iter()
            .map(|key| key.kid().to_owned())
            .collect();
        let loaded = tokio::task::spawn_blocking(move || {
            keys::load_rotated(&dir, |kid| ring_keys.iter().any(|known| known == kid))
        })
        .await
        .unwrap_or_default();
        for loaded in loaded {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            tracing::info!(kid = loaded.key.kid(), origin = %loaded.origin, "loaded key file");
            self.key_ring().add(Arc::new(loaded.key));
        }
    }

    /// Makes every `next` key recorded for `max_age` seconds current, and the key each
    /// replaces previous, in one transaction. Each change is conditional on the old state,
    /// so nodes promoting at once make it once. A due key whose key is no longer current
    /// lost a race with another rotation of the same key: it has never signed, and is
    /// retired, so that two keys never both take over one.
    async fn promote_due_keys(&self, now: i64, max_age: i64) -> Result<()> {
        let store = self.store();
        let mut transaction = store.begin_write().await?;
        let records = store.keys_in(&mut transaction).await?;
        let mut promoted = Vec::new();
        let mut superseded = Vec::new();
        for record in records.iter().filter(|record| is_due(record, now, max_age)) {
            let (current, previous) = (KeyState::Current, KeyState::Previous);
            if let Some(replaced) = &record.replaces
                && !store
                    .change_key_state(&mut transaction, replaced, current, previous, now)
                    .await?
            {
                let (next, retired) = (KeyState::Next, KeyState::Retired);
                if store
                    .change_key_state(&mut transaction, &record.kid, next, retired, now)
                    .await?
                {
                    superseded.push(record);
                }
                continue;
            }
            if store
                .change_key_state(&mut transaction, &record.kid, KeyState::Next, current, now)
                .await?
            {
                promoted.push(record);
            } else if let Some(replaced) = &record.replaces {
                // Changed by another transaction since it was read: the replaced key signs on.
                store
                    .change_key_state(&mut transaction, replaced, previous, current, now)
                    .await?;
            }
        }
        transaction.commit().await?;
        for record in promoted {
            tracing::info!(
                kid = %record.kid,
                replaces = record.replaces.as_deref().unwrap_or("none"),
                "key became current"
            );
        }
        for record in superseded {
            tracing::warn!(
                kid = %record.kid,
                replaces = record.replaces.as_deref().unwrap_or("none"),
                "retired a rotated key: another rotation replaced the same key first"
            );
        }
        Ok(())
    }

    /// Starts the task that refreshes this node's keys every [`Sesame::key_refresh_interval`],
    /// so rotated keys become current on time and retirements take effect. `sesame serve`
    /// runs it; an embedding application should too. Abort the handle to stop it.
    pub fn spawn_key_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let sesame = self.clone();
        let interval = self.key_refresh_interval();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = sesame.refresh_keys().await {
                    tracing::warn!(
                        %error,
                        retry_in_seconds = interval.as_secs(),
                        "refreshing signing keys failed"
                    );
                }
            }
        })
    }

    /// Rotates the signing key: generates a key (with `alg`, or the algorithm of the key it
    /// replaces), writes it as `<kid>.pem` (mode 0600) in the key directory and records it as
    /// `next`. It is published in the JWKS at once and becomes current after
    /// `SESAME_JWKS_MAX_AGE`, when the key it replaces becomes previous.
    ///
    /// # Errors
    ///
    /// [`Error::RotationPending`] when a key already waits to replace the same key,
    /// [`Error::InvalidInput`] for an unsupported RSA length, [`Error::Crypto`] when the new
    /// key is already recorded in a state other than `next`, and key file and database errors.
    /// The key file is removed again when it cannot be recorded.
    pub async fn rotate_key(&self, alg: Option<KeyAlgorithm>, rsa_bits: u32) -> Result<RotatedKey> {
        // Held for the whole rotation, so a refresh on this node cannot load the new key
        // file first and record it without the key it replaces.
        let _guard = self.key_ring().refresh.lock().await;
        self.refresh_keys_locked().await?;
        let store = self.store();
        let replaces = self.key_ring().signing();
        let max_age = i64::try_from(self.config().jwks_max_age.as_secs()).unwrap_or(i64::MAX);
        let replaced_kid = replaces.as_ref().map(|key| key.kid().to_owned());
        pending_rotation(&store.keys().await?, replaced_kid.as_deref(), max_age)?;

        let alg = alg
            .or(replaces.as_ref().map(|key| key.alg()))
            .unwrap_or(KeyAlgorithm::Rs256);
        let (key, pem_text) =
            tokio::task::spawn_blocking(move || SigningKey::generate(alg, rsa_bits))
                .await
                .map_err(|_| Error::Crypto("key generation task failed"))??;
        let path = keys::write_rotated_key_file(&self.config().keys_dir, &key, &pem_text)?;

        let recorded = async {
            let mut transaction = store.begin_write().await?;
            // Another process may have rotated the same key since the check above. With the
            // replaced key's row locked, the second of two rotations finds the first one's key.
            if let Some(replaced) = &replaced_kid {
                store.lock_key(&mut transaction, replaced).await?;
            }
            let records = store.keys_in(&mut transaction).await?;
            pending_rotation(&records, replaced_kid.as_deref(), max_age)?;
            // Read after the lock was granted, so a long wait for it does not count towards
            // the time the key stays `next`.
            let now = self.now();
            let record = KeyRecord {
                kid: key.kid().to_owned(),
                alg: key.alg().name().to_owned(),
                jwk: key.public_jwk().to_string(),
                state: KeyState::Next.as_str().to_owned(),
                replaces: replaced_kid.clone(),
                created_at: now,
                updated_at: now,
            };
            let recorded = store.insert_next_key(&mut transaction, &record).await?;
            transaction.commit().await?;
            Ok::<(bool, i64), Error>((recorded, now))
        }
        .await;
        let now = match recorded {
            Ok((true, now)) => now,
            // The kid is a hash of the public key, so only this key can be recorded under it;
            // its record must keep its private key.
            Ok((false, _)) => {
                return Err(Error::Crypto("the new key was recorded in another state"));
            }
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                return Err(error);
            }
        };
        tracing::info!(kid = key.kid(), replaces = ?replaced_kid, "rotated key; recorded as next");

        let kid = key.kid().to_owned();
        self.verifier().add_local(&key);
        self.key_ring().add(Arc::new(key));
        self.refresh_keys_locked().await?;
        Ok(RotatedKey {
            kid,
            alg,
            path,
            replaces: replaced_kid,
            current_at: now.saturating_add(max_age),
        })
    }

    /// Retires a key at once, as for a compromised key: it leaves the JWKS and every token it
    /// signed is rejected. A `next` key waiting to replace it becomes current at once.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown kid, [`Error::InvalidInput`] for a key already
    /// retired, [`Error::LastSigningKey`] when no other key would be current, and database
    /// errors.
    pub async fn retire_key(&self, kid: &str) -> Result<RetiredKey> {
        let store = self.store();
        let now = self.now();
        let mut transaction = store.begin_write().await?;
        let records = store.keys_in(&mut transaction).await?;
        let record = records
            .iter()
            .find(|record| record.kid == kid)
            .ok_or_else(|| Error::NotFound {
                kind: "key",
                id: kid.to_owned(),
            })?;
        let state = record.key_state();
        if state == KeyState::Retired {
            return Err(Error::InvalidInput(format!("key {kid} is already retired")));
        }

        let mut promoted = Vec::new();
        if state == KeyState::Current {
            let successors: Vec<&KeyRecord> = records
                .iter()
                .filter(|other| {
                    other.key_state() == KeyState::Next && other.replaces.as_deref() == Some(kid)
                })
                .collect();
            let other_current = records
                .iter()
                .any(|other| other.key_state() == KeyState::Current && other.kid != kid);
            if successors.is_empty() && !other_current {
                transaction.rollback().await?;
                return Err(Error::LastSigningKey {
                    kid: kid.to_owned(),
                });
            }
            for successor in successors {
                if store
                    .change_key_state(
                        &mut transaction,
                        &successor.kid,
                        KeyState::Next,
                        KeyState::Current,
                        now,
                    )
                    .await?
                {
                    promoted.push(successor.kid.clone());
                }
            }
        }
        store
            .change_key_state(&mut transaction, kid, state, KeyState::Retired, now)
            .await?;
        transaction.commit().await?;
        tracing::warn!(kid, promoted = ?promoted, "retired key; tokens it signed are rejected");

        self.refresh_keys().await?;
        Ok(RetiredKey {
            kid: kid.to_owned(),
            previous_state: state,
            promoted,
        })
    }

    /// Retires every `previous` key that can no longer have a valid token, and returns their
    /// kids. Such a key signed no unrevoked access token row that is unexpired (with the
    /// guard's leeway). Also the access token lifetime has passed since it stopped signing,
    /// which covers tokens stored without a row.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure.
    pub async fn retire_unused_keys(&self) -> Result<Vec<String>> {
        let store = self.store();
        let now = self.now();
        let access_ttl = i64::try_from(self.config().access_ttl.as_secs()).unwrap_or(i64::MAX);
        let mut retired = Vec::new();
        for record in store.keys().await? {
            if record.key_state() != KeyState::Previous {
                continue;
            }
            let stopped_signing = record.updated_at;
            if now.saturating_sub(stopped_signing) < access_ttl.saturating_add(LEEWAY_SECONDS) {
                continue;
            }
            let mut transaction = store.begin_write().await?;
            let live = store
                .key_has_live_tokens(&mut transaction, &record.kid, now - LEEWAY_SECONDS)
                .await?;
            let changed = !live
                && store
                    .change_key_state(
                        &mut transaction,
                        &record.kid,
                        KeyState::Previous,
                        KeyState::Retired,
                        now,
                    )
                    .await?;
            transaction.commit().await?;
            if changed {
                tracing::info!(kid = %record.kid, "retired previous key: no live token uses it");
                retired.push(record.kid);
            }
        }
        if !retired.is_empty() {
            self.refresh_keys().await?;
        }
        Ok(retired)
    }

    /// Checks whether this node has the private key `kid`.
    pub fn holds_key(&self, kid: &str) -> bool {
        self.key_ring().holds(kid)
    }
}
