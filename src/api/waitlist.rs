//! The waiting list (WAITLIST.md): joining an event's line, one's entries, the organiser's
//! view and removal. Offers arrive as reserved orders, paid with `POST /orders/{id}/pay`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::current_user::{BearerUserId, CurrentUser};
use super::error::ApiError;
use super::extract::{Input, PathId, PathIds, ValidJson, ValidQuery};
use super::idempotency::{self, IdempotencyKey, KeyTaking, json_answer};
use super::query::ListingPaging;
use super::schemas::shared::{
    EventNotFound, EventPath, Invalid, NotJson, RateLimited, Unauthenticated,
};
use super::schemas::{ErrorBody, PageInfo};
use super::state::AppState;
use super::tickets::{TicketEvent, TicketUser};
use crate::domain::waitlist::{EntryStatus, WaitlistEntry};
use crate::domain::{PageRequest, ViolationKind, Violations, WriteOutcome};
use crate::service::Waitlist;
use crate::store::{KeyUse, Page, WaitlistFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join, event_entries))
        .routes(routes!(remove_entry))
        .routes(routes!(my_entries))
        .routes(routes!(get_entry, leave))
}

/// Seats to wait for: `{}` is one seat of any tier.
#[derive(Deserialize, ToSchema)]
pub struct JoinBody {
    /// A tier of the event; null or absent: any tier.
    #[serde(default)]
    tier_id: Option<Uuid>,
    /// Seats wanted, all of one tier, all or nothing: 1 to `MAX_TICKETS_PER_ORDER`.
    #[serde(default)]
    #[schema(minimum = 1, example = 2)]
    quantity: Option<i64>,
}

impl Input for JoinBody {
    type Valid = (Option<Uuid>, Option<i64>);

    fn validate(self) -> Result<Self::Valid, Violations> {
        Ok((self.tier_id, self.quantity))
    }
}

/// The offer an entry was made: a reserved order, kept after it ends.
#[derive(Serialize, ToSchema)]
pub struct OfferBody {
    order_id: Uuid,
    tier_id: Uuid,
    tier_name: String,
    quantity: i32,
    total_minor: i64,
    offered_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A place in an event's waiting list.
#[derive(Serialize, ToSchema)]
pub struct EntryResponse {
    id: Uuid,
    event_id: Uuid,
    /// Null: any tier.
    tier_id: Option<Uuid>,
    tier_name: Option<String>,
    user_id: Uuid,
    quantity: i32,
    /// waiting, offered, purchased, expired, left, removed or closed (as it reads now).
    status: &'static str,
    /// 1-based rank among the event's waiting entries in join order; null unless waiting.
    position: Option<i64>,
    /// event_started, tier_unavailable, waitlist_disabled or limit; null unless closed.
    closed_reason: Option<&'static str>,
    offer: Option<OfferBody>,
    user: TicketUser,
    event: TicketEvent,
    joined_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl EntryResponse {
    /// The entry as it reads at `now`.
    fn new(entry: WaitlistEntry, now: DateTime<Utc>) -> Self {
        let (status, reason) = entry.effective(now);
        let position = entry.position(now);
        Self {
            id: entry.id,
            event_id: entry.event_id,
            tier_id: entry.tier_id,
            tier_name: entry.tier_name,
            user_id: entry.user_id,
            quantity: entry.quantity,
            status: status.as_str(),
            position,
            closed_reason: reason.map(|reason| reason.as_str()),
            offer: entry.offer.map(|offer| OfferBody {
                order_id: offer.order_id,
                tier_id: offer.tier_id,
                tier_name: offer.tier_name,
                quantity: offer.quantity,
                total_minor: offer.total_minor,
                offered_at: offer.offered_at,
                expires_at: offer.expires_at,
            }),
            user: entry.user.into(),
            event: entry.event.into(),
            joined_at: entry.joined_at,
            updated_at: entry.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntriesResponse {
    entries: Vec<EntryResponse>,
    #[serde(flatten)]
    page: PageInfo,
}

fn entries(found: Page<WaitlistEntry>, page: PageRequest) -> Json<EntriesResponse> {
    let now = Utc::now();
    let (entries, page) = PageInfo::split(found, page, |entry| EntryResponse::new(entry, now));
    Json(EntriesResponse { entries, page })
}

/// `?status=` (an entry's effective status) and, for the organiser, `?tier_id=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryQuery {
    #[serde(default)]
    #[param(schema_with = entry_status)]
    status: Option<String>,
    /// The organiser's listing only: entries for this tier.
    #[serde(default)]
    tier_id: Option<Uuid>,
}

fn entry_status() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("Effective status to keep; empty keeps all."))
        .enum_values(Some(
            std::iter::once("").chain(EntryStatus::ALL.map(EntryStatus::as_str)),
        ))
        .build()
}

impl Input for EntryQuery {
    type Valid = (Option<EntryStatus>, Option<Uuid>);

