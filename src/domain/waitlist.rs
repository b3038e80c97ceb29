//! The waiting list (WAITLIST.md): people in line for a sold-out event, and its two rules in
//! one place: who may join ([`judge_join`]) and who gets the seats that come back
//! ([`offer_seats`]). Both judge the event's sale as the order rules see it ([`SaleState`]),
//! read by the store under the event's lock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::order::{OrderLine, OrderPlan, OrderRefusal, SaleState, TierChoice, sales_window};
use super::ticket::{EventSummary, UserSummary};
use super::tier::Tier;
use super::validation::Violations;

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// In line.
    Waiting,
    /// Holds an unexpired offer.
    Offered,
    /// Its offer's order was paid.
    Purchased,
    /// Its offer lapsed unpaid.
    Expired,
    /// The user left, or declined the offer.
    Left,
    /// The event's creator removed it.
    Removed,
    /// Its line ended ([`ClosedReason`]).
    Closed,
}

impl EntryStatus {
    pub const ALL: [EntryStatus; 7] = [
        EntryStatus::Waiting,
        EntryStatus::Offered,
        EntryStatus::Purchased,
        EntryStatus::Expired,
        EntryStatus::Left,
        EntryStatus::Removed,
        EntryStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Waiting => "waiting",
            EntryStatus::Offered => "offered",
            EntryStatus::Purchased => "purchased",
            EntryStatus::Expired => "expired",
            EntryStatus::Left => "left",
            EntryStatus::Removed => "removed",
            EntryStatus::Closed => "closed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// Whether nothing can happen to the entry any more.
    pub fn is_final(self) -> bool {
        !matches!(self, EntryStatus::Waiting | EntryStatus::Offered)
    }
}

/// Why an entry's line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedReason {
    EventStarted,
    /// Its tier was deleted, or is past its `sales_end`.
    TierUnavailable,
    WaitlistDisabled,
    /// An offer would have taken its user past the event's per-person cap.
    Limit,
}

impl ClosedReason {
    pub const ALL: [ClosedReason; 4] = [
        ClosedReason::EventStarted,
        ClosedReason::TierUnavailable,
        ClosedReason::WaitlistDisabled,
        ClosedReason::Limit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClosedReason::EventStarted => "event_started",
            ClosedReason::TierUnavailable => "tier_unavailable",
            ClosedReason::WaitlistDisabled => "waitlist_disabled",
            ClosedReason::Limit => "limit",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == raw)
    }
}

/// Seats someone waits for: `quantity` of one tier, or of any tier (`tier_id: None`), all or
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinRequest {
    pub tier_id: Option<Uuid>,
    pub quantity: i32,
}

impl JoinRequest {
    /// A join as a client sent it (`quantity` absent: one seat), checked for shape: 1 to
    /// `max_tickets_per_order` seats (`MAX_TICKETS_PER_ORDER`).
    pub fn parse(
        tier_id: Option<Uuid>,
        quantity: Option<i64>,
        max_tickets_per_order: i32,
    ) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let quantity = quantity.unwrap_or(1);
        let quantity = violations.check(
            &["quantity"],
            i32::try_from(quantity)
                .ok()
                .filter(|quantity| (1..=max_tickets_per_order).contains(quantity))
                .ok_or_else(|| format!("must be between 1 and {max_tickets_per_order}")),
        );
        violations.finish(|| {
            Some(JoinRequest {
                tier_id,
                quantity: quantity?,
            })
        })
    }

    fn line(self, tier_id: Uuid) -> OrderLine {
        OrderLine {
            tier: TierChoice::Tier(tier_id),
            quantity: self.quantity,
        }
    }
}

/// What the store read, under the event's lock (its due holds released first), when someone
/// asks to join.
#[derive(Debug, Clone)]
pub struct JoinFacts {
    pub sale: SaleState,
    pub enabled: bool,
    /// The user's active (`waiting` or `offered`) entry for the event.
    pub active_entry: Option<Uuid>,
    /// The user's live tickets for the event (offers included).
    pub held_by_user: i64,
    /// The event's `waiting` entries.
    pub waiting: i64,
    /// The user's active entries, every event.
    pub active_of_user: i64,
}

/// `WAITLIST_MAX_WAITING_PER_EVENT` and `WAITLIST_MAX_ACTIVE_PER_USER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinLimits {
    pub waiting_per_event: i64,
    pub active_per_user: i64,
}

