//! Who is calling: extractors for the bearer token (401 with `WWW-Authenticate: Bearer`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::{ApiError, NOT_AUTHENTICATED};
use super::state::AppState;
use crate::domain::{Scanner, User};
use crate::service::SCANNER_TOKEN_PREFIX;

/// The user id of a valid bearer token, without a database read (for the hot ticket writes;
/// see `Accounts::verify_token` for how a deleted user is still refused).
#[derive(Debug, Clone, Copy)]
pub struct BearerUserId(pub Uuid);

impl FromRequestParts<AppState> for BearerUserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(BearerUserId(
            state.accounts.verify_token(bearer_token(parts)?)?,
        ))
    }
}

/// The account behind the request's bearer token; 401 when the token is missing, invalid,
/// expired, or its user is gone.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = state.accounts.authenticate(bearer_token(parts)?).await?;
        Ok(CurrentUser(user))
    }
}

/// Who is scanning: a scanner token (`ntxs_…`, looked up on every request, so a revoke holds
/// at once) or a user's login token. 401 when neither is valid and live.
#[derive(Debug, Clone)]
pub struct ScannerAuth(pub Scanner);

impl FromRequestParts<AppState> for ScannerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let scanner = if token.starts_with(SCANNER_TOKEN_PREFIX) {
            state.scanning.scanner_token(token).await?
        } else {
            Scanner::User(state.accounts.verify_token(token)?)
        };
        Ok(ScannerAuth(scanner))
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
