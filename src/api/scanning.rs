//! The door over HTTP (CHECKIN.md): scanner tokens, redeem, offline upload, list status and
//! the offline bundle.

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::checkin::CheckinKey;
use super::checkin_lists::ListResponse;
use super::current_user::{BearerUserId, ScannerAuth};
use super::error::ApiError;
use super::extract::{Input, PathId, PathIds, ValidJson, ValidQuery};
use super::rate_limit::UserRateLimits;
use super::schemas::ErrorBody;
use super::schemas::shared::{
    EventNotFound, EventPath, Invalid, ListNotFound, ListPath, NotJson, NotTheCreator, TokenPath,
    Unauthenticated,
};
use super::state::AppState;
use crate::domain::{
    OfflineResult, PathSegment, Scan, ScanKind, ScanReason, ScanResult, ScannerToken, TokenFields,
    Violations,
};
use crate::service::{Scanning, UploadOutcome, UploadedScan, cursor};

/// Largest offline upload body.
const UPLOAD_BODY_LIMIT: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    let upload = OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(create_token, event_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(list_status))
        .routes(routes!(redeem))
        .routes(routes!(offline_bundle))
        .merge(upload)
}

/// A new scanner token.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(min_length = 1, max_length = 100, example = "Gate 3 phone")]
    label: String,
    /// 1–20 distinct lists of the event; null or absent: every list, later ones too.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 20)]
    list_ids: Option<Vec<Uuid>>,
    /// 1–`SCANNER_TOKEN_MAX_HOURS`; default 24.
    #[serde(default)]
    expires_in_hours: Option<u32>,
}

impl Input for TokenRequest {
    type Valid = TokenFields;

    fn validate(self) -> Result<TokenFields, Violations> {
        Ok(TokenFields {
            label: self.label,
            list_ids: self.list_ids,
            expires_in_hours: self.expires_in_hours,
        })
    }
}

/// A scanner token (its text is shown only when it is created).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    id: Uuid,
    event_id: Uuid,
    label: String,
    /// Null: every list of the event.
    list_ids: Option<Vec<Uuid>>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    /// `ntxs_` and 43 base64url characters: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<ScannerToken> for TokenResponse {
    fn from(token: ScannerToken) -> Self {
        Self {
            id: token.id,
            event_id: token.event_id,
            label: token.label,
            list_ids: token.list_ids,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            token: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokensResponse {
    tokens: Vec<TokenResponse>,
}

/// Give a door device a token for an event's lists (creator only); its text is shown once.
#[utoipa::path(
    post, path = "/events/{event_id}/scanner-tokens", tag = "checkin",
    security(("bearer" = [])), params(EventPath), request_body = TokenRequest,
    responses(
        (status = 201, description = "Created, with `token`", body = TokenResponse),
        (status = 409, description = "`SCANNER_TOKENS_PER_EVENT` live tokens", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, NotTheCreator,
    )
)]
async fn create_token(
    State(scanning): State<Arc<Scanning>>,
    BearerUserId(user_id): BearerUserId,
    PathId(event_id): PathId,
    ValidJson(fields): ValidJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let (token, text) = scanning.create_token(user_id, event_id, fields).await?;
    let response = TokenResponse {
        token: Some(text),
        ..token.into()
    };
    Ok((StatusCode::CREATED, Json(response)))
}

/// An event's scanner tokens, revoked ones too (creator only).
#[utoipa::path(
    get, path = "/events/{event_id}/scanner-tokens", tag = "checkin",
    security(("bearer" = [])), params(EventPath),
    responses(
        (status = 200, description = "The tokens", body = TokensResponse),
        Unauthenticated, Invalid, EventNotFound, NotTheCreator,
    )
)]
async fn event_tokens(
    State(scanning): State<Arc<Scanning>>,
    BearerUserId(user_id): BearerUserId,
    PathId(event_id): PathId,
) -> Result<Json<TokensResponse>, ApiError> {
    let tokens = scanning.tokens(user_id, event_id).await?;
    let tokens = tokens.into_iter().map(TokenResponse::from).collect();
    Ok(Json(TokensResponse { tokens }))
}

