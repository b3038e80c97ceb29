//! Live availability (AVAILABILITY.md): an event's snapshot, the Server-Sent Events streams
//! that keep it current (one event, or several multiplexed), and a small page that shows one.
//! No authentication: an `Authorization` header is ignored.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::SecondsFormat;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, FieldError};
use super::extract::PathId;
use super::schemas::ErrorBody;
use super::schemas::shared::{EventNotFound, EventPath, Invalid};
use super::state::AppState;
use crate::domain::{SaleStatus, Snapshot};
use crate::service::{Availability, Framing, Opened, StreamItem, StreamSession};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_availability))
        .routes(routes!(event_stream))
        .routes(routes!(events_stream))
        .routes(routes!(live_page))
}

/// How long a client waits before reconnecting a dropped stream, sent first.
const RETRY: &[u8] = b"retry: 3000\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A buyer's view of a tier or an event.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityStatus {
    Closed,
    SoldOut,
    NotOnSale,
    FewLeft,
    Available,
}

impl From<SaleStatus> for AvailabilityStatus {
    fn from(status: SaleStatus) -> Self {
        match status {
            SaleStatus::Closed => AvailabilityStatus::Closed,
            SaleStatus::SoldOut => AvailabilityStatus::SoldOut,
            SaleStatus::NotOnSale => AvailabilityStatus::NotOnSale,
            SaleStatus::FewLeft => AvailabilityStatus::FewLeft,
            SaleStatus::Available => AvailabilityStatus::Available,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WaitlistCount {
    /// Whether the event's waiting list takes people.
    enabled: bool,
    /// People waiting in its line.
    waiting: i32,
}

#[derive(Serialize, ToSchema)]
pub struct TierAvailabilityBody {
    tier_id: Uuid,
    name: String,
    status: AvailabilityStatus,
    /// What the tier can still sell within the event's seats, whatever its status.
    available: i64,
}

/// An event's availability at `as_of`.
#[derive(Serialize, ToSchema)]
pub struct AvailabilityBody {
    event_id: Uuid,
    /// Per event, across processes: equal versions show equal snapshots (but `as_of`).
    #[schema(minimum = 1, example = 8812)]
    version: i64,
    status: AvailabilityStatus,
    /// The event's `tickets_available`.
    available: i64,
    is_sold_out: bool,
    waitlist: WaitlistCount,
    /// In `GET /events/{id}` order.
    tiers: Vec<TierAvailabilityBody>,
    /// When it was read, UTC, milliseconds.
    #[schema(example = "2026-12-01T18:00:00.123Z")]
    as_of: String,
}

impl From<&Snapshot> for AvailabilityBody {
    fn from(snapshot: &Snapshot) -> Self {
        Self {
            event_id: snapshot.event_id,
            version: snapshot.version,
            status: snapshot.status.into(),
            available: snapshot.available,
            is_sold_out: snapshot.is_sold_out,
            waitlist: WaitlistCount {
                enabled: snapshot.waitlist_enabled,
                waiting: snapshot.waitlist_waiting,
            },
            tiers: snapshot
                .tiers
                .iter()
                .map(|tier| TierAvailabilityBody {
                    tier_id: tier.tier_id,
                    name: tier.name.clone(),
                    status: tier.status.into(),
                    available: tier.available,
                })
                .collect(),
            as_of: snapshot.as_of.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// An event's availability now, read from the database.
#[utoipa::path(
    get, path = "/events/{event_id}/availability", tag = "availability",
    params(EventPath),
    responses(
        (status = 200, description = "The event's availability", body = AvailabilityBody),
        Invalid, EventNotFound,
    )
)]
pub async fn event_availability(
    State(availability): State<Arc<Availability>>,
    PathId(event_id): PathId,
) -> Result<Json<AvailabilityBody>, ApiError> {
    let snapshot = availability.snapshot(event_id).await?;
    Ok(Json(AvailabilityBody::from(&snapshot)))
}

/// Follow an event's availability as Server-Sent Events: `retry`, its snapshot at once
/// (skipped when `Last-Event-ID` is its current version), then a message with the full
/// snapshot (`id:` its version) whenever the version changes, at most one per
/// `AVAILABILITY_STREAM_MIN_INTERVAL_MS`; comments as keep-alives; `event: gone` when the event
/// is deleted, its `closed` snapshot when it starts, then the end.
#[utoipa::path(
    get, path = "/events/{event_id}/availability/stream", tag = "availability",
    params(
        EventPath,
        ("Last-Event-ID" = Option<String>, Header, description = "The last version seen"),
    ),
    responses(
        (status = 200, description = "`event: availability` messages (data: the snapshot, as `GET /events/{event_id}/availability`), `event: gone` (data: `{\"event_id\": …}`)",
         content_type = "text/event-stream", body = String),
        (status = 204, description = "The event has started: nothing to stream"),
        Invalid, EventNotFound,
        (status = 429, description = "This client address has `AVAILABILITY_STREAMS_PER_CLIENT` streams open in this process; see Retry-After", body = ErrorBody),
        (status = 503, description = "This process has `AVAILABILITY_STREAMS_MAX` streams open, or the database does not answer; see Retry-After", body = ErrorBody),
    )
)]
pub async fn event_stream(
    State(availability): State<Arc<Availability>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathId(event_id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let opened = availability
        .open(peer.ip(), &[event_id], last_event_id)
        .await?;
    Ok(stream_response(opened, Framing::Single))
}

/// Follow several events' availability on one stream (`event_ids`: 1 to
/// `AVAILABILITY_STREAM_MAX_EVENTS` distinct ids, comma-separated): as the single-event stream,
/// without `id:` lines; an unknown event gets `event: gone` and a started one its `closed`
/// snapshot, and is dropped; the stream ends when none is left.
#[utoipa::path(
    get, path = "/availability/stream", tag = "availability",
    params(
        ("event_ids" = String, Query, description = "Event ids, comma-separated"),
    ),
    responses(
        (status = 200, description = "`event: availability` and `event: gone` messages, no `id:`",
         content_type = "text/event-stream", body = String),
        (status = 204, description = "Every event named is unknown or started, and one exists"),
        (status = 404, description = "No event named exists", body = ErrorBody),
        Invalid,
        (status = 429, description = "This client address has `AVAILABILITY_STREAMS_PER_CLIENT` streams open in this process; see Retry-After", body = ErrorBody),
        (status = 503, description = "This process has `AVAILABILITY_STREAMS_MAX` streams open, or the database does not answer; see Retry-After", body = ErrorBody),
    )
)]
pub async fn events_stream(
    State(availability): State<Arc<Availability>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let event_ids = event_ids(uri.query(), availability.settings().max_events)?;
    let opened = availability.open(peer.ip(), &event_ids, None).await?;
    Ok(stream_response(opened, Framing::Multiplexed))
}

/// The distinct ids of `event_ids` in the query, in their order.
fn event_ids(query: Option<&str>, max_events: usize) -> Result<Vec<Uuid>, ApiError> {
    let invalid = |message: String, kind: &str| {
        ApiError::validation(FieldError::new(
            vec!["query".into(), "event_ids".into()],
            message,
            kind,
        ))
    };
    let listed = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "event_ids")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| invalid("Field required".into(), "missing"))?;
    let mut ids: Vec<Uuid> = Vec::new();
    for item in listed.split(',') {
        let item = item.trim();
        let id = Uuid::parse_str(item).map_err(|_| {
            invalid(
                format!("{item:?} is not a valid event id (UUID)"),
                "uuid_parsing",
            )
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > max_events {
            return Err(invalid(
                format!("at most {max_events} distinct event ids"),
                "too_long",
            ));
        }
    }
    Ok(ids)
}

fn stream_response(opened: Opened, framing: Framing) -> Response {
    let session = match opened {
        Opened::Started => return StatusCode::NO_CONTENT.into_response(),
        Opened::Stream(session) => session,
    };
    let messages =
        futures_util::stream::unfold(session, move |mut session: StreamSession| async move {
            let item = session.next().await?;
            Some((Ok::<_, Infallible>(frame(&item, framing)), session))
        });
    let body = futures_util::stream::once(async { Ok(Bytes::from_static(RETRY)) }).chain(messages);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One message as the contract frames it: `event:`, `id:` (single-event availability only),
/// one `data:` line of compact JSON, a blank line.
fn frame(item: &StreamItem, framing: Framing) -> Bytes {
    match item {
        StreamItem::Availability(shown) => shown.framed(framing, |snapshot| {
            let data = render(snapshot);
            match framing {
                Framing::Single => format!(
                    "event: availability\nid: {}\ndata: {data}\n\n",
                    snapshot.version
                ),
                Framing::Multiplexed => format!("event: availability\ndata: {data}\n\n"),
            }
            .into()
        }),
        StreamItem::Gone(event_id) => {
            format!("event: gone\ndata: {{\"event_id\":\"{event_id}\"}}\n\n").into()
        }
        StreamItem::KeepAlive => Bytes::from_static(KEEP_ALIVE),
    }
}

/// A snapshot as compact JSON, as `GET …/availability` answers it.
fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string(&AvailabilityBody::from(snapshot)).unwrap_or_else(|_| "{}".to_owned())
}

/// A page that shows an event's tiers and keeps their availability current from the stream
/// (no build step, no external script).
#[utoipa::path(
    get, path = "/events/{event_id}/live", tag = "availability",
    params(EventPath),
    responses(
        (status = 200, description = "An HTML page", content_type = "text/html", body = String),
        Invalid,
    )
)]
pub async fn live_page(PathId(event_id): PathId, OriginalUri(uri): OriginalUri) -> Html<String> {
    // The page's own path (as the client sent it, prefix included) names the stream:
    // `…/live` → `…/availability`.
    let base = uri.path().trim_end_matches('/').trim_end_matches("/live");
    let urls = serde_json::json!({
        "snapshot": format!("{base}/availability"),
        "stream": format!("{base}/availability/stream"),
    });
    // Inside a script element: no `<` may end it early.
    let urls = urls.to_string().replace('<', "\\u003c");
    Html(
        LIVE_PAGE
            .replace("{{EVENT_ID}}", &event_id.to_string())
            .replace("{{URLS}}", &urls),
    )
}

const LIVE_PAGE: &str = include_str!("availability_page.html");
