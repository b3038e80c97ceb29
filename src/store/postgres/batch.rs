//! Group commit for orders on PostgreSQL, in a few lanes per process.
//!
//! Every order of an event queues on the event row's lock, so an event sells at most one
//! commit at a time, and each transaction costs round trips and a WAL flush. Orders are
//! therefore sorted into [`LANES`] lanes by event; while a transaction of a lane is in flight,
//! the orders arriving for its events wait here, and are then placed together in one
//! transaction ([`write_orders`]): the batch's events locked once (in id order, as every
//! writer locks them), each order granted in arrival order exactly as if it ran alone
//! ([`SaleState::grant`]), all granted orders, lines and tickets inserted by one set-based
//! statement, each counter updated once. A lone order waits for no one. Across processes
//! nothing changes: the row locks and the CHECK constraints keep the guarantee.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool};
use uuid::Uuid;

use super::sold_out::SoldOut;
use crate::domain::{
    EventSummary, NewOrder, OrderDetails, OrderOutcome, OrderRefusal, SaleState, Tier, UserSummary,
};
use crate::store::order_batch::{self, BatchWriter, Pending};
use crate::store::{StoreError, StoreResult, sql};

/// Lanes per process: transactions of one process in flight at once for orders. A hot event
/// has one lane; orders spread over many events share them.
const LANES: usize = 4;
/// Most orders placed in one transaction.
const MAX_BATCH: usize = 128;
/// Most orders waiting in one lane; more are refused as overload.
const MAX_WAITING: usize = 4096;

/// `$1` events: each one's sale as it is now that its row is locked (in id order, as every
/// writer locks events), with the database's clock.
const LOCK_SALES: &str = "SELECT now() AS now, id, start_time <= now() AS started,
        CAST(total_tickets - tickets_sold AS BIGINT) AS seats_left, max_tickets_per_user,
        currency, title, start_time, end_time, venue_name, city, state
     FROM events WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// `$1` events: their tiers in sale order (read after the lock: a statement that waited for
/// the lock would see tier counters older than it).
const SALE_TIERS: &str = "SELECT event_id, id, name, description, price_minor, quantity, sold,
        max_per_order, sales_start, sales_end, position
     FROM ticket_tiers WHERE event_id = ANY($1) ORDER BY event_id, position";

/// `$1` buyers, `$2` their events, `$3` now, `$4` whether the event caps tickets per person:
/// each buyer still registered, with the live tickets it holds for the event. `FOR KEY SHARE`
/// keeps them registered until commit.
const BUYERS: &str = "SELECT p.user_id, p.event_id, u.name, u.email,
        CASE WHEN p.capped THEN (SELECT count(*) FROM tickets t
             WHERE t.user_id = p.user_id AND t.event_id = p.event_id
               AND (t.status = 'paid' OR (t.status = 'reserved' AND t.expires_at > $3)))
        ELSE 0 END AS held
     FROM unnest($1::uuid[], $2::uuid[], $4::bool[]) AS p(user_id, event_id, capped)
     JOIN users u ON u.id = p.user_id
     FOR KEY SHARE OF u";

/// Every granted order of a batch, its lines and tickets, and the counters, in one statement
/// (`$1` now; then one array per column).
const WRITE_ORDERS: &str = "WITH new_orders AS (
        INSERT INTO orders (id, user_id, event_id, status, currency, total_minor, expires_at,
                            created_at, updated_at)
        SELECT o.id, o.user_id, o.event_id, 'reserved', o.currency, o.total_minor,
               o.expires_at, $1, $1
        FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bigint[],
                    $7::timestamptz[])
             AS o(id, user_id, event_id, currency, total_minor, expires_at)
    ), new_items AS (
        INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity,
                                 unit_price_minor, line)
        SELECT i.order_id, i.event_id, i.tier_id, i.tier_name, i.quantity, i.unit_price_minor,
               i.line
        FROM unnest($8::uuid[], $9::uuid[], $10::uuid[], $11::text[], $12::int[], $13::bigint[],
                    $14::int[])
             AS i(order_id, event_id, tier_id, tier_name, quantity, unit_price_minor, line)
    ), new_tickets AS (
        INSERT INTO tickets (id, user_id, event_id, order_id, tier_id, status, expires_at,
                             created_at, updated_at)
        SELECT t.id, t.user_id, t.event_id, t.order_id, t.tier_id, 'reserved', t.expires_at,
               $1, $1
        FROM unnest($15::uuid[], $16::uuid[], $17::uuid[], $18::uuid[], $19::uuid[],
                    $20::timestamptz[])
             AS t(id, user_id, event_id, order_id, tier_id, expires_at)
    ), seats AS (
        UPDATE events e SET tickets_sold = e.tickets_sold + s.seats, updated_at = $1
        FROM (SELECT event_id, sum(quantity)::int AS seats
              FROM unnest($9::uuid[], $12::int[]) AS l(event_id, quantity) GROUP BY event_id) s
        WHERE e.id = s.event_id
        RETURNING e.id
    )
    UPDATE ticket_tiers tt SET sold = tt.sold + s.seats, updated_at = $1
    FROM (SELECT tier_id, sum(quantity)::int AS seats
          FROM unnest($10::uuid[], $12::int[]) AS l(tier_id, quantity) GROUP BY tier_id) s
    WHERE tt.id = s.tier_id";

