//! Event management, listings and the public nearby search.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Input, PathId, ValidJson, ValidQuery, lenient_bool, nullable};
use super::schemas::{ErrorBody, ValidationErrorBody};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::domain::event::parse_total_tickets;
use crate::domain::validation::bounded_text;
use crate::domain::{
    Event, EventChanges, EventDraft, FieldError, GeoPoint, NearbyEvent, Venue, Violations,
};
use crate::error::ApiError;
use crate::service::events as service;
use crate::store::{EventFilter, NearbyQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_event, list_events))
        // Clients use the slashed collection path; the bare one works too.
        .route("/events", post(create_event).get(list_events))
        .routes(routes!(nearby_events))
        .routes(routes!(get_event, update_event, delete_event))
}

#[derive(Deserialize, ToSchema)]
pub struct VenueInput {
    #[schema(example = 6.5244)]
    latitude: f64,
    #[schema(example = 3.3792)]
    longitude: f64,
    #[schema(example = "Eko Hall")]
    venue_name: String,
    #[schema(example = "1 Marina Road")]
    address_line1: String,
    #[serde(default)]
    address_line2: Option<String>,
    #[schema(example = "Lagos")]
    city: String,
    #[schema(example = "Lagos")]
    state: String,
    #[schema(example = "Nigeria")]
    country: String,
    #[schema(example = "101001")]
    postal_code: String,
}

impl VenueInput {
    fn validate(self, violations: &mut Violations) -> Option<Venue> {
        let loc = |field: &'static str| ["body", "venue", field];
        let location = match GeoPoint::new(self.latitude, self.longitude) {
            Ok(point) => Some(point),
            Err(_) => {
                if !(-90.0..=90.0).contains(&self.latitude) {
                    violations.push(&loc("latitude"), "must be between -90 and 90");
                }
                if !(-180.0..=180.0).contains(&self.longitude) {
                    violations.push(&loc("longitude"), "must be between -180 and 180");
                }
                None
            }
        };
        let mut text = |field: &'static str, value: &str, min: usize, max: usize| {
            bounded_text(violations, &loc(field), value, min, max)
        };
        let venue_name = text("venue_name", &self.venue_name, 1, 255);
        let address_line1 = text("address_line1", &self.address_line1, 1, 255);
        let address_line2 = match self.address_line2.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(line) => text("address_line2", line, 0, 255).map(Some),
        };
        let city = text("city", &self.city, 1, 100);
        let state = text("state", &self.state, 1, 100);
        let country = text("country", &self.country, 1, 100);
        let postal_code = text("postal_code", &self.postal_code, 1, 20);
        Some(Venue {
            location: location?,
            venue_name: venue_name?,
            address_line1: address_line1?,
            address_line2: address_line2?,
            city: city?,
            state: state?,
            country: country?,
            postal_code: postal_code?,
        })
    }
}

/// An RFC 3339 timestamp that carries a UTC offset; naive times are refused.
fn parse_time(violations: &mut Violations, loc: &[&str], raw: &str) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(raw.trim()) {
        Ok(time) => Some(time.with_timezone(&Utc)),
        Err(_) => {
            violations.push_kind(
                loc,
                "must be an RFC 3339 timestamp with a UTC offset, e.g. 2026-12-01T18:00:00Z",
                "datetime_parsing",
            );
            None
        }
    }
}

fn description(violations: &mut Violations, raw: Option<String>) -> Option<Option<String>> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(text) => bounded_text(violations, &["body", "description"], text, 0, 5000).map(Some),
    }
}

fn total_tickets(violations: &mut Violations, raw: i64) -> Option<i32> {
    parse_total_tickets(raw)
        .map_err(|msg| violations.push(&["body", "total_tickets"], msg))
        .ok()
}

#[derive(Deserialize, ToSchema)]
pub struct EventCreateRequest {
    /// 1–255 characters.
    #[schema(example = "Afrobeats Night")]
    title: String,
    /// At most 5000 characters.
    #[serde(default)]
    description: Option<String>,
    /// In the future, with a UTC offset.
    #[schema(value_type = String, format = DateTime, example = "2026-12-01T18:00:00Z")]
    start_time: String,
    /// After `start_time`, with a UTC offset.
    #[schema(value_type = String, format = DateTime, example = "2026-12-01T23:00:00Z")]
    end_time: String,
    /// 1..1000000.
    #[schema(example = 500)]
    total_tickets: i64,
    venue: VenueInput,
}