/// Revoke a scanner token at once, everywhere (creator only; revoked already: 204 too).
#[utoipa::path(
    delete, path = "/events/{event_id}/scanner-tokens/{token_id}", tag = "checkin",
    security(("bearer" = [])), params(TokenPath),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such event, or no such token of it", body = ErrorBody),
        Unauthenticated, Invalid, NotTheCreator,
    )
)]
async fn revoke_token(
    State(scanning): State<Arc<Scanning>>,
    BearerUserId(user_id): BearerUserId,
    PathIds(event_id, token_id): PathIds,
) -> Result<StatusCode, ApiError> {
    scanning.revoke_token(user_id, event_id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A list's counts.
#[derive(Serialize, ToSchema)]
pub struct ListStatusResponse {
    list_id: Uuid,
    /// Paid tickets the list admits.
    expected: i64,
    /// Distinct tickets with a successful entry here.
    admitted: i64,
    /// Those whose last successful scan here is an entry.
    inside: i64,
    /// Successful scans here (exits and forced ones too).
    scans_ok: i64,
    /// Rows of the refused log (one per nonce).
    scans_refused: i64,
    forced: i64,
    by_tier: Vec<TierStatus>,
    /// Tickets entered on any list of the event.
    event_admitted_distinct: i64,
    as_of: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TierStatus {
    tier_id: Uuid,
    expected: i64,
    admitted: i64,
}

/// How a list is doing: expected, admitted, inside (creator, or a scanner of the list).
#[utoipa::path(
    get, path = "/events/{event_id}/checkin-lists/{list_id}/status", tag = "checkin",
    security(("bearer" = [])), params(ListPath),
    responses(
        (status = 200, description = "The counts", body = ListStatusResponse),
        Unauthenticated, Invalid, ListNotFound, NotTheCreator,
    )
)]
async fn list_status(
    State(scanning): State<Arc<Scanning>>,
    ScannerAuth(scanner): ScannerAuth,
    PathIds(event_id, list_id): PathIds,
) -> Result<Json<ListStatusResponse>, ApiError> {
    let status = scanning.list_status(&scanner, event_id, list_id).await?;
    Ok(Json(ListStatusResponse {
        list_id,
        expected: status.expected,
        admitted: status.admitted,
        inside: status.inside,
        scans_ok: status.scans_ok,
        scans_refused: status.scans_refused,
        forced: status.forced,
        by_tier: status
            .by_tier
            .into_iter()
            .map(|(tier_id, expected, admitted)| TierStatus {
                tier_id,
                expected,
                admitted,
            })
            .collect(),
        event_admitted_distinct: status.event_admitted_distinct,
        as_of: Utc::now(),
    }))
}

#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScanType {
    #[default]
    Entry,
    Exit,
}

impl From<ScanType> for ScanKind {
    fn from(kind: ScanType) -> Self {
        match kind {
            ScanType::Entry => ScanKind::Entry,
            ScanType::Exit => ScanKind::Exit,
        }
    }
}

/// A scan at a door.
#[derive(Deserialize, ToSchema)]
pub struct RedeemRequest {
    list_id: Uuid,
    /// An NTX1 code, or a ticket id (looked up by hand: its current code).
    #[schema(min_length = 1, max_length = 512)]
    code: String,
    /// Names this scan on the list: a retry with the same nonce gets the first answer.
    #[schema(min_length = 8, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    nonce: String,
    #[serde(default, rename = "type")]
    kind: ScanType,
    /// When the ticket was scanned (RFC 3339 with offset); default now.
    #[serde(default)]
    scanned_at: Option<DateTime<Utc>>,
    /// Admit despite any reason but `invalid` and `wrong_event`.
    #[serde(default)]
    force: bool,
    #[serde(default)]
    #[schema(max_length = 100)]
    gate: Option<String>,
}

