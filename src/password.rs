//! User password hashing with Argon2id, off the async runtime and bounded in concurrency.
//!
//! Hashes run on a fixed set of threads, one per allowed concurrent hash, and each thread
//! keeps Argon2id's 19 MiB of working memory between hashes. When every hash allocated and
//! freed its own 19 MiB, glibc's allocator kept the freed blocks in fragmented heaps, and RSS
//! reached 230 MiB after 64 logins with only two hashes ever running at once. Reusing one
//! block per thread bounds that memory by the hashing limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::Duration;

use std::cell::{Cell, RefCell};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedMutexGuard, Semaphore, oneshot};

use crate::error::{Error, Result};

/// How long a request waits for a hashing slot before it is answered as busy.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs Argon2id hashes on `limit` dedicated threads, at most `limit` at once.
pub(crate) struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Sends work to the hashing threads; they end when it is dropped.
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified against when the user does not exist so that
    /// unknown and known users take the same time.
    dummy_hash: String,
}

impl PasswordHasher {
    pub(crate) fn new(limit: usize) -> Result<PasswordHasher> {
        let random = crate::token::secret::Secret::generate()?;
        let dummy_hash = hash_blocking(random.expose())?;
        let limit = limit.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..limit {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("sesame-argon2-{index}"))
                .spawn(move || run_jobs(&receiver))
                .map_err(|_| Error::Crypto("failed to start a password hashing thread"))?;
        }
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(limit)),
            jobs,
            dummy_hash,
        })
    }

    /// Hashes a new password into a PHC string.
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored PHC string, or against a dummy hash when there is
    /// none, so the answer takes the same time either way. Returns `false` for `None`.
    pub(crate) async fn verify(&self, stored: Option<String>, password: String) -> Result<bool> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move || verify_blocking(&stored, &password))
            .await?;
        Ok(known && matches)
    }

    /// Checks a client secret against a bcrypt hash (client secrets moved from Passport). A
    /// bcrypt check takes tens of milliseconds, so it runs here, under the same bound as
    /// password hashes, instead of stalling an async worker.
    pub(crate) async fn verify_bcrypt(&self, presented: String, stored: String) -> Result<bool> {
        self.run(move || crate::token::secret::verify_secret(&presented, &stored))
            .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Busy)?
            .map_err(|_| Error::Busy)?;
        let (done, outcome) = oneshot::channel();
        let job: Job = Box::new(move || {
            let value = work();
            drop(permit);
            let _ = done.send(value);
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Crypto("password hashing threads stopped"))?;
        outcome
            .await
            .map_err(|_| Error::Crypto("password hashing task failed"))
    }
}

/// Runs hashing jobs on one thread until every sender is gone. A job that panics fails only
/// its own request (its result channel is dropped), and the thread goes on.
fn run_jobs(receiver: &Mutex<mpsc::Receiver<Job>>) {
    KEEPS_MEMORY.set(true);
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// How long a sign-in waits for the checks of the same user name before it fails as busy.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// Puts the password checks of one user name in a queue inside this process, so that each
/// check reads the failures counted by the ones before it. Without it, a burst of concurrent
/// guesses for one user all read the failure count before any of them had failed, and far
/// more than the threshold were checked. Nodes of a cluster each keep their own queue.
#[derive(Debug, Default)]
pub(crate) struct SignInTurns {
    turns: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Map size at which turns no longer held or awaited are removed.
const TURNS_KEPT: usize = 1024;

impl SignInTurns {
    /// Waits for the turn of `key` and holds it until the returned guard is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] after waiting 10 seconds.
    pub(crate) async fn wait(&self, key: &str) -> Result<OwnedMutexGuard<()>> {
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
            if turns.len() >= TURNS_KEPT {
                turns.retain(|_, turn| turn.strong_count() > 0);
            }
            match turns.get(key).and_then(Weak::upgrade) {
                Some(turn) => turn,
                None => {
                    let turn = Arc::new(tokio::sync::Mutex::new(()));
                    turns.insert(key.to_owned(), Arc::downgrade(&turn));
                    turn
                }
            }
        };
        tokio::time::timeout(TURN_WAIT, turn.lock_owned())
            .await
            .map_err(|_| Error::Busy)
    }
}

thread_local! {
    /// Whether this thread is a hashing thread, which keeps its working memory.
    static KEEPS_MEMORY: Cell<bool> = const { Cell::new(false) };
    /// Argon2id's working memory, kept by each hashing thread between hashes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` on `blocks` blocks of working memory. On a hashing thread, up to the default
/// cost, the memory is the thread's own and reused. Elsewhere (the dummy hash made at start),
/// or for a stored hash with a higher memory cost, it is allocated for this run and freed.
/// Argon2 writes every block before it reads it, so what an earlier hash left in the memory
/// changes no result.
fn with_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    if !KEEPS_MEMORY.get() || blocks > Params::default().block_count() {
        return work(&mut vec![Block::default(); blocks]);
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        work(&mut memory[..blocks])
    })
}

