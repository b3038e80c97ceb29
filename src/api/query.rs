//! Query parameters several listings share: paging limits, radius and timestamps.

use chrono::{DateTime, Utc};

use crate::domain::paging::PageLimits;
use crate::domain::time::parse_timestamp;
use crate::domain::{RadiusKm, ViolationKind, Violations};

/// `/events/` and `/tickets/my-tickets`.
pub const LISTING_PAGE: PageLimits = PageLimits {
    default: 100,
    max: 1000,
};
/// Distance searches (`/events/nearby`, `/for-you/`).
pub const SEARCH_PAGE: PageLimits = PageLimits {
    default: 20,
    max: 100,
};

/// An optional radius; `None` when given but out of range (recorded at `field`).
pub fn radius(
    violations: &mut Violations,
    field: &str,
    raw: Option<f64>,
) -> Option<Option<RadiusKm>> {
    match raw {
        None => Some(None),
        Some(km) => violations.check(&[field], RadiusKm::new(km)).map(Some),
    }
}

/// An optional RFC 3339 timestamp; `None` when given but malformed (recorded at `field`).
pub fn timestamp(
    violations: &mut Violations,
    field: &str,
    raw: Option<&str>,
) -> Option<Option<DateTime<Utc>>> {
    match raw {
        None => Some(None),
        Some(raw) => match parse_timestamp(raw) {
            Ok(at) => Some(Some(at)),
            Err(error) => {
                violations.push_kind(&[field], error.to_string(), ViolationKind::DateTime);
                None
            }
        },
    }
}
