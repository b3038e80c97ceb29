//! The caller's own account.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::current_user::CurrentUser;
use super::error::ApiError;
use super::extract::{Input, ValidJson};
use super::schemas::shared::{Invalid, NotJson, Unauthenticated};
use super::state::AppState;
use crate::domain::{GeoPoint, User, Violations};
use crate::service::Accounts;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(update_location))
}

/// A user as every answer shows it: never a password or hash.
#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    /// Null until a location is set.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            name: user.name,
            email: user.email,
            latitude: user.location.map(|p| p.latitude()),
            longitude: user.location.map(|p| p.longitude()),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A coordinate pair: the body of a location update and how answers show one.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct Location {
    #[schema(example = 6.5244, minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(example = 3.3792, minimum = -180, maximum = 180)]
    pub longitude: f64,
}

impl From<GeoPoint> for Location {
    fn from(point: GeoPoint) -> Self {
        Self {
            latitude: point.latitude(),
            longitude: point.longitude(),
        }
    }
}

impl Input for Location {
    type Valid = GeoPoint;

    fn validate(self) -> Result<GeoPoint, Violations> {
        let mut violations = Violations::new();
        let point = GeoPoint::parse(&mut violations, &[], self.latitude, self.longitude);
        violations.finish(|| point)
    }
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        Unauthenticated,
    )
)]
async fn me(CurrentUser(user): CurrentUser) -> Json<UserResponse> {
    Json(user.into())
}

/// Set the location used by "for you" recommendations.
#[utoipa::path(
    put, path = "/users/me/location", tag = "users",
    security(("bearer" = [])), request_body = Location,
    responses(
        (status = 200, description = "Updated user", body = UserResponse),
        Unauthenticated, NotJson, Invalid,
    )
)]
async fn update_location(
    State(accounts): State<Arc<Accounts>>,
    CurrentUser(user): CurrentUser,
    ValidJson(point): ValidJson<Location>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = accounts.set_location(user.id, point).await?;
    Ok(Json(user.into()))
}
