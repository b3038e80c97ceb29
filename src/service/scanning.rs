//! The door (CHECKIN.md): scanner tokens, redeeming scans online and uploaded ones, list
//! counts and the offline bundle. Who may scan is decided here; what a scan comes to is
//! [`crate::domain::scan::judge`]'s, under the ticket's lock in the store.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::recent::Recent;
use super::{Action, Resource, ServiceError};
use crate::checkin::code::{self, PublicKeys};
use crate::checkin::keys::{ListedKey, TicketKeys};
use crate::config::CheckinSettings;
use crate::domain::scanner::list_path;
use crate::domain::{
    CheckinList, DoorBundle, ListStatus, OfflineResult, Redeemed, Scan, ScanResult, ScannedCode,
    Scanner, ScannerToken, TokenCreated, TokenDraft, TokenFields, TokenRevoked, Violations,
};
use crate::store::{BundleRequest, DynStore, RecordScan};

/// What a scanner token's text starts with (a login token never does).
pub const SCANNER_TOKEN_PREFIX: &str = "ntxs_";

pub struct Scanning {
    store: DynStore,
    keys: Arc<TicketKeys>,
    public: PublicKeys,
    settings: CheckinSettings,
    /// Lists as scans read them (the hot path: every scan names one).
    lists: Recent<(Uuid, CheckinList)>,
}

/// A scan of an offline upload, as the device judged it.
#[derive(Debug, Clone)]
pub struct UploadedScan {
    pub scan: Scan,
    pub result: OfflineResult,
}

/// What one uploaded scan came to.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub nonce: String,
    pub list_id: Uuid,
    pub result: ScanResult,
    pub replayed: bool,
}

/// An offline bundle, with the lists the asking scanner may use.
pub struct Bundle {
    pub door: DoorBundle,
    pub keys: Vec<ListedKey>,
    pub lists: Vec<CheckinList>,
}

impl Scanning {
    pub fn new(store: DynStore, keys: Arc<TicketKeys>, settings: CheckinSettings) -> Self {
        Self {
            store,
            public: keys.public(),
            keys,
            settings,
            lists: Recent::new(LIST_CACHE_TTL, LIST_CACHE_MAX),
        }
    }

    pub fn settings(&self) -> &CheckinSettings {
        &self.settings
    }

    fn max_refusals(&self) -> i64 {
        i64::from(self.settings.refusals_per_list)
    }

    /// The scanner a `ntxs_` token stands for: live, or 401.
    pub async fn scanner_token(&self, text: &str) -> Result<Scanner, ServiceError> {
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        match self.store.scanner_token(&hash).await? {
            Some(token) if token.live(Utc::now()) => Ok(Scanner::Token(token)),
            _ => Err(ServiceError::InvalidToken),
        }
    }

    /// A new token for an event of the caller's, and its text (shown only now).
    pub async fn create_token(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        fields: TokenFields,
    ) -> Result<(ScannerToken, String), ServiceError> {
        let draft = TokenDraft::parse(fields, self.settings.token_max_hours)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let text = format!("{SCANNER_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let max = i64::from(self.settings.tokens_per_event);
        let created = self
            .store
            .create_scanner_token(event_id, user_id, &draft, &hash, max)
            .await?;
        match created {
            TokenCreated::Created(token) => Ok((*token, text)),
            TokenCreated::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            TokenCreated::NotCreator => Err(ServiceError::NotOwner(Action::ManageCheckin)),
            TokenCreated::TooMany => {
                Err(ServiceError::TooManyTokens(self.settings.tokens_per_event))
            }
            TokenCreated::UnknownList(index) => {
                let mut violations = Violations::new();
                violations.push_at(list_path(index), "is not a check-in list of this event");
                Err(ServiceError::Invalid(violations))
            }
        }
    }

    /// The tokens of an event of the caller's, revoked ones too.
    pub async fn tokens(
        &self,
        user_id: Uuid,
        event_id: Uuid,
    ) -> Result<Vec<ScannerToken>, ServiceError> {
        match self.store.scanner_tokens(event_id).await? {
            None => Err(ServiceError::NotFound(Resource::Event, event_id)),
            Some((creator, _)) if creator != user_id => {
                Err(ServiceError::NotOwner(Action::ManageCheckin))
            }
            Some((_, tokens)) => Ok(tokens),
        }
    }

    /// Revokes a token of an event of the caller's at once (revoked already: done).
    pub async fn revoke_token(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        token_id: Uuid,
    ) -> Result<(), ServiceError> {
        match self
            .store
            .revoke_scanner_token(event_id, token_id, user_id)
            .await?
        {
            TokenRevoked::Revoked => Ok(()),
            TokenRevoked::EventNotFound => Err(ServiceError::NotFound(Resource::Event, event_id)),
            TokenRevoked::NotCreator => Err(ServiceError::NotOwner(Action::ManageCheckin)),
            TokenRevoked::TokenNotFound => {
                Err(ServiceError::NotFound(Resource::ScannerToken, token_id))
            }
        }
    }

    /// The lists of `event_id` the scanner may use (the creator: all), oldest first.
    pub async fn lists(
        &self,
        scanner: &Scanner,
        event_id: Uuid,
    ) -> Result<Vec<CheckinList>, ServiceError> {
        let (creator, lists) = self
            .store
            .checkin_lists(event_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Event, event_id))?;
        if !scanner.may_see_event(creator, event_id) {
            return Err(ServiceError::NotOwner(Action::Scan));
        }
        Ok(lists
            .into_iter()
            .filter(|list| scanner.may_scan(creator, list))
            .collect())
    }

