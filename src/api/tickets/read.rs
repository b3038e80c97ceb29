//! The caller's tickets.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use super::response::{MyTicketItem, MyTicketsResponse, TicketResponse};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::{PathId, ValidQuery};
use crate::api::query::{ListingPaging, StatusQuery};
use crate::api::schemas::PageInfo;
use crate::api::schemas::shared::{
    Invalid, NotYourTicket, TicketNotFound, TicketPath, Unauthenticated,
};
use crate::service::Orders;

/// One of the caller's tickets.
#[utoipa::path(
    get, path = "/tickets/{ticket_id}", tag = "tickets",
    security(("bearer" = [])), params(TicketPath),
    responses(
        (status = 200, description = "The ticket", body = TicketResponse),
        Unauthenticated, Invalid, TicketNotFound, NotYourTicket,
    )
)]
pub async fn get_ticket(
    State(orders): State<Arc<Orders>>,
    CurrentUser(user): CurrentUser,
    PathId(ticket_id): PathId,
) -> Result<Json<TicketResponse>, ApiError> {
    let (details, order) = orders.ticket(user.id, ticket_id).await?;
    let provider = orders.provider();
    Ok(Json(TicketResponse::new(
        details,
        &order,
        Utc::now(),
        provider,
    )))
}

/// The caller's tickets, newest first.
#[utoipa::path(
    get, path = "/tickets/my-tickets", tag = "tickets",
    security(("bearer" = [])), params(StatusQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of tickets", body = MyTicketsResponse),
        Unauthenticated, Invalid,
    )
)]
pub async fn my_tickets(
    State(orders): State<Arc<Orders>>,
    CurrentUser(user): CurrentUser,
    ValidQuery(status): ValidQuery<StatusQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<MyTicketsResponse>, ApiError> {
    let found = orders.tickets_of_user(user.id, status, page).await?;
    let now = Utc::now();
    let (tickets, page) = PageInfo::split(found, page, |ticket| MyTicketItem::new(ticket, now));
    Ok(Json(MyTicketsResponse { tickets, page }))
}
