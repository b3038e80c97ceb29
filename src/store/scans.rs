//! The door as the store keeps it (CHECKIN.md): scanner tokens, scans judged under the
//! ticket's lock, list counts and the offline bundle.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{
    CheckinList, DoorBundle, ListStatus, OfflineResult, Redeemed, Scan, ScannedCode, ScannerToken,
    TokenCreated, TokenDraft, TokenRevoked,
};

/// A scan to judge and record: its code as read, its list, and the judgement of the offline
/// device that made it, if one did.
#[derive(Debug, Clone, Copy)]
pub struct RecordScan<'a> {
    pub scan: &'a Scan,
    pub code: ScannedCode,
    pub list: &'a CheckinList,
    pub offline: Option<OfflineResult>,
}

/// A scan to redeem, owned: it may wait for its batch in another task.
#[derive(Debug)]
pub(super) struct ScanRequest {
    pub scan: Scan,
    pub code: ScannedCode,
    pub list: CheckinList,
    pub max_refusals: i64,
}

impl ScanRequest {
    pub fn record(&self) -> RecordScan<'_> {
        RecordScan {
            scan: &self.scan,
            code: self.code,
            list: &self.list,
            offline: None,
        }
    }
}

/// Which part of the offline bundle to read.
#[derive(Debug, Clone, Copy)]
pub struct BundleRequest {
    /// Revocations logged after this position (0: all).
    pub since: i64,
    /// A page of paid tickets: (skip, limit).
    pub tickets: Option<(i64, i64)>,
}

#[async_trait]
pub trait ScanStore: Send + Sync {
    /// Adds a token (known by `token_hash`, the SHA-256 of its text) to an event of `creator`
    /// that has fewer than `max_live` live ones, its lists the event's, under the event's lock.
    async fn create_scanner_token(
        &self,
        event_id: Uuid,
        creator: Uuid,
        draft: &TokenDraft,
        token_hash: &[u8; 32],
        max_live: i64,
    ) -> StoreResult<TokenCreated>;
    /// An event's creator and its tokens (revoked too), oldest first; `None`: no such event.
    async fn scanner_tokens(
        &self,
        event_id: Uuid,
    ) -> StoreResult<Option<(Uuid, Vec<ScannerToken>)>>;
    /// Revokes a token of an event of `creator` (already revoked: done).
    async fn revoke_scanner_token(
        &self,
        event_id: Uuid,
        token_id: Uuid,
        creator: Uuid,
    ) -> StoreResult<TokenRevoked>;
    /// The token whose text hashes to `token_hash`, live or not.
    async fn scanner_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ScannerToken>>;
    /// A list and its event's creator.
    async fn checkin_list(&self, list_id: Uuid) -> StoreResult<Option<(Uuid, CheckinList)>>;
    /// Judges `scan` of `code` on `list` under the ticket's row lock, and records it in the same
    /// transaction: a check-in, or the refused log's row for its nonce (while the list has
    /// fewer than `max_refusals`).
    async fn redeem(
        &self,
        scan: &Scan,
        code: ScannedCode,
        list: &CheckinList,
        max_refusals: i64,
    ) -> StoreResult<Redeemed>;
    /// Records an offline upload in one transaction, by `scanned_at`: an admission as a forced
    /// redeem, a refusal as judged; a known nonce is answered from the record. With nothing
    /// recorded, `Err((index, NonceTaken))` when the scan at `index` names a nonce another code
    /// holds, `Err((index, ListGone))` when its list was deleted meanwhile.
    async fn upload(
        &self,
        scans: &[RecordScan<'_>],
        max_refusals: i64,
    ) -> StoreResult<Result<Vec<Redeemed>, (usize, Redeemed)>>;
    /// The counts of `list` now.
    async fn list_status(&self, list: &CheckinList) -> StoreResult<ListStatus>;
    /// An event's offline bundle; `None`: no such event; `Some(Err(head))` when `since` is past
    /// the log's head (not a cursor of this event).
    async fn door_bundle(
        &self,
        event_id: Uuid,
        request: BundleRequest,
    ) -> StoreResult<Option<Result<DoorBundle, i64>>>;
}
