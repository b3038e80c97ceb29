//! PostgreSQL's part of the seat ledger and of scans ([`sql::Dialect`]): the statements that
//! move seats, expire holds and lock scanned tickets, with arrays bound whole.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::domain::{SeatsBack, SeatsBackCause};
use crate::store::StoreResult;
use crate::store::sql;

/// `$1` limit, `$2` now (then the filter's own parameters): marks due orders (oldest first)
/// and their tickets expired, and counts their seats per event and tier. `SKIP LOCKED` lets
/// several sweepers share the work; the seat ledger then gives the seats back. The tickets
/// are locked in id order first, as a transaction of scans locks them.
macro_rules! expire_due {
    ($filter:literal) => {
        concat!(
            "WITH due AS (
                SELECT id FROM orders
                WHERE status = 'reserved' AND expires_at <= $2 ",
            $filter,
            " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
            ), expired AS (
                UPDATE orders o SET status = 'expired', updated_at = $2
                FROM due WHERE o.id = due.id AND o.status = 'reserved'
                RETURNING o.id
            ), locked AS (
                SELECT t.id FROM tickets t JOIN expired ON t.order_id = expired.id
                ORDER BY t.id FOR UPDATE OF t
            ), released AS (
                UPDATE tickets t SET status = 'expired', updated_at = $2
                FROM locked WHERE t.id = locked.id
                RETURNING t.event_id, t.tier_id
            )
            SELECT event_id, tier_id, count(*) FROM released GROUP BY event_id, tier_id"
        )
    };
}

/// `$1` events, `$2` tiers, `$3` seats (one entry per event and tier), `$4` now: takes the
/// seats off the counters, event rows locked in id order, and each tier's row only after its
/// event's (every writer of a tier holds its event's lock first).
const UNCOUNT_SEATS: &str = "WITH freed AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS f(event_id, tier_id, seats)
    ), per_event AS (
        SELECT event_id, sum(seats)::int AS seats FROM freed GROUP BY event_id
    ), locked AS (
        SELECT e.id FROM events e JOIN per_event p ON p.event_id = e.id
        ORDER BY e.id FOR UPDATE OF e
    ), events_back AS (
        UPDATE events e SET tickets_sold = e.tickets_sold - p.seats, updated_at = $4
        FROM per_event p, locked l WHERE e.id = p.event_id AND l.id = e.id
        RETURNING e.id
    )
    UPDATE ticket_tiers tt SET sold = tt.sold - f.seats, updated_at = $4
    FROM freed f JOIN events_back b ON b.id = f.event_id
    WHERE tt.id = f.tier_id";

impl sql::Dialect for Postgres {
    type Time = DateTime<Utc>;
    const ILIKE: &'static str = "ILIKE";
    const LOCK_ROW: &'static str = " FOR UPDATE";
    const LOCK_ROW_NO_KEY: &'static str = " FOR NO KEY UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    async fn lock_scanned_tickets(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<Vec<sql::ScannedTicketRow<DateTime<Utc>>>, sqlx::Error> {
        let locked = format!(
            "{} WHERE t.id = ANY($1) ORDER BY t.id FOR UPDATE OF t",
            sql::SCANNED_TICKETS
        );
        sqlx::query_as(&locked).bind(ids).fetch_all(conn).await
    }

    async fn expire_due(
        conn: &mut PgConnection,
        events: Option<&[Uuid]>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SeatsBack>> {
        let rows: Vec<(Uuid, Uuid, i64)> = match events {
            None => {
                let due = sqlx::query_as(expire_due!("")).bind(limit).bind(now);
                due.fetch_all(&mut *conn).await?
            }
            Some(events) => {
                let due = sqlx::query_as(expire_due!("AND event_id = ANY($3)"));
                due.bind(limit)
                    .bind(now)
                    .bind(events)
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(event_id, tier_id, seats)| SeatsBack {
                event_id,
                tier_id: Some(tier_id),
                seats,
            })
            .collect())
    }

    async fn uncount_seats(
        conn: &mut PgConnection,
        freed: &[SeatsBack],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(UNCOUNT_SEATS)
            .bind(freed.iter().map(|back| back.event_id).collect::<Vec<_>>())
            .bind(freed.iter().map(|back| back.tier_id).collect::<Vec<_>>())
            .bind(
                freed
                    .iter()
                    .map(|back| seats_i32(back.seats))
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn offer_to_line(
        conn: &mut PgConnection,
        events: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        super::waitlist::offer_to_line(conn, events, now).await
    }

    async fn close_tier_line(
        conn: &mut PgConnection,
        tier: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        super::waitlist::close_tier_line(conn, tier, now).await
    }

    async fn close_disabled_line(
        conn: &mut PgConnection,
        event: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        super::waitlist::close_disabled_line(conn, event, now).await
    }

    async fn end_lapsed_offers(conn: &mut PgConnection, now: DateTime<Utc>) -> StoreResult<()> {
        super::waitlist::end_lapsed_offers(conn, now).await
    }

    async fn record_seats_back(
        conn: &mut PgConnection,
        back: &[SeatsBack],
        cause: SeatsBackCause,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO seat_returns (event_id, tier_id, seats, cause, returned_at)
             SELECT b.event_id, b.tier_id, b.seats, $4, $5
             FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS b(event_id, tier_id, seats)",
        )
        .bind(back.iter().map(|back| back.event_id).collect::<Vec<_>>())
        .bind(back.iter().map(|back| back.tier_id).collect::<Vec<_>>())
        .bind(
            back.iter()
                .map(|back| seats_i32(back.seats))
                .collect::<Vec<_>>(),
        )
        .bind(cause.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Seats as the counters' column type (an event holds at most 1 000 000).
fn seats_i32(seats: i64) -> i32 {
    i32::try_from(seats).unwrap_or(i32::MAX)
}
