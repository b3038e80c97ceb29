//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer and
//! does nothing a second time. This holds the rules; the HTTP layer turns answers into bytes.

use std::time::Duration;

use uuid::Uuid;

use super::ServiceError;
use crate::store::{DynStore, IdempotencyClaim, RequestKey};

/// How long a retry waits for the first request with its key to finish.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(15);
const POLL_EVERY: Duration = Duration::from_millis(20);

pub struct Idempotency {
    store: DynStore,
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
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    /// Claims `key` for `fingerprint` (what the request is), waiting a while for a first
    /// request with the same key that is still running.
    pub async fn start(
        &self,
        user_id: Uuid,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotencyStart, ServiceError> {
        let started = tokio::time::Instant::now();
        loop {
            match self
                .store
                .claim_key(RequestKey { user_id, key }, fingerprint)
                .await?
            {
                IdempotencyClaim::Claimed => return Ok(IdempotencyStart::Run),
                IdempotencyClaim::Completed { status, body } => {
                    return Ok(IdempotencyStart::Replay { status, body });
                }
                IdempotencyClaim::Mismatch => return Err(ServiceError::IdempotencyKeyReused),
                IdempotencyClaim::InProgress if started.elapsed() < WAIT_FOR_FIRST => {
                    tokio::time::sleep(POLL_EVERY).await;
                }
                IdempotencyClaim::InProgress => {
                    return Err(ServiceError::IdempotencyKeyInProgress);
                }
            }
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
