//! Cancellations on SQLite in batches, as orders are ([`super::batch`]): the cancellations that
//! arrive together share one transaction of the one writer, which moves their tickets in one
//! statement and gives all their seats back through the seat ledger at once (one offer step
//! for the waiting list, however many returns). What the batch cannot decide alone is
//! answered `None` and left to the one-order path.

use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::batch::WriterBatch;
use super::{OrderRow, WriteTx, orders_with_parts, push_ids};
use crate::domain::{OrderDetails, SeatsBack, SeatsBackCause};
use crate::store::batch;
use crate::store::order_batch::{self, CancelRequest};
use crate::store::sql::{self, Micros};
use crate::store::{OrderAction, StoreResult, ledger};

/// A cancellation waiting for its batch.
pub(super) type PendingCancel = batch::Pending<CancelRequest, Option<OrderDetails>>;

/// Cancellations written together.
pub(super) struct CancelOrders;

impl WriterBatch for CancelOrders {
    type Request = CancelRequest;
    /// The cancelled order; `None`: not cancelled here (the one-order path answers).
    type Outcome = Option<OrderDetails>;
    const WHAT: &'static str = "cancellations";

    async fn write_in(
        &self,
        tx: &mut WriteTx,
        requests: &[&CancelRequest],
    ) -> StoreResult<Vec<StoreResult<Option<OrderDetails>>>> {
        cancel_all(tx, requests).await
    }
}

/// Cancels what `requests` may cancel inside `tx`; each request's answer.
async fn cancel_all(
    tx: &mut WriteTx,
    requests: &[&CancelRequest],
) -> StoreResult<Vec<StoreResult<Option<OrderDetails>>>> {
    let now = tx.now();
    let at = Micros::from(now);
    // One statement per order: the single writer makes each cheap; the batch shares the rest.
    let mut cancelled = Vec::new();
    let mut offers = 0u64;
    for request in requests {
        // The one-order path's own statement: the same rules decide.
        let moved: Option<(Uuid, i64, Option<Uuid>)> =
            sqlx::query_as(sql::order_action_statement(OrderAction::Cancel))
                .bind(request.order_id)
                .bind(request.user_id)
                .bind(at)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some((_, _, offer)) = moved {
            cancelled.push(request.order_id);
            offers += u64::from(offer.is_some());
        }
    }
    let mut details = Vec::new();
    if !cancelled.is_empty() {
        let mut tickets = QueryBuilder::<Sqlite>::new(
            "UPDATE tickets SET status = 'cancelled', paid_at = NULL, updated_at = ",
        );
        tickets.push_bind(at).push(" WHERE order_id");
        push_ids(&mut tickets, &cancelled);
        tickets.build().execute(&mut **tx).await?;
        if offers > 0 {
            let mut declined = QueryBuilder::<Sqlite>::new(
                "UPDATE waitlist_entries SET status = 'left', updated_at = ",
            );
            declined
                .push_bind(at)
                .push(" WHERE status = 'offered' AND offer_order_id");
            push_ids(&mut declined, &cancelled);
            declined.build().execute(&mut **tx).await?;
            metrics::counter!("nearbytix_waitlist_offers_ended_total", "outcome" => "left")
                .increment(offers);
        }
        let mut seats = QueryBuilder::<Sqlite>::new(
            "SELECT event_id, tier_id, CAST(quantity AS BIGINT) FROM order_items WHERE order_id",
        );
        push_ids(&mut seats, &cancelled);
        let seats: Vec<(Uuid, Uuid, i64)> = seats.build_query_as().fetch_all(&mut **tx).await?;
        let freed = seats
            .into_iter()
            .map(|(event_id, tier_id, seats)| SeatsBack {
                event_id,
                tier_id: Some(tier_id),
                seats,
            });
        ledger::release::<Sqlite>(&mut **tx, freed, SeatsBackCause::Cancelled, now).await?;
        let mut orders = QueryBuilder::<Sqlite>::new(sql::SELECT_ORDERS);
        orders.push(" WHERE o.id");
        push_ids(&mut orders, &cancelled);
        let rows: Vec<OrderRow> = orders.build_query_as().fetch_all(&mut **tx).await?;
        details = orders_with_parts(tx, rows).await?;
    }
    Ok(order_batch::cancel_answers(requests, details))
}
