//! Events, their venue, and the rules a new or changed event must satisfy.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::geo::GeoPoint;
use super::text;
use super::tier::{Tier, TierDraft, TierFields, TierSale, tickets_on_sale};
use super::time::parse_timestamp;
use super::validation::{PathSegment, Violations};

pub const TOTAL_TICKETS_MAX: i64 = 1_000_000;
pub const TITLE_MAX_CHARS: usize = 255;
pub const DESCRIPTION_MAX_CHARS: usize = 5000;
pub const DEFAULT_CURRENCY: &str = "USD";
const MAX_TICKETS_PER_USER_RANGE: std::ops::RangeInclusive<i64> = 1..=100;
/// The longest a waiting-list offer may hold its seats: a week, in minutes.
pub const MAX_OFFER_MINUTES: i64 = 10_080;
/// Most tiers an event sells.
pub const MAX_TIERS: usize = 20;
const VENUE_NAME_MAX_CHARS: usize = 255;
const ADDRESS_LINE_MAX_CHARS: usize = 255;
const REGION_MAX_CHARS: usize = 100;
const POSTAL_CODE_MAX_CHARS: usize = 20;

/// A venue as given by a client or read back from storage, not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueFields {
    pub latitude: f64,
    pub longitude: f64,
    pub venue_name: String,
    pub address_line1: String,
    pub address_line2: Option<String>,
    pub city: String,
    pub state: String,
    pub country: String,
    pub postal_code: String,
}

/// A valid venue: only [`Venue::parse`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Venue {
    location: GeoPoint,
    venue_name: String,
    address_line1: String,
    address_line2: Option<String>,
    city: String,
    state: String,
    country: String,
    postal_code: String,
}

impl Venue {
    /// Checks every field; violations are reported at the field names.
    pub fn parse(fields: VenueFields) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let location = GeoPoint::parse(&mut violations, &[], fields.latitude, fields.longitude);
        let mut text = |field: &'static str, value: &str, max: usize| {
            violations.check(&[field], text::bounded(value, 1, max))
        };
        let venue_name = text("venue_name", &fields.venue_name, VENUE_NAME_MAX_CHARS);
        let address_line1 = text(
            "address_line1",
            &fields.address_line1,
            ADDRESS_LINE_MAX_CHARS,
        );
        let city = text("city", &fields.city, REGION_MAX_CHARS);
        let state = text("state", &fields.state, REGION_MAX_CHARS);
        let country = text("country", &fields.country, REGION_MAX_CHARS);
        let postal_code = text("postal_code", &fields.postal_code, POSTAL_CODE_MAX_CHARS);
        let address_line2 = violations.check(
            &["address_line2"],
            text::optional(fields.address_line2.as_deref(), ADDRESS_LINE_MAX_CHARS),
        );
        violations.finish(|| {
            Some(Venue {
                location: location?,
                venue_name: venue_name?,
                address_line1: address_line1?,
                address_line2: address_line2?,
                city: city?,
                state: state?,
                country: country?,
                postal_code: postal_code?,
            })
        })
    }

    pub fn location(&self) -> GeoPoint {
        self.location
    }
    pub fn venue_name(&self) -> &str {
        &self.venue_name
    }
    pub fn address_line1(&self) -> &str {
        &self.address_line1
    }
    pub fn address_line2(&self) -> Option<&str> {
        self.address_line2.as_deref()
    }
    pub fn city(&self) -> &str {
        &self.city
    }
    pub fn state(&self) -> &str {
        &self.state
    }
    pub fn country(&self) -> &str {
        &self.country
    }
    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }
}

/// A stored event.
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
    /// ISO 4217 code of every price of the event.
    pub currency: String,
    /// Reserved and paid tickets one user may hold for the event; `None`: no cap.
    pub max_tickets_per_user: Option<i32>,
    pub waitlist: WaitlistSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Each tier's quota and sales window, in sale order: what decides whether the event can
    /// be bought now.
    pub sales: Vec<TierSale>,
}

impl Event {
    /// Seats the event's capacity has left, whatever its tiers allow.
    pub fn seats_left(&self) -> i64 {
        i64::from(self.total_tickets - self.tickets_sold).max(0)
    }

