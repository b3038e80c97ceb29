//! The test harness: each test gets the real app on 127.0.0.1:0 with its own database —
//! a fresh SQLite file, or a fresh schema in PostgreSQL (when TEST_DATABASE_URL is set).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use nearbytix::app::App;
use nearbytix::config::Settings;
use nearbytix::store::DynStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// `TICKET_SIGNING_KEYS` of every test server (required with PostgreSQL).
pub const TICKET_KEYS: &str = "1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
/// Shared database holding one schema per PostgreSQL test.
const PG_TEST_DATABASE: &str = "nearbytix_test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// PostgreSQL when TEST_DATABASE_URL is set. Without it the test is skipped, except
    /// under CI=true, where a missing database is a failure.
    pub fn postgres_if_configured() -> Option<Backend> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres),
            _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests must run")
            }
            _ => {
                eprintln!("skipping the PostgreSQL variant: TEST_DATABASE_URL is not set");
                None
            }
        }
    }
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(backend) = $crate::helpers::Backend::postgres_if_configured() {
                        super::$name(backend).await;
                    }
                }
            }
        )*
    };
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    pub url: String,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    SqliteDir(#[allow(dead_code)] tempfile::TempDir),
    PostgresSchema { admin_url: String, schema: String },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDatabase {
                    url,
                    cleanup: Some(Cleanup::SqliteDir(dir)),
                }
            }
            Backend::Postgres => {
                let server_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
                let admin_url = ensure_test_database(&server_url).await;
                let schema = format!("t_{}", Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to the PostgreSQL test database");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test schema");
                conn.close().await.ok();
                let mut url = url::Url::parse(&admin_url).expect("valid URL");
                url.query_pairs_mut()
                    .append_pair("options", &format!("-c search_path={schema},public"));
                TestDatabase {
                    url: url.to_string(),
                    cleanup: Some(Cleanup::PostgresSchema { admin_url, schema }),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(Cleanup::PostgresSchema { admin_url, schema }) = self.cleanup.take() {
            // Drop runs outside async context: use a small runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                        let _ = conn.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Creates the shared test database with PostGIS once (safe across processes); returns its URL.
async fn ensure_test_database(server_url: &str) -> String {
    static READY: Mutex<Option<String>> = Mutex::new(None);
    if let Some(url) = READY.lock().unwrap().clone() {
        return url;
    }
    let mut server = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|error| panic!("TEST_DATABASE_URL is unreachable: {error}"));
    sqlx::query("SELECT pg_advisory_lock(4242001)")
        .execute(&mut server)
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(PG_TEST_DATABASE)
            .fetch_one(&mut server)
            .await
            .expect("look up test database");
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {PG_TEST_DATABASE}"))
            .execute(&mut server)
            .await
            .expect("create test database");
    }
    let mut url = url::Url::parse(server_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(PG_TEST_DATABASE);
    let url = url.to_string();
    let mut test_db = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to test database");
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(&mut test_db)
        .await
        .expect("PostGIS must be installed for the PostgreSQL tests");
    test_db.close().await.ok();
    sqlx::query("SELECT pg_advisory_unlock(4242001)")
        .execute(&mut server)
        .await
        .expect("advisory unlock");
    server.close().await.ok();
    *READY.lock().unwrap() = Some(url.clone());
    url
}

pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub client: reqwest::Client,
    pub store: DynStore,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: the database outlives the server using it.
    pub database: TestDatabase,
}

/// A registered user and their token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::with_database(database_url).expect("default settings");
    settings.jwt_secret_key = Some(SECRET.to_owned().into());
    settings.ticket_signing_keys = Some(TICKET_KEYS.to_owned().into());
    settings.sweep_interval = Duration::from_millis(200);
    // Tests register many users from one address; the limit test lowers these.
    settings.auth_rate_limit_per_ip = NonZeroU32::new(100_000).unwrap();
    settings.auth_rate_limit_per_email = NonZeroU32::new(100_000).unwrap();
    settings.auth_rate_limit_per_email_total = NonZeroU32::new(100_000).unwrap();
    settings.reservation_rate_limit_per_user = NonZeroU32::new(100_000).unwrap();
    settings.event_write_rate_limit_per_user = NonZeroU32::new(100_000).unwrap();
    settings.payment_rate_limit_per_user = NonZeroU32::new(100_000).unwrap();
    settings
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let database = TestDatabase::create(backend).await;
        let mut settings = test_settings(&database.url);
        configure(&mut settings);
        Self::serve(backend, database, settings, true).await
    }

    /// An SQLite app on a database file of the caller's (which outlives it).
    pub async fn spawn_on_sqlite_file(path: &std::path::Path) -> TestApp {
        let url = format!("sqlite://{}", path.display());
        let settings = test_settings(&url);
        let database = TestDatabase { url, cleanup: None };
        Self::serve(Backend::Sqlite, database, settings, true).await
    }

    /// An app without its expiry sweeper on a database of the caller's.
    pub async fn spawn_without_sweeper_on(backend: Backend, database: TestDatabase) -> TestApp {
        let settings = test_settings(&database.url);
        Self::serve(backend, database, settings, false).await
    }

    /// An app whose expiry sweeper does not run (holds only expire on demand), configured.
    pub async fn spawn_without_sweeper_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let database = TestDatabase::create(backend).await;
        let mut settings = test_settings(&database.url);
        configure(&mut settings);
        Self::serve(backend, database, settings, false).await
    }

    /// Another server process's worth of app on the same database.
    pub async fn spawn_sibling(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(&self.database.url);
        configure(&mut settings);
        let database = TestDatabase {
            url: self.database.url.clone(),
            cleanup: None,
        };
        Self::serve(self.backend, database, settings, true).await
    }

    async fn serve(
        backend: Backend,
        database: TestDatabase,
        settings: Settings,
        run_sweeper: bool,
    ) -> TestApp {
        let app = App::connect(settings).await.expect("app starts");
        let store = app.store.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(listener, run_sweeper, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            backend,
            address,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            store,
            shutdown: Some(shutdown),
            server: Some(server),
            database,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.address, path)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{status} answer is not JSON: {text:?}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, path, token, None)
            .await
    }

    /// A path outside API_PREFIX (`/health`, `/docs/`, `/metrics`), answered as it comes.
    pub async fn get_unprefixed(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// `POST {ticket_path}/{action}` (pay or cancel) with an empty JSON body.
    pub async fn ticket_action(
        &self,
        ticket_path: &str,
        token: Option<&str>,
        action: &str,
    ) -> (StatusCode, Value) {
        self.post(&format!("{ticket_path}/{action}"), token, json!({}))
            .await
    }

    pub async fn register_with(&self, body: Value) -> (StatusCode, Value) {
        self.post("/auth/register", None, body).await
    }

    /// Registers a new user with a unique email (and a location when given).
    pub async fn register_user(&self, location: Option<(f64, f64)>) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let mut body = json!({"name": "Test User", "email": email, "password": password});
        if let Some((latitude, longitude)) = location {
            body["latitude"] = json!(latitude);
            body["longitude"] = json!(longitude);
        }
        let (status, user) = self.register_with(body).await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        TestUser {
            id: user["id"].as_str().unwrap().to_owned(),
            email,
            password,
            token: user["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an event (from [`event_body`] merged with `overrides`) and returns it.
    pub async fn create_event(&self, token: &str, overrides: Value) -> Value {
        let (status, event) = self
            .post("/events/", Some(token), event_body(overrides))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{event}");
        event
    }

    /// Places an order of `quantity` seats of `tier` as `user` (asserting 201); the order.
    pub async fn order(&self, user: &TestUser, event: &str, tier: &str, quantity: i64) -> Value {
        let body = json!({"event_id": event, "items": [{"tier_id": tier, "quantity": quantity}]});
        let (status, order) = self.post("/orders/", Some(&user.token), body).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        order
    }

    /// Checks the counters against the rows: `tickets_sold` equals the reserved + paid
    /// tickets of each event and never exceeds `total_tickets`.
    pub async fn assert_invariants(&self) {
        assert_invariants(self.backend, &self.database.url).await;
    }

    /// Runs a scalar SQL query against the test database (for assertions only).
    pub async fn scalar(&self, sql: &str) -> i64 {
        scalar(self.backend, &self.database.url, sql).await
    }
}

/// Checks the counters of every event and tier against the ticket rows, and that every order's
/// tickets share its status.
pub async fn assert_invariants(backend: Backend, url: &str) {
    let events: Vec<(i64, i64, i64)> = rows(backend, url, INVARIANT_QUERY).await;
    for (sold, total, live) in events {
        assert_eq!(
            sold, live,
            "tickets_sold must equal reserved + paid tickets"
        );
        assert!(sold <= total, "oversold: {sold} > {total}");
    }
    let tiers: Vec<(i64, Option<i64>, i64)> = rows(backend, url, TIER_INVARIANT_QUERY).await;
    for (sold, quantity, live) in tiers {
        assert_eq!(
            sold, live,
            "a tier's sold must equal its reserved + paid tickets"
        );
        if let Some(quantity) = quantity {
            assert!(sold <= quantity, "tier oversold: {sold} > {quantity}");
        }
    }
    let split = "SELECT COUNT(*) FROM tickets t JOIN orders o ON o.id = t.order_id \
                 WHERE t.status <> o.status";
    assert_eq!(
        scalar(backend, url, split).await,
        0,
        "an order's tickets share its status"
    );
    let unpaid = "SELECT COUNT(*) FROM ticket_tiers tt WHERE tt.paid <> \
                  (SELECT COUNT(*) FROM tickets t WHERE t.tier_id = tt.id AND t.status = 'paid') \
                  OR tt.revenue_minor <> (SELECT COALESCE(SUM(oi.unit_price_minor), 0) \
                  FROM tickets t JOIN order_items oi \
                  ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id \
                  WHERE t.tier_id = tt.id AND t.status = 'paid')";
    assert_eq!(
        scalar(backend, url, unpaid).await,
        0,
        "a tier's paid and revenue counters match its paid tickets"
    );
    let mut untold = String::from("SELECT COUNT(*) FROM users u WHERE 1 = 0");
    for table in ["orders", "tickets"] {
        for status in ["cancelled", "expired"] {
            untold += &format!(
                " OR (SELECT COUNT(*) FROM {table} x WHERE x.user_id = u.id \
                 AND x.status = '{status}') <> (SELECT COALESCE(SUM({table}_{status}), 0) \
                 FROM buyer_history h WHERE h.user_id = u.id)"
            );
        }
    }
    assert_eq!(
        scalar(backend, url, &untold).await,
        0,
        "each buyer's history counts their cancelled and expired orders and tickets"
    );
    let unpaid_for = "SELECT COUNT(*) FROM orders WHERE \
        (status = 'paid' AND payment_status <> \
            CASE WHEN total_minor > 0 THEN 'succeeded' ELSE 'none' END) \
        OR (payment_status = 'refunded' AND status NOT IN ('cancelled', 'expired')) \
        OR refunded_minor < 0 OR refunded_minor > total_minor";
    assert_eq!(
        scalar(backend, url, unpaid_for).await,
        0,
        "paid means the money was taken, refunded means the order was released"
    );
    let ownerless_keys = "SELECT COUNT(*) FROM idempotency_keys k \
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = k.user_id)";
    assert_eq!(
        scalar(backend, url, ownerless_keys).await,
        0,
        "every Idempotency-Key belongs to a registered user (on PostgreSQL, with no foreign key)"
    );
    let refunds = "SELECT COUNT(*) FROM events e WHERE e.refunded_minor <> \
        (SELECT COALESCE(SUM(o.refunded_minor), 0) FROM orders o WHERE o.event_id = e.id)";
    assert_eq!(
        scalar(backend, url, refunds).await,
        0,
        "an event's refunds add up its orders'"
    );
    let unbalanced = "SELECT COUNT(*) FROM events e WHERE e.tickets_sold <> \
                      (SELECT COALESCE(SUM(sold), 0) FROM ticket_tiers WHERE event_id = e.id)";
    assert_eq!(
        scalar(backend, url, unbalanced).await,
        0,
        "tiers add up to the event"
    );
    assert_waitlist_invariants(backend, url).await;
}

/// WAITLIST.md § Invariants, on the rows.
async fn assert_waitlist_invariants(backend: Backend, url: &str) {
    let miscounted = "SELECT COUNT(*) FROM events e WHERE e.waitlist_waiting <> \
        (SELECT COUNT(*) FROM waitlist_entries w WHERE w.event_id = e.id AND w.status = 'waiting')";
    assert_eq!(
        scalar(backend, url, miscounted).await,
        0,
        "an event's waitlist_waiting counts its waiting entries"
    );
    let unmatched = "SELECT COUNT(*) FROM waitlist_entries w \
        LEFT JOIN orders o ON o.id = w.offer_order_id WHERE \
        (w.status = 'offered' AND (o.status IS NULL OR o.status <> 'reserved')) \
        OR (w.offer_order_id IS NOT NULL AND o.payment_status <> 'refunded' \
            AND ((w.status = 'purchased') <> (o.status = 'paid'))) \
        OR (w.offer_order_id IS NOT NULL AND \
            (o.waitlist_entry_id IS NULL OR o.waitlist_entry_id <> w.id))";
    assert_eq!(
        scalar(backend, url, unmatched).await,
        0,
        "offered iff its order is reserved, purchased iff paid, each offer's order names it"
    );
    let orphans = "SELECT COUNT(*) FROM orders o WHERE o.waitlist_entry_id IS NOT NULL AND \
        NOT EXISTS (SELECT 1 FROM waitlist_entries w \
                    WHERE w.id = o.waitlist_entry_id AND w.offer_order_id = o.id)";
    assert_eq!(
        scalar(backend, url, orphans).await,
        0,
        "an order is the offer of at most one entry, the one it names"
    );
    // Simple sales only (no per-person cap; the effective sales window by the clock is
    // the sweeper's, within its grace): no waiting entry could be offered now.
    let now = match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
        Backend::Postgres => "now()",
    };
    let offerable = format!(
        "SELECT COUNT(*) FROM waitlist_entries w JOIN events e ON e.id = w.event_id \
         JOIN ticket_tiers t ON t.event_id = e.id AND (w.tier_id IS NULL OR t.id = w.tier_id) \
         WHERE w.status = 'waiting' AND e.start_time > {now} AND e.max_tickets_per_user IS NULL \
           AND t.sales_start IS NULL AND t.sales_end IS NULL \
           AND w.quantity <= e.total_tickets - e.tickets_sold \
           AND (t.quantity IS NULL OR w.quantity <= t.quantity - t.sold) \
           AND (t.max_per_order IS NULL OR w.quantity <= t.max_per_order)"
    );
    assert_eq!(
        scalar(backend, url, &offerable).await,
        0,
        "no waiting entry could be offered seats that are free"
    );
}

/// Every seat a cancellation or an expiry gave back went through the seat ledger exactly once:
/// per tier, its record (`seat_returns`) holds as many seats as the tier has cancelled and
/// expired tickets. (Only for databases written wholly by this version: older rows have no
/// record.)
pub async fn assert_releases_recorded(backend: Backend, url: &str) {
    let unrecorded = "SELECT COUNT(*) FROM ticket_tiers tt WHERE
        (SELECT COUNT(*) FROM tickets t
         WHERE t.tier_id = tt.id AND t.status IN ('expired', 'cancelled'))
        <> (SELECT COALESCE(SUM(r.seats), 0) FROM seat_returns r
            WHERE r.tier_id = tt.id AND r.cause IN ('expired', 'cancelled', 'refunded'))";
    assert_eq!(
        scalar(backend, url, unrecorded).await,
        0,
        "released seats and the ledger's record disagree"
    );
}

async fn rows<T>(backend: Backend, url: &str, sql: &str) -> Vec<T>
where
    T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    }
}

