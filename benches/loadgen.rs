//! Load generator: starts NearbyTix in-process on 127.0.0.1, seeds data, drives it over HTTP
//! and prints figures. Not a test: nothing here asserts timings.
//!
//!   cargo bench --bench loadgen -- search     --backend sqlite|postgres [--events N]
//!   cargo bench --bench loadgen -- search-during-sale --backend sqlite|postgres
//!   cargo bench --bench loadgen -- flash-sale --backend sqlite|postgres
//!   cargo bench --bench loadgen -- orders --backend sqlite|postgres
//!   cargo bench --bench loadgen -- sold-out --backend sqlite|postgres [--tier]
//!   cargo bench --bench loadgen -- listing --backend sqlite|postgres [--events N]
//!   cargo bench --bench loadgen -- spread     --backend sqlite|postgres
//!   cargo bench --bench loadgen -- redeem     --backend sqlite|postgres [--tickets N --gates N]
//!   cargo bench --bench loadgen -- verify-codes
//!   cargo bench --bench loadgen -- waitlist   --backend sqlite|postgres [--waiting N --returns N]
//!   cargo bench --bench loadgen -- event-read --backend sqlite|postgres
//!   cargo bench --bench loadgen -- streams    --backend sqlite|postgres [--streams N --events N]
//!     (the streams' client side runs in a child process, so that the server's memory and CPU
//!     are measured alone and each process holds one socket per stream)
//!
//! PostgreSQL runs use BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
//! and a fresh `nearbytix_bench` database that they create.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};
use nearbytix::app::App;
use nearbytix::auth::TokenKeys;
use nearbytix::config::Settings;
use nearbytix::domain::{Email, EventFields, GeoPoint, NewEvent, NewUser, TierFields, VenueFields};
use nearbytix::store::DynStore;
use sqlx::Connection;
use tokio::net::TcpListener;
use uuid::Uuid;

