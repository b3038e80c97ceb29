//! The one mapping from refusals to HTTP: every service error and every broken input rule
//! becomes a status code and the contract's `{"detail": …}` body (a list for 422).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::{PathSegment, ViolationKind, Violations};
use crate::service::ServiceError;

pub const INTERNAL_ERROR_DETAIL: &str = "Internal server error";
pub const UNAVAILABLE_DETAIL: &str = "Service temporarily unavailable";
pub const NOT_AUTHENTICATED: &str = "Not authenticated";

/// One step of `loc`: a key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for LocSegment {
    fn from(key: &str) -> Self {
        LocSegment::Key(key.to_owned())
    }
}

/// One broken rule in FastAPI's shape: where (`loc`), what (`msg`) and a machine-readable `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ValidationErrorItem)]
pub struct FieldError {
    /// Where the bad value is: starts with `body`, `query`, `path` or `header`.
    #[schema(example = json!(["body", "venue", "latitude"]))]
    pub loc: Vec<LocSegment>,
    #[schema(example = "must be between -90 and 90")]
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(example = "value_error")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: Vec<LocSegment>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// Where an input came from: the first item of `loc`.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Body,
    Query,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Body => "body",
            Source::Query => "query",
        }
    }
}

/// Domain violations as the 422 list, each `loc` rooted at `source`.
pub fn field_errors(source: Source, violations: &Violations) -> Vec<FieldError> {
    violations
        .iter()
        .map(|violation| {
            let mut loc = vec![LocSegment::from(source.as_str())];
            loc.extend(violation.path.iter().map(|segment| match segment {
                PathSegment::Field(field) => LocSegment::Key(field.clone()),
                PathSegment::Index(index) => LocSegment::Index(*index),
            }));
            let kind = match violation.kind {
                ViolationKind::Invalid => "value_error",
                ViolationKind::Missing => "missing",
                ViolationKind::DateTime => "datetime_parsing",
                ViolationKind::Choice => "enum",
            };
            FieldError::new(loc, violation.message.clone(), kind)
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
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
    /// The server sheds this work for now.
    #[error("overloaded")]
    Overloaded { retry_after: std::time::Duration },
    /// The database is away; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A service the answer needs (the payment provider) is away; the client may retry.
    #[error("{detail}")]
    ProviderUnavailable {
        retry_after: std::time::Duration,
        detail: String,
    },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(error: FieldError) -> Self {
        ApiError::Validation(vec![error])
    }

    /// A broken rule of the request's `Idempotency-Key` header.
    pub fn idempotency_key(msg: impl Into<String>) -> Self {
        ApiError::validation(FieldError::new(
            vec!["header".into(), "Idempotency-Key".into()],
            msg,
            "value_error",
        ))
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
            ApiError::Overloaded { .. } | ApiError::ProviderUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let detail = error.to_string();
        match error {
            // Rules checked by services concern what the client sent in the body.
            ServiceError::Invalid(violations) => {
                ApiError::Validation(field_errors(Source::Body, &violations))
            }
            ServiceError::WrongCredentials | ServiceError::InvalidToken => {
                ApiError::Unauthorized(detail)
            }
            ServiceError::NotFound(..) => ApiError::NotFound(detail),
            ServiceError::NotOwner(_) => ApiError::Forbidden(detail),
            ServiceError::EmailTaken
            | ServiceError::EventStarted
            | ServiceError::NotEnough { .. }
            | ServiceError::SalesNotStarted(_)
            | ServiceError::SalesEnded(_)
            | ServiceError::PerPersonLimit(_)
            | ServiceError::PartOfOrder(_)
            | ServiceError::TierNameTaken
            | ServiceError::TooManyTiers
            | ServiceError::TooManyLists(_)
            | ServiceError::TooManyTokens(_)
            | ServiceError::ListInUse
            | ServiceError::TierBelowSold
            | ServiceError::TierHasTickets
            | ServiceError::LastTier
            | ServiceError::TotalBelowSold
            | ServiceError::CurrencyLocked
            | ServiceError::EventHasTickets
            | ServiceError::NotReserved(_)
            | ServiceError::NotPaid(_)
            | ServiceError::PaymentNotStarted(_)
            | ServiceError::PaymentAttemptsExhausted
            | ServiceError::PaymentProcessing
            | ServiceError::RefundRefused(_)
            | ServiceError::TicketNotPaid
            | ServiceError::WaitlistRefused(_)
            | ServiceError::EntryFinal(_)
            | ServiceError::IdempotencyKeyInProgress
            | ServiceError::IdempotencyKeyInUse => ApiError::Conflict(detail),
            ServiceError::UnknownCursor => {
                let mut violations = Violations::new();
                violations.push(&["since"], "is not a cursor of this event's bundle");
                ApiError::Validation(field_errors(Source::Query, &violations))
            }
            ServiceError::HoldExpired => ApiError::Gone(detail),
            ServiceError::NoLocation
            | ServiceError::InvalidSignature
            | ServiceError::MalformedWebhook => ApiError::BadRequest(detail),
            ServiceError::ProviderUnavailable { retry_after } => ApiError::ProviderUnavailable {
                retry_after,
                detail,
            },
            ServiceError::IdempotencyKeyReused => ApiError::idempotency_key(detail),
            ServiceError::TooManyIdempotencyKeys => ApiError::TooManyRequests {
                retry_after: std::time::Duration::from_secs(3600),
            },
            ServiceError::TooManyReissues { retry_after }
            | ServiceError::RateLimited { retry_after } => ApiError::TooManyRequests {
                retry_after: retry_after.max(std::time::Duration::from_secs(1)),
            },
            ServiceError::Overloaded { retry_after } => ApiError::Overloaded { retry_after },
            ServiceError::Unavailable(error) => ApiError::Unavailable(error.into()),
            ServiceError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

/// The body of every error answer.
pub fn detail_response(status: StatusCode, detail: impl Serialize) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

impl ApiError {
    /// What the body's `detail` says.
    fn detail(&self) -> serde_json::Value {
        match self {
            ApiError::Validation(errors) => json!(errors),
            ApiError::Unavailable(_) => UNAVAILABLE_DETAIL.into(),
            ApiError::Internal(_) => INTERNAL_ERROR_DETAIL.into(),
            ApiError::PayloadTooLarge => "Request body too large".into(),
            ApiError::TooManyRequests { .. } => "Too many attempts; try again later".into(),
            ApiError::Overloaded { .. } => "Server busy; try again shortly".into(),
            ApiError::BadRequest(detail)
            | ApiError::Unauthorized(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::Gone(detail)
            | ApiError::UnsupportedMediaType(detail)
            | ApiError::ProviderUnavailable { detail, .. } => detail.as_str().into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // The cause chain goes to the log only; clients get a generic body.
            ApiError::Unavailable(error) => {
                tracing::warn!(error = format!("{error:#}"), "database unavailable");
            }
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
            }
            _ => {}
        }
        let mut response = detail_response(status, self.detail());
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after }
            | ApiError::Overloaded { retry_after }
            | ApiError::ProviderUnavailable { retry_after, .. } => {
                // Whole seconds, rounded up.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            _ => {}
        }
        response
    }
}
