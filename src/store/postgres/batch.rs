//! Group commit for orders on PostgreSQL: the order lanes' writer ([`super::lanes`]).
//!
//! Every order of an event queues on the event row's lock, so one event sells at most one
//! commit at a time; the orders of a lane's batch are placed together in one transaction
//! ([`order_batch::write_orders`]): the batch's events locked once, in id order as every
//! writer locks them, and everything the batch writes in one statement of `unnest`ed arrays
//! (outcomes on keys claimed beforehand, when there are any, in one more).
//! Across processes nothing changes: the row locks and the CHECK constraints keep the
//! guarantee.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{FromRow, Postgres};
use uuid::Uuid;

use super::lanes::LaneWriter;
use super::sold_out::SoldOut;
use crate::domain::{OrderDetails, OrderOutcome};
use crate::store::batch::BatchWriter;
use crate::store::order_batch::{
    self, BatchStatements, BuyerOf, Buyers, Columns, KeyedOutcome, OrderRequest, SaleRow, Sales,
    split_outcomes,
};
use crate::store::{HeldKey, NewKey, StoreError, StoreResult, ledger};

/// `$1` events: each one's sale, its row locked (in id order, as every writer locks events),
/// with the database's clock.
const LOCK_SALES: &str = concat!(
    "SELECT now() AS now, ",
    sale_columns!(),
    " FROM events WHERE id = ANY($1) ORDER BY id FOR UPDATE"
);

/// `$1` events: their tiers in sale order, read after the lock (a statement that waited for
/// the lock would see tier counters older than it).
const BATCH_TIERS: &str = concat!(
    "SELECT ",
    event_tier_columns!(),
    " FROM ticket_tiers WHERE event_id = ANY($1) ORDER BY event_id, position"
);

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

/// Every granted order of a batch, its lines and tickets, the counters, and the new keys with
/// their outcomes, in one statement (`$1` now; then one array per column). Outcomes on keys
/// held go in [`RECORD_HELD_OUTCOMES`], sent only when there are any: here, they made
/// PostgreSQL cost a plan made once for all batches as if each held ten such keys, find it
/// dearer than planning each batch anew, and plan every keyed batch inside the hot event's lock
/// (0.4 ms a batch; BENCHMARKS.md, "Keyed orders, third pass").
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
        FROM unnest($21::uuid[], $22::int[]) AS s(id, seats)
        WHERE e.id = s.id
    ), tier_seats AS (
        UPDATE ticket_tiers tt SET sold = tt.sold + s.seats, updated_at = $1
        FROM unnest($23::uuid[], $24::int[]) AS s(id, seats)
        WHERE tt.id = s.id
    ), new_keys AS (
        INSERT INTO idempotency_keys (user_id, key, request_hash, claim, created_at, outcome)
        SELECT n.user_id, n.key, n.request_hash, n.claim, $1, n.outcome
        FROM unnest($25::uuid[], $26::text[], $27::text[], $28::uuid[], $29::text[])
             AS n(user_id, key, request_hash, claim, outcome)
        ORDER BY n.user_id, n.key
        ON CONFLICT (user_id, key) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM new_keys";

/// `$1` users, `$2` keys, `$3` outcomes: recorded on the keys, which the batch holds.
const RECORD_HELD_OUTCOMES: &str = "UPDATE idempotency_keys k
     SET outcome = o.outcome, lease_until = NULL
     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS o(user_id, key, outcome)
     WHERE k.user_id = o.user_id AND k.key = o.key";

/// `$1` users (in id order, each once), `$2` the new keys each brings, `$3` now, `$4` the quota:
/// each user's quota row (migration 0023) locked, in id order after the events' (every writer of
/// a key locks it first, so a quota holds exactly across lanes and processes), and raised by the
/// keys the user brings where that keeps it within the quota and the bound covers the 24 h
/// before `$3`; every row raised, with its bound after. A user with no row yet gets one, whose
/// bound is counted ([`RECOUNT_KEY_QUOTAS`]), as is any user not raised.
const RAISE_KEY_QUOTAS: &str = "INSERT INTO idempotency_key_quotas AS q (user_id, since, used)
     SELECT w.user_id, $3 - interval '25 hours', w.keys
     FROM unnest($1::uuid[], $2::bigint[]) AS w(user_id, keys)
     ORDER BY w.user_id
     ON CONFLICT (user_id) DO UPDATE SET used = q.used + excluded.used
        WHERE q.used + excluded.used <= $4 AND q.since <= $3 - interval '24 hours'
     RETURNING q.user_id, q.used, q.xmax <> 0 AS raised";

/// `$1` users (locked), `$2` the new keys each brings, `$3` now: the keys each user took over
/// the 24 h before `$3`, for users whose bound could not settle the quota; their bounds are
/// counted anew, with the keys they bring. A statement of its own: it reads what committed while
/// [`RAISE_KEY_QUOTAS`] waited for the locks; and sent only when needed, for the reason
/// [`WRITE_ORDERS`] gives.
const RECOUNT_KEY_QUOTAS: &str = "WITH counted AS (
        SELECT c.user_id, c.keys, counts.held, counts.bound
        FROM unnest($1::uuid[], $2::bigint[]) AS c(user_id, keys),
        LATERAL (SELECT count(*) FILTER (WHERE k.created_at > $3 - interval '24 hours') AS held,
                        count(*) FILTER (WHERE k.created_at > $3 - interval '25 hours') AS bound
                 FROM idempotency_keys k WHERE k.user_id = c.user_id) AS counts
    ), recounted AS (
        UPDATE idempotency_key_quotas q
        SET since = $3 - interval '25 hours', used = c.bound + c.keys
        FROM counted c
        WHERE q.user_id = c.user_id
    )
    SELECT user_id, held FROM counted";

