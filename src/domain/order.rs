//! Orders: a purchase is an order of one or more tickets over an event's tiers ([`super::tier`]),
//! granted all or nothing.
//! [`SaleState::plan`] holds every order rule; the stores read the state under the event's
//! lock, plan, and write the plan in the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::payment::Payment;
use super::ticket::{Change, EventSummary, TicketDetails, TicketStatus};
use super::tier::{Tier, tickets_on_sale};
use super::validation::{PathSegment, Violations};

/// Whether `tier` is on sale at `now`, by its sales window.
pub(super) fn sales_window(tier: &Tier, now: DateTime<Utc>) -> Result<(), OrderRefusal> {
    if tier.sale().not_started(now) {
        return Err(OrderRefusal::SalesNotStarted {
            tier: tier.name.clone(),
        });
    }
    if tier.sale().ended(now) {
        return Err(OrderRefusal::SalesEnded {
            tier: tier.name.clone(),
        });
    }
    Ok(())
}

/// Which tier a line of an order takes its tickets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierChoice {
    Tier(Uuid),
    /// The first tier (by position) on sale with seats left: how a ticket is reserved without
    /// naming a tier.
    FirstOnSale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    pub tier: TierChoice,
    pub quantity: i32,
}

/// An order to place: lines checked for shape (non-empty, quantities ≥ 1, each tier once, the
/// order cap); the rules that need the event's state are [`SaleState::plan`]'s.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub hold: std::time::Duration,
}

/// An order as a buyer sent it: which tiers, how many of each.
#[derive(Debug, Clone)]
pub struct OrderFields {
    pub event_id: Uuid,
    /// `(tier_id, quantity)` per line.
    pub items: Vec<(Uuid, i64)>,
}

impl NewOrder {
    /// Checks the order's shape: lines present, each tier once, quantities ≥ 1, at most
    /// `max_tickets` in all (the rules needing the event's state are [`SaleState::plan`]'s).
    pub fn parse(
        fields: OrderFields,
        user_id: Uuid,
        max_tickets: i32,
        hold: std::time::Duration,
    ) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        if fields.items.is_empty() {
            violations.push(&["items"], "must hold at least one item");
        }
        let item = |index: usize, field: &str| {
            vec![
                PathSegment::Field("items".into()),
                PathSegment::Index(index),
                PathSegment::Field(field.into()),
            ]
        };
        let mut lines = Vec::with_capacity(fields.items.len());
        let mut total: i64 = 0;
        for (index, (tier_id, quantity)) in fields.items.iter().enumerate() {
            if fields.items[..index]
                .iter()
                .any(|(seen, _)| seen == tier_id)
            {
                violations.push_at(item(index, "tier_id"), "each tier may appear once");
            }
            match i32::try_from(*quantity) {
                Ok(quantity) if quantity >= 1 => {
                    total += i64::from(quantity);
                    lines.push(OrderLine {
                        tier: TierChoice::Tier(*tier_id),
                        quantity,
                    });
                }
                _ => violations.push_at(item(index, "quantity"), "must be at least 1"),
            }
        }
        if total > i64::from(max_tickets) {
            violations.push(
                &["items"],
                format!("at most {max_tickets} tickets per order"),
            );
        }
        violations.finish(|| {
            Some(Self {
                order_id: Uuid::now_v7(),
                user_id,
                event_id: fields.event_id,
                lines,
                hold,
            })
        })
    }

    /// Whether a line names its tier (rules on that tier then come before "sold out").
    pub fn names_tiers(&self) -> bool {
        self.lines
            .iter()
            .any(|line| matches!(line.tier, TierChoice::Tier(_)))
    }

    /// One ticket, from `tier` or the first tier on sale.
    pub fn one_ticket(
        user_id: Uuid,
        event_id: Uuid,
        tier: Option<Uuid>,
        hold: std::time::Duration,
    ) -> Self {
        let tier = tier.map_or(TierChoice::FirstOnSale, TierChoice::Tier);
        Self {
            order_id: Uuid::now_v7(),
            user_id,
            event_id,
            lines: vec![OrderLine { tier, quantity: 1 }],
            hold,
        }
    }
}

/// An event's sale as the store reads it under the event's lock.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleState {
    pub started: bool,
    /// `total_tickets − tickets_sold`.
    pub seats_left: i64,
    pub max_tickets_per_user: Option<i32>,
    pub currency: String,
    /// Ordered by position.
    pub tiers: Vec<Tier>,
}

