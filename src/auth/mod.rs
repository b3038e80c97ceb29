//! Passwords, tokens, and the `CurrentUser` extractor.

pub mod jwt;
pub mod password;
mod secret;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::domain::User;
use crate::error::ApiError;

pub use jwt::{IssuedToken, TokenKeys};
pub use secret::resolve_jwt_secret;

const NOT_AUTHENTICATED: &str = "Not authenticated";
const INVALID_CREDENTIALS: &str = "Invalid authentication credentials";

/// The user id of a valid bearer token, without a database read. For the hot ticket writes:
/// there the store itself checks the user (foreign key on insert, owner match on update), so a
/// token whose user is gone still cannot act.
#[derive(Debug, Clone, Copy)]
pub struct BearerUserId(pub uuid::Uuid);

impl FromRequestParts<AppState> for BearerUserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        state
            .tokens
            .verify(token)
            .map(BearerUserId)
            .ok_or(ApiError::Unauthorized(INVALID_CREDENTIALS))
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(NOT_AUTHENTICATED))?;
    header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(NOT_AUTHENTICATED))
}

/// The account behind the request's bearer token. Rejects with 401 (and
/// `WWW-Authenticate: Bearer`) when the token is missing, invalid, expired, or its user is gone.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let user_id = state
            .tokens
            .verify(token)
            .ok_or(ApiError::Unauthorized(INVALID_CREDENTIALS))?;
        let user = state
            .store
            .find_user(user_id)
            .await?
            .ok_or(ApiError::Unauthorized(INVALID_CREDENTIALS))?;
        Ok(CurrentUser(user))
    }
}
