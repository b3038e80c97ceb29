//! Joins to waiting lists in lanes ([`super::lanes`]) by event: a sold-out event's line can
//! form as fast as its sale ran. Every join holds its event's row while it is judged; the
//! joins that arrive while a lane's transaction is in flight wait here (not on a pooled
//! connection each, blocked on that row) and share the next transaction
//! ([`super::waitlist::join_in`]).

use sqlx::PgPool;
use uuid::Uuid;

use super::begin_write;
use super::lanes::LaneWriter;
use crate::domain::waitlist::Joined;
use crate::store::StoreResult;
use crate::store::batch::BatchWriter;
use crate::store::waitlist::JoinAsk;

/// The join lanes' writer, over the lanes' own connections.
pub(super) struct JoinWriter {
    pub pool: PgPool,
}

impl BatchWriter for JoinWriter {
    type Request = JoinAsk;
    type Outcome = Joined;
    const WHAT: &'static str = "waiting-list joins";

    async fn write(&self, requests: &[&JoinAsk]) -> StoreResult<Vec<StoreResult<Joined>>> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let joined = super::waitlist::join_in(&mut tx, now, requests).await?;
        tx.commit().await?;
        Ok(joined)
    }
}

impl LaneWriter for JoinWriter {
    fn lane_key(request: &JoinAsk) -> Uuid {
        request.event_id
    }
}
