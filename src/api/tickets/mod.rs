//! Reservations, payment, cancellation and the caller's tickets.

mod read;
mod response;
mod write;

pub use response::{TicketEvent, TicketStatusBody, TicketUser};

use axum::routing::post;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(write::reserve_ticket))
        .route("/tickets", post(write::reserve_ticket))
        .routes(routes!(read::my_tickets))
        .routes(routes!(read::get_ticket))
        .routes(routes!(write::pay_ticket))
        .routes(routes!(write::cancel_ticket))
}
