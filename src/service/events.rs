//! Event management rules around the store.

use uuid::Uuid;

use std::sync::Arc;

use super::{Action, Availability, Bulkhead, Clock, ReadModel, Resource, ServiceError};
use crate::domain::{
    Event, EventChanges, EventDelete, EventDetails, EventDraft, EventFields, EventStats,
    EventUpdate, NewEvent, PageRequest, Tier, TierDraft, TierFields, TierOutcome, TierPatchFields,
};
use crate::store::{DynStore, EventFilter, Page, TierChange};

pub struct Events {
    store: DynStore,
    clock: Clock,
    expensive_reads: Arc<Bulkhead>,
    /// Told of each event write, so that the organiser's next search shows it.
    search: Arc<ReadModel>,
    /// Told of each event write before its answer, for the event's availability streams.
    availability: Arc<Availability>,
}

impl Events {
    pub fn new(
        store: DynStore,
        clock: Clock,
        expensive_reads: Arc<Bulkhead>,
        search: Arc<ReadModel>,
        availability: Arc<Availability>,
    ) -> Self {
        Self {
            store,
            clock,
            expensive_reads,
            search,
            availability,
        }
    }

    #[tracing::instrument(skip(self, fields))]
    pub async fn create(
        &self,
        creator_id: Uuid,
        fields: EventFields,
    ) -> Result<EventDetails, ServiceError> {
        let new_event = NewEvent::parse(fields, (self.clock)())?;
        let created = self.store.insert_event(creator_id, &new_event).await?;
        tracing::info!(event_id = %created.event.id, "event created");
        self.search.catch_up().await;
        Ok(created)
    }

