//! Check-in lists as the store keeps them (CHECKIN.md § Check-in lists).

use async_trait::async_trait;
use uuid::Uuid;

use super::{HeldKey, StoreResult};
use crate::domain::{CheckinList, ListChanged, ListCreated, ListDeleted, ListDraft};

#[async_trait]
pub trait CheckinListStore: Send + Sync {
    /// Adds a list to an event of `creator` that has fewer than `max_lists`, its tiers the
    /// event's, under the event's lock; with a `key`, the list is recorded on it in the same
    /// transaction.
    async fn create_checkin_list(
        &self,
        event_id: Uuid,
        creator: Uuid,
        draft: &ListDraft,
        max_lists: i64,
        key: Option<&HeldKey>,
    ) -> StoreResult<ListCreated>;
    /// An event's creator and its lists, oldest first; `None` when there is no such event.
    async fn checkin_lists(&self, event_id: Uuid) -> StoreResult<Option<(Uuid, Vec<CheckinList>)>>;
    /// Replaces a list of an event of `creator` with `draft` (its tiers the event's), under
    /// the event's lock.
    async fn update_checkin_list(
        &self,
        event_id: Uuid,
        list_id: Uuid,
        creator: Uuid,
        draft: &ListDraft,
    ) -> StoreResult<ListChanged>;
    async fn delete_checkin_list(
        &self,
        event_id: Uuid,
        list_id: Uuid,
        creator: Uuid,
    ) -> StoreResult<ListDeleted>;
}
