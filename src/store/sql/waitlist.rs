//! The waiting list (WAITLIST.md): its statements and rows. The offer step the seat ledger runs
//! ([`super::super::ledger`]) and [`crate::store::WaitlistStore`] use them, written once for
//! both backends in [`super::waitlist_store`] ([`waitlist_store!`], as [`checkin_list_store!`]
//! is).
//!
//! Every writer of entries holds the event's row first (PostgreSQL `FOR UPDATE`, SQLite's one
//! writer); one that cancels an offer holds its order before the event, as every order writer
//! does. The event's `waitlist_waiting` counter follows the entries by trigger.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::{EventSummaryColumns, StoredTime};
use crate::domain::UserSummary;
use crate::domain::waitlist::{ClosedReason, EntryStatus, Offer, WaitlistEntry};
use crate::store::StoreError;

/// Entries read at `$1` (now), with their user, their event's summary, their tier's sales
/// end and their rank in line (`position`, an expression, with the `from` it needs; the caller
/// appends the condition and order).
macro_rules! entry_select {
    ($position:expr, $from:expr) => {
        concat!(
            "SELECT w.id, w.event_id, w.tier_id, w.tier_name, w.user_id, w.quantity, w.status,
                w.closed_reason, w.offer_order_id, w.offer_tier_id, w.offer_tier_name,
                w.offer_quantity, w.offer_total_minor, w.offered_at, w.offer_expires_at,
                w.joined_at, w.updated_at, u.name AS user_name, u.email AS user_email,
                tt.sales_end AS tier_sales_end, ",
            event_summary_columns!(),
            ", ",
            $position,
            " AS position, count(*) OVER () AS total
             FROM waitlist_entries w
             JOIN users u ON u.id = w.user_id
             JOIN events e ON e.id = w.event_id
             LEFT JOIN ticket_tiers tt ON tt.id = w.tier_id",
            $from
        )
    };
}

/// An entry's rank among its event's waiting entries whose line is open, counted for it alone
/// (a few entries: one, or a user's).
macro_rules! counted_position {
    () => {
        "CASE WHEN w.status = 'waiting' THEN
            (SELECT count(*) FROM waitlist_entries l
             LEFT JOIN ticket_tiers lt ON lt.id = l.tier_id
             WHERE l.event_id = w.event_id AND l.status = 'waiting' AND l.seq <= w.seq
               AND (lt.sales_end IS NULL OR lt.sales_end > $1))
         END"
    };
}

/// The ranks of event `$2`'s waiting entries whose line is open, numbered once for a whole
/// listing.
macro_rules! ranked_line {
    () => {
        " LEFT JOIN (SELECT l.id, row_number() OVER (ORDER BY l.seq) AS rank
                     FROM waitlist_entries l LEFT JOIN ticket_tiers lt ON lt.id = l.tier_id
                     WHERE l.event_id = $2 AND l.status = 'waiting'
                       AND (lt.sales_end IS NULL OR lt.sales_end > $1)) r ON r.id = w.id"
    };
}

/// An entry's status as it reads at `$1` (now): see [`WaitlistEntry::effective`].
macro_rules! effective_status {
    () => {
        "(CASE WHEN w.status = 'offered' AND w.offer_expires_at <= $1 THEN 'expired'
              WHEN w.status = 'waiting'
                   AND (e.start_time <= $1 OR tt.sales_end <= $1) THEN 'closed'
              ELSE w.status END)"
    };
}

/// `$1` now, `$2` entry.
pub(in crate::store) const FIND_ENTRY: &str =
    concat!(entry_select!(counted_position!(), ""), " WHERE w.id = $2");

/// `$1` now, `$2` entry, `$3` its rank: an entry its writer has just put at the back of the
/// line, which knows its rank without counting the line.
pub(in crate::store) const FIND_JOINED: &str =
    concat!(entry_select!("CAST($3 AS BIGINT)", ""), " WHERE w.id = $2");

/// `$1` tier: its waiting entries, whose line is closed once its sales ended (until the
/// sweeper closes them).
pub(in crate::store) const WAITING_OF_TIER: &str =
    "SELECT count(*) FROM waitlist_entries WHERE tier_id = $1 AND status = 'waiting'";

/// Narrows a listing to `$3` (an effective status, or `NULL` for all).
macro_rules! status_filter {
    () => {
        concat!(" AND ($3 IS NULL OR ", effective_status!(), " = $3)")
    };
}

/// What a listing counts from (`$1` now, `$2` user).
macro_rules! user_entries_from {
    () => {
        concat!(
            " FROM waitlist_entries w JOIN events e ON e.id = w.event_id
              LEFT JOIN ticket_tiers tt ON tt.id = w.tier_id WHERE w.user_id = $2",
            status_filter!()
        )
    };
}

