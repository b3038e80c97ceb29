//! What wraps every route: request ids and logs, metrics, CORS, time and body limits, panics,
//! and the contract's error shape for answers the handlers did not make.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::{INTERNAL_ERROR_DETAIL, UNAVAILABLE_DETAIL, detail_response};
use crate::config::Settings;

pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// `Retry-After` of a 503 or 429 that names no time of its own (the database away, a request
/// cut off by its time limit).
const RETRY_AFTER_SECONDS: u64 = 1;
const REQUEST_ID: &str = "x-request-id";

/// `router` with every layer applied.
pub fn wrap(router: Router, settings: &Settings) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let layers = ServiceBuilder::new()
        .layer(middleware::from_fn(drop_unsafe_request_id))
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(middleware::from_fn(track_http))
        .layer(middleware::from_fn(errors_as_json))
        .layer(cors(&settings.allowed_origins))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    router.layer(layers)
}

fn cors(origins: &[String]) -> CorsLayer {
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
            HeaderName::from_static("last-event-id"),
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
/// get the contract's `{"detail": …}` shape too, and every 429 and 503 says when to come back.
async fn errors_as_json(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
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

/// Longest client-chosen request id kept; longer or unusual ones are replaced.
const REQUEST_ID_MAX_CHARS: usize = 64;

/// A client's `x-request-id` goes into every log line of its request, so only short ids of
/// `[A-Za-z0-9._-]` are kept; anything else (log forging, huge values) gets a fresh id.
async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let safe = request.headers().get(REQUEST_ID).map(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= REQUEST_ID_MAX_CHARS
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if safe == Some(false) {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Counts requests and their latency by method, route template and status. Every label comes
/// from a closed set (known methods or `other`, route templates or `unmatched`), so no client
/// can grow the metrics without bound.
async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    // A matched path is one of the router's templates; an unmatched path is never a label.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
