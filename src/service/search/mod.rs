//! Upcoming, not sold-out events near a point: the public nearby search and "for you",
//! answered from the process's read model ([`ReadModel`]) while it is fresh, from the
//! database otherwise.

mod index;
mod model;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use index::SearchPage;
pub use model::{Followed, Following, ReadModel};

use super::{Bulkhead, ServiceError};
use crate::domain::{GeoPoint, NearbyEvent, PageRequest, RadiusKm};
use crate::store::{DynStore, NearbyQuery, Page};

pub struct Search {
    store: DynStore,
    model: Arc<ReadModel>,
    /// The radius of a search that names none (`DEFAULT_SEARCH_RADIUS_KM`).
    default_radius: RadiusKm,
    expensive_reads: Arc<Bulkhead>,
}

/// A page of events near `center` within `radius`, nearest first, as they sold `at`.
pub struct SearchResult {
    pub at: DateTime<Utc>,
    pub center: GeoPoint,
    pub radius: RadiusKm,
    pub page: PageRequest,
    pub found: Page<NearbyEvent>,
}

impl Search {
    pub fn new(
        store: DynStore,
        model: Arc<ReadModel>,
        default_radius: RadiusKm,
        expensive_reads: Arc<Bulkhead>,
    ) -> Self {
        Self {
            store,
            model,
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
        let at = Utc::now();
        let found = match self.model.search(&query, at) {
            Some(SearchPage {
                mut found,
                descriptions_to_read,
            }) => {
                metrics::counter!("nearbytix_search_answers_total", "source" => "memory")
                    .increment(1);
                if !descriptions_to_read.is_empty() {
                    let mut read = self.store.event_descriptions(&descriptions_to_read).await?;
                    for item in &mut found.items {
                        if let Some(text) = read.remove(&item.event.id) {
                            item.event.description = Some(text);
                        }
                    }
                }
                found
            }
            None => {
                let _running = self.expensive_reads.enter().await?;
                let found = self.store.nearby_events(&query).await?;
                metrics::counter!("nearbytix_search_answers_total", "source" => "database")
                    .increment(1);
                found
            }
        };
        Ok(SearchResult {
            at,
            center,
            radius: query.radius,
            page,
            found,
        })
    }

    /// Events near a caller's stored location (`None`: the caller has none).
    pub async fn for_caller(
        &self,
        location: Option<GeoPoint>,
        radius: Option<RadiusKm>,
        page: PageRequest,
    ) -> Result<SearchResult, ServiceError> {
        let center = location.ok_or(ServiceError::NoLocation)?;
        self.near(center, radius, page).await
    }
}
