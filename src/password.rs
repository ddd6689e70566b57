//! User password hashing with Argon2id, off the async runtime and bounded in concurrency.
//!
//! Hashes run on a fixed set of threads, one per allowed concurrent hash, rather than on
//! tokio's blocking pool. Each Argon2id run allocates 19 MiB, and glibc's allocator keeps
//! freed memory in the arena of the thread that freed it. On the blocking pool, each of many
//! threads kept one such block, and RSS grew past 200 MiB under a burst of logins. A fixed
//! set of threads bounds that memory by the hashing limit.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use tokio::sync::{Semaphore, oneshot};

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
            .run(move || {
                PasswordHash::new(&stored)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
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

fn hash_blocking(password: &str) -> Result<String> {
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).map_err(|_| Error::Crypto("random salt"))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| Error::Crypto("salt encoding"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| Error::Crypto("Argon2id hashing"))
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