/// `$1` users, `$2` keys: those keys no one has used.
const FREE_NEW_KEYS: &str = "SELECT n.user_id, n.key
     FROM unnest($1::uuid[], $2::text[]) AS n(user_id, key)
     WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys k
                       WHERE k.user_id = n.user_id AND k.key = n.key)";

/// `$1` users, `$2` keys, `$3` claims: the keys still held by those claims (unanswered), locked
/// in key order until the batch commits, so that no retry can take one over meanwhile.
const HOLD_CLAIMS: &str = "SELECT k.claim FROM idempotency_keys k
     JOIN unnest($1::uuid[], $2::text[], $3::uuid[]) AS c(user_id, key, claim)
       ON k.user_id = c.user_id AND k.key = c.key AND k.claim = c.claim
     WHERE k.outcome IS NULL
     ORDER BY k.user_id, k.key FOR UPDATE OF k";

#[derive(FromRow)]
struct LockedSale {
    now: DateTime<Utc>,
    #[sqlx(flatten)]
    sale: SaleRow<DateTime<Utc>>,
}

/// PostgreSQL's statements for a batch: row locks, arrays bound whole.
pub(super) struct PgStatements;

impl BatchStatements for PgStatements {
    type Conn = PgConnection;

    async fn read_sales(
        &self,
        conn: &mut PgConnection,
        event_ids: &[Uuid],
    ) -> StoreResult<(DateTime<Utc>, Sales)> {
        let locked: Vec<LockedSale> = sqlx::query_as(LOCK_SALES)
            .bind(event_ids)
            .fetch_all(&mut *conn)
            .await?;
        let Some(now) = locked.first().map(|locked| locked.now) else {
            return Ok((Utc::now(), Sales::new()));
        };
        let tiers = sqlx::query_as(BATCH_TIERS)
            .bind(event_ids)
            .fetch_all(&mut *conn)
            .await?;
        let rows = locked.into_iter().map(|locked| locked.sale).collect();
        Ok((now, order_batch::sales(rows, tiers, now)?))
    }

    async fn read_buyers(
        &self,
        conn: &mut PgConnection,
        wanted: &[BuyerOf],
        now: DateTime<Utc>,
    ) -> StoreResult<Buyers> {
        let users: Vec<Uuid> = wanted.iter().map(|b| b.user_id).collect();
        let events: Vec<Uuid> = wanted.iter().map(|b| b.event_id).collect();
        let capped: Vec<bool> = wanted.iter().map(|b| b.capped).collect();
        let rows = sqlx::query_as(BUYERS)
            .bind(&users)
            .bind(&events)
            .bind(now)
            .bind(&capped)
            .fetch_all(&mut *conn)
            .await?;
        Ok(order_batch::buyers(rows))
    }

    async fn release_due_holds(
        &self,
        conn: &mut PgConnection,
        event_ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        ledger::expire_due_holds::<Postgres>(conn, Some(event_ids), i64::MAX, now).await
    }

