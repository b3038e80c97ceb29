//! Check-in lists: the doors of an event, managed by its creator (CHECKIN.md § Check-in lists).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::current_user::{BearerUserId, ScannerAuth};
use super::error::ApiError;
use super::extract::{Input, PathId, PathIds, ValidJson, nullable};
use super::idempotency::{self, IdempotencyKey, KeyTaking, json_answer};
use super::schemas::ErrorBody;
use super::schemas::shared::{
    EventNotFound, EventPath, Invalid, ListNotFound, ListPath, NotJson, NotTheCreator,
    Unauthenticated,
};
use super::state::AppState;
use crate::domain::{CheckinList, ListFields, ListPatch, Violations, WriteOutcome};
use crate::service::{Checkin, Scanning};
use crate::store::KeyUse;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_list, event_lists))
        .routes(routes!(one_list, update_list, delete_list))
}

/// A new check-in list.
#[derive(Deserialize, ToSchema)]
pub struct ListRequest {
    #[schema(min_length = 1, max_length = 100, example = "VIP door")]
    name: String,
    /// 1–20 distinct tiers of the event; null or absent: every tier, later ones too.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 20)]
    tier_ids: Option<Vec<Uuid>>,
    /// Whether a ticket that left may enter again.
    #[serde(default)]
    allow_reentry: bool,
    /// Scans before it are refused (`list_inactive`); null: no start.
    #[serde(default)]
    activates_at: Option<DateTime<Utc>>,
    /// Scans from it on are refused; after `activates_at`; null: no end.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

impl Input for ListRequest {
    type Valid = ListFields;

    fn validate(self) -> Result<ListFields, Violations> {
        Ok(ListFields {
            name: self.name,
            tier_ids: self.tier_ids,
            allow_reentry: self.allow_reentry,
            activates_at: self.activates_at,
            expires_at: self.expires_at,
        })
    }
}

/// Any subset of a list's fields; null clears `tier_ids` (every tier) and the window's ends.
#[derive(Deserialize, ToSchema)]
pub struct ListUpdateRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<Uuid>>, min_items = 1, max_items = 20)]
    tier_ids: Option<Option<Vec<Uuid>>>,
    #[serde(default)]
    allow_reentry: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    activates_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    expires_at: Option<Option<DateTime<Utc>>>,
}

impl Input for ListUpdateRequest {
    type Valid = ListPatch;

    fn validate(self) -> Result<ListPatch, Violations> {
        Ok(ListPatch {
            name: self.name,
            tier_ids: self.tier_ids,
            allow_reentry: self.allow_reentry,
            activates_at: self.activates_at,
            expires_at: self.expires_at,
        })
    }
}

/// A check-in list: which tiers it admits, when, and whether again.
#[derive(Serialize, ToSchema)]
pub struct ListResponse {
    id: Uuid,
    event_id: Uuid,
    name: String,
    /// Null: every tier of the event.
    tier_ids: Option<Vec<Uuid>>,
    allow_reentry: bool,
    activates_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// The list every event has ("Main entrance").
    is_default: bool,
    created_at: DateTime<Utc>,
}

