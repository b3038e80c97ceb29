use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::body::EventCreateRequest;
use super::response::EventResponse;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::ValidJson;
use crate::api::rate_limit::UserRateLimits;
use crate::api::schemas::shared::{Invalid, NotJson, RateLimited, Unauthenticated};
use crate::service::Events;

/// Create an event; the caller becomes its creator.
#[utoipa::path(
    post, path = "/events/", tag = "events",
    security(("bearer" = [])), request_body = EventCreateRequest,
    responses(
        (status = 201, description = "Event created", body = EventResponse),
        Unauthenticated, NotJson, Invalid, RateLimited,
    )
)]
pub async fn create_event(
    State(events): State<Arc<Events>>,
    State(limits): State<Arc<UserRateLimits>>,
    CurrentUser(user): CurrentUser,
    ValidJson(fields): ValidJson<EventCreateRequest>,
) -> Result<(StatusCode, Json<EventResponse>), ApiError> {
    limits.write_event(user.id)?;
    let event = events.create(user.id, fields).await?;
    Ok((
        StatusCode::CREATED,
        Json(EventResponse::new(event, Utc::now())),
    ))
}