    fn validate(self) -> Result<Self::Valid, Violations> {
        let mut violations = Violations::new();
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(raw) => {
                let status = EntryStatus::parse(&raw.to_ascii_lowercase());
                if status.is_none() {
                    violations.push_kind(
                        &["status"],
                        "Input should be 'waiting', 'offered', 'purchased', 'expired', 'left', 'removed' or 'closed'",
                        ViolationKind::Choice,
                    );
                }
                status.map(Some)
            }
        };
        let tier_id = self.tier_id;
        violations.finish(|| Some((status?, tier_id)))
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct EntryPath {
    /// Waiting-list entry id
    entry_id: Uuid,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct EventEntryPath {
    /// Event id
    event_id: Uuid,
    /// Waiting-list entry id
    entry_id: Uuid,
}

/// Join an event's waiting list: when seats come back, the line gets them first, as a reserved
/// order (an offer) that `GET /waitlist/mine` shows. `Idempotency-Key` honoured.
#[utoipa::path(
    post, path = "/events/{event_id}/waitlist", tag = "waitlist",
    security(("bearer" = [])), params(EventPath, IdempotencyKey), request_body = JoinBody,
    responses(
        (status = 201, description = "In line", body = EntryResponse),
        (status = 409, description = "The list is not open, the event started, the tier is not on sale, already in line, the per-person limit, tickets are available (order them), the line or the user's entries are full", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, RateLimited,
    )
)]
pub async fn join(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(event_id): PathId,
    headers: HeaderMap,
    ValidJson(body): ValidJson<JoinBody>,
) -> Result<Response, ApiError> {
    let (tier_id, quantity) = body;
    let seats = quantity.unwrap_or(1).clamp(1, 100);
    state.user_limits.reserve(user_id, seats as u32)?;
    let fingerprint = format!(
        "POST /events/{event_id}/waitlist tier={} quantity={}",
        tier_id.map_or_else(|| "any".to_owned(), |id| id.to_string()),
        quantity.map_or_else(|| "1".to_owned(), |quantity| quantity.to_string()),
    );
    let waitlist = &state.waitlist;
    let write = |key: Option<KeyUse>| async move {
        let key = key.as_ref().map(KeyUse::held);
        waitlist
            .join(user_id, event_id, tier_id, quantity, key)
            .await
    };
    let answer = |outcome: &WriteOutcome| match outcome {
        WriteOutcome::WaitlistJoined(entry) => json_answer(
            StatusCode::CREATED,
            &EntryResponse::new((**entry).clone(), entry.joined_at),
        ),
        other => Err(idempotency::not_this_write(other)),
    };
    let (keys, taking) = (&state.idempotency, KeyTaking::Before);
    idempotency::run(keys, user_id, &headers, &fingerprint, taking, write, answer).await
}

/// An event's waiting list in join order (its creator only).
#[utoipa::path(
    get, path = "/events/{event_id}/waitlist", tag = "waitlist",
    security(("bearer" = [])), params(EventPath, EntryQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of entries", body = EntriesResponse),
        (status = 403, description = "Not the event's creator", body = ErrorBody),
        Unauthenticated, Invalid, EventNotFound,
    )
)]
pub async fn event_entries(
    State(waitlist): State<Arc<Waitlist>>,
    CurrentUser(user): CurrentUser,
    PathId(event_id): PathId,
    ValidQuery(query): ValidQuery<EntryQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<EntriesResponse>, ApiError> {
    let (status, tier_id) = query;
    let filter = WaitlistFilter {
        status,
        tier_id,
        page,
    };
    let found = waitlist.of_event(user.id, event_id, &filter).await?;
    Ok(entries(found, page))
}

/// Remove an entry from an event's waiting list (its creator only); an open offer's order is
/// cancelled and its seats go to the next in line.
#[utoipa::path(
    delete, path = "/events/{event_id}/waitlist/{entry_id}", tag = "waitlist",
    security(("bearer" = [])), params(EventEntryPath),
    responses(
        (status = 200, description = "Removed", body = EntryResponse),
        (status = 403, description = "Not the event's creator", body = ErrorBody),
        (status = 404, description = "No such entry of this event", body = ErrorBody),
        (status = 409, description = "The entry is already final", body = ErrorBody),
        Unauthenticated, Invalid,
    )
)]
pub async fn remove_entry(
    State(waitlist): State<Arc<Waitlist>>,
    CurrentUser(user): CurrentUser,
    PathIds(event_id, entry_id): PathIds,
) -> Result<Json<EntryResponse>, ApiError> {
    let entry = waitlist.remove(user.id, event_id, entry_id).await?;
    Ok(Json(EntryResponse::new(entry, Utc::now())))
}

