//! "For you": upcoming events near the caller's stored location.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::{EventListItem, paging, radius, round_km};
use super::extract::{Input, ValidQuery};
use super::schemas::{ErrorBody, ValidationErrorBody};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::domain::{FieldError, GeoPoint, Violations};
use crate::error::ApiError;
use crate::store::NearbyQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(for_you))
        .route("/for-you", get(for_you))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForYouParams {
    /// Search radius in km, 1–500 (`radius_km` is accepted too). Default: DEFAULT_SEARCH_RADIUS_KM.
    #[serde(default, alias = "radius_km")]
    #[param(minimum = 1, maximum = 500)]
    radius: Option<f64>,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size, 1–100.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
}

pub struct ForYouSearch {
    radius_km: Option<f64>,
    skip: i64,
    limit: i64,
}

impl Input for ForYouParams {
    type Valid = ForYouSearch;

    fn validate(self) -> Result<ForYouSearch, Vec<FieldError>> {
        let mut violations = Violations::new();
        let radius_km = self
            .radius
            .map(|raw| radius(&mut violations, "radius", Some(raw), raw));
        let (skip, limit) = paging(&mut violations, self.skip, self.limit, 20, 100);
        violations.finish(|| ForYouSearch {
            radius_km,
            skip,
            limit,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct Recommendation {
    event: EventListItem,
    distance_km: f64,
}

/// Both the seed's fields and those the web client reads.
#[derive(Serialize, ToSchema)]
pub struct ForYouResponse {
    recommendations: Vec<Recommendation>,
    /// All matches within the radius (not the page length).
    total: i64,
    user_latitude: f64,
    user_longitude: f64,
    radius_km: f64,
    events: Vec<EventListItem>,
    user_location: GeoPoint,
    search_radius_km: f64,
    skip: i64,
    limit: i64,
}

/// Upcoming, not sold-out events within the radius of the caller's location, nearest first.
#[utoipa::path(
    get,
    path = "/for-you/",
    tag = "recommendations",
    security(("bearer" = [])),
    params(ForYouParams),
    responses(
        (status = 200, description = "Recommendations", body = ForYouResponse),
        (status = 400, description = "The user has no location", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid query", body = ValidationErrorBody),
    )
)]
async fn for_you(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidQuery(search): ValidQuery<ForYouParams>,
) -> Result<Json<ForYouResponse>, ApiError> {
    let center = user.location.ok_or_else(|| {
        ApiError::BadRequest("User has no location set. Please update user location first.".into())
    })?;
    let radius_km = search
        .radius_km
        .unwrap_or(state.settings.default_search_radius_km);
    let query = NearbyQuery {
        center,
        radius_km,
        skip: search.skip,
        limit: search.limit,
    };
    let page = state.store.nearby_events(&query).await?;
    let recommendations = page
        .items
        .into_iter()
        .map(|found| {
            let distance_km = round_km(found.distance_km);
            Recommendation {
                event: EventListItem::new(found.event, None),
                distance_km,
            }
        })
        .collect::<Vec<_>>();
    let events = recommendations
        .iter()
        .map(|recommendation| {
            recommendation
                .event
                .with_distance(recommendation.distance_km)
        })
        .collect();
    Ok(Json(ForYouResponse {
        recommendations,
        total: page.total,
        user_latitude: center.latitude,
        user_longitude: center.longitude,
        radius_km,
        events,
        user_location: center,
        search_radius_km: radius_km,
        skip: query.skip,
        limit: query.limit,
    }))
}
