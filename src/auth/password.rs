//! Argon2id password hashing on a small pool of its own threads.
//!
//! One hash takes 19 MiB and tens of milliseconds of a core, so an unbounded number of them is
//! an easy way to exhaust a server. At most `workers` hashes run at once and at most `queue`
//! wait; beyond that the caller is told at once that the server is busy. Keeping the work on a
//! few long-lived threads also bounds what the allocator keeps: glibc gives each thread that
//! allocates its own arena and keeps freed memory there, so hashing on the (up to 512-thread)
//! blocking pool once left gigabytes resident after a login storm. And glibc raises its mmap
//! threshold after the first 19 MiB buffer is freed, after which every such buffer comes from
//! an arena that keeps it: the threshold is pinned (see [`return_large_buffers`]).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::oneshot;

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full: try again shortly.
    #[error("password hashing is at capacity")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs password hashes on `workers` threads with a bounded queue.
pub struct Hasher {
    jobs: SyncSender<Job>,
}

impl Hasher {
    pub fn new(workers: usize, queue: usize) -> Self {
        return_large_buffers();
        let (jobs, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..workers.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{index}"))
                .spawn(move || work(&receiver))
                .expect("spawning a password hashing thread");
        }
        Self { jobs }
    }

    /// Hashes with Argon2id and the crate's defaults (19 MiB, 2 passes: the OWASP baseline).
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.run(move || hash_blocking(password.expose())).await
    }

    /// Checks `password` against `stored_hash`; with no stored hash (unknown account) it checks
    /// a dummy hash instead, so both answers take about the same time.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
    ) -> Result<bool, HashError> {
        self.run(move || {
            let hash = match &stored_hash {
                Some(hash) => hash.as_str(),
                None => dummy_hash(),
            };
            let parsed = PasswordHash::new(hash)
                .map_err(|error| anyhow::anyhow!("stored password hash is malformed: {error}"))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(matches && stored_hash.is_some())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(job());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashError::Busy),
            Err(TrySendError::Disconnected(_)) => {
                return Err(anyhow::anyhow!("password hashing threads are gone").into());
            }
        }
        answer
            .await
            .map_err(|_| anyhow::anyhow!("a password hashing job was dropped"))?
            .map_err(HashError::Failed)
    }
}

/// Pins glibc's mmap threshold at its default (128 KiB): large buffers are then always mapped
/// on their own and given back to the system when freed. Left dynamic, the threshold rises to
/// the size of the first large buffer freed, and every later hash buffer stays resident
/// (measured: a login storm left 430 MiB behind; pinned, 7 MiB).
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static PINNED: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's tuning; it is thread-safe in glibc.
        PINNED.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        });
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while hashing.
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("hashing password: {error}"))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking("a password nobody has, used to even out login timing")
            .expect("hashing a constant password cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let hasher = Hasher::new(1, 4);
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = hasher.hash(password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let verify = |attempt: &str, hash: Option<String>| hasher.verify(attempt.into(), hash);
        assert!(
            verify("correct horse battery", Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery", Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let hasher = Hasher::new(1, 4);
        let attempt = "a password nobody has, used to even out login timing".to_owned();
        assert!(!hasher.verify(attempt, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = Hasher::new(1, 1);
        // join_all polls every attempt before any finishes, as concurrent requests would.
        let attempts = (0..8).map(|i| hasher.verify(format!("attempt {i}"), None));
        let results = futures::future::join_all(attempts).await;
        let busy = results
            .iter()
            .filter(|result| matches!(result, Err(HashError::Busy)))
            .count();
        // At most one runs and one waits (a third if the worker took the first meanwhile).
        assert!(busy >= 5, "only {busy} of 8 refused");
        assert!(results.iter().any(|result| matches!(result, Ok(false))));
    }
}
