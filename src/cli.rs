//! The command line: subcommands and every option, each also an environment variable (names
//! as in the API contract); a `.env` file is read first when present.

use std::net::IpAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "nearbytix",
    version,
    about = "NearbyTix: find events near you and buy tickets without ever being oversold",
    long_about = "NearbyTix serves the ticketing HTTP API. With no subcommand it runs `serve`.\n\
                  The database is chosen by DATABASE_URL: sqlite://… (embedded, the default) or \
                  postgres://… (PostGIS required)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve the HTTP API (and the expiry sweeper, unless --no-sweeper).
    Serve {
        /// Do not run the expiry sweeper in this process (run `nearbytix worker` instead).
        #[arg(long, env = "NO_SWEEPER")]
        no_sweeper: bool,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Run only the expiry sweeper: expire unpaid holds and give their seats back.
    Worker,
    /// Ask a running server's /health endpoint; exit 0 when healthy, 1 otherwise.
    Healthcheck,
    /// Print the OpenAPI document (the committed openapi.json is this output).
    Openapi,
    /// Check a ticket code offline with the public keys from `GET /checkin/keys` (no database):
    /// print what it says, or why it is invalid (exit 1).
    VerifyCode {
        /// The code, `NTX1:…`.
        code: String,
        /// A file holding the answer of `GET /checkin/keys`.
        #[arg(long)]
        keys: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every option as given; [`crate::config::Settings`] is what the program runs with.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Database: sqlite://FILE (created if missing) or postgres://USER@HOST/DB (PostGIS required).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://nearbytix.db",
        global = true
    )]
    pub database_url: String,

    /// Address to listen on (containers use 0.0.0.0).
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000, global = true)]
    pub port: u16,

    /// Secret for signing tokens (at least 32 bytes). Required with PostgreSQL; with SQLite it
    /// is generated on first start and kept beside the database file.
    #[arg(long, env = "JWT_SECRET_KEY", hide_env_values = true, global = true)]
    pub jwt_secret_key: Option<SecretString>,

    /// Keys ticket codes are signed with: `key_id:seed` (32 bytes, base64url), comma
    /// separated, the first signing. Required with PostgreSQL; with SQLite one is made on first
    /// start and kept beside the database file.
    #[arg(
        long,
        env = "TICKET_SIGNING_KEYS",
        hide_env_values = true,
        global = true
    )]
    pub ticket_signing_keys: Option<SecretString>,

    /// Lifetime of access tokens, in minutes.
    #[arg(long, env = "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=525_600), global = true)]
    pub jwt_access_token_expire_minutes: u32,

    /// Seconds a reservation is held before it expires unpaid.
    #[arg(long, env = "TICKET_EXPIRATION_TIME", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub ticket_expiration_time: u64,

    /// Most tickets in one order (1–100).
    #[arg(long, env = "MAX_TICKETS_PER_ORDER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub max_tickets_per_order: u32,

    /// Radius used by /for-you/ when the request gives none, in km (1–500).
    #[arg(
        long,
        env = "DEFAULT_SEARCH_RADIUS_KM",
        default_value_t = 50.0,
        global = true
    )]
    pub default_search_radius_km: f64,

    /// CORS origins allowed to call the API, comma separated.
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        default_value = "http://localhost:3000,http://localhost:8000",
        global = true
    )]
    pub allowed_origins: String,

    /// Path prefix of the API routes.
    #[arg(long, env = "API_PREFIX", default_value = "/api/v1", global = true)]
    pub api_prefix: String,

    /// Log line format (the filter is RUST_LOG, default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Seconds between two passes of the expiry sweeper.
    #[arg(
        long,
        env = "SWEEP_INTERVAL_SECONDS",
        default_value_t = 1.0,
        global = true
    )]
    pub sweep_interval_seconds: f64,

    /// Most holds one sweeper transaction expires.
    #[arg(long, env = "SWEEP_BATCH_SIZE", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=100_000), global = true)]
    pub sweep_batch_size: i64,

    /// Largest number of pooled database connections (PostgreSQL; SQLite uses one writer).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: u32,

    /// Seconds a request waits for a database connection before answering 503.
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 3.0,
        global = true
    )]
    pub database_acquire_timeout_seconds: f64,

    /// Login and registration attempts per minute from one client address (per process).
    #[arg(long, env = "AUTH_RATE_LIMIT_PER_IP", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub auth_rate_limit_per_ip: u32,

    /// Login and registration attempts per minute for one email from one address (per process).
    #[arg(long, env = "AUTH_RATE_LIMIT_PER_EMAIL", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub auth_rate_limit_per_email: u32,

    /// Login and registration attempts per minute for one email from all addresses together.
    #[arg(long, env = "AUTH_RATE_LIMIT_PER_EMAIL_TOTAL", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub auth_rate_limit_per_email_total: u32,

    /// Tickets one user may reserve per minute, over all orders (per process).
    #[arg(long, env = "RESERVATION_RATE_LIMIT_PER_USER", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub reservation_rate_limit_per_user: u32,

    /// Event creations, changes and tier changes per minute by one user (per process).
    #[arg(long, env = "EVENT_WRITE_RATE_LIMIT_PER_USER", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub event_write_rate_limit_per_user: u32,

    /// Reissues of one ticket's code in 24 hours; beyond them a reissue gets 429.
    #[arg(long, env = "CHECKIN_REISSUES_PER_DAY", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub checkin_reissues_per_day: u32,

    /// Check-in lists one event may have; past them a new one gets 409.
    #[arg(long, env = "CHECKIN_LISTS_PER_EVENT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub checkin_lists_per_event: u32,

    /// Scans one offline upload may carry (1–5000); past them it gets 422.
    #[arg(long, env = "CHECKIN_UPLOAD_MAX", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=5000), global = true)]
    pub checkin_upload_max: u32,

    /// How far ahead of the server's clock a scan's `scanned_at` may be, in seconds.
    #[arg(long, env = "CHECKIN_CLOCK_SKEW_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(0..=86_400), global = true)]
    pub checkin_clock_skew_seconds: u32,

    /// The longest life of a scanner token, in hours.
    #[arg(long, env = "SCANNER_TOKEN_MAX_HOURS", default_value_t = 72,
          value_parser = clap::value_parser!(u32).range(1..=8760), global = true)]
    pub scanner_token_max_hours: u32,

    /// Live scanner tokens one event may have; past them a new one gets 409.
    #[arg(long, env = "SCANNER_TOKENS_PER_EVENT", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub scanner_tokens_per_event: u32,

    /// Refused scans one list's log keeps (one per nonce); past them a refusal is answered but
    /// not logged.
    #[arg(long, env = "CHECKIN_REFUSALS_PER_LIST", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub checkin_refusals_per_list: u32,

    /// How long a waiting-list offer holds, in minutes, when its event sets none (1–10080).
    #[arg(long, env = "WAITLIST_OFFER_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=10_080), global = true)]
    pub waitlist_offer_minutes: u32,

    /// Waiting entries one event's line may hold; past them a join gets 409.
    #[arg(long, env = "WAITLIST_MAX_WAITING_PER_EVENT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub waitlist_max_waiting_per_event: u32,

    /// Active (waiting or offered) entries one user may hold, all events; past them a join
    /// gets 409.
    #[arg(long, env = "WAITLIST_MAX_ACTIVE_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub waitlist_max_active_per_user: u32,

    /// Shortest time between two messages for one event on one availability stream, in ms.
    #[arg(long, env = "AVAILABILITY_STREAM_MIN_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(100..=60_000), global = true)]
    pub availability_stream_min_interval_ms: u32,

    /// Silence, in seconds, after which an availability stream sends a comment (1 to
    /// `IDLE_CONNECTION_TIMEOUT_SECONDS` − 1).
    #[arg(long, env = "AVAILABILITY_STREAM_KEEPALIVE_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub availability_stream_keepalive_seconds: u32,

    /// Lifetime of an availability stream in seconds (each stream ± 10 %, at random).
    #[arg(long, env = "AVAILABILITY_STREAM_MAX_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(10..=86_400), global = true)]
    pub availability_stream_max_seconds: u32,

    /// Availability streams one process serves at once (1 to `MAX_CONNECTIONS`); beyond → 503.
    #[arg(long, env = "AVAILABILITY_STREAMS_MAX", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub availability_streams_max: u32,

    /// Availability streams one client address may hold open in one process; beyond → 429.
    #[arg(long, env = "AVAILABILITY_STREAMS_PER_CLIENT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub availability_streams_per_client: u32,

    /// Events one multiplexed availability stream may watch; beyond → 422.
    #[arg(long, env = "AVAILABILITY_STREAM_MAX_EVENTS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub availability_stream_max_events: u32,

    /// A tier has `few_left` with at most this share (%) of its capacity left.
    #[arg(long, env = "AVAILABILITY_FEW_LEFT_PERCENT", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=100), global = true)]
    pub availability_few_left_percent: u8,

    /// Redeem and upload requests per minute by one credential (per process).
    #[arg(long, env = "CHECKIN_SCANS_PER_MINUTE", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub checkin_scans_per_minute: u32,

    /// Pay requests (orders and tickets) per minute by one user (per process).
    #[arg(long, env = "PAYMENT_RATE_LIMIT_PER_USER", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub payment_rate_limit_per_user: u32,

    /// Who takes the money: `none` (pay marks the order paid at once) or `stripe`.
    #[arg(long, env = "PAYMENT_PROVIDER", default_value = "none",
          value_parser = ["none", "stripe"], global = true)]
    pub payment_provider: String,

    /// Stripe's secret key (`sk_…` or `rk_…`); required with PAYMENT_PROVIDER=stripe.
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<SecretString>,

    /// The webhook endpoint's signing secret (`whsec_…`), several comma separated while
    /// rotating; required with PAYMENT_PROVIDER=stripe.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<SecretString>,

    /// Where Stripe's API is (`/v1/…` is appended): a fake such as localstripe in tests.
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        global = true
    )]
    pub stripe_api_base: String,

    /// Longest one call to Stripe may take; past it the request gets 503.
    #[arg(
        long,
        env = "STRIPE_TIMEOUT_SECONDS",
        default_value_t = 10.0,
        global = true
    )]
    pub stripe_timeout_seconds: f64,

    /// Calls to Stripe in flight per process; past them a request gets 503.
    #[arg(long, env = "STRIPE_MAX_CONCURRENCY", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1024), global = true)]
    pub stripe_max_concurrency: u32,

    /// Largest difference, in seconds, between a webhook signature's time and now.
    #[arg(long, env = "STRIPE_WEBHOOK_TOLERANCE_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..=86_400), global = true)]
    pub stripe_webhook_tolerance_seconds: u32,

    /// The hold an order is granted when its payment starts, in seconds.
    #[arg(long, env = "PAYMENT_WINDOW_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=86_400), global = true)]
    pub payment_window_seconds: u32,

    /// PaymentIntents one order may start; past them pay gets 409.
    #[arg(long, env = "PAYMENT_ATTEMPTS_PER_ORDER", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub payment_attempts_per_order: u32,

    /// A pending intent unheard of this long (seconds) is asked about by the reconciler.
    #[arg(
        long,
        env = "PAYMENT_RECONCILE_AFTER_SECONDS",
        default_value_t = 60.0,
        global = true
    )]
    pub payment_reconcile_after_seconds: f64,

    /// Pause between reconciler runs (each asks about at most 100 intents), in seconds.
    #[arg(
        long,
        env = "PAYMENT_RECONCILE_INTERVAL_SECONDS",
        default_value_t = 10.0,
        global = true
    )]
    pub payment_reconcile_interval_seconds: f64,

    /// An intent still open this long (seconds) after its order's hold ended is cancelled.
    #[arg(long, env = "PAYMENT_INTENT_TTL_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..=604_800), global = true)]
    pub payment_intent_ttl_seconds: u32,

    /// Idempotency-Keys one user may use in 24 hours; beyond them requests with a new key get 429.
    #[arg(long, env = "IDEMPOTENCY_KEYS_PER_USER", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub idempotency_keys_per_user: u32,

    /// Password hashes (19 MiB each) computed at once. Default: the number of cores.
    #[arg(long, env = "PASSWORD_HASH_WORKERS",
          value_parser = clap::value_parser!(u32).range(1..=256), global = true)]
    pub password_hash_workers: Option<u32>,

    /// Password hashes that may wait for a worker; beyond them logins and registrations get 503.
    #[arg(long, env = "PASSWORD_HASH_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub password_hash_queue: u32,

    /// Searches and listings running at once; beyond them they wait up to
    /// EXPENSIVE_READ_WAIT_SECONDS, then get 503. Default: twice the number of cores.
    #[arg(long, env = "EXPENSIVE_READS_MAX",
          value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub expensive_reads_max: Option<u32>,

    /// Longest wait of a search or listing for its turn before it is answered 503.
    #[arg(
        long,
        env = "EXPENSIVE_READ_WAIT_SECONDS",
        default_value_t = 1.0,
        global = true
    )]
    pub expensive_read_wait_seconds: f64,

    /// Connections served at once; more wait in the accept queue. Lowered to fit the
    /// process's open-file limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Seconds a connection may go without sending or receiving a byte before it is closed
    /// (idle keep-alive connections and stalled requests alike). Must exceed
    /// REQUEST_TIMEOUT_SECONDS: a request being worked on is silent too.
    #[arg(
        long,
        env = "IDLE_CONNECTION_TIMEOUT_SECONDS",
        default_value_t = 60.0,
        global = true
    )]
    pub idle_connection_timeout_seconds: f64,

    /// Serve `/metrics` on this address (e.g. 127.0.0.1:9100) instead of the API's, so that
    /// it need not be reachable by API clients.
    #[arg(long, env = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Seconds a request may take before it is answered 503.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30.0,
        global = true
    )]
    pub request_timeout_seconds: f64,
}
