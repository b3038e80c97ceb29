//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer and
//! does nothing a second time. This holds the rules; the HTTP layer turns answers into bytes.

use std::time::Duration;

use uuid::Uuid;

use super::ServiceError;
use crate::store::{DynStore, IdempotencyClaim, RequestKey, StoreError};

/// How long a retry waits for the first request with its key to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(15);
/// A waiting retry looks again after this, then twice as long each time, up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

pub struct Idempotency {
    store: DynStore,
    /// Keys one user may hold over 24 h.
    keys_per_user: u32,
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq)]
pub enum IdempotencyStart {
    /// The key is new: do the work, then [`Idempotency::complete`] or [`Idempotency::release`].
    Run,
    /// The key's first request already answered this.
    Replay { status: u16, body: String },
}

impl Idempotency {
    pub fn new(store: DynStore, keys_per_user: u32) -> Self {
        Self {
            store,
            keys_per_user,
        }
    }

    /// Claims `key` for `fingerprint` (what the request is). While a first request with the
    /// same key still runs, a retry waits for its answer, looking with reads (not writes) at
    /// growing intervals.
    pub async fn start(
        &self,
        user_id: Uuid,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotencyStart, ServiceError> {
        let key = RequestKey { user_id, key };
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut claim = self.claim(key, fingerprint).await?;
        loop {
            match claim {
                IdempotencyClaim::Claimed => return Ok(IdempotencyStart::Run),
                IdempotencyClaim::Completed { status, body } => {
                    return Ok(IdempotencyStart::Replay { status, body });
                }
                IdempotencyClaim::Mismatch => return Err(ServiceError::IdempotencyKeyReused),
                IdempotencyClaim::QuotaExceeded => {
                    return Err(ServiceError::TooManyIdempotencyKeys);
                }
                IdempotencyClaim::InProgress if started.elapsed() < WAIT_FOR_FIRST => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    claim = match self.store.peek_key(key, fingerprint).await? {
                        Some(held) => held,
                        // Released (the first failed) or forgotten meanwhile: claim it.
                        None => self.claim(key, fingerprint).await?,
                    };
                }
                IdempotencyClaim::InProgress => {
                    return Err(ServiceError::IdempotencyKeyInProgress);
                }
            }
        }
    }

    async fn claim(
        &self,
        key: RequestKey<'_>,
        fingerprint: &str,
    ) -> Result<IdempotencyClaim, ServiceError> {
        let claim = self.store.claim_key(key, fingerprint, self.keys_per_user);
        match claim.await {
            // The key's user is gone: the token names a deleted account.
            Err(StoreError::ForeignKeyViolation) => Err(ServiceError::InvalidToken),
            other => Ok(other?),
        }
    }

    /// Stores the answer a retry will get.
    pub async fn complete(
        &self,
        user_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), ServiceError> {
        let key = RequestKey { user_id, key };
        Ok(self.store.complete_key(key, status, body).await?)
    }

    /// Forgets a claim whose request failed without doing anything, so a retry may run.
    pub async fn release(&self, user_id: Uuid, key: &str) -> Result<(), ServiceError> {
        Ok(self.store.release_key(RequestKey { user_id, key }).await?)
    }
}
