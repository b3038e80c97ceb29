//! Shapes shared by several resources: error bodies and paging.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::FieldError;
use crate::domain::PageRequest;

/// Every non-2xx answer except validation failures.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "Event with ID 3f0c0d9e-1c2b-4f1e-9a56-0b6a3c1d2e4f not found")]
    pub detail: String,
}

/// A 422 answer.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// The paging fields of every listing.
#[derive(Serialize, ToSchema)]
pub struct PageInfo {
    /// Everything matching the filter (not the page length).
    pub total: i64,
    pub skip: i64,
    pub limit: i64,
}

impl PageInfo {
    pub fn new(total: i64, page: PageRequest) -> Self {
        Self {
            total,
            skip: page.skip(),
            limit: page.limit(),
        }
    }
}
