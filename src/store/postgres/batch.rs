//! Group commit for orders on PostgreSQL, one lane per event.
//!
//! Every order of an event queues on the event row's lock, so an event sells at most one
//! commit at a time. Orders for an event that arrive while a transaction for it is in flight
//! in this process wait for it here instead, and are then placed together in one transaction
//! ([`write_orders`]): the event row locked once, every order granted in arrival order exactly
//! as if it ran alone ([`SaleState::grant`]), all granted orders, lines and tickets inserted by
//! one set-based statement, each counter updated once. A lone order waits for no one. Across
//! processes nothing changes: the row lock and the CHECK constraints keep the guarantee.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{FromRow, Postgres};
use uuid::Uuid;

use super::sold_out::SoldOut;
use crate::domain::{
    EventSummary, NewOrder, OrderDetails, OrderOutcome, OrderRefusal, SaleState, UserSummary,
};
use crate::store::order_batch::{self, BatchWriter, Pending};
use crate::store::{StoreError, StoreResult, sql};

/// Most orders placed in one transaction.
const MAX_BATCH: usize = 128;
/// Most orders waiting for one event in this process; more are refused as overload.
const MAX_WAITING: usize = 4096;

/// `$1` event: the sale as it is now that the event row is locked, with the database's clock.
const LOCK_SALE: &str = "SELECT now() AS now, start_time <= now() AS started,
        CAST(total_tickets - tickets_sold AS BIGINT) AS seats_left, max_tickets_per_user,
        currency, title, start_time, end_time, venue_name, city, state
     FROM events WHERE id = $1 FOR UPDATE";

/// `$1` buyers, `$2` event, `$3` now, `$4` whether to count: each buyer still registered, with
/// the live tickets it holds for the event. `FOR KEY SHARE` keeps them registered until commit.
const BUYERS: &str = "SELECT u.id, u.name, u.email,
        CASE WHEN $4 THEN (SELECT count(*) FROM tickets t
             WHERE t.user_id = u.id AND t.event_id = $2
               AND (t.status = 'paid' OR (t.status = 'reserved' AND t.expires_at > $3)))
        ELSE 0 END AS held
     FROM users u WHERE u.id = ANY($1) FOR KEY SHARE OF u";

/// Every granted order of a batch, its lines and tickets, and the counters, in one statement
/// (`$1` event, `$2` currency, `$3` now; then one array per column).
const WRITE_ORDERS: &str = "WITH new_orders AS (
        INSERT INTO orders (id, user_id, event_id, status, currency, total_minor, expires_at,
                            created_at, updated_at)
        SELECT o.id, o.user_id, $1, 'reserved', $2, o.total_minor, o.expires_at, $3, $3
        FROM unnest($4::uuid[], $5::uuid[], $6::bigint[], $7::timestamptz[])
             AS o(id, user_id, total_minor, expires_at)
    ), new_items AS (
        INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity,
                                 unit_price_minor, line)
        SELECT i.order_id, $1, i.tier_id, i.tier_name, i.quantity, i.unit_price_minor, i.line
        FROM unnest($8::uuid[], $9::uuid[], $10::text[], $11::int[], $12::bigint[], $13::int[])
             AS i(order_id, tier_id, tier_name, quantity, unit_price_minor, line)
    ), new_tickets AS (
        INSERT INTO tickets (id, user_id, event_id, order_id, tier_id, status, expires_at,
                             created_at, updated_at)
        SELECT t.id, t.user_id, $1, t.order_id, t.tier_id, 'reserved', t.expires_at, $3, $3
        FROM unnest($14::uuid[], $15::uuid[], $16::uuid[], $17::uuid[], $18::timestamptz[])
             AS t(id, user_id, order_id, tier_id, expires_at)
    ), taken AS (
        UPDATE ticket_tiers tt SET sold = tt.sold + s.seats, updated_at = $3
        FROM (SELECT tier_id, sum(quantity)::int AS seats
              FROM unnest($9::uuid[], $11::int[]) AS l(tier_id, quantity) GROUP BY tier_id) s
        WHERE tt.id = s.tier_id
    )
    UPDATE events SET tickets_sold = tickets_sold + $19, updated_at = $3 WHERE id = $1";

/// `$1` event, `$2` the database's now: how long the event stays sold out for certain — until
/// its earliest hold can lapse, or it starts (then the answer changes).
const SOLD_OUT_FOR: &str = "SELECT EXTRACT(EPOCH FROM LEAST(
            (SELECT min(expires_at) FROM orders WHERE event_id = $1 AND status = 'reserved'),
            (SELECT start_time FROM events WHERE id = $1)) - $2)::float8";

#[derive(FromRow)]
struct LockedSale {
    now: DateTime<Utc>,
    started: bool,
    seats_left: i64,
    max_tickets_per_user: Option<i32>,
    currency: String,
    title: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    venue_name: String,
    city: String,
    state: String,
}

#[derive(FromRow)]
struct BuyerRow {
    id: Uuid,
    name: String,
    email: String,
    held: i64,
}