const BENCH_SECRET: &str = "bench-secret-bench-secret-bench-secret!!";
const BENCH_TICKET_KEYS: &str = "1:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0A";
const REGION_CENTER: (f64, f64) = (6.5244, 3.3792);
/// Half the side of the seeded square region, in km (600 km wide).
const REGION_HALF_KM: f64 = 300.0;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value_t = BackendChoice::Sqlite, global = true)]
    backend: BackendChoice,
    /// Ignored: cargo bench passes it to every bench target.
    #[arg(long, global = true, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Scenario {
    /// /for-you/ (radius 50 and 500) and /events/nearby over many seeded events, after
    /// the server's read model loaded them (its load time and memory are printed).
    Search {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Search latency (32 connections, radius 50) while 256 buyers reserve one hot event.
    SearchDuringSale {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 256)]
        buyers: usize,
    },
    /// One hot event, many buyers, until it is sold out (with `--keyed`: every reservation
    /// carries an `Idempotency-Key` of its own, as payment-grade clients send).
    FlashSale {
        #[arg(long, default_value_t = 20_000)]
        tickets: i32,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        #[arg(long)]
        keyed: bool,
    },
    /// One hot event selling three tiers; orders of 1–4 tickets until it is sold out.
    Orders {
        #[arg(long, default_value_t = 20_000)]
        tickets: i32,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 2_000)]
        users: usize,
    },
    /// Reservations for an event already sold out (with `--tier`: orders for a sold-out tier
    /// of an event whose other tier still sells): how fast "sold out" is answered.
    SoldOut {
        #[arg(long)]
        tier: bool,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 2_000)]
        users: usize,
    },
    /// `GET /events/?limit=20` over many seeded events.
    Listing {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// `GET /` (no database): the HTTP ceiling of server plus load generator on this machine.
    Baseline {
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Ticket codes signed and verified on one core, offline (no server, no database): what a
    /// scanner's check costs.
    VerifyCodes {
        #[arg(long, default_value_t = 100_000)]
        codes: usize,
    },
    /// Check-in at the door: `gates` devices (a scanner token each) scan the signed codes of
    /// `tickets` paid tickets of one event, every ticket twice through two gates at about the
    /// same time: one admission, one `already_redeemed`.
    Redeem {
        #[arg(long, default_value_t = 5_000)]
        tickets: usize,
        #[arg(long, default_value_t = 50)]
        gates: usize,
    },
    /// The waiting list: `waiting` people in line for a sold-out event, then `returns` holders
    /// cancel at once; how long until every returned seat is offered.
    Waitlist {
        #[arg(long, default_value_t = 10_000)]
        waiting: usize,
        #[arg(long, default_value_t = 1_000)]
        returns: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Live availability: `streams` open single-event streams spread evenly over `events`
    /// events, read by raw sockets in this process. Prints their memory and idle CPU, how long
    /// one reservation takes to reach them all, then a flash sale on the watched events beside
    /// the same sale on unwatched ones: its rate, when every stream shows the final state, and
    /// the watches' database reads.
    Streams {
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        #[arg(long, default_value_t = 1)]
        events: usize,
        /// Tickets of each sale (the unwatched one and the watched one).
        #[arg(long, default_value_t = 20_000)]
        tickets: i32,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// How long the open streams are watched idle (one keep-alive comes after 15 s).
        #[arg(long, default_value_t = 16)]
        idle_seconds: u64,
    },
    /// The client side of `streams`, in a process of its own (started by it): `streams`
    /// single-event streams spread evenly over `events`; told versions to wait for on stdin
    /// (`want v1 v2 …`, one per event), it answers `reached <unix µs of the last arrival>`.
    #[command(hide = true)]
    StreamClients {
        #[arg(long)]
        address: std::net::SocketAddr,
        #[arg(long, value_delimiter = ',')]
        events: Vec<Uuid>,
        #[arg(long)]
        streams: usize,
    },
    /// `GET /events/{id}` (an event of three tiers), then `GET /events/{id}/availability`.
    EventRead {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Reservations spread over many events.
    Spread {
        #[arg(long, default_value_t = 1_000)]
        events: usize,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value_t = 2_000)]
        users: usize,
    },
}

struct Bench {
    /// The app until it serves (search scenarios seed before the server starts, so that its
    /// read model's start-up load is what they measure).
    app: Option<App>,
    listener: Option<TcpListener>,
    store: DynStore,
    tokens: Arc<TokenKeys>,
    base: String,
    client: reqwest::Client,
    database_url: String,
    backend: BackendChoice,
    _dir: Option<tempfile::TempDir>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Warnings and errors only (override with RUST_LOG): request logs would dominate the figures.
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: single-threaded here, before the runtime starts.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    nearbytix::telemetry::init_logging(nearbytix::config::LogFormat::Text);
    if let Scenario::VerifyCodes { codes } = args.scenario {
        return verify_codes(codes);
    }
    if let Scenario::StreamClients {
        address,
        events,
        streams,
    } = args.scenario
    {
        return stream_clients(address, events, streams);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut bench = Bench::start(args.backend).await?;
        if !matches!(
            args.scenario,
            Scenario::Search { .. } | Scenario::SearchDuringSale { .. } | Scenario::Listing { .. }
        ) {
            bench.serve().await?;
        }
        println!(
            "backend={} cores={} started={}",
            bench.store.backend().as_str(),
            std::thread::available_parallelism().map_or(0, usize::from),
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        match args.scenario {
            Scenario::Search {
                events,
                concurrency,
                seconds,
            } => {
                search(
                    &mut bench,
                    events,
                    concurrency,
                    Duration::from_secs(seconds),
                )
                .await
            }
            Scenario::SearchDuringSale {
                events,
                seconds,
                buyers,
            } => search_during_sale(&mut bench, events, Duration::from_secs(seconds), buyers).await,
            Scenario::FlashSale {
                tickets,
                concurrency,
                users,
                keyed,
            } => flash_sale(&bench, tickets, concurrency, users, keyed).await,
            Scenario::Orders {
                tickets,
                concurrency,
                users,
            } => orders(&bench, tickets, concurrency, users).await,
            Scenario::SoldOut {
                tier,
                concurrency,
                seconds,
                users,
            } => {
                sold_out(
                    &bench,
                    tier,
                    concurrency,
                    Duration::from_secs(seconds),
                    users,
                )
                .await
            }
            Scenario::Listing {
                events,
                concurrency,
                seconds,
            } => {
                listing(
                    &mut bench,
                    events,
                    concurrency,
                    Duration::from_secs(seconds),
                )
                .await
            }
            Scenario::Baseline {
                concurrency,
                seconds,
            } => {
                let (client, root) = (bench.client.clone(), bench.base.replace("/api/v1", "/"));
                let mut figures = drive(
                    concurrency,
                    Some(Duration::from_secs(seconds)),
                    move |_, _| Some(status_of(client.get(&root))),
                )
                .await;
                figures.print(&format!("baseline GET / concurrency={concurrency}"));
                Ok(())
            }
            Scenario::Spread {
                events,
                requests,
                concurrency,
                users,
            } => spread(&bench, events, requests, concurrency, users).await,
            Scenario::Redeem { tickets, gates } => redeem(&bench, tickets, gates).await,
            Scenario::EventRead {
                concurrency,
                seconds,
            } => event_read(&bench, concurrency, Duration::from_secs(seconds)).await,
            Scenario::Streams {
                streams,
                events,
                tickets,
                concurrency,
                users,
                idle_seconds,
            } => {
                let sale = Sale {
                    tickets,
                    concurrency,
                    users,
                };
                availability_streams(&bench, streams, events, sale, idle_seconds).await
            }
            Scenario::Waitlist {
                waiting,
                returns,
                concurrency,
            } => waitlist(&bench, waiting, returns, concurrency).await,
            Scenario::VerifyCodes { .. } | Scenario::StreamClients { .. } => {
                unreachable!("run before the server starts")
            }
        }
    })
}

/// Signs `count` distinct ticket codes, then verifies them all on this one thread with the
/// decoder the server and `nearbytix verify-code` use; prints both rates.
fn verify_codes(count: usize) -> anyhow::Result<()> {
    use nearbytix::checkin::code::{self, TicketCode};
    use nearbytix::checkin::keys::TicketKeys;
    let keys = TicketKeys::parse("1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA")?;
    let (key_id, signing) = keys.signing();
    let started = std::time::Instant::now();
    let texts: Vec<String> = (0..count)
        .map(|serial| {
            TicketCode {
                key_id,
                ticket_id: Uuid::new_v4(),
                event_id: Uuid::new_v4(),
                tier_id: Uuid::new_v4(),
                serial: u32::try_from(serial).unwrap_or(u32::MAX),
            }
            .sign(signing)
        })
        .collect();
    let signed = started.elapsed();
    let public = keys.public();
    let started = std::time::Instant::now();
    let valid = texts
        .iter()
        .filter(|text| code::decode(text, &public).is_ok())
        .count();
    let verified = started.elapsed();
    anyhow::ensure!(valid == count, "{valid} of {count} codes verified");
    println!(
        "verify-codes: {count} codes on one thread: signed {:.0}/s, verified {:.0}/s",
        count as f64 / signed.as_secs_f64(),
        count as f64 / verified.as_secs_f64()
    );
    Ok(())
}

impl Bench {
    /// Starts serving (once) and waits until the server answers; how long that took.
    async fn serve(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        if let (Some(app), Some(listener)) = (self.app.take(), self.listener.take()) {
            tokio::spawn(app.serve(listener, true, std::future::pending()));
        }
        let root = self.base.replace("/api/v1", "/");
        while self.client.get(&root).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(started.elapsed())
    }

    async fn start(backend: BackendChoice) -> anyhow::Result<Bench> {
        let (database_url, dir) = match backend {
            BackendChoice::Sqlite => {
                let dir = tempfile::tempdir()?;
                (
                    format!("sqlite://{}", dir.path().join("bench.db").display()),
                    Some(dir),
                )
            }
            BackendChoice::Postgres => (fresh_postgres().await?, None),
        };
        let mut settings = Settings::with_database(&database_url)?;
        settings.jwt_secret_key = Some(BENCH_SECRET.to_owned().into());
        settings.ticket_signing_keys = Some(BENCH_TICKET_KEYS.to_owned().into());
        // A load generator is many users in one client: only the server's own limits count.
        let unlimited = std::num::NonZeroU32::new(1_000_000).expect("not zero");
        settings.reservation_rate_limit_per_user = unlimited;
        settings.event_write_rate_limit_per_user = unlimited;
        settings.payment_rate_limit_per_user = unlimited;
        settings.auth_rate_limit_per_ip = unlimited;
        settings.checkin_scans_per_minute = unlimited;
        // The availability goal's configuration: 10 000 streams from one address.
        settings.max_connections = 11_000;
        settings.availability.streams_max = 10_000;
        settings.availability.streams_per_client = 100_000;
        let app = App::connect(settings).await?;
        let (store, tokens) = (app.store.clone(), app.tokens.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}/api/v1", listener.local_addr()?);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(Bench {
            app: Some(app),
            listener: Some(listener),
            store,
            tokens,
            base,
            client,
            database_url,
            backend,
            _dir: dir,
        })
    }

    /// Users inserted through the store (one shared Argon2id hash) with tokens issued directly:
    /// seeding thousands of accounts over HTTP would only measure password hashing.
    async fn users(&self, count: usize, located: bool) -> anyhow::Result<Vec<(Uuid, String)>> {
        let password = nearbytix::domain::Password::parse("bench password".into())
            .map_err(anyhow::Error::msg)?;
        let hash = nearbytix::auth::password::Hasher::new(1, 1)
            .hash(password)
            .await?;
        let mut users = Vec::with_capacity(count);
        for i in 0..count {
            let location = located.then(|| random_point(i as u64 * 7 + 1, 0.5));
            let user = NewUser {
                id: Uuid::now_v7(),
                name: format!("Buyer {i}"),
                email: Email::parse(&format!(
                    "buyer{i}-{}@bench.example",
                    Uuid::new_v4().simple()
                ))
                .map_err(anyhow::Error::msg)?,
                password_hash: hash.clone(),
                location,
            };
            let stored = self.store.insert_user(&user).await?;
            users.push((stored.id, self.tokens.issue(stored.id)?.access_token));
        }
        Ok(users)
    }

    /// Opens `connections` keep-alive connections to the server at once, so that a timed run
    /// measures requests, not as many TCP handshakes in its first milliseconds.
    async fn warm_up(&self, connections: usize) {
        let root = self.base.replace("/api/v1", "/");
        futures::future::join_all((0..connections).map(|_| status_of(self.client.get(&root))))
            .await;
    }

    async fn event(
        &self,
        creator: Uuid,
        tickets: i32,
        at: GeoPoint,
        seed: u64,
    ) -> anyhow::Result<Uuid> {
        self.event_with_tiers(creator, tickets, at, seed, None)
            .await
    }

    async fn event_with_tiers(
        &self,
        creator: Uuid,
        tickets: i32,
        at: GeoPoint,
        seed: u64,
        tiers: Option<Vec<TierFields>>,
    ) -> anyhow::Result<Uuid> {
        let start = Utc::now() + chrono::Duration::days(1 + (seed % 60) as i64);
        let fields = EventFields {
            title: format!("Event {seed}"),
            description: Some("Seeded by the load generator".into()),
            start_time: start.to_rfc3339(),
            end_time: (start + chrono::Duration::hours(3)).to_rfc3339(),
            total_tickets: i64::from(tickets),
            venue: VenueFields {
                latitude: at.latitude(),
                longitude: at.longitude(),
                venue_name: format!("Venue {seed}"),
                address_line1: "1 Bench Road".into(),
                address_line2: None,
                city: "Lagos".into(),
                state: "Lagos".into(),
                country: "Nigeria".into(),
                postal_code: "100001".into(),
            },
            currency: None,
            max_tickets_per_user: None,
            waitlist_enabled: None,
            waitlist_offer_minutes: None,
            tiers,
        };
        let event = NewEvent::parse(fields, Utc::now()).map_err(anyhow::Error::new)?;
        Ok(self.store.insert_event(creator, &event).await?.event.id)
    }
}

