//! Users: their columns, statements and rows.

use sqlx::query::QueryAs;
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::{Dialect, StoredTime, point};
use crate::domain::{NewUser, User};
use crate::store::StoreError;

macro_rules! user_columns {
    () => {
        "id, name, email, latitude, longitude, created_at, updated_at"
    };
}

/// `$1` id, `$2..$6` the new user (see [`bind_new_user`]), `$7` the write time.
pub(in crate::store) const INSERT_USER: &str = concat!(
    "INSERT INTO users (id, name, email, password_hash, latitude, longitude, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
    user_columns!()
);

pub(in crate::store) const FIND_USER: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");

pub(in crate::store) const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

/// `$1` id, `$2`/`$3` latitude/longitude, `$4` the write time.
pub(in crate::store) const SET_USER_LOCATION: &str = concat!(
    "UPDATE users SET latitude = $2, longitude = $3, updated_at = $4 WHERE id = $1 RETURNING ",
    user_columns!()
);

#[derive(FromRow)]
pub(in crate::store) struct UserRow<T> {
    id: Uuid,
    name: String,
    email: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: T,
    updated_at: T,
}

impl<T: StoredTime> UserRow<T> {
    pub(in crate::store) fn into_user(self) -> Result<User, StoreError> {
        let location = match (self.latitude, self.longitude) {
            (Some(latitude), Some(longitude)) => Some(point(latitude, longitude)?),
            _ => None,
        };
        Ok(User {
            id: self.id,
            name: self.name,
            email: self.email,
            location,
            created_at: self.created_at.into_utc()?,
            updated_at: self.updated_at.into_utc()?,
        })
    }
}

/// A user with their password hash (for login only).
#[derive(FromRow)]
pub(in crate::store) struct CredentialsRow<T> {
    #[sqlx(flatten)]
    pub(in crate::store) user: UserRow<T>,
    pub(in crate::store) password_hash: String,
}

/// Binds `$1..$6` of [`INSERT_USER`].
pub(in crate::store) fn bind_new_user<'q, DB: Dialect, O>(
    query: QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    user: &'q NewUser,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    Uuid: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(user.id)
        .bind(user.name.as_str())
        .bind(user.email.as_str())
        .bind(user.password_hash.as_str())
        .bind(user.location.map(|p| p.latitude()))
        .bind(user.location.map(|p| p.longitude()))
}