/// What a listing counts from (`$1` now, `$2` event, `$4` tier or `NULL`).
macro_rules! event_entries_from {
    () => {
        concat!(
            " FROM waitlist_entries w JOIN events e ON e.id = w.event_id
              LEFT JOIN ticket_tiers tt ON tt.id = w.tier_id WHERE w.event_id = $2",
            status_filter!(),
            " AND ($4 IS NULL OR w.tier_id = $4)"
        )
    };
}

/// `$1` now, `$2` user, `$3` status or `NULL`, `$4` limit, `$5` skip: newest first.
pub(in crate::store) const USER_ENTRIES: &str = concat!(
    entry_select!(counted_position!(), ""),
    " WHERE w.user_id = $2",
    status_filter!(),
    " ORDER BY w.joined_at DESC, w.id DESC LIMIT $4 OFFSET $5"
);

pub(in crate::store) const COUNT_USER_ENTRIES: &str =
    concat!("SELECT count(*)", user_entries_from!());

/// `$1` now, `$2` event, `$3` status or `NULL`, `$4` tier or `NULL`, `$5` limit, `$6` skip:
/// in join order.
pub(in crate::store) const EVENT_ENTRIES: &str = concat!(
    entry_select!("CAST(r.rank AS BIGINT)", ranked_line!()),
    " WHERE w.event_id = $2",
    status_filter!(),
    " AND ($4 IS NULL OR w.tier_id = $4) ORDER BY w.seq LIMIT $5 OFFSET $6"
);

pub(in crate::store) const COUNT_EVENT_ENTRIES: &str =
    concat!("SELECT count(*)", event_entries_from!());

/// `$1` now, `$2` event: entries per tier (`NULL`: any tier) and effective status, with the
/// seats they want.
pub(in crate::store) const ENTRY_FIGURES: &str = concat!(
    "SELECT w.tier_id, ",
    effective_status!(),
    " AS status, count(*), CAST(coalesce(sum(w.quantity), 0) AS BIGINT)
     FROM waitlist_entries w JOIN events e ON e.id = w.event_id
     LEFT JOIN ticket_tiers tt ON tt.id = w.tier_id
     WHERE w.event_id = $2 GROUP BY w.tier_id, 2"
);

/// `$1` event: whether its line is open, its waiting entries, its offer minutes (`NULL`:
/// the server's default as the entry recorded it).
pub(in crate::store) const EVENT_LINE: &str =
    "SELECT waitlist_enabled, waitlist_waiting, waitlist_offer_minutes FROM events WHERE id = $1";

/// `$1` event, `$2` user: the user's active entry for the event.
pub(in crate::store) const ACTIVE_ENTRY: &str = "SELECT id FROM waitlist_entries
     WHERE event_id = $1 AND user_id = $2 AND status IN ('waiting', 'offered')";

/// `$1` user: their active entries, every event.
pub(in crate::store) const ACTIVE_OF_USER: &str = "SELECT count(*) FROM waitlist_entries
     WHERE user_id = $1 AND status IN ('waiting', 'offered')";

pub(in crate::store) const INSERT_ENTRY: &str = "INSERT INTO waitlist_entries
        (id, event_id, tier_id, tier_name, user_id, quantity, status, offer_seconds,
         joined_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'waiting', $7, $8, $8)";

/// `$1` event, `$2` after this `seq`, `$3` at most: the line, in join order.
pub(in crate::store) const LINE_PAGE: &str = "SELECT id, user_id, tier_id, quantity, seq,
        offer_seconds
     FROM waitlist_entries WHERE event_id = $1 AND status = 'waiting' AND seq > $2
     ORDER BY seq LIMIT $3";

/// `$1` entry, `$2` order, `$3` tier, `$4` tier name, `$5` quantity, `$6` total, `$7` now,
/// `$8` expires: the entry holds its offer. Only from `waiting`.
pub(in crate::store) const ENTRY_OFFERED: &str = "UPDATE waitlist_entries
     SET status = 'offered', offer_order_id = $2, offer_tier_id = $3, offer_tier_name = $4,
         offer_quantity = $5, offer_total_minor = $6, offered_at = $7, offer_expires_at = $8,
         updated_at = $7
     WHERE id = $1 AND status = 'waiting'";

/// `$1` order, `$2` its entry.
pub(in crate::store) const ORDER_OFFERED: &str =
    "UPDATE orders SET waitlist_entry_id = $2 WHERE id = $1";

/// `$1` entry, `$2` reason, `$3` now: a waiting entry's line ended.
pub(in crate::store) const CLOSE_ENTRY: &str = "UPDATE waitlist_entries
     SET status = 'closed', closed_reason = $2, updated_at = $3
     WHERE id = $1 AND status = 'waiting'";

