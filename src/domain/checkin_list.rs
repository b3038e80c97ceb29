//! Check-in lists (CHECKIN.md): which of an event's tiers a door admits, when, and whether a
//! ticket may come in again after leaving.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::validation::{PathSegment, Violations};

/// Most tiers one list names.
pub const MAX_LIST_TIERS: usize = 20;

/// (Serde: a keyed creation records the list as its outcome.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckinList {
    pub id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    /// `None`: every tier of the event, later ones too.
    pub tier_ids: Option<Vec<Uuid>>,
    pub allow_reentry: bool,
    pub activates_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
}

/// A list as its event's creator asks for it.
#[derive(Debug, Clone)]
pub struct ListFields {
    pub name: String,
    pub tier_ids: Option<Vec<Uuid>>,
    pub allow_reentry: bool,
    pub activates_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A list that keeps the rules a list can check alone (its tiers are the event's: the store
/// checks that, under the event's lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDraft {
    pub name: String,
    pub tier_ids: Option<Vec<Uuid>>,
    pub allow_reentry: bool,
    pub activates_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ListDraft {
    pub fn parse(fields: ListFields) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let name = fields.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            violations.push(&["name"], "must be 1 to 100 characters");
        }
        if let Some(tiers) = &fields.tier_ids {
            if tiers.is_empty() || tiers.len() > MAX_LIST_TIERS {
                violations.push(&["tier_ids"], "must name 1 to 20 tiers, or be null for all");
            }
            let mut seen = HashSet::new();
            for (index, tier) in tiers.iter().enumerate() {
                if !seen.insert(*tier) {
                    violations.push_at(tier_path(index), "is named twice");
                }
            }
        }
        if let (Some(activates), Some(expires)) = (fields.activates_at, fields.expires_at) {
            if activates >= expires {
                violations.push(&["expires_at"], "must be after activates_at");
            }
        }
        violations.finish(|| {
            Some(Self {
                name,
                tier_ids: fields.tier_ids,
                allow_reentry: fields.allow_reentry,
                activates_at: fields.activates_at,
                expires_at: fields.expires_at,
            })
        })
    }
}

/// Where the `index`-th tier of a list is in the request that named it.
pub fn tier_path(index: usize) -> Vec<PathSegment> {
    vec![
        PathSegment::Field("tier_ids".into()),
        PathSegment::Index(index),
    ]
}

/// A change to a list: each field given replaces the list's (`Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct ListPatch {
    pub name: Option<String>,
    pub tier_ids: Option<Option<Vec<Uuid>>>,
    pub allow_reentry: Option<bool>,
    pub activates_at: Option<Option<DateTime<Utc>>>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

impl ListPatch {
    /// `list` with this change, as fields the create rules are checked on.
    pub fn applied_to(self, list: &CheckinList) -> ListFields {
        ListFields {
            name: self.name.unwrap_or_else(|| list.name.clone()),
            tier_ids: self.tier_ids.unwrap_or_else(|| list.tier_ids.clone()),
            allow_reentry: self.allow_reentry.unwrap_or(list.allow_reentry),
            activates_at: self.activates_at.unwrap_or(list.activates_at),
            expires_at: self.expires_at.unwrap_or(list.expires_at),
        }
    }
}

/// How creating a list ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListCreated {
    Created(Box<CheckinList>),
    EventNotFound,
    NotCreator,
    /// The event has as many lists as allowed.
    TooMany,
    /// The `index`-th tier is not one of the event's.
    UnknownTier(usize),
}

/// How changing a list ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChanged {
    Changed(Box<CheckinList>),
    EventNotFound,
    NotCreator,
    ListNotFound,
    /// The `index`-th tier is not one of the event's.
    UnknownTier(usize),
}

/// How deleting a list ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListDeleted {
    Deleted,
    EventNotFound,
    NotCreator,
    ListNotFound,
    /// The list has a check-in, or a live scanner token names it.
    InUse,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ListFields {
        ListFields {
            name: " VIP door ".into(),
            tier_ids: None,
            allow_reentry: false,
            activates_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn a_list_keeps_its_own_rules() {
        assert_eq!(ListDraft::parse(fields()).unwrap().name, "VIP door");
        let tier = Uuid::new_v4();
        let twice = ListFields {
            tier_ids: Some(vec![tier, tier]),
            ..fields()
        };
        assert!(ListDraft::parse(twice).is_err());
        let none = ListFields {
            tier_ids: Some(vec![]),
            ..fields()
        };
        assert!(ListDraft::parse(none).is_err());
        let now = Utc::now();
        let backwards = ListFields {
            activates_at: Some(now),
            expires_at: Some(now),
            ..fields()
        };
        assert!(ListDraft::parse(backwards).is_err());
        let unnamed = ListFields {
            name: "  ".into(),
            ..fields()
        };
        assert!(ListDraft::parse(unnamed).is_err());
    }
}
