//! Who is calling: extractors for the bearer token (401 with `WWW-Authenticate: Bearer`).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::{ApiError, NOT_AUTHENTICATED};
use crate::domain::User;
use crate::service::Accounts;

/// The user id of a valid bearer token, without a database read. For the hot ticket writes:
/// there the store itself checks the user (foreign key on insert, owner match on update), so a
/// token whose user is gone still cannot act.
#[derive(Debug, Clone, Copy)]
pub struct BearerUserId(pub Uuid);

impl<S> FromRequestParts<S> for BearerUserId
where
    Arc<Accounts>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let accounts = Arc::<Accounts>::from_ref(state);
        Ok(BearerUserId(accounts.verify_token(token)?))
    }
}

/// The account behind the request's bearer token; 401 when the token is missing, invalid,
/// expired, or its user is gone.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for CurrentUser
where
    Arc<Accounts>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let accounts = Arc::<Accounts>::from_ref(state);
        Ok(CurrentUser(accounts.authenticate(token).await?))
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let not_authenticated = || ApiError::Unauthorized(NOT_AUTHENTICATED.to_owned());
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(not_authenticated)?;
    header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or_else(not_authenticated)
}
