//! The application: shared state, router with middleware, and the server loop.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::rate_limit::AuthRateLimits;
use crate::api::{self, ApiDoc};
use crate::auth::{TokenKeys, resolve_jwt_secret};
use crate::config::Settings;
use crate::error::{ApiError, INTERNAL_ERROR_DETAIL, UNAVAILABLE_DETAIL, detail_response};
use crate::expiry;
use crate::store::{self, DynStore, StoreOptions};
use crate::telemetry;

pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub tokens: Arc<TokenKeys>,
    pub auth_limits: Arc<AuthRateLimits>,
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Opens (and migrates) the database and resolves the token secret.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        let store = store::connect(&StoreOptions {
            url: settings.database_url.clone(),
            max_connections: settings.database_max_connections,
            acquire_timeout: settings.acquire_timeout(),
        })
        .await?;
        Self::with_store(settings, store)
    }

    pub fn with_store(settings: Settings, store: DynStore) -> anyhow::Result<Self> {
        let secret = resolve_jwt_secret(
            settings.jwt_secret_key.as_ref(),
            store.backend(),
            store.database_file(),
        )?;
        let tokens = TokenKeys::new(&secret, settings.jwt_access_token_expire_minutes)?;
        let auth_limits = AuthRateLimits::new(
            NonZeroU32::new(settings.auth_rate_limit_per_ip).unwrap_or(NonZeroU32::MIN),
            NonZeroU32::new(settings.auth_rate_limit_per_email).unwrap_or(NonZeroU32::MIN),
        );
        Ok(Self {
            store,
            tokens: Arc::new(tokens),
            auth_limits: Arc::new(auth_limits),
            settings: Arc::new(settings),
        })
    }
}

/// The OpenAPI document of every route (also served at `/openapi.json`).
pub fn openapi(api_prefix: &str) -> utoipa::openapi::OpenApi {
    routes(api_prefix).split_for_parts().1
}

fn routes(api_prefix: &str) -> OpenApiRouter<AppState> {
    let api = api::router();
    let api = if api_prefix.is_empty() {
        api
    } else {
        OpenApiRouter::new().nest(api_prefix, api)
    };
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .merge(api::health::router())
}

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    telemetry::init_metrics();
    let (router, openapi) = routes(&state.settings.api_prefix).split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(middleware::from_fn(telemetry::track_http))
        .layer(middleware::from_fn(errors_as_json))
        .layer(cors(&state.settings))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.settings.request_timeout(),
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async {
            detail_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(middleware)
        .with_state(state)
}

fn cors(settings: &Settings) -> CorsLayer {
    let origins = settings.allowed_origins();
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .max_age(Duration::from_secs(600))
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "handler panicked");
    detail_response(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_DETAIL)
}

/// Error answers produced outside the handlers (timeouts, body limits, the router itself)
/// get the contract's `{"detail": …}` shape too.
async fn errors_as_json(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = match status {
        StatusCode::INTERNAL_SERVER_ERROR => INTERNAL_ERROR_DETAIL,
        StatusCode::SERVICE_UNAVAILABLE => UNAVAILABLE_DETAIL,
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        other => other.canonical_reason().unwrap_or("Error"),
    };
    let mut replacement = detail_response(status, detail);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    replacement
}

/// How the server ends: when `shutdown` resolves it stops accepting, finishes in-flight
/// requests, stops the sweeper between batches and closes the pools.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    run_sweeper: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = run_sweeper.then(|| {
        tokio::spawn(expiry::run(
            state.store.clone(),
            state.settings.sweep_interval(),
            state.settings.sweep_batch_size,
            stop_rx,
        ))
    });
    let store = state.store.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed");
    let _ = stop_tx.send(true);
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    store.close().await;
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}
