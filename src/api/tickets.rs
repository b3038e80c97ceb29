//! Reservations, payment, cancellation and the caller's tickets.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::events::paging;
use super::extract::{Input, PathId, ValidJson, ValidQuery};
use super::idempotency::{self, IdempotencyKey};
use super::schemas::{ErrorBody, ValidationErrorBody};
use crate::app::AppState;
use crate::auth::{BearerUserId, CurrentUser};
use crate::domain::{EventSummary, FieldError, TicketDetails, TicketStatus, Violations};
use crate::error::ApiError;
use crate::service::tickets as service;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reserve_ticket))
        .route("/tickets", post(reserve_ticket))
        .routes(routes!(my_tickets))
        .routes(routes!(get_ticket))
        .routes(routes!(pay_ticket))
        .routes(routes!(cancel_ticket))
}

#[derive(Serialize, ToSchema)]
pub struct TicketUser {
    id: Uuid,
    name: String,
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct TicketEvent {
    id: Uuid,
    title: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    venue_name: String,
    city: String,
    state: String,
}

impl From<EventSummary> for TicketEvent {
    fn from(event: EventSummary) -> Self {
        Self {
            id: event.id,
            title: event.title,
            start_time: event.start_time,
            end_time: event.end_time,
            venue_name: event.venue_name,
            city: event.city,
            state: event.state,
        }
    }
}

/// A ticket; `status` is the effective one (a hold past its deadline reads `expired`).
#[derive(Serialize, ToSchema)]
pub struct TicketResponse {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    status: TicketStatus,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    user: TicketUser,
    event: TicketEvent,
    is_expired: bool,
    is_paid: bool,
    is_reserved: bool,
}

impl TicketResponse {
    pub fn new(details: TicketDetails, now: DateTime<Utc>) -> Self {
        let status = details.ticket.effective_status(now);
        Self {
            id: details.ticket.id,
            user_id: details.ticket.user_id,
            event_id: details.ticket.event_id,
            status,
            created_at: details.ticket.created_at,
            expires_at: details.ticket.expires_at,
            paid_at: details.ticket.paid_at,
            updated_at: details.ticket.updated_at,
            user: TicketUser {
                id: details.user.id,
                name: details.user.name,
                email: details.user.email,
            },
            event: details.event.into(),
            is_expired: status == TicketStatus::Expired,
            is_paid: status == TicketStatus::Paid,
            is_reserved: status == TicketStatus::Reserved,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ReserveRequest {
    event_id: Uuid,
}

impl Input for ReserveRequest {
    type Valid = Uuid;

    fn validate(self) -> Result<Uuid, Vec<FieldError>> {
        Ok(self.event_id)
    }
}

/// Reserve one ticket, held for `TICKET_EXPIRATION_TIME` seconds until paid.
#[utoipa::path(
    post,
    path = "/tickets/",
    tag = "tickets",
    security(("bearer" = [])),
    request_body = ReserveRequest,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Reserved", body = TicketResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 409, description = "Sold out, or the event already started", body = ErrorBody),
        (status = 422, description = "Invalid input, or Idempotency-Key reused with another body", body = ValidationErrorBody),
    )
)]
async fn reserve_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    headers: HeaderMap,
    ValidJson(event_id): ValidJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/ {event_id}");
    idempotency::run(&state, user_id, &headers, &fingerprint, || async {
        let details = service::reserve(&state, user_id, event_id).await?;
        Ok((
            StatusCode::CREATED,
            Json(TicketResponse::new(details, Utc::now())),
        )
            .into_response())
    })
    .await
}

/// Pay for a reserved ticket (owner only) before its hold expires.
#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/pay",
    tag = "tickets",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "Ticket id"), IdempotencyKey),
    responses(
        (status = 200, description = "Paid", body = TicketResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not your ticket", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "Not reserved (already paid or cancelled)", body = ErrorBody),
        (status = 410, description = "The hold expired", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationErrorBody),
    )
)]
async fn pay_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(ticket_id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/{ticket_id}/pay");
    idempotency::run(&state, user_id, &headers, &fingerprint, || async {
        let details = service::pay(&state, user_id, ticket_id).await?;
        Ok(Json(TicketResponse::new(details, Utc::now())).into_response())
    })
    .await
}