    /// Tickets that can be bought at `now`: what the tiers on sale can still sell, within the
    /// seats the event has left.
    pub fn tickets_available(&self, now: DateTime<Utc>) -> i64 {
        tickets_on_sale(self.seats_left(), self.sales.iter().copied(), now)
    }

    /// Whether nothing can be bought at `now`: every seat taken, or every tier sold out or
    /// outside its sales window.
    pub fn is_sold_out(&self, now: DateTime<Utc>) -> bool {
        self.tickets_available(now) == 0
    }

    /// The first instant after `now` at which [`is_sold_out`](Self::is_sold_out) turns by the
    /// clock alone, as a tier's sales window opens or closes (with no sale or edit meanwhile).
    pub fn sold_out_turns_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let sold_out = self.is_sold_out(now);
        let mut instants: Vec<DateTime<Utc>> = self
            .sales
            .iter()
            .flat_map(|tier| [tier.sales_start, tier.sales_end])
            .flatten()
            .filter(|instant| *instant > now)
            .collect();
        instants.sort_unstable();
        instants
            .into_iter()
            .find(|instant| self.is_sold_out(*instant) != sold_out)
    }
}

/// An event's waiting list, as its creator set it (WAITLIST.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitlistSettings {
    /// Whether people may join the line when the event or a tier is sold out.
    pub enabled: bool,
    /// How long an offer holds its seats, 1–10080 minutes; `None`: `WAITLIST_OFFER_MINUTES`.
    pub offer_minutes: Option<i32>,
}

/// An event with its tiers in sale order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetails {
    pub event: Event,
    pub tiers: Vec<Tier>,
}

/// An event found by a distance search.
#[derive(Debug, Clone, PartialEq)]
pub struct NearbyEvent {
    pub event: Event,
    pub distance_km: f64,
}

/// A new event as a client gives it, not yet checked.
#[derive(Debug, Clone)]
pub struct EventFields {
    pub title: String,
    pub description: Option<String>,
    pub start_time: String,
    pub end_time: String,
    pub total_tickets: i64,
    pub venue: VenueFields,
    pub currency: Option<String>,
    pub max_tickets_per_user: Option<i64>,
    /// `None`: off.
    pub waitlist_enabled: Option<bool>,
    /// `None`: the server's default.
    pub waitlist_offer_minutes: Option<i64>,
    /// `None`: the one default tier.
    pub tiers: Option<Vec<TierFields>>,
}

/// A partial update as a client gives it: `None` leaves a field as it is; `description:
/// Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct EventPatchFields {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub total_tickets: Option<i64>,
    pub venue: Option<VenueFields>,
    pub currency: Option<String>,
    /// `Some(None)` removes the cap.
    pub max_tickets_per_user: Option<Option<i64>>,
    pub waitlist_enabled: Option<bool>,
    /// `Some(None)`: back to the server's default.
    pub waitlist_offer_minutes: Option<Option<i64>>,
    /// Tiers cannot be changed here (they have endpoints of their own): given at all, 422.
    pub tiers_given: bool,
}

/// Checked changes to an event; [`EventDraft::merge`] applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventChanges {
    title: Option<String>,
    description: Option<Option<String>>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    total_tickets: Option<i32>,
    venue: Option<Venue>,
    currency: Option<String>,
    max_tickets_per_user: Option<Option<i32>>,
    waitlist_enabled: Option<bool>,
    waitlist_offer_minutes: Option<Option<i32>>,
}

