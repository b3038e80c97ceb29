//! Registration, login, tokens and the caller's profile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::ServiceError;
use super::recent::Recent;
use crate::auth::password::Hasher;
use crate::auth::{IssuedToken, TokenKeys};
use crate::domain::{Credentials, GeoPoint, NewUser, Registration, User};
use crate::store::{DynStore, StoreError};

/// How long a caller's location is reused for "for you" without reading the database: the
/// same bound as search's freshness (a location changed through another process shows within
/// it; through this one at once).
const LOCATION_KEPT_FOR: Duration = Duration::from_secs(1);
/// Most callers whose location is kept at once.
const MAX_LOCATIONS: usize = 100_000;

pub struct Accounts {
    store: DynStore,
    tokens: Arc<TokenKeys>,
    hasher: Hasher,
    /// Recent callers' locations, for the search hot path.
    locations: Recent<Option<GeoPoint>>,
}

impl Accounts {
    pub fn new(store: DynStore, tokens: Arc<TokenKeys>, hasher: Hasher) -> Self {
        Self {
            store,
            tokens,
            hasher,
            locations: Recent::new(LOCATION_KEPT_FOR, MAX_LOCATIONS),
        }
    }

    /// The stored location of the user a token names (`None`: none set), read at most
    /// [`LOCATION_KEPT_FOR`] ago; a token of a user that is gone is refused once that user is
    /// no longer kept (within the same bound).
    pub async fn location_of(&self, user_id: Uuid) -> Result<Option<GeoPoint>, ServiceError> {
        if let Some(location) = self.locations.get(user_id) {
            return Ok(location);
        }
        let read_at = Instant::now();
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        self.locations.keep(user_id, user.location, read_at);
        Ok(user.location)
    }

    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        registration: Registration,
    ) -> Result<(User, IssuedToken), ServiceError> {
        let password_hash = self.hasher.hash(registration.password).await?;
        let new_user = NewUser {
            id: Uuid::now_v7(),
            name: registration.name,
            email: registration.email,
            password_hash,
            location: registration.location,
        };
        let user = match self.store.insert_user(&new_user).await {
            Ok(user) => user,
            Err(StoreError::UniqueViolation) => return Err(ServiceError::EmailTaken),
            Err(error) => return Err(error.into()),
        };
        let token = self.tokens.issue(user.id)?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok((user, token))
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        credentials: Credentials,
    ) -> Result<(User, IssuedToken), ServiceError> {
        let found = self
            .store
            .find_credentials(credentials.email.as_str())
            .await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        // Unknown accounts are checked against a dummy hash: same answer, similar time.
        let verified = self.hasher.verify(credentials.password, hash).await?;
        match user {
            Some(user) if verified => {
                let token = self.tokens.issue(user.id)?;
                Ok((user, token))
            }
            _ => Err(ServiceError::WrongCredentials),
        }
    }

    /// The user id a valid token names, without a database read (the hot ticket writes). The
    /// writes themselves find out when the user is gone: a reservation hits the users foreign
    /// key, a key claim is refused (PostgreSQL: no user row to lock; SQLite: the foreign key),
    /// and a pay or cancel that finds nothing asks `user_exists` — so a deleted user's token is
    /// refused everywhere without a read on every request — except by an order refused from a
    /// process's memory of a sold-out sale, as anyone would be.
    pub fn verify_token(&self, token: &str) -> Result<Uuid, ServiceError> {
        self.tokens.verify(token).ok_or(ServiceError::InvalidToken)
    }

    /// The account behind a token; a token of a deleted user is refused.
    pub async fn authenticate(&self, token: &str) -> Result<User, ServiceError> {
        let user_id = self
            .tokens
            .verify(token)
            .ok_or(ServiceError::InvalidToken)?;
        self.store
            .find_user(user_id)
            .await?
            .ok_or(ServiceError::InvalidToken)
    }

    pub async fn set_location(
        &self,
        user_id: Uuid,
        location: GeoPoint,
    ) -> Result<User, ServiceError> {
        let read_at = Instant::now();
        let user = self
            .store
            .set_user_location(user_id, location)
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        self.locations.keep(user_id, user.location, read_at);
        Ok(user)
    }
}