/// `$1` event, `$2` reason, `$3` now: every waiting entry of the event closes.
pub(in crate::store) const CLOSE_EVENT_LINE: &str = "UPDATE waitlist_entries
     SET status = 'closed', closed_reason = $2, updated_at = $3
     WHERE event_id = $1 AND status = 'waiting'";

/// `$1` tier, `$2` now: the tier's waiting entries close (`tier_unavailable`).
pub(in crate::store) const CLOSE_TIER_LINE: &str = "UPDATE waitlist_entries
     SET status = 'closed', closed_reason = 'tier_unavailable', updated_at = $2
     WHERE tier_id = $1 AND status = 'waiting'";

/// `$1` now: offers whose order expired (by the sweeper, or an order short of seats) end
/// `expired`.
pub(in crate::store) const END_LAPSED_OFFERS: &str = "UPDATE waitlist_entries
     SET status = 'expired', updated_at = $1
     WHERE status = 'offered' AND offer_expires_at <= $1
       AND EXISTS (SELECT 1 FROM orders o
                   WHERE o.id = waitlist_entries.offer_order_id AND o.status = 'expired')";

/// `$1` entry: its event, user, stored status and offer order (to lock before the event).
pub(in crate::store) const ENTRY_STATE: &str =
    "SELECT event_id, user_id, status, offer_order_id FROM waitlist_entries WHERE id = $1";

/// `$1` entry, `$2` new status (`left`/`removed`), `$3` now.
pub(in crate::store) const END_ENTRY: &str = "UPDATE waitlist_entries
     SET status = $2, updated_at = $3
     WHERE id = $1 AND status IN ('waiting', 'offered')";

/// `$1` order, `$2` now: an offered entry's order is cancelled (not past its hold); its event.
pub(in crate::store) const CANCEL_OFFER_ORDER: &str = "UPDATE orders
     SET status = 'cancelled', updated_at = $2
     WHERE id = $1 AND status = 'reserved' AND expires_at > $2 AND payment_status <> 'pending'
     RETURNING event_id, total_minor";

/// `$1` order: its row, locked by the caller's suffix (before its event's).
pub(in crate::store) const ORDER_ROW: &str = "SELECT id FROM orders WHERE id = $1";

/// `$1` now, `$2` at most: events whose line must close (they started).
pub(in crate::store) const STARTED_LINES: &str = "SELECT id FROM events
     WHERE waitlist_waiting > 0 AND start_time <= $1 ORDER BY id LIMIT $2";

/// `$1` now, `$2` at most: events with waiting entries for a tier whose sales ended.
pub(in crate::store) const ENDED_TIER_LINES: &str = "SELECT DISTINCT e.id FROM events e
     JOIN ticket_tiers t ON t.event_id = e.id
     WHERE e.waitlist_waiting > 0 AND t.sales_end <= $1
       AND EXISTS (SELECT 1 FROM waitlist_entries w WHERE w.tier_id = t.id AND w.status = 'waiting')
     ORDER BY e.id LIMIT $2";

/// `$1` now, `$2` at most: events with waiting entries and a tier whose sales started since
/// the sweeper last served their line: the clock put seats on sale, which no write did.
pub(in crate::store) const OPENED_TIER_LINES: &str = "SELECT DISTINCT e.id FROM events e
     JOIN ticket_tiers t ON t.event_id = e.id
     WHERE e.waitlist_waiting > 0 AND e.start_time > $1 AND t.sales_start <= $1
       AND (t.line_served_at IS NULL OR t.line_served_at < t.sales_start)
     ORDER BY e.id LIMIT $2";

/// `$1` event, `$2` now: the line was served for every tier whose sales have started.
pub(in crate::store) const LINES_SERVED: &str = "UPDATE ticket_tiers SET line_served_at = $2
     WHERE event_id = $1 AND sales_start <= $2
       AND (line_served_at IS NULL OR line_served_at < sales_start)";

/// `$1` event.
pub(in crate::store) const EVENT_START: &str = "SELECT start_time FROM events WHERE id = $1";

/// `$1` event: its row, locked by the caller's suffix.
pub(in crate::store) const EVENT_ROW: &str = "SELECT id FROM events WHERE id = $1";

/// `$1` event, `$2` now: the tiers of the event past their sales end.
pub(in crate::store) const ENDED_TIERS: &str =
    "SELECT id FROM ticket_tiers WHERE event_id = $1 AND sales_end <= $2";

/// `$1` order, `$2` now: the entry the order was offered to is paid for (a late payment may
/// take an expired offer's seats again).
pub(in crate::store) const OFFER_PAID: &str = "UPDATE waitlist_entries
     SET status = 'purchased', updated_at = $2
     WHERE offer_order_id = $1 AND status IN ('offered', 'expired')";

/// `$1` order, `$2` now: the order offered was cancelled: its entry declined the offer.
pub(in crate::store) const OFFER_DECLINED: &str = "UPDATE waitlist_entries
     SET status = 'left', updated_at = $2 WHERE offer_order_id = $1 AND status = 'offered'";

