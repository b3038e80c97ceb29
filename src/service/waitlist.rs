//! The waiting list (WAITLIST.md): joining, leaving, and what users and organisers see. The
//! offer step is the seat ledger's: it runs wherever seats come back, in the store.

use std::sync::Arc;

use uuid::Uuid;

use super::search::ReadModel;
use super::{Action, Availability, Resource, ServiceError};
use crate::config::WaitlistSettings;
use crate::domain::waitlist::{
    EntryEnd, EntryEnded, JoinLimits, JoinRefusal, JoinRequest, Joined, WaitlistEntry,
};
use crate::domain::{Violations, WriteOutcome};
use crate::store::{DynStore, HeldKey, Page, StoreError, WaitlistFilter};

pub struct Waitlist {
    store: DynStore,
    search: Arc<ReadModel>,
    /// Told of each join and end before its answer: the line's count is in the event's
    /// availability.
    availability: Arc<Availability>,
    settings: WaitlistSettings,
    max_tickets_per_order: i32,
}

impl Waitlist {
    pub fn new(
        store: DynStore,
        search: Arc<ReadModel>,
        availability: Arc<Availability>,
        settings: WaitlistSettings,
        max_tickets_per_order: i32,
    ) -> Self {
        Self {
            store,
            search,
            availability,
            settings,
            max_tickets_per_order,
        }
    }

    /// Puts the caller in the event's line (WAITLIST.md § Join rules); with a `key`, the entry
    /// is recorded on it in the same transaction.
    pub async fn join(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        tier_id: Option<Uuid>,
        quantity: Option<i64>,
        key: Option<&HeldKey>,
    ) -> Result<WriteOutcome, ServiceError> {
        let request = JoinRequest::parse(tier_id, quantity, self.max_tickets_per_order)?;
        let limits = JoinLimits {
            waiting_per_event: i64::from(self.settings.max_waiting_per_event),
            active_per_user: i64::from(self.settings.max_active_per_user),
        };
        let offer_seconds = i64::try_from(self.settings.offer.as_secs()).unwrap_or(i64::MAX);
        let joined = self
            .store
            .join_waitlist(event_id, user_id, request, limits, offer_seconds, key)
            .await;
        let joined = match joined {
            // The event row was read, so the missing reference is the token's user.
            Err(StoreError::ForeignKeyViolation) => return Err(ServiceError::InvalidToken),
            other => other?,
        };
        match joined {
            Joined::Joined(entry) => {
                self.availability.touched(event_id);
                Ok(WriteOutcome::WaitlistJoined(entry))
            }
            Joined::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            Joined::Refused(refusal) => Err(refused(refusal)),
        }
    }

    /// An entry, for its user or its event's creator.
    pub async fn entry(
        &self,
        user_id: Uuid,
        entry_id: Uuid,
    ) -> Result<WaitlistEntry, ServiceError> {
        match self.store.waitlist_entry(entry_id).await? {
            None => Err(ServiceError::NotFound(Resource::WaitlistEntry, entry_id)),
            Some((creator, entry)) if entry.user_id == user_id || creator == user_id => Ok(entry),
            Some(_) => Err(ServiceError::NotOwner(Action::ViewWaitlistEntry)),
        }
    }

    /// The caller's entries, newest first.
    pub async fn mine(
        &self,
        user_id: Uuid,
        filter: &WaitlistFilter,
    ) -> Result<Page<WaitlistEntry>, ServiceError> {
        Ok(self.store.user_waitlist(user_id, filter).await?)
    }

    /// An event's entries in join order, for its creator.
    pub async fn of_event(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        filter: &WaitlistFilter,
    ) -> Result<Page<WaitlistEntry>, ServiceError> {
        match self.store.event_waitlist(event_id, filter).await? {
            None => Err(ServiceError::NotFound(Resource::Event, event_id)),
            Some((creator, _)) if creator != user_id => {
                Err(ServiceError::NotOwner(Action::ManageWaitlist))
            }
            Some((_, page)) => Ok(page),
        }
    }

    /// The caller leaves the line (or declines the offer).
    pub async fn leave(
        &self,
        user_id: Uuid,
        entry_id: Uuid,
    ) -> Result<WaitlistEntry, ServiceError> {
        let ended = self
            .store
            .end_entry(entry_id, EntryEnd::Leave { user_id })
            .await?;
        self.ended(ended, entry_id, Action::LeaveWaitlist).await
    }

    /// The event's creator removes an entry.
    pub async fn remove(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        entry_id: Uuid,
    ) -> Result<WaitlistEntry, ServiceError> {
        let end = EntryEnd::Remove {
            event_id,
            creator_id: user_id,
        };
        let ended = self.store.end_entry(entry_id, end).await?;
        self.ended(ended, entry_id, Action::ManageWaitlist).await
    }

    async fn ended(
        &self,
        ended: EntryEnded,
        entry_id: Uuid,
        not_yours: Action,
    ) -> Result<WaitlistEntry, ServiceError> {
        match ended {
            EntryEnded::Ended(entry) => {
                self.availability.touched(entry.event_id);
                // A declined offer's seats may be on public sale: the next search shows them.
                if entry.offer.is_some() {
                    self.search.catch_up().await;
                }
                Ok(*entry)
            }
            EntryEnded::NotFound => Err(ServiceError::NotFound(Resource::WaitlistEntry, entry_id)),
            EntryEnded::Forbidden => Err(ServiceError::NotOwner(not_yours)),
            EntryEnded::Final(status) => Err(ServiceError::EntryFinal(status)),
            EntryEnded::PaymentPending => Err(ServiceError::PaymentProcessing),
        }
    }
}

/// A refused join as the service answers it: rule 3 at the field, the others a conflict.
fn refused(refusal: JoinRefusal) -> ServiceError {
    let at = match refusal {
        JoinRefusal::UnknownTier => Some("tier_id"),
        JoinRefusal::OverTierLimit { .. } => Some("quantity"),
        _ => None,
    };
    match at {
        Some(field) => {
            let mut violations = Violations::new();
            violations.push(&[field], refusal.detail());
            ServiceError::Invalid(violations)
        }
        None => ServiceError::WaitlistRefused(refusal.detail()),
    }
}
