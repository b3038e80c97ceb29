//! Tiers: the kinds of ticket an event sells (early bird, regular, VIP), each with its own
//! price, quota and sales window, sharing the event's capacity.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::text;
use super::time::parse_timestamp;
use super::validation::{ViolationKind, Violations};

/// The name of the tier an event gets when it is created without tiers.
pub const DEFAULT_TIER_NAME: &str = "General admission";

/// A kind of ticket of an event, with its own price, quota and sales window.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// In the currency's minor unit (cents); 0 is free.
    pub price_minor: i64,
    /// `None`: only the event's capacity limits the tier.
    pub quantity: Option<i32>,
    /// Reserved (unexpired) and paid tickets of the tier.
    pub sold: i32,
    pub max_per_order: Option<i32>,
    pub sales_start: Option<DateTime<Utc>>,
    pub sales_end: Option<DateTime<Utc>>,
    pub position: i32,
}

impl Tier {
    /// Seats this tier can still sell, given the seats its event has left.
    pub fn available(&self, event_seats_left: i64) -> i64 {
        self.quota_left().min(event_seats_left).max(0)
    }

    /// Whether the tier's own quantity is all taken.
    pub fn sold_out(&self) -> bool {
        self.quota_left() <= 0
    }

    /// Seats this tier can still sell, before the event's own limit.
    pub(super) fn quota_left(&self) -> i64 {
        self.sale().quota_left()
    }

    /// What the event's own availability needs of this tier.
    pub fn sale(&self) -> TierSale {
        TierSale {
            quantity: self.quantity,
            sold: self.sold,
            sales_start: self.sales_start,
            sales_end: self.sales_end,
        }
    }
}

/// Tickets an event with `seats_left` seats can sell at `now` through `tiers`: what the tiers
/// on sale can still sell, within the event's seats.
pub fn tickets_on_sale(
    seats_left: i64,
    tiers: impl IntoIterator<Item = TierSale>,
    now: DateTime<Utc>,
) -> i64 {
    let selling = tiers
        .into_iter()
        .fold(0_i64, |sum, tier| sum.saturating_add(tier.selling(now)));
    selling.min(seats_left.max(0))
}

/// What an event's availability needs of one of its tiers: its quota and its sales window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierSale {
    pub quantity: Option<i32>,
    pub sold: i32,
    pub sales_start: Option<DateTime<Utc>>,
    pub sales_end: Option<DateTime<Utc>>,
}

impl TierSale {
    /// Seats the tier can still sell, before the event's own limit (`i64::MAX`: no quota).
    pub fn quota_left(&self) -> i64 {
        self.quantity
            .map_or(i64::MAX, |quantity| i64::from(quantity - self.sold))
    }

    pub fn not_started(&self, now: DateTime<Utc>) -> bool {
        self.sales_start.is_some_and(|start| now < start)
    }

    pub fn ended(&self, now: DateTime<Utc>) -> bool {
        self.sales_end.is_some_and(|end| now >= end)
    }

    /// Seats the tier sells at `now`: none outside its sales window.
    pub fn selling(&self, now: DateTime<Utc>) -> i64 {
        if self.not_started(now) || self.ended(now) {
            0
        } else {
            self.quota_left().max(0)
        }
    }
}

const TIER_NAME_MAX_CHARS: usize = 100;
const TIER_DESCRIPTION_MAX_CHARS: usize = 1000;
const PRICE_MAX_MINOR: i64 = 1_000_000_000;
const MAX_PER_ORDER_MAX: i64 = 100;

/// A tier as a client gives it, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct TierFields {
    pub name: String,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub quantity: Option<i64>,
    pub max_per_order: Option<i64>,
    pub sales_start: Option<String>,
    pub sales_end: Option<String>,
}

/// A tier with every rule checked: only [`TierDraft::parse`] and
/// [`TierDraft::default_tier`] make one.
#[derive(Debug, Clone, PartialEq)]
pub struct TierDraft {
    name: String,
    description: Option<String>,
    price_minor: i64,
    quantity: Option<i32>,
    max_per_order: Option<i32>,
    sales_start: Option<DateTime<Utc>>,
    sales_end: Option<DateTime<Utc>>,
}

impl TierDraft {
    /// The tier of an event created without tiers: free, limited by the event alone.
    pub fn default_tier() -> Self {
        Self {
            name: DEFAULT_TIER_NAME.to_owned(),
            description: None,
            price_minor: 0,
            quantity: None,
            max_per_order: None,
            sales_start: None,
            sales_end: None,
        }
    }

