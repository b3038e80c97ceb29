use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::response::{EventListItem, EventListResponse};
use crate::api::error::ApiError;
use crate::api::extract::{Input, ValidQuery};
use crate::api::query::{SearchPaging, radius};
use crate::api::schemas::PageInfo;
use crate::api::schemas::shared::{Busy, Invalid};
use crate::domain::{GeoPoint, RadiusKm, Violations};
use crate::service::Search;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NearbyParams {
    /// Latitude of the search centre (−90..90).
    #[param(minimum = -90, maximum = 90)]
    latitude: f64,
    /// Longitude of the search centre (−180..180).
    #[param(minimum = -180, maximum = 180)]
    longitude: f64,
    /// Search radius in km, 1–500. Default: DEFAULT_SEARCH_RADIUS_KM (50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    radius_km: Option<f64>,
}

pub struct NearbySearch {
    center: GeoPoint,
    radius: Option<RadiusKm>,
}

impl Input for NearbyParams {
    type Valid = NearbySearch;

    fn validate(self) -> Result<NearbySearch, Violations> {
        let mut violations = Violations::new();
        let center = GeoPoint::parse(&mut violations, &[], self.latitude, self.longitude);
        let radius = radius(&mut violations, "radius_km", self.radius_km);
        violations.finish(|| {
            Some(NearbySearch {
                center: center?,
                radius: radius?,
            })
        })
    }
}

/// Upcoming, not sold-out events near a point, nearest first.
#[utoipa::path(
    get, path = "/events/nearby", tag = "events",
    params(NearbyParams, SearchPaging),
    responses(
        (status = 200, description = "A page of events with distances", body = EventListResponse),
        Invalid, Busy,
    )
)]
pub async fn nearby_events(
    State(search): State<Arc<Search>>,
    ValidQuery(query): ValidQuery<NearbyParams>,
    ValidQuery(page): ValidQuery<SearchPaging>,
) -> Result<Json<EventListResponse>, ApiError> {
    let result = search.near(query.center, query.radius, page).await?;
    let at = result.at;
    let (events, page) = PageInfo::split(result.found, result.page, |found| {
        EventListItem::found(&found, at)
    });
    Ok(Json(EventListResponse { events, page }))
}
