//! How events are shown: in full, and as list items.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::schemas::PageInfo;
use crate::domain::waitlist::WaitlistFigures;
use crate::domain::{Event, EventDetails, EventStats, NearbyEvent, Tier, Venue};

/// Where an event takes place, as every event answer shows it.
#[derive(Clone, Serialize, ToSchema)]
pub struct VenuePlace {
    latitude: f64,
    longitude: f64,
    venue_name: String,
    city: String,
    state: String,
}

impl From<&Venue> for VenuePlace {
    fn from(venue: &Venue) -> Self {
        Self {
            latitude: venue.location().latitude(),
            longitude: venue.location().longitude(),
            venue_name: venue.venue_name().to_owned(),
            city: venue.city().to_owned(),
            state: venue.state().to_owned(),
        }
    }
}

/// What an event is, as every event answer shows it.
#[derive(Clone, Serialize, ToSchema)]
pub struct EventBasics {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    /// Tickets that can be bought now: what the tiers on sale can still sell, within the
    /// event's seats left.
    tickets_available: i64,
    /// Nothing can be bought now: every seat taken, or every tier sold out or outside its
    /// sales window (an event that started is told by its `start_time`).
    is_sold_out: bool,
    #[serde(flatten)]
    place: VenuePlace,
    /// ISO 4217 code of the event's prices.
    currency: String,
    /// Reserved and paid tickets one user may hold for the event; null: no cap.
    max_tickets_per_user: Option<i32>,
    /// Whether people may join the event's waiting list when it is sold out.
    waitlist_enabled: bool,
    /// How long a waiting-list offer holds its seats, in minutes; null: the server's default.
    waitlist_offer_minutes: Option<i32>,
    created_at: DateTime<Utc>,
}

impl EventBasics {
    /// `event` as it sells at `now`.
    fn new(event: &Event, now: DateTime<Utc>) -> Self {
        let tickets_available = event.tickets_available(now);
        Self {
            id: event.id,
            creator_id: event.creator_id,
            title: event.title.clone(),
            description: event.description.clone(),
            start_time: event.start_time,
            end_time: event.end_time,
            tickets_available,
            is_sold_out: tickets_available == 0,
            place: VenuePlace::from(&event.venue),
            currency: event.currency.clone(),
            max_tickets_per_user: event.max_tickets_per_user,
            waitlist_enabled: event.waitlist.enabled,
            waitlist_offer_minutes: event.waitlist.offer_minutes,
            created_at: event.created_at,
        }
    }
}

/// An event in full.
#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    #[serde(flatten)]
    basics: EventBasics,
    total_tickets: i32,
    /// Reserved (unexpired) plus paid tickets.
    tickets_sold: i32,
    address_line1: String,
    address_line2: Option<String>,
    country: String,
    postal_code: String,
    /// What the event sells, in sale order.
    tiers: Vec<TierResponse>,
    updated_at: DateTime<Utc>,
}

/// A tier of tickets; `available` is what it can still sell, given the event's own seats.
#[derive(Serialize, ToSchema)]
pub struct TierResponse {
    id: Uuid,
    name: String,
    description: Option<String>,
    /// In the event currency's minor unit (cents); 0 is free.
    price_minor: i64,
    /// null: only the event's capacity limits the tier.
    quantity: Option<i32>,
    /// Reserved (unexpired) plus paid tickets of the tier.
    sold: i32,
    available: i64,
    max_per_order: Option<i32>,
    sales_start: Option<DateTime<Utc>>,
    sales_end: Option<DateTime<Utc>>,
    position: i32,
}

impl TierResponse {
    pub fn new(tier: Tier, event_seats_left: i64) -> Self {
        Self {
            available: tier.available(event_seats_left),
            id: tier.id,
            name: tier.name,
            description: tier.description,
            price_minor: tier.price_minor,
            quantity: tier.quantity,
            sold: tier.sold,
            max_per_order: tier.max_per_order,
            sales_start: tier.sales_start,
            sales_end: tier.sales_end,
            position: tier.position,
        }
    }
}

/// What one tier sold.
#[derive(Serialize, ToSchema)]
pub struct TierStatsBody {
    tier_id: Uuid,
    name: String,
    quantity: Option<i32>,
    /// Live (unexpired) reservations.
    reserved: i64,
    paid: i64,
    available: i64,
    /// Paid tickets at the prices their orders recorded, in the currency's minor unit.
    revenue_minor: i64,
    /// The tier's own waiting-list entries.
    waitlist: WaitlistStatsBody,
}