impl Input for EventCreateRequest {
    type Valid = EventDraft;

    fn validate(self) -> Result<EventDraft, Vec<FieldError>> {
        let mut violations = Violations::new();
        let title = bounded_text(&mut violations, &["body", "title"], &self.title, 1, 255);
        let description = description(&mut violations, self.description);
        let start_time = parse_time(&mut violations, &["body", "start_time"], &self.start_time);
        let end_time = parse_time(&mut violations, &["body", "end_time"], &self.end_time);
        let total_tickets = total_tickets(&mut violations, self.total_tickets);
        let venue = self.venue.validate(&mut violations);
        match (
            title,
            description,
            start_time,
            end_time,
            total_tickets,
            venue,
        ) {
            (
                Some(title),
                Some(description),
                Some(start_time),
                Some(end_time),
                Some(total_tickets),
                Some(venue),
            ) if violations.is_empty() => Ok(EventDraft {
                title,
                description,
                start_time,
                end_time,
                total_tickets,
                venue,
            }),
            _ => Err(violations.into_errors()),
        }
    }
}

/// Any subset of the create fields; `venue` is replaced whole; `description: null` clears it.
#[derive(Deserialize, ToSchema)]
pub struct EventUpdateRequest {
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    start_time: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    end_time: Option<String>,
    #[serde(default)]
    total_tickets: Option<i64>,
    #[serde(default)]
    venue: Option<VenueInput>,
}

impl Input for EventUpdateRequest {
    type Valid = EventChanges;

    fn validate(self) -> Result<EventChanges, Vec<FieldError>> {
        let mut violations = Violations::new();
        let changes = EventChanges {
            title: self.title.and_then(|title| {
                bounded_text(&mut violations, &["body", "title"], &title, 1, 255)
            }),
            description: self
                .description
                .and_then(|raw| description(&mut violations, raw)),
            start_time: self
                .start_time
                .and_then(|raw| parse_time(&mut violations, &["body", "start_time"], &raw)),
            end_time: self
                .end_time
                .and_then(|raw| parse_time(&mut violations, &["body", "end_time"], &raw)),
            total_tickets: self
                .total_tickets
                .and_then(|raw| total_tickets(&mut violations, raw)),
            venue: self.venue.and_then(|venue| venue.validate(&mut violations)),
        };
        violations.finish(|| changes)
    }
}

/// An event in full.
#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    total_tickets: i32,
    /// Reserved (unexpired) plus paid tickets.
    tickets_sold: i32,
    tickets_available: i32,
    is_sold_out: bool,
    latitude: f64,
    longitude: f64,
    venue_name: String,
    address_line1: String,
    address_line2: Option<String>,
    city: String,
    state: String,
    country: String,
    postal_code: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Event> for EventResponse {
    fn from(event: Event) -> Self {
        Self {
            tickets_available: event.tickets_available(),
            is_sold_out: event.is_sold_out(),
            id: event.id,
            creator_id: event.creator_id,
            title: event.title,
            description: event.description,
            start_time: event.start_time,
            end_time: event.end_time,
            total_tickets: event.total_tickets,
            tickets_sold: event.tickets_sold,
            latitude: event.venue.location.latitude,
            longitude: event.venue.location.longitude,
            venue_name: event.venue.venue_name,
            address_line1: event.venue.address_line1,
            address_line2: event.venue.address_line2,
            city: event.venue.city,
            state: event.venue.state,
            country: event.venue.country,
            postal_code: event.venue.postal_code,
            created_at: event.created_at,
            updated_at: event.updated_at,
        }
    }
}

/// An event in a listing; `distance_km` only in distance searches.
#[derive(Clone, Serialize, ToSchema)]
pub struct EventListItem {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    tickets_available: i32,
    is_sold_out: bool,
    latitude: f64,
    longitude: f64,
    venue_name: String,
    city: String,
    state: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    distance_km: Option<f64>,
}

impl EventListItem {
    pub fn new(event: Event, distance_km: Option<f64>) -> Self {
        Self {
            tickets_available: event.tickets_available(),
            is_sold_out: event.is_sold_out(),
            id: event.id,
            creator_id: event.creator_id,
            title: event.title,
            description: event.description,
            start_time: event.start_time,
            end_time: event.end_time,
            latitude: event.venue.location.latitude,
            longitude: event.venue.location.longitude,
            venue_name: event.venue.venue_name,
            city: event.venue.city,
            state: event.venue.state,
            created_at: event.created_at,
            distance_km,
        }
    }
}

