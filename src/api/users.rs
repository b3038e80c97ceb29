//! The caller's own account.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{Input, ValidJson};
use super::schemas::{ErrorBody, ValidationErrorBody};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::domain::geo::GeoError;
use crate::domain::{FieldError, GeoPoint, User, Violations};
use crate::error::ApiError;
use crate::service::accounts;

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
            latitude: user.location.map(|p| p.latitude),
            longitude: user.location.map(|p| p.longitude),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A coordinate pair under `body`, or `None` with the failures recorded.
pub fn location(violations: &mut Violations, latitude: f64, longitude: f64) -> Option<GeoPoint> {
    match GeoPoint::new(latitude, longitude) {
        Ok(point) => Some(point),
        Err(error @ GeoError::Latitude) => {
            violations.push(&["body", "latitude"], error.to_string());
            if GeoPoint::new(0.0, longitude).is_err() {
                violations.push(&["body", "longitude"], GeoError::Longitude.to_string());
            }
            None
        }
        Err(error @ GeoError::Longitude) => {
            violations.push(&["body", "longitude"], error.to_string());
            None
        }
    }
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
async fn me(CurrentUser(user): CurrentUser) -> Json<UserResponse> {
    Json(user.into())
}

#[derive(Deserialize, ToSchema)]
pub struct LocationRequest {
    #[schema(example = 6.5244)]
    latitude: f64,
    #[schema(example = 3.3792)]
    longitude: f64,
}

impl Input for LocationRequest {
    type Valid = GeoPoint;

    fn validate(self) -> Result<GeoPoint, Vec<FieldError>> {
        let mut violations = Violations::new();
        match location(&mut violations, self.latitude, self.longitude) {
            Some(point) => Ok(point),
            None => Err(violations.into_errors()),
        }
    }
}

/// Set the location used by "for you" recommendations.
#[utoipa::path(
    put,
    path = "/users/me/location",
    tag = "users",
    security(("bearer" = [])),
    request_body = LocationRequest,
    responses(
        (status = 200, description = "Updated user", body = UserResponse),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid coordinates", body = ValidationErrorBody),
    )
)]
async fn update_location(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidJson(point): ValidJson<LocationRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = accounts::set_location(&state, user.id, point).await?;
    Ok(Json(user.into()))
}