    async fn hold_claims(
        &self,
        conn: &mut PgConnection,
        keys: &[&HeldKey],
    ) -> StoreResult<HashSet<Uuid>> {
        let held: Vec<Uuid> = sqlx::query_scalar(HOLD_CLAIMS)
            .bind(keys.iter().map(|key| key.user_id).collect::<Vec<_>>())
            .bind(keys.iter().map(|key| key.key.as_str()).collect::<Vec<_>>())
            .bind(keys.iter().map(|key| key.claim).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        Ok(held.into_iter().collect())
    }

    async fn free_new_keys(
        &self,
        conn: &mut PgConnection,
        keys: &[&NewKey],
        now: DateTime<Utc>,
    ) -> StoreResult<HashMap<(Uuid, String), i64>> {
        let quota = keys
            .iter()
            .map(|new| i64::from(new.quota))
            .min()
            .unwrap_or(0);
        let mut brought: BTreeMap<Uuid, i64> = BTreeMap::new();
        for new in keys {
            *brought.entry(new.held.user_id).or_default() += 1;
        }
        // Raised, a user is within the quota with every key it brings: it held at most its bound
        // before them. Any other user's keys are counted. (`xmax` is 0 on a row the statement
        // created: PostgreSQL's way to tell an upsert's insert from its update.)
        let raised: Vec<(Uuid, i64, bool)> = sqlx::query_as(RAISE_KEY_QUOTAS)
            .bind(brought.keys().copied().collect::<Vec<_>>())
            .bind(brought.values().copied().collect::<Vec<_>>())
            .bind(now)
            .bind(quota)
            .fetch_all(&mut *conn)
            .await?;
        let mut held: HashMap<Uuid, i64> = raised
            .into_iter()
            .filter(|(_, _, raised)| *raised)
            .filter_map(|(user, used, _)| Some((user, used - brought.get(&user)?)))
            .collect();
        let (recount, recount_brings): (Vec<Uuid>, Vec<i64>) = brought
            .iter()
            .filter(|(user, _)| !held.contains_key(user))
            .map(|(user, brings)| (*user, *brings))
            .unzip();
        if !recount.is_empty() {
            let counted: Vec<(Uuid, i64)> = sqlx::query_as(RECOUNT_KEY_QUOTAS)
                .bind(&recount)
                .bind(&recount_brings)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            held.extend(counted);
        }
        let free: Vec<(Uuid, String)> = sqlx::query_as(FREE_NEW_KEYS)
            .bind(keys.iter().map(|new| new.held.user_id).collect::<Vec<_>>())
            .bind(
                keys.iter()
                    .map(|new| new.held.key.as_str())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *conn)
            .await?;
        Ok(free
            .into_iter()
            .filter_map(|(user, key)| Some(((user, key), *held.get(&user)?)))
            .collect())
    }

    async fn insert(
        &self,
        conn: &mut PgConnection,
        placed: &[&OrderDetails],
        outcomes: &[KeyedOutcome<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let Columns {
            orders,
            lines,
            tickets,
            event_seats,
            tier_seats,
        } = Columns::of(placed);
        let (held, new) = split_outcomes(outcomes);
        macro_rules! column {
            ($rows:expr, $field:ident) => {
                $rows
                    .iter()
                    .map(|row| row.$field.clone())
                    .collect::<Vec<_>>()
            };
        }
        macro_rules! of {
            ($rows:expr, |$row:ident| $value:expr) => {
                $rows.iter().map(|$row| $value).collect::<Vec<_>>()
            };
        }
        let inserted: i64 = sqlx::query_scalar(WRITE_ORDERS)
            .bind(now)
            .bind(column!(orders, id))
            .bind(column!(orders, user_id))
            .bind(column!(orders, event_id))
            .bind(column!(orders, currency))
            .bind(column!(orders, total_minor))
            .bind(column!(orders, expires_at))
            .bind(column!(lines, order_id))
            .bind(column!(lines, event_id))
            .bind(column!(lines, tier_id))
            .bind(column!(lines, tier_name))
            .bind(column!(lines, quantity))
            .bind(column!(lines, unit_price_minor))
            .bind(column!(lines, position))
            .bind(column!(tickets, id))
            .bind(column!(tickets, user_id))
            .bind(column!(tickets, event_id))
            .bind(column!(tickets, order_id))
            .bind(column!(tickets, tier_id))
            .bind(column!(tickets, expires_at))
            .bind(event_seats.keys().copied().collect::<Vec<_>>())
            .bind(event_seats.values().copied().collect::<Vec<_>>())
            .bind(tier_seats.keys().copied().collect::<Vec<_>>())
            .bind(tier_seats.values().copied().collect::<Vec<_>>())
            .bind(of!(new, |n| n.0.held.user_id))
            .bind(of!(new, |n| n.0.held.key.as_str()))
            .bind(of!(new, |n| n.0.request_hash.as_str()))
            .bind(of!(new, |n| n.0.held.claim))
            .bind(of!(new, |n| n.1))
            .fetch_one(&mut *conn)
            .await?;
        // A new key taken after all (every writer of a key holds its user's quota row, so none
        // should be): the batch fails, and its orders are placed one by one.
        if usize::try_from(inserted).ok() != Some(new.len()) {
            return Err(StoreError::KeyInUse);
        }
        if !held.is_empty() {
            sqlx::query(RECORD_HELD_OUTCOMES)
                .bind(of!(held, |h| h.0.user_id))
                .bind(of!(held, |h| h.0.key.as_str()))
                .bind(of!(held, |h| h.1))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// The order lanes' writer: the lanes' own connections, and the sold-out memory to teach.
pub(super) struct Writer {
    pub pool: PgPool,
    pub sold_out: Arc<SoldOut>,
}

impl BatchWriter for Writer {
    type Request = OrderRequest;
    type Outcome = OrderOutcome;
    const WHAT: &'static str = "orders";

    async fn write(&self, orders: &[&OrderRequest]) -> StoreResult<Vec<StoreResult<OrderOutcome>>> {
        let mark = self.sold_out.mark();
        let mut tx = super::begin(&self.pool).await?;
        let written = order_batch::write_orders(&PgStatements, &mut tx, orders).await?;
        tx.commit().await?;
        self.sold_out
            .learn(&self.pool, mark, written.judged_at, written.sold_out)
            .await;
        Ok(written.outcomes)
    }
}

impl LaneWriter for Writer {
    fn lane_key(request: &OrderRequest) -> Uuid {
        request.order.event_id
    }
}
