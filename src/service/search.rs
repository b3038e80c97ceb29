//! Upcoming, not sold-out events near a point: the public nearby search and "for you".

use std::sync::Arc;

use super::{Bulkhead, ServiceError};
use crate::domain::{GeoPoint, NearbyEvent, PageRequest, RadiusKm, User};
use crate::store::{DynStore, NearbyQuery, Page};

pub struct Search {
    store: DynStore,
    /// The radius of a search that names none (`DEFAULT_SEARCH_RADIUS_KM`).
    default_radius: RadiusKm,
    expensive_reads: Arc<Bulkhead>,
}

/// A page of events near `center` within `radius`, nearest first.
pub struct SearchResult {
    pub center: GeoPoint,
    pub radius: RadiusKm,
    pub page: PageRequest,
    pub found: Page<NearbyEvent>,
}

impl Search {
    pub fn new(store: DynStore, default_radius: RadiusKm, expensive_reads: Arc<Bulkhead>) -> Self {
        Self {
            store,
            default_radius,
            expensive_reads,
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn near(
        &self,
        center: GeoPoint,
        radius: Option<RadiusKm>,
        page: PageRequest,
    ) -> Result<SearchResult, ServiceError> {
        let query = NearbyQuery {
            center,
            radius: radius.unwrap_or(self.default_radius),
            page,
        };
        let _running = self.expensive_reads.enter().await?;
        let found = self.store.nearby_events(&query).await?;
        Ok(SearchResult {
            center,
            radius: query.radius,
            page,
            found,
        })
    }

    /// Events near the user's stored location.
    pub async fn for_user(
        &self,
        user: &User,
        radius: Option<RadiusKm>,
        page: PageRequest,
    ) -> Result<SearchResult, ServiceError> {
        let center = user.location.ok_or(ServiceError::NoLocation)?;
        self.near(center, radius, page).await
    }
}
