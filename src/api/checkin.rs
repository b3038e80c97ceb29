//! Check-in: the keys that verify ticket codes, and a paid ticket's code.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::current_user::CurrentUser;
use super::error::ApiError;
use super::extract::{Input, OwnerCommand, PathId, ValidQuery};
use super::idempotency::{self, IdempotencyKey, KeyTaking, json_answer};
use super::schemas::ErrorBody;
use super::schemas::shared::{Invalid, TicketNotFound, TicketPath, Unauthenticated};
use super::state::AppState;
use crate::checkin::keys::ListedKey;
use crate::checkin::qr::{self, Correction};
use crate::domain::{ViolationKind, Violations, WriteOutcome};
use crate::service::{Checkin, IssuedCode};
use crate::store::KeyUse;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(checkin_keys))
        .routes(routes!(ticket_code))
        .routes(routes!(ticket_qr))
        .routes(routes!(reissue_code))
}

/// Not to be kept by caches between the owner and the server: a code admits its holder.
const PRIVATE: (axum::http::HeaderName, &str) = (CACHE_CONTROL, "private, no-store");

/// A key ticket codes are signed with.
#[derive(Serialize, ToSchema)]
pub struct CheckinKey {
    key_id: u16,
    /// Always `Ed25519`.
    alg: &'static str,
    /// Unpadded base64url of the 32-byte public key.
    public_key: String,
    /// The key new codes are signed with (one of them).
    signing: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CheckinKeysResponse {
    keys: Vec<CheckinKey>,
}

/// The public keys that verify ticket codes (scanners keep them to check codes offline).
#[utoipa::path(
    get, path = "/checkin/keys", tag = "checkin",
    responses((status = 200, description = "The keys", body = CheckinKeysResponse))
)]
async fn checkin_keys(State(checkin): State<Arc<Checkin>>) -> Json<CheckinKeysResponse> {
    let keys = checkin.keys().into_iter().map(CheckinKey::from).collect();
    Json(CheckinKeysResponse { keys })
}

impl From<ListedKey> for CheckinKey {
    fn from(key: ListedKey) -> Self {
        Self {
            key_id: key.key_id,
            alg: "Ed25519",
            public_key: key.public_key,
            signing: key.signing,
        }
    }
}

/// A paid ticket's code, signed with the signing key.
#[derive(Serialize, ToSchema)]
pub struct TicketCodeResponse {
    ticket_id: Uuid,
    event_id: Uuid,
    tier_id: Uuid,
    /// `NTX1:` and 179 Base45 characters (QR alphanumeric).
    code: String,
    serial: u32,
    key_id: u16,
    /// Always `NTX1`.
    format: &'static str,
}

/// The code of one of the caller's paid tickets (not cached: `private, no-store`).
#[utoipa::path(
    get, path = "/tickets/{ticket_id}/code", tag = "checkin",
    security(("bearer" = [])), params(TicketPath),
    responses(
        (status = 200, description = "The ticket's code", body = TicketCodeResponse),
        (status = 403, description = "Not your ticket (the event's creator neither)", body = ErrorBody),
        (status = 409, description = "Ticket is not paid", body = ErrorBody),
        Unauthenticated, Invalid, TicketNotFound,
    )
)]
async fn ticket_code(
    State(checkin): State<Arc<Checkin>>,
    CurrentUser(user): CurrentUser,
    PathId(ticket_id): PathId,
) -> Result<Response, ApiError> {
    let issued = checkin.code(user.id, ticket_id, Utc::now()).await?;
    Ok(([PRIVATE], Json(TicketCodeResponse::from(issued))).into_response())
}

impl From<IssuedCode> for TicketCodeResponse {
    fn from(issued: IssuedCode) -> Self {
        let code = issued.code;
        Self {
            ticket_id: code.ticket_id,
            event_id: code.event_id,
            tier_id: code.tier_id,
            code: issued.text,
            serial: code.serial,
            key_id: code.key_id,
            format: "NTX1",
        }
    }
}

/// Give one of the caller's paid tickets a new code (no body): its serial goes up by one and
/// every earlier code of the ticket is revoked at once. `Idempotency-Key` honoured.
#[utoipa::path(
    post, path = "/tickets/{ticket_id}/code/reissue", tag = "checkin",
    security(("bearer" = [])), params(TicketPath, IdempotencyKey),
    responses(
        (status = 200, description = "The new code", body = TicketCodeResponse),
        (status = 403, description = "Not your ticket (the event's creator neither)", body = ErrorBody),
        (status = 409, description = "Ticket is not paid", body = ErrorBody),
        (status = 429, description = "Reissued `CHECKIN_REISSUES_PER_DAY` times in 24 h", body = ErrorBody),
        Unauthenticated, Invalid, TicketNotFound,
    )
)]
async fn reissue_code(command: OwnerCommand) -> Result<Response, ApiError> {
    let OwnerCommand {
        state,
        user_id,
        id: ticket_id,
        headers,
    } = command;
    let checkin = &state.checkin;
    let reissue = |key: Option<KeyUse>| async move {
        let key = key.as_ref().map(KeyUse::held);
        checkin.reissue(user_id, ticket_id, key).await
    };
    let answer = |outcome: &WriteOutcome| match outcome {
        WriteOutcome::CodeReissued(named) => {
            let issued = TicketCodeResponse::from(checkin.issue(*named));
            let mut response = json_answer(StatusCode::OK, &issued)?;
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(PRIVATE.1));
            Ok(response)
        }
        other => Err(idempotency::not_this_write(other)),
    };
    let fingerprint = format!("POST /tickets/{ticket_id}/code/reissue");
    let (keys, taking) = (&state.idempotency, KeyTaking::Before);
    idempotency::run(
        keys,
        user_id,
        &headers,
        &fingerprint,
        taking,
        reissue,
        answer,
    )
    .await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// Error correction: `L`, `M` (default), `Q` or `H`.
    #[serde(default)]
    #[param(pattern = "^[LMQH]$")]
    ecc: Option<String>,
}

impl Input for QrQuery {
    type Valid = Correction;

    fn validate(self) -> Result<Correction, Violations> {
        let Some(letter) = self.ecc else {
            return Ok(Correction::default());
        };
        let mut violations = Violations::new();
        let correction = Correction::parse(&letter);
        if correction.is_none() {
            violations.push_kind(
                &["ecc"],
                "Input should be 'L', 'M', 'Q' or 'H'",
                ViolationKind::Choice,
            );
        }
        violations.finish(|| correction)
    }
}

/// The code of one of the caller's paid tickets as a QR code (SVG: one alphanumeric segment,
/// the smallest version for the error correction asked, a quiet zone of 4, one unit a module).
#[utoipa::path(
    get, path = "/tickets/{ticket_id}/qr.svg", tag = "checkin",
    security(("bearer" = [])), params(TicketPath, QrQuery),
    responses(
        (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String),
        (status = 403, description = "Not your ticket (the event's creator neither)", body = ErrorBody),
        (status = 409, description = "Ticket is not paid", body = ErrorBody),
        Unauthenticated, Invalid, TicketNotFound,
    )
)]
async fn ticket_qr(
    State(checkin): State<Arc<Checkin>>,
    CurrentUser(user): CurrentUser,
    PathId(ticket_id): PathId,
    ValidQuery(correction): ValidQuery<QrQuery>,
) -> Result<Response, ApiError> {
    let issued = checkin.code(user.id, ticket_id, Utc::now()).await?;
    let svg = qr::svg(&issued.text, correction)?;
    Ok(([PRIVATE, (CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
