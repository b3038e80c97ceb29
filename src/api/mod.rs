//! HTTP handlers, one module per resource. Handlers parse and validate input, call one
//! service function, and shape the answer. No SQL here.

pub mod auth;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod rate_limit;
pub mod recommendations;
pub mod schemas;
pub mod tickets;
pub mod users;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

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
        (name = "recommendations", description = "Events near the caller"),
        (name = "health", description = "Health, metrics and service information"),
    )
)]
pub struct ApiDoc;

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

/// The routes under `API_PREFIX`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(events::router())
        .merge(tickets::router())
        .merge(recommendations::router())
}
