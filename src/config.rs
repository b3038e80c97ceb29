//! The settings the program runs with: typed (durations, a radius, non-zero rates) and checked
//! once, when built from the command line's [`Options`].

use anyhow::Context;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::Parser;
use secrecy::{ExposeSecret, SecretString};

pub use crate::cli::LogFormat;
use crate::cli::{Cli, Options};
use crate::domain::{PaymentProvider, RadiusKm};
use crate::payments::stripe::StripeSettings;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub host: IpAddr,
    pub port: u16,
    pub jwt_secret_key: Option<SecretString>,
    pub ticket_signing_keys: Option<SecretString>,
    pub token_lifetime_minutes: u32,
    /// How long a reservation is held before it expires unpaid.
    pub ticket_hold: Duration,
    /// Most tickets in one order.
    pub max_tickets_per_order: i32,
    pub default_search_radius: RadiusKm,
    pub allowed_origins: Vec<String>,
    /// Empty, or starting with `/` and not ending with one.
    pub api_prefix: String,
    pub log_format: LogFormat,
    pub sweep_interval: Duration,
    pub sweep_batch_size: i64,
    pub database_max_connections: u32,
    pub database_acquire_timeout: Duration,
    pub auth_rate_limit_per_ip: NonZeroU32,
    /// Per e-mail and client address.
    pub auth_rate_limit_per_email: NonZeroU32,
    /// Per e-mail, over all addresses.
    pub auth_rate_limit_per_email_total: NonZeroU32,
    /// Tickets one user may reserve per minute.
    pub reservation_rate_limit_per_user: NonZeroU32,
    /// Event creations, changes and tier changes by one user per minute.
    pub event_write_rate_limit_per_user: NonZeroU32,
    /// Pay requests by one user per minute.
    pub payment_rate_limit_per_user: NonZeroU32,
    /// Who takes the money, and how (`PAYMENT_*`, `STRIPE_*`).
    pub payments: PaymentSettings,
    /// Check-in's limits (`CHECKIN_*`, `SCANNER_*`).
    pub checkin: CheckinSettings,
    /// Redeem and upload requests by one credential per minute.
    pub checkin_scans_per_minute: NonZeroU32,
    /// The waiting list's offer validity and limits (`WAITLIST_*`).
    pub waitlist: WaitlistSettings,
    /// Live availability streams' pace and caps (`AVAILABILITY_*`).
    pub availability: AvailabilitySettings,
    pub idempotency_keys_per_user: u32,
    pub password_hash_workers: usize,
    pub password_hash_queue: usize,
    pub expensive_reads_max: usize,
    pub expensive_read_wait: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub idle_connection_timeout: Duration,
    /// Where `/metrics` is served when not on the API's address.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Check-in's limits (CHECKIN.md § Configuration).
#[derive(Debug, Clone, Copy)]
pub struct CheckinSettings {
    /// Reissues of one ticket's code in 24 h.
    pub reissues_per_day: u32,
    /// Check-in lists one event may have.
    pub lists_per_event: u32,
    /// Scans one offline upload may carry.
    pub upload_max: u32,
    /// How far ahead of now a scan's `scanned_at` may be.
    pub clock_skew: chrono::Duration,
    /// The longest life of a scanner token, in hours.
    pub token_max_hours: u32,
    /// Live scanner tokens one event may have.
    pub tokens_per_event: u32,
    /// Rows of a list's refused-scan log (past them refusals are answered, not logged).
    pub refusals_per_list: u32,
}

/// The waiting list's settings (WAITLIST.md § Configuration).
#[derive(Debug, Clone, Copy)]
pub struct WaitlistSettings {
    /// How long an offer holds when its event sets none.
    pub offer: Duration,
    /// Waiting entries one event may have.
    pub max_waiting_per_event: u32,
    /// Active entries one user may have, all events.
    pub max_active_per_user: u32,
}