/// Why a join is refused, in the contract's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefusal {
    /// `tier_id` names no tier of the event (422).
    UnknownTier,
    /// `quantity` is above the tier's `max_per_order` (422).
    OverTierLimit {
        max: i32,
    },
    NotOpen,
    Started,
    SalesNotStarted {
        tier: String,
    },
    SalesEnded {
        tier: String,
    },
    NoTierOnSale,
    AlreadyInLine {
        entry_id: Uuid,
    },
    PerPersonLimit {
        limit: i32,
    },
    Available,
    Full,
    TooManyActive {
        limit: i64,
    },
}

impl JoinRefusal {
    /// What the answer says.
    pub fn detail(&self) -> String {
        match self {
            JoinRefusal::UnknownTier => "Not a tier of this event".to_owned(),
            JoinRefusal::OverTierLimit { max } => {
                format!("At most {max} tickets of this tier in one order")
            }
            JoinRefusal::NotOpen => "Waiting list is not open for this event".to_owned(),
            JoinRefusal::Started => "Event has already started".to_owned(),
            JoinRefusal::SalesNotStarted { tier } => format!("Sales for '{tier}' have not started"),
            JoinRefusal::SalesEnded { tier } => format!("Sales for '{tier}' have ended"),
            JoinRefusal::NoTierOnSale => "No tier of this event is on sale".to_owned(),
            JoinRefusal::AlreadyInLine { entry_id } => {
                format!("Already on the waiting list for this event (entry {entry_id})")
            }
            JoinRefusal::PerPersonLimit { limit } => {
                format!("Limit of {limit} tickets per person for this event")
            }
            JoinRefusal::Available => "Tickets are available: order them instead".to_owned(),
            JoinRefusal::Full => "Waiting list is full".to_owned(),
            JoinRefusal::TooManyActive { limit } => {
                format!("Too many active waiting-list entries (limit {limit})")
            }
        }
    }
}

/// Whether `request` may join the event's line (WAITLIST.md § Join rules 3 to 10, in order;
/// rule 1 is [`JoinRequest::parse`]'s, rule 2 the store's).
pub fn judge_join(
    request: JoinRequest,
    facts: &JoinFacts,
    limits: JoinLimits,
    now: DateTime<Utc>,
) -> Result<(), JoinRefusal> {
    let sale = &facts.sale;
    let tier = match request.tier_id {
        Some(id) => {
            let tier = sale.tiers.iter().find(|tier| tier.id == id);
            let tier = tier.ok_or(JoinRefusal::UnknownTier)?;
            if let Some(max) = tier.max_per_order.filter(|max| request.quantity > *max) {
                return Err(JoinRefusal::OverTierLimit { max });
            }
            Some(tier)
        }
        None => None,
    };
    if !facts.enabled {
        return Err(JoinRefusal::NotOpen);
    }
    if sale.started {
        return Err(JoinRefusal::Started);
    }
    match tier {
        Some(tier) => window(tier, now)?,
        None if !sale.tiers.iter().any(|tier| window(tier, now).is_ok()) => {
            return Err(JoinRefusal::NoTierOnSale);
        }
        None => {}
    }
    if let Some(entry_id) = facts.active_entry {
        return Err(JoinRefusal::AlreadyInLine { entry_id });
    }
    if let Some(limit) = sale.max_tickets_per_user
        && facts.held_by_user + i64::from(request.quantity) > i64::from(limit)
    {
        return Err(JoinRefusal::PerPersonLimit { limit });
    }
    if tier_for(sale, request, now).is_some() {
        return Err(JoinRefusal::Available);
    }
    if facts.waiting >= limits.waiting_per_event {
        return Err(JoinRefusal::Full);
    }
    if facts.active_of_user >= limits.active_per_user {
        return Err(JoinRefusal::TooManyActive {
            limit: limits.active_per_user,
        });
    }
    Ok(())
}

/// Whether `tier` is on sale at `now`, as an order judges it.
fn window(tier: &Tier, now: DateTime<Utc>) -> Result<(), JoinRefusal> {
    sales_window(tier, now).map_err(|refusal| match refusal {
        OrderRefusal::SalesNotStarted { tier } => JoinRefusal::SalesNotStarted { tier },
        _ => JoinRefusal::SalesEnded {
            tier: tier.name.clone(),
        },
    })
}