    /// A list of `event_id` the scanner may use: 404 when it is another event's (or none),
    /// 403 when the scanner's token does not name it.
    pub async fn list(
        &self,
        scanner: &Scanner,
        event_id: Uuid,
        list_id: Uuid,
    ) -> Result<CheckinList, ServiceError> {
        let not_found = ServiceError::NotFound(Resource::CheckinList, list_id);
        let (creator, list) = self.store.checkin_list(list_id).await?.ok_or(not_found)?;
        if list.event_id != event_id {
            return Err(ServiceError::NotFound(Resource::CheckinList, list_id));
        }
        if !scanner.may_scan(creator, &list) {
            return Err(ServiceError::NotOwner(Action::Scan));
        }
        Ok(list)
    }

    /// A list's counts now.
    pub async fn list_status(
        &self,
        scanner: &Scanner,
        event_id: Uuid,
        list_id: Uuid,
    ) -> Result<ListStatus, ServiceError> {
        let list = self.list(scanner, event_id, list_id).await?;
        Ok(self.store.list_status(&list).await?)
    }

    /// The list a scan names, if the scanner may use it.
    async fn scan_list(
        &self,
        scanner: &Scanner,
        list_id: Uuid,
    ) -> Result<CheckinList, ServiceError> {
        let (creator, list) = match self.lists.get(list_id) {
            Some(cached) => cached,
            None => {
                let not_found = ServiceError::NotFound(Resource::CheckinList, list_id);
                let read_at = Instant::now();
                let read = self.store.checkin_list(list_id).await?.ok_or(not_found)?;
                self.lists.keep(list_id, read.clone(), read_at);
                read
            }
        };
        if !scanner.may_scan(creator, &list) {
            return Err(ServiceError::NotOwner(Action::Scan));
        }
        Ok(list)
    }

    /// What a scanned text names: an NTX1 code whose signature holds, or a ticket id.
    pub fn read_code(&self, text: &str) -> ScannedCode {
        if let Ok(code) = code::decode(text, &self.public) {
            return ScannedCode::Signed {
                ticket_id: code.ticket_id,
                serial: code.serial,
            };
        }
        match Uuid::try_parse(text) {
            Ok(id) if text.len() == 36 => ScannedCode::TicketId(id),
            _ => ScannedCode::Unreadable,
        }
    }

    /// Redeems one scan, judged and recorded under the ticket's lock; a nonce that has a
    /// check-in for this code gets that first answer, for another code 422.
    pub async fn redeem(&self, scanner: &Scanner, scan: Scan) -> Result<ScanResult, ServiceError> {
        let list = self.scan_list(scanner, scan.list_id).await?;
        let code = self.read_code(&scan.code);
        match self
            .store
            .redeem(&scan, code, &list, self.max_refusals())
            .await?
        {
            Redeemed::Judged(result) => {
                count_scan(&result);
                Ok(result)
            }
            Redeemed::Replayed(result) => Ok(result),
            Redeemed::NonceTaken => Err(nonce_taken(&["nonce"])),
            Redeemed::ListGone => Err(ServiceError::NotFound(Resource::CheckinList, list.id)),
        }
    }

