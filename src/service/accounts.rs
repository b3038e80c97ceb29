//! Registration, login and profile updates.

use uuid::Uuid;

use crate::api::auth::Credentials;
use crate::app::AppState;
use crate::auth::IssuedToken;
use crate::auth::password::{hash_password, verify_password};
use crate::domain::{Email, GeoPoint, NewUser, Password, User};
use crate::error::ApiError;
use crate::store::StoreError;

/// Validated registration input.
#[derive(Debug)]
pub struct Registration {
    pub name: String,
    pub email: Email,
    pub password: Password,
    pub location: Option<GeoPoint>,
}

#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    registration: Registration,
) -> Result<(User, IssuedToken), ApiError> {
    let password_hash = hash_password(registration.password).await?;
    let new_user = NewUser {
        id: Uuid::now_v7(),
        name: registration.name,
        email: registration.email,
        password_hash,
        location: registration.location,
    };
    let user = match state.store.insert_user(&new_user).await {
        Ok(user) => user,
        Err(StoreError::UniqueViolation) => {
            return Err(ApiError::Conflict("Email already registered".into()));
        }
        Err(error) => return Err(error.into()),
    };
    let token = state.tokens.issue(user.id)?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((user, token))
}

#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AppState,
    credentials: Credentials,
) -> Result<(User, IssuedToken), ApiError> {
    let found = state.store.find_credentials(&credentials.email).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    // Unknown accounts are checked against a dummy hash: same answer, similar time.
    let verified = verify_password(credentials.password, hash).await?;
    match user {
        Some(user) if verified => {
            let token = state.tokens.issue(user.id)?;
            Ok((user, token))
        }
        _ => Err(ApiError::Unauthorized("Invalid email or password")),
    }
}

pub async fn set_location(
    state: &AppState,
    user_id: Uuid,
    location: GeoPoint,
) -> Result<User, ApiError> {
    state
        .store
        .set_user_location(user_id, location)
        .await?
        .ok_or(ApiError::Unauthorized("Invalid authentication credentials"))
}