/// A scalar SQL query against a test database (for assertions only).
pub async fn scalar(backend: Backend, url: &str, sql: &str) -> i64 {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

const TIER_INVARIANT_QUERY: &str = "SELECT CAST(tt.sold AS BIGINT), CAST(tt.quantity AS BIGINT),
        (SELECT COUNT(*) FROM tickets t WHERE t.tier_id = tt.id AND t.status IN ('reserved', 'paid'))
     FROM ticket_tiers tt";

const INVARIANT_QUERY: &str = "SELECT CAST(e.tickets_sold AS BIGINT), CAST(e.total_tickets AS BIGINT),
        (SELECT COUNT(*) FROM tickets t WHERE t.event_id = e.id AND t.status IN ('reserved', 'paid'))
     FROM events e";

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A valid create body starting tomorrow, with `overrides` merged in (nested for `venue`).
pub fn event_body(overrides: Value) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let end = start + chrono::Duration::hours(3);
    let mut body = json!({
        "title": "Afrobeats Night",
        "description": "Live music",
        "start_time": start.to_rfc3339(),
        "end_time": end.to_rfc3339(),
        "total_tickets": 100,
        "venue": {
            "latitude": 6.5244,
            "longitude": 3.3792,
            "venue_name": "Eko Hall",
            "address_line1": "1 Marina Road",
            "city": "Lagos",
            "state": "Lagos",
            "country": "Nigeria",
            "postal_code": "101001"
        }
    });
    merge(&mut body, overrides);
    body
}

