//! Registration and login.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Input, ValidJson};
use super::schemas::ErrorBody;
use super::schemas::shared::{Busy, Invalid, RateLimited};
use super::state::AppState;
use super::users::UserResponse;
use crate::auth::IssuedToken;
use crate::domain::{Credentials, Registration, RegistrationFields, Violations};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 1–255 characters after trimming.
    #[schema(example = "Ada Obi", min_length = 1, max_length = 255)]
    name: String,
    /// Stored trimmed, NFKC-normalised and lower-cased; unique regardless of case.
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    /// 8–128 characters.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    password: String,
    /// −90..90; give both coordinates or neither.
    #[serde(default)]
    #[schema(example = 6.5244, minimum = -90, maximum = 90)]
    latitude: Option<f64>,
    /// −180..180; give both coordinates or neither.
    #[serde(default)]
    #[schema(example = 3.3792, minimum = -180, maximum = 180)]
    longitude: Option<f64>,
}

/// Adds "both coordinates or neither" to the register body's schema, which the derived schema
/// cannot say: the body is the derived object and one of the two shapes.
pub(super) fn require_coordinate_pairs(openapi: &mut OpenApi) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let Some(derived) = components.schemas.remove("RegisterRequest") else {
        return;
    };
    let coordinate = |kind: Type| ObjectBuilder::new().schema_type(kind);
    let both = ObjectBuilder::new()
        .property("latitude", coordinate(Type::Number))
        .property("longitude", coordinate(Type::Number))
        .required("latitude")
        .required("longitude");
    let neither = ObjectBuilder::new()
        .property("latitude", coordinate(Type::Null))
        .property("longitude", coordinate(Type::Null));
    let pair = AnyOfBuilder::new().item(both).item(neither);
    let body = AllOfBuilder::new().item(derived).item(pair);
    components
        .schemas
        .insert("RegisterRequest".to_owned(), body.into());
}

impl Input for RegisterRequest {
    type Valid = Registration;

    fn validate(self) -> Result<Registration, Violations> {
        Registration::parse(RegistrationFields {
            name: self.name,
            email: self.email,
            password: self.password,
            latitude: self.latitude,
            longitude: self.longitude,
        })
    }
}

/// A bearer token as the client receives it.
#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    access_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 1800)]
    expires_in: i64,
}

impl From<IssuedToken> for TokenBody {
    fn from(token: IssuedToken) -> Self {
        Self {
            access_token: token.access_token,
            token_type: "bearer",
            expires_in: token.expires_in,
        }
    }
}

/// The new user with a token, so the client is logged in at once.
#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    #[serde(flatten)]
    user: UserResponse,
    #[serde(flatten)]
    token: TokenBody,
}

/// Create an account; the answer carries a token so the client is logged in at once.
#[utoipa::path(
    post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = RegisterResponse),
        (status = 409, description = "Email already registered", body = ErrorBody),
        Invalid, RateLimited, Busy,
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
    let (user, token) = state.accounts.register(registration).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: user.into(),
            token: token.into(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
}

impl Input for LoginRequest {
    type Valid = Credentials;

    fn validate(self) -> Result<Credentials, Violations> {
        Credentials::parse(&self.email, self.password)
    }
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    #[serde(flatten)]
    token: TokenBody,
    user: UserResponse,
}

/// Exchange email and password for a bearer token.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        Invalid, RateLimited, Busy,
    )
)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ValidJson(credentials): ValidJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    state
        .auth_limits
        .check(peer.ip(), credentials.email.as_str())?;
    let (user, token) = state.accounts.login(credentials).await?;
    Ok(Json(LoginResponse {
        token: token.into(),
        user: user.into(),
    }))
}
