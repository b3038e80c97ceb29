//! One error type for every handler, answered in the contract's `{"detail": …}` shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::FieldError;
use crate::store::StoreError;

pub const INTERNAL_ERROR_DETAIL: &str = "Internal server error";
pub const UNAVAILABLE_DETAIL: &str = "Service temporarily unavailable";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests")]
    TooManyRequests { retry_after: std::time::Duration },
    /// The database is away; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(error: FieldError) -> Self {
        ApiError::Validation(vec![error])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::Unavailable(error.into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

/// The body of every error answer.
pub fn detail_response(status: StatusCode, detail: impl serde::Serialize) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            ApiError::Validation(errors) => detail_response(status, errors),
            ApiError::Unauthorized(detail) => {
                let mut response = detail_response(status, detail);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            ApiError::Unavailable(error) => {
                tracing::warn!(error = format!("{error:#}"), "database unavailable");
                detail_response(status, UNAVAILABLE_DETAIL)
            }
            ApiError::Internal(error) => {
                // The cause chain goes to the log only; clients get a generic body.
                tracing::error!(error = format!("{error:#}"), "internal error");
                detail_response(status, INTERNAL_ERROR_DETAIL)
            }
            ApiError::PayloadTooLarge => detail_response(status, "Request body too large"),
            ApiError::TooManyRequests { retry_after } => {
                let mut response = detail_response(status, "Too many attempts; try again later");
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            ApiError::BadRequest(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::Gone(detail)
            | ApiError::UnsupportedMediaType(detail) => detail_response(status, detail),
        }
    }
}