impl From<CheckinList> for ListResponse {
    fn from(list: CheckinList) -> Self {
        Self {
            id: list.id,
            event_id: list.event_id,
            name: list.name,
            tier_ids: list.tier_ids,
            allow_reentry: list.allow_reentry,
            activates_at: list.activates_at,
            expires_at: list.expires_at,
            is_default: list.is_default,
            created_at: list.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ListsResponse {
    lists: Vec<ListResponse>,
}

/// Add a check-in list to an event (creator only). `Idempotency-Key` honoured.
#[utoipa::path(
    post, path = "/events/{event_id}/checkin-lists", tag = "checkin",
    security(("bearer" = [])), params(EventPath, IdempotencyKey), request_body = ListRequest,
    responses(
        (status = 201, description = "Created", body = ListResponse),
        (status = 409, description = "The event has `CHECKIN_LISTS_PER_EVENT` lists", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, NotTheCreator,
    )
)]
pub async fn create_list(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    PathId(event_id): PathId,
    headers: HeaderMap,
    ValidJson(fields): ValidJson<ListRequest>,
) -> Result<Response, ApiError> {
    let fingerprint = list_fingerprint(event_id, &fields);
    let checkin = &state.checkin;
    let create = |key: Option<KeyUse>| {
        let fields = fields.clone();
        async move {
            let key = key.as_ref().map(KeyUse::held);
            checkin.create_list(user_id, event_id, fields, key).await
        }
    };
    let answer = |outcome: &WriteOutcome| match outcome {
        WriteOutcome::ListCreated(list) => {
            json_answer(StatusCode::CREATED, &ListResponse::from((**list).clone()))
        }
        other => Err(idempotency::not_this_write(other)),
    };
    let (keys, taking) = (&state.idempotency, KeyTaking::Before);
    idempotency::run(
        keys,
        user_id,
        &headers,
        &fingerprint,
        taking,
        create,
        answer,
    )
    .await
}

/// What a list creation asks for, so that a key reused for another list is refused.
fn list_fingerprint(event_id: Uuid, fields: &ListFields) -> String {
    let tiers = fields.tier_ids.as_ref().map_or_else(
        || "all".to_owned(),
        |tiers| {
            tiers
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    let at = |at: Option<DateTime<Utc>>| at.map_or_else(String::new, |at| at.to_rfc3339());
    format!(
        "POST /events/{event_id}/checkin-lists {:?} tiers={tiers} reentry={} window={}..{}",
        fields.name,
        fields.allow_reentry,
        at(fields.activates_at),
        at(fields.expires_at),
    )
}

/// An event's check-in lists, oldest first (creator; a scanner token sees its lists).
#[utoipa::path(
    get, path = "/events/{event_id}/checkin-lists", tag = "checkin",
    security(("bearer" = [])), params(EventPath),
    responses(
        (status = 200, description = "The lists", body = ListsResponse),
        Unauthenticated, Invalid, EventNotFound, NotTheCreator,
    )
)]
pub async fn event_lists(
    State(scanning): State<Arc<Scanning>>,
    ScannerAuth(scanner): ScannerAuth,
    PathId(event_id): PathId,
) -> Result<Json<ListsResponse>, ApiError> {
    let lists = scanning.lists(&scanner, event_id).await?;
    let lists = lists.into_iter().map(ListResponse::from).collect();
    Ok(Json(ListsResponse { lists }))
}

/// One check-in list (creator, or a scanner of the list).
#[utoipa::path(
    get, path = "/events/{event_id}/checkin-lists/{list_id}", tag = "checkin",
    security(("bearer" = [])), params(ListPath),
    responses(
        (status = 200, description = "The list", body = ListResponse),
        Unauthenticated, Invalid, ListNotFound, NotTheCreator,
    )
)]
pub async fn one_list(
    State(scanning): State<Arc<Scanning>>,
    ScannerAuth(scanner): ScannerAuth,
    PathIds(event_id, list_id): PathIds,
) -> Result<Json<ListResponse>, ApiError> {
    let list = scanning.list(&scanner, event_id, list_id).await?;
    Ok(Json(list.into()))
}

/// Change a check-in list (creator only); the changed list keeps the create rules.
#[utoipa::path(
    put, path = "/events/{event_id}/checkin-lists/{list_id}", tag = "checkin",
    security(("bearer" = [])), params(ListPath), request_body = ListUpdateRequest,
    responses(
        (status = 200, description = "The changed list", body = ListResponse),
        Unauthenticated, NotJson, Invalid, ListNotFound, NotTheCreator,
    )
)]
pub async fn update_list(
    State(checkin): State<Arc<Checkin>>,
    BearerUserId(user_id): BearerUserId,
    PathIds(event_id, list_id): PathIds,
    ValidJson(patch): ValidJson<ListUpdateRequest>,
) -> Result<Json<ListResponse>, ApiError> {
    let list = checkin
        .update_list(user_id, event_id, list_id, patch)
        .await?;
    Ok(Json(list.into()))
}

/// Delete a check-in list (creator only): not while it has a check-in or a live token names it.
#[utoipa::path(
    delete, path = "/events/{event_id}/checkin-lists/{list_id}", tag = "checkin",
    security(("bearer" = [])), params(ListPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "It has check-ins, or a live scanner token names it", body = ErrorBody),
        Unauthenticated, Invalid, ListNotFound, NotTheCreator,
    )
)]
pub async fn delete_list(
    State(checkin): State<Arc<Checkin>>,
    BearerUserId(user_id): BearerUserId,
    PathIds(event_id, list_id): PathIds,
) -> Result<StatusCode, ApiError> {
    checkin.delete_list(user_id, event_id, list_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
