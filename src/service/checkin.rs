//! Check-in (CHECKIN.md): the signed codes of paid tickets, and the keys that verify them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Action, Resource, ServiceError};
use crate::checkin::code::TicketCode;
use crate::checkin::keys::{ListedKey, TicketKeys};
use crate::domain::checkin_list::tier_path;
use crate::domain::{
    CheckinList, ListChanged, ListCreated, ListDeleted, ListDraft, ListFields, ListPatch,
    ReissuedCode, TicketStatus, Violations, WriteOutcome,
};
use crate::store::{CodeReissue, DynStore, HeldKey};

pub struct Checkin {
    store: DynStore,
    keys: Arc<TicketKeys>,
    /// Reissues of one ticket's code in 24 h (`CHECKIN_REISSUES_PER_DAY`).
    reissues_per_day: u32,
    /// Lists one event may have (`CHECKIN_LISTS_PER_EVENT`).
    lists_per_event: u32,
}

/// A ticket's code and its text.
pub struct IssuedCode {
    pub code: TicketCode,
    pub text: String,
}

impl Checkin {
    pub fn new(
        store: DynStore,
        keys: Arc<TicketKeys>,
        reissues_per_day: u32,
        lists_per_event: u32,
    ) -> Self {
        Self {
            store,
            keys,
            reissues_per_day,
            lists_per_event,
        }
    }

    /// Adds a check-in list to an event of the caller's; with a `key`, the list is recorded on
    /// it in the same transaction.
    pub async fn create_list(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        fields: ListFields,
        key: Option<&HeldKey>,
    ) -> Result<WriteOutcome, ServiceError> {
        let draft = ListDraft::parse(fields)?;
        let max = i64::from(self.lists_per_event);
        let created = self
            .store
            .create_checkin_list(event_id, user_id, &draft, max, key)
            .await?;
        match created {
            ListCreated::Created(list) => Ok(WriteOutcome::ListCreated(list)),
            ListCreated::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            ListCreated::NotCreator => Err(ServiceError::NotOwner(Action::ManageCheckin)),
            ListCreated::TooMany => Err(ServiceError::TooManyLists(self.lists_per_event)),
            ListCreated::UnknownTier(index) => Err(unknown_tier(index)),
        }
    }

    /// The check-in lists of an event of the caller's, oldest first.
    pub async fn lists(
        &self,
        user_id: Uuid,
        event_id: Uuid,
    ) -> Result<Vec<CheckinList>, ServiceError> {
        match self.store.checkin_lists(event_id).await? {
            None => Err(ServiceError::NotFound(Resource::Event, event_id)),
            Some((creator, _)) if creator != user_id => {
                Err(ServiceError::NotOwner(Action::ManageCheckin))
            }
            Some((_, lists)) => Ok(lists),
        }
    }

    /// One check-in list of an event of the caller's.
    pub async fn list(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        list_id: Uuid,
    ) -> Result<CheckinList, ServiceError> {
        self.lists(user_id, event_id)
            .await?
            .into_iter()
            .find(|list| list.id == list_id)
            .ok_or(ServiceError::NotFound(Resource::CheckinList, list_id))
    }

    /// Changes a check-in list of an event of the caller's: the changed list must keep the
    /// create rules.
    pub async fn update_list(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        list_id: Uuid,
        patch: ListPatch,
    ) -> Result<CheckinList, ServiceError> {
        let list = self.list(user_id, event_id, list_id).await?;
        let draft = ListDraft::parse(patch.applied_to(&list))?;
        let changed = self
            .store
            .update_checkin_list(event_id, list_id, user_id, &draft)
            .await?;
        match changed {
            ListChanged::Changed(list) => Ok(*list),
            ListChanged::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            ListChanged::NotCreator => Err(ServiceError::NotOwner(Action::ManageCheckin)),
            ListChanged::ListNotFound => {
                Err(ServiceError::NotFound(Resource::CheckinList, list_id))
            }
            ListChanged::UnknownTier(index) => Err(unknown_tier(index)),
        }
    }

    /// Deletes a check-in list of an event of the caller's.
    pub async fn delete_list(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        list_id: Uuid,
    ) -> Result<(), ServiceError> {
        match self
            .store
            .delete_checkin_list(event_id, list_id, user_id)
            .await?
        {
            ListDeleted::Deleted => Ok(()),
            ListDeleted::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            ListDeleted::NotCreator => Err(ServiceError::NotOwner(Action::ManageCheckin)),
            ListDeleted::ListNotFound => {
                Err(ServiceError::NotFound(Resource::CheckinList, list_id))
            }
            ListDeleted::InUse => Err(ServiceError::ListInUse),
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

/// A list naming, as its `index`-th tier, one that is not the event's.
fn unknown_tier(index: usize) -> ServiceError {
    let mut violations = Violations::new();
    violations.push_at(tier_path(index), "is not a tier of this event");
    ServiceError::Invalid(violations)
}
