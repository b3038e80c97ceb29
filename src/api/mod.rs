//! HTTP: routes, extractors, request and response types, the OpenAPI document, and the one
//! mapping from service errors and domain violations to status codes. Handlers parse input,
//! call the services they need (one, but for "for you": the caller's location, then the
//! search), and shape the answer; they never touch the store.

mod auth;
mod availability;
mod checkin;
mod checkin_lists;
pub mod current_user;
pub mod error;
mod events;
pub mod extract;
mod health;
mod idempotency;
mod middleware;
mod orders;
mod payment;
mod query;
pub mod rate_limit;
mod recommendations;
mod scanning;
mod schemas;
pub mod state;
mod tickets;
mod users;
mod waitlist;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use tower::Layer;
use tower::util::MapRequestLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
pub use error::ApiError;
use error::detail_response;
pub use middleware::BODY_LIMIT_BYTES;
pub use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "NearbyTix API",
        description = "Find events near you and buy tickets without ever being oversold.",
        license(name = "MIT")
    ),
    modifiers(&BearerScheme),
    components(schemas(schemas::ErrorBody, schemas::ValidationErrorBody)),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "users", description = "The caller's account"),
        (name = "events", description = "Events and nearby search"),
        (name = "tickets", description = "Reservations, payment and cancellation"),
        (name = "orders", description = "Several tickets over an event's tiers, all or nothing"),
        (name = "recommendations", description = "Events near the caller"),
        (name = "payments", description = "Stripe's webhook"),
        (name = "checkin", description = "Signed ticket codes and the keys that verify them"),
        (name = "availability", description = "Live availability: snapshots and Server-Sent Events streams"),
        (name = "health", description = "Health, metrics and service information"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route with its OpenAPI entry: the API under `api_prefix`, health and docs at the root,
/// and `/metrics` unless it has an address of its own.
fn routes(api_prefix: &str, with_metrics: bool) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(events::router())
        .merge(tickets::router())
        .merge(orders::router())
        .merge(checkin::router())
        .merge(checkin_lists::router())
        .merge(scanning::router())
        .merge(payment::router())
        .merge(waitlist::router())
        .merge(availability::router())
        .merge(recommendations::router());
    let api = if api_prefix.is_empty() {
        api
    } else {
        OpenApiRouter::new().nest(api_prefix, api)
    };
    let routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .merge(health::router());
    if with_metrics {
        routes.merge(health::metrics_router())
    } else {
        routes
    }
}

/// The routes and their OpenAPI document, with the rules the derived schemas cannot state.
fn routes_and_document(
    api_prefix: &str,
    with_metrics: bool,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = routes(api_prefix, with_metrics).split_for_parts();
    auth::require_coordinate_pairs(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document (also served at `/openapi.json`), with `/metrics` on the API's address.
pub fn openapi(api_prefix: &str) -> utoipa::openapi::OpenApi {
    routes_and_document(api_prefix, true).1
}

/// The complete HTTP application. Every path answers alike with and without a trailing slash
/// (the seed's framework redirected one form to the other, and its clients use both): the slash
/// is dropped before routing. The slashed collection paths of the published document
/// (`/events/`) are therefore served by their bare aliases (`/events`).
pub fn router(state: AppState, settings: &Settings) -> Router {
    let with_metrics = settings.metrics_addr.is_none();
    let (router, openapi) = routes_and_document(&settings.api_prefix, with_metrics);
    let router = router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .method_not_allowed_fallback(|| async {
            detail_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(state);
    let routed = middleware::wrap(router, settings);
    Router::new().fallback_service(MapRequestLayer::new(without_trailing_slash).layer(routed))
}

/// `request` with its path's trailing slash dropped; Swagger UI's own paths, which redirect
/// `/docs` to `/docs/`, stay as they are.
fn without_trailing_slash(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    if path.len() <= 1 || !path.ends_with('/') || path.starts_with("/docs") {
        return request;
    }
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    let path_and_query = match uri.query() {
        Some(query) => format!("{trimmed}?{query}"),
        None => trimmed.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// `/metrics` alone, for `METRICS_ADDR`.
pub fn metrics_router(state: AppState) -> Router {
    let (router, _) = health::metrics_router().split_for_parts();
    router
        .fallback(|| async { ApiError::NotFound("Not Found".into()) })
        .with_state(state)
}
