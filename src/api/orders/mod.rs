//! Orders: several tickets over an event's tiers, bought all or nothing.

mod read;
mod response;
mod write;

use axum::routing::post;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(write::place_order))
        .route("/orders", post(write::place_order))
        .routes(routes!(read::my_orders))
        .routes(routes!(read::get_order))
        .routes(routes!(write::pay_order))
        .routes(routes!(write::cancel_order))
        .routes(routes!(write::refund_order))
}
