//! Ticket writes, each honouring `Idempotency-Key`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::response::TicketResponse;
use crate::api::current_user::BearerUserId;
use crate::api::error::ApiError;
use crate::api::extract::{Input, OwnerCommand, ValidJson, action_segment};
use crate::api::idempotency::{self, IdempotencyKey, KeyTaking, json_answer};
use crate::api::schemas::ErrorBody;
use crate::api::schemas::shared::{
    EventNotFound, Invalid, NotJson, NotYourTicket, RateLimited, TicketNotFound, TicketPath,
    Unauthenticated,
};
use crate::api::state::AppState;
use crate::domain::{PaymentProvider, Violations, WriteOutcome};
use crate::store::{KeyUse, OrderAction};

#[derive(Deserialize, ToSchema)]
pub struct ReserveRequest {
    event_id: Uuid,
    /// The tier to buy from; without it, the first tier (by position) on sale with seats.
    #[serde(default)]
    tier_id: Option<Uuid>,
}

impl Input for ReserveRequest {
    type Valid = (Uuid, Option<Uuid>);

    fn validate(self) -> Result<(Uuid, Option<Uuid>), Violations> {
        Ok((self.event_id, self.tier_id))
    }
}

/// Reserve one ticket (an order of one), held for `TICKET_EXPIRATION_TIME` seconds until paid.
#[utoipa::path(
    post, path = "/tickets/", tag = "tickets",
    security(("bearer" = [])), request_body = ReserveRequest, params(IdempotencyKey),
    responses(
        (status = 201, description = "Reserved", body = TicketResponse),
        (status = 409, description = "Sold out, the tier's sales window closed, the per-person limit reached, the event already started, or a request with this Idempotency-Key is still running", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, RateLimited,
    )
)]
pub async fn reserve_ticket(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    headers: HeaderMap,
    ValidJson((event_id, tier_id)): ValidJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    state.user_limits.reserve(user_id, 1)?;
    let orders = &state.orders;
    let reserve = |key: Option<KeyUse>| async move {
        let order = orders
            .reserve_ticket(user_id, event_id, tier_id, key.as_ref())
            .await?;
        Ok(WriteOutcome::Order(Box::new(order)))
    };
    let fingerprint = match tier_id {
        None => format!("POST /tickets/ {event_id}"),
        Some(tier_id) => format!("POST /tickets/ {event_id} {tier_id}"),
    };
    let answer = ticket_answer(StatusCode::CREATED, state.orders.provider());
    let (keys, taking) = (&state.idempotency, KeyTaking::InTheWrite);
    idempotency::run(
        keys,
        user_id,
        &headers,
        &fingerprint,
        taking,
        reserve,
        answer,
    )
    .await
}

/// Pay for a reserved ticket (owner only) before its hold expires.
#[utoipa::path(
    post, path = "/tickets/{ticket_id}/pay", tag = "tickets",
    security(("bearer" = [])), params(TicketPath, IdempotencyKey),
    responses(
        (status = 200, description = "Paid (with PAYMENT_PROVIDER=stripe: free, or Stripe says the payment succeeded)", body = TicketResponse),
        (status = 202, description = "PAYMENT_PROVIDER=stripe: a payment started or goes on; confirm it with `payment.client_secret`", body = TicketResponse),
        (status = 409, description = "Not reserved (already paid or cancelled), one ticket of a larger order, or Stripe refused to start the payment", body = ErrorBody),
        (status = 410, description = "The hold expired", body = ErrorBody),
        (status = 503, description = "Stripe unreachable; nothing changed (Retry-After)", body = ErrorBody),
        Unauthenticated, Invalid, TicketNotFound, NotYourTicket, RateLimited,
    )
)]
pub async fn pay_ticket(command: OwnerCommand) -> Result<Response, ApiError> {
    change_ticket(command, OrderAction::Pay).await
}

/// Cancel a reserved ticket (owner only); its seat goes back on sale at once.
#[utoipa::path(
    post, path = "/tickets/{ticket_id}/cancel", tag = "tickets",
    security(("bearer" = [])), params(TicketPath, IdempotencyKey),
    responses(
        (status = 200, description = "Cancelled", body = TicketResponse),
        (status = 409, description = "Not reserved (paid, expired or cancelled), or one ticket of a larger order", body = ErrorBody),
        Unauthenticated, Invalid, TicketNotFound, NotYourTicket,
    )
)]
pub async fn cancel_ticket(command: OwnerCommand) -> Result<Response, ApiError> {
    change_ticket(command, OrderAction::Cancel).await
}

/// How a ticket write answers, live and on replay: `success` with the ticket of the order of
/// one the write placed or changed, as the write left it, shown as of the write's own time.
fn ticket_answer(
    success: StatusCode,
    provider: PaymentProvider,
) -> impl Fn(&WriteOutcome) -> Result<Response, ApiError> {
    move |outcome| {
        let (order, started) = match outcome {
            WriteOutcome::Order(order) => (order, None),
            WriteOutcome::PaymentStarted {
                order,
                client_secret,
            } => (order, Some(client_secret)),
            other => return Err(idempotency::not_this_write(other)),
        };
        let Some(ticket) = order.tickets.first() else {
            let error = anyhow::anyhow!("an order of one ticket holds none");
            return Err(ApiError::Internal(error));
        };
        let at = order.order.updated_at;
        let shown = TicketResponse::new(ticket.clone(), &order.order, at, provider);
        match started {
            None => json_answer(success, &shown),
            Some(secret) => json_answer(StatusCode::ACCEPTED, &shown.with_client_secret(secret)),
        }
    }
}

/// Pays or cancels the ticket in the path (through its order of one), honouring
/// `Idempotency-Key`.
async fn change_ticket(command: OwnerCommand, action: OrderAction) -> Result<Response, ApiError> {
    let OwnerCommand {
        state,
        user_id,
        id: ticket_id,
        headers,
    } = command;
    let (orders, limits) = (&state.orders, &state.user_limits);
    // Not for a replay: the limit is on pays done (each may call the payment provider).
    let apply = |key: Option<KeyUse>| async move {
        if action == OrderAction::Pay {
            limits.pay(user_id)?;
        }
        let key = key.as_ref().map(KeyUse::held);
        orders.change_ticket(user_id, ticket_id, action, key).await
    };
    let fingerprint = format!("POST /tickets/{ticket_id}/{}", action_segment(action));
    let answer = ticket_answer(StatusCode::OK, state.orders.provider());
    let (keys, taking) = (&state.idempotency, KeyTaking::Before);
    idempotency::run(keys, user_id, &headers, &fingerprint, taking, apply, answer).await
}