async fn fresh_postgres() -> anyhow::Result<String> {
    let admin = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .context("BENCH_DATABASE_URL")?;
    sqlx::query("DROP DATABASE IF EXISTS nearbytix_bench WITH (FORCE)")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE DATABASE nearbytix_bench")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path("nearbytix_bench");
    Ok(url.to_string())
}

/// A deterministic pseudo-random point in the region (splitmix64), `spread` of its half-width.
fn random_point(seed: u64, spread: f64) -> GeoPoint {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) as f64 / u64::MAX as f64) * 2.0 - 1.0
    };
    let center = GeoPoint::new(REGION_CENTER.0, REGION_CENTER.1).expect("valid centre");
    let north = next() * REGION_HALF_KM * spread;
    let east = next() * REGION_HALF_KM * spread;
    let moved = center.destination(north.abs(), if north >= 0.0 { 0.0 } else { 180.0 });
    moved.destination(east.abs(), if east >= 0.0 { 90.0 } else { 270.0 })
}

struct Figures {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    elapsed: Duration,
}

impl Figures {
    fn print(&mut self, label: &str) {
        self.latencies.sort_unstable();
        let count = self.latencies.len();
        let pick = |q: f64| {
            self.latencies
                .get(((count as f64 * q) as usize).min(count.saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{label}: requests={count} rps={:.0} p50={:.2}ms p99={:.2}ms max={:.2}ms statuses={:?} elapsed={:.2}s",
            count as f64 / self.elapsed.as_secs_f64(),
            pick(0.50),
            pick(0.99),
            pick(1.0),
            self.statuses,
            self.elapsed.as_secs_f64()
        );
    }
}

/// Runs `concurrency` workers; each calls `request(worker, iteration)` until it returns `None`
/// (stop) or `deadline` passes.
async fn drive<F, Fut>(concurrency: usize, deadline: Option<Duration>, request: F) -> Figures
where
    F: Fn(usize, usize) -> Option<Fut> + Send + Sync + 'static,
    Fut: std::future::Future<Output = u16> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let request = request.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                let mut iteration = 0;
                while !stop.load(Ordering::Relaxed)
                    && deadline.is_none_or(|limit| started.elapsed() < limit)
                {
                    let Some(call) = request(worker, iteration) else {
                        break;
                    };
                    let sent = Instant::now();
                    let status = call.await;
                    latencies.push(sent.elapsed());
                    *statuses.entry(status).or_default() += 1;
                    iteration += 1;
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut figures = Figures {
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, statuses) = task.await.expect("worker");
        figures.latencies.extend(latencies);
        for (status, count) in statuses {
            *figures.statuses.entry(status).or_default() += count;
        }
    }
    figures.elapsed = started.elapsed();
    figures
}

/// `POST /tickets/` for `event` as the holder of `token`.
fn reservation(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    event: Uuid,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/tickets/"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "event_id": event }))
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// Seeds `events` events scattered over the region and starts the server, printing how long
/// its read model took to load and what the process's resident memory grew by.
async fn seed_search(bench: &mut Bench, events: usize) -> anyhow::Result<Vec<(Uuid, String)>> {
    let users = bench.users(64, true).await?;
    let seeded = Instant::now();
    seed_events_in_bulk(bench, users[0].0, events, Layout::Scattered).await?;
    println!(
        "seeded {events} events over a {:.0} km wide region in {:.1}s",
        REGION_HALF_KM * 2.0,
        seeded.elapsed().as_secs_f64()
    );
    if bench.backend == BackendChoice::Postgres {
        explain_nearby(&bench.database_url).await?;
    }
    let before = resident_mib();
    let loaded = bench.serve().await?;
    println!(
        "read model: server answering {:.2}s after start ({events} events loaded first); \
         process resident memory {before:.0} -> {:.0} MiB",
        loaded.as_secs_f64(),
        resident_mib()
    );
    Ok(users)
}

/// This process's resident memory in MiB (the server runs in it), from /proc.
fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn search(
    bench: &mut Bench,
    events: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let users = Arc::new(seed_search(bench, events).await?);
    for radius in [50, 500] {
        let mut figures = drive(
            concurrency,
            Some(duration),
            for_you(bench, users.clone(), radius),
        )
        .await;
        figures.print(&format!(
            "for-you radius={radius} concurrency={concurrency}"
        ));
    }
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let mut figures = drive(concurrency, Some(duration), move |worker, iteration| {
        let point = random_point((worker * 100_003 + iteration) as u64, 0.5);
        Some(status_of(client.get(format!(
            "{base}/events/nearby?latitude={}&longitude={}&radius_km=50&limit=20",
            point.latitude(),
            point.longitude()
        ))))
    })
    .await;
    figures.print(&format!(
        "events/nearby radius_km=50 concurrency={concurrency}"
    ));
    Ok(())
}

/// `GET /for-you/?radius=…&limit=20` as one of `users` after another.
fn for_you(
    bench: &Bench,
    users: Arc<Vec<(Uuid, String)>>,
    radius: u32,
) -> impl Fn(usize, usize) -> Option<futures::future::BoxFuture<'static, u16>> + Send + Sync + 'static
{
    let (client, base) = (bench.client.clone(), bench.base.clone());
    move |worker, iteration| {
        let (_, token) = &users[(worker + iteration) % users.len()];
        let request = client
            .get(format!("{base}/for-you/?radius={radius}&limit=20"))
            .bearer_auth(token);
        Some(Box::pin(status_of(request)))
    }
}

/// Search at 32 connections for `duration` while `buyers` connections reserve one hot event
/// (enough tickets not to sell out meanwhile): search's latency under a flash sale.
async fn search_during_sale(
    bench: &mut Bench,
    events: usize,
    duration: Duration,
    buyers: usize,
) -> anyhow::Result<()> {
    let users = Arc::new(seed_search(bench, events).await?);
    let buyer_users = Arc::new(bench.users(2_000, false).await?);
    let hot = bench
        .event(users[0].0, 1_000_000, random_point(1, 0.1), 1)
        .await?;
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let sale = drive(buyers, Some(duration), move |worker, iteration| {
        let (_, token) = &buyer_users[(worker * 7919 + iteration) % buyer_users.len()];
        Some(status_of(reservation(&client, &base, token, hot)))
    });
    let searches = drive(32, Some(duration), for_you(bench, users, 50));
    let (mut sale, mut searches) = tokio::join!(sale, searches);
    sale.print(&format!("flash sale during search, {buyers} connections"));
    searches.print("for-you radius=50 concurrency=32 during the sale");
    Ok(())
}

async fn explain_nearby(database_url: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    sqlx::query("ANALYZE events").execute(&mut conn).await?;
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT e.id, ST_Distance(e.location, ST_MakePoint($2, $1)::geography, false) / 1000.0 AS d,
                count(*) OVER () FROM events e
         WHERE ST_DWithin(e.location, ST_MakePoint($2, $1)::geography, $3 * 1000.0, false)
           AND e.start_time > now() AND e.tickets_sold < e.total_tickets
         ORDER BY d, e.start_time, e.id LIMIT 20",
    )
    .bind(REGION_CENTER.0)
    .bind(REGION_CENTER.1)
    .bind(50.0_f64)
    .fetch_all(&mut conn)
    .await?;
    println!("query plan (radius 50 km):");
    for line in &plan {
        println!("  {line}");
    }
    println!(
        "uses GiST index: {}",
        plan.iter()
            .any(|line| line.contains("events_location_gist"))
    );
    Ok(())
}

/// Where bulk-seeded events are.
#[derive(Clone, Copy)]
enum Layout {
    /// A 1000 x 1000 grid 0.001 degree apart (listings only read them).
    Grid,
    /// Uniformly over the region (searches find them).
    Scattered,
}

/// Seeds `events` upcoming events of `creator`, each with the default tier (what makes it on
/// sale), with two SQL statements: a million through the store would take the better part of
/// an hour.
async fn seed_events_in_bulk(
    bench: &Bench,
    creator: Uuid,
    events: usize,
    layout: Layout,
) -> anyhow::Result<()> {
    let count = i64::try_from(events)?;
    // Each event at (lat0 + u * lat_span, lon0 + v * lon_span), u and v in [0, 1).
    let half_lat = REGION_HALF_KM / 111.195;
    let half_lon = half_lat / REGION_CENTER.0.to_radians().cos();
    let (lat0, lat_span, lon0, lon_span) = match layout {
        Layout::Grid => (6.0, 1.0, 3.0, 1.0),
        Layout::Scattered => (
            REGION_CENTER.0 - half_lat,
            2.0 * half_lat,
            REGION_CENTER.1 - half_lon,
            2.0 * half_lon,
        ),
    };
    match bench.backend {
        BackendChoice::Postgres => {
            let (u, v) = match layout {
                Layout::Grid => ("(i % 1000) / 1000.0", "(i / 1000 % 1000) / 1000.0"),
                Layout::Scattered => ("random()", "random()"),
            };
            let mut conn = sqlx::PgConnection::connect(&bench.database_url).await?;
            sqlx::query(&format!(
                "INSERT INTO events (id, creator_id, title, description, start_time, end_time,
                     total_tickets, latitude, longitude, venue_name, address_line1, city, state,
                     country, postal_code)
                 SELECT gen_random_uuid(), $1, 'Event ' || i, 'Seeded by the load generator',
                        now() + make_interval(days => (1 + i % 60)::int, secs => (i % 86400)::float8),
                        now() + make_interval(days => (1 + i % 60)::int, secs => (i % 86400 + 10800)::float8),
                        100, $3 + {u} * $4, $5 + {v} * $6,
                        'Venue ' || i, '1 Bench Road', 'Lagos', 'Lagos', 'Nigeria', '100001'
                 FROM generate_series(1, $2) AS i"
            ))
            .bind(creator)
            .bind(count)
            .bind(lat0)
            .bind(lat_span)
            .bind(lon0)
            .bind(lon_span)
            .execute(&mut conn)
            .await?;
            sqlx::query(
                "INSERT INTO ticket_tiers (id, event_id, name, position)
                 SELECT gen_random_uuid(), id, 'General admission', 0
                 FROM events WHERE creator_id = $1",
            )
            .bind(creator)
            .execute(&mut conn)
            .await?;
            sqlx::query("ANALYZE events").execute(&mut conn).await?;
        }
        BackendChoice::Sqlite => {
            let (u, v) = match layout {
                Layout::Grid => ("(i % 1000) / 1000.0", "(i / 1000 % 1000) / 1000.0"),
                Layout::Scattered => (
                    "(random() / 18446744073709551616.0 + 0.5)",
                    "(random() / 18446744073709551616.0 + 0.5)",
                ),
            };
            let mut conn = sqlx::SqliteConnection::connect(&bench.database_url).await?;
            let now = Utc::now().timestamp_micros();
            sqlx::query(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
                 INSERT INTO events (id, creator_id, title, description, start_time, end_time,
                     total_tickets, latitude, longitude, venue_name, address_line1, city, state,
                     country, postal_code, created_at, updated_at)
                 SELECT randomblob(16), ?1, 'Event ' || i, 'Seeded by the load generator',
                        ?3 + (1 + i % 60) * 86400000000 + (i % 86400) * 1000000,
                        ?3 + (1 + i % 60) * 86400000000 + (i % 86400 + 10800) * 1000000,
                        100, ?4 + {u} * ?5, ?6 + {v} * ?7,
                        'Venue ' || i, '1 Bench Road', 'Lagos', 'Lagos', 'Nigeria', '100001',
                        ?3, ?3
                 FROM n"
            ))
            .bind(creator)
            .bind(count)
            .bind(now)
            .bind(lat0)
            .bind(lat_span)
            .bind(lon0)
            .bind(lon_span)
            .execute(&mut conn)
            .await?;
            sqlx::query(
                "INSERT INTO ticket_tiers (id, event_id, name, position, created_at, updated_at)
                 SELECT randomblob(16), id, 'General admission', 0, ?2, ?2
                 FROM events WHERE creator_id = ?1",
            )
            .bind(creator)
            .bind(now)
            .execute(&mut conn)
            .await?;
        }
    }
    Ok(())
}

