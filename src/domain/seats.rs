//! Seats coming back on sale: what the seat ledger records in the transaction that frees them,
//! and what the waiting list will offer to the people in line before the public.

use uuid::Uuid;

/// Why seats came back on sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatsBackCause {
    /// The buyer cancelled a reserved order.
    Cancelled,
    /// A hold passed its deadline unpaid (found by the sweeper, or by an order short of seats).
    Expired,
    /// The event's organiser refunded a paid order.
    Refunded,
    /// The event's `total_tickets` was raised.
    CapacityRaised,
    /// A tier's quantity was raised (or its cap lifted).
    TierRaised,
    /// A tier was added to the event.
    TierAdded,
}

impl SeatsBackCause {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatsBackCause::Cancelled => "cancelled",
            SeatsBackCause::Expired => "expired",
            SeatsBackCause::Refunded => "refunded",
            SeatsBackCause::CapacityRaised => "capacity_raised",
            SeatsBackCause::TierRaised => "tier_raised",
            SeatsBackCause::TierAdded => "tier_added",
        }
    }

    /// Whether the seats were sold before (their tickets leave the counters), rather than
    /// capacity added.
    pub fn releases_tickets(self) -> bool {
        matches!(
            self,
            SeatsBackCause::Cancelled | SeatsBackCause::Expired | SeatsBackCause::Refunded
        )
    }
}

/// Seats that came back on sale at one event: to one tier, or (`tier_id` `None`) to the event's
/// own capacity, which any tier with room may sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatsBack {
    pub event_id: Uuid,
    pub tier_id: Option<Uuid>,
    pub seats: i64,
}

impl SeatsBack {
    /// `back` with one entry per event and tier (seats added up), events in id order and each
    /// event's tiers in id order: the order every writer locks rows in. Entries without seats
    /// are left out.
    pub fn merged(back: impl IntoIterator<Item = SeatsBack>) -> Vec<SeatsBack> {
        let mut merged = std::collections::BTreeMap::<(Uuid, Option<Uuid>), i64>::new();
        for entry in back {
            *merged.entry((entry.event_id, entry.tier_id)).or_default() += entry.seats;
        }
        merged
            .into_iter()
            .filter(|(_, seats)| *seats > 0)
            .map(|((event_id, tier_id), seats)| SeatsBack {
                event_id,
                tier_id,
                seats,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_adds_up_per_event_and_tier_in_lock_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (t1, t2) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let back = |event_id, tier_id, seats| SeatsBack {
            event_id,
            tier_id,
            seats,
        };
        let merged = SeatsBack::merged([
            back(b, Some(t2), 1),
            back(a, Some(t1), 2),
            back(b, Some(t2), 3),
            back(a, None, 0),
        ]);
        assert_eq!(merged, vec![back(a, Some(t1), 2), back(b, Some(t2), 4)]);
    }
}