/// The tier an order of `request`'s seats would get them from now, whatever its buyer holds:
/// its own tier, or (any tier) the first by position in its window whose `max_per_order`
/// allows the quantity and that has the seats.
fn tier_for(sale: &SaleState, request: JoinRequest, now: DateTime<Utc>) -> Option<Uuid> {
    let sells = |id: Uuid| sale.plan(&[request.line(id)], 0, now).is_ok();
    match request.tier_id {
        Some(id) => sells(id).then_some(id),
        None => sale.tiers.iter().map(|tier| tier.id).find(|id| sells(*id)),
    }
}

/// A `waiting` entry as the offer step sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InLine {
    pub entry_id: Uuid,
    pub user_id: Uuid,
    pub request: JoinRequest,
}

/// What the offer step does with an entry it can serve.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferDecision {
    /// Offer these seats: a reserved order of the plan, for the entry's user.
    Offer { entry_id: Uuid, plan: OrderPlan },
    /// Close it (`limit`): an offer would take its user past the per-person cap.
    CloseForLimit { entry_id: Uuid },
}

/// The offer step (WAITLIST.md § The offer step): walks `line` in join order over the seats
/// `sale` has now, granting each offer on `sale` as an order would be. An entry whose seats
/// cannot be sold now keeps its place (a smaller entry behind it may be served); one whose
/// user would pass the per-person cap is closed. `held` is each user's live tickets for the
/// event, counted up as offers are made. Stops once the event has no seat left.
pub fn offer_seats(
    sale: &mut SaleState,
    line: &[InLine],
    held: &mut HashMap<Uuid, i64>,
    now: DateTime<Utc>,
) -> Vec<OfferDecision> {
    let mut decisions = Vec::new();
    for waiting in line {
        if sale.seats_left <= 0 || sale.started {
            break;
        }
        let Some(tier_id) = tier_for(sale, waiting.request, now) else {
            continue;
        };
        let user_held = held.entry(waiting.user_id).or_default();
        let granted = sale.grant(user_held, &[waiting.request.line(tier_id)], now);
        decisions.push(match granted {
            Ok(plan) => OfferDecision::Offer {
                entry_id: waiting.entry_id,
                plan,
            },
            // The seats are there (above): only the buyer's cap refuses it.
            Err(_) => OfferDecision::CloseForLimit {
                entry_id: waiting.entry_id,
            },
        });
    }
    decisions
}

/// The offer an entry was made: a reserved order of `quantity` tickets of one tier. Kept after
/// it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub order_id: Uuid,
    pub tier_id: Uuid,
    pub tier_name: String,
    pub quantity: i32,
    pub total_minor: i64,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An entry of a waiting list, as stored; what it reads as is [`WaitlistEntry::effective`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitlistEntry {
    pub id: Uuid,
    pub event_id: Uuid,
    /// `None`: any tier.
    pub tier_id: Option<Uuid>,
    pub tier_name: Option<String>,
    pub user_id: Uuid,
    pub quantity: i32,
    pub status: EntryStatus,
    pub closed_reason: Option<ClosedReason>,
    /// 1-based rank among the event's waiting entries, when stored `waiting`.
    pub position: Option<i64>,
    pub offer: Option<Offer>,
    pub user: UserSummary,
    pub event: EventSummary,
    /// When its tier's sales end (the line ends with them).
    pub tier_sales_end: Option<DateTime<Utc>>,
    pub joined_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WaitlistEntry {
    /// What the entry reads as at `now`, before any job writes it: an offer past its
    /// deadline has expired; a line ends with the event's start or its tier's sales.
    pub fn effective(&self, now: DateTime<Utc>) -> (EntryStatus, Option<ClosedReason>) {
        match self.status {
            EntryStatus::Offered
                if self
                    .offer
                    .as_ref()
                    .is_some_and(|offer| offer.expires_at <= now) =>
            {
                (EntryStatus::Expired, None)
            }
            EntryStatus::Waiting if self.event.start_time <= now => {
                (EntryStatus::Closed, Some(ClosedReason::EventStarted))
            }
            EntryStatus::Waiting if self.tier_sales_end.is_some_and(|end| end <= now) => {
                (EntryStatus::Closed, Some(ClosedReason::TierUnavailable))
            }
            status => (status, self.closed_reason),
        }
    }

    /// Its rank in line, while it waits.
    pub fn position(&self, now: DateTime<Utc>) -> Option<i64> {
        (self.effective(now).0 == EntryStatus::Waiting)
            .then_some(self.position)
            .flatten()
    }
}

/// Entries of a list, by effective status (WAITLIST.md § Stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitlistFigures {
    pub waiting: i64,
    pub waiting_seats: i64,
    pub offered: i64,
    pub purchased: i64,
    pub expired: i64,
    pub left: i64,
    pub removed: i64,
    pub closed: i64,
}

impl WaitlistFigures {
    /// Counts `entries` entries of `quantity` seats each reading `status`.
    pub fn count(&mut self, status: EntryStatus, entries: i64, seats: i64) {
        let counter = match status {
            EntryStatus::Waiting => {
                self.waiting_seats += seats;
                &mut self.waiting
            }
            EntryStatus::Offered => &mut self.offered,
            EntryStatus::Purchased => &mut self.purchased,
            EntryStatus::Expired => &mut self.expired,
            EntryStatus::Left => &mut self.left,
            EntryStatus::Removed => &mut self.removed,
            EntryStatus::Closed => &mut self.closed,
        };
        *counter += entries;
    }
}

/// How a join ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined {
    Joined(Box<WaitlistEntry>),
    EventNotFound,
    Refused(JoinRefusal),
}

