//! What a live availability snapshot shows (AVAILABILITY.md § Snapshot): the event and each of
//! its tiers judged at one instant, from the event as stored with its availability version.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::EventDetails;

/// An event as an availability snapshot reads it: with its tiers, the version its row carries
/// and the number of people waiting in its line, all read together.
#[derive(Debug, Clone, PartialEq)]
pub struct EventAvailability {
    pub details: EventDetails,
    /// Goes up with every commit that changes what a snapshot shows (and at clock instants).
    pub version: i64,
    pub waitlist_waiting: i32,
}

/// A tier's or an event's state for a buyer, in the order the rules are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleStatus {
    /// The event has started.
    Closed,
    SoldOut,
    /// Outside the tier's sales window.
    NotOnSale,
    FewLeft,
    Available,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierAvailability {
    pub tier_id: Uuid,
    pub name: String,
    pub status: SaleStatus,
    /// What the tier can still sell within the event's seats, whatever its status.
    pub available: i64,
}

/// An event's availability at `as_of`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub event_id: Uuid,
    pub version: i64,
    pub status: SaleStatus,
    /// The event's `tickets_available`.
    pub available: i64,
    pub is_sold_out: bool,
    pub waitlist_enabled: bool,
    pub waitlist_waiting: i32,
    /// In sale order.
    pub tiers: Vec<TierAvailability>,
    pub as_of: DateTime<Utc>,
}

impl Snapshot {
    /// Whether the event has started: a stream sends this snapshot last.
    pub fn is_closed(&self) -> bool {
        self.status == SaleStatus::Closed
    }
}

impl EventAvailability {
    /// The snapshot at `as_of`; a tier with at most `few_left_percent` % of its capacity left
    /// (at least one seat) has few left.
    pub fn snapshot(&self, as_of: DateTime<Utc>, few_left_percent: u8) -> Snapshot {
        let event = &self.details.event;
        let started = event.start_time <= as_of;
        let seats_left = event.seats_left();
        let tiers: Vec<TierAvailability> = self
            .details
            .tiers
            .iter()
            .map(|tier| {
                let available = tier.available(seats_left);
                let sale = tier.sale();
                let capacity = tier.quantity.unwrap_or(event.total_tickets);
                let status = if started {
                    SaleStatus::Closed
                } else if available == 0 {
                    SaleStatus::SoldOut
                } else if sale.not_started(as_of) || sale.ended(as_of) {
                    SaleStatus::NotOnSale
                } else if available <= few_left_threshold(capacity, few_left_percent) {
                    SaleStatus::FewLeft
                } else {
                    SaleStatus::Available
                };
                TierAvailability {
                    tier_id: tier.id,
                    name: tier.name.clone(),
                    status,
                    available,
                }
            })
            .collect();
        let status = if started {
            SaleStatus::Closed
        } else {
            [
                SaleStatus::Available,
                SaleStatus::FewLeft,
                SaleStatus::NotOnSale,
            ]
            .into_iter()
            .find(|wanted| tiers.iter().any(|tier| tier.status == *wanted))
            .unwrap_or(SaleStatus::SoldOut)
        };
        let available = event.tickets_available(as_of);
        Snapshot {
            event_id: event.id,
            version: self.version,
            status,
            available,
            is_sold_out: available == 0,
            waitlist_enabled: event.waitlist.enabled,
            waitlist_waiting: self.waitlist_waiting,
            tiers,
            as_of,
        }
    }
}

