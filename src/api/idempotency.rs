//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer of
//! a write that succeeded (same status and body) and does nothing a second time; a refused
//! write stores nothing, so its retry runs again.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::WriteOutcome;
use crate::service::{Idempotency, IdempotencyStart, ServiceError};
use crate::store::KeyUse;

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;

/// Documents the header on the routes that honour it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Any unique string (a UUID is ideal), at most 255 visible ASCII characters. A retry with
    /// the same key within 24 h returns the first answer of a write that succeeded (a refused
    /// write stores nothing: its retry runs again); the same key with a different request
    /// answers 422.
    #[serde(rename = "Idempotency-Key")]
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        max_length = 255
    )]
    idempotency_key: Option<String>,
}

fn parse_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::idempotency_key("must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::idempotency_key(
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// How a write takes its `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTaking {
    /// A new key is claimed by the write, in its own transaction (an order placement, which
    /// goes through the order batches): no round trip of its own. A key in use (a retry, a
    /// quota reached) is then taken as [`KeyTaking::Before`] does.
    InTheWrite,
    /// The key is claimed before the write, which records its outcome on it.
    Before,
}

/// Runs `write` once per (user, key) and answers with `render`. A retry with the key gets what
/// the first request did, rendered by the same function (so byte for byte the same answer),
/// marked `Idempotent-Replayed: true`.
///
/// `write` gets the key it holds or is to claim (if the request has one) and either succeeds,
/// having recorded its outcome with the key in the transaction of its work, or fails having
/// recorded nothing; then a key claimed before it is released at once, so a retry runs the
/// write again.
pub async fn run<F, Fut>(
    idempotency: &Idempotency,
    user_id: Uuid,
    headers: &HeaderMap,
    fingerprint: &str,
    taking: KeyTaking,
    write: F,
    render: impl Fn(&WriteOutcome) -> Result<Response, ApiError>,
) -> Result<Response, ApiError>
where
    F: Fn(Option<KeyUse>) -> Fut,
    Fut: Future<Output = Result<WriteOutcome, ServiceError>>,
{
    let Some(key) = parse_key(headers)? else {
        return render(&write(None).await?);
    };
    if taking == KeyTaking::InTheWrite {
        let new = idempotency.new_key(user_id, &key, fingerprint);
        match write(Some(KeyUse::New(new))).await {
            // In use: the long way below (replay, wait, take over, or refuse).
            Err(ServiceError::IdempotencyKeyInUse) => {}
            written => return render(&written?),
        }
    }
    let held = match idempotency.start(user_id, &key, fingerprint).await? {
        IdempotencyStart::Replay(outcome) => {
            let mut response = render(&outcome)?;
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyStart::Run(held) => held,
    };
    match write(Some(KeyUse::Held(held.clone()))).await {
        Ok(outcome) => render(&outcome),
        Err(error) => {
            if let Err(release) = idempotency.release(&held).await {
                tracing::warn!(error = %release, "could not release an idempotency key");
            }
            Err(error.into())
        }
    }
}

/// `body` as JSON with `status`.
pub fn json_answer(status: StatusCode, body: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(body).map_err(|error| ApiError::Internal(error.into()))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The error of an answer asked of an outcome another kind of write recorded: a key answers
/// only the request it was taken for (its fingerprint names the path), so this is a bug.
pub fn not_this_write(outcome: &WriteOutcome) -> ApiError {
    let kind = match outcome {
        WriteOutcome::Order(_) => "an order",
        WriteOutcome::PaymentStarted { .. } => "a payment started",
        WriteOutcome::CodeReissued(_) => "a code reissue",
        WriteOutcome::ListCreated(_) => "a check-in list",
        WriteOutcome::WaitlistJoined(_) => "a waiting-list entry",
    };
    ApiError::Internal(anyhow::anyhow!("a key recorded {kind} for another write"))
}
