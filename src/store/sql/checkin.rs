//! Ticket codes: a ticket's code serial, and its reissue under a per-day limit.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::{Dialect, parse_status};
use crate::domain::TicketStatus;
use crate::store::{CodeReissue, StoreError};

/// `$1` ticket: its code serial.
pub(in crate::store) const CODE_SERIAL: &str = "SELECT code_serial FROM tickets WHERE id = $1";

/// `$1` ticket: its owner, status, event and tier ([`TICKET_FOR_REISSUE_LOCKED`] locks the row
/// on PostgreSQL).
pub(in crate::store) const TICKET_FOR_REISSUE: &str =
    "SELECT user_id, status, event_id, tier_id FROM tickets WHERE id = $1";
pub(in crate::store) const TICKET_FOR_REISSUE_LOCKED: &str =
    "SELECT user_id, status, event_id, tier_id FROM tickets WHERE id = $1 FOR UPDATE";

/// `$1` an instant: reissues before it no longer count.
pub(in crate::store) const PURGE_CODE_REISSUES: &str =
    "DELETE FROM ticket_code_reissues WHERE reissued_at < $1";

/// Reissues the code of ticket `ticket_id` of `user_id` inside the caller's transaction, after
/// `ticket_sql` (one of [`TICKET_FOR_REISSUE`]) read it: a paid ticket's serial goes up by one,
/// unless it was reissued `per_day` times in the 24 h before `now`.
pub(in crate::store) async fn reissue_code_on<DB: Dialect>(
    conn: &mut DB::Connection,
    ticket_sql: &'static str,
    ticket_id: Uuid,
    user_id: Uuid,
    per_day: i64,
    now: DateTime<Utc>,
) -> Result<CodeReissue, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, String, Uuid, Uuid): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
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
    let since = DB::Time::from(now - chrono::Duration::hours(24));
    let (recent,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ticket_code_reissues WHERE ticket_id = $1 AND reissued_at > $2",
    )
    .bind(ticket_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    if recent >= per_day {
        return Ok(CodeReissue::TooMany);
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
    Ok(CodeReissue::Done {
        event_id,
        tier_id,
        serial,
    })
}