/// PostgreSQL's count of transactions ended and rows written in the bench database, once
/// every session has reported (idle sessions report within 10 s); `None` on SQLite.
async fn database_work(bench: &Bench) -> anyhow::Result<Option<(i64, i64)>> {
    if !matches!(bench.backend, BackendChoice::Postgres) {
        return Ok(None);
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut conn = sqlx::PgConnection::connect(&bench.database_url).await?;
    let work = sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::bigint,
                (tup_inserted + tup_updated + tup_deleted)::bigint
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(Some(work))
}

async fn sold_and_rows(bench: &Bench, event: Uuid) -> anyhow::Result<(i64, i64, i64)> {
    let sql_pg = "SELECT tickets_sold::bigint, total_tickets::bigint,
                   (SELECT count(*) FROM tickets t WHERE t.event_id = e.id AND t.status IN ('reserved','paid'))
                  FROM events e WHERE id = $1";
    let sql_lite = "SELECT tickets_sold, total_tickets,
                   (SELECT count(*) FROM tickets t WHERE t.event_id = e.id AND t.status IN ('reserved','paid'))
                  FROM events e WHERE id = ?";
    Ok(match bench.backend {
        BackendChoice::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&bench.database_url).await?;
            sqlx::query_as(sql_pg)
                .bind(event)
                .fetch_one(&mut conn)
                .await?
        }
        BackendChoice::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&bench.database_url).await?;
            sqlx::query_as(sql_lite)
                .bind(event)
                .fetch_one(&mut conn)
                .await?
        }
    })
}

