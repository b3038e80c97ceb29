//! Logs (tracing) and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::store::PoolStats;

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

/// Makes sure the recorder exists before the first metric is recorded.
pub fn init_metrics() {
    handle();
}

pub fn render() -> String {
    handle().render()
}

pub fn reservation_made() {
    metrics::counter!("nearbytix_reservations_total").increment(1);
}

pub fn sold_out_answered() {
    metrics::counter!("nearbytix_sold_out_total").increment(1);
}

/// An order refused from what the process remembers of a sold-out sale, without the database.
pub fn order_refused_from_memory() {
    metrics::counter!("nearbytix_order_refusals_from_memory_total").increment(1);
}

/// A search answered from the read model (`memory`) or, while it is not fresh, the database.
pub fn search_answered(source: &'static str) {
    metrics::counter!("nearbytix_search_answers_total", "source" => source).increment(1);
}

pub fn tickets_expired(count: u64) {
    metrics::counter!("nearbytix_tickets_expired_total").increment(count);
}

pub fn load_shed() {
    metrics::counter!("nearbytix_load_shed_total").increment(1);
}

pub fn sweeper_failed() {
    metrics::counter!("nearbytix_sweeper_errors_total").increment(1);
}

pub fn record_pool(stats: PoolStats) {
    metrics::gauge!("nearbytix_db_pool_connections").set(f64::from(stats.size));
    metrics::gauge!("nearbytix_db_pool_idle_connections").set(f64::from(stats.idle));
}

/// One answered request: counted and timed by method, route template and status.
pub fn http_request(method: &'static str, route: String, status: u16, took: Duration) {
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
}
