//! Placing orders in batches, on both backends.
//!
//! A commit costs more than placing an order (on SQLite a hand-off to the writer thread per
//! statement, on PostgreSQL round trips with the hot event's row lock held, and a WAL flush on
//! both), so orders that arrive together are placed in one transaction ([`write_orders`]):
//! each event's sale read once, every order granted in arrival order exactly as if it ran
//! alone ([`SaleState::grant`]), all granted orders, lines and tickets inserted together, each
//! counter updated once. The backends differ only in their statements ([`BatchStatements`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::batch;
use super::sql::{self, StoredTime};
use super::{HeldKey, KeyUse, NewKey, StoreError, StoreResult};
use crate::domain::{
    EventSummary, NewOrder, Order, OrderDetails, OrderOutcome, OrderPlan, OrderRefusal, Payment,
    SaleState, Ticket, TicketDetails, TicketStatus, Tier, TierSummary, UserSummary, WriteOutcome,
};

/// An order to place, with the `Idempotency-Key` its request holds or is to claim, if any: a
/// placed keyed order records its outcome on the key in the batch's transaction.
#[derive(Debug, Clone)]
pub(super) struct OrderRequest {
    pub order: NewOrder,
    pub key: Option<KeyUse>,
}

/// An unkeyed cancellation of order `order_id` (of event `event_id`) by `user_id`, written with
/// the others that arrive together (`postgres/cancel_lanes.rs`, `sqlite/cancel_batch.rs`): what
/// the batch cannot decide alone is answered `None` and left to the one-order path, which gives
/// the reason.
#[derive(Debug, Clone)]
pub(super) struct CancelRequest {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
}

/// `$1` order, `$2` user, `$3` now: the order's event, and whether `$2` may cancel it now, read
/// without a lock: only an order that looks cancellable joins a batch of cancellations (the
/// batch checks again); any other goes the one-order path at once, for its reason.
pub(super) const CANCELLABLE: &str = "SELECT event_id,
        user_id = $2 AND status = 'reserved' AND expires_at > $3 AND payment_status <> 'pending'
     FROM orders WHERE id = $1";

/// The answer to each request of a batch of cancellations that cancelled `cancelled`: each
/// order answers its buyer's first request for it; a repeat (it finds the order cancelled) and
/// another user's request (not theirs) are left to the one-order path.
pub(super) fn cancel_answers(
    requests: &[&CancelRequest],
    cancelled: Vec<OrderDetails>,
) -> Vec<StoreResult<Option<OrderDetails>>> {
    let mut by_id: HashMap<Uuid, OrderDetails> = cancelled
        .into_iter()
        .map(|order| (order.order.id, order))
        .collect();
    requests
        .iter()
        .map(|request| {
            let theirs = by_id
                .get(&request.order_id)
                .is_some_and(|order| order.order.user_id == request.user_id);
            Ok(if theirs {
                by_id.remove(&request.order_id)
            } else {
                None
            })
        })
        .collect()
}

/// An order waiting for its batch, and where its answer goes.
pub(super) type Pending = batch::Pending<OrderRequest, OrderOutcome>;

/// One event's sale within a batch: its state as orders are granted, and what a placed order
/// shows of it.
pub(super) struct Sale {
    pub state: SaleState,
    pub event: EventSummary,
}

/// The sales of a batch's events that exist, by event id.
pub(super) type Sales = BTreeMap<Uuid, Sale>;

/// The buyers of a batch still registered, per (buyer, event), with the live tickets each
/// holds for that event (counted only where the event caps them).
pub(super) type Buyers = HashMap<(Uuid, Uuid), (UserSummary, i64)>;

/// A buyer of an event, and whether the event caps tickets per person.
pub(super) struct BuyerOf {
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub capped: bool,
}

/// A backend's statements for [`write_orders`], run inside its write transaction.
pub(super) trait BatchStatements {
    type Conn: Send;

    /// The events' sales (tiers in sale order), and the time the batch's writes are judged
    /// by. On PostgreSQL this locks the events' rows, in id order.
    fn read_sales(
        &self,
        conn: &mut Self::Conn,
        event_ids: &[Uuid],
    ) -> impl Future<Output = StoreResult<(DateTime<Utc>, Sales)>> + Send;

