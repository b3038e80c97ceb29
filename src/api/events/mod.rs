//! Events: management by their creator, listings, and the public nearby search.

mod body;
mod create;
mod item;
mod list;
mod nearby;
mod response;
mod tiers;

use axum::routing::post;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

pub use response::{EventListItem, round_km};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_event, list::list_events))
        // Clients use the slashed collection path; the bare one works too.
        .route("/events", post(create::create_event).get(list::list_events))
        .routes(routes!(nearby::nearby_events))
        .routes(routes!(
            item::get_event,
            item::update_event,
            item::delete_event
        ))
        .routes(routes!(tiers::add_tier))
        .routes(routes!(tiers::update_tier, tiers::delete_tier))
        .routes(routes!(tiers::event_stats))
}