impl EventChanges {
    pub fn parse(fields: EventPatchFields) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let changes = EventChanges {
            title: fields.title.and_then(|raw| title(&mut violations, &raw)),
            description: fields
                .description
                .and_then(|raw| description(&mut violations, raw.as_deref())),
            start_time: fields
                .start_time
                .and_then(|raw| timestamp(&mut violations, "start_time", &raw)),
            end_time: fields
                .end_time
                .and_then(|raw| timestamp(&mut violations, "end_time", &raw)),
            total_tickets: fields
                .total_tickets
                .and_then(|raw| violations.check(&["total_tickets"], total_tickets(raw))),
            venue: fields.venue.and_then(|raw| venue(&mut violations, raw)),
            currency: fields
                .currency
                .and_then(|raw| violations.check(&["currency"], currency(&raw))),
            max_tickets_per_user: fields.max_tickets_per_user.and_then(|raw| {
                violations.check(&["max_tickets_per_user"], max_tickets_per_user(raw))
            }),
            waitlist_enabled: fields.waitlist_enabled,
            waitlist_offer_minutes: fields
                .waitlist_offer_minutes
                .and_then(|raw| violations.check(&["waitlist_offer_minutes"], offer_minutes(raw))),
        };
        if fields.tiers_given {
            violations.push(&["tiers"], "tiers are changed through /events/{id}/tiers");
        }
        violations.finish(|| Some(changes))
    }
}

/// Everything of an event its creator controls, every rule checked: only [`EventDraft::new`]
/// and [`EventDraft::merge`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    title: String,
    description: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    total_tickets: i32,
    venue: Venue,
    currency: String,
    max_tickets_per_user: Option<i32>,
    waitlist: WaitlistSettings,
}

/// A new event: its draft and the tiers it sells (at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub draft: EventDraft,
    pub tiers: Vec<TierDraft>,
}

impl NewEvent {
    /// Checks a new event and its tiers; `now` decides whether it starts in the future.
    pub fn parse(mut fields: EventFields, now: DateTime<Utc>) -> Result<Self, Violations> {
        let tiers = fields.tiers.take();
        let draft = EventDraft::new(fields, now);
        let mut violations = Violations::new();
        // Tier quantities are checked against the total only once it is valid.
        let total = draft.as_ref().map_or(i32::MAX, EventDraft::total_tickets);
        let tiers = match tiers {
            None => Some(vec![TierDraft::default_tier()]),
            Some(tiers) => tier_drafts(&mut violations, tiers, total),
        };
        let draft = match draft {
            Ok(draft) => Some(draft),
            Err(nested) => {
                violations.absorb(&[], nested);
                None
            }
        };
        violations.finish(|| {
            Some(NewEvent {
                draft: draft?,
                tiers: tiers?,
            })
        })
    }
}

/// Checks a new event's tiers: 1 to 20, each valid, names unique.
fn tier_drafts(
    violations: &mut Violations,
    tiers: Vec<TierFields>,
    total_tickets: i32,
) -> Option<Vec<TierDraft>> {
    if tiers.is_empty() || tiers.len() > MAX_TIERS {
        violations.push(&["tiers"], format!("must hold 1 to {MAX_TIERS} tiers"));
        return None;
    }
    let mut drafts = Vec::with_capacity(tiers.len());
    for (index, fields) in tiers.into_iter().enumerate() {
        let at = vec![PathSegment::from("tiers"), PathSegment::Index(index)];
        match TierDraft::parse(fields, total_tickets) {
            Ok(tier)
                if drafts
                    .iter()
                    .any(|seen: &TierDraft| seen.name() == tier.name()) =>
            {
                let mut name = at;
                name.push(PathSegment::from("name"));
                violations.push_at(name, "another tier of the event has this name");
            }
            Ok(tier) => drafts.push(tier),
            Err(nested) => violations.absorb_at(at, nested),
        }
    }
    Some(drafts)
}