async fn flash_sale(
    bench: &Bench,
    tickets: i32,
    concurrency: usize,
    users: usize,
    keyed: bool,
) -> anyhow::Result<()> {
    let users = Arc::new(bench.users(users, false).await?);
    let event = bench
        .event(users[0].0, tickets, random_point(1, 0.1), 1)
        .await?;
    println!(
        "flash sale: {tickets} tickets, {} buyers, {concurrency} connections{}",
        users.len(),
        if keyed {
            ", every reservation keyed"
        } else {
            ""
        }
    );
    bench.warm_up(concurrency).await;
    let sale = sell_out(
        bench,
        users,
        Arc::new(vec![event]),
        concurrency,
        keyed,
        "flash-sale",
    )
    .await;
    let created = sale.created;
    println!(
        "successful reservations/s: {:.0} ({created} in {:.2}s)",
        sale.rate(),
        sale.elapsed.as_secs_f64()
    );
    let (sold, total, rows) = sold_and_rows(bench, event).await?;
    println!(
        "oversell check: tickets_sold={sold} total_tickets={total} reserved_rows={rows} 201s={created} -> {}",
        if sold == rows && sold <= total && rows == created as i64 {
            "OK"
        } else {
            "VIOLATED"
        }
    );
    Ok(())
}

async fn spread(
    bench: &Bench,
    events: usize,
    requests: usize,
    concurrency: usize,
    users: usize,
) -> anyhow::Result<()> {
    let users = Arc::new(bench.users(users, false).await?);
    let mut ids = Vec::with_capacity(events);
    for i in 0..events {
        ids.push(
            bench
                .event(
                    users[0].0,
                    1_000,
                    random_point(i as u64 + 11, 1.0),
                    i as u64,
                )
                .await?,
        );
    }
    let ids = Arc::new(ids);
    println!("spread: {requests} reservations over {events} events, {concurrency} connections");
    bench.warm_up(concurrency).await;
    let issued = Arc::new(AtomicUsize::new(0));
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let mut figures = drive(concurrency, None, move |worker, iteration| {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if n >= requests {
            return None;
        }
        let (_, token) = &users[(worker * 31 + iteration) % users.len()];
        let event = ids[(n * 7_919) % ids.len()];
        Some(status_of(reservation(&client, &base, token, event)))
    })
    .await;
    figures.print("spread");
    Ok(())
}

async fn orders(
    bench: &Bench,
    tickets: i32,
    concurrency: usize,
    users: usize,
) -> anyhow::Result<()> {
    let users = Arc::new(bench.users(users, false).await?);
    let tier = |name: &str, price_minor: i64, quantity: Option<i64>| TierFields {
        name: name.into(),
        price_minor: Some(price_minor),
        quantity,
        ..TierFields::default()
    };
    let tiers = vec![
        tier("Early bird", 1500, Some(i64::from(tickets / 4))),
        tier("VIP", 5000, Some(i64::from(tickets / 10))),
        tier("Regular", 2500, None),
    ];
    let event = bench
        .event_with_tiers(users[0].0, tickets, random_point(2, 0.1), 2, Some(tiers))
        .await?;
    let tier_ids: Arc<Vec<Uuid>> = Arc::new(
        bench
            .store
            .find_event(event)
            .await?
            .context("the event")?
            .tiers
            .iter()
            .map(|tier| tier.id)
            .collect(),
    );
    println!(
        "orders: {tickets} tickets over 3 tiers, orders of 1-4, {} buyers, {concurrency} connections",
        users.len()
    );
    bench.warm_up(concurrency).await;
    let sold_out = Arc::new(AtomicBool::new(false));
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let flag = sold_out.clone();
    let mut figures = drive(
        concurrency,
        Some(Duration::from_secs(600)),
        move |worker, iteration| {
            if flag.load(Ordering::Relaxed) {
                return None;
            }
            let pick = worker * 7919 + iteration;
            let (_, token) = &users[pick % users.len()];
            let items = serde_json::json!([{
                "tier_id": tier_ids[pick % 3],
                "quantity": 1 + (pick / 3) % 4,
            }]);
            let request = client
                .post(format!("{base}/orders/"))
                .bearer_auth(token)
                .json(&serde_json::json!({"event_id": event, "items": items}));
            let flag = flag.clone();
            Some(async move {
                let Ok(response) = request.send().await else {
                    return 0;
                };
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                // The event itself (not one tier) is out of seats: the sale is over.
                if status == 409
                    && (body.contains("Event is sold out") || body.contains("the event has"))
                {
                    flag.store(true, Ordering::Relaxed);
                }
                status
            })
        },
    )
    .await;
    let placed = figures.statuses.get(&201).copied().unwrap_or(0);
    figures.print("orders");
    let (sold, total, rows) = sold_and_rows(bench, event).await?;
    let seconds = figures.elapsed.as_secs_f64();
    println!(
        "successful orders/s: {:.0} ({placed} in {seconds:.2}s); tickets/s: {:.0} ({rows} tickets)",
        placed as f64 / seconds,
        rows as f64 / seconds,
    );
    let tiers = bench
        .store
        .find_event(event)
        .await?
        .context("the event")?
        .tiers;
    let tiers_ok = tiers
        .iter()
        .all(|tier| tier.quantity.is_none_or(|quantity| tier.sold <= quantity));
    let tier_sum: i64 = tiers.iter().map(|tier| i64::from(tier.sold)).sum();
    println!(
        "oversell check: tickets_sold={sold} total_tickets={total} live_rows={rows} tier_sum={tier_sum} -> {}",
        if sold == rows && sold <= total && tier_sum == sold && tiers_ok {
            "OK"
        } else {
            "VIOLATED"
        }
    );
    Ok(())
}

async fn sold_out(
    bench: &Bench,
    tier: bool,
    concurrency: usize,
    seconds: Duration,
    users: usize,
) -> anyhow::Result<()> {
    let users = Arc::new(bench.users(users, false).await?);
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let (event, sold_out_order) = if tier {
        let tiers = vec![
            TierFields {
                name: "VIP".into(),
                price_minor: Some(5000),
                quantity: Some(1),
                ..TierFields::default()
            },
            TierFields {
                name: "General".into(),
                ..TierFields::default()
            },
        ];
        let event = bench
            .event_with_tiers(users[0].0, 1_000, random_point(3, 0.1), 3, Some(tiers))
            .await?;
        let vip = bench
            .store
            .find_event(event)
            .await?
            .context("the event")?
            .tiers[0]
            .id;
        let body =
            serde_json::json!({"event_id": event, "items": [{"tier_id": vip, "quantity": 1}]});
        (event, Some(body))
    } else {
        let event = bench.event(users[0].0, 1, random_point(3, 0.1), 3).await?;
        (event, None)
    };
    let request = {
        let (client, base) = (client.clone(), base.clone());
        move |token: &str| match &sold_out_order {
            Some(body) => client
                .post(format!("{base}/orders/"))
                .bearer_auth(token)
                .json(body),
            None => reservation(&client, &base, token, event),
        }
    };
    anyhow::ensure!(
        status_of(request(&users[0].1)).await == 201,
        "the only seat is taken"
    );
    println!(
        "sold out{}: {concurrency} connections for {}s",
        if tier { " (one tier of two)" } else { "" },
        seconds.as_secs()
    );
    bench.warm_up(concurrency).await;
    let work_before = database_work(bench).await?;
    let mut figures = drive(concurrency, Some(seconds), move |worker, iteration| {
        let (_, token) = &users[(worker * 7919 + iteration) % users.len()];
        Some(status_of(request(token)))
    })
    .await;
    figures.print("sold-out");
    if let (Some(before), Some(after)) = (work_before, database_work(bench).await?) {
        let answers = figures.latencies.len().max(1) as f64;
        let (transactions, rows) = (after.0 - before.0, after.1 - before.1);
        println!(
            "database work during the run (all sessions, sweeper included): {transactions} \
             transactions ({:.5} per answer), {rows} rows written",
            transactions as f64 / answers
        );
    }
    let (sold, total, rows) = sold_and_rows(bench, event).await?;
    println!(
        "after: tickets_sold={sold} total_tickets={total} live_rows={rows} -> {}",
        if sold == 1 && rows == 1 {
            "OK"
        } else {
            "VIOLATED"
        }
    );
    Ok(())
}

