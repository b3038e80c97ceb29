//! Request bodies of event writes, turned into the domain's unchecked fields.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::extract::{Input, nullable};
use crate::domain::{
    EventChanges, EventFields, EventPatchFields, TierFields, TierPatchFields, VenueFields,
    Violations,
};

#[derive(Deserialize, ToSchema)]
pub struct VenueBody {
    #[schema(example = 6.5244, minimum = -90, maximum = 90)]
    latitude: f64,
    #[schema(example = 3.3792, minimum = -180, maximum = 180)]
    longitude: f64,
    /// 1–255 characters.
    #[schema(example = "Eko Hall", min_length = 1, max_length = 255)]
    venue_name: String,
    /// 1–255 characters.
    #[schema(example = "1 Marina Road", min_length = 1, max_length = 255)]
    address_line1: String,
    /// At most 255 characters.
    #[serde(default)]
    #[schema(max_length = 255)]
    address_line2: Option<String>,
    /// 1–100 characters.
    #[schema(example = "Lagos", min_length = 1, max_length = 100)]
    city: String,
    /// 1–100 characters.
    #[schema(example = "Lagos", min_length = 1, max_length = 100)]
    state: String,
    /// 1–100 characters.
    #[schema(example = "Nigeria", min_length = 1, max_length = 100)]
    country: String,
    /// 1–20 characters.
    #[schema(example = "101001", min_length = 1, max_length = 20)]
    postal_code: String,
}

impl From<VenueBody> for VenueFields {
    fn from(body: VenueBody) -> Self {
        VenueFields {
            latitude: body.latitude,
            longitude: body.longitude,
            venue_name: body.venue_name,
            address_line1: body.address_line1,
            address_line2: body.address_line2,
            city: body.city,
            state: body.state,
            country: body.country,
            postal_code: body.postal_code,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EventCreateRequest {
    /// 1–255 characters.
    #[schema(example = "Afrobeats Night", min_length = 1, max_length = 255)]
    title: String,
    /// At most 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// In the future, with a UTC offset.
    #[schema(value_type = String, format = DateTime, example = "2026-12-01T18:00:00Z")]
    start_time: String,
    /// After `start_time`, with a UTC offset.
    #[schema(value_type = String, format = DateTime, example = "2026-12-01T23:00:00Z")]
    end_time: String,
    /// 1..1000000.
    #[schema(example = 500, minimum = 1, maximum = 1000000)]
    total_tickets: i64,
    venue: VenueBody,
    /// ISO 4217, three capital letters; `USD` when not given.
    #[serde(default)]
    #[schema(example = "NGN", pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// Reserved and paid tickets one user may hold for the event, 1–100; null: no cap.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    max_tickets_per_user: Option<i64>,
    /// Whether people may join a waiting list when it is sold out; `false` when not given.
    #[serde(default)]
    waitlist_enabled: Option<bool>,
    /// How long a waiting-list offer holds its seats, 1–10080 minutes; null: the server's
    /// `WAITLIST_OFFER_MINUTES`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    waitlist_offer_minutes: Option<i64>,
    /// 1–20 tiers with unique names; without it the event sells one free "General admission"
    /// tier.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 20)]
    tiers: Option<Vec<TierBody>>,
}

/// A tier of tickets: its price, quota and sales window.
#[derive(Deserialize, ToSchema)]
pub struct TierBody {
    /// 1–100 characters, unique within the event.
    #[schema(example = "Early bird", min_length = 1, max_length = 100)]
    name: String,
    /// At most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// In the currency's minor unit (cents), 0..1e9; 0 (free) when not given.
    #[serde(default)]
    #[schema(example = 1500, minimum = 0, maximum = 1000000000)]
    price_minor: Option<i64>,
    /// 1..total_tickets; null: only the event's capacity limits the tier.
    #[serde(default)]
    #[schema(minimum = 1)]
    quantity: Option<i64>,
    /// 1–100 tickets of this tier in one order; null: only the order cap applies.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    max_per_order: Option<i64>,
    /// When sales open (with a UTC offset); null: open now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_start: Option<String>,
    /// When sales close, after `sales_start`; null: until the event starts.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_end: Option<String>,
}

impl Input for TierBody {
    type Valid = TierFields;

    fn validate(self) -> Result<TierFields, Violations> {
        Ok(self.into())
    }
}

/// Any subset of a tier's fields; null clears `description`, `quantity`, `max_per_order` and
/// the sales window's ends.
#[derive(Deserialize, ToSchema)]
pub struct TierUpdateRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000000)]
    price_minor: Option<i64>,
    /// Not below the tickets the tier sold (409).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    quantity: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    max_per_order: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_start: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    sales_end: Option<Option<String>>,
}

impl Input for TierUpdateRequest {
    type Valid = TierPatchFields;

    fn validate(self) -> Result<TierPatchFields, Violations> {
        Ok(TierPatchFields {
            name: self.name,
            description: self.description,
            price_minor: self.price_minor,
            quantity: self.quantity,
            max_per_order: self.max_per_order,
            sales_start: self.sales_start,
            sales_end: self.sales_end,
        })
    }
}

impl From<TierBody> for TierFields {
    fn from(body: TierBody) -> Self {
        TierFields {
            name: body.name,
            description: body.description,
            price_minor: body.price_minor,
            quantity: body.quantity,
            max_per_order: body.max_per_order,
            sales_start: body.sales_start,
            sales_end: body.sales_end,
        }
    }
}

/// Checked by the events service, which knows the clock ("in the future").
impl Input for EventCreateRequest {
    type Valid = EventFields;

    fn validate(self) -> Result<EventFields, Violations> {
        Ok(EventFields {
            title: self.title,
            description: self.description,
            start_time: self.start_time,
            end_time: self.end_time,
            total_tickets: self.total_tickets,
            venue: self.venue.into(),
            currency: self.currency,
            max_tickets_per_user: self.max_tickets_per_user,
            waitlist_enabled: self.waitlist_enabled,
            waitlist_offer_minutes: self.waitlist_offer_minutes,
            tiers: self
                .tiers
                .map(|tiers| tiers.into_iter().map(TierFields::from).collect()),
        })
    }
}

/// Any subset of the create fields; `venue` is replaced whole; `description: null` clears it.
#[derive(Deserialize, ToSchema)]
pub struct EventUpdateRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 5000)]
    description: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    start_time: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    end_time: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000)]
    total_tickets: Option<i64>,
    #[serde(default)]
    venue: Option<VenueBody>,
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// null removes the cap.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    max_tickets_per_user: Option<Option<i64>>,
    #[serde(default)]
    waitlist_enabled: Option<bool>,
    /// null: back to the server's `WAITLIST_OFFER_MINUTES`; applies to later offers.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10080)]
    waitlist_offer_minutes: Option<Option<i64>>,
    /// Not accepted here: tiers change through `/events/{id}/tiers`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    tiers: Option<serde::de::IgnoredAny>,
}

impl Input for EventUpdateRequest {
    type Valid = EventChanges;

    fn validate(self) -> Result<EventChanges, Violations> {
        EventChanges::parse(EventPatchFields {
            title: self.title,
            description: self.description,
            start_time: self.start_time,
            end_time: self.end_time,
            total_tickets: self.total_tickets,
            venue: self.venue.map(VenueFields::from),
            currency: self.currency,
            max_tickets_per_user: self.max_tickets_per_user,
            waitlist_enabled: self.waitlist_enabled,
            waitlist_offer_minutes: self.waitlist_offer_minutes,
            tiers_given: self.tiers.is_some(),
        })
    }
}