/// The caller's waiting-list entries, newest first: poll it (at least 10 s apart) to see an
/// offer arrive.
#[utoipa::path(
    get, path = "/waitlist/mine", tag = "waitlist",
    security(("bearer" = [])), params(EntryQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of entries", body = EntriesResponse),
        Unauthenticated, Invalid,
    )
)]
pub async fn my_entries(
    State(waitlist): State<Arc<Waitlist>>,
    CurrentUser(user): CurrentUser,
    ValidQuery(query): ValidQuery<EntryQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<EntriesResponse>, ApiError> {
    let (status, _) = query;
    let filter = WaitlistFilter {
        status,
        tier_id: None,
        page,
    };
    let found = waitlist.mine(user.id, &filter).await?;
    Ok(entries(found, page))
}

/// One waiting-list entry (its user, or the event's creator).
#[utoipa::path(
    get, path = "/waitlist/{entry_id}", tag = "waitlist",
    security(("bearer" = [])), params(EntryPath),
    responses(
        (status = 200, description = "The entry", body = EntryResponse),
        (status = 403, description = "Neither its user nor the event's creator", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
        Unauthenticated, Invalid,
    )
)]
pub async fn get_entry(
    State(waitlist): State<Arc<Waitlist>>,
    CurrentUser(user): CurrentUser,
    PathId(entry_id): PathId,
) -> Result<Json<EntryResponse>, ApiError> {
    let entry = waitlist.entry(user.id, entry_id).await?;
    Ok(Json(EntryResponse::new(entry, Utc::now())))
}

/// Leave a waiting list (its user only), or decline an offer: the offer's order is cancelled
/// and its seats go to the next in line.
#[utoipa::path(
    delete, path = "/waitlist/{entry_id}", tag = "waitlist",
    security(("bearer" = [])), params(EntryPath),
    responses(
        (status = 200, description = "Left", body = EntryResponse),
        (status = 403, description = "Not the caller's entry", body = ErrorBody),
        (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "The entry is already final", body = ErrorBody),
        Unauthenticated, Invalid,
    )
)]
pub async fn leave(
    State(waitlist): State<Arc<Waitlist>>,
    CurrentUser(user): CurrentUser,
    PathId(entry_id): PathId,
) -> Result<Json<EntryResponse>, ApiError> {
    let entry = waitlist.leave(user.id, entry_id).await?;
    Ok(Json(EntryResponse::new(entry, Utc::now())))
}