/// A granted line: which tier, how many, at which price (copied into the order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedLine {
    pub tier_id: Uuid,
    pub tier_name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderPlan {
    pub lines: Vec<PlannedLine>,
    pub total_minor: i64,
    pub tickets: i32,
}

/// What is short when an order cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortage {
    Tier(String),
    Event,
}

/// Why an order is refused. Nothing is reserved in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRefusal {
    EventNotFound,
    EventStarted,
    /// Line `line` names a tier the event does not have.
    UnknownTier {
        line: usize,
    },
    /// Line `line` asks for more than its tier sells in one order.
    OverTierLimit {
        line: usize,
        max: i32,
    },
    SalesNotStarted {
        tier: String,
    },
    SalesEnded {
        tier: String,
    },
    NotEnough {
        short: Shortage,
        left: i64,
    },
    PerPersonLimit {
        limit: i32,
    },
}

impl SaleState {
    /// Grants the order whole or says why not, for a buyer who holds `held_by_buyer` live
    /// (reserved and unexpired, or paid) tickets of the event.
    pub fn plan(
        &self,
        lines: &[OrderLine],
        held_by_buyer: i64,
        now: DateTime<Utc>,
    ) -> Result<OrderPlan, OrderRefusal> {
        if self.started {
            return Err(OrderRefusal::EventStarted);
        }
        let mut chosen = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let tier = match line.tier {
                TierChoice::Tier(id) => self.tiers.iter().find(|tier| tier.id == id),
                TierChoice::FirstOnSale => Some(self.first_on_sale(now)?),
            };
            let tier = tier.ok_or(OrderRefusal::UnknownTier { line: index })?;
            if let Some(max) = tier.max_per_order.filter(|max| line.quantity > *max) {
                return Err(OrderRefusal::OverTierLimit { line: index, max });
            }
            chosen.push((tier, line.quantity));
        }
        for (tier, _) in &chosen {
            sales_window(tier, now)?;
        }
        let tickets: i32 = chosen.iter().map(|(_, quantity)| quantity).sum();
        for (tier, quantity) in &chosen {
            let left = tier.quota_left().min(self.seats_left);
            if i64::from(*quantity) > left {
                // The tier is named when it is what is short, and whenever it has nothing left.
                let short = if tier.quota_left() <= 0 || tier.quota_left() < self.seats_left {
                    Shortage::Tier(tier.name.clone())
                } else {
                    Shortage::Event
                };
                return Err(OrderRefusal::NotEnough {
                    short,
                    left: left.max(0),
                });
            }
        }
        if i64::from(tickets) > self.seats_left {
            return Err(OrderRefusal::NotEnough {
                short: Shortage::Event,
                left: self.seats_left.max(0),
            });
        }
        // Last, as the only rule about the buyer rather than the sale: a refusal planned for a
        // buyer holding nothing is then every buyer's, which lets a store answer it from what
        // it remembers of the sale (see `SaleState::refusal_for_anyone`).
        if let Some(limit) = self.max_tickets_per_user
            && held_by_buyer + i64::from(tickets) > i64::from(limit)
        {
            return Err(OrderRefusal::PerPersonLimit { limit });
        }
        let lines: Vec<PlannedLine> = chosen
            .into_iter()
            .map(|(tier, quantity)| PlannedLine {
                tier_id: tier.id,
                tier_name: tier.name.clone(),
                quantity,
                unit_price_minor: tier.price_minor,
            })
            .collect();
        let total_minor = lines
            .iter()
            .map(|line| i64::from(line.quantity) * line.unit_price_minor)
            .sum();
        Ok(OrderPlan {
            lines,
            total_minor,
            tickets,
        })
    }

    /// The refusal every buyer gets for `lines` at `now`, whatever they hold, for as long as no
    /// rule of the sale changes and no seat comes back (sales made since only take seats): a
    /// broken rule of the sale (unknown tier, per-order maximum, sales window), or nothing left
    /// for the first line. `None` when the order might be granted, or the answer depends on
    /// the buyer or on how many seats are left — a later line's shortage among them, since a
    /// sale since may have left an earlier line short first.
    pub fn refusal_for_anyone(
        &self,
        lines: &[OrderLine],
        now: DateTime<Utc>,
    ) -> Option<OrderRefusal> {
        match self.plan(lines, 0, now) {
            Err(
                refusal @ (OrderRefusal::UnknownTier { .. }
                | OrderRefusal::OverTierLimit { .. }
                | OrderRefusal::SalesNotStarted { .. }
                | OrderRefusal::SalesEnded { .. }),
            ) => Some(refusal),
            Err(refusal @ OrderRefusal::NotEnough { left: 0, .. })
                if self.plan(&lines[..1], 0, now).as_ref() == Err(&refusal) =>
            {
                Some(refusal)
            }
            _ => None,
        }
    }

    /// Whether nothing of the event can be bought at `now`, as [`super::Event::is_sold_out`]
    /// says of the stored event.
    pub fn sold_out_now(&self, now: DateTime<Utc>) -> bool {
        tickets_on_sale(self.seats_left, self.tiers.iter().map(Tier::sale), now) == 0
    }

    /// Whether the event or one of its tiers has no seat left.
    pub fn sold_out_anywhere(&self) -> bool {
        self.seats_left <= 0 || self.tiers.iter().any(Tier::sold_out)
    }

    /// Grants the order like [`plan`](Self::plan) for a buyer holding `buyer_held` live
    /// tickets, and takes its seats: orders granted one after another against one state get
    /// exactly the answers they would get placed one at a time.
    pub fn grant(
        &mut self,
        buyer_held: &mut i64,
        lines: &[OrderLine],
        now: DateTime<Utc>,
    ) -> Result<OrderPlan, OrderRefusal> {
        let plan = self.plan(lines, *buyer_held, now)?;
        self.seats_left -= i64::from(plan.tickets);
        for line in &plan.lines {
            if let Some(tier) = self.tiers.iter_mut().find(|tier| tier.id == line.tier_id) {
                tier.sold += line.quantity;
            }
        }
        *buyer_held += i64::from(plan.tickets);
        Ok(plan)
    }

    /// The first tier in its sales window with a seat; when none has one, why not: sold out
    /// when some tier is on sale, else the first tier's closed window.
    fn first_on_sale(&self, now: DateTime<Utc>) -> Result<&Tier, OrderRefusal> {
        let mut closed = None;
        let mut any_open = false;
        for tier in &self.tiers {
            match sales_window(tier, now) {
                Ok(()) if tier.quota_left().min(self.seats_left) >= 1 => return Ok(tier),
                Ok(()) => any_open = true,
                Err(refusal) => {
                    closed.get_or_insert(refusal);
                }
            }
        }
        let sold_out = OrderRefusal::NotEnough {
            short: Shortage::Event,
            left: 0,
        };
        Err(if any_open {
            sold_out
        } else {
            closed.unwrap_or(sold_out)
        })
    }
}