/// Cancel a reserved ticket (owner only); its seat goes back on sale at once.
#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/cancel",
    tag = "tickets",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "Ticket id"), IdempotencyKey),
    responses(
        (status = 200, description = "Cancelled", body = TicketResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not your ticket", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "Not reserved (paid, expired or cancelled)", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationErrorBody),
    )
)]
async fn cancel_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(ticket_id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/{ticket_id}/cancel");
    idempotency::run(&state, user_id, &headers, &fingerprint, || async {
        let details = service::cancel(&state, user_id, ticket_id).await?;
        Ok(Json(TicketResponse::new(details, Utc::now())).into_response())
    })
    .await
}

/// One of the caller's tickets.
#[utoipa::path(
    get,
    path = "/tickets/{ticket_id}",
    tag = "tickets",
    security(("bearer" = [])),
    params(("ticket_id" = Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket", body = TicketResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not your ticket", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationErrorBody),
    )
)]
async fn get_ticket(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(ticket_id): PathId,
) -> Result<Json<TicketResponse>, ApiError> {
    let details = service::get(&state, user.id, ticket_id).await?;
    Ok(Json(TicketResponse::new(details, Utc::now())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MyTicketsQuery {
    /// Effective status to keep: reserved, paid, expired or cancelled.
    #[serde(default)]
    #[param(value_type = Option<TicketStatus>)]
    status: Option<String>,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size, 1–1000.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

pub struct MyTicketsFilter {
    pub status: Option<TicketStatus>,
    pub skip: i64,
    pub limit: i64,
}

impl Input for MyTicketsQuery {
    type Valid = MyTicketsFilter;

    fn validate(self) -> Result<MyTicketsFilter, Vec<FieldError>> {
        let mut violations = Violations::new();
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => {
                let status = TicketStatus::parse(&raw.to_ascii_lowercase());
                if status.is_none() {
                    violations.push_kind(
                        &["query", "status"],
                        "Input should be 'reserved', 'paid', 'expired' or 'cancelled'",
                        "enum",
                    );
                }
                status
            }
        };
        let (skip, limit) = paging(&mut violations, self.skip, self.limit, 100, 1000);
        violations.finish(|| MyTicketsFilter {
            status,
            skip,
            limit,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct MyTicketItem {
    id: Uuid,
    event_id: Uuid,
    status: TicketStatus,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    event_title: String,
    event_start_time: DateTime<Utc>,
    event: TicketEvent,
}

#[derive(Serialize, ToSchema)]
pub struct MyTicketsResponse {
    tickets: Vec<MyTicketItem>,
    /// All of the caller's tickets matching the filter.
    total: i64,
    skip: i64,
    limit: i64,
}

/// The caller's tickets, newest first.
#[utoipa::path(
    get,
    path = "/tickets/my-tickets",
    tag = "tickets",
    security(("bearer" = [])),
    params(MyTicketsQuery),
    responses(
        (status = 200, description = "A page of tickets", body = MyTicketsResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid query", body = ValidationErrorBody),
    )
)]
async fn my_tickets(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidQuery(filter): ValidQuery<MyTicketsQuery>,
) -> Result<Json<MyTicketsResponse>, ApiError> {
    let page = state
        .store
        .user_tickets(user.id, filter.status, filter.skip, filter.limit)
        .await?;
    let now = Utc::now();
    let tickets = page
        .items
        .into_iter()
        .map(|details| MyTicketItem {
            id: details.ticket.id,
            event_id: details.ticket.event_id,
            status: details.ticket.effective_status(now),
            created_at: details.ticket.created_at,
            expires_at: details.ticket.expires_at,
            paid_at: details.ticket.paid_at,
            event_title: details.event.title.clone(),
            event_start_time: details.event.start_time,
            event: details.event.into(),
        })
        .collect();
    Ok(Json(MyTicketsResponse {
        tickets,
        total: page.total,
        skip: filter.skip,
        limit: filter.limit,
    }))
}
