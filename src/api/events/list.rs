use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::response::{EventListItem, EventListResponse};
use crate::api::error::ApiError;
use crate::api::extract::{Input, ValidQuery, lenient_bool};
use crate::api::query::{ListingPaging, timestamp};
use crate::api::schemas::PageInfo;
use crate::api::schemas::shared::{Busy, Invalid};
use crate::domain::event::TITLE_MAX_CHARS;
use crate::domain::{Violations, text};
use crate::service::Events;
use crate::store::EventFilter;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// Only events that start after now.
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = Option<bool>, default = false)]
    upcoming_only: Option<bool>,
    /// Case-insensitive match on title, venue name or city (at most 255 characters).
    #[serde(default)]
    q: Option<String>,
    /// Only events starting after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    starts_after: Option<String>,
    /// Only events starting before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    starts_before: Option<String>,
}

impl Input for EventListQuery {
    type Valid = EventFilter;

    fn validate(self) -> Result<EventFilter, Violations> {
        let mut violations = Violations::new();
        let starts_after = timestamp(
            &mut violations,
            "starts_after",
            self.starts_after.as_deref(),
        );
        let starts_before = timestamp(
            &mut violations,
            "starts_before",
            self.starts_before.as_deref(),
        );
        let text = violations.check(&["q"], text::optional(self.q.as_deref(), TITLE_MAX_CHARS));
        violations.finish(|| {
            Some(EventFilter {
                upcoming_only: self.upcoming_only.unwrap_or(false),
                text: text?,
                starts_after: starts_after?,
                starts_before: starts_before?,
            })
        })
    }
}

/// List events, earliest first.
#[utoipa::path(
    get, path = "/events/", tag = "events",
    params(EventListQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of events", body = EventListResponse),
        Invalid, Busy,
    )
)]
pub async fn list_events(
    State(events): State<Arc<Events>>,
    ValidQuery(filter): ValidQuery<EventListQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<EventListResponse>, ApiError> {
    let found = events.list(&filter, page).await?;
    let now = Utc::now();
    let (events, page) =
        PageInfo::split(found, page, |event| EventListItem::new(&event, None, now));
    Ok(Json(EventListResponse { events, page }))
}
