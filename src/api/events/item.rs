use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::body::EventUpdateRequest;
use super::response::EventResponse;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::{PathId, ValidJson};
use crate::api::rate_limit::UserRateLimits;
use crate::api::schemas::ErrorBody;
use crate::api::schemas::shared::{
    EventNotFound, EventPath, Invalid, NotJson, NotTheCreator, RateLimited, Unauthenticated,
};
use crate::service::Events;

/// One event.
#[utoipa::path(
    get, path = "/events/{event_id}", tag = "events",
    params(EventPath),
    responses(
        (status = 200, description = "The event", body = EventResponse),
        Invalid, EventNotFound,
    )
)]
pub async fn get_event(
    State(events): State<Arc<Events>>,
    PathId(event_id): PathId,
) -> Result<Json<EventResponse>, ApiError> {
    let event = events.get(event_id).await?;
    Ok(Json(EventResponse::new(event, Utc::now())))
}

/// Change an event (creator only). The merged result must satisfy the create rules.
#[utoipa::path(
    put, path = "/events/{event_id}", tag = "events",
    security(("bearer" = [])), params(EventPath), request_body = EventUpdateRequest,
    responses(
        (status = 200, description = "Updated event", body = EventResponse),
        (status = 409, description = "total_tickets below tickets already sold, or currency changed although the event has orders", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, NotTheCreator, RateLimited,
    )
)]
pub async fn update_event(
    State(events): State<Arc<Events>>,
    State(limits): State<Arc<UserRateLimits>>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
    ValidJson(changes): ValidJson<EventUpdateRequest>,
) -> Result<Json<EventResponse>, ApiError> {
    limits.write_event(user.id)?;
    let event = events.update(user.id, event_id, changes).await?;
    Ok(Json(EventResponse::new(event, Utc::now())))
}

/// Delete an event (creator only) that has no reserved or paid tickets.
#[utoipa::path(
    delete, path = "/events/{event_id}", tag = "events",
    security(("bearer" = [])), params(EventPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The event has reserved or paid tickets", body = ErrorBody),
        Unauthenticated, Invalid, EventNotFound, NotTheCreator,
    )
)]
pub async fn delete_event(
    State(events): State<Arc<Events>>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
) -> Result<StatusCode, ApiError> {
    events.delete(user.id, event_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
