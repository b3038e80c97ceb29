//! Request bodies of event writes, turned into the domain's unchecked fields.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::extract::{Input, nullable};
use crate::domain::{EventChanges, EventFields, EventPatchFields, VenueFields, Violations};

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
        })
    }
}