fn merge(target: &mut Value, overrides: Value) {
    match (target, overrides) {
        (Value::Object(target), Value::Object(overrides)) => {
            for (key, value) in overrides {
                match target.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, overrides) => *target = overrides,
    }
}

/// The `loc` paths of a 422 answer.
pub fn error_locs(body: &Value) -> Vec<Vec<String>> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("422 detail must be a list: {body}"))
        .iter()
        .map(|item| {
            item["loc"]
                .as_array()
                .unwrap()
                .iter()
                .map(|segment| match segment {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

pub fn loc(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

/// Holds what a reservation of `event_id` waits for (the event's row on PostgreSQL, the write
/// lock on SQLite) until the returned sender fires.
pub async fn block_reservations(app: &TestApp, event_id: &str) -> oneshot::Sender<()> {
    block_reservations_and(app, event_id, None).await
}

/// As [`block_reservations`], in a transaction that also runs `statement` (when given) and
/// commits when released (else it rolls back).
pub async fn block_reservations_and(
    app: &TestApp,
    event_id: &str,
    statement: Option<String>,
) -> oneshot::Sender<()> {
    let (unblock, unblocked) = oneshot::channel::<()>();
    let (blocked, is_blocked) = oneshot::channel();
    let (backend, url, event_id) = (app.backend, app.database.url.clone(), event_id.to_owned());
    let end = if statement.is_some() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    tokio::spawn(async move {
        match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT 1 FROM events WHERE id = CAST($1 AS uuid) FOR UPDATE")
                    .bind(&event_id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                if let Some(statement) = &statement {
                    sqlx::query(statement).execute(&mut conn).await.unwrap();
                }
                blocked.send(()).unwrap();
                let _ = unblocked.await;
                sqlx::query(end).execute(&mut conn).await.unwrap();
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                if let Some(statement) = &statement {
                    sqlx::query(statement).execute(&mut conn).await.unwrap();
                }
                blocked.send(()).unwrap();
                let _ = unblocked.await;
                sqlx::query(end).execute(&mut conn).await.unwrap();
            }
        }
    });
    is_blocked.await.unwrap();
    unblock
}