    fn read_buyers(
        &self,
        conn: &mut Self::Conn,
        wanted: &[BuyerOf],
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Buyers>> + Send;

    /// Expires the events' due holds and gives their seats back; how many tickets expired.
    fn release_due_holds(
        &self,
        conn: &mut Self::Conn,
        event_ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The claims among `keys` that still hold their keys, kept so until the transaction ends
    /// (on PostgreSQL their rows are locked, after the events', in key order).
    fn hold_claims(
        &self,
        conn: &mut Self::Conn,
        keys: &[&HeldKey],
    ) -> impl Future<Output = StoreResult<HashSet<Uuid>>> + Send;

    /// Of `keys`, those no one has used (on SQLite, of users still registered; on PostgreSQL a
    /// user gone fails its order as a buyer), with at most how many keys each user took over
    /// the last 24 h: the count, or on PostgreSQL a bound that leaves room for all of the
    /// user's keys here (for the quota). No other writer can take a key found free before the
    /// batch commits (on PostgreSQL every writer of a key holds its user's quota row); should
    /// one be taken all the same, the batch fails (see [`BatchStatements::insert`]).
    fn free_new_keys(
        &self,
        conn: &mut Self::Conn,
        keys: &[&NewKey],
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<HashMap<(Uuid, String), i64>>> + Send;

    /// Inserts the placed orders, lines and tickets, takes their seats from the events' and
    /// tiers' counters, and records the outcomes of the keyed ones: on the keys held, and as
    /// new keys (in key order) for the others. A new key found taken after all fails the batch
    /// with [`StoreError::KeyInUse`]: its orders are then placed one by one.
    fn insert(
        &self,
        conn: &mut Self::Conn,
        placed: &[&OrderDetails],
        outcomes: &[KeyedOutcome<'_>],
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A keyed order's outcome as recorded with its key (see [`sql::outcome_text`]).
pub(super) struct KeyedOutcome<'a> {
    pub key: &'a KeyUse,
    pub outcome: String,
}

/// Outcomes to record: on keys held, and with new keys.
pub(super) type SplitOutcomes<'a> = (Vec<(&'a HeldKey, &'a str)>, Vec<(&'a NewKey, &'a str)>);

/// `outcomes` to record on keys held, and with new keys.
pub(super) fn split_outcomes<'a>(outcomes: &'a [KeyedOutcome<'_>]) -> SplitOutcomes<'a> {
    let mut held = Vec::new();
    let mut new = Vec::new();
    for keyed in outcomes {
        match keyed.key {
            KeyUse::Held(key) => held.push((key, keyed.outcome.as_str())),
            KeyUse::New(key) => new.push((key, keyed.outcome.as_str())),
        }
    }
    (held, new)
}

/// Orders placed in one transaction: an answer per order, and the sales it left with the event
/// or a tier sold out, as judged at `judged_at`.
pub(super) struct Written {
    pub outcomes: Vec<StoreResult<OrderOutcome>>,
    pub judged_at: DateTime<Utc>,
    pub sold_out: Vec<(Uuid, SaleState)>,
}

/// Places `requests` inside the caller's write transaction on `conn`. An order whose buyer is
/// no longer registered fails alone (`ForeignKeyViolation`), as does a keyed one whose claim on
/// its key was lost (`ClaimLost`); the others are granted or refused as if each ran alone, in
/// order, and the placed keyed ones record their outcomes. The due holds of events an order was
/// short of seats for are released once (through the seat ledger), and the batch judged again.
pub(super) async fn write_orders<S: BatchStatements>(
    statements: &S,
    conn: &mut S::Conn,
    requests: &[&OrderRequest],
) -> StoreResult<Written> {
    let orders: Vec<&NewOrder> = requests.iter().map(|request| &request.order).collect();
    let mut event_ids: Vec<Uuid> = orders.iter().map(|order| order.event_id).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let mut held_keys: Vec<&HeldKey> = Vec::new();
    let mut new_keys: Vec<&NewKey> = Vec::new();
    for request in requests {
        match &request.key {
            Some(KeyUse::Held(held)) => held_keys.push(held),
            Some(KeyUse::New(new)) => new_keys.push(new),
            None => {}
        }
    }
    // The claims (one request each) that hold their keys in this transaction.
    let mut claims: Option<HashSet<Uuid>> = None;
    let mut released = false;
    loop {
        let (now, mut sales) = statements.read_sales(conn, &event_ids).await?;
        // Events, then the new keys' quotas, then key rows: the order every writer locks in.
        if claims.is_none() {
            let mut held = HashSet::new();
            if !new_keys.is_empty() {
                let free = statements.free_new_keys(conn, &new_keys, now).await?;
                held.extend(new_keys_to_take(&new_keys, free));
            }
            if !held_keys.is_empty() {
                held.extend(statements.hold_claims(conn, &held_keys).await?);
            }
            claims = Some(held);
        }
        let held = claims.as_ref().expect("claims are read above");
        let key_missing: Vec<Option<StoreError>> = requests
            .iter()
            .map(|request| {
                let key = request.key.as_ref()?;
                if held.contains(&key.held().claim) {
                    return None;
                }
                Some(match key {
                    KeyUse::Held(_) => StoreError::ClaimLost,
                    KeyUse::New(_) => StoreError::KeyInUse,
                })
            })
            .collect();
        let buyers = statements
            .read_buyers(conn, &buyers_wanted(&orders, &sales), now)
            .await?;
        let (grants, short) = grant_in_order(&orders, key_missing, &mut sales, &buyers, now);
        if !short.is_empty() && !released {
            released = true;
            if statements.release_due_holds(conn, &short, now).await? > 0 {
                continue;
            }
        }
        let mut outcomes = Vec::with_capacity(orders.len());
        for (order, grant) in orders.iter().zip(grants) {
            outcomes.push(match grant {
                // The buyer's account is gone: the token names a deleted user.
                Grant::BuyerGone => Err(StoreError::ForeignKeyViolation),
                Grant::KeyMissing(error) => Err(error),
                Grant::Judged(Err(refusal)) => Ok(OrderOutcome::Refused(refusal)),
                Grant::Judged(Ok(plan)) => {
                    let sale = &sales[&order.event_id];
                    let (buyer, _) = &buyers[&(order.user_id, order.event_id)];
                    let currency = sale.state.currency.clone();
                    let details = granted_order(order, plan, currency, &sale.event, buyer, now)?;
                    // The sale as the whole batch left it.
                    Ok(OrderOutcome::Placed {
                        order: Box::new(details),
                        event_sold_out: sale.state.sold_out_now(now),
                    })
                }
            });
        }
        let mut placed = Vec::new();
        let mut recorded = Vec::new();
        for (request, outcome) in requests.iter().zip(&outcomes) {
            if let Ok(OrderOutcome::Placed { order, .. }) = outcome {
                placed.push(order.as_ref());
                if let Some(key) = &request.key {
                    let outcome = sql::outcome_text(&WriteOutcome::Order(order.clone()))?;
                    recorded.push(KeyedOutcome { key, outcome });
                }
            }
        }
        if !placed.is_empty() {
            statements.insert(conn, &placed, &recorded, now).await?;
        }
        let sold_out = sales
            .into_iter()
            .filter(|(_, sale)| sale.state.sold_out_anywhere())
            .map(|(id, sale)| (id, sale.state))
            .collect();
        return Ok(Written {
            outcomes,
            judged_at: now,
            sold_out,
        });
    }
}

/// The order `plan` grants, as it is written and answered: held from `now` for the order's
/// hold, one ticket per seat.
pub(super) fn granted_order(
    order: &NewOrder,
    plan: OrderPlan,
    currency: String,
    event: &EventSummary,
    user: &UserSummary,
    now: DateTime<Utc>,
) -> Result<OrderDetails, StoreError> {
    let hold = chrono::Duration::from_std(order.hold)
        .map_err(|_| StoreError::Corrupt("hold duration out of range".into()))?;
    let expires_at = now + hold;
    let mut tickets = Vec::with_capacity(usize::try_from(plan.tickets).unwrap_or_default());
    for line in &plan.lines {
        for _ in 0..line.quantity {
            tickets.push(TicketDetails {
                ticket: Ticket {
                    id: Uuid::now_v7(),
                    user_id: order.user_id,
                    event_id: order.event_id,
                    order_id: order.order_id,
                    status: TicketStatus::Reserved,
                    expires_at,
                    paid_at: None,
                    created_at: now,
                    updated_at: now,
                },
                tier: TierSummary {
                    id: line.tier_id,
                    name: line.tier_name.clone(),
                    price_minor: line.unit_price_minor,
                },
                user: user.clone(),
                event: event.clone(),
            });
        }
    }
    Ok(OrderDetails {
        order: Order {
            id: order.order_id,
            user_id: order.user_id,
            event_id: order.event_id,
            status: TicketStatus::Reserved,
            currency,
            total_minor: plan.total_minor,
            expires_at,
            paid_at: None,
            created_at: now,
            updated_at: now,
            payment: Payment::default(),
            waitlist_entry_id: None,
        },
        event: event.clone(),
        lines: plan.lines,
        tickets,
    })
}

fn buyers_wanted(orders: &[&NewOrder], sales: &Sales) -> Vec<BuyerOf> {
    let mut pairs: Vec<(Uuid, Uuid)> = orders
        .iter()
        .filter(|order| sales.contains_key(&order.event_id))
        .map(|order| (order.user_id, order.event_id))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
        .into_iter()
        .map(|(user_id, event_id)| BuyerOf {
            user_id,
            event_id,
            capped: sales[&event_id].state.max_tickets_per_user.is_some(),
        })
        .collect()
}

/// The claims of the requests that may take their new keys: keys free, each taken by the first
/// request of the batch with it (a later one takes the long way, and finds the first's
/// outcome), within the user's quota counting the keys the batch takes before it.
fn new_keys_to_take(keys: &[&NewKey], mut free: HashMap<(Uuid, String), i64>) -> HashSet<Uuid> {
    let mut taken_per_user: HashMap<Uuid, i64> = HashMap::new();
    let mut take = HashSet::new();
    for new in keys {
        let Some(held_before) = free.remove(&(new.held.user_id, new.held.key.clone())) else {
            continue;
        };
        let taken = taken_per_user.entry(new.held.user_id).or_default();
        if held_before + *taken < i64::from(new.quota) {
            *taken += 1;
            take.insert(new.held.claim);
        }
    }
    take
}

/// What became of one order of a batch.
enum Grant {
    /// Its buyer is no longer registered.
    BuyerGone,
    /// Its request does not hold its `Idempotency-Key` (the claim was lost, or a new key is in
    /// use): not judged.
    KeyMissing(StoreError),
    Judged(Result<OrderPlan, OrderRefusal>),
}

/// A grant per order, and the events an order was short of seats for.
fn grant_in_order(
    orders: &[&NewOrder],
    key_missing: Vec<Option<StoreError>>,
    sales: &mut Sales,
    buyers: &Buyers,
    now: DateTime<Utc>,
) -> (Vec<Grant>, Vec<Uuid>) {
    let mut held: HashMap<(Uuid, Uuid), i64> = buyers
        .iter()
        .map(|(key, (_, held))| (*key, *held))
        .collect();
    let mut short = Vec::new();
    let grants = orders
        .iter()
        .zip(key_missing)
        .map(|(order, key_missing)| {
            if let Some(error) = key_missing {
                return Grant::KeyMissing(error);
            }
            let Some(sale) = sales.get_mut(&order.event_id) else {
                return Grant::Judged(Err(OrderRefusal::EventNotFound));
            };
            let Some(buyer_held) = held.get_mut(&(order.user_id, order.event_id)) else {
                return Grant::BuyerGone;
            };
            let grant = sale.state.grant(buyer_held, &order.lines, now);
            if matches!(grant, Err(OrderRefusal::NotEnough { .. })) {
                short.push(order.event_id);
            }
            Grant::Judged(grant)
        })
        .collect();
    short.sort_unstable();
    short.dedup();
    (grants, short)
}

/// An event's sale as a backend reads it (`T`: how it stores instants).
#[derive(FromRow)]
pub(super) struct SaleRow<T> {
    id: Uuid,
    seats_left: i64,
    max_tickets_per_user: Option<i32>,
    currency: String,
    title: String,
    start_time: T,
    end_time: T,
    venue_name: String,
    city: String,
    state: String,
}

/// The columns of [`SaleRow`], from `events`.
macro_rules! sale_columns {
    () => {
        "id, CAST(total_tickets - tickets_sold AS BIGINT) AS seats_left, max_tickets_per_user,
         currency, title, start_time, end_time, venue_name, city, state"
    };
}

/// A tier with its event, as a backend reads it.
#[derive(FromRow)]
pub(super) struct EventTierRow<T> {
    event_id: Uuid,
    #[sqlx(flatten)]
    tier: sql::TierRow<T>,
}

/// The columns of [`EventTierRow`], from `ticket_tiers`.
macro_rules! event_tier_columns {
    () => {
        concat!("event_id, ", tier_columns!())
    };
}

/// A registered buyer of an event, with its live tickets for it.
#[derive(FromRow)]
pub(super) struct BuyerRow {
    user_id: Uuid,
    event_id: Uuid,
    name: String,
    email: String,
    held: i64,
}

/// The sales read as rows, with their tiers (in sale order), judged at `now`.
pub(super) fn sales<T: StoredTime>(
    rows: Vec<SaleRow<T>>,
    tier_rows: Vec<EventTierRow<T>>,
    now: DateTime<Utc>,
) -> StoreResult<Sales> {
    let mut tiers: HashMap<Uuid, Vec<Tier>> = HashMap::new();
    for row in tier_rows {
        tiers
            .entry(row.event_id)
            .or_default()
            .push(row.tier.into_tier()?);
    }
    rows.into_iter()
        .map(|row| {
            let start_time = row.start_time.into_utc()?;
            let state = SaleState {
                started: start_time <= now,
                seats_left: row.seats_left,
                max_tickets_per_user: row.max_tickets_per_user,
                currency: row.currency,
                tiers: tiers.remove(&row.id).unwrap_or_default(),
            };
            let event = EventSummary {
                id: row.id,
                title: row.title,
                start_time,
                end_time: row.end_time.into_utc()?,
                venue_name: row.venue_name,
                city: row.city,
                state: row.state,
            };
            Ok((row.id, Sale { state, event }))
        })
        .collect()
}

pub(super) fn buyers(rows: Vec<BuyerRow>) -> Buyers {
    rows.into_iter()
        .map(|row| {
            let user = UserSummary {
                id: row.user_id,
                name: row.name,
                email: row.email,
            };
            ((row.user_id, row.event_id), (user, row.held))
        })
        .collect()
}

/// The rows a batch inserts, column by column.
#[derive(Default)]
pub(super) struct Columns {
    pub orders: Vec<OrderRowOut>,
    pub lines: Vec<LineRowOut>,
    pub tickets: Vec<TicketRowOut>,
    /// Seats taken per event and per tier.
    pub event_seats: BTreeMap<Uuid, i32>,
    pub tier_seats: BTreeMap<Uuid, i32>,
}

pub(super) struct OrderRowOut {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub currency: String,
    pub total_minor: i64,
    pub expires_at: DateTime<Utc>,
}

pub(super) struct LineRowOut {
    pub order_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Uuid,
    pub tier_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub position: i32,
}

pub(super) struct TicketRowOut {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub tier_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl Columns {
    pub fn of(placed: &[&OrderDetails]) -> Self {
        let mut columns = Self::default();
        for details in placed {
            let order = &details.order;
            columns.orders.push(OrderRowOut {
                id: order.id,
                user_id: order.user_id,
                event_id: order.event_id,
                currency: order.currency.clone(),
                total_minor: order.total_minor,
                expires_at: order.expires_at,
            });
            for (position, line) in (0i32..).zip(&details.lines) {
                columns.lines.push(LineRowOut {
                    order_id: order.id,
                    event_id: order.event_id,
                    tier_id: line.tier_id,
                    tier_name: line.tier_name.clone(),
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price_minor,
                    position,
                });
                *columns.event_seats.entry(order.event_id).or_default() += line.quantity;
                *columns.tier_seats.entry(line.tier_id).or_default() += line.quantity;
            }
            for ticket in &details.tickets {
                columns.tickets.push(TicketRowOut {
                    id: ticket.ticket.id,
                    user_id: order.user_id,
                    event_id: order.event_id,
                    order_id: order.id,
                    tier_id: ticket.tier.id,
                    expires_at: order.expires_at,
                });
            }
        }
        columns
    }
}
