//! The waiting list as the store keeps it (WAITLIST.md). The offer step is not here: the seat
//! ledger runs it in every transaction that gives seats back.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{HeldKey, Page, StoreResult};
use crate::domain::PageRequest;
use crate::domain::waitlist::{
    EntryEnd, EntryEnded, EntryStatus, JoinLimits, JoinRequest, Joined, WaitlistEntry,
    WaitlistFigures,
};

/// A join as the store writes it: alone, or (PostgreSQL) in its event's lane with the joins
/// that arrive together ([`crate::store::WaitlistStore::join_waitlist`]).
#[derive(Debug, Clone)]
pub(super) struct JoinAsk {
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub request: JoinRequest,
    pub limits: JoinLimits,
    pub offer_seconds: i64,
    pub key: Option<HeldKey>,
}

/// Which entries a listing shows: by effective status, by tier (the organiser's), one page.
#[derive(Debug, Clone)]
pub struct WaitlistFilter {
    pub status: Option<EntryStatus>,
    pub tier_id: Option<Uuid>,
    pub page: PageRequest,
}

#[async_trait]
pub trait WaitlistStore: Send + Sync {
    /// Puts `user_id` in the event's line if [`crate::domain::waitlist::judge_join`] allows,
    /// judged under the event's lock after its due holds went back through the offer step;
    /// `offer_seconds` is the server's offer validity, kept with the entry. With a `key`, the
    /// entry is recorded on it in the same transaction.
    async fn join_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        request: JoinRequest,
        limits: JoinLimits,
        offer_seconds: i64,
        key: Option<&HeldKey>,
    ) -> StoreResult<Joined>;
    /// An entry and its event's creator.
    async fn waitlist_entry(&self, entry_id: Uuid) -> StoreResult<Option<(Uuid, WaitlistEntry)>>;
    /// A user's entries, newest first.
    async fn user_waitlist(
        &self,
        user_id: Uuid,
        filter: &WaitlistFilter,
    ) -> StoreResult<Page<WaitlistEntry>>;
    /// An event's creator and its entries in join order; `None` when there is no such event.
    async fn event_waitlist(
        &self,
        event_id: Uuid,
        filter: &WaitlistFilter,
    ) -> StoreResult<Option<(Uuid, Page<WaitlistEntry>)>>;
    /// Ends an active entry (`left` or `removed`); an open offer's order is cancelled in the
    /// same transaction and its seats go through the offer step.
    async fn end_entry(&self, entry_id: Uuid, end: EntryEnd) -> StoreResult<EntryEnded>;
    /// An event's entries by effective status, and per tier (any-tier entries only in the
    /// event's).
    async fn waitlist_figures(
        &self,
        event_id: Uuid,
    ) -> StoreResult<(WaitlistFigures, HashMap<Uuid, WaitlistFigures>)>;
    /// The sweeper's part: lines of started events close, as do the entries of tiers whose
    /// sales ended; seats a tier's `sales_start` put on sale are offered. How many events it
    /// went through.
    async fn sweep_waitlists(&self) -> StoreResult<u64>;
}
