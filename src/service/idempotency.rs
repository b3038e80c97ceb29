//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer and
//! does nothing a second time. A request claims its key for a lease; a write that succeeds
//! records what it did (a [`WriteOutcome`]) on the key in the same transaction (see
//! [`crate::store::HeldKey`]), so a write that committed can always be replayed and one that
//! did not, or was refused, leaves the key to be claimed again: at once when the request
//! fails, after the lease when its process died.

use std::time::Duration;

use uuid::Uuid;

use super::ServiceError;
use crate::domain::WriteOutcome;
use crate::store::{
    ClaimTerms, DynStore, HeldKey, IdempotencyClaim, NewKey, RequestKey, StoreError,
};

/// How much longer than a request may run its claim on a key is held: a request is cut off at
/// the request timeout (its transaction rolled back), so an older unanswered claim was abandoned.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
/// A waiting retry looks again after this, then twice as long each time, up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

pub struct Idempotency {
    store: DynStore,
    /// Keys one user may hold over 24 h.
    keys_per_user: u32,
    /// How long a claim holds without an answer: longer than a request may run.
    lease: Duration,
    /// How long a retry waits for the first request with its key to finish: well inside the
    /// request timeout, so that it answers "in progress" rather than being cut off.
    wait_for_first: Duration,
}

/// What to do with a request that carries a key.
#[derive(Debug, PartialEq)]
pub enum IdempotencyStart {
    /// The key is this request's: do the work, recording its outcome with the key (or
    /// [`Idempotency::release`] the key when the work did not commit or was refused).
    Run(HeldKey),
    /// The key's first request already did this: answer it again.
    Replay(WriteOutcome),
}

impl Idempotency {
    pub fn new(store: DynStore, keys_per_user: u32, request_timeout: Duration) -> Self {
        Self {
            store,
            keys_per_user,
            lease: request_timeout + LEASE_MARGIN,
            wait_for_first: request_timeout / 2,
        }
    }

    /// Claims `key` for `fingerprint` (what the request is). While a first request with the
    /// same key still runs, a retry waits for its answer, looking with reads (not writes) at
    /// growing intervals, and takes the key over if the first one's lease passes.
    pub async fn start(
        &self,
        user_id: Uuid,
        key: &str,
        fingerprint: &str,
    ) -> Result<IdempotencyStart, ServiceError> {
        let request_key = RequestKey { user_id, key };
        let claim = Uuid::new_v4();
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut state = self.claim(request_key, fingerprint, claim).await?;
        loop {
            match state {
                IdempotencyClaim::Claimed => {
                    let key = key.to_owned();
                    return Ok(IdempotencyStart::Run(HeldKey {
                        user_id,
                        key,
                        claim,
                    }));
                }
                IdempotencyClaim::Completed(outcome) => {
                    return Ok(IdempotencyStart::Replay(outcome));
                }
                IdempotencyClaim::Mismatch => return Err(ServiceError::IdempotencyKeyReused),
                IdempotencyClaim::QuotaExceeded => {
                    return Err(ServiceError::TooManyIdempotencyKeys);
                }
                IdempotencyClaim::InProgress if started.elapsed() < self.wait_for_first => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    state = match self.store.peek_key(request_key, fingerprint).await? {
                        Some(held) => held,
                        // Released, abandoned or forgotten meanwhile: claim it.
                        None => self.claim(request_key, fingerprint, claim).await?,
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
        claim: Uuid,
    ) -> Result<IdempotencyClaim, ServiceError> {
        let terms = ClaimTerms {
            claim,
            lease: self.lease,
            quota: self.keys_per_user,
        };
        match self.store.claim_key(key, fingerprint, terms).await {
            // The key's user is gone: the token names a deleted account.
            Err(StoreError::ForeignKeyViolation) => Err(ServiceError::InvalidToken),
            other => Ok(other?),
        }
    }

    /// `key` for `fingerprint`, to be claimed by the write itself, in its own transaction (see
    /// [`KeyUse::New`]); should it be in use, the write does nothing and [`Idempotency::start`]
    /// takes the long way.
    pub fn new_key(&self, user_id: Uuid, key: &str, fingerprint: &str) -> NewKey {
        NewKey {
            held: HeldKey {
                user_id,
                key: key.to_owned(),
                claim: Uuid::new_v4(),
            },
            request_hash: fingerprint.to_owned(),
            lease: self.lease,
            quota: self.keys_per_user,
        }
    }

    /// Gives up a key whose work did not commit, so a retry may run at once.
    pub async fn release(&self, held: &HeldKey) -> Result<(), ServiceError> {
        Ok(self.store.release_key(held).await?)
    }
}
