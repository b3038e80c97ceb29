//! Logs (tracing) and Prometheus metrics.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the log subscriber: `RUST_LOG` filter (default `info`), text or JSON lines.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second call (tests start several apps in one process) keeps the first subscriber.
    drop(installed);
}

fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Installs the recorder and describes every metric the program emits. Metrics are emitted
/// where things happen, with the `metrics` macros and these names; every label set is closed.
pub fn init_metrics() {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    handle();
    DESCRIBED.get_or_init(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_counter!(
            "nearbytix_reservations_total",
            "orders placed (an order of one ticket included)"
        );
        describe_counter!(
            "nearbytix_stripe_requests_total",
            "calls to Stripe, by operation and result (ok, client_error, server_error, timeout, unreachable)"
        );
        describe_histogram!(
            "nearbytix_stripe_request_duration_seconds",
            "how long a call to Stripe took, by operation"
        );
        describe_counter!(
            "nearbytix_payment_outcomes_total",
            "payments ended, by outcome (succeeded, failed, late_paid: paid after the hold \
             ended, late_refunded: refunded for want of seats, refunded: an organiser's refund, \
             extra_refunded: a payment the order does not keep)"
        );
        describe_counter!(
            "nearbytix_payments_started_total",
            "payments started, by provider (stripe: an intent made; none: paid at once)"
        );
        describe_gauge!(
            "nearbytix_payments_pending",
            "Stripe intents open now (set by each reconciler run)"
        );
        describe_counter!(
            "nearbytix_stripe_webhooks_total",
            "Stripe webhooks received, by event type and outcome (applied, duplicate, ignored, \
             bad_signature, malformed, unavailable)"
        );
        describe_counter!(
            "nearbytix_payment_reconciled_total",
            "intents and refunds the reconciler settled, by result"
        );
        describe_counter!(
            "nearbytix_checkins_total",
            "scans judged (redeemed, or uploaded), by result (ok, forced, refused) and reason \
             (none, or the reason refused or overridden)"
        );
        describe_counter!(
            "nearbytix_sold_out_total",
            "orders refused for want of seats"
        );
        describe_counter!(
            "nearbytix_order_refusals_from_memory_total",
            "orders refused from a remembered sold-out sale, without the database"
        );
        describe_counter!(
            "nearbytix_search_answers_total",
            "searches answered, by source: memory (the read model) or database"
        );
        describe_counter!(
            "nearbytix_tickets_expired_total",
            "tickets expired by the sweeper"
        );
        describe_counter!(
            "nearbytix_load_shed_total",
            "expensive reads refused as overload"
        );
        describe_counter!("nearbytix_sweeper_errors_total", "sweeps that failed");
        describe_gauge!(
            "nearbytix_db_pool_connections",
            "pooled database connections"
        );
        describe_gauge!(
            "nearbytix_db_pool_idle_connections",
            "idle pooled database connections"
        );
        describe_counter!(
            "http_requests_total",
            "answered requests by method, route and status"
        );
        describe_histogram!(
            "http_request_duration_seconds",
            "request latency by method and route"
        );
    });
}

pub fn render() -> String {
    handle().render()
}
