//! "For you": upcoming events near the caller's stored location.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::current_user::BearerUserId;
use super::error::ApiError;
use super::events::{EventListItem, round_km};
use super::extract::{Input, ValidQuery};
use super::query::{SearchPaging, radius};
use super::schemas::ErrorBody;
use super::schemas::shared::{Busy, Invalid, Unauthenticated};
use super::state::AppState;
use super::users::Location;
use crate::domain::{RadiusKm, Violations};
use crate::service::{Accounts, Search};

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
}

pub struct ForYouSearch {
    radius: Option<RadiusKm>,
}

impl Input for ForYouParams {
    type Valid = ForYouSearch;

    fn validate(self) -> Result<ForYouSearch, Violations> {
        let mut violations = Violations::new();
        let radius = radius(&mut violations, "radius", self.radius);
        violations.finish(|| Some(ForYouSearch { radius: radius? }))
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
    user_location: Location,
    search_radius_km: f64,
    skip: i64,
    limit: i64,
}

/// Upcoming, not sold-out events within the radius of the caller's location, nearest first.
#[utoipa::path(
    get, path = "/for-you/", tag = "recommendations",
    security(("bearer" = [])), params(ForYouParams, SearchPaging),
    responses(
        (status = 200, description = "Recommendations", body = ForYouResponse),
        (status = 400, description = "The user has no location", body = ErrorBody),
        Unauthenticated, Invalid, Busy,
    )
)]
async fn for_you(
    State(search): State<Arc<Search>>,
    State(accounts): State<Arc<Accounts>>,
    BearerUserId(caller): BearerUserId,
    ValidQuery(query): ValidQuery<ForYouParams>,
    ValidQuery(page): ValidQuery<SearchPaging>,
) -> Result<Json<ForYouResponse>, ApiError> {
    let location = accounts.location_of(caller).await?;
    let result = search.for_caller(location, query.radius, page).await?;
    let now = result.at;
    let recommendations = result
        .found
        .items
        .into_iter()
        .map(|found| Recommendation {
            distance_km: round_km(found.distance_km),
            event: EventListItem::new(&found.event, None, now),
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
    let center = Location::from(result.center);
    Ok(Json(ForYouResponse {
        recommendations,
        total: result.found.total,
        user_latitude: center.latitude,
        user_longitude: center.longitude,
        radius_km: result.radius.km(),
        events,
        user_location: center,
        search_radius_km: result.radius.km(),
        skip: result.page.skip(),
        limit: result.page.limit(),
    }))
}
