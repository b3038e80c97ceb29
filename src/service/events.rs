//! Event management rules around the store.

use uuid::Uuid;

use std::sync::Arc;

use super::{Action, Bulkhead, Clock, Resource, ServiceError};
use crate::domain::{
    Event, EventChanges, EventDelete, EventDetails, EventDraft, EventFields, EventUpdate, NewEvent,
    PageRequest,
};
use crate::store::{DynStore, EventFilter, Page};

pub struct Events {
    store: DynStore,
    clock: Clock,
    expensive_reads: Arc<Bulkhead>,
}

impl Events {
    pub fn new(store: DynStore, clock: Clock, expensive_reads: Arc<Bulkhead>) -> Self {
        Self {
            store,
            clock,
            expensive_reads,
        }
    }

    #[tracing::instrument(skip(self, fields))]
    pub async fn create(
        &self,
        creator_id: Uuid,
        fields: EventFields,
    ) -> Result<EventDetails, ServiceError> {
        let new_event = NewEvent::parse(fields, (self.clock)())?;
        let event = self.store.insert_event(creator_id, &new_event).await?;
        tracing::info!(event_id = %event.id, "event created");
        self.with_tiers(event).await
    }

    /// An event with its tiers.
    pub async fn get(&self, id: Uuid) -> Result<EventDetails, ServiceError> {
        let event = self.find(id).await?;
        self.with_tiers(event).await
    }

    async fn find(&self, id: Uuid) -> Result<Event, ServiceError> {
        self.store
            .find_event(id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Event, id))
    }

    async fn with_tiers(&self, event: Event) -> Result<EventDetails, ServiceError> {
        let tiers = self.store.event_tiers(event.id).await?;
        Ok(EventDetails { event, tiers })
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
        let current = self.find(id).await?;
        if current.creator_id != user_id {
            return Err(ServiceError::NotOwner(Action::ModifyEvent));
        }
        let draft = EventDraft::merge(&current, changes, (self.clock)())?;
        // The store re-checks ownership and the sold count atomically; the read above only
        // chooses the right answer for the common cases.
        match self.store.update_event(id, user_id, &draft).await? {
            EventUpdate::Done(event) => self.with_tiers(*event).await,
            EventUpdate::NotFound => Err(ServiceError::NotFound(Resource::Event, id)),
            EventUpdate::NotCreator => Err(ServiceError::NotOwner(Action::ModifyEvent)),
            EventUpdate::BelowSold => Err(ServiceError::TotalBelowSold),
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<(), ServiceError> {
        match self.store.delete_event(id, user_id).await? {
            EventDelete::Deleted => {
                tracing::info!(event_id = %id, "event deleted");
                Ok(())
            }
            EventDelete::NotFound => Err(ServiceError::NotFound(Resource::Event, id)),
            EventDelete::NotCreator => Err(ServiceError::NotOwner(Action::DeleteEvent)),
            EventDelete::HasTickets => Err(ServiceError::EventHasTickets),
        }
    }
}