/// The most seats a tier of `capacity` may have left and be `few_left`: max(1, ⌈capacity ×
/// percent / 100⌉).
fn few_left_threshold(capacity: i32, percent: u8) -> i64 {
    let scaled = i64::from(capacity.max(0)) * i64::from(percent);
    ((scaled + 99) / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, Tier, Venue, WaitlistSettings};
    use chrono::Duration;

    /// A free tier (prices play no part in availability).
    fn tier(name: &str, quantity: Option<i32>, sold: i32) -> Tier {
        crate::domain::order::tests::tier(name, 0, quantity, sold)
    }

    fn event(now: DateTime<Utc>, total: i32, tiers: Vec<Tier>) -> EventAvailability {
        let sold = tiers.iter().map(|tier| tier.sold).sum();
        let venue = Venue::parse(crate::domain::event::tests::venue_fields()).unwrap();
        let event = Event {
            id: Uuid::new_v4(),
            creator_id: Uuid::new_v4(),
            title: "Show".into(),
            description: None,
            start_time: now + Duration::days(1),
            end_time: now + Duration::days(2),
            total_tickets: total,
            tickets_sold: sold,
            venue,
            currency: "EUR".into(),
            max_tickets_per_user: None,
            waitlist: WaitlistSettings {
                enabled: false,
                offer_minutes: None,
            },
            created_at: now,
            updated_at: now,
            sales: tiers.iter().map(Tier::sale).collect(),
        };
        EventAvailability {
            details: EventDetails { event, tiers },
            version: 3,
            waitlist_waiting: 0,
        }
    }

    fn statuses(snapshot: &Snapshot) -> Vec<SaleStatus> {
        snapshot.tiers.iter().map(|t| t.status).collect()
    }

    #[test]
    fn few_left_is_a_share_of_capacity_and_at_least_one_seat() {
        assert_eq!(few_left_threshold(100, 10), 10);
        assert_eq!(few_left_threshold(101, 10), 11);
        assert_eq!(few_left_threshold(5, 10), 1);
        assert_eq!(few_left_threshold(100, 0), 1);
        assert_eq!(few_left_threshold(100, 100), 100);
    }

    #[test]
    fn tiers_take_the_first_rule_that_holds() {
        let now = Utc::now();
        let mut early = tier("Early", Some(5), 0);
        early.sales_end = Some(now - Duration::hours(1));
        let regular = tier("Regular", Some(100), 93);
        let vip = tier("VIP", Some(10), 10);
        let open = tier("Open", None, 0);
        let event = event(now, 200, vec![early, regular, vip, open]);
        let snapshot = event.snapshot(now, 10);
        assert_eq!(
            statuses(&snapshot),
            [
                SaleStatus::NotOnSale,
                SaleStatus::FewLeft,
                SaleStatus::SoldOut,
                SaleStatus::Available
            ]
        );
        assert_eq!(snapshot.status, SaleStatus::Available);
        // The event's seats bound every tier's `available`, whatever its status.
        assert_eq!(snapshot.tiers[0].available, 5);
        assert_eq!(snapshot.tiers[3].available, 200 - 103);
        assert_eq!(snapshot.version, 3);
    }

    #[test]
    fn the_event_takes_the_best_tier_status_and_closes_at_its_start() {
        let now = Utc::now();
        let few = tier("Regular", Some(10), 9);
        let mut later = tier("Later", Some(10), 0);
        later.sales_start = Some(now + Duration::hours(1));
        let event = event(now, 20, vec![few, later]);
        assert_eq!(event.snapshot(now, 10).status, SaleStatus::FewLeft);
        let mut gone = event.clone();
        gone.details.tiers[0].sold = 10;
        gone.details.event.sales[0].sold = 10;
        gone.details.event.tickets_sold = 10;
        let snapshot = gone.snapshot(now, 10);
        assert_eq!(snapshot.status, SaleStatus::NotOnSale);
        assert!(snapshot.is_sold_out, "nothing sells now");
        let started = event.snapshot(event.details.event.start_time, 10);
        assert_eq!(started.status, SaleStatus::Closed);
        assert_eq!(statuses(&started), [SaleStatus::Closed; 2]);
    }

    #[test]
    fn sold_out_only_when_every_tier_is() {
        let now = Utc::now();
        let event = event(now, 3, vec![tier("A", None, 2), tier("B", None, 1)]);
        let snapshot = event.snapshot(now, 10);
        assert_eq!(statuses(&snapshot), [SaleStatus::SoldOut; 2]);
        assert_eq!(snapshot.status, SaleStatus::SoldOut);
        assert_eq!(snapshot.available, 0);
    }
}