/// Orders of one event placed in one transaction: an answer per order, and how long the
/// event is now certainly sold out (when it is).
pub(super) struct Written {
    pub outcomes: Vec<StoreResult<OrderOutcome>>,
    pub sold_out_for: Option<Duration>,
}

/// Places `orders` (all for one event) inside the caller's transaction on `conn`. An order
/// whose buyer is no longer registered fails alone; the others are granted or refused as if
/// each ran alone. Due holds of the event are released once when an order is short of seats.
pub(super) async fn write_orders(
    conn: &mut PgConnection,
    orders: &[&NewOrder],
) -> StoreResult<Written> {
    let Some(first) = orders.first() else {
        return Ok(Written {
            outcomes: Vec::new(),
            sold_out_for: None,
        });
    };
    let event_id = first.event_id;
    let mut released = false;
    let (sale, now, state, granted, buyers) = loop {
        let Some(sale) = sqlx::query_as::<_, LockedSale>(LOCK_SALE)
            .bind(event_id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            let refused = || Ok(OrderOutcome::Refused(OrderRefusal::EventNotFound));
            return Ok(Written {
                outcomes: orders.iter().map(|_| refused()).collect(),
                sold_out_for: None,
            });
        };
        let now = sale.now;
        // Read after the lock: a statement that waited for it would see older tier counters.
        let tiers = sql::tiers_on::<Postgres>(conn, event_id).await?;
        let buyer_ids: Vec<Uuid> = orders.iter().map(|order| order.user_id).collect();
        let buyers: Vec<BuyerRow> = sqlx::query_as(BUYERS)
            .bind(&buyer_ids)
            .bind(event_id)
            .bind(now)
            .bind(sale.max_tickets_per_user.is_some())
            .fetch_all(&mut *conn)
            .await?;
        let mut held: HashMap<Uuid, i64> = buyers.iter().map(|b| (b.id, b.held)).collect();
        let mut state = SaleState {
            started: sale.started,
            seats_left: sale.seats_left,
            max_tickets_per_user: sale.max_tickets_per_user,
            currency: sale.currency.clone(),
            tiers,
            held_by_buyer: 0,
        };
        let mut short = false;
        let granted: Vec<Option<Result<_, OrderRefusal>>> = orders
            .iter()
            .map(|order| {
                let buyer_held = held.get_mut(&order.user_id)?;
                let grant = state.grant(buyer_held, &order.lines, now);
                short |= matches!(grant, Err(OrderRefusal::NotEnough { .. }));
                Some(grant)
            })
            .collect();
        if short && !released {
            released = true;
            let (expired, _, _): (i64, i64, i64) =
                sqlx::query_as(expire_holds!("AND event_id = $2"))
                    .bind(i64::MAX)
                    .bind(event_id)
                    .fetch_one(&mut *conn)
                    .await?;
            if expired > 0 {
                continue;
            }
        }
        let buyers: HashMap<Uuid, UserSummary> = buyers
            .into_iter()
            .map(|b| {
                let summary = UserSummary {
                    id: b.id,
                    name: b.name,
                    email: b.email,
                };
                (b.id, summary)
            })
            .collect();
        break (sale, now, state, granted, buyers);
    };
    let event = EventSummary {
        id: event_id,
        title: sale.title,
        start_time: sale.start_time,
        end_time: sale.end_time,
        venue_name: sale.venue_name,
        city: sale.city,
        state: sale.state,
    };
    let mut outcomes = Vec::with_capacity(orders.len());
    let mut placed = Vec::new();
    for (order, grant) in orders.iter().zip(granted) {
        outcomes.push(match grant {
            // The buyer's account is gone: the token names a deleted user.
            None => Err(StoreError::ForeignKeyViolation),
            Some(Err(refusal)) => Ok(OrderOutcome::Refused(refusal)),
            Some(Ok(plan)) => {
                let buyer = &buyers[&order.user_id];
                let details =
                    sql::granted_order(order, plan, sale.currency.clone(), &event, buyer, now)?;
                placed.push(outcomes.len());
                Ok(OrderOutcome::Placed(Box::new(details)))
            }
        });
    }
    let placed: Vec<&OrderDetails> = placed
        .iter()
        .filter_map(|&index| match &outcomes[index] {
            Ok(OrderOutcome::Placed(details)) => Some(details.as_ref()),
            _ => None,
        })
        .collect();
    if !placed.is_empty() {
        insert_orders(conn, event_id, &sale.currency, &placed, now).await?;
    }
    let sold_out_for = if state.seats_left <= 0 {
        let seconds: Option<f64> = sqlx::query_scalar(SOLD_OUT_FOR)
            .bind(event_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        seconds
            .filter(|seconds| *seconds > 0.0)
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    } else {
        None
    };
    Ok(Written {
        outcomes,
        sold_out_for,
    })
}

/// Inserts granted orders with their lines and tickets, and takes their seats, in one
/// statement.
async fn insert_orders(
    conn: &mut PgConnection,
    event_id: Uuid,
    currency: &str,
    placed: &[&OrderDetails],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut orders = OrderColumns::default();
    let mut lines = LineColumns::default();
    let mut tickets = TicketColumns::default();
    let mut seats = 0i32;
    for details in placed {
        let order = &details.order;
        orders.id.push(order.id);
        orders.user_id.push(order.user_id);
        orders.total_minor.push(order.total_minor);
        orders.expires_at.push(order.expires_at);
        for (position, line) in (0i32..).zip(&details.lines) {
            lines.order_id.push(order.id);
            lines.tier_id.push(line.tier_id);
            lines.tier_name.push(line.tier_name.clone());
            lines.quantity.push(line.quantity);
            lines.unit_price_minor.push(line.unit_price_minor);
            lines.position.push(position);
            seats += line.quantity;
        }
        for ticket in &details.tickets {
            tickets.id.push(ticket.ticket.id);
            tickets.user_id.push(order.user_id);
            tickets.order_id.push(order.id);
            tickets.tier_id.push(ticket.tier.id);
            tickets.expires_at.push(order.expires_at);
        }
    }
    sqlx::query(WRITE_ORDERS)
        .bind(event_id)
        .bind(currency)
        .bind(now)
        .bind(&orders.id)
        .bind(&orders.user_id)
        .bind(&orders.total_minor)
        .bind(&orders.expires_at)
        .bind(&lines.order_id)
        .bind(&lines.tier_id)
        .bind(&lines.tier_name)
        .bind(&lines.quantity)
        .bind(&lines.unit_price_minor)
        .bind(&lines.position)
        .bind(&tickets.id)
        .bind(&tickets.user_id)
        .bind(&tickets.order_id)
        .bind(&tickets.tier_id)
        .bind(&tickets.expires_at)
        .bind(seats)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Default)]
