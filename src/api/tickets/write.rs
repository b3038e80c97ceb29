//! Ticket writes, each honouring `Idempotency-Key`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::response::TicketResponse;
use crate::api::current_user::BearerUserId;
use crate::api::error::ApiError;
use crate::api::extract::{Input, PathId, ValidJson};
use crate::api::idempotency::{self, IdempotencyKey};
use crate::api::schemas::{ErrorBody, ValidationErrorBody};
use crate::api::state::AppState;
use crate::domain::Violations;

#[derive(Deserialize, ToSchema)]
pub struct ReserveRequest {
    event_id: Uuid,
}

impl Input for ReserveRequest {
    type Valid = Uuid;

    fn validate(self) -> Result<Uuid, Violations> {
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
        (status = 409, description = "Sold out, the event already started, or a request with this Idempotency-Key is still running", body = ErrorBody),
        (status = 415, description = "Not a JSON body", body = ErrorBody),
        (status = 422, description = "Invalid input, or Idempotency-Key reused with another body", body = ValidationErrorBody),
    )
)]
pub async fn reserve_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    headers: HeaderMap,
    ValidJson(event_id): ValidJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/ {event_id}");
    idempotency::run(
        &state.idempotency,
        user_id,
        &headers,
        &fingerprint,
        || async {
            let details = state.tickets.reserve(user_id, event_id).await?;
            let ticket = TicketResponse::new(details, Utc::now());
            Ok((StatusCode::CREATED, Json(ticket)).into_response())
        },
    )
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
        (status = 422, description = "Malformed id or Idempotency-Key", body = ValidationErrorBody),
    )
)]
pub async fn pay_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(ticket_id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/{ticket_id}/pay");
    idempotency::run(
        &state.idempotency,
        user_id,
        &headers,
        &fingerprint,
        || async {
            let details = state.tickets.pay(user_id, ticket_id).await?;
            Ok(Json(TicketResponse::new(details, Utc::now())).into_response())
        },
    )
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
        (status = 422, description = "Malformed id or Idempotency-Key", body = ValidationErrorBody),
    )
)]
pub async fn cancel_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(ticket_id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fingerprint = format!("POST /tickets/{ticket_id}/cancel");
    idempotency::run(
        &state.idempotency,
        user_id,
        &headers,
        &fingerprint,
        || async {
            let details = state.tickets.cancel(user_id, ticket_id).await?;
            Ok(Json(TicketResponse::new(details, Utc::now())).into_response())
        },
    )
    .await
}