/// Who ends an entry: its user (it is `left`), or the event's creator (`removed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryEnd {
    Leave { user_id: Uuid },
    Remove { event_id: Uuid, creator_id: Uuid },
}

/// How ending an entry went.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryEnded {
    Ended(Box<WaitlistEntry>),
    NotFound,
    /// Not the caller's to end.
    Forbidden,
    /// Already final: its status.
    Final(EntryStatus),
    /// Its offer's payment is being processed: the offer cannot be declined now.
    PaymentPending,
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::order::tests::{sale, tier};

    fn facts(sale: SaleState) -> JoinFacts {
        JoinFacts {
            sale,
            enabled: true,
            active_entry: None,
            held_by_user: 0,
            waiting: 0,
            active_of_user: 0,
        }
    }

    const LIMITS: JoinLimits = JoinLimits {
        waiting_per_event: 2,
        active_per_user: 2,
    };

    fn ask(tier_id: Option<Uuid>, quantity: i32) -> JoinRequest {
        JoinRequest { tier_id, quantity }
    }

    #[test]
    fn a_join_is_shaped_before_anything_is_read() {
        assert_eq!(
            JoinRequest::parse(None, None, 10).unwrap(),
            ask(None, 1),
            "{{}}: one seat, any tier"
        );
        for bad in [0, 11, -1, i64::MAX] {
            let violations = JoinRequest::parse(None, Some(bad), 10).unwrap_err();
            assert_eq!(
                violations.to_string().matches("quantity").count(),
                1,
                "{bad}"
            );
        }
    }

    #[test]
    fn join_rules_answer_in_the_contracts_order() {
        let now = Utc::now();
        let vip = tier("VIP", 1000, Some(2), 2);
        let vip_id = vip.id;
        let mut capped = vip.clone();
        capped.max_per_order = Some(2);
        let sold_out = sale(5, vec![capped.clone()]);
        let judge = |request, facts: &JoinFacts| judge_join(request, facts, LIMITS, now);

        let mut open = facts(sold_out.clone());
        assert_eq!(judge(ask(Some(vip_id), 2), &open), Ok(()));
        assert_eq!(judge(ask(None, 1), &open), Ok(()));
        assert_eq!(
            judge(ask(Some(Uuid::now_v7()), 1), &open),
            Err(JoinRefusal::UnknownTier)
        );
        assert_eq!(
            judge(ask(Some(vip_id), 3), &open),
            Err(JoinRefusal::OverTierLimit { max: 2 })
        );
        open.enabled = false;
        assert_eq!(
            judge(ask(Some(vip_id), 3), &open).unwrap_err(),
            JoinRefusal::OverTierLimit { max: 2 }
        );
        assert_eq!(
            judge(ask(Some(vip_id), 1), &open),
            Err(JoinRefusal::NotOpen)
        );
        open.enabled = true;
        open.sale.started = true;
        assert_eq!(
            judge(ask(Some(vip_id), 1), &open),
            Err(JoinRefusal::Started)
        );
        open.sale.started = false;

        let mut later = capped.clone();
        later.sales_start = Some(now + Duration::hours(1));
        let not_yet = facts(sale(5, vec![later]));
        assert_eq!(
            judge(ask(Some(vip_id), 1), &not_yet),
            Err(JoinRefusal::SalesNotStarted { tier: "VIP".into() })
        );
        assert_eq!(
            judge(ask(None, 1), &not_yet),
            Err(JoinRefusal::NoTierOnSale)
        );

        let entry_id = Uuid::now_v7();
        open.active_entry = Some(entry_id);
        assert_eq!(
            judge(ask(None, 1), &open),
            Err(JoinRefusal::AlreadyInLine { entry_id })
        );
        open.active_entry = None;
        open.sale.max_tickets_per_user = Some(3);
        open.held_by_user = 2;
        assert_eq!(
            judge(ask(Some(vip_id), 2), &open),
            Err(JoinRefusal::PerPersonLimit { limit: 3 })
        );
        open.held_by_user = 0;

        // Rule 9: one seat of a tier with seats is for sale; a group larger than what is left
        // may join (those seats stay on public sale).
        let one_left = facts(sale(5, vec![tier("VIP", 1000, Some(3), 2)]));
        let tier_id = one_left.sale.tiers[0].id;
        assert_eq!(
            judge(ask(Some(tier_id), 1), &one_left),
            Err(JoinRefusal::Available)
        );
        assert_eq!(judge(ask(None, 1), &one_left), Err(JoinRefusal::Available));
        assert_eq!(judge(ask(Some(tier_id), 2), &one_left), Ok(()));

        open.waiting = 2;
        assert_eq!(judge(ask(None, 1), &open), Err(JoinRefusal::Full));
        open.waiting = 0;
        open.active_of_user = 2;
        assert_eq!(
            judge(ask(None, 1), &open),
            Err(JoinRefusal::TooManyActive { limit: 2 })
        );
    }

    #[test]
    fn seats_go_down_the_line_and_groups_that_do_not_fit_keep_their_place() {
        let now = Utc::now();
        let regular = tier("Regular", 1000, Some(10), 7);
        let vip = tier("VIP", 1000, Some(2), 2);
        let (regular_id, vip_id) = (regular.id, vip.id);
        // Three seats came back: the event has 3 left, all of them Regular's.
        let mut state = sale(3, vec![regular, vip]);
        let in_line = |request| InLine {
            entry_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            request,
        };
        let group = in_line(ask(Some(regular_id), 4));
        let vip_fan = in_line(ask(Some(vip_id), 1));
        let pair = in_line(ask(None, 2));
        let single = in_line(ask(Some(regular_id), 1));
        let last = in_line(ask(None, 1));
        let line = [group, vip_fan, pair, single, last];
        let decisions = offer_seats(&mut state, &line, &mut HashMap::new(), now);
        let offered: Vec<(Uuid, Uuid, i32)> = decisions
            .iter()
            .map(|decision| match decision {
                OfferDecision::Offer { entry_id, plan } => {
                    (*entry_id, plan.lines[0].tier_id, plan.tickets)
                }
                OfferDecision::CloseForLimit { .. } => panic!("{decision:?}"),
            })
            .collect();
        assert_eq!(
            offered,
            [
                (pair.entry_id, regular_id, 2),
                (single.entry_id, regular_id, 1)
            ],
            "the group of 4 and the VIP fan keep their places; the rest is served in order"
        );
        assert_eq!(state.seats_left, 0);
        assert_eq!(state.tiers[0].sold, 10);
    }

    #[test]
    fn an_offer_past_the_per_person_cap_closes_the_entry() {
        let now = Utc::now();
        let mut state = sale(4, vec![tier("Regular", 1000, None, 0)]);
        state.max_tickets_per_user = Some(2);
        let user = Uuid::now_v7();
        let capped = InLine {
            entry_id: Uuid::now_v7(),
            user_id: user,
            request: ask(None, 2),
        };
        let next = InLine {
            entry_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            request: ask(None, 2),
        };
        let mut held = HashMap::from([(user, 1)]);
        let decisions = offer_seats(&mut state, &[capped, next], &mut held, now);
        assert_eq!(
            decisions[0],
            OfferDecision::CloseForLimit {
                entry_id: capped.entry_id
            }
        );
        assert!(matches!(
            &decisions[1],
            OfferDecision::Offer { entry_id, plan } if *entry_id == next.entry_id && plan.tickets == 2
        ));
        assert_eq!(state.seats_left, 2, "the closed entry took nothing");
    }

    #[test]
    fn no_offer_once_the_event_started() {
        let now = Utc::now();
        let mut state = sale(4, vec![tier("Regular", 1000, None, 0)]);
        state.started = true;
        let line = [InLine {
            entry_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            request: ask(None, 1),
        }];
        assert!(offer_seats(&mut state, &line, &mut HashMap::new(), now).is_empty());
    }
}