async fn listing(
    bench: &mut Bench,
    events: usize,
    concurrency: usize,
    seconds: Duration,
) -> anyhow::Result<()> {
    let users = bench.users(1, false).await?;
    let seeding = Instant::now();
    seed_events_in_bulk(bench, users[0].0, events, Layout::Grid).await?;
    // Seeded before the server starts: its search read model then loads them at start-up
    // rather than following a million changes while the listing is measured.
    bench.serve().await?;
    println!(
        "listing: {events} events seeded in {:.1}s; GET /events/?limit=20, {concurrency} connections",
        seeding.elapsed().as_secs_f64()
    );
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let mut figures = drive(concurrency, Some(seconds), move |_, _| {
        Some(status_of(client.get(format!("{base}/events/?limit=20"))))
    })
    .await;
    figures.print(&format!("listing events={events}"));
    Ok(())
}

/// `tickets` paid tickets of one event (orders of up to ten, paid with the `none` provider),
/// scanned twice each by `gates` devices at once; the rate of scans and the admissions check.
async fn redeem(bench: &Bench, tickets: usize, gates: usize) -> anyhow::Result<()> {
    use nearbytix::checkin::code::TicketCode;
    use nearbytix::checkin::keys::TicketKeys;
    let buyers = tickets.div_ceil(10);
    let users = bench.users(1 + buyers.min(200), false).await?;
    let (organiser_id, organiser) = users[0].clone();
    let seats = i32::try_from(tickets).context("tickets")?;
    let event = bench
        .event(organiser_id, seats, random_point(3, 0.1), 3)
        .await?;
    let tier = bench
        .store
        .find_event(event)
        .await?
        .context("the event")?
        .tiers[0]
        .id;
    let (client, base) = (bench.client.clone(), bench.base.clone());
    // Seeding: every buyer orders up to ten and pays, 32 at a time.
    let mut orders = Vec::new();
    for index in 0..buyers {
        let quantity = (tickets - index * 10).min(10);
        let (_, token) = users[1 + index % (users.len() - 1)].clone();
        let (client, base) = (client.clone(), base.clone());
        orders.push(async move {
            let items = serde_json::json!([{"tier_id": tier, "quantity": quantity}]);
            let body = serde_json::json!({"event_id": event, "items": items});
            let order: serde_json::Value = client
                .post(format!("{base}/orders/"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let id = order["id"].as_str().context("an order")?.to_owned();
            let paid = client
                .post(format!("{base}/orders/{id}/pay"))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await?;
            anyhow::ensure!(paid.status().as_u16() == 200, "pay: {}", paid.status());
            let tickets: Vec<(Uuid, Uuid)> = order["tickets"]
                .as_array()
                .context("tickets")?
                .iter()
                .filter_map(|ticket| {
                    let id = ticket["id"].as_str()?.parse().ok()?;
                    let tier = ticket["tier_id"].as_str()?.parse().ok()?;
                    Some((id, tier))
                })
                .collect();
            Ok::<_, anyhow::Error>(tickets)
        });
    }
    let mut paid = Vec::with_capacity(tickets);
    let mut orders = futures::StreamExt::buffer_unordered(futures::stream::iter(orders), 32);
    while let Some(placed) = futures::StreamExt::next(&mut orders).await {
        paid.extend(placed?);
    }
    anyhow::ensure!(
        paid.len() == tickets,
        "{} of {tickets} tickets paid",
        paid.len()
    );
    let keys = TicketKeys::parse(BENCH_TICKET_KEYS)?;
    let (key_id, signing) = keys.signing();
    let codes: Arc<Vec<String>> = Arc::new(
        paid.iter()
            .map(|&(ticket_id, tier_id)| {
                TicketCode {
                    key_id,
                    ticket_id,
                    event_id: event,
                    tier_id,
                    serial: 1,
                }
                .sign(signing)
            })
            .collect(),
    );
    let lists: serde_json::Value = client
        .get(format!("{base}/events/{event}/checkin-lists"))
        .bearer_auth(&organiser)
        .send()
        .await?
        .json()
        .await?;
    let list = lists["lists"][0]["id"]
        .as_str()
        .context("the default list")?
        .to_owned();
    let mut scanners = Vec::with_capacity(gates);
    for gate in 0..gates {
        let token: serde_json::Value = client
            .post(format!("{base}/events/{event}/scanner-tokens"))
            .bearer_auth(&organiser)
            .json(&serde_json::json!({"label": format!("Gate {gate}")}))
            .send()
            .await?
            .json()
            .await?;
        scanners.push(
            token["token"]
                .as_str()
                .context("a scanner token")?
                .to_owned(),
        );
    }
    println!("redeem: {tickets} paid tickets, each scanned twice, {gates} gates (a token each)");
    bench.warm_up(gates).await;
    let scans = 2 * tickets;
    let next = Arc::new(AtomicUsize::new(0));
    let scanners = Arc::new(scanners);
    let mut figures = drive(gates, Some(Duration::from_secs(600)), move |gate, _| {
        let scan = next.fetch_add(1, Ordering::Relaxed);
        if scan >= scans {
            return None;
        }
        // The two scans of a ticket are next to each other: two gates at about the same time.
        let body = serde_json::json!({
            "list_id": list,
            "code": codes[scan / 2],
            "nonce": format!("bench-{scan:08}"),
            "gate": format!("G{gate}"),
        });
        let request = client
            .post(format!("{base}/checkin/redeem"))
            .bearer_auth(&scanners[gate])
            .json(&body);
        Some(status_of(request))
    })
    .await;
    figures.print("redeem");
    let admitted = figures.statuses.get(&201).copied().unwrap_or(0);
    let refused = figures.statuses.get(&409).copied().unwrap_or(0);
    println!(
        "scans/s: {:.0} ({scans} in {:.2}s)",
        scans as f64 / figures.elapsed.as_secs_f64(),
        figures.elapsed.as_secs_f64()
    );
    let recorded = match bench.backend {
        BackendChoice::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&bench.database_url).await?;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM checkins")
                .fetch_one(&mut conn)
                .await?
        }
        BackendChoice::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&bench.database_url).await?;
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM checkins")
                .fetch_one(&mut conn)
                .await?
        }
    };
    println!(
        "admission check: 201s={admitted} 409s={refused} check-ins={recorded} tickets={tickets} -> {}",
        if admitted == tickets && refused == tickets && recorded == tickets as i64 {
            "OK"
        } else {
            "VIOLATED"
        }
    );
    Ok(())
}