/// Hashes `password` with Argon2id and the default parameters into a PHC string.
fn hash_blocking(password: &str) -> Result<String> {
    let failed = |_| Error::Crypto("Argon2id hashing failed");
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).map_err(|_| Error::Crypto("random salt"))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(failed)?;
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt_bytes, &mut output, memory)
    })
    .map_err(|_| Error::Crypto("Argon2id hashing failed"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(failed)?),
    };
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string with the algorithm, version and parameters
/// it names. Any string that does not parse as an Argon2 hash never matches.
fn verify_blocking(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut output = vec![0u8; expected.len()];
    let computed = with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut output, memory)
    });
    // `Output` compares in constant time.
    computed.is_ok() && Output::new(&output).is_ok_and(|output| output == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown users are checked against the dummy hash, so it must cost what a real user's
    /// hash costs: same algorithm, version and parameters.
    #[test]
    fn dummy_hash_costs_as_much_as_real_hash() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        let real = hash_blocking("a real password").expect("hash");
        let dummy = PasswordHash::new(&hasher.dummy_hash).expect("dummy hash parses");
        let real = PasswordHash::new(&real).expect("real hash parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
    }

    /// The hashes made with reused memory are ordinary Argon2id PHC strings: the argon2
    /// crate's own verifier accepts them, and hashes it made verify here.
    #[test]
    fn reused_memory_matches_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

        for password in ["first password", "second password", ""] {
            let ours = hash_blocking(password).expect("hash");
            let parsed = PasswordHash::new(&ours).expect("parses");
            assert!(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
            assert!(verify_blocking(&ours, password));
            assert!(!verify_blocking(&ours, "another password"));

            let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
            let theirs = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .expect("hash")
                .to_string();
            assert!(verify_blocking(&theirs, password));
            assert!(!verify_blocking(&theirs, "another password"));
        }
    }

    /// A stored hash with other parameters is checked with its own parameters.
    #[test]
    fn verifies_other_parameters() {
        use argon2::password_hash::PasswordHasher as _;

        let params = Params::new(8 * 1024, 3, 1, Some(24)).expect("params");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        let stored = argon2
            .hash_password(b"old password", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_blocking(&stored, "old password"));
        assert!(!verify_blocking(&stored, "old passwore"));
        assert!(!verify_blocking(
            "$argon2id$v=19$m=8,t=1,p=1$bm90IGEgaGFzaA",
            "x"
        ));
        assert!(!verify_blocking("not a phc string", ""));
    }

    #[tokio::test]
    async fn panicking_job_keeps_thread() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        let failed = hasher
            .run(|| panic!("a hashing job panicked on purpose"))
            .await;
        assert!(failed.is_err());
        let verified = hasher
            .verify(None, String::new())
            .await
            .expect("the thread still runs jobs");
        assert!(!verified);
    }

    #[tokio::test]
    async fn missing_hash_never_verifies() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        let verified = hasher
            .verify(None, String::new())
            .await
            .expect("verify runs");
        assert!(!verified);
    }
}
