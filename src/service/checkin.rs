//! Check-in (CHECKIN.md): the signed codes of paid tickets, and the keys that verify them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Action, Resource, ServiceError};
use crate::checkin::code::TicketCode;
use crate::checkin::keys::{ListedKey, TicketKeys};
use crate::domain::{ReissuedCode, TicketStatus, WriteOutcome};
use crate::store::{CodeReissue, DynStore, HeldKey};

pub struct Checkin {
    store: DynStore,
    keys: Arc<TicketKeys>,
    /// Reissues of one ticket's code in 24 h (`CHECKIN_REISSUES_PER_DAY`).
    reissues_per_day: u32,
}

/// A ticket's code and its text.
pub struct IssuedCode {
    pub code: TicketCode,
    pub text: String,
}

impl Checkin {
    pub fn new(store: DynStore, keys: Arc<TicketKeys>, reissues_per_day: u32) -> Self {
        Self {
            store,
            keys,
            reissues_per_day,
        }
    }

    /// Every key a code may be signed with; one signs new codes.
    pub fn keys(&self) -> Vec<ListedKey> {
        self.keys.listed()
    }

    /// The code of the caller's ticket, signed with the signing key, with its current serial:
    /// only a ticket paid at `now` has one.
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
        let serial = self
            .store
            .ticket_code_serial(ticket_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Ticket, ticket_id))?;
        Ok(self.issue(ReissuedCode {
            ticket_id,
            event_id: details.ticket.event_id,
            tier_id: details.tier.id,
            serial: u32::try_from(serial).unwrap_or(u32::MAX),
            key_id: self.keys.signing().0,
        }))
    }

    /// `named` signed with its key, or with the signing key if its key is no longer kept.
    pub fn issue(&self, named: ReissuedCode) -> IssuedCode {
        let (key_id, key) = self
            .keys
            .key(named.key_id)
            .unwrap_or_else(|| self.keys.signing());
        let code = TicketCode {
            key_id,
            ticket_id: named.ticket_id,
            event_id: named.event_id,
            tier_id: named.tier_id,
            serial: named.serial,
        };
        IssuedCode {
            text: code.sign(key),
            code,
        }
    }

    /// Gives the caller's paid ticket a new code: its serial goes up by one and every lower one
    /// is revoked at once, at most `CHECKIN_REISSUES_PER_DAY` times in 24 h. With a `key`, the
    /// reissue is recorded on it in the same transaction.
    pub async fn reissue(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<WriteOutcome, ServiceError> {
        let per_day = i64::from(self.reissues_per_day);
        let signing_key = self.keys.signing().0;
        let reissue = self
            .store
            .reissue_code(ticket_id, user_id, per_day, signing_key, key);
        match reissue.await? {
            CodeReissue::Done(reissued) => Ok(WriteOutcome::CodeReissued(reissued)),
            CodeReissue::NotFound => Err(ServiceError::NotFound(Resource::Ticket, ticket_id)),
            CodeReissue::NotOwner => Err(ServiceError::NotOwner(Action::ViewTicketCode)),
            CodeReissue::NotPaid => Err(ServiceError::TicketNotPaid),
            CodeReissue::TooMany { retry_after } => {
                Err(ServiceError::TooManyReissues { retry_after })
            }
        }
    }
}