/// `$1` event, `$2` the database's now: how long the event stays sold out for certain — until
/// its earliest hold can lapse, or it starts (then the answer changes).
const SOLD_OUT_FOR: &str = "SELECT EXTRACT(EPOCH FROM LEAST(
            (SELECT min(expires_at) FROM orders WHERE event_id = $1 AND status = 'reserved'),
            (SELECT start_time FROM events WHERE id = $1)) - $2)::float8";

#[derive(FromRow)]
struct LockedSale {
    now: DateTime<Utc>,
    id: Uuid,
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
struct EventTierRow {
    event_id: Uuid,
    #[sqlx(flatten)]
    tier: sql::TierRow<DateTime<Utc>>,
}

#[derive(FromRow)]
struct BuyerRow {
    user_id: Uuid,
    event_id: Uuid,
    name: String,
    email: String,
    held: i64,
}

/// One event's sale within a batch: its state as orders are granted, and what a placed order
/// shows of it.
struct Sale {
    state: SaleState,
    event: EventSummary,
}

/// Orders placed in one transaction: an answer per order, and the events now certainly sold
/// out, each with how long it stays so.
pub(super) struct Written {
    pub outcomes: Vec<StoreResult<OrderOutcome>>,
    pub sold_out: Vec<(Uuid, Duration)>,
}

/// Places `orders` inside the caller's transaction on `conn`. An order whose buyer is no
/// longer registered fails alone; the others are granted or refused as if each ran alone, in
/// order. Due holds of an event are released once when an order for it is short of seats.
pub(super) async fn write_orders(
    conn: &mut PgConnection,
    orders: &[&NewOrder],
) -> StoreResult<Written> {
    let event_ids: Vec<Uuid> = {
        let mut ids: Vec<Uuid> = orders.iter().map(|order| order.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut released = false;
    let (now, mut sales, grants, buyers) = loop {
        let (now, mut sales) = lock_sales(conn, &event_ids).await?;
        let buyers = read_buyers(conn, orders, &sales, now).await?;
        let mut held: HashMap<(Uuid, Uuid), i64> = buyers
            .iter()
            .map(|(key, (_, held))| (*key, *held))
            .collect();
        let mut short = Vec::new();
        let grants: Vec<Option<Result<_, OrderRefusal>>> = orders
            .iter()
            .map(|order| {
                let Some(sale) = sales.get_mut(&order.event_id) else {
                    return Some(Err(OrderRefusal::EventNotFound));
                };
                // No entry: the buyer's account is gone.
                let buyer_held = held.get_mut(&(order.user_id, order.event_id))?;
                let grant = sale.state.grant(buyer_held, &order.lines, now);
                if matches!(grant, Err(OrderRefusal::NotEnough { .. })) {
                    short.push(order.event_id);
                }
                Some(grant)
            })
            .collect();
        if !short.is_empty() && !released {
            released = true;
            short.sort_unstable();
            short.dedup();
            let (expired, _, _): (i64, i64, i64) =
                sqlx::query_as(expire_holds!("AND event_id = ANY($2)"))
                    .bind(i64::MAX)
                    .bind(&short)
                    .fetch_one(&mut *conn)
                    .await?;
            if expired > 0 {
                continue;
            }
        }
        break (now, sales, grants, buyers);
    };
    let mut outcomes = Vec::with_capacity(orders.len());
    for (order, grant) in orders.iter().zip(grants) {
        outcomes.push(match grant {
            // The buyer's account is gone: the token names a deleted user.
            None => Err(StoreError::ForeignKeyViolation),
            Some(Err(refusal)) => Ok(OrderOutcome::Refused(refusal)),
            Some(Ok(plan)) => {
                let sale = &sales[&order.event_id];
                let (buyer, _) = &buyers[&(order.user_id, order.event_id)];
                let currency = sale.state.currency.clone();
                let details = sql::granted_order(order, plan, currency, &sale.event, buyer, now)?;
                Ok(OrderOutcome::Placed(Box::new(details)))
            }
        });
    }
    let placed: Vec<&OrderDetails> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Ok(OrderOutcome::Placed(details)) => Some(details.as_ref()),
            _ => None,
        })
        .collect();
    if !placed.is_empty() {
        insert_orders(conn, &placed, now).await?;
    }
    let mut sold_out = Vec::new();
    sales.retain(|_, sale| sale.state.seats_left <= 0);
    for event_id in sales.into_keys() {
        let seconds: Option<f64> = sqlx::query_scalar(SOLD_OUT_FOR)
            .bind(event_id)
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
        let period = seconds
            .filter(|seconds| *seconds > 0.0)
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
        if let Some(period) = period {
            sold_out.push((event_id, period));
        }
    }
    Ok(Written { outcomes, sold_out })
}

/// Locks the events (those that exist) and reads their sales, tiers included.
async fn lock_sales(
    conn: &mut PgConnection,
    event_ids: &[Uuid],
) -> StoreResult<(DateTime<Utc>, BTreeMap<Uuid, Sale>)> {
    let locked: Vec<LockedSale> = sqlx::query_as(LOCK_SALES)
        .bind(event_ids)
        .fetch_all(&mut *conn)
        .await?;
    let Some(now) = locked.first().map(|sale| sale.now) else {
        return Ok((Utc::now(), BTreeMap::new()));
    };
    let mut tiers: HashMap<Uuid, Vec<Tier>> = HashMap::new();
    let rows: Vec<EventTierRow> = sqlx::query_as(SALE_TIERS)
        .bind(event_ids)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        tiers
            .entry(row.event_id)
            .or_default()
            .push(row.tier.into_tier()?);
    }
    let sales = locked
        .into_iter()
        .map(|sale| {
            let state = SaleState {
                started: sale.started,
                seats_left: sale.seats_left,
                max_tickets_per_user: sale.max_tickets_per_user,
                currency: sale.currency,
                tiers: tiers.remove(&sale.id).unwrap_or_default(),
                held_by_buyer: 0,
            };
            let event = EventSummary {
                id: sale.id,
                title: sale.title,
                start_time: sale.start_time,
                end_time: sale.end_time,
                venue_name: sale.venue_name,
                city: sale.city,
                state: sale.state,
            };
            (sale.id, Sale { state, event })
        })
        .collect();
    Ok((now, sales))
}