struct OrderColumns {
    id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    total_minor: Vec<i64>,
    expires_at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct LineColumns {
    order_id: Vec<Uuid>,
    tier_id: Vec<Uuid>,
    tier_name: Vec<String>,
    quantity: Vec<i32>,
    unit_price_minor: Vec<i64>,
    position: Vec<i32>,
}

#[derive(Default)]
struct TicketColumns {
    id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    order_id: Vec<Uuid>,
    tier_id: Vec<Uuid>,
    expires_at: Vec<DateTime<Utc>>,
}

/// The per-event lanes of one process: the orders waiting for each event whose transaction
/// is in flight.
pub(super) struct Lanes {
    writer: Writer,
    waiting: Mutex<HashMap<Uuid, Vec<Pending>>>,
}

struct Writer {
    pool: PgPool,
    sold_out: Arc<SoldOut>,
}

impl Lanes {
    pub fn new(pool: PgPool, sold_out: Arc<SoldOut>) -> Arc<Self> {
        Arc::new(Self {
            writer: Writer { pool, sold_out },
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// Places `order` in the next transaction for its event: at once when none is in
    /// flight, else together with the orders that arrived meanwhile.
    pub async fn place(self: &Arc<Self>, order: NewOrder) -> StoreResult<OrderOutcome> {
        let event_id = order.event_id;
        let (pending, answer) = Pending::new(order);
        let lead = {
            let mut waiting = self.waiting();
            match waiting.get_mut(&event_id) {
                Some(queue) if queue.len() >= MAX_WAITING => {
                    return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
                }
                Some(queue) => {
                    queue.push(pending);
                    None
                }
                None => {
                    waiting.insert(event_id, Vec::new());
                    Some(pending)
                }
            }
        };
        if let Some(first) = lead {
            // A task of its own, so that a request cut off by its timeout does not strand
            // the orders that wait behind its transaction.
            tokio::spawn(Arc::clone(self).drive(event_id, first));
        }
        answer.wait().await
    }

    /// Places batches for `event_id` until no order waits for it.
    async fn drive(self: Arc<Self>, event_id: Uuid, first: Pending) {
        let mut lane = LaneGuard {
            lanes: &self,
            event_id,
            open: true,
        };
        let mut batch = vec![first];
        loop {
            order_batch::place(&self.writer, batch).await;
            let mut waiting = self.waiting();
            let queue = waiting.entry(event_id).or_default();
            if queue.is_empty() {
                waiting.remove(&event_id);
                lane.open = false;
                return;
            }
            let size = queue.len().min(MAX_BATCH);
            batch = queue.drain(..size).collect();
        }
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<Pending>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes an event's lane should its task end early (a panic): the orders waiting in it are
/// answered as failed instead of waiting for a transaction that will not come.
struct LaneGuard<'a> {
    lanes: &'a Lanes,
    event_id: Uuid,
    open: bool,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if self.open {
            self.lanes.waiting().remove(&self.event_id);
        }
    }
}

impl BatchWriter for Writer {
    async fn write(&self, orders: &[&NewOrder]) -> StoreResult<Vec<StoreResult<OrderOutcome>>> {
        let generation = self.sold_out.generation();
        let mut tx = self.pool.begin().await?;
        let written = write_orders(&mut tx, orders).await?;
        tx.commit().await?;
        if let (Some(order), Some(period)) = (orders.first(), written.sold_out_for) {
            self.sold_out.remember(order.event_id, generation, period);
        }
        Ok(written.outcomes)
    }
}
