//! Scanner tokens (CHECKIN.md § Scanner tokens): a door device's credential, scoped to one
//! event and some of its lists, and who may scan at all.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::checkin_list::CheckinList;
use super::validation::{PathSegment, Violations};

/// Most lists one token names.
pub const MAX_TOKEN_LISTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerToken {
    pub id: Uuid,
    pub event_id: Uuid,
    pub label: String,
    /// `None`: every list of the event, later ones too.
    pub list_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ScannerToken {
    /// Neither revoked nor expired at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether the token scans `list`.
    pub fn covers(&self, list: &CheckinList) -> bool {
        self.event_id == list.event_id
            && self
                .list_ids
                .as_ref()
                .is_none_or(|lists| lists.contains(&list.id))
    }
}

/// A token as its event's creator asks for it.
#[derive(Debug, Clone)]
pub struct TokenFields {
    pub label: String,
    pub list_ids: Option<Vec<Uuid>>,
    pub expires_in_hours: Option<u32>,
}

/// A token that keeps the rules it can check alone (its lists are the event's: the store
/// checks that, under the event's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDraft {
    pub label: String,
    pub list_ids: Option<Vec<Uuid>>,
    pub lifetime: chrono::Duration,
}

impl TokenDraft {
    /// `max_hours` is `SCANNER_TOKEN_MAX_HOURS`.
    pub fn parse(fields: TokenFields, max_hours: u32) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let label = fields.label.trim().to_owned();
        if label.is_empty() || label.chars().count() > 100 {
            violations.push(&["label"], "must be 1 to 100 characters");
        }
        if let Some(lists) = &fields.list_ids {
            if lists.is_empty() || lists.len() > MAX_TOKEN_LISTS {
                violations.push(&["list_ids"], "must name 1 to 20 lists, or be null for all");
            }
            let mut seen = HashSet::new();
            for (index, list) in lists.iter().enumerate() {
                if !seen.insert(*list) {
                    violations.push_at(list_path(index), "is named twice");
                }
            }
        }
        let hours = fields.expires_in_hours.unwrap_or(24.min(max_hours));
        if !(1..=max_hours).contains(&hours) {
            violations.push(
                &["expires_in_hours"],
                format!("must be between 1 and {max_hours}"),
            );
        }
        violations.finish(|| {
            Some(Self {
                label,
                list_ids: fields.list_ids,
                lifetime: chrono::Duration::hours(i64::from(hours)),
            })
        })
    }
}

/// Where the `index`-th list of a token is in its request.
pub fn list_path(index: usize) -> Vec<PathSegment> {
    vec![
        PathSegment::Field("list_ids".into()),
        PathSegment::Index(index),
    ]
}

/// Who is scanning: an event's creator (by their login token), or a scanner token.
#[derive(Debug, Clone)]
pub enum Scanner {
    User(Uuid),
    Token(ScannerToken),
}

impl Scanner {
    /// The key its scans are rate-limited by.
    pub fn credential_id(&self) -> Uuid {
        match self {
            Scanner::User(id) => *id,
            Scanner::Token(token) => token.id,
        }
    }

    /// Whether it may scan `list` of an event created by `creator`.
    pub fn may_scan(&self, creator: Uuid, list: &CheckinList) -> bool {
        match self {
            Scanner::User(id) => *id == creator,
            Scanner::Token(token) => token.covers(list),
        }
    }

    /// Whether it may read what the doors of `event_id` (created by `creator`) share.
    pub fn may_see_event(&self, creator: Uuid, event_id: Uuid) -> bool {
        match self {
            Scanner::User(id) => *id == creator,
            Scanner::Token(token) => token.event_id == event_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCreated {
    Created(Box<ScannerToken>),
    EventNotFound,
    NotCreator,
    TooMany,
    UnknownList(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevoked {
    Revoked,
    EventNotFound,
    NotCreator,
    TokenNotFound,
}
