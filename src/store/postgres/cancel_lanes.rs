//! Cancellations of reserved orders in lanes ([`super::lanes`]), by event: the cancellations
//! that arrive while a lane's transaction is in flight share the next one, which moves their
//! orders and tickets in one statement each and gives all their seats back through the seat
//! ledger at once. A burst of returns on one event so takes its row lock, runs the waiting
//! list's offer step and fires each trigger once per batch rather than once per order.
//!
//! Only what the batch can decide alone goes through it: an unkeyed cancellation that the
//! order's state allows. Any other outcome (not the caller's, not reserved, past its hold, a
//! payment in flight) is left to the one-order path, which gives the reason.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::lanes::LaneWriter;
use super::sold_out::SoldOut;
use super::{OrderRow, begin_write, orders_with_parts};
use crate::domain::{OrderDetails, SeatsBack, SeatsBackCause};
use crate::store::batch::BatchWriter;
use crate::store::order_batch::{self, CancelRequest};
use crate::store::{StoreResult, ledger, sql};

/// `$1` orders, `$2` their buyers, `$3` now: those still reserved, within their hold and with
/// no payment in flight, cancelled; with their event and the waiting-list entry each was offered
/// to. Only those rows are locked, in id order (as every batch locks orders), and with the lock
/// an `UPDATE` takes.
const CANCEL_ORDERS: &str = "WITH asked AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS r(id, user_id)
    ), locked AS (
        SELECT o.id FROM orders o JOIN asked a ON a.id = o.id AND a.user_id = o.user_id
        WHERE o.status = 'reserved' AND o.expires_at > $3 AND o.payment_status <> 'pending'
        ORDER BY o.id FOR NO KEY UPDATE OF o
    )
    UPDATE orders o SET status = 'cancelled', updated_at = $3
    FROM locked l
    WHERE o.id = l.id AND o.status = 'reserved' AND o.expires_at > $3
      AND o.payment_status <> 'pending'
    RETURNING o.id, o.event_id, o.waitlist_entry_id";

/// `$1` orders, `$2` now: their tickets, locked in id order first (as scans lock them).
const CANCEL_TICKETS: &str = "UPDATE tickets SET status = 'cancelled', updated_at = $2,
         paid_at = NULL
     WHERE id IN (SELECT id FROM tickets WHERE order_id = ANY($1) ORDER BY id FOR UPDATE)";

/// `$1` orders, `$2` now: the offers among them are declined.
const OFFERS_DECLINED: &str = "UPDATE waitlist_entries SET status = 'left', updated_at = $2
     WHERE offer_order_id = ANY($1) AND status = 'offered'";

/// `$1` orders: the seats they held, per event and tier.
const SEATS_OF: &str = "SELECT event_id, tier_id, CAST(quantity AS BIGINT)
     FROM order_items WHERE order_id = ANY($1)";

/// The cancel lanes' writer: the lanes' own connections, and the sold-out memory to teach.
pub(super) struct CancelWriter {
    pub pool: PgPool,
    pub sold_out: Arc<SoldOut>,
}

impl BatchWriter for CancelWriter {
    type Request = CancelRequest;
    /// The cancelled order; `None`: not cancelled here (the one-order path answers).
    type Outcome = Option<OrderDetails>;
    const WHAT: &'static str = "cancellations";

    async fn write(
        &self,
        requests: &[&CancelRequest],
    ) -> StoreResult<Vec<StoreResult<Option<OrderDetails>>>> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let moved: Vec<(Uuid, Uuid, Option<Uuid>)> = sqlx::query_as(CANCEL_ORDERS)
            .bind(
                requests
                    .iter()
                    .map(|request| request.order_id)
                    .collect::<Vec<_>>(),
            )
            .bind(
                requests
                    .iter()
                    .map(|request| request.user_id)
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let cancelled: Vec<Uuid> = moved.iter().map(|(id, _, _)| *id).collect();
        let mut details = Vec::new();
        if !cancelled.is_empty() {
            sqlx::query(CANCEL_TICKETS)
                .bind(&cancelled)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let offers = moved.iter().filter(|(_, _, offer)| offer.is_some()).count();
            if offers > 0 {
                sqlx::query(OFFERS_DECLINED)
                    .bind(&cancelled)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                metrics::counter!("nearbytix_waitlist_offers_ended_total", "outcome" => "left")
                    .increment(offers as u64);
            }
            let seats: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(SEATS_OF)
                .bind(&cancelled)
                .fetch_all(&mut *tx)
                .await?;
            let freed = seats
                .into_iter()
                .map(|(event_id, tier_id, seats)| SeatsBack {
                    event_id,
                    tier_id: Some(tier_id),
                    seats,
                });
            ledger::release::<Postgres>(&mut tx, freed, SeatsBackCause::Cancelled, now).await?;
            let rows: Vec<OrderRow> =
                sqlx::query_as(&format!("{} WHERE o.id = ANY($1)", sql::SELECT_ORDERS))
                    .bind(&cancelled)
                    .fetch_all(&mut *tx)
                    .await?;
            details = orders_with_parts(&mut tx, rows).await?;
        }
        tx.commit().await?;
        let events: HashSet<Uuid> = moved.iter().map(|(_, event, _)| *event).collect();
        for event in events {
            self.sold_out.forget(Some(event));
        }
        Ok(order_batch::cancel_answers(requests, details))
    }
}

impl LaneWriter for CancelWriter {
    /// The event: its cancellations queue on its row lock, so they share one lane's batches.
    fn lane_key(request: &CancelRequest) -> Uuid {
        request.event_id
    }
}