/// `$1` order, `$2` now: the order offered expired unpaid.
pub(in crate::store) const OFFER_EXPIRED: &str = "UPDATE waitlist_entries
     SET status = 'expired', updated_at = $2 WHERE offer_order_id = $1 AND status = 'offered'";

/// `$1` order, `$2` its new deadline: an offer's hold follows its order's (a payment started).
pub(in crate::store) const OFFER_HELD_UNTIL: &str = "UPDATE waitlist_entries
     SET offer_expires_at = $2 WHERE offer_order_id = $1 AND status = 'offered'";

/// `$1` event, `$2` now: a disabled list closes its waiting entries.
pub(in crate::store) const CLOSE_DISABLED_LINE: &str = "UPDATE waitlist_entries
     SET status = 'closed', closed_reason = 'waitlist_disabled', updated_at = $2
     WHERE event_id = $1 AND status = 'waiting'
       AND NOT (SELECT waitlist_enabled FROM events WHERE id = $1)";

/// A waiting entry as the offer step reads it.
#[derive(FromRow)]
pub(in crate::store) struct LineRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tier_id: Option<Uuid>,
    pub quantity: i32,
    pub seq: i64,
    pub offer_seconds: i64,
}

/// An entry as [`entry_select!`] reads it.
#[derive(FromRow)]
pub(in crate::store) struct EntryRow<T> {
    id: Uuid,
    event_id: Uuid,
    tier_id: Option<Uuid>,
    tier_name: Option<String>,
    user_id: Uuid,
    quantity: i32,
    status: String,
    closed_reason: Option<String>,
    offer_order_id: Option<Uuid>,
    offer_tier_id: Option<Uuid>,
    offer_tier_name: Option<String>,
    offer_quantity: Option<i32>,
    offer_total_minor: Option<i64>,
    offered_at: Option<T>,
    offer_expires_at: Option<T>,
    joined_at: T,
    updated_at: T,
    user_name: String,
    user_email: String,
    #[sqlx(flatten)]
    event: EventSummaryColumns<T>,
    tier_sales_end: Option<T>,
    position: Option<i64>,
    pub(in crate::store) total: i64,
}

pub(in crate::store) fn parse_entry_status(raw: &str) -> Result<EntryStatus, StoreError> {
    EntryStatus::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("entry status {raw:?}")))
}

impl<T: StoredTime> EntryRow<T> {
    pub(in crate::store) fn into_entry(self) -> Result<WaitlistEntry, StoreError> {
        let closed_reason = self
            .closed_reason
            .map(|raw| {
                ClosedReason::parse(&raw)
                    .ok_or_else(|| StoreError::Corrupt(format!("closed reason {raw:?}")))
            })
            .transpose()?;
        let offer = match (
            self.offer_order_id,
            self.offer_tier_id,
            self.offer_tier_name,
            self.offer_quantity,
            self.offer_total_minor,
            self.offered_at,
            self.offer_expires_at,
        ) {
            (
                Some(order_id),
                Some(tier_id),
                Some(tier_name),
                Some(quantity),
                Some(total_minor),
                Some(offered_at),
                Some(expires_at),
            ) => Some(Offer {
                order_id,
                tier_id,
                tier_name,
                quantity,
                total_minor,
                offered_at: offered_at.into_utc()?,
                expires_at: expires_at.into_utc()?,
            }),
            _ => None,
        };
        Ok(WaitlistEntry {
            id: self.id,
            event_id: self.event_id,
            tier_id: self.tier_id,
            tier_name: self.tier_name,
            user_id: self.user_id,
            quantity: self.quantity,
            status: parse_entry_status(&self.status)?,
            closed_reason,
            position: self.position,
            offer,
            user: UserSummary {
                id: self.user_id,
                name: self.user_name,
                email: self.user_email,
            },
            event: self.event.into_summary(self.event_id)?,
            tier_sales_end: self.tier_sales_end.map(StoredTime::into_utc).transpose()?,
            joined_at: self.joined_at.into_utc()?,
            updated_at: self.updated_at.into_utc()?,
        })
    }
}

/// How many waiting entries the offer step reads at a time.
pub(in crate::store) const LINE_PAGE_SIZE: i64 = 256;

/// How many events the sweeper's waiting-list pass takes on at a time.
pub(in crate::store) const SWEEP_EVENTS: i64 = 100;

/// How long an offer of `seconds` made at `now` holds: never past the event's start.
pub(in crate::store) fn offer_hold(
    seconds: i64,
    start_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::time::Duration {
    let until_start = (start_time - now).num_milliseconds().max(0);
    let wanted = seconds.saturating_mul(1000);
    std::time::Duration::from_millis(u64::try_from(wanted.min(until_start)).unwrap_or_default())
}
