//! `Idempotency-Key`: a retried request by the same user within 24 h gets the first answer
//! (same status and body) and does nothing a second time.

use std::future::Future;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use crate::service::{Idempotency, IdempotencyStart};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;
const MAX_STORED_BODY: usize = 64 * 1024;

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
/// Server errors are not stored, so a retry after one runs the operation again.
pub async fn run<F, Fut>(
    idempotency: &Idempotency,
    user_id: Uuid,
    headers: &HeaderMap,
    fingerprint: &str,
    operation: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = parse_key(headers)? else {
        return operation().await;
    };
    if let IdempotencyStart::Replay { status, body } =
        idempotency.start(user_id, &key, fingerprint).await?
    {
        return Ok(replay(status, body));
    }

    let response = operation()
        .await
        .unwrap_or_else(axum::response::IntoResponse::into_response);
    let status = response.status();
    if status.is_server_error() {
        idempotency.release(user_id, &key).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_STORED_BODY)
        .await
        .map_err(|error| anyhow::anyhow!("reading a response to store it: {error}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    idempotency
        .complete(user_id, &key, status.as_u16(), &text)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn replay(status: u16, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