/// The buyers of `orders` still registered, per (buyer, event), with the live tickets each
/// holds for the event when it caps them.
async fn read_buyers(
    conn: &mut PgConnection,
    orders: &[&NewOrder],
    sales: &BTreeMap<Uuid, Sale>,
    now: DateTime<Utc>,
) -> StoreResult<HashMap<(Uuid, Uuid), (UserSummary, i64)>> {
    let mut pairs: Vec<(Uuid, Uuid)> = orders
        .iter()
        .filter(|order| sales.contains_key(&order.event_id))
        .map(|order| (order.user_id, order.event_id))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let (users, events): (Vec<Uuid>, Vec<Uuid>) = pairs.into_iter().unzip();
    let capped: Vec<bool> = events
        .iter()
        .map(|event| sales[event].state.max_tickets_per_user.is_some())
        .collect();
    let rows: Vec<BuyerRow> = sqlx::query_as(BUYERS)
        .bind(&users)
        .bind(&events)
        .bind(now)
        .bind(&capped)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let user = UserSummary {
                id: row.user_id,
                name: row.name,
                email: row.email,
            };
            ((row.user_id, row.event_id), (user, row.held))
        })
        .collect())
}

/// Inserts granted orders with their lines and tickets, and takes their seats, in one
/// statement.
async fn insert_orders(
    conn: &mut PgConnection,
    placed: &[&OrderDetails],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut orders = OrderColumns::default();
    let mut lines = LineColumns::default();
    let mut tickets = TicketColumns::default();
    for details in placed {
        let order = &details.order;
        orders.id.push(order.id);
        orders.user_id.push(order.user_id);
        orders.event_id.push(order.event_id);
        orders.currency.push(order.currency.clone());
        orders.total_minor.push(order.total_minor);
        orders.expires_at.push(order.expires_at);
        for (position, line) in (0i32..).zip(&details.lines) {
            lines.order_id.push(order.id);
            lines.event_id.push(order.event_id);
            lines.tier_id.push(line.tier_id);
            lines.tier_name.push(line.tier_name.clone());
            lines.quantity.push(line.quantity);
            lines.unit_price_minor.push(line.unit_price_minor);
            lines.position.push(position);
        }
        for ticket in &details.tickets {
            tickets.id.push(ticket.ticket.id);
            tickets.user_id.push(order.user_id);
            tickets.event_id.push(order.event_id);
            tickets.order_id.push(order.id);
            tickets.tier_id.push(ticket.tier.id);
            tickets.expires_at.push(order.expires_at);
        }
    }
    sqlx::query(WRITE_ORDERS)
        .bind(now)
        .bind(&orders.id)
        .bind(&orders.user_id)
        .bind(&orders.event_id)
        .bind(&orders.currency)
        .bind(&orders.total_minor)
        .bind(&orders.expires_at)
        .bind(&lines.order_id)
        .bind(&lines.event_id)
        .bind(&lines.tier_id)
        .bind(&lines.tier_name)
        .bind(&lines.quantity)
        .bind(&lines.unit_price_minor)
        .bind(&lines.position)
        .bind(&tickets.id)
        .bind(&tickets.user_id)
        .bind(&tickets.event_id)
        .bind(&tickets.order_id)
        .bind(&tickets.tier_id)
        .bind(&tickets.expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Default)]