/// The path of `field` in the object at `at`.
fn field_of(at: &[PathSegment], field: &str) -> Vec<PathSegment> {
    let mut path = at.to_vec();
    path.push(PathSegment::Field(field.into()));
    path
}

/// Checks the fields a scan shares with an uploaded one, under `at` (its path in the body).
fn check_scan_fields(
    violations: &mut Violations,
    at: &[PathSegment],
    code: &str,
    nonce: &str,
    gate: Option<&str>,
) {
    let path = |field: &str| field_of(at, field);
    if code.is_empty() || code.chars().count() > 512 {
        violations.push_at(path("code"), "must be 1 to 512 characters");
    }
    let nonce_ok = (8..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !nonce_ok {
        violations.push_at(path("nonce"), "must be 8 to 64 of A-Z, a-z, 0-9, _ and -");
    }
    if gate.is_some_and(|gate| gate.chars().count() > 100) {
        violations.push_at(path("gate"), "must be at most 100 characters");
    }
}

impl Input for RedeemRequest {
    type Valid = Scan;

    fn validate(self) -> Result<Scan, Violations> {
        let mut violations = Violations::new();
        check_scan_fields(
            &mut violations,
            &[],
            &self.code,
            &self.nonce,
            self.gate.as_deref(),
        );
        violations.finish(|| {
            Some(Scan {
                list_id: self.list_id,
                code: self.code,
                nonce: self.nonce,
                kind: self.kind.into(),
                scanned_at: stored_precision(self.scanned_at.unwrap_or_else(Utc::now)),
                force: self.force,
                gate: self.gate,
            })
        })
    }
}

/// A scan time as the store keeps it (microseconds), so a replay shows the same instant.
fn stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A 422 for `scanned_at` ahead of the server's clock by more than the allowed skew.
fn check_not_ahead(
    scanning: &Scanning,
    scanned_at: DateTime<Utc>,
    path: Vec<PathSegment>,
    violations: &mut Violations,
) {
    if scanned_at > scanning.latest_scan_time(Utc::now()) {
        violations.push_at(path, "is ahead of the server's clock");
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    id: Uuid,
    list_id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "entry")]
    kind: &'static str,
    nonce: String,
    scanned_at: DateTime<Utc>,
    gate: Option<String>,
    forced: bool,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ScanTier {
    id: Uuid,
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ScanHolder {
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ScanTicket {
    id: Uuid,
    event_id: Uuid,
    order_id: Uuid,
    tier: ScanTier,
    status: &'static str,
    serial: u32,
    holder: ScanHolder,
}

/// The answer to a scan: 201 admitted, 409 refused (with `detail`).
#[derive(Serialize, ToSchema)]
pub struct RedeemResponse {
    /// `ok` or `refused`.
    status: &'static str,
    /// Why it was refused, or what `force` overrode; null otherwise.
    reason: Option<&'static str>,
    forced: bool,
    checkin: Option<CheckinResponse>,
    /// The ticket as it is; null for `invalid` and `wrong_event`.
    ticket: Option<ScanTicket>,
    /// When the ticket first entered here before this scan.
    first_entry_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

impl From<ScanResult> for RedeemResponse {
    fn from(result: ScanResult) -> Self {
        let admitted = result.admitted();
        Self {
            status: if admitted { "ok" } else { "refused" },
            reason: result.reason.map(ScanReason::as_str),
            forced: result.forced(),
            checkin: result.checkin.map(|checkin| CheckinResponse {
                id: checkin.id,
                list_id: checkin.list_id,
                kind: checkin.kind.as_str(),
                nonce: checkin.nonce,
                scanned_at: checkin.scanned_at,
                gate: checkin.gate,
                forced: checkin.forced,
                created_at: checkin.created_at,
            }),
            ticket: result.ticket.map(|ticket| ScanTicket {
                id: ticket.id,
                event_id: ticket.event_id,
                order_id: ticket.order_id,
                tier: ScanTier {
                    id: ticket.tier_id,
                    name: ticket.tier_name,
                },
                status: ticket.status.as_str(),
                serial: ticket.serial,
                holder: ScanHolder {
                    name: ticket.holder_name,
                },
            }),
            first_entry_at: result.first_entry_at,
            detail: if admitted {
                None
            } else {
                result.reason.map(ScanReason::detail)
            },
        }
    }
}

/// Scan a ticket at a door (creator, or a scanner of the list): 201 admitted, 409 refused.
/// The same nonce again gets the first answer; nothing more is recorded.
#[utoipa::path(
    post, path = "/checkin/redeem", tag = "checkin",
    security(("bearer" = [])), request_body = RedeemRequest,
    responses(
        (status = 201, description = "Admitted (or the nonce's first answer)", body = RedeemResponse),
        (status = 409, description = "Refused: `reason` says why", body = RedeemResponse),
        (status = 403, description = "Not a scanner of this list", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 429, description = "`CHECKIN_SCANS_PER_MINUTE` reached", body = ErrorBody),
        Unauthenticated, NotJson, Invalid,
    )
)]
async fn redeem(
    State(scanning): State<Arc<Scanning>>,
    State(limits): State<Arc<UserRateLimits>>,
    ScannerAuth(scanner): ScannerAuth,
    ValidJson(scan): ValidJson<RedeemRequest>,
) -> Result<Response, ApiError> {
    limits.scan(scanner.credential_id())?;
    let mut violations = Violations::new();
    let at = vec![PathSegment::Field("scanned_at".into())];
    check_not_ahead(&scanning, scan.scanned_at, at, &mut violations);
    violations.finish(|| Some(())).map_err(invalid)?;
    let result = scanning.redeem(&scanner, scan).await?;
    let status = if result.admitted() {
        StatusCode::CREATED
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, Json(RedeemResponse::from(result))).into_response())
}

fn invalid(violations: Violations) -> ApiError {
    crate::service::ServiceError::Invalid(violations).into()
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OfflineVerdict {
    Ok,
    Refused,
}

/// A scan a device judged offline.
#[derive(Deserialize, ToSchema)]
pub struct UploadItem {
    list_id: Uuid,
    #[schema(min_length = 1, max_length = 512)]
    code: String,
    #[schema(min_length = 8, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    nonce: String,
    #[serde(default, rename = "type")]
    kind: ScanType,
    scanned_at: DateTime<Utc>,
    offline_result: OfflineVerdict,
    /// A reason; only and always with `refused`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "already_redeemed")]
    offline_reason: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100)]
    gate: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UploadRequest {
    scans: Vec<UploadItem>,
}

impl Input for UploadRequest {
    type Valid = Vec<UploadItem>;

    fn validate(self) -> Result<Vec<UploadItem>, Violations> {
        Ok(self.scans)
    }
}

/// Checks an upload's items: every fault, at its index.
fn uploaded_scans(
    scanning: &Scanning,
    items: Vec<UploadItem>,
) -> Result<Vec<UploadedScan>, Violations> {
    let mut violations = Violations::new();
    let max = scanning.settings().upload_max as usize;
    if items.is_empty() || items.len() > max {
        violations.push(&["scans"], format!("must hold 1 to {max} scans"));
        return Err(violations);
    }
    let mut scans = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let at = vec![
            PathSegment::Field("scans".into()),
            PathSegment::Index(index),
        ];
        let path = |field: &str| field_of(&at, field);
        check_scan_fields(
            &mut violations,
            &at,
            &item.code,
            &item.nonce,
            item.gate.as_deref(),
        );
        check_not_ahead(
            scanning,
            item.scanned_at,
            path("scanned_at"),
            &mut violations,
        );
        let reason = item.offline_reason.as_deref().map(ScanReason::parse);
        let result = match (item.offline_result, reason) {
            (OfflineVerdict::Ok, None) => Some(OfflineResult::Admitted),
            (OfflineVerdict::Refused, Some(Some(reason))) => Some(OfflineResult::Refused(reason)),
            (OfflineVerdict::Ok, Some(_)) => {
                violations.push_at(path("offline_reason"), "only comes with refused");
                None
            }
            (OfflineVerdict::Refused, _) => {
                violations.push_at(path("offline_reason"), "must be a reason with refused");
                None
            }
        };
        if let Some(result) = result {
            scans.push(UploadedScan {
                scan: Scan {
                    list_id: item.list_id,
                    code: item.code,
                    nonce: item.nonce,
                    kind: item.kind.into(),
                    scanned_at: stored_precision(item.scanned_at),
                    force: false,
                    gate: item.gate,
                },
                result,
            });
        }
    }
    violations.finish(|| Some(scans))
}