impl EventDraft {
    /// A new event's draft; `now` decides whether it starts in the future.
    pub fn new(fields: EventFields, now: DateTime<Utc>) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let title = title(&mut violations, &fields.title);
        let description = description(&mut violations, fields.description.as_deref());
        let start_time = timestamp(&mut violations, "start_time", &fields.start_time);
        let end_time = timestamp(&mut violations, "end_time", &fields.end_time);
        let total_tickets =
            violations.check(&["total_tickets"], total_tickets(fields.total_tickets));
        let venue = venue(&mut violations, fields.venue);
        let currency = match fields.currency {
            None => Some(DEFAULT_CURRENCY.to_owned()),
            Some(raw) => violations.check(&["currency"], currency(&raw)),
        };
        let max_tickets_per_user = match fields.max_tickets_per_user {
            None => Some(None),
            Some(raw) => {
                violations.check(&["max_tickets_per_user"], max_tickets_per_user(Some(raw)))
            }
        };
        let offer_minutes = violations.check(
            &["waitlist_offer_minutes"],
            offer_minutes(fields.waitlist_offer_minutes),
        );
        let draft = violations.finish(|| {
            Some(EventDraft {
                title: title?,
                description: description?,
                start_time: start_time?,
                end_time: end_time?,
                total_tickets: total_tickets?,
                venue: venue?,
                currency: currency?,
                max_tickets_per_user: max_tickets_per_user?,
                waitlist: WaitlistSettings {
                    enabled: fields.waitlist_enabled.unwrap_or(false),
                    offer_minutes: offer_minutes?,
                },
            })
        })?;
        draft.checked(now)
    }

    /// What `event` becomes after `changes`, re-checked as a whole.
    pub fn merge(
        event: &Event,
        changes: EventChanges,
        now: DateTime<Utc>,
    ) -> Result<Self, Violations> {
        EventDraft {
            title: changes.title.unwrap_or_else(|| event.title.clone()),
            description: changes
                .description
                .unwrap_or_else(|| event.description.clone()),
            start_time: changes.start_time.unwrap_or(event.start_time),
            end_time: changes.end_time.unwrap_or(event.end_time),
            total_tickets: changes.total_tickets.unwrap_or(event.total_tickets),
            venue: changes.venue.unwrap_or_else(|| event.venue.clone()),
            currency: changes.currency.unwrap_or_else(|| event.currency.clone()),
            max_tickets_per_user: changes
                .max_tickets_per_user
                .unwrap_or(event.max_tickets_per_user),
            waitlist: WaitlistSettings {
                enabled: changes.waitlist_enabled.unwrap_or(event.waitlist.enabled),
                offer_minutes: changes
                    .waitlist_offer_minutes
                    .unwrap_or(event.waitlist.offer_minutes),
            },
        }
        .checked(now)
    }

    /// The rules that involve several fields or the clock.
    fn checked(self, now: DateTime<Utc>) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        if self.start_time >= self.end_time {
            violations.push(&["end_time"], "end_time must be after start_time");
        }
        if self.start_time <= now {
            violations.push(&["start_time"], "start_time must be in the future");
        }
        violations.finish(|| Some(self))
    }

    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn start_time(&self) -> DateTime<Utc> {
        self.start_time
    }
    pub fn end_time(&self) -> DateTime<Utc> {
        self.end_time
    }
    pub fn total_tickets(&self) -> i32 {
        self.total_tickets
    }
    pub fn venue(&self) -> &Venue {
        &self.venue
    }
    pub fn currency(&self) -> &str {
        &self.currency
    }
    pub fn max_tickets_per_user(&self) -> Option<i32> {
        self.max_tickets_per_user
    }
    pub fn waitlist(&self) -> WaitlistSettings {
        self.waitlist
    }
}

/// An ISO 4217 code: three capital letters.
fn currency(raw: &str) -> Result<String, String> {
    let code = raw.trim();
    if code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err("must be an ISO 4217 code of three capital letters, such as USD".to_owned())
    }
}

/// No cap (`None`) or 1–100 tickets per person.
fn max_tickets_per_user(raw: Option<i64>) -> Result<Option<i32>, String> {
    match raw {
        None => Ok(None),
        Some(cap) if MAX_TICKETS_PER_USER_RANGE.contains(&cap) => Ok(i32::try_from(cap).ok()),
        Some(_) => Err("must be null or between 1 and 100".to_owned()),
    }
}

/// The server's default (`None`) or 1–10080 minutes (a week).
fn offer_minutes(raw: Option<i64>) -> Result<Option<i32>, String> {
    match raw {
        None => Ok(None),
        Some(minutes) if (1..=MAX_OFFER_MINUTES).contains(&minutes) => {
            Ok(i32::try_from(minutes).ok())
        }
        Some(_) => Err(format!("must be null or between 1 and {MAX_OFFER_MINUTES}")),
    }
}

fn title(violations: &mut Violations, raw: &str) -> Option<String> {
    violations.check(&["title"], text::bounded(raw, 1, TITLE_MAX_CHARS))
}

