//! Ticket life cycle rules around the store's atomic operations.

use std::time::Duration;

use uuid::Uuid;

use super::{Action, Resource, ServiceError};
use crate::domain::{PageRequest, ReserveOutcome, TicketChange, TicketDetails, TicketStatus};
use crate::store::{DynStore, NewReservation, Page, StoreError, TicketFilter};
use crate::telemetry;

pub struct Tickets {
    store: DynStore,
    /// How long a reservation is held before it expires unpaid.
    hold: Duration,
}

impl Tickets {
    pub fn new(store: DynStore, hold: Duration) -> Self {
        Self { store, hold }
    }

    #[tracing::instrument(skip(self))]
    pub async fn reserve(
        &self,
        user_id: Uuid,
        event_id: Uuid,
    ) -> Result<TicketDetails, ServiceError> {
        let request = NewReservation {
            ticket_id: Uuid::now_v7(),
            user_id,
            event_id,
            hold: self.hold,
        };
        let outcome = match self.store.reserve_ticket(&request).await {
            // The event row was just updated, so the missing reference is the token's user.
            Err(StoreError::ForeignKeyViolation) => return Err(ServiceError::InvalidToken),
            other => other?,
        };
        match outcome {
            ReserveOutcome::Reserved(details) => {
                telemetry::reservation_made();
                Ok(*details)
            }
            ReserveOutcome::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            ReserveOutcome::EventStarted => Err(ServiceError::EventStarted),
            ReserveOutcome::SoldOut => {
                telemetry::sold_out_answered();
                Err(ServiceError::SoldOut)
            }
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn pay(&self, user_id: Uuid, ticket_id: Uuid) -> Result<TicketDetails, ServiceError> {
        match self.store.pay_ticket(ticket_id, user_id).await? {
            TicketChange::Expired => Err(ServiceError::HoldExpired),
            change => {
                self.changed(user_id, ticket_id, change, Action::PayTicket)
                    .await
            }
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn cancel(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<TicketDetails, ServiceError> {
        let change = self.store.cancel_ticket(ticket_id, user_id).await?;
        self.changed(user_id, ticket_id, change, Action::CancelTicket)
            .await
    }

    /// The answer to a pay or cancel. A refusal for a ticket that is not found or not the
    /// caller's first checks that the caller still exists (a deleted user's token is 401).
    async fn changed(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
        change: TicketChange,
        action: Action,
    ) -> Result<TicketDetails, ServiceError> {
        let refused_as_stranger = matches!(change, TicketChange::NotFound | TicketChange::NotOwner);
        if refused_as_stranger && !self.store.user_exists(user_id).await? {
            return Err(ServiceError::InvalidToken);
        }
        changed(ticket_id, change, action)
    }

    pub async fn get(&self, user_id: Uuid, ticket_id: Uuid) -> Result<TicketDetails, ServiceError> {
        let details = self
            .store
            .find_ticket(ticket_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Ticket, ticket_id))?;
        if details.ticket.user_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewTicket));
        }
        Ok(details)
    }

    /// The caller's tickets, newest first; `status` filters on the effective status.
    pub async fn of_user(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        page: PageRequest,
    ) -> Result<Page<TicketDetails>, ServiceError> {
        let filter = TicketFilter {
            user_id,
            status,
            page,
        };
        Ok(self.store.user_tickets(&filter).await?)
    }
}

fn changed(
    ticket_id: Uuid,
    change: TicketChange,
    action: Action,
) -> Result<TicketDetails, ServiceError> {
    match change {
        TicketChange::Done(details) => Ok(*details),
        TicketChange::NotFound => Err(ServiceError::NotFound(Resource::Ticket, ticket_id)),
        TicketChange::NotOwner => Err(ServiceError::NotOwner(action)),
        TicketChange::Expired => Err(ServiceError::NotReserved(TicketStatus::Expired)),
        TicketChange::NotReserved(status) => Err(ServiceError::NotReserved(status)),
    }
}
