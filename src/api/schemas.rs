//! Shapes shared by several resources: error bodies and paging.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::FieldError;
use crate::domain::PageRequest;
use crate::store::Page;

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
    /// The items of `found`, each shown with `show`, and the paging fields of the answer.
    pub fn split<T, U>(
        found: Page<T>,
        page: PageRequest,
        show: impl FnMut(T) -> U,
    ) -> (Vec<U>, PageInfo) {
        let info = PageInfo {
            total: found.total,
            skip: page.skip(),
            limit: page.limit(),
        };
        (found.items.into_iter().map(show).collect(), info)
    }
}

/// Answers and path parameters several paths share, named in their `responses(...)` and
/// `params(...)`. The types only describe the OpenAPI document: the answers themselves are
/// made by [`super::super::error::ApiError`], the ids read by `PathId`.
#[allow(dead_code)]
pub mod shared {
    use utoipa::{IntoParams, IntoResponses};
    use uuid::Uuid;

    use super::{ErrorBody, ValidationErrorBody};

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct EventPath {
        /// Event id
        event_id: Uuid,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct TicketPath {
        /// Ticket id
        ticket_id: Uuid,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct TierPath {
        /// Event id
        event_id: Uuid,
        /// Tier id
        tier_id: Uuid,
    }

    #[derive(IntoResponses)]
    #[response(status = 404, description = "No such event, or no such tier of it")]
    pub struct TierNotFound(ErrorBody);

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct ListPath {
        /// Event id
        event_id: Uuid,
        /// Check-in list id
        list_id: Uuid,
    }

    #[derive(IntoResponses)]
    #[response(
        status = 404,
        description = "No such event, or no such check-in list of it"
    )]
    pub struct ListNotFound(ErrorBody);

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    #[allow(dead_code)]
    pub struct TokenPath {
        /// Event id
        event_id: Uuid,
        /// Scanner token id
        token_id: Uuid,
    }

    #[derive(IntoParams)]
    #[into_params(parameter_in = Path)]
    pub struct OrderPath {
        /// Order id
        order_id: Uuid,
    }

    #[derive(IntoResponses)]
    #[response(status = 401, description = "Missing or invalid token")]
    pub struct Unauthenticated(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 415, description = "Not a JSON body")]
    pub struct NotJson(ErrorBody);

    #[derive(IntoResponses)]
    #[response(
        status = 422,
        description = "Invalid input: each item names the offending body field, query or path \
                       parameter, or header"
    )]
    pub struct Invalid(ValidationErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 429, description = "Too many attempts; see Retry-After")]
    pub struct RateLimited(ErrorBody);

    #[derive(IntoResponses)]
    #[response(
        status = 503,
        description = "Too much of this work in flight right now; see Retry-After"
    )]
    pub struct Busy(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 404, description = "No such event")]
    pub struct EventNotFound(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 403, description = "Not the creator")]
    pub struct NotTheCreator(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 404, description = "No such ticket")]
    pub struct TicketNotFound(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 403, description = "Not your ticket")]
    pub struct NotYourTicket(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 404, description = "No such order")]
    pub struct OrderNotFound(ErrorBody);

    #[derive(IntoResponses)]
    #[response(status = 403, description = "Not your order")]
    pub struct NotYourOrder(ErrorBody);
}
