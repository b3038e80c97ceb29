//! Group commit for reservations on SQLite.
//!
//! Every write goes through one connection whose statements run on sqlx's worker thread; the
//! cost of a reservation is mostly the thread hand-offs, not SQLite. Reservations that arrive
//! together are therefore taken by one task and written as one multi-statement transaction:
//! each keeps its own conditional seat update and ticket insert, so the result is exactly as if
//! they had run one after another, and a batch of one is the plain case.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Micros, TicketRow, ticket_details_on};
use crate::domain::TicketDetails;
use crate::store::{NewReservation, StoreError};

/// Most reservations written in one transaction.
const MAX_BATCH: usize = 64;

pub(super) type Reply = oneshot::Sender<Result<Option<TicketDetails>, StoreError>>;

pub(super) struct Pending {
    pub request: NewReservation,
    pub reply: Reply,
}

/// Starts the batching task; reservations are sent to the returned channel.
pub(super) fn spawn(writer: SqlitePool) -> mpsc::Sender<Pending> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(writer, receiver));
    sender
}

async fn run(writer: SqlitePool, mut receiver: mpsc::Receiver<Pending>) {
    let mut statements: Vec<Option<String>> = vec![None; MAX_BATCH + 1];
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let sql = statements[batch.len()].get_or_insert_with(|| batch_sql(batch.len()));
        let now = Utc::now();
        match write_batch(&writer, sql, &batch, now).await {
            Ok(mut written) => {
                for pending in batch.drain(..) {
                    let details = written.remove(&pending.request.ticket_id);
                    let _ = pending.reply.send(Ok(details));
                }
            }
            // One bad item (say, a user deleted meanwhile) must not fail the others: retry each
            // on its own, unless the batch did commit it before failing.
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, size = batch.len(), "batched reservation write failed; retrying one by one");
                for pending in batch.drain(..) {
                    let ticket_id = pending.request.ticket_id;
                    let result = match find_ticket(&writer, ticket_id).await {
                        Ok(Some(details)) => Ok(Some(details)),
                        _ => {
                            let sql = statements[1].get_or_insert_with(|| batch_sql(1));
                            write_batch(&writer, sql, std::slice::from_ref(&pending), now)
                                .await
                                .map(|mut written| written.remove(&ticket_id))
                                .map_err(StoreError::from)
                        }
                    };
                    let _ = pending.reply.send(result);
                }
            }
            // A batch of one: its error is the request's own answer.
            Err(error) => {
                if let Some(pending) = batch.pop() {
                    let _ = pending.reply.send(Err(StoreError::from(error)));
                }
            }
        }
    }
}

/// `BEGIN IMMEDIATE; (seat update; ticket insert if the seat was taken) × n; COMMIT;` and a
/// read of the tickets written. Parameters are anonymous and bound in textual order: sqlx
/// binds numbered parameters of multi-statement queries unreliably.
fn batch_sql(n: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for _ in 0..n {
        sql.push_str(
            "UPDATE events SET tickets_sold = tickets_sold + 1, updated_at = ? \
             WHERE id = ? AND tickets_sold < total_tickets AND start_time > ?;\n\
             INSERT INTO tickets (id, user_id, event_id, status, expires_at, created_at, updated_at) \
             SELECT ?, ?, ?, 'reserved', ?, ?, ? WHERE changes() = 1;\n",
        );
    }
    sql.push_str("COMMIT;\nSELECT ");
    sql.push_str(ticket_columns!());
    sql.push_str(" FROM tickets t");
    sql.push_str(ticket_joins!());
    sql.push_str("WHERE t.id IN (");
    sql.push_str(&vec!["?"; n].join(", "));
    sql.push(')');
    sql
}

async fn write_batch(
    writer: &SqlitePool,
    sql: &str,
    batch: &[Pending],
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, TicketDetails>, sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let now_micros = Micros::from(now);
    let mut query = sqlx::query_as::<_, TicketRow>(sql);
    for pending in batch {
        let request = &pending.request;
        let hold = Duration::from_std(request.hold).unwrap_or(Duration::MAX);
        let expires = now
            .checked_add_signed(hold)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        query = query
            .bind(now_micros)
            .bind(request.event_id)
            .bind(now_micros)
            .bind(request.ticket_id)
            .bind(request.user_id)
            .bind(request.event_id)
            .bind(Micros::from(expires))
            .bind(now_micros)
            .bind(now_micros);
    }
    for pending in batch {
        query = query.bind(pending.request.ticket_id);
    }
    match query.fetch_all(&mut *conn).await {
        Ok(rows) => {
            let mut written = HashMap::with_capacity(rows.len());
            for row in rows {
                let details = row
                    .into_details()
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
                written.insert(details.ticket.id, details);
            }
            Ok(written)
        }
        Err(error) => {
            // A statement failed mid-batch: never hand back a connection inside a transaction.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(error)
        }
    }
}

async fn find_ticket(writer: &SqlitePool, id: Uuid) -> Result<Option<TicketDetails>, StoreError> {
    let mut conn = writer.acquire().await?;
    ticket_details_on(&mut conn, id).await
}
