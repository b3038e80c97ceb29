//! `Idempotency-Key`s: a claimed key, the outcome a keyed write records on it, and what a
//! stored key says about a new request with it.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::{Dialect, StoredTime};
use crate::domain::WriteOutcome;
use crate::store::{HeldKey, IdempotencyClaim, StoreError};

pub(in crate::store) const PEEK_KEY: &str = "SELECT request_hash, outcome, created_at, lease_until
     FROM idempotency_keys WHERE user_id = $1 AND key = $2";

/// Records the outcome of the request holding claim `$4`: no row when the claim was lost.
const RECORD_OUTCOME: &str = "UPDATE idempotency_keys SET outcome = $3, lease_until = NULL
     WHERE user_id = $1 AND key = $2 AND claim = $4 AND outcome IS NULL
     RETURNING user_id";

pub(in crate::store) const RELEASE_IDEMPOTENCY_KEY: &str = "DELETE FROM idempotency_keys
     WHERE user_id = $1 AND key = $2 AND claim = $3 AND outcome IS NULL";

pub(in crate::store) const PURGE_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE created_at < $1";

/// A keyed write's outcome as the store records it.
pub(in crate::store) fn outcome_text(outcome: &WriteOutcome) -> Result<String, StoreError> {
    serde_json::to_string(outcome)
        .map_err(|error| StoreError::Corrupt(format!("write outcome: {error}")))
}

/// Records a keyed write's `outcome` on the key it holds, inside the write's transaction;
/// `false` when the key is no longer the request's (the caller rolls back).
pub(in crate::store) async fn record_outcome_on<DB: Dialect>(
    conn: &mut DB::Connection,
    held: &HeldKey,
    outcome: &WriteOutcome,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
{
    let recorded: Option<(Uuid,)> = sqlx::query_as(RECORD_OUTCOME)
        .bind(held.user_id)
        .bind(held.key.as_str())
        .bind(outcome_text(outcome)?)
        .bind(held.claim)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(recorded.is_some())
}

/// How long a key is remembered.
pub(in crate::store) const KEY_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A stored idempotency key, read by [`PEEK_KEY`].
#[derive(FromRow)]
pub(in crate::store) struct KeyRow<T> {
    request_hash: String,
    outcome: Option<String>,
    created_at: T,
    lease_until: Option<T>,
}

impl<T: StoredTime> KeyRow<T> {
    /// What `row` says about a new request with the same key at `now`; `None` when the key
    /// may be claimed (there is none, it is forgotten, or its holder's lease passed).
    pub(in crate::store) fn held(
        row: Option<Self>,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyClaim>, StoreError> {
        let Some(row) = row else {
            return Ok(None);
        };
        if row.created_at.into_utc()? <= now - KEY_LIFETIME {
            return Ok(None);
        }
        if row.request_hash != request_hash {
            return Ok(Some(IdempotencyClaim::Mismatch));
        }
        if let Some(outcome) = row.outcome {
            let outcome: WriteOutcome = serde_json::from_str(&outcome)
                .map_err(|error| StoreError::Corrupt(format!("write outcome: {error}")))?;
            let outcome = outcome.with_payment_of_its_time();
            return Ok(Some(IdempotencyClaim::Completed(outcome)));
        }
        let leased = match row.lease_until {
            Some(lease_until) => lease_until.into_utc()? > now,
            None => false,
        };
        Ok(leased.then_some(IdempotencyClaim::InProgress))
    }
}