fn description(violations: &mut Violations, raw: Option<&str>) -> Option<Option<String>> {
    violations.check(&["description"], text::optional(raw, DESCRIPTION_MAX_CHARS))
}

fn timestamp(violations: &mut Violations, field: &str, raw: &str) -> Option<DateTime<Utc>> {
    parse_timestamp(raw)
        .map_err(|error| {
            violations.push_kind(
                &[field],
                error.to_string(),
                super::validation::ViolationKind::DateTime,
            )
        })
        .ok()
}

fn venue(violations: &mut Violations, fields: VenueFields) -> Option<Venue> {
    Venue::parse(fields)
        .map_err(|nested| violations.absorb(&["venue"], nested))
        .ok()
}

/// A whole number of tickets within the contract's range.
pub fn total_tickets(raw: i64) -> Result<i32, String> {
    match i32::try_from(raw) {
        Ok(total) if (1..=TOTAL_TICKETS_MAX).contains(&raw) => Ok(total),
        _ => Err(format!("must be between 1 and {TOTAL_TICKETS_MAX}")),
    }
}

/// How an attempt to change an event ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EventUpdate {
    Done(Box<EventDetails>),
    NotFound,
    NotCreator,
    /// The new `total_tickets` is below the tickets already sold.
    BelowSold,
    /// The currency would change although the event has orders (at their prices in the old
    /// one).
    CurrencyLocked,
}

