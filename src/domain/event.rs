//! Events, their venue, and the rules a new or changed event must satisfy.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::geo::GeoPoint;
use super::validation::FieldError;
use super::validation::Violations;

pub const TOTAL_TICKETS_MAX: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Venue {
    pub location: GeoPoint,
    pub venue_name: String,
    pub address_line1: String,
    pub address_line2: Option<String>,
    pub city: String,
    pub state: String,
    pub country: String,
    pub postal_code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub creator_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub total_tickets: i32,
    pub tickets_sold: i32,
    pub venue: Venue,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Event {
    pub fn tickets_available(&self) -> i32 {
        (self.total_tickets - self.tickets_sold).max(0)
    }

    pub fn is_sold_out(&self) -> bool {
        self.tickets_available() == 0
    }
}

/// An event found by a distance search.
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyEvent {
    pub event: Event,
    pub distance_km: f64,
}

/// Everything a stored event is made of that its creator controls. Field rules (lengths,
/// ranges) are checked when it is built from input; [`EventDraft::check`] adds the rules
/// that involve several fields or the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub title: String,
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub total_tickets: i32,
    pub venue: Venue,
}

/// A partial update: `None` leaves a field as it is; `description: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventChanges {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub total_tickets: Option<i32>,
    pub venue: Option<Venue>,
}

impl EventDraft {
    /// Cross-field and clock rules, reported under `body`.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
        let mut violations = Violations::new();
        if self.start_time >= self.end_time {
            violations.push(&["body", "end_time"], "end_time must be after start_time");
        }
        if self.start_time <= now {
            violations.push(&["body", "start_time"], "start_time must be in the future");
        }
        violations.finish(|| ())
    }

    /// The draft an existing event becomes after `changes`.
    pub fn merged(event: &Event, changes: EventChanges) -> Self {
        Self {
            title: changes.title.unwrap_or_else(|| event.title.clone()),
            description: changes
                .description
                .unwrap_or_else(|| event.description.clone()),
            start_time: changes.start_time.unwrap_or(event.start_time),
            end_time: changes.end_time.unwrap_or(event.end_time),
            total_tickets: changes.total_tickets.unwrap_or(event.total_tickets),
            venue: changes.venue.unwrap_or_else(|| event.venue.clone()),
        }
    }
}

/// Checks that `raw` is a whole number of tickets within the contract's range.
pub fn parse_total_tickets(raw: i64) -> Result<i32, String> {
    if (1..=TOTAL_TICKETS_MAX).contains(&raw) {
        Ok(i32::try_from(raw).expect("range checked above"))
    } else {
        Err(format!("must be between 1 and {TOTAL_TICKETS_MAX}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn venue() -> Venue {
        Venue {
            location: GeoPoint::new(6.5, 3.4).unwrap(),
            venue_name: "Hall".into(),
            address_line1: "1 Road".into(),
            address_line2: None,
            city: "Lagos".into(),
            state: "Lagos".into(),
            country: "NG".into(),
            postal_code: "100001".into(),
        }
    }

    fn draft(now: DateTime<Utc>) -> EventDraft {
        EventDraft {
            title: "Gig".into(),
            description: Some("Loud".into()),
            start_time: now + Duration::days(1),
            end_time: now + Duration::days(1) + Duration::hours(2),
            total_tickets: 10,
            venue: venue(),
        }
    }

    #[test]
    fn start_must_precede_end_and_lie_ahead() {
        let now = Utc::now();
        assert!(draft(now).check(now).is_ok());

        let mut reversed = draft(now);
        reversed.end_time = reversed.start_time;
        let errors = reversed.check(now).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].loc, vec!["body".into(), "end_time".into()]);

        let mut past = draft(now);
        past.start_time = now - Duration::minutes(1);
        assert!(past.check(now).is_err());
    }

    #[test]
    fn merge_keeps_unchanged_fields_and_clears_description() {
        let now = Utc::now();
        let base = draft(now);
        let event = Event {
            id: Uuid::nil(),
            creator_id: Uuid::nil(),
            title: base.title.clone(),
            description: base.description.clone(),
            start_time: base.start_time,
            end_time: base.end_time,
            total_tickets: base.total_tickets,
            tickets_sold: 3,
            venue: base.venue.clone(),
            created_at: now,
            updated_at: now,
        };
        let merged = EventDraft::merged(
            &event,
            EventChanges {
                title: Some("New".into()),
                description: Some(None),
                ..EventChanges::default()
            },
        );
        assert_eq!(merged.title, "New");
        assert_eq!(merged.description, None);
        assert_eq!(merged.total_tickets, 10);
        assert_eq!(merged.venue, base.venue);
    }

    #[test]
    fn total_tickets_range() {
        assert!(parse_total_tickets(0).is_err());
        assert!(parse_total_tickets(1_000_001).is_err());
        assert_eq!(parse_total_tickets(1_000_000), Ok(1_000_000));
    }
}