impl EventListItem {
    pub fn with_distance(&self, distance_km: f64) -> Self {
        Self {
            distance_km: Some(distance_km),
            ..self.clone()
        }
    }
}

impl From<NearbyEvent> for EventListItem {
    fn from(found: NearbyEvent) -> Self {
        EventListItem::new(found.event, Some(round_km(found.distance_km)))
    }
}

/// Distances are shown to the metre.
pub fn round_km(km: f64) -> f64 {
    (km * 1000.0).round() / 1000.0
}

#[derive(Serialize, ToSchema)]
pub struct EventListResponse {
    events: Vec<EventListItem>,
    /// Rows matching the filter (not the page length).
    total: i64,
    skip: i64,
    limit: i64,
}

/// Create an event; the caller becomes its creator.
#[utoipa::path(
    post,
    path = "/events/",
    tag = "events",
    security(("bearer" = [])),
    request_body = EventCreateRequest,
    responses(
        (status = 201, description = "Event created", body = EventResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ValidationErrorBody),
    )
)]
async fn create_event(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidJson(draft): ValidJson<EventCreateRequest>,
) -> Result<(StatusCode, Json<EventResponse>), ApiError> {
    let event = service::create(&state, user.id, draft).await?;
    Ok((StatusCode::CREATED, Json(event.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// Rows to skip (≥ 0).
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size, 1–1000.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// Only events that start after now.
    #[serde(default, deserialize_with = "lenient_bool")]
    #[param(value_type = Option<bool>, default = false)]
    upcoming_only: Option<bool>,
    /// Case-insensitive match on title, venue name or city.
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

/// `skip` and `limit` under `query`, with the limit's bounds.
pub fn paging(
    violations: &mut Violations,
    skip: Option<i64>,
    limit: Option<i64>,
    default_limit: i64,
    max_limit: i64,
) -> (i64, i64) {
    let skip = skip.unwrap_or(0);
    if skip < 0 {
        violations.push(&["query", "skip"], "must be greater than or equal to 0");
    }
    let limit = limit.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        violations.push(
            &["query", "limit"],
            format!("must be between 1 and {max_limit}"),
        );
    }
    (skip, limit)
}

impl Input for EventListQuery {
    type Valid = EventFilter;

    fn validate(self) -> Result<EventFilter, Vec<FieldError>> {
        let mut violations = Violations::new();
        let (skip, limit) = paging(&mut violations, self.skip, self.limit, 100, 1000);
        let mut time = |name: &str, raw: Option<String>| {
            raw.and_then(|raw| parse_time(&mut violations, &["query", name], &raw))
        };
        let starts_after = time("starts_after", self.starts_after);
        let starts_before = time("starts_before", self.starts_before);
        let text = self
            .q
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty());
        if text.as_ref().is_some_and(|q| q.chars().count() > 255) {
            violations.push(&["query", "q"], "must be at most 255 characters");
        }
        violations.finish(|| EventFilter {
            skip,
            limit,
            upcoming_only: self.upcoming_only.unwrap_or(false),
            text,
            starts_after,
            starts_before,
        })
    }
}

/// List events, earliest first.
#[utoipa::path(
    get,
    path = "/events/",
    tag = "events",
    params(EventListQuery),
    responses(
        (status = 200, description = "A page of events", body = EventListResponse),
        (status = 422, description = "Invalid query", body = ValidationErrorBody),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    ValidQuery(filter): ValidQuery<EventListQuery>,
) -> Result<Json<EventListResponse>, ApiError> {
    let page = state.store.list_events(&filter).await?;
    Ok(Json(EventListResponse {
        events: page
            .items
            .into_iter()
            .map(|event| EventListItem::new(event, None))
            .collect(),
        total: page.total,
        skip: filter.skip,
        limit: filter.limit,
    }))
}

/// Radius in km within the contract's 1–500 bounds.
pub fn radius(violations: &mut Violations, name: &str, raw: Option<f64>, default: f64) -> f64 {
    let radius = raw.unwrap_or(default);
    if !(1.0..=500.0).contains(&radius) {
        violations.push(&["query", name], "must be between 1 and 500");
    }
    radius
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearbyParams {
    /// Latitude of the search centre (−90..90).
    latitude: f64,
    /// Longitude of the search centre (−180..180).
    longitude: f64,
    /// Search radius in km, 1–500.
    #[serde(default)]
    #[param(minimum = 1, maximum = 500, default = 50)]
    radius_km: Option<f64>,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size, 1–100.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
}

/// A nearby search whose radius may still need the configured default.
pub struct NearbySearch {
    center: GeoPoint,
    radius_km: Option<f64>,
    skip: i64,
    limit: i64,
}

impl Input for NearbyParams {
    type Valid = NearbySearch;

    fn validate(self) -> Result<NearbySearch, Vec<FieldError>> {
        let mut violations = Violations::new();
        if !(-90.0..=90.0).contains(&self.latitude) {
            violations.push(&["query", "latitude"], "must be between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&self.longitude) {
            violations.push(&["query", "longitude"], "must be between -180 and 180");
        }
        let radius_km = self
            .radius_km
            .map(|raw| radius(&mut violations, "radius_km", Some(raw), raw));
        let (skip, limit) = paging(&mut violations, self.skip, self.limit, 20, 100);
        let center = GeoPoint::new(self.latitude, self.longitude).ok();
        match center {
            Some(center) if violations.is_empty() => Ok(NearbySearch {
                center,
                radius_km,
                skip,
                limit,
            }),
            _ => Err(violations.into_errors()),
        }
    }
}

/// Upcoming, not sold-out events near a point, nearest first.
#[utoipa::path(
    get,
    path = "/events/nearby",
    tag = "events",
    params(NearbyParams),
    responses(
        (status = 200, description = "A page of events with distances", body = EventListResponse),
        (status = 422, description = "Invalid query", body = ValidationErrorBody),
    )
)]
async fn nearby_events(
    State(state): State<AppState>,
    ValidQuery(search): ValidQuery<NearbyParams>,
) -> Result<Json<EventListResponse>, ApiError> {
    let query = NearbyQuery {
        center: search.center,
        radius_km: search.radius_km.unwrap_or(50.0),
        skip: search.skip,
        limit: search.limit,
    };
    let page = state.store.nearby_events(&query).await?;
    Ok(Json(EventListResponse {
        events: page.items.into_iter().map(EventListItem::from).collect(),
        total: page.total,
        skip: query.skip,
        limit: query.limit,
    }))
}

/// One event.
#[utoipa::path(
    get,
    path = "/events/{event_id}",
    tag = "events",
    params(("event_id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventResponse),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 422, description = "Malformed id", body = ValidationErrorBody),
    )
)]
async fn get_event(
    State(state): State<AppState>,
    PathId(event_id): PathId,
) -> Result<Json<EventResponse>, ApiError> {
    let event = service::get(&state, event_id).await?;
    Ok(Json(event.into()))
}

/// Change an event (creator only). The merged result must satisfy the create rules.
#[utoipa::path(
    put,
    path = "/events/{event_id}",
    tag = "events",
    security(("bearer" = [])),
    params(("event_id" = Uuid, Path, description = "Event id")),
    request_body = EventUpdateRequest,
    responses(
        (status = 200, description = "Updated event", body = EventResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not the creator", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 409, description = "total_tickets below tickets already sold", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ValidationErrorBody),
    )
)]
async fn update_event(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
    ValidJson(changes): ValidJson<EventUpdateRequest>,
) -> Result<Json<EventResponse>, ApiError> {
    let event = service::update(&state, user.id, event_id, changes).await?;
    Ok(Json(event.into()))
}

/// Delete an event (creator only) that has no reserved or paid tickets.
#[utoipa::path(
    delete,
    path = "/events/{event_id}",
    tag = "events",
    security(("bearer" = [])),
    params(("event_id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Not the creator", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 409, description = "The event has reserved or paid tickets", body = ErrorBody),
    )
)]
async fn delete_event(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
) -> Result<StatusCode, ApiError> {
    service::delete(&state, user.id, event_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_times_are_refused() {
        let mut violations = Violations::new();
        assert!(
            parse_time(
                &mut violations,
                &["body", "start_time"],
                "2026-12-01T18:00:00"
            )
            .is_none()
        );
        assert!(
            parse_time(
                &mut violations,
                &["body", "start_time"],
                "2026-12-01T18:00:00+01:00"
            )
            .is_some()
        );
        assert_eq!(violations.into_errors().len(), 1);
    }

    #[test]
    fn distances_round_to_the_metre() {
        assert_eq!(round_km(1.23456), 1.235);
    }
}