struct OrderColumns {
    id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    currency: Vec<String>,
    total_minor: Vec<i64>,
    expires_at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct LineColumns {
    order_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
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
    event_id: Vec<Uuid>,
    order_id: Vec<Uuid>,
    tier_id: Vec<Uuid>,
    expires_at: Vec<DateTime<Utc>>,
}

/// The lanes of one process: the orders waiting in each lane whose transaction is in flight
/// (`None`: the lane is idle).
pub(super) struct Lanes {
    writer: Writer,
    lanes: [Mutex<Option<Vec<Pending>>>; LANES],
}

struct Writer {
    pool: PgPool,
    sold_out: Arc<SoldOut>,
}

impl Lanes {
    pub fn new(pool: PgPool, sold_out: Arc<SoldOut>) -> Arc<Self> {
        Arc::new(Self {
            writer: Writer { pool, sold_out },
            lanes: std::array::from_fn(|_| Mutex::new(None)),
        })
    }

    /// Places `order` in its lane's next transaction: at once when the lane is idle, else
    /// together with the orders that arrived while its transaction was in flight.
    pub async fn place(self: &Arc<Self>, order: NewOrder) -> StoreResult<OrderOutcome> {
        // Ids end in random bits (version 7 included).
        let lane = usize::try_from(order.event_id.as_u128() % LANES as u128).unwrap_or(0);
        let (pending, answer) = Pending::new(order);
        let lead = {
            let mut waiting = self.waiting(lane);
            match waiting.as_mut() {
                Some(queue) if queue.len() >= MAX_WAITING => {
                    return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
                }
                Some(queue) => {
                    queue.push(pending);
                    None
                }
                None => {
                    *waiting = Some(Vec::new());
                    Some(pending)
                }
            }
        };
        if let Some(first) = lead {
            // A task of its own, so that a request cut off by its timeout does not strand
            // the orders that wait behind its transaction.
            tokio::spawn(Arc::clone(self).drive(lane, first));
        }
        answer.wait().await
    }

    /// Places batches of `lane` until no order waits in it.
    async fn drive(self: Arc<Self>, lane: usize, first: Pending) {
        let mut guard = LaneGuard {
            lanes: &self,
            lane,
            open: true,
        };
        let mut batch = vec![first];
        loop {
            order_batch::place(&self.writer, batch).await;
            let mut waiting = self.waiting(lane);
            let queue = waiting.get_or_insert_default();
            if queue.is_empty() {
                *waiting = None;
                guard.open = false;
                return;
            }
            let size = queue.len().min(MAX_BATCH);
            batch = queue.drain(..size).collect();
        }
    }

    fn waiting(&self, lane: usize) -> MutexGuard<'_, Option<Vec<Pending>>> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes a lane should its task end early (a panic): the orders waiting in it are answered
/// as failed instead of waiting for a transaction that will not come.
struct LaneGuard<'a> {
    lanes: &'a Lanes,
    lane: usize,
    open: bool,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if self.open {
            *self.lanes.waiting(self.lane) = None;
        }
    }
}

impl BatchWriter for Writer {
    async fn write(&self, orders: &[&NewOrder]) -> StoreResult<Vec<StoreResult<OrderOutcome>>> {
        let generation = self.sold_out.generation();
        let mut tx = self.pool.begin().await?;
        let written = write_orders(&mut tx, orders).await?;
        tx.commit().await?;
        for (event_id, period) in written.sold_out {
            self.sold_out.remember(event_id, generation, period);
        }
        Ok(written.outcomes)
    }
}
