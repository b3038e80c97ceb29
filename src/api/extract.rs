//! Request extractors that answer malformed input with the contract's 422 list (or 415/413),
//! never with axum's plain-text rejections. Each input type turns itself into a validated
//! domain value ("parse, don't validate").

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::current_user::BearerUserId;
use super::error::{ApiError, FieldError, LocSegment, Source, field_errors};
use super::state::AppState;
use crate::domain::Violations;
use crate::store::OrderAction;

/// A request body or query type that checks itself into `Self::Valid`; violation paths are
/// relative to the body or the query string.
pub trait Input: DeserializeOwned {
    type Valid;
    fn validate(self) -> Result<Self::Valid, Violations>;
}

fn validated<T: Input>(value: T, source: Source) -> Result<T::Valid, ApiError> {
    value
        .validate()
        .map_err(|violations| ApiError::Validation(field_errors(source, &violations)))
}

/// A JSON body, deserialized and validated.
pub struct ValidJson<T: Input>(pub T::Valid);

impl<S: Send + Sync, T: Input> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Like the seed (FastAPI), a body without a content type is read as JSON.
        if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
            if !is_json(content_type.to_str().unwrap_or_default()) {
                return Err(ApiError::UnsupportedMediaType(
                    "Content-Type must be application/json".into(),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::validation(FieldError::new(
                        vec!["body".into()],
                        "could not read the request body",
                        "body_error",
                    ))
                }
            })?;
        validated(parse_json_body::<T>(&bytes)?, Source::Body).map(ValidJson)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserializes a JSON body, reporting where it went wrong.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let body_error = |msg: &str, kind: &str| {
        ApiError::validation(FieldError::new(vec!["body".into()], msg, kind))
    };
    match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => return Err(body_error("Field required", "missing")),
        // serde would also read a struct from a JSON array of its fields, in order.
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(body_error(
                "Input should be a valid JSON object",
                "model_attributes_type",
            ));
        }
        Some(_) => {}
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let loc = path_loc("body", error.path());
        let inner = error.into_inner();
        let message = strip_position(&inner.to_string());
        ApiError::validation(match inner.classify() {
            serde_json::error::Category::Data => data_error(loc, &message),
            _ => FieldError::new(
                vec!["body".into()],
                format!("Invalid JSON: {message}"),
                "json_invalid",
            ),
        })
    })?;
    deserializer.end().map_err(|error| {
        ApiError::validation(FieldError::new(
            vec!["body".into()],
            format!("Invalid JSON: {}", strip_position(&error.to_string())),
            "json_invalid",
        ))
    })?;
    Ok(value)
}

/// Query parameters, deserialized and validated.
pub struct ValidQuery<T: Input>(pub T::Valid);

impl<S: Send + Sync, T: Input> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value: T = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let loc = path_loc("query", error.path());
            let message = error.into_inner().to_string();
            ApiError::validation(data_error(loc, &message))
        })?;
        validated(value, Source::Query).map(ValidQuery)
    }
}

/// The single UUID path parameter of a route (`/events/{event_id}`).
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match path_uuids(parts, state).await?[..] {
            [id, ..] => Ok(PathId(id)),
            [] => Err(ApiError::Internal(anyhow::anyhow!(
                "route has no path parameter"
            ))),
        }
    }
}

/// The two UUID path parameters of a route (`/events/{event_id}/tiers/{tier_id}`), in order.
pub struct PathIds(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match path_uuids(parts, state).await?[..] {
            [first, second, ..] => Ok(PathIds(first, second)),
            _ => Err(ApiError::Internal(anyhow::anyhow!(
                "route has fewer than two path parameters"
            ))),
        }
    }
}

/// Every path parameter of the route as a UUID; a malformed one is a 422 at its name.
async fn path_uuids<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Vec<Uuid>, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("path parameters: {error}")))?;
    params
        .iter()
        .map(|(name, value)| {
            Uuid::parse_str(value).map_err(|_| {
                ApiError::validation(FieldError::new(
                    vec!["path".into(), name.into()],
                    "Input should be a valid UUID",
                    "uuid_parsing",
                ))
            })
        })
        .collect()
}

/// A pay or cancel request: who asks (bearer token, 401 first), on what (the path's id, 422
/// when malformed), and its headers (`Idempotency-Key`). Neither takes a body.
pub struct OwnerCommand {
    pub state: AppState,
    pub user_id: Uuid,
    pub id: Uuid,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for OwnerCommand {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let BearerUserId(user_id) = BearerUserId::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        Ok(Self {
            state: state.clone(),
            user_id,
            id,
            headers: parts.headers.clone(),
        })
    }
}

fn path_loc(root: &str, path: &serde_path_to_error::Path) -> Vec<LocSegment> {
    use serde_path_to_error::Segment;
    let mut loc = vec![LocSegment::from(root)];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push(LocSegment::Index(*index)),
            Segment::Map { key } => loc.push(LocSegment::Key(key.clone())),
            Segment::Enum { variant } => loc.push(LocSegment::Key(variant.clone())),
            Segment::Unknown => {}
        }
    }
    loc
}

/// serde reports a missing field at its parent; the contract wants it at the field itself.
fn data_error(mut loc: Vec<LocSegment>, message: &str) -> FieldError {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        loc.push(LocSegment::Key(field.to_owned()));
        return FieldError::new(loc, "Field required", "missing");
    }
    FieldError::new(loc, message, "type_error")
}

fn strip_position(message: &str) -> String {
    match message.rsplit_once(" at line ") {
        Some((head, _)) => head.to_owned(),
        None => message.to_owned(),
    }
}

/// Query booleans as FastAPI reads them: true/false, 1/0, yes/no, on/off.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(|value| match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(serde::de::Error::custom("Input should be a valid boolean")),
    })
    .transpose()
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The path segment that asks for `action`.
pub fn action_segment(action: OrderAction) -> &'static str {
    match action {
        OrderAction::Pay => "pay",
        OrderAction::Cancel => "cancel",
        OrderAction::Refund => "refund",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Venue {
        latitude: f64,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        venue: Venue,
    }

    fn error_of(json: &str) -> FieldError {
        match parse_json_body::<Body>(json.as_bytes()) {
            Err(ApiError::Validation(errors)) => errors[0].clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_fields_and_wrong_types_are_located_at_the_value() {
        for (json, kind) in [
            (r#"{"title": "x", "venue": {}}"#, "missing"),
            (
                r#"{"title": "x", "venue": {"latitude": "north"}}"#,
                "type_error",
            ),
        ] {
            let error = error_of(json);
            let loc: Vec<LocSegment> = vec!["body".into(), "venue".into(), "latitude".into()];
            assert_eq!((error.loc, error.kind.as_str()), (loc, kind), "{json}");
        }
    }

    #[test]
    fn broken_json_and_trailing_garbage_are_invalid_json() {
        assert_eq!(error_of(r#"{"title": "#).kind, "json_invalid");
        assert_eq!(
            error_of(r#"{"title": "x", "venue": {"latitude": 1}} x"#).kind,
            "json_invalid"
        );
        assert_eq!(error_of("").kind, "missing");
    }

    #[test]
    fn only_objects_are_bodies() {
        assert_eq!(
            error_of("[\"x\", {\"latitude\": 1}]").kind,
            "model_attributes_type"
        );
        assert_eq!(error_of("  null").kind, "model_attributes_type");
        assert_eq!(error_of("{nope").kind, "json_invalid");
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
