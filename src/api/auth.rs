//! Registration and login.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Input, ValidJson};
use super::schemas::{ErrorBody, ValidationErrorBody};
use super::users::UserResponse;
use crate::app::AppState;
use crate::domain::user::NAME_MAX_CHARS;
use crate::domain::validation::bounded_text;
use crate::domain::{Email, FieldError, GeoPoint, Password, Violations};
use crate::error::ApiError;
use crate::service::accounts::{self, Registration};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 1–255 characters after trimming.
    #[schema(example = "Ada Obi")]
    name: String,
    /// Stored trimmed and lower-cased; unique regardless of case.
    #[schema(example = "ada@example.com")]
    email: String,
    /// 8–128 characters.
    #[schema(example = "correct horse battery staple")]
    password: String,
    /// −90..90; give both coordinates or neither.
    #[serde(default)]
    #[schema(example = 6.5244)]
    latitude: Option<f64>,
    /// −180..180; give both coordinates or neither.
    #[serde(default)]
    #[schema(example = 3.3792)]
    longitude: Option<f64>,
}

impl Input for RegisterRequest {
    type Valid = Registration;

    fn validate(self) -> Result<Registration, Vec<FieldError>> {
        let mut violations = Violations::new();
        let name = bounded_text(
            &mut violations,
            &["body", "name"],
            &self.name,
            1,
            NAME_MAX_CHARS,
        );
        let email = Email::parse(&self.email)
            .map_err(|msg| violations.push(&["body", "email"], msg))
            .ok();
        let password = Password::parse(self.password)
            .map_err(|msg| violations.push(&["body", "password"], msg))
            .ok();
        let location = optional_location(&mut violations, self.latitude, self.longitude);
        match (name, email, password, location) {
            (Some(name), Some(email), Some(password), Some(location)) if violations.is_empty() => {
                Ok(Registration {
                    name,
                    email,
                    password,
                    location,
                })
            }
            _ => Err(violations.into_errors()),
        }
    }
}

/// Both coordinates or neither; `None` when the pair is invalid (the failure is recorded).
fn optional_location(
    violations: &mut Violations,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> Option<Option<GeoPoint>> {
    match (latitude, longitude) {
        (None, None) => Some(None),
        (Some(_), None) => {
            violations.push(
                &["body", "longitude"],
                "latitude and longitude must be given together",
            );
            None
        }
        (None, Some(_)) => {
            violations.push(
                &["body", "latitude"],
                "latitude and longitude must be given together",
            );
            None
        }
        (Some(latitude), Some(longitude)) => {
            super::users::location(violations, latitude, longitude).map(Some)
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    #[serde(flatten)]
    user: UserResponse,
    access_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 1800)]
    expires_in: i64,
}

/// Create an account; the answer carries a token so the client is logged in at once.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = RegisterResponse),
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 429, description = "Too many attempts (per address and per email); see Retry-After", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ValidationErrorBody),
    )
)]
async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ValidJson(registration): ValidJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    state
        .auth_limits
        .check(peer.ip(), registration.email.as_str())?;
    let (user, token) = accounts::register(&state, registration).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: user.into(),
            access_token: token.access_token,
            token_type: "bearer",
            expires_in: token.expires_in,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

pub struct Credentials {
    pub email: String,
    pub password: String,
}

impl Input for LoginRequest {
    type Valid = Credentials;

    fn validate(self) -> Result<Credentials, Vec<FieldError>> {
        Ok(Credentials {
            email: self.email.trim().to_lowercase(),
            password: self.password,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    access_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    #[schema(example = 1800)]
    expires_in: i64,
    user: UserResponse,
}

/// Exchange email and password for a bearer token.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        (status = 429, description = "Too many attempts (per address and per email); see Retry-After", body = ErrorBody),
        (status = 422, description = "Invalid input", body = ValidationErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ValidJson(credentials): ValidJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    state.auth_limits.check(peer.ip(), &credentials.email)?;
    let (user, token) = accounts::login(&state, credentials).await?;
    Ok(Json(LoginResponse {
        access_token: token.access_token,
        token_type: "bearer",
        expires_in: token.expires_in,
        user: user.into(),
    }))
}