/// Sold out, `waiting` in line (one seat each), then `returns` cancellations at once: the
/// offer step runs in each, so the line must hold `returns` offers when the last answers.
async fn waitlist(
    bench: &Bench,
    waiting: usize,
    returns: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let holders = bench.users(returns + 1, false).await?;
    let waiters = bench.users(waiting, false).await?;
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let organiser = &holders[0].1;
    let start = Utc::now() + chrono::Duration::days(2);
    let body = serde_json::json!({
        "title": "Sold out", "start_time": start.to_rfc3339(),
        "end_time": (start + chrono::Duration::hours(3)).to_rfc3339(),
        "total_tickets": returns, "waitlist_enabled": true,
        "venue": {"latitude": 6.5, "longitude": 3.4, "venue_name": "Hall",
                  "address_line1": "1 Road", "city": "Lagos", "state": "Lagos",
                  "country": "Nigeria", "postal_code": "100001"},
    });
    let event: serde_json::Value = client
        .post(format!("{base}/events/"))
        .bearer_auth(organiser)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let event: Uuid = event["id"].as_str().context("an event")?.parse()?;
    // Sold out: one hold per holder.
    let held = futures::future::join_all(holders[1..].iter().map(|(_, token)| {
        let request = reservation(&client, &base, token, event);
        async move {
            let ticket: serde_json::Value = request.send().await?.json().await?;
            let order = ticket["order_id"].as_str().context("a hold")?.to_owned();
            Ok::<_, anyhow::Error>((token.clone(), order))
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let joined_at = Instant::now();
    let joins = waiters.iter().map(|(_, token)| {
        let request = bench
            .client
            .post(format!("{}/events/{event}/waitlist", bench.base))
            .bearer_auth(token)
            .json(&serde_json::json!({}));
        status_of(request)
    });
    let mut joins = futures::StreamExt::buffer_unordered(futures::stream::iter(joins), 64);
    let mut joined = 0;
    while let Some(status) = futures::StreamExt::next(&mut joins).await {
        anyhow::ensure!(status == 201, "join: {status}");
        joined += 1;
    }
    println!(
        "waitlist: {returns} seats sold out, {joined} joined the line in {:.1}s ({:.0}/s)",
        joined_at.elapsed().as_secs_f64(),
        joined as f64 / joined_at.elapsed().as_secs_f64()
    );
    bench.warm_up(concurrency).await;
    let held = Arc::new(held);
    let burst = Instant::now();
    let mut figures = drive(concurrency, None, move |worker, iteration| {
        let index = iteration * concurrency + worker;
        let (token, order) = held.get(index)?.clone();
        let request = client
            .post(format!("{base}/orders/{order}/cancel"))
            .bearer_auth(token);
        Some(status_of(request))
    })
    .await;
    let answered = burst.elapsed();
    let mut offered = 0;
    while burst.elapsed() < Duration::from_secs(30) {
        offered = bench.store.waitlist_figures(event).await?.0.offered;
        if offered >= returns as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_offered = burst.elapsed();
    figures.print("waitlist-returns");
    let (sold, total, rows) = sold_and_rows(bench, event).await?;
    println!(
        "{returns} cancellations answered in {:.2}s; {offered} offers made by {:.2}s \
         (goal: within 2 s); tickets_sold={sold}/{total} rows={rows} -> {}",
        answered.as_secs_f64(),
        all_offered.as_secs_f64(),
        if offered == returns as i64 && sold == total && rows == sold {
            "OK"
        } else {
            "VIOLATED"
        }
    );
    Ok(())
}

/// A flash sale's size.
#[derive(Clone, Copy)]
struct Sale {
    tickets: i32,
    concurrency: usize,
    users: usize,
}

/// What the streams have received, per stream: the last version and when it came (µs since
/// the Unix epoch: the parent process compares it with its own clock).
struct Received {
    versions: Vec<std::sync::atomic::AtomicI64>,
    at_micros: Vec<std::sync::atomic::AtomicU64>,
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// The client side of the `streams` scenario (see [`Scenario::StreamClients`]).
fn stream_clients(
    address: std::net::SocketAddr,
    events: Vec<Uuid>,
    streams: usize,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let received = Arc::new(Received {
        versions: (0..streams)
            .map(|_| std::sync::atomic::AtomicI64::new(0))
            .collect(),
        at_micros: (0..streams)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    });
    let count = events.len();
    runtime.block_on(async {
        for stream in 0..streams {
            let path = format!(
                "/api/v1/events/{}/availability/stream",
                events[stream % count]
            );
            let received = received.clone();
            tokio::spawn(async move {
                if let Err(error) = follow_stream(address, path, stream, received).await {
                    eprintln!("stream {stream}: {error}");
                }
            });
            if stream % 250 == 249 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let _entered = runtime.enter();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let wanted: Vec<i64> = line
            .strip_prefix("want ")
            .context("want v1 v2 …")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let reached = loop {
            let all = received
                .versions
                .iter()
                .enumerate()
                .all(|(stream, version)| version.load(Ordering::Relaxed) >= wanted[stream % count]);
            if all {
                break received
                    .at_micros
                    .iter()
                    .map(|at| at.load(Ordering::Relaxed))
                    .max();
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match reached {
            Some(at) => println!("reached {at}"),
            None => println!("timeout"),
        }
    }
    Ok(())
}

/// Opens a single-event stream on a raw socket and records the `id:` of each message it reads
/// (a 2 KiB buffer).
async fn follow_stream(
    address: std::net::SocketAddr,
    path: String,
    stream: usize,
    received: Arc<Received>,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await?;
    let mut buffer = [0u8; 2048];
    let mut tail = String::new();
    loop {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        tail.push_str(&String::from_utf8_lossy(&buffer[..read]));
        // Versions of the complete messages read so far; an incomplete one stays in `tail`.
        let complete = tail.rfind("\n\n").map_or(0, |end| end + 2);
        for line in tail[..complete].lines() {
            if let Some(version) = line
                .strip_prefix("id: ")
                .and_then(|v| v.trim().parse().ok())
            {
                received.versions[stream].store(version, Ordering::Relaxed);
                received.at_micros[stream].store(unix_micros(), Ordering::Relaxed);
            }
        }
        tail.drain(..complete);
    }
}

/// The stream clients' process, spoken to over its stdin and stdout.
struct StreamClients {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl StreamClients {
    fn start(address: &str, events: &[Uuid], streams: usize) -> anyhow::Result<Self> {
        let ids: Vec<String> = events.iter().map(Uuid::to_string).collect();
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["stream-clients", "--address", address, "--streams"])
            .arg(streams.to_string())
            .arg("--events")
            .arg(ids.join(","))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// Waits until every stream has at least `versions` (one per event); when the last of
    /// them arrived, by the wall clock.
    async fn reached(&mut self, versions: &[i64]) -> anyhow::Result<std::time::SystemTime> {
        use std::io::{BufRead, Write};
        let line: Vec<String> = versions.iter().map(i64::to_string).collect();
        writeln!(self.stdin, "want {}", line.join(" "))?;
        self.stdin.flush()?;
        let mut answer = String::new();
        tokio::task::block_in_place(|| self.stdout.read_line(&mut answer))?;
        let micros: u64 = answer
            .trim()
            .strip_prefix("reached ")
            .with_context(|| format!("the streams answered {answer:?}"))?
            .parse()?;
        Ok(std::time::UNIX_EPOCH + Duration::from_micros(micros))
    }
}

impl Drop for StreamClients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long after `from` the wall-clock instant `at` came, in ms (0 if before).
fn millis_after(at: std::time::SystemTime, from: std::time::SystemTime) -> f64 {
    at.duration_since(from)
        .map_or(0.0, |after| after.as_secs_f64() * 1000.0)
}

/// [`resident_mib`] after the allocator gave freed memory back to the system: what is alive,
/// not what a burst of allocations left behind.
fn trimmed_resident_mib() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    resident_mib()
}

/// CPU time this process used so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / per_second)
}

/// `nearbytix_availability_reads_total` from the server's metrics.
async fn availability_reads(bench: &Bench) -> anyhow::Result<u64> {
    let metrics = bench
        .client
        .get(bench.base.replace("/api/v1", "/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(metrics
        .lines()
        .find_map(|line| line.strip_prefix("nearbytix_availability_reads_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64))
}

/// The availability versions of `events` now.
async fn versions_of(bench: &Bench, events: &[Uuid]) -> anyhow::Result<Vec<i64>> {
    let mut versions = Vec::with_capacity(events.len());
    for event in events {
        let snapshot: serde_json::Value = bench
            .client
            .get(format!("{}/events/{event}/availability", bench.base))
            .send()
            .await?
            .json()
            .await?;
        versions.push(snapshot["version"].as_i64().context("a version")?);
    }
    Ok(versions)
}

/// What [`sell_out`] did.
struct SoldOut {
    /// Reservations made.
    created: usize,
    elapsed: Duration,
    /// When the last worker stopped.
    ended: Instant,
}

impl SoldOut {
    /// Successful reservations per second.
    fn rate(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64()
    }
}

/// Reserves `events` (round robin) as `users` on `concurrency` connections until each has
/// answered "sold out" (with `keyed`: every reservation with an `Idempotency-Key` of its own);
/// prints the figures under `label`.
async fn sell_out(
    bench: &Bench,
    users: Arc<Vec<(Uuid, String)>>,
    events: Arc<Vec<Uuid>>,
    concurrency: usize,
    keyed: bool,
    label: &str,
) -> SoldOut {
    let sold_out = Arc::new(AtomicUsize::new(0));
    let (client, base) = (bench.client.clone(), bench.base.clone());
    let total = events.len();
    let flag = sold_out.clone();
    let mut figures = drive(
        concurrency,
        Some(Duration::from_secs(600)),
        move |worker, iteration| {
            if flag.load(Ordering::Relaxed) >= total {
                return None;
            }
            let (_, token) = &users[(worker * 7919 + iteration) % users.len()];
            let event = events[(worker + iteration) % events.len()];
            let mut request = reservation(&client, &base, token, event);
            if keyed {
                request = request.header("Idempotency-Key", Uuid::new_v4().to_string());
            }
            let flag = flag.clone();
            Some(async move {
                let status = status_of(request).await;
                if status == 409 {
                    flag.fetch_add(1, Ordering::Relaxed);
                }
                status
            })
        },
    )
    .await;
    let ended = Instant::now();
    figures.print(label);
    SoldOut {
        created: figures.statuses.get(&201).copied().unwrap_or(0),
        elapsed: figures.elapsed,
        ended,
    }
}

async fn availability_streams(
    bench: &Bench,
    streams: usize,
    events: usize,
    sale: Sale,
    idle_seconds: u64,
) -> anyhow::Result<()> {
    let users = Arc::new(bench.users(sale.users, false).await?);
    let creator = users[0].0;
    // Each sale's tickets spread over its events.
    let per_event = (sale.tickets / events.max(1) as i32).max(1);
    let mut unwatched = Vec::with_capacity(events);
    let mut watched = Vec::with_capacity(events);
    for seed in 0..events as u64 {
        unwatched.push(
            bench
                .event(creator, per_event, random_point(seed, 0.1), seed)
                .await?,
        );
        watched.push(
            bench
                .event(
                    creator,
                    per_event,
                    random_point(seed + 1_000, 0.1),
                    seed + 1_000,
                )
                .await?,
        );
    }
    println!(
        "availability streams: {streams} streams on {events} event(s), sales of {} tickets, \
         {} connections",
        per_event * events as i32,
        sale.concurrency
    );
    bench.warm_up(sale.concurrency).await;
    let rate_alone = sell_out(
        bench,
        users.clone(),
        Arc::new(unwatched),
        sale.concurrency,
        false,
        "unwatched sale",
    )
    .await
    .rate();
    println!("unwatched sale: {rate_alone:.0} reservations/s");

    // The streams, opened by a child process: this one holds only the server's side.
    let address = bench
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    let memory_before = trimmed_resident_mib();
    let opening = Instant::now();
    let mut clients = StreamClients::start(&address, &watched, streams)?;
    let first = versions_of(bench, &watched).await?;
    clients.reached(&first).await?;
    let opened_in = opening.elapsed();
    let memory_peak = resident_mib();
    let memory_after = trimmed_resident_mib();
    println!(
        "{streams} streams open in {:.2}s; the server's resident memory {memory_before:.0} -> \
         {memory_after:.0} MiB: {:.1} KiB per stream (before returning freed memory to the \
         system: {memory_peak:.0} MiB, {:.1} KiB per stream)",
        opened_in.as_secs_f64(),
        (memory_after - memory_before) * 1024.0 / streams as f64,
        (memory_peak - memory_before) * 1024.0 / streams as f64,
    );
    let cpu_before = cpu_time();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_cpu = (cpu_time() - cpu_before).as_secs_f64() / idle_seconds as f64;
    println!(
        "idle for {idle_seconds}s (keep-alives every 15 s): the server used {:.2}% of one core",
        idle_cpu * 100.0
    );

    // One reservation: how long until every stream of its event shows it.
    let (_, token) = &users[1];
    let status = status_of(reservation(&bench.client, &bench.base, token, watched[0])).await;
    let answered = std::time::SystemTime::now();
    anyhow::ensure!(status == 201, "the reservation got {status}");
    let after = versions_of(bench, &watched).await?;
    let reached = clients.reached(&after).await?;
    println!(
        "one reservation reached all {} streams of its event {:.0} ms after its response",
        streams.div_ceil(events),
        millis_after(reached, answered)
    );

    // The sale, watched.
    let reads_before = availability_reads(bench).await?;
    let sale_started = Instant::now();
    let watched_sale = sell_out(
        bench,
        users.clone(),
        Arc::new(watched.clone()),
        sale.concurrency,
        false,
        "watched sale",
    )
    .await;
    let (rate_watched, ended) = (watched_sale.rate(), watched_sale.ended);
    let ended_at = std::time::SystemTime::now() - ended.elapsed();
    let sale_seconds = ended.duration_since(sale_started).as_secs_f64();
    let reads = availability_reads(bench).await? - reads_before;
    let last = versions_of(bench, &watched).await?;
    let reached = clients.reached(&last).await?;
    println!(
        "watched sale: {rate_watched:.0} reservations/s ({:.0}% of the unwatched sale's)",
        rate_watched / rate_alone * 100.0
    );
    println!(
        "every stream showed the final state {:.0} ms after the sale's end",
        millis_after(reached, ended_at)
    );
    let interval = 1.0; // AVAILABILITY_STREAM_MIN_INTERVAL_MS
    println!(
        "database reads of the watches during the sale: {reads} for {events} event(s) over \
         {sale_seconds:.1}s ({:.2} per event per interval)",
        reads as f64 / events as f64 / (sale_seconds / interval)
    );
    Ok(())
}

async fn event_read(bench: &Bench, concurrency: usize, seconds: Duration) -> anyhow::Result<()> {
    let users = bench.users(1, false).await?;
    let tier = |name: &str, quantity: Option<i64>| TierFields {
        name: name.into(),
        quantity,
        ..TierFields::default()
    };
    let tiers = vec![
        tier("Early bird", Some(100)),
        tier("VIP", Some(50)),
        tier("Regular", None),
    ];
    let event = bench
        .event_with_tiers(users[0].0, 1_000, random_point(1, 0.1), 1, Some(tiers))
        .await?;
    bench.warm_up(concurrency).await;
    for path in [
        format!("/events/{event}"),
        format!("/events/{event}/availability"),
    ] {
        let (client, url) = (bench.client.clone(), format!("{}{path}", bench.base));
        let mut figures = drive(concurrency, Some(seconds), move |_, _| {
            Some(status_of(client.get(&url)))
        })
        .await;
        figures.print(&format!("GET {path} concurrency={concurrency}"));
    }
    Ok(())
}
