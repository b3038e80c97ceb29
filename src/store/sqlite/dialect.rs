//! SQLite's part of the seat ledger and of scans ([`sql::Dialect`]): the statements that move
//! seats, expire holds and read scanned tickets (the write transaction holds the whole file, so
//! nothing here locks rows).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::push_ids;
use crate::domain::{SeatsBack, SeatsBackCause};
use crate::store::StoreResult;
use crate::store::sql::{self, Micros};

impl sql::Dialect for Sqlite {
    type Time = Micros;
    // SQLite's LIKE ignores case for ASCII letters.
    const ILIKE: &'static str = "LIKE";
    const LOCK_ROW: &'static str = "";
    const LOCK_ROW_NO_KEY: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    /// One statement a ticket: a batch of scans is short, and the write transaction holds the
    /// whole database anyway.
    async fn lock_scanned_tickets(
        conn: &mut SqliteConnection,
        ids: &[Uuid],
    ) -> Result<Vec<sql::ScannedTicketRow<Micros>>, sqlx::Error> {
        let one = format!("{} WHERE t.id = $1", sql::SCANNED_TICKETS);
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.extend(
                sqlx::query_as(&one)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?,
            );
        }
        Ok(rows)
    }

    async fn expire_due(
        conn: &mut SqliteConnection,
        events: Option<&[Uuid]>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SeatsBack>> {
        // The due orders, oldest first: selected twice (for the tickets, then the orders)
        // inside one write transaction, so the same set.
        let now = Micros::from(now);
        let due = |table: &str, key: &str| {
            let mut query = QueryBuilder::<Sqlite>::new(format!(
                "UPDATE {table} SET status = 'expired', updated_at = "
            ));
            query.push_bind(now).push(format!(
                " WHERE {key} IN (SELECT id FROM orders
                   WHERE status = 'reserved' AND expires_at <= "
            ));
            query.push_bind(now);
            if let Some(events) = events {
                query.push(" AND event_id");
                push_ids(&mut query, events);
            }
            query
                .push(" ORDER BY expires_at, id LIMIT ")
                .push_bind(limit)
                .push(")");
            query
        };
        let mut tickets = due("tickets", "order_id");
        tickets.push(" RETURNING event_id, tier_id");
        let released: Vec<(Uuid, Uuid)> = tickets.build_query_as().fetch_all(&mut *conn).await?;
        if released.is_empty() {
            return Ok(Vec::new());
        }
        due("orders", "id").build().execute(&mut *conn).await?;
        Ok(released
            .into_iter()
            .map(|(event_id, tier_id)| SeatsBack {
                event_id,
                tier_id: Some(tier_id),
                seats: 1,
            })
            .collect())
    }

    async fn uncount_seats(
        conn: &mut SqliteConnection,
        freed: &[SeatsBack],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut per_event = BTreeMap::<Uuid, i64>::new();
        for back in freed {
            *per_event.entry(back.event_id).or_default() += back.seats;
        }
        let now = Micros::from(now);
        for (event_id, seats) in per_event {
            sqlx::query(
                "UPDATE events SET tickets_sold = tickets_sold - ?2, updated_at = ?3 WHERE id = ?1",
            )
            .bind(event_id)
            .bind(seats)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        for back in freed {
            sqlx::query("UPDATE ticket_tiers SET sold = sold - ?2, updated_at = ?3 WHERE id = ?1")
                .bind(back.tier_id)
                .bind(back.seats)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn offer_to_line(
        conn: &mut SqliteConnection,
        events: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        super::waitlist::offer_to_line(conn, events, now).await
    }

    async fn close_tier_line(
        conn: &mut SqliteConnection,
        tier: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        super::waitlist::close_tier_line(conn, tier, now).await
    }

    async fn close_disabled_line(
        conn: &mut SqliteConnection,
        event: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        super::waitlist::close_disabled_line(conn, event, now).await
    }

    async fn end_lapsed_offers(conn: &mut SqliteConnection, now: DateTime<Utc>) -> StoreResult<()> {
        super::waitlist::end_lapsed_offers(conn, now).await
    }

    async fn record_seats_back(
        conn: &mut SqliteConnection,
        back: &[SeatsBack],
        cause: SeatsBackCause,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO seat_returns (event_id, tier_id, seats, cause, returned_at) ",
        );
        query.push_values(back, |mut row, back| {
            row.push_bind(back.event_id)
                .push_bind(back.tier_id)
                .push_bind(back.seats)
                .push_bind(cause.as_str())
                .push_bind(Micros::from(now));
        });
        query.build().execute(&mut *conn).await?;
        Ok(())
    }
}