#[derive(Serialize, ToSchema)]
pub struct UploadResult {
    nonce: String,
    list_id: Uuid,
    /// `ok` or `refused`.
    status: &'static str,
    reason: Option<&'static str>,
    forced: bool,
    /// The nonce was known: its stored result.
    replayed: bool,
    checkin_id: Option<Uuid>,
}

impl From<UploadOutcome> for UploadResult {
    fn from(outcome: UploadOutcome) -> Self {
        let result = outcome.result;
        Self {
            nonce: outcome.nonce,
            list_id: outcome.list_id,
            status: if result.admitted() { "ok" } else { "refused" },
            reason: result.reason.map(ScanReason::as_str),
            forced: result.forced(),
            replayed: outcome.replayed,
            checkin_id: result.checkin.map(|checkin| checkin.id),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UploadResponse {
    results: Vec<UploadResult>,
}

/// Upload scans a device judged offline (creator, or a scanner of every list named): any
/// fault records nothing; then, by `scanned_at`, admissions are forced redeems and refusals
/// are logged as judged. Results in request order.
#[utoipa::path(
    post, path = "/checkin/upload", tag = "checkin",
    security(("bearer" = [])), request_body = UploadRequest,
    responses(
        (status = 200, description = "Every scan's result", body = UploadResponse),
        (status = 403, description = "Not a scanner of a list named", body = ErrorBody),
        (status = 404, description = "No such list", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 429, description = "`CHECKIN_SCANS_PER_MINUTE` reached", body = ErrorBody),
        Unauthenticated, NotJson, Invalid,
    )
)]
async fn upload(
    State(scanning): State<Arc<Scanning>>,
    State(limits): State<Arc<UserRateLimits>>,
    ScannerAuth(scanner): ScannerAuth,
    ValidJson(items): ValidJson<UploadRequest>,
) -> Result<Json<UploadResponse>, ApiError> {
    limits.scan(scanner.credential_id())?;
    let scans = uploaded_scans(&scanning, items).map_err(invalid)?;
    let outcomes = scanning.upload(&scanner, scans).await?;
    let results = outcomes.into_iter().map(UploadResult::from).collect();
    Ok(Json(UploadResponse { results }))
}

/// What part of the bundle to send.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BundleQuery {
    /// The `cursor` of an earlier bundle: only revocations since.
    #[serde(default)]
    #[param(max_length = 64)]
    since: Option<String>,
    /// `tickets`: add a page of paid tickets.
    #[serde(default)]
    include: Option<String>,
    #[serde(default)]
    #[param(minimum = 0)]
    skip: Option<i64>,
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A checked [`BundleQuery`].
pub struct BundleAsk {
    since: Option<String>,
    tickets: Option<(i64, i64)>,
}

impl Input for BundleQuery {
    type Valid = BundleAsk;