    /// Checks a tier of an event of `total_tickets` seats.
    pub fn parse(fields: TierFields, total_tickets: i32) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let name = violations.check(
            &["name"],
            text::bounded(&fields.name, 1, TIER_NAME_MAX_CHARS),
        );
        let description = violations.check(
            &["description"],
            text::optional(fields.description.as_deref(), TIER_DESCRIPTION_MAX_CHARS),
        );
        let price_minor = match fields.price_minor.unwrap_or(0) {
            price if (0..=PRICE_MAX_MINOR).contains(&price) => Some(price),
            _ => {
                violations.push(
                    &["price_minor"],
                    format!("must be between 0 and {PRICE_MAX_MINOR}"),
                );
                None
            }
        };
        let quantity = match fields.quantity {
            None => Some(None),
            Some(quantity) if (1..=i64::from(total_tickets)).contains(&quantity) => {
                i32::try_from(quantity).ok().map(Some)
            }
            Some(_) => {
                let rule = format!("must be between 1 and total_tickets ({total_tickets})");
                violations.push(&["quantity"], rule);
                None
            }
        };
        let max_per_order = match fields.max_per_order {
            None => Some(None),
            Some(max) if (1..=MAX_PER_ORDER_MAX).contains(&max) => {
                i32::try_from(max).ok().map(Some)
            }
            Some(_) => {
                violations.push(
                    &["max_per_order"],
                    format!("must be null or between 1 and {MAX_PER_ORDER_MAX}"),
                );
                None
            }
        };
        let mut instant = |field: &str, raw: Option<String>| match raw {
            None => Some(None),
            Some(raw) => match parse_timestamp(&raw) {
                Ok(at) => Some(Some(at)),
                Err(error) => {
                    violations.push_kind(&[field], error.to_string(), ViolationKind::DateTime);
                    None
                }
            },
        };
        let sales_start = instant("sales_start", fields.sales_start);
        let sales_end = instant("sales_end", fields.sales_end);
        if let (Some(Some(start)), Some(Some(end))) = (sales_start, sales_end)
            && start >= end
        {
            violations.push(&["sales_end"], "sales_end must be after sales_start");
        }
        violations.finish(|| {
            Some(Self {
                name: name?,
                description: description?,
                price_minor: price_minor?,
                quantity: quantity?,
                max_per_order: max_per_order?,
                sales_start: sales_start?,
                sales_end: sales_end?,
            })
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    pub fn price_minor(&self) -> i64 {
        self.price_minor
    }
    pub fn quantity(&self) -> Option<i32> {
        self.quantity
    }
    pub fn max_per_order(&self) -> Option<i32> {
        self.max_per_order
    }
    pub fn sales_start(&self) -> Option<DateTime<Utc>> {
        self.sales_start
    }
    pub fn sales_end(&self) -> Option<DateTime<Utc>> {
        self.sales_end
    }
}

/// A partial change of a tier: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TierPatchFields {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub price_minor: Option<i64>,
    pub quantity: Option<Option<i64>>,
    pub max_per_order: Option<Option<i64>>,
    pub sales_start: Option<Option<String>>,
    pub sales_end: Option<Option<String>>,
}

impl TierDraft {
    /// What `tier` becomes after `patch`, re-checked as a whole against an event of
    /// `total_tickets` seats. A change is judged on what it changes: a quantity the patch
    /// leaves alone stays valid even above a total lowered since.
    pub fn merge(
        tier: &Tier,
        patch: TierPatchFields,
        total_tickets: i32,
    ) -> Result<Self, Violations> {
        let total_tickets = match (&patch.quantity, tier.quantity) {
            (None, Some(quantity)) => total_tickets.max(quantity),
            _ => total_tickets,
        };
        let instant = |at: Option<DateTime<Utc>>| at.map(|at| at.to_rfc3339());
        let fields = TierFields {
            name: patch.name.unwrap_or_else(|| tier.name.clone()),
            description: patch
                .description
                .unwrap_or_else(|| tier.description.clone()),
            price_minor: Some(patch.price_minor.unwrap_or(tier.price_minor)),
            quantity: patch.quantity.unwrap_or(tier.quantity.map(i64::from)),
            max_per_order: patch
                .max_per_order
                .unwrap_or(tier.max_per_order.map(i64::from)),
            sales_start: patch
                .sales_start
                .unwrap_or_else(|| instant(tier.sales_start)),
            sales_end: patch.sales_end.unwrap_or_else(|| instant(tier.sales_end)),
        };
        Self::parse(fields, total_tickets)
    }
}

/// How a change to an event's tiers ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TierOutcome {
    Saved(Box<Tier>),
    Deleted,
    EventNotFound,
    NotCreator,
    TierNotFound,
    /// Another tier of the event has the name.
    NameTaken,
    /// The event already has the most tiers allowed.
    TooManyTiers,
    /// The new quantity is below the tickets the tier sold.
    BelowSold,
    /// The tier has reserved or paid tickets.
    HasTickets,
    /// An event keeps at least one tier.
    LastTier,
}
