//! Ticket codes: a ticket's code serial, and its reissue under a per-day limit.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::{Dialect, StoredTime, parse_status};
use crate::domain::{ReissuedCode, TicketStatus};
use crate::store::{CodeReissue, StoreError};

/// `$1` ticket: its code serial.
pub(in crate::store) const CODE_SERIAL: &str = "SELECT code_serial FROM tickets WHERE id = $1";

/// `$1` ticket: its owner, status, event and tier ([`TICKET_FOR_REISSUE_LOCKED`] locks the row
/// on PostgreSQL).
macro_rules! ticket_for_reissue {
    () => {
        "SELECT user_id, status, event_id, tier_id FROM tickets WHERE id = $1"
    };
}
pub(in crate::store) const TICKET_FOR_REISSUE: &str = ticket_for_reissue!();
pub(in crate::store) const TICKET_FOR_REISSUE_LOCKED: &str =
    concat!(ticket_for_reissue!(), " FOR UPDATE");

/// `$1` an instant: reissues before it no longer count.
pub(in crate::store) const PURGE_CODE_REISSUES: &str =
    "DELETE FROM ticket_code_reissues WHERE reissued_at < $1";

/// Reissues the code of ticket `ticket_id` of `user_id` inside the caller's transaction, after
/// `ticket_sql` (one of [`TICKET_FOR_REISSUE`]) read it: a paid ticket's serial goes up by one,
/// unless it was reissued `per_day` times in the 24 h before `now`; the new code is to be
/// signed with `signing_key`.
pub(in crate::store) async fn reissue_code_on<DB: Dialect>(
    conn: &mut DB::Connection,
    ticket_sql: &'static str,
    ticket_id: Uuid,
    user_id: Uuid,
    per_day: i64,
    signing_key: u16,
    now: DateTime<Utc>,
) -> Result<CodeReissue, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, String, Uuid, Uuid): FromRow<'r, DB::Row>,
    for<'r> (i64, Option<DB::Time>): FromRow<'r, DB::Row>,
    for<'r> (i32,): FromRow<'r, DB::Row>,
{
    let ticket: Option<(Uuid, String, Uuid, Uuid)> = sqlx::query_as(ticket_sql)
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((owner, status, event_id, tier_id)) = ticket else {
        return Ok(CodeReissue::NotFound);
    };
    if owner != user_id {
        return Ok(CodeReissue::NotOwner);
    }
    if parse_status(&status)? != TicketStatus::Paid {
        return Ok(CodeReissue::NotPaid);
    }
    let day = chrono::Duration::hours(24);
    let (recent, oldest): (i64, Option<DB::Time>) = sqlx::query_as(
        "SELECT count(*), min(reissued_at) FROM ticket_code_reissues
         WHERE ticket_id = $1 AND reissued_at > $2",
    )
    .bind(ticket_id)
    .bind(DB::Time::from(now - day))
    .fetch_one(&mut *conn)
    .await?;
    if recent >= per_day {
        // Until the oldest counted reissue is a day old.
        let oldest = oldest.map(StoredTime::into_utc).transpose()?.unwrap_or(now);
        let wait = (oldest + day - now).to_std().unwrap_or_default();
        return Ok(CodeReissue::TooMany { retry_after: wait });
    }
    let (serial,): (i32,) = sqlx::query_as(
        "UPDATE tickets SET code_serial = code_serial + 1 WHERE id = $1 RETURNING code_serial",
    )
    .bind(ticket_id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO ticket_code_reissues (ticket_id, reissued_at) VALUES ($1, $2)")
        .bind(ticket_id)
        .bind(DB::Time::from(now))
        .execute(&mut *conn)
        .await?;
    Ok(CodeReissue::Done(ReissuedCode {
        ticket_id,
        event_id,
        tier_id,
        serial: u32::try_from(serial)
            .map_err(|_| StoreError::Corrupt(format!("code serial {serial}")))?,
        key_id: signing_key,
    }))
}
