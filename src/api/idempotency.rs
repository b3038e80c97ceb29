//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer
//! (same status and body) and does nothing a second time.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use crate::service::{Idempotency, IdempotencyStart, ServiceError};
use crate::store::{HeldKey, StoredAnswer};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;

/// Documents the header on the routes that honour it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Any unique string (a UUID is ideal), at most 255 visible ASCII characters. A retry with
    /// the same key within 24 h returns the first answer; the same key with a different request
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

/// Runs `operation` once per (user, key); answers retries from the stored first answer.
///
/// The operation gets the key it holds (if the request has one) and either answers, having
/// recorded that answer with the key in the transaction of its work, or fails having done
/// nothing; then the key is released at once, so a retry runs the operation again.
pub async fn run<F, Fut>(
    idempotency: &Idempotency,
    user_id: Uuid,
    headers: &HeaderMap,
    fingerprint: &str,
    operation: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<HeldKey>) -> Fut,
    Fut: Future<Output = Result<StoredAnswer, ApiError>>,
{
    let Some(key) = parse_key(headers)? else {
        return operation(None).await.map(respond);
    };
    let held = match idempotency.start(user_id, &key, fingerprint).await? {
        IdempotencyStart::Replay { status, body } => {
            let mut response = respond(StoredAnswer { status, body });
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyStart::Run(held) => held,
    };
    match operation(Some(held.clone())).await {
        Ok(answer) => Ok(respond(answer)),
        Err(error) => {
            if let Err(release) = idempotency.release(&held).await {
                tracing::warn!(error = %release, "could not release an idempotency key");
            }
            Err(error)
        }
    }
}

/// A write's answer as clients (and retries) read it: `success` with `body`, or the refusal.
pub fn answer<T: Serialize>(success: StatusCode, result: Result<T, ServiceError>) -> StoredAnswer {
    let written = result.map_err(ApiError::from).and_then(|body| {
        serde_json::to_string(&body).map_err(|error| ApiError::Internal(error.into()))
    });
    match written {
        Ok(body) => StoredAnswer {
            status: success.as_u16(),
            body,
        },
        Err(refusal) => StoredAnswer {
            status: refusal.status().as_u16(),
            body: refusal.body(),
        },
    }
}

fn respond(answer: StoredAnswer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
