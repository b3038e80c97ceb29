//! Ticket life cycle rules around the store's atomic operations.

use uuid::Uuid;

use crate::app::AppState;
use crate::domain::{TicketDetails, TicketStatus};
use crate::error::ApiError;
use crate::store::{NewReservation, ReserveOutcome, StoreError, TicketChange};
use crate::telemetry;

fn ticket_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("Ticket with ID {id} not found"))
}

#[tracing::instrument(skip(state))]
pub async fn reserve(
    state: &AppState,
    user_id: Uuid,
    event_id: Uuid,
) -> Result<TicketDetails, ApiError> {
    let request = NewReservation {
        ticket_id: Uuid::now_v7(),
        user_id,
        event_id,
        hold: state.settings.ticket_hold(),
    };
    let outcome = match state.store.reserve_ticket(&request).await {
        // The event row was just updated, so the missing reference is the token's user.
        Err(StoreError::ForeignKeyViolation) => {
            return Err(ApiError::Unauthorized("Invalid authentication credentials"));
        }
        other => other?,
    };
    match outcome {
        ReserveOutcome::Reserved(details) => {
            telemetry::reservation_made();
            Ok(*details)
        }
        ReserveOutcome::EventNotFound => Err(ApiError::NotFound(format!(
            "Event with ID {event_id} not found"
        ))),
        ReserveOutcome::EventStarted => Err(ApiError::Conflict(
            "Event has already started; tickets are no longer on sale".into(),
        )),
        ReserveOutcome::SoldOut => {
            telemetry::sold_out_answered();
            Err(ApiError::Conflict("Event is sold out".into()))
        }
    }
}

fn change_result(id: Uuid, change: TicketChange, verb: &str) -> Result<TicketDetails, ApiError> {
    match change {
        TicketChange::Done(details) => Ok(*details),
        TicketChange::NotFound => Err(ticket_not_found(id)),
        TicketChange::NotOwner => Err(ApiError::Forbidden(format!(
            "You can only {verb} your own tickets"
        ))),
        TicketChange::Expired if verb == "pay for" => {
            Err(ApiError::Gone("Ticket reservation has expired".into()))
        }
        TicketChange::Expired => Err(ApiError::Conflict(
            "Ticket reservation has already expired".into(),
        )),
        TicketChange::NotReserved(TicketStatus::Paid) => {
            Err(ApiError::Conflict("Ticket is already paid".into()))
        }
        TicketChange::NotReserved(status) => Err(ApiError::Conflict(format!(
            "Ticket is {} and not reserved",
            status.as_str()
        ))),
    }
}

#[tracing::instrument(skip(state))]
pub async fn pay(
    state: &AppState,
    user_id: Uuid,
    ticket_id: Uuid,
) -> Result<TicketDetails, ApiError> {
    let change = state.store.pay_ticket(ticket_id, user_id).await?;
    change_result(ticket_id, change, "pay for")
}

#[tracing::instrument(skip(state))]
pub async fn cancel(
    state: &AppState,
    user_id: Uuid,
    ticket_id: Uuid,
) -> Result<TicketDetails, ApiError> {
    let change = state.store.cancel_ticket(ticket_id, user_id).await?;
    change_result(ticket_id, change, "cancel")
}

pub async fn get(
    state: &AppState,
    user_id: Uuid,
    ticket_id: Uuid,
) -> Result<TicketDetails, ApiError> {
    let details = state
        .store
        .find_ticket(ticket_id)
        .await?
        .ok_or_else(|| ticket_not_found(ticket_id))?;
    if details.ticket.user_id != user_id {
        return Err(ApiError::Forbidden(
            "You can only view your own tickets".into(),
        ));
    }
    Ok(details)
}
