//! Shapes shared by several resources: error bodies and timestamps.

use serde::Serialize;
use utoipa::ToSchema;

/// Every non-2xx answer except validation failures.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(example = "Event with ID 3f0c0d9e-1c2b-4f1e-9a56-0b6a3c1d2e4f not found")]
    pub detail: String,
}

/// One failed rule of a 422 answer (FastAPI's shape).
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorItem {
    /// Where the bad value is: starts with `body`, `query`, `path` or `header`.
    #[schema(value_type = Vec<String>, example = json!(["body", "venue", "latitude"]))]
    pub loc: Vec<serde_json::Value>,
    #[schema(example = "must be between -90 and 90")]
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(example = "value_error")]
    pub kind: String,
}

/// A 422 answer.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<ValidationErrorItem>,
}