    /// An event with its tiers.
    pub async fn get(&self, id: Uuid) -> Result<EventDetails, ServiceError> {
        self.store
            .find_event(id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Event, id))
    }

    pub async fn list(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> Result<Page<Event>, ServiceError> {
        let _running = self.expensive_reads.enter().await?;
        Ok(self.store.list_events(filter, page).await?)
    }

    #[tracing::instrument(skip(self, changes))]
    pub async fn update(
        &self,
        user_id: Uuid,
        id: Uuid,
        changes: EventChanges,
    ) -> Result<EventDetails, ServiceError> {
        let current = self.get(id).await?.event;
        if current.creator_id != user_id {
            return Err(ServiceError::NotOwner(Action::ModifyEvent));
        }
        let draft = EventDraft::merge(&current, changes, (self.clock)())?;
        // The store re-checks ownership and the sold count atomically; the read above only
        // chooses the right answer for the common cases.
        match self.store.update_event(id, user_id, &draft).await? {
            EventUpdate::Done(updated) => {
                self.availability.touched(id);
                self.search.catch_up().await;
                Ok(*updated)
            }
            EventUpdate::NotFound => Err(ServiceError::NotFound(Resource::Event, id)),
            EventUpdate::NotCreator => Err(ServiceError::NotOwner(Action::ModifyEvent)),
            EventUpdate::BelowSold => Err(ServiceError::TotalBelowSold),
            EventUpdate::CurrencyLocked => Err(ServiceError::CurrencyLocked),
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<(), ServiceError> {
        match self.store.delete_event(id, user_id).await? {
            EventDelete::Deleted => {
                tracing::info!(event_id = %id, "event deleted");
                self.availability.touched(id);
                self.search.catch_up().await;
                Ok(())
            }
            EventDelete::NotFound => Err(ServiceError::NotFound(Resource::Event, id)),
            EventDelete::NotCreator => Err(ServiceError::NotOwner(Action::DeleteEvent)),
            EventDelete::HasTickets => Err(ServiceError::EventHasTickets),
        }
    }

    /// Adds a tier to the caller's event; the tier and the seats its event has left.
    #[tracing::instrument(skip(self, fields))]
    pub async fn add_tier(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        fields: TierFields,
    ) -> Result<(Tier, i64), ServiceError> {
        let event = self.own(user_id, event_id).await?.event;
        let draft = TierDraft::parse(fields, event.total_tickets)?;
        let change = TierChange::Add(&draft);
        let tier = self.change_tier(event_id, user_id, None, change).await?;
        saved(tier, &event)
    }

    /// Changes a tier of the caller's event; the merged tier is checked as a whole.
    #[tracing::instrument(skip(self, patch))]
    pub async fn update_tier(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        tier_id: Uuid,
        patch: TierPatchFields,
    ) -> Result<(Tier, i64), ServiceError> {
        let EventDetails { event, tiers } = self.own(user_id, event_id).await?;
        let current = tiers
            .iter()
            .find(|tier| tier.id == tier_id)
            .ok_or(ServiceError::NotFound(Resource::Tier, tier_id))?;
        let draft = TierDraft::merge(current, patch, event.total_tickets)?;
        let change = TierChange::Update(tier_id, &draft);
        let tier = self
            .change_tier(event_id, user_id, Some(tier_id), change)
            .await?;
        saved(tier, &event)
    }

    #[tracing::instrument(skip(self))]
    pub async fn delete_tier(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        tier_id: Uuid,
    ) -> Result<(), ServiceError> {
        let change = TierChange::Delete(tier_id);
        self.change_tier(event_id, user_id, Some(tier_id), change)
            .await
            .map(|_| ())
    }

    /// Applies a tier change; the tier it saved (`None` once deleted). The event may enter or
    /// leave search with it: the organiser's next search on this server shows it.
    async fn change_tier(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        tier_id: Option<Uuid>,
        change: TierChange<'_>,
    ) -> Result<Option<Tier>, ServiceError> {
        let outcome = self.store.change_tier(event_id, user_id, change).await?;
        let tier = tier_outcome(event_id, tier_id, outcome)?;
        self.availability.touched(event_id);
        self.search.catch_up().await;
        Ok(tier)
    }

    /// What the event sold (its creator only); it counts the event's tickets, so it shares
    /// the listings' bound.
    pub async fn stats(&self, user_id: Uuid, event_id: Uuid) -> Result<EventStats, ServiceError> {
        let _running = self.expensive_reads.enter().await?;
        let (creator_id, mut stats) = self
            .store
            .event_stats(event_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Event, event_id))?;
        if creator_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewStats));
        }
        (stats.waitlist, stats.tier_waitlists) = self.store.waitlist_figures(event_id).await?;
        Ok(stats)
    }

    /// The caller's event with its tiers (404 when there is none, 403 when it is someone
    /// else's).
    async fn own(&self, user_id: Uuid, event_id: Uuid) -> Result<EventDetails, ServiceError> {
        let details = self.get(event_id).await?;
        if details.event.creator_id != user_id {
            return Err(ServiceError::NotOwner(Action::ModifyEvent));
        }
        Ok(details)
    }
}

/// A saved tier with the seats its event had left.
fn saved(tier: Option<Tier>, event: &Event) -> Result<(Tier, i64), ServiceError> {
    let tier = tier.ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no tier saved")))?;
    Ok((tier, event.seats_left()))
}

/// The tier a change saved (`None` once deleted), or why it was refused.
fn tier_outcome(
    event_id: Uuid,
    tier_id: Option<Uuid>,
    outcome: TierOutcome,
) -> Result<Option<Tier>, ServiceError> {
    let missing_tier = || ServiceError::NotFound(Resource::Tier, tier_id.unwrap_or_default());
    match outcome {
        TierOutcome::Saved(tier) => Ok(Some(*tier)),
        TierOutcome::Deleted => Ok(None),
        TierOutcome::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
        TierOutcome::NotCreator => Err(ServiceError::NotOwner(Action::ModifyEvent)),
        TierOutcome::TierNotFound => Err(missing_tier()),
        TierOutcome::NameTaken => Err(ServiceError::TierNameTaken),
        TierOutcome::TooManyTiers => Err(ServiceError::TooManyTiers),
        TierOutcome::BelowSold => Err(ServiceError::TierBelowSold),
        TierOutcome::HasTickets => Err(ServiceError::TierHasTickets),
        TierOutcome::LastTier => Err(ServiceError::LastTier),
    }
}