/// A placed order as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    /// As stored; a reserved order past `expires_at` reads expired, like its tickets.
    pub status: TicketStatus,
    pub currency: String,
    pub total_minor: i64,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Recorded outcomes written before orders had payments read as none.
    #[serde(default)]
    pub payment: Payment,
    /// The waiting-list entry this order was offered to.
    #[serde(default)]
    pub waitlist_entry_id: Option<Uuid>,
}

impl Order {
    /// A hold past its deadline is expired whether or not the sweeper has reached it yet.
    pub fn effective_status(&self, now: DateTime<Utc>) -> TicketStatus {
        match self.status {
            TicketStatus::Reserved if self.expires_at <= now => TicketStatus::Expired,
            status => status,
        }
    }
}

/// An order with what it bought: its lines (prices as when it was placed) and its tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub order: Order,
    pub event: EventSummary,
    pub lines: Vec<PlannedLine>,
    pub tickets: Vec<TicketDetails>,
}

/// How a payment or cancellation of an order ended.
pub type OrderChange = Change<OrderDetails>;

/// How placing an order ended.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderOutcome {
    Placed {
        order: Box<OrderDetails>,
        /// Nothing of the event could be bought once the order was placed: it left search.
        event_sold_out: bool,
    },
    Refused(OrderRefusal),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Duration;

    pub(crate) fn tier(name: &str, price_minor: i64, quantity: Option<i32>, sold: i32) -> Tier {
        Tier {
            id: Uuid::new_v4(),
            name: name.into(),
            description: None,
            price_minor,
            quantity,
            sold,
            max_per_order: None,
            sales_start: None,
            sales_end: None,
            position: 0,
        }
    }

    pub(crate) fn sale(seats_left: i64, tiers: Vec<Tier>) -> SaleState {
        SaleState {
            started: false,
            seats_left,
            max_tickets_per_user: None,
            currency: "USD".into(),
            tiers,
        }
    }

    fn line(tier: &Tier, quantity: i32) -> OrderLine {
        OrderLine {
            tier: TierChoice::Tier(tier.id),
            quantity,
        }
    }

    fn first(quantity: i32) -> OrderLine {
        OrderLine {
            tier: TierChoice::FirstOnSale,
            quantity,
        }
    }

    #[test]
    fn an_order_over_two_tiers_totals_its_lines() {
        let (early, vip) = (tier("Early", 1500, Some(10), 0), tier("VIP", 5000, None, 0));
        let state = sale(100, vec![early.clone(), vip.clone()]);
        let plan = state
            .plan(&[line(&early, 2), line(&vip, 1)], 0, Utc::now())
            .unwrap();
        assert_eq!(plan.total_minor, 2 * 1500 + 5000);
        assert_eq!(plan.tickets, 3);
        assert_eq!(plan.lines[1].tier_name, "VIP");
    }

    #[test]
    fn granted_orders_take_their_seats_before_the_next_is_planned() {
        let (early, rest) = (tier("Early", 1000, Some(3), 0), tier("Rest", 0, None, 0));
        let mut state = sale(4, vec![early.clone(), rest.clone()]);
        state.max_tickets_per_user = Some(3);
        let now = Utc::now();
        let (mut ada, mut bo) = (0, 0);
        assert!(state.grant(&mut ada, &[line(&early, 2)], now).is_ok());
        assert_eq!(
            state.grant(&mut ada, &[line(&rest, 2)], now).unwrap_err(),
            OrderRefusal::PerPersonLimit { limit: 3 }
        );
        assert_eq!(
            state.grant(&mut bo, &[line(&early, 2)], now).unwrap_err(),
            OrderRefusal::NotEnough {
                short: Shortage::Tier("Early".into()),
                left: 1
            }
        );
        let plan = state.grant(&mut bo, &[first(1)], now).unwrap();
        assert_eq!(plan.lines[0].tier_name, "Early");
        let plan = state.grant(&mut bo, &[first(1)], now).unwrap();
        assert_eq!(plan.lines[0].tier_name, "Rest");
        assert_eq!(
            state.grant(&mut ada, &[first(1)], now).unwrap_err(),
            OrderRefusal::NotEnough {
                short: Shortage::Event,
                left: 0
            }
        );
        assert_eq!(
            (ada, bo, state.seats_left, state.tiers[0].sold),
            (2, 2, 0, 3)
        );
    }

    #[test]
    fn a_short_tier_or_event_refuses_the_whole_order() {
        let (early, vip) = (tier("Early", 0, Some(3), 2), tier("VIP", 0, None, 0));
        let state = sale(5, vec![early.clone(), vip.clone()]);
        let now = Utc::now();
        let short_tier = state.plan(&[line(&vip, 1), line(&early, 2)], 0, now);
        let tier_left = OrderRefusal::NotEnough {
            short: Shortage::Tier("Early".into()),
            left: 1,
        };
        assert_eq!(short_tier.unwrap_err(), tier_left);
        let short_event = state.plan(&[line(&vip, 6)], 0, now);
        let event_left = OrderRefusal::NotEnough {
            short: Shortage::Event,
            left: 5,
        };
        assert_eq!(short_event.unwrap_err(), event_left);
        // Each line fits in what the event has left; together they do not.
        assert!(
            state
                .plan(&[line(&vip, 4), line(&early, 1)], 0, now)
                .is_ok()
        );
        let together = state.plan(&[line(&vip, 5), line(&early, 1)], 0, now);
        assert_eq!(together.unwrap_err(), event_left);
    }

    #[test]
    fn order_rules_refuse_with_their_reason() {
        let now = Utc::now();
        let mut capped = tier("Capped", 0, None, 0);
        capped.max_per_order = Some(2);
        let mut later = tier("Later", 0, None, 0);
        later.sales_start = Some(now + Duration::hours(1));
        let mut over = tier("Over", 0, None, 0);
        over.sales_end = Some(now);
        let mut state = sale(100, vec![capped.clone(), later.clone(), over.clone()]);
        let unknown = OrderLine {
            tier: TierChoice::Tier(Uuid::new_v4()),
            quantity: 1,
        };
        let refusal =
            |state: &SaleState, lines: &[OrderLine]| state.plan(lines, 0, now).unwrap_err();
        assert_eq!(
            refusal(&state, &[line(&capped, 1), unknown]),
            OrderRefusal::UnknownTier { line: 1 }
        );
        assert_eq!(
            refusal(&state, &[line(&capped, 3)]),
            OrderRefusal::OverTierLimit { line: 0, max: 2 }
        );
        assert_eq!(
            refusal(&state, &[line(&later, 1)]),
            OrderRefusal::SalesNotStarted {
                tier: "Later".into()
            }
        );
        assert_eq!(
            refusal(&state, &[line(&over, 1)]),
            OrderRefusal::SalesEnded {
                tier: "Over".into()
            }
        );
        state.max_tickets_per_user = Some(4);
        assert_eq!(
            state.plan(&[line(&capped, 2)], 3, now).unwrap_err(),
            OrderRefusal::PerPersonLimit { limit: 4 }
        );
        assert!(
            state.plan(&[line(&capped, 1)], 3, now).is_ok(),
            "up to the cap"
        );
        state.started = true;
        assert_eq!(
            refusal(&state, &[line(&capped, 1)]),
            OrderRefusal::EventStarted
        );
    }

    #[test]
    fn without_a_tier_the_first_on_sale_with_seats_sells() {
        let now = Utc::now();
        let mut closed = tier("Closed", 100, None, 0);
        closed.sales_end = Some(now - Duration::hours(1));
        let full = tier("Full", 200, Some(5), 5);
        let open = tier("Open", 300, None, 0);
        let state = sale(10, vec![closed.clone(), full.clone(), open]);
        let plan = state.plan(&[first(1)], 0, now).unwrap();
        assert_eq!(plan.lines[0].tier_name, "Open");
        let sold_out = OrderRefusal::NotEnough {
            short: Shortage::Event,
            left: 0,
        };
        let only_full = sale(10, vec![closed.clone(), full]);
        assert_eq!(only_full.plan(&[first(1)], 0, now).unwrap_err(), sold_out);
        let only_closed = sale(10, vec![closed]);
        assert_eq!(
            only_closed.plan(&[first(1)], 0, now).unwrap_err(),
            OrderRefusal::SalesEnded {
                tier: "Closed".into()
            }
        );
    }

    #[test]
    fn what_the_sale_refuses_comes_before_the_buyers_cap_and_holds_for_anyone() {
        let now = Utc::now();
        let (vip, general) = (tier("VIP", 5000, Some(2), 2), tier("General", 0, None, 0));
        let mut state = sale(10, vec![vip.clone(), general.clone()]);
        state.max_tickets_per_user = Some(4);
        let vip_sold_out = OrderRefusal::NotEnough {
            short: Shortage::Tier("VIP".into()),
            left: 0,
        };
        // A buyer at the cap asking for a sold-out tier is told it is sold out, as anyone is.
        assert_eq!(
            state.plan(&[line(&vip, 1)], 4, now).unwrap_err(),
            vip_sold_out
        );
        assert_eq!(
            state.refusal_for_anyone(&[line(&vip, 1)], now),
            Some(vip_sold_out.clone())
        );
        assert!(state.sold_out_anywhere());
        // What depends on the buyer, or on how many seats are left, is not for anyone.
        assert_eq!(state.refusal_for_anyone(&[line(&general, 1)], now), None);
        assert_eq!(state.refusal_for_anyone(&[line(&general, 11)], now), None);
        assert_eq!(
            state.plan(&[line(&general, 1)], 4, now).unwrap_err(),
            OrderRefusal::PerPersonLimit { limit: 4 }
        );
        let mut capped = general.clone();
        capped.max_per_order = Some(2);
        let state = sale(10, vec![vip.clone(), capped.clone()]);
        assert_eq!(
            state.refusal_for_anyone(&[line(&capped, 3)], now),
            Some(OrderRefusal::OverTierLimit { line: 0, max: 2 })
        );
        assert_eq!(
            state.refusal_for_anyone(&[first(1)], now),
            None,
            "the first tier with a seat sells"
        );
        let all_gone = sale(0, vec![vip.clone(), general.clone()]);
        assert_eq!(
            all_gone.refusal_for_anyone(&[first(1)], now),
            Some(OrderRefusal::NotEnough {
                short: Shortage::Event,
                left: 0
            })
        );
        assert!(!sale(10, vec![tier("Open", 0, Some(5), 4)]).sold_out_anywhere());
        // Only a shortage at the first line: sales since may have left an earlier line short.
        let state = sale(2, vec![vip.clone(), general.clone()]);
        assert_eq!(
            state.refusal_for_anyone(&[line(&vip, 1), line(&general, 1)], now),
            Some(vip_sold_out.clone())
        );
        assert_eq!(
            state.refusal_for_anyone(&[line(&general, 1), line(&vip, 1)], now),
            None
        );
        // A tier with nothing left is named even when the event has nothing left either.
        assert_eq!(
            sale(0, vec![vip.clone()]).plan(&[line(&vip, 1)], 0, now),
            Err(vip_sold_out)
        );
    }
}