    /// Records an offline device's scans: every list known and the scanner's, no nonce taken by
    /// another code (else nothing is recorded); then, in one transaction and by `scanned_at`,
    /// an admission is a forced redeem and a refusal is logged as the device judged it.
    /// Results in request order.
    pub async fn upload(
        &self,
        scanner: &Scanner,
        scans: Vec<UploadedScan>,
    ) -> Result<Vec<UploadOutcome>, ServiceError> {
        let mut lists: HashMap<Uuid, CheckinList> = HashMap::new();
        for uploaded in &scans {
            let list_id = uploaded.scan.list_id;
            if let Entry::Vacant(entry) = lists.entry(list_id) {
                entry.insert(self.scan_list(scanner, list_id).await?);
            }
        }
        repeated_nonce(&scans).map_or(Ok(()), |index| Err(nonce_taken_at(index)))?;
        let upload: Vec<RecordScan<'_>> = scans
            .iter()
            .map(|uploaded| RecordScan {
                scan: &uploaded.scan,
                code: self.read_code(&uploaded.scan.code),
                list: &lists[&uploaded.scan.list_id],
                offline: Some(uploaded.result),
            })
            .collect();
        let recorded = self.store.upload(&upload, self.max_refusals()).await?;
        let redeemed = match recorded {
            Ok(redeemed) => redeemed,
            Err((index, Redeemed::ListGone)) => {
                let list_id = scans[index].scan.list_id;
                return Err(ServiceError::NotFound(Resource::CheckinList, list_id));
            }
            Err((index, _)) => return Err(nonce_taken_at(index)),
        };
        let outcomes = scans.iter().zip(redeemed).map(|(uploaded, redeemed)| {
            let (result, replayed) = match redeemed {
                Redeemed::Judged(result) => {
                    count_scan(&result);
                    (result, false)
                }
                Redeemed::Replayed(result) => (result, true),
                // The store answers these with `Err(index)`, recording nothing.
                Redeemed::NonceTaken | Redeemed::ListGone => {
                    let error = anyhow::anyhow!("an upload recorded with a refused scan");
                    return Err(ServiceError::Internal(error));
                }
            };
            Ok(UploadOutcome {
                nonce: uploaded.scan.nonce.clone(),
                list_id: uploaded.scan.list_id,
                result,
                replayed,
            })
        });
        outcomes.collect()
    }

    /// The offline bundle of an event for a scanner; `since` a cursor of an earlier one.
    pub async fn bundle(
        &self,
        scanner: &Scanner,
        event_id: Uuid,
        since: Option<&str>,
        tickets: Option<(i64, i64)>,
    ) -> Result<Bundle, ServiceError> {
        // Who may see it first (404, 403), then what it asks (422).
        let lists = self.lists(scanner, event_id).await?;
        let since = match since {
            None => 0,
            Some(cursor) => parse_cursor(cursor, event_id).ok_or(ServiceError::UnknownCursor)?,
        };
        let request = BundleRequest { since, tickets };
        let door = self
            .store
            .door_bundle(event_id, request)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Event, event_id))?
            .map_err(|_| ServiceError::UnknownCursor)?;
        Ok(Bundle {
            door,
            keys: self.keys.listed(),
            lists,
        })
    }

    /// Scans may not claim to be from further ahead than this.
    pub fn latest_scan_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.settings.clock_skew
    }
}

/// How long a scan may use a list it read (with its event's creator): a change to a list
/// reaches scans in this process at most this late (a deleted list is refused by the store at
/// once: its foreign key). A gate scanning thousands of tickets a minute reads its list once a
/// second.
const LIST_CACHE_TTL: Duration = Duration::from_secs(1);
/// Lists kept at most; past it the cache starts again empty.
const LIST_CACHE_MAX: usize = 4096;

/// A bundle's cursor: the revocation log's position, tied to its event.
pub fn cursor(event_id: Uuid, position: i64) -> String {
    format!("{position}.{}", &event_id.simple().to_string()[..12])
}

fn parse_cursor(text: &str, event_id: Uuid) -> Option<i64> {
    let position: i64 = text.split_once('.')?.0.parse().ok()?;
    (position >= 0 && cursor(event_id, position) == text).then_some(position)
}

/// The first scan whose nonce an earlier one of the upload names with another code.
fn repeated_nonce(scans: &[UploadedScan]) -> Option<usize> {
    let mut seen: HashMap<(Uuid, &str), &str> = HashMap::new();
    scans.iter().position(|uploaded| {
        let scan = &uploaded.scan;
        let first = *seen
            .entry((scan.list_id, scan.nonce.as_str()))
            .or_insert(scan.code.as_str());
        first != scan.code
    })
}

fn nonce_taken(path: &[&str]) -> ServiceError {
    let mut violations = Violations::new();
    violations.push(path, "names another code's scan on this list");
    ServiceError::Invalid(violations)
}

fn nonce_taken_at(index: usize) -> ServiceError {
    use crate::domain::PathSegment;
    let mut violations = Violations::new();
    violations.push_at(
        vec![
            PathSegment::Field("scans".into()),
            PathSegment::Index(index),
            PathSegment::Field("nonce".into()),
        ],
        "names another code's scan on this list",
    );
    ServiceError::Invalid(violations)
}

/// `nearbytix_checkins_total` for a scan judged now.
fn count_scan(result: &ScanResult) {
    let outcome = match (result.admitted(), result.forced()) {
        (true, false) => "ok",
        (true, true) => "forced",
        (false, _) => "refused",
    };
    let reason = result.reason.map_or("none", |reason| reason.as_str());
    metrics::counter!("nearbytix_checkins_total", "result" => outcome, "reason" => reason)
        .increment(1);
}