    fn validate(self) -> Result<BundleAsk, Violations> {
        let mut violations = Violations::new();
        if self.since.as_ref().is_some_and(|since| since.len() > 64) {
            violations.push(&["since"], "must be at most 64 characters");
        }
        let with_tickets = match self.include.as_deref() {
            None => false,
            Some("tickets") => true,
            Some(_) => {
                violations.push(&["include"], "can only be tickets");
                false
            }
        };
        let skip = self.skip.unwrap_or(0);
        if skip < 0 {
            violations.push(&["skip"], "must be at least 0");
        }
        let limit = self.limit.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            violations.push(&["limit"], "must be between 1 and 1000");
        }
        violations.finish(|| {
            Some(BundleAsk {
                since: self.since,
                tickets: with_tickets.then_some((skip, limit)),
            })
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct BundleEvent {
    id: Uuid,
    title: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct BundleRevocation {
    ticket_id: Uuid,
    /// The one valid serial; null once the ticket left `paid`.
    valid_serial: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct BundleTierResponse {
    id: Uuid,
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct BundleTicketResponse {
    id: Uuid,
    tier_id: Uuid,
    serial: u32,
    holder_name: String,
}

/// What a door needs to scan offline.
#[derive(Serialize, ToSchema)]
pub struct BundleResponse {
    event: BundleEvent,
    keys: Vec<CheckinKey>,
    lists: Vec<ListResponse>,
    tiers: Vec<BundleTierResponse>,
    revocations: Vec<BundleRevocation>,
    /// Pass as `since` next time for only what changed.
    cursor: String,
    generated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets: Option<Vec<BundleTicketResponse>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets_total: Option<i64>,
}

/// Everything a door needs to scan offline: keys, lists, tiers, revoked codes (creator, or a
/// scanner of the event: its lists only).
#[utoipa::path(
    get, path = "/events/{event_id}/checkin/offline", tag = "checkin",
    security(("bearer" = [])), params(EventPath, BundleQuery),
    responses(
        (status = 200, description = "The bundle", body = BundleResponse),
        Unauthenticated, Invalid, EventNotFound, NotTheCreator,
    )
)]
async fn offline_bundle(
    State(scanning): State<Arc<Scanning>>,
    ScannerAuth(scanner): ScannerAuth,
    PathId(event_id): PathId,
    ValidQuery(ask): ValidQuery<BundleQuery>,
) -> Result<Json<BundleResponse>, ApiError> {
    let generated_at = Utc::now();
    let bundle = scanning
        .bundle(&scanner, event_id, ask.since.as_deref(), ask.tickets)
        .await?;
    let door = bundle.door;
    let (tickets, tickets_total) = match door.tickets {
        None => (None, None),
        Some((page, total)) => {
            let page = page
                .into_iter()
                .map(|ticket| BundleTicketResponse {
                    id: ticket.id,
                    tier_id: ticket.tier_id,
                    serial: ticket.serial,
                    holder_name: ticket.holder_name,
                })
                .collect();
            (Some(page), Some(total))
        }
    };
    Ok(Json(BundleResponse {
        event: BundleEvent {
            id: door.event_id,
            title: door.title,
            start_time: door.start_time,
            end_time: door.end_time,
        },
        keys: bundle.keys.into_iter().map(CheckinKey::from).collect(),
        lists: bundle.lists.into_iter().map(ListResponse::from).collect(),
        tiers: door
            .tiers
            .into_iter()
            .map(|(id, name)| BundleTierResponse { id, name })
            .collect(),
        revocations: door
            .revocations
            .into_iter()
            .map(|revocation| BundleRevocation {
                ticket_id: revocation.ticket_id,
                valid_serial: revocation.valid_serial,
            })
            .collect(),
        cursor: cursor(event_id, door.cursor),
        generated_at,
        tickets,
        tickets_total,
    }))
}