/// Live availability's settings (AVAILABILITY.md § Configuration).
#[derive(Debug, Clone, Copy)]
pub struct AvailabilitySettings {
    /// Shortest time between two messages for one event on one stream.
    pub min_interval: Duration,
    /// Silence after which a stream sends a comment.
    pub keepalive: Duration,
    /// A stream's lifetime, before its ± 10 %.
    pub max_lifetime: Duration,
    /// Streams one process serves at once.
    pub streams_max: usize,
    /// Streams one client address holds open in one process.
    pub streams_per_client: usize,
    /// Events one multiplexed stream may watch.
    pub max_events: usize,
    /// A tier has few left with at most this share (%) of its capacity left.
    pub few_left_percent: u8,
}

/// How payments are taken.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// `None`: the `none` provider (pay marks the order paid at once).
    pub stripe: Option<StripeSettings>,
    /// Every secret the webhook endpoint may sign with (several while rotating).
    pub webhook_secrets: Vec<SecretString>,
    pub webhook_tolerance_seconds: i64,
    /// The hold an order is granted when its payment starts.
    pub window: Duration,
    pub attempts_per_order: i32,
    pub reconcile_after: Duration,
    pub reconcile_interval: Duration,
    /// How long an intent stays open after its order's hold ended.
    pub intent_ttl: Duration,
}

impl AvailabilitySettings {
    /// The ranges clap cannot check alone: the keep-alive must come before the idle timeout
    /// closes a quiet stream, and a process cannot serve more streams than connections.
    fn from_options(options: &Options, idle_timeout: Duration) -> anyhow::Result<Self> {
        let keepalive = Duration::from_secs(options.availability_stream_keepalive_seconds.into());
        anyhow::ensure!(
            keepalive + Duration::from_secs(1) <= idle_timeout,
            "AVAILABILITY_STREAM_KEEPALIVE_SECONDS must be at most \
             IDLE_CONNECTION_TIMEOUT_SECONDS - 1"
        );
        anyhow::ensure!(
            options.availability_streams_max <= options.max_connections,
            "AVAILABILITY_STREAMS_MAX must be at most MAX_CONNECTIONS"
        );
        Ok(Self {
            min_interval: Duration::from_millis(options.availability_stream_min_interval_ms.into()),
            keepalive,
            max_lifetime: Duration::from_secs(options.availability_stream_max_seconds.into()),
            streams_max: options.availability_streams_max as usize,
            streams_per_client: options.availability_streams_per_client as usize,
            max_events: options.availability_stream_max_events as usize,
            few_left_percent: options.availability_few_left_percent,
        })
    }
}

