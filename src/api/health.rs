//! Liveness, readiness, the welcome document and Prometheus metrics (no prefix).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use crate::service::Health;
use crate::telemetry;

const APP_NAME: &str = "NearbyTix";
const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(root))
}

/// `/metrics`, on the API's address or on `METRICS_ADDR` of its own.
pub fn metrics_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealth {
    connected: bool,
    /// Whether the database takes writes (false on a full disk or a read-only file).
    writable: bool,
    #[schema(example = "healthy")]
    status: &'static str,
    #[schema(example = "sqlite")]
    backend: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "healthy")]
    status: &'static str,
    app_name: &'static str,
    version: &'static str,
    database: DatabaseHealth,
}

/// Readiness: healthy when the database answers a real round trip; 503 otherwise.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = HealthResponse),
        (status = 503, description = "The database does not answer", body = HealthResponse),
    )
)]
async fn health(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let database = health.database().await;
    let (status, word) = if database.answers && database.writable {
        (StatusCode::OK, "healthy")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    (
        status,
        Json(HealthResponse {
            status: word,
            app_name: APP_NAME,
            version: VERSION,
            database: DatabaseHealth {
                connected: database.answers,
                writable: database.writable,
                status: word,
                backend: health.backend().as_str(),
            },
        }),
    )
}

#[derive(Serialize, ToSchema)]
pub struct LivenessResponse {
    #[schema(example = "alive")]
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process serves HTTP, whatever the database does. Use it to decide restarts;
/// use `/health` (readiness: a real database round trip) to decide where to send traffic.
#[utoipa::path(
    get, path = "/health/live", tag = "health",
    responses(
        (status = 200, description = "The process is up", body = LivenessResponse),
    )
)]
async fn live() -> Json<LivenessResponse> {
    Json(LivenessResponse {
        status: "alive",
        version: VERSION,
    })
}

#[derive(Serialize, ToSchema)]
pub struct WelcomeResponse {
    #[schema(example = "Welcome to NearbyTix API")]
    message: &'static str,
    version: &'static str,
    #[schema(example = "/docs")]
    docs: &'static str,
}

/// Welcome document pointing at the API docs.
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, body = WelcomeResponse)))]
async fn root() -> Json<WelcomeResponse> {
    Json(WelcomeResponse {
        message: "Welcome to NearbyTix API",
        version: VERSION,
        docs: "/docs",
    })
}

/// Prometheus metrics: HTTP requests, reservations, sold-out answers, expired tickets, pool use.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
    )
)]
async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let pool = health.pool_stats();
    metrics::gauge!("nearbytix_db_pool_connections").set(f64::from(pool.size));
    metrics::gauge!("nearbytix_db_pool_idle_connections").set(f64::from(pool.idle));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
}