/// Waiting-list entries by effective status (WAITLIST.md § Stats).
#[derive(Serialize, ToSchema)]
pub struct WaitlistStatsBody {
    waiting: i64,
    /// Seats the waiting entries want.
    waiting_seats: i64,
    offered: i64,
    purchased: i64,
    expired: i64,
    left: i64,
    removed: i64,
    closed: i64,
}

impl From<WaitlistFigures> for WaitlistStatsBody {
    fn from(figures: WaitlistFigures) -> Self {
        Self {
            waiting: figures.waiting,
            waiting_seats: figures.waiting_seats,
            offered: figures.offered,
            purchased: figures.purchased,
            expired: figures.expired,
            left: figures.left,
            removed: figures.removed,
            closed: figures.closed,
        }
    }
}

/// What an event sold, whole and per tier (for its creator).
#[derive(Serialize, ToSchema)]
pub struct EventStatsResponse {
    event_id: Uuid,
    currency: String,
    total_tickets: i32,
    reserved: i64,
    paid: i64,
    available: i64,
    /// Paid tickets at their orders' prices (refunded ones no longer count).
    revenue_minor: i64,
    /// Given back on the event's orders.
    refunded_minor: i64,
    tiers: Vec<TierStatsBody>,
    waitlist: WaitlistStatsBody,
}

impl From<EventStats> for EventStatsResponse {
    fn from(mut stats: EventStats) -> Self {
        let seats_left = stats.available;
        Self {
            event_id: stats.event_id,
            currency: stats.currency,
            total_tickets: stats.total_tickets,
            reserved: stats.sales.reserved,
            paid: stats.sales.paid,
            available: stats.available,
            revenue_minor: stats.sales.revenue_minor,
            refunded_minor: stats.refunded_minor,
            tiers: stats
                .tiers
                .into_iter()
                .map(|(tier, sales)| TierStatsBody {
                    available: tier.available(seats_left),
                    tier_id: tier.id,
                    name: tier.name,
                    quantity: tier.quantity,
                    reserved: sales.reserved,
                    paid: sales.paid,
                    revenue_minor: sales.revenue_minor,
                    waitlist: stats
                        .tier_waitlists
                        .remove(&tier.id)
                        .unwrap_or_default()
                        .into(),
                })
                .collect(),
            waitlist: stats.waitlist.into(),
        }
    }
}

impl EventResponse {
    /// The event and its tiers as they sell at `now`.
    pub fn new(EventDetails { event, tiers }: EventDetails, now: DateTime<Utc>) -> Self {
        let venue = &event.venue;
        let seats_left = event.seats_left();
        Self {
            basics: EventBasics::new(&event, now),
            total_tickets: event.total_tickets,
            tickets_sold: event.tickets_sold,
            address_line1: venue.address_line1().to_owned(),
            address_line2: venue.address_line2().map(str::to_owned),
            country: venue.country().to_owned(),
            postal_code: venue.postal_code().to_owned(),
            tiers: tiers
                .into_iter()
                .map(|tier| TierResponse::new(tier, seats_left))
                .collect(),
            updated_at: event.updated_at,
        }
    }
}

/// An event in a listing; `distance_km` only in distance searches.
#[derive(Clone, Serialize, ToSchema)]
pub struct EventListItem {
    #[serde(flatten)]
    basics: EventBasics,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_km: Option<f64>,
}

impl EventListItem {
    /// `event` as it sells at `now`.
    pub fn new(event: &Event, distance_km: Option<f64>, now: DateTime<Utc>) -> Self {
        Self {
            basics: EventBasics::new(event, now),
            distance_km,
        }
    }

    pub fn with_distance(&self, distance_km: f64) -> Self {
        Self {
            distance_km: Some(distance_km),
            ..self.clone()
        }
    }

    /// An event a distance search found, as it sells at `now`.
    pub fn found(found: &NearbyEvent, now: DateTime<Utc>) -> Self {
        Self::new(&found.event, Some(round_km(found.distance_km)), now)
    }
}

/// Distances are shown to the metre.
pub fn round_km(km: f64) -> f64 {
    (km * 1000.0).round() / 1000.0
}

#[derive(Serialize, ToSchema)]
pub struct EventListResponse {
    pub events: Vec<EventListItem>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_round_to_the_metre() {
        assert_eq!(round_km(1.23456), 1.235);
    }
}
