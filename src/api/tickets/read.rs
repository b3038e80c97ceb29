//! The caller's tickets.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::response::{MyTicketItem, MyTicketsResponse, TicketResponse};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::{Input, PathId, ValidQuery};
use crate::api::query::ListingPaging;
use crate::api::schemas::PageInfo;
use crate::api::schemas::shared::{
    Invalid, NotYourTicket, TicketNotFound, TicketPath, Unauthenticated,
};
use crate::domain::{TicketStatus, ViolationKind, Violations};
use crate::service::Tickets;

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
    State(tickets): State<Arc<Tickets>>,
    CurrentUser(user): CurrentUser,
    PathId(ticket_id): PathId,
) -> Result<Json<TicketResponse>, ApiError> {
    let details = tickets.get(user.id, ticket_id).await?;
    Ok(Json(TicketResponse::new(details, Utc::now())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyTicketsQuery {
    #[serde(default)]
    #[param(schema_with = status_filter)]
    status: Option<String>,
}

/// A ticket status, or empty (what the web client sends for "all").
fn status_filter() -> Object {
    let statuses = [
        TicketStatus::Reserved,
        TicketStatus::Paid,
        TicketStatus::Expired,
        TicketStatus::Cancelled,
    ];
    let names = statuses.map(TicketStatus::as_str);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Effective status to keep: reserved, paid, expired or cancelled; empty keeps all.",
        ))
        .enum_values(Some(std::iter::once("").chain(names)))
        .build()
}

impl Input for MyTicketsQuery {
    type Valid = Option<TicketStatus>;

    fn validate(self) -> Result<Option<TicketStatus>, Violations> {
        let mut violations = Violations::new();
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(raw) => {
                let status = TicketStatus::parse(&raw.to_ascii_lowercase());
                if status.is_none() {
                    violations.push_kind(
                        &["status"],
                        "Input should be 'reserved', 'paid', 'expired' or 'cancelled'",
                        ViolationKind::Choice,
                    );
                }
                status.map(Some)
            }
        };
        violations.finish(|| status)
    }
}

/// The caller's tickets, newest first.
#[utoipa::path(
    get, path = "/tickets/my-tickets", tag = "tickets",
    security(("bearer" = [])), params(MyTicketsQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of tickets", body = MyTicketsResponse),
        Unauthenticated, Invalid,
    )
)]
pub async fn my_tickets(
    State(tickets): State<Arc<Tickets>>,
    CurrentUser(user): CurrentUser,
    ValidQuery(status): ValidQuery<MyTicketsQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<MyTicketsResponse>, ApiError> {
    let found = tickets.of_user(user.id, status, page).await?;
    let now = Utc::now();
    let (tickets, page) = PageInfo::split(found, page, |ticket| MyTicketItem::new(ticket, now));
    Ok(Json(MyTicketsResponse { tickets, page }))
}
