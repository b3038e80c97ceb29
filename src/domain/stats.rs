//! What an event has sold, whole and per tier, and who waits for it, for its organiser.

use std::collections::HashMap;

use uuid::Uuid;

use super::tier::Tier;
use super::waitlist::WaitlistFigures;

/// What an event has sold, for its creator: live reservations, payments and revenue at the
/// prices the orders recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesFigures {
    pub reserved: i64,
    pub paid: i64,
    pub revenue_minor: i64,
}

/// An event's sales, whole and per tier.
#[derive(Debug, Clone, PartialEq)]
pub struct EventStats {
    pub event_id: Uuid,
    pub currency: String,
    pub total_tickets: i32,
    pub available: i64,
    pub sales: SalesFigures,
    /// Given back on the event's orders (refunds), in its currency's minor unit.
    pub refunded_minor: i64,
    /// Each tier with its own figures, in sale order.
    pub tiers: Vec<(Tier, SalesFigures)>,
    /// The event's waiting-list entries, by effective status.
    pub waitlist: WaitlistFigures,
    /// Each tier's own entries (any-tier entries count only in the event's).
    pub tier_waitlists: HashMap<Uuid, WaitlistFigures>,
}
