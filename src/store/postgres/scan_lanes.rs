//! Scans at the door, redeemed in lanes ([`super::lanes`]) by ticket: the scans that arrive
//! while a lane's transaction is in flight share the next one, so a busy door pays one BEGIN,
//! one COMMIT and one statement locking the tickets for many scans
//! ([`super::scans::redeem_in`]).

use sqlx::PgPool;
use uuid::Uuid;

use super::lanes::LaneWriter;
use crate::domain::Redeemed;
use crate::store::StoreResult;
use crate::store::batch::BatchWriter;
use crate::store::scans::ScanRequest;

/// The scan lanes' writer, over the lanes' own connections.
pub(in crate::store) struct ScanWriter {
    pub pool: PgPool,
}

impl BatchWriter for ScanWriter {
    type Request = ScanRequest;
    type Outcome = Redeemed;
    const WHAT: &'static str = "scans";

    async fn write(&self, requests: &[&ScanRequest]) -> StoreResult<Vec<StoreResult<Redeemed>>> {
        let (tx, now) = super::scan_tx(&self.pool).await?;
        super::scans::redeem_in(tx, now, requests).await
    }
}

impl LaneWriter for ScanWriter {
    /// The ticket the code names (a code naming none: its list).
    fn lane_key(request: &ScanRequest) -> Uuid {
        request.code.ticket_id().unwrap_or(request.list.id)
    }
}
