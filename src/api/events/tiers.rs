//! An event's tiers and sales, managed by its creator.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::body::{TierBody, TierUpdateRequest};
use super::response::{EventStatsResponse, TierResponse};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::{PathId, PathIds, ValidJson};
use crate::api::rate_limit::UserRateLimits;
use crate::api::schemas::ErrorBody;
use crate::api::schemas::shared::{
    EventNotFound, EventPath, Invalid, NotJson, NotTheCreator, RateLimited, TierNotFound, TierPath,
    Unauthenticated,
};
use crate::service::Events;

/// Add a tier (creator only); it goes last in sale order.
#[utoipa::path(
    post, path = "/events/{event_id}/tiers", tag = "events",
    security(("bearer" = [])), params(EventPath), request_body = TierBody,
    responses(
        (status = 201, description = "Tier added", body = TierResponse),
        (status = 409, description = "Another tier has the name, or the event has 20 tiers", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, NotTheCreator, RateLimited,
    )
)]
pub async fn add_tier(
    State(events): State<Arc<Events>>,
    State(limits): State<Arc<UserRateLimits>>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
    ValidJson(fields): ValidJson<TierBody>,
) -> Result<(StatusCode, Json<TierResponse>), ApiError> {
    limits.write_event(user.id)?;
    let (tier, seats_left) = events.add_tier(user.id, event_id, fields).await?;
    Ok((
        StatusCode::CREATED,
        Json(TierResponse::new(tier, seats_left)),
    ))
}

/// Change a tier (creator only); the merged tier must satisfy the create rules.
#[utoipa::path(
    put, path = "/events/{event_id}/tiers/{tier_id}", tag = "events",
    security(("bearer" = [])), params(TierPath), request_body = TierUpdateRequest,
    responses(
        (status = 200, description = "Updated tier", body = TierResponse),
        (status = 409, description = "Another tier has the name, or quantity below the tickets sold", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, TierNotFound, NotTheCreator, RateLimited,
    )
)]
pub async fn update_tier(
    State(events): State<Arc<Events>>,
    State(limits): State<Arc<UserRateLimits>>,
    CurrentUser(user): CurrentUser,
    PathIds(event_id, tier_id): PathIds,
    ValidJson(patch): ValidJson<TierUpdateRequest>,
) -> Result<Json<TierResponse>, ApiError> {
    limits.write_event(user.id)?;
    let (tier, seats_left) = events
        .update_tier(user.id, event_id, tier_id, patch)
        .await?;
    Ok(Json(TierResponse::new(tier, seats_left)))
}

/// Delete a tier (creator only) without reserved or paid tickets; orders keep its name and
/// price.
#[utoipa::path(
    delete, path = "/events/{event_id}/tiers/{tier_id}", tag = "events",
    security(("bearer" = [])), params(TierPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The tier has reserved or paid tickets, or is the event's last", body = ErrorBody),
        Unauthenticated, Invalid, TierNotFound, NotTheCreator, RateLimited,
    )
)]
pub async fn delete_tier(
    State(events): State<Arc<Events>>,
    State(limits): State<Arc<UserRateLimits>>,
    CurrentUser(user): CurrentUser,
    PathIds(event_id, tier_id): PathIds,
) -> Result<StatusCode, ApiError> {
    limits.write_event(user.id)?;
    events.delete_tier(user.id, event_id, tier_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the event sold, whole and per tier (creator only).
#[utoipa::path(
    get, path = "/events/{event_id}/stats", tag = "events",
    security(("bearer" = [])), params(EventPath),
    responses(
        (status = 200, description = "Sales", body = EventStatsResponse),
        Unauthenticated, Invalid, EventNotFound, NotTheCreator,
    )
)]
pub async fn event_stats(
    State(events): State<Arc<Events>>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
) -> Result<Json<EventStatsResponse>, ApiError> {
    Ok(Json(events.stats(user.id, event_id).await?.into()))
}