/// How an attempt to delete an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelete {
    Deleted,
    NotFound,
    NotCreator,
    HasTickets,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Duration;

    pub(crate) fn venue_fields() -> VenueFields {
        VenueFields {
            latitude: 6.5,
            longitude: 3.4,
            venue_name: "Hall".into(),
            address_line1: "1 Road".into(),
            address_line2: None,
            city: "Lagos".into(),
            state: "Lagos".into(),
            country: "NG".into(),
            postal_code: "100001".into(),
        }
    }

    fn fields(now: DateTime<Utc>) -> EventFields {
        let start = now + Duration::days(1);
        EventFields {
            title: " Gig ".into(),
            description: Some("Loud".into()),
            start_time: start.to_rfc3339(),
            end_time: (start + Duration::hours(2)).to_rfc3339(),
            total_tickets: 10,
            venue: venue_fields(),
            currency: None,
            max_tickets_per_user: None,
            waitlist_enabled: None,
            waitlist_offer_minutes: None,
            tiers: None,
        }
    }

    fn paths(violations: &Violations) -> Vec<String> {
        violations
            .to_string()
            .split("; ")
            .map(|rule| rule.split(':').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn start_must_precede_end_and_lie_ahead() {
        let now = Utc::now();
        let draft = EventDraft::new(fields(now), now).unwrap();
        assert_eq!(draft.title(), "Gig");

        let mut reversed = fields(now);
        reversed.end_time = reversed.start_time.clone();
        let errors = EventDraft::new(reversed, now).unwrap_err();
        assert_eq!(paths(&errors), vec!["end_time"]);

        let mut past = fields(now);
        past.start_time = (now - Duration::minutes(1)).to_rfc3339();
        assert!(EventDraft::new(past, now).is_err());
    }

    #[test]
    fn every_broken_field_is_reported_at_its_path() {
        let now = Utc::now();
        let mut bad = fields(now);
        bad.title = " ".into();
        bad.total_tickets = 0;
        bad.start_time = "2026-12-01T18:00:00".into();
        bad.venue.latitude = 91.0;
        bad.venue.postal_code = "x".repeat(21);
        let errors = EventDraft::new(bad, now).unwrap_err();
        assert_eq!(
            paths(&errors),
            vec![
                "title",
                "start_time",
                "total_tickets",
                "venue.latitude",
                "venue.postal_code"
            ]
        );
    }

    #[test]
    fn what_can_be_bought_now_follows_the_tiers_on_sale() {
        let now = Utc::now();
        let hour = Duration::hours(1);
        let tier = |quantity: Option<i32>, sold, start: Option<i64>, end: Option<i64>| TierSale {
            quantity,
            sold,
            sales_start: start.map(|hours| now + hour * hours as i32),
            sales_end: end.map(|hours| now + hour * hours as i32),
        };
        let event = |sold, sales| Event {
            total_tickets: 100,
            tickets_sold: sold,
            sales,
            ..event_of(EventDraft::new(fields(now), now).unwrap(), now)
        };
        // (tickets sold of 100, tiers) → tickets available now.
        let cases = [
            (0, vec![tier(None, 0, None, None)], 100),
            (60, vec![tier(None, 60, None, None)], 40),
            (1, vec![tier(Some(1), 1, None, None)], 0),
            (
                5,
                vec![tier(Some(5), 5, None, None), tier(Some(10), 0, None, None)],
                10,
            ),
            (0, vec![tier(Some(10), 0, Some(1), None)], 0),
            (0, vec![tier(Some(10), 0, None, Some(-1))], 0),
            (
                0,
                vec![
                    tier(Some(10), 0, Some(-1), Some(1)),
                    tier(None, 0, Some(2), None),
                ],
                10,
            ),
            (
                99,
                vec![tier(None, 99, None, None), tier(Some(5), 0, None, None)],
                1,
            ),
            (100, vec![tier(None, 100, None, None)], 0),
            (0, vec![], 0),
        ];
        for (sold, sales, available) in cases {
            let event = event(sold, sales.clone());
            assert_eq!(event.tickets_available(now), available, "{sales:?}");
            assert_eq!(event.is_sold_out(now), available == 0);
        }
        let later = event(0, vec![tier(None, 0, Some(2), Some(3))]);
        assert_eq!(later.sold_out_turns_at(now), Some(now + hour * 2));
        assert_eq!(
            later.sold_out_turns_at(now + hour * 2),
            Some(now + hour * 3)
        );
        assert_eq!(later.sold_out_turns_at(now + hour * 3), None);
        assert!(!later.is_sold_out(now + hour * 2));
        // A window closing while another tier sells changes nothing; nor does one opening for
        // a tier sold out by its quota.
        let handover = event(
            0,
            vec![
                tier(Some(5), 5, Some(1), None),
                tier(None, 0, None, Some(2)),
                tier(None, 0, Some(2), Some(4)),
            ],
        );
        assert_eq!(handover.sold_out_turns_at(now), Some(now + hour * 4));
    }

    /// The stored event of `draft`, nothing sold.
    fn event_of(draft: EventDraft, now: DateTime<Utc>) -> Event {
        Event {
            id: Uuid::nil(),
            creator_id: Uuid::nil(),
            title: draft.title,
            description: draft.description,
            start_time: draft.start_time,
            end_time: draft.end_time,
            total_tickets: draft.total_tickets,
            tickets_sold: 0,
            venue: draft.venue,
            currency: draft.currency,
            max_tickets_per_user: draft.max_tickets_per_user,
            waitlist: draft.waitlist,
            created_at: now,
            updated_at: now,
            sales: Vec::new(),
        }
    }

    #[test]
    fn merge_keeps_unchanged_fields_and_clears_description() {
        let now = Utc::now();
        let base = EventDraft::new(fields(now), now).unwrap();
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
            currency: base.currency.clone(),
            max_tickets_per_user: base.max_tickets_per_user,
            waitlist: base.waitlist,
            created_at: now,
            updated_at: now,
            sales: Vec::new(),
        };
        let changes = EventChanges::parse(EventPatchFields {
            title: Some("New".into()),
            description: Some(None),
            ..EventPatchFields::default()
        })
        .unwrap();
        let merged = EventDraft::merge(&event, changes, now).unwrap();
        assert_eq!(merged.title(), "New");
        assert_eq!(merged.description(), None);
        assert_eq!(merged.total_tickets(), 10);
        assert_eq!(merged.venue(), &base.venue);
    }

    #[test]
    fn total_tickets_range() {
        assert!(total_tickets(0).is_err());
        assert!(total_tickets(1_000_001).is_err());
        assert!(total_tickets(i64::MAX).is_err());
        assert_eq!(total_tickets(1_000_000), Ok(1_000_000));
    }
}
