//! Schema migrations keep existing data answering as before: a database written by the schema
//! before tiers and orders is migrated by the new server and keeps every ticket, status and
//! counter, now as orders of one in a "General admission" tier.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDatabase};

backend_tests!(tickets_of_the_schema_before_orders_migrate_into_orders_of_one);

/// The first migration of tiers and orders, per backend.
fn orders_migration(backend: Backend) -> (i64, &'static str) {
    match backend {
        Backend::Sqlite => (4, "migrations/sqlite"),
        Backend::Postgres => (3, "migrations/postgres"),
    }
}

/// Applies the migrations before `version` only.
async fn migrate_before(backend: Backend, url: &str) {
    let (version, dir) = orders_migration(backend);
    let mut migrator = Migrator::new(Path::new(dir)).await.expect("migrations");
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|migration| migration.version < version)
        .cloned()
        .collect();
    migrator.migrations = older.into();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            migrator.run(&mut conn).await.expect("old schema");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            migrator.run(&mut conn).await.expect("old schema");
        }
    }
}

/// A user, an event and one ticket in every status, written as the old schema stored them.
struct OldData {
    buyer: Uuid,
    event: Uuid,
    tickets: Vec<(Uuid, &'static str)>,
}

macro_rules! write_old_data {
    ($conn:expr, $time:expr, $data:expr, $now:expr) => {{
        let now: DateTime<Utc> = $now;
        let data: &OldData = $data;
        sqlx::query(
            "INSERT INTO users (id, name, email, password_hash, created_at, updated_at)
             VALUES ($1, 'Old Buyer', 'old@example.com', 'x', $2, $2)",
        )
        .bind(data.buyer)
        .bind($time(now))
        .execute(&mut *$conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO events (id, creator_id, title, start_time, end_time, total_tickets,
                 tickets_sold, latitude, longitude, venue_name, address_line1, city, state,
                 country, postal_code, created_at, updated_at)
             VALUES ($1, $2, 'Old Gig', $3, $4, 10, 3, 6.5, 3.4, 'Hall', '1 Road', 'Lagos',
                 'Lagos', 'Nigeria', '101', $5, $5)",
        )
        .bind(data.event)
        .bind(data.buyer)
        .bind($time(now + Duration::days(7)))
        .bind($time(now + Duration::days(7) + Duration::hours(3)))
        .bind($time(now))
        .execute(&mut *$conn)
        .await
        .unwrap();
        for (id, status) in &data.tickets {
            let (expires_at, paid_at) = match *status {
                "reserved" => (now + Duration::minutes(2), None),
                "due" => (now - Duration::minutes(1), None),
                "paid" => (now - Duration::minutes(5), Some(now - Duration::minutes(6))),
                _ => (now - Duration::minutes(5), None),
            };
            let stored = if *status == "due" {
                "reserved"
            } else {
                *status
            };
            sqlx::query(
                "INSERT INTO tickets (id, user_id, event_id, status, expires_at, paid_at,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(*id)
            .bind(data.buyer)
            .bind(data.event)
            .bind(stored)
            .bind($time(expires_at))
            .bind(paid_at.map($time))
            .bind($time(now - Duration::minutes(10)))
            .execute(&mut *$conn)
            .await
            .unwrap();
        }
    }};
}

async fn tickets_of_the_schema_before_orders_migrate_into_orders_of_one(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    migrate_before(backend, &database.url).await;
    let statuses = ["reserved", "due", "paid", "expired", "cancelled"];
    let data = OldData {
        buyer: Uuid::now_v7(),
        event: Uuid::now_v7(),
        tickets: statuses.map(|status| (Uuid::now_v7(), status)).to_vec(),
    };
    let now = Utc::now();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&database.url)
                .await
                .unwrap();
            let micros = |at: DateTime<Utc>| at.timestamp_micros();
            write_old_data!(&mut conn, micros, &data, now);
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
            let timestamp = |at: DateTime<Utc>| at;
            write_old_data!(&mut conn, timestamp, &data, now);
        }
    }

    // The new server applies the remaining migrations on start.
    let app = TestApp::spawn_without_sweeper_on(backend, database).await;
    let buyer = app.register_user(None).await;
    // The old buyer cannot log in (no real password hash): their tickets are read through the
    // store, the event through HTTP.
    let (status, event) = app.get(&format!("/events/{}", data.event), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["tickets_sold"], 3, "reserved + due + paid");
    for (id, status) in &data.tickets {
        let details = app.store.find_ticket(*id).await.unwrap().expect("kept");
        let effective = details.ticket.effective_status(Utc::now());
        let expected = if *status == "due" { "expired" } else { status };
        assert_eq!(effective.as_str(), expected, "ticket {status}");
        assert_eq!(
            details.ticket.order_id, *id,
            "an order of one, with the ticket's id"
        );
        assert_eq!(details.tier.name, "General admission");
        assert_eq!(details.tier.price_minor, 0);
    }
    app.assert_invariants().await;

    // The migrated event keeps selling: the due hold is reclaimed for a new buyer.
    let reserve = |event_id: Uuid| {
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(&buyer.token)
            .json(&json!({"event_id": event_id}))
            .send()
    };
    let reserved = reserve(data.event).await.unwrap();
    assert_eq!(reserved.status(), StatusCode::CREATED);
    let ticket: serde_json::Value = reserved.json().await.unwrap();
    assert_eq!(ticket["tier"]["name"], "General admission");
    let expired = app.store.expire_due_tickets(100).await.unwrap();
    assert_eq!(expired, 1, "the due hold of the old schema");
    let (_, event) = app.get(&format!("/events/{}", data.event), None).await;
    assert_eq!(event["tickets_sold"], 3, "reserved + paid + the new one");
    app.assert_invariants().await;
}
