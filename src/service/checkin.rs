//! Check-in (CHECKIN.md): the signed codes of paid tickets, and the keys that verify them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Action, Resource, ServiceError};
use crate::checkin::code::TicketCode;
use crate::checkin::keys::{ListedKey, TicketKeys};
use crate::domain::TicketStatus;
use crate::store::DynStore;

pub struct Checkin {
    store: DynStore,
    keys: Arc<TicketKeys>,
}

/// A ticket's code and its text.
pub struct IssuedCode {
    pub code: TicketCode,
    pub text: String,
}

impl Checkin {
    pub fn new(store: DynStore, keys: Arc<TicketKeys>) -> Self {
        Self { store, keys }
    }

    /// Every key a code may be signed with; one signs new codes.
    pub fn keys(&self) -> Vec<ListedKey> {
        self.keys.listed()
    }

    /// The code of the caller's ticket, signed with the signing key: only a ticket paid at
    /// `now` has one. Serial 1: no code has been reissued yet.
    pub async fn code(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<IssuedCode, ServiceError> {
        let details = self
            .store
            .find_ticket(ticket_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Ticket, ticket_id))?;
        if details.ticket.user_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewTicketCode));
        }
        if details.ticket.effective_status(now) != TicketStatus::Paid {
            return Err(ServiceError::TicketNotPaid);
        }
        let (key_id, key) = self.keys.signing();
        let code = TicketCode {
            key_id,
            ticket_id,
            event_id: details.ticket.event_id,
            tier_id: details.tier.id,
            serial: 1,
        };
        Ok(IssuedCode {
            text: code.sign(key),
            code,
        })
    }
}