impl PaymentSettings {
    fn from_options(
        options: &Options,
        seconds: impl Fn(&str, f64) -> anyhow::Result<Duration>,
    ) -> anyhow::Result<Self> {
        let stripe = match PaymentProvider::parse(&options.payment_provider) {
            Some(PaymentProvider::Stripe) => {
                let secret_key = options
                    .stripe_secret_key
                    .clone()
                    .context("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY (sk_… or rk_…)")?;
                anyhow::ensure!(
                    ["sk_", "rk_"]
                        .iter()
                        .any(|prefix| secret_key.expose_secret().starts_with(prefix)),
                    "STRIPE_SECRET_KEY must start with sk_ or rk_"
                );
                Some(StripeSettings {
                    secret_key,
                    api_base: options.stripe_api_base.clone(),
                    timeout: seconds("STRIPE_TIMEOUT_SECONDS", options.stripe_timeout_seconds)?,
                    max_concurrency: options.stripe_max_concurrency as usize,
                })
            }
            _ => None,
        };
        let webhook_secrets: Vec<SecretString> = options
            .stripe_webhook_secret
            .as_ref()
            .map(|secrets| {
                secrets
                    .expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|secret| !secret.is_empty())
                    .map(|secret| SecretString::from(secret.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(
            stripe.is_none() || !webhook_secrets.is_empty(),
            "PAYMENT_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET (whsec_…)"
        );
        Ok(Self {
            stripe,
            webhook_secrets,
            webhook_tolerance_seconds: i64::from(options.stripe_webhook_tolerance_seconds),
            window: Duration::from_secs(u64::from(options.payment_window_seconds)),
            attempts_per_order: i32::try_from(options.payment_attempts_per_order)
                .context("PAYMENT_ATTEMPTS_PER_ORDER")?,
            reconcile_after: seconds(
                "PAYMENT_RECONCILE_AFTER_SECONDS",
                options.payment_reconcile_after_seconds,
            )?,
            reconcile_interval: seconds(
                "PAYMENT_RECONCILE_INTERVAL_SECONDS",
                options.payment_reconcile_interval_seconds,
            )?,
            intent_ttl: Duration::from_secs(u64::from(options.payment_intent_ttl_seconds)),
        })
    }
}

impl TryFrom<Options> for Settings {
    type Error = anyhow::Error;

    fn try_from(options: Options) -> anyhow::Result<Self> {
        let default_search_radius = RadiusKm::new(options.default_search_radius_km)
            .map_err(|rule| anyhow::anyhow!("DEFAULT_SEARCH_RADIUS_KM {rule}"))?;
        let api_prefix = options.api_prefix.clone();
        // The reservation limit counts tickets: a full order must fit in a minute's quota.
        anyhow::ensure!(
            options.reservation_rate_limit_per_user >= options.max_tickets_per_order,
            "RESERVATION_RATE_LIMIT_PER_USER (tickets per minute) must be at least \
             MAX_TICKETS_PER_ORDER, or the largest orders could never be placed"
        );
        anyhow::ensure!(
            api_prefix.is_empty() || (api_prefix.starts_with('/') && !api_prefix.ends_with('/')),
            "API_PREFIX must be empty or start with / and not end with /"
        );
        let seconds = |name: &str, value: f64| -> anyhow::Result<Duration> {
            anyhow::ensure!(
                value.is_finite() && (0.01..=3600.0).contains(&value),
                "{name} must be between 0.01 and 3600 seconds"
            );
            Ok(Duration::from_secs_f64(value))
        };
        let rate = |name: &str, value: u32| {
            NonZeroU32::new(value).ok_or_else(|| anyhow::anyhow!("{name} must be at least 1"))
        };
        let request_timeout = seconds("REQUEST_TIMEOUT_SECONDS", options.request_timeout_seconds)?;
        let idle_connection_timeout = seconds(
            "IDLE_CONNECTION_TIMEOUT_SECONDS",
            options.idle_connection_timeout_seconds,
        )?;
        // hyper keeps reading (for the client's EOF) while a handler runs, so a connection
        // quieter than the idle timeout would be closed under a request still being answered.
        anyhow::ensure!(
            idle_connection_timeout > request_timeout,
            "IDLE_CONNECTION_TIMEOUT_SECONDS must be longer than REQUEST_TIMEOUT_SECONDS"
        );
        let payments = PaymentSettings::from_options(&options, seconds)?;
        let availability = AvailabilitySettings::from_options(&options, idle_connection_timeout)?;
        Ok(Settings {
            payments,
            availability,
            sweep_interval: seconds("SWEEP_INTERVAL_SECONDS", options.sweep_interval_seconds)?,
            database_acquire_timeout: seconds(
                "DATABASE_ACQUIRE_TIMEOUT_SECONDS",
                options.database_acquire_timeout_seconds,
            )?,
            request_timeout,
            max_connections: options.max_connections as usize,
            metrics_addr: options.metrics_addr,
            idle_connection_timeout,
            auth_rate_limit_per_ip: rate("AUTH_RATE_LIMIT_PER_IP", options.auth_rate_limit_per_ip)?,
            auth_rate_limit_per_email: rate(
                "AUTH_RATE_LIMIT_PER_EMAIL",
                options.auth_rate_limit_per_email,
            )?,
            auth_rate_limit_per_email_total: rate(
                "AUTH_RATE_LIMIT_PER_EMAIL_TOTAL",
                options.auth_rate_limit_per_email_total,
            )?,
            reservation_rate_limit_per_user: rate(
                "RESERVATION_RATE_LIMIT_PER_USER",
                options.reservation_rate_limit_per_user,
            )?,
            event_write_rate_limit_per_user: rate(
                "EVENT_WRITE_RATE_LIMIT_PER_USER",
                options.event_write_rate_limit_per_user,
            )?,
            payment_rate_limit_per_user: rate(
                "PAYMENT_RATE_LIMIT_PER_USER",
                options.payment_rate_limit_per_user,
            )?,
            checkin: CheckinSettings {
                reissues_per_day: options.checkin_reissues_per_day,
                lists_per_event: options.checkin_lists_per_event,
                upload_max: options.checkin_upload_max,
                clock_skew: chrono::Duration::seconds(options.checkin_clock_skew_seconds.into()),
                token_max_hours: options.scanner_token_max_hours,
                tokens_per_event: options.scanner_tokens_per_event,
                refusals_per_list: options.checkin_refusals_per_list,
            },
            waitlist: WaitlistSettings {
                offer: Duration::from_secs(u64::from(options.waitlist_offer_minutes) * 60),
                max_waiting_per_event: options.waitlist_max_waiting_per_event,
                max_active_per_user: options.waitlist_max_active_per_user,
            },
            checkin_scans_per_minute: rate(
                "CHECKIN_SCANS_PER_MINUTE",
                options.checkin_scans_per_minute,
            )?,
            password_hash_workers: options
                .password_hash_workers
                .map_or_else(cores, |workers| workers as usize),
            password_hash_queue: options.password_hash_queue as usize,
            idempotency_keys_per_user: options.idempotency_keys_per_user,
            expensive_reads_max: options
                .expensive_reads_max
                .map_or_else(|| 2 * cores(), |max| max as usize),
            expensive_read_wait: seconds(
                "EXPENSIVE_READ_WAIT_SECONDS",
                options.expensive_read_wait_seconds,
            )?,
            allowed_origins: options
                .allowed_origins
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect(),
            database_url: options.database_url,
            host: options.host,
            port: options.port,
            jwt_secret_key: options.jwt_secret_key,
            ticket_signing_keys: options.ticket_signing_keys,
            token_lifetime_minutes: options.jwt_access_token_expire_minutes,
            ticket_hold: Duration::from_secs(options.ticket_expiration_time),
            max_tickets_per_order: i32::try_from(options.max_tickets_per_order)
                .context("MAX_TICKETS_PER_ORDER")?,
            default_search_radius,
            api_prefix,
            log_format: options.log_format,
            sweep_batch_size: options.sweep_batch_size,
            database_max_connections: options.database_max_connections,
        })
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Settings {
    /// The documented defaults (and whatever the environment sets) with the given database;
    /// tests and tools build their settings this way.
    pub fn with_database(database_url: impl Into<String>) -> anyhow::Result<Self> {
        let mut options = Cli::try_parse_from(["nearbytix"])?.options;
        options.database_url = database_url.into();
        Settings::try_from(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut all = vec!["nearbytix"];
        all.extend_from_slice(args);
        Settings::try_from(Cli::try_parse_from(all)?.options)
    }

    #[test]
    fn defaults_are_valid_and_typed() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.ticket_hold, Duration::from_secs(120));
        assert_eq!(settings.default_search_radius.km(), 50.0);
        assert!(settings.idle_connection_timeout > settings.request_timeout);
    }

    #[test]
    fn values_clap_cannot_check_are_refused_once() {
        assert!(parse(&["--default-search-radius-km", "501"]).is_err());
        assert!(parse(&["--api-prefix", "/api/"]).is_err());
        assert!(parse(&["--sweep-interval-seconds", "0"]).is_err());
        assert!(parse(&["--idle-connection-timeout-seconds", "10"]).is_err());
        assert!(parse(&["--reservation-rate-limit-per-user", "9"]).is_err());
        assert!(parse(&["--reservation-rate-limit-per-user", "10"]).is_ok());
        assert!(parse(&["--availability-stream-min-interval-ms", "99"]).is_err());
        assert!(parse(&["--availability-few-left-percent", "101"]).is_err());
        assert!(parse(&["--availability-stream-keepalive-seconds", "60"]).is_err());
        assert!(parse(&["--availability-streams-max", "20000"]).is_err());
        assert!(parse(&["--availability-stream-max-events", "1001"]).is_err());
    }
}
