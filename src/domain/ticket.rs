//! Tickets and their life cycle: reserved → paid | expired | cancelled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Reserved,
    Paid,
    Expired,
    Cancelled,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 4] = [
        TicketStatus::Reserved,
        TicketStatus::Paid,
        TicketStatus::Expired,
        TicketStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Reserved => "reserved",
            TicketStatus::Paid => "paid",
            TicketStatus::Expired => "expired",
            TicketStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "reserved" => Some(TicketStatus::Reserved),
            "paid" => Some(TicketStatus::Paid),
            "expired" => Some(TicketStatus::Expired),
            "cancelled" => Some(TicketStatus::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    /// The order the ticket was bought in; it shares the order's status.
    pub order_id: Uuid,
    /// The status as stored; see [`Ticket::effective_status`] for the one to show.
    pub status: TicketStatus,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Ticket {
    /// A hold past its deadline is expired whether or not the sweeper has reached it yet.
    pub fn effective_status(&self, now: DateTime<Utc>) -> TicketStatus {
        match self.status {
            TicketStatus::Reserved if self.expires_at <= now => TicketStatus::Expired,
            status => status,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    pub id: Uuid,
    pub title: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub venue_name: String,
    pub city: String,
    pub state: String,
}

/// The tier a ticket was bought from, with the name and price its order recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierSummary {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
}

/// A ticket with the summaries every answer about it carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketDetails {
    pub ticket: Ticket,
    pub tier: TierSummary,
    pub user: UserSummary,
    pub event: EventSummary,
}

/// How a payment or cancellation of an order (`T` = [`crate::domain::OrderDetails`]) ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Done(Box<T>),
    NotFound,
    NotOwner,
    /// The hold's deadline passed before the change.
    Expired,
    /// Not in `reserved` (already paid or cancelled).
    NotReserved(TicketStatus),
}

/// The order a ticket belongs to: a ticket is paid or cancelled through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// Tickets the order holds: only an order of one is paid or cancelled through its ticket.
    pub tickets: i64,
}

impl<T> Change<T> {
    /// The same change, what was done turned into a `U`.
    pub fn map<U>(self, done: impl FnOnce(Box<T>) -> Box<U>) -> Change<U> {
        match self {
            Change::Done(value) => Change::Done(done(value)),
            Change::NotFound => Change::NotFound,
            Change::NotOwner => Change::NotOwner,
            Change::Expired => Change::Expired,
            Change::NotReserved(status) => Change::NotReserved(status),
        }
    }

    /// Why something of `owner` in `status` cannot be changed by `user_id`.
    pub fn refusal(owner: Uuid, user_id: Uuid, status: TicketStatus, past_deadline: bool) -> Self {
        if owner != user_id {
            return Change::NotOwner;
        }
        match status {
            TicketStatus::Reserved if past_deadline => Change::Expired,
            TicketStatus::Expired => Change::Expired,
            other => Change::NotReserved(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_due_hold_reads_as_expired() {
        let now = Utc::now();
        let ticket = Ticket {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            event_id: Uuid::nil(),
            order_id: Uuid::nil(),
            status: TicketStatus::Reserved,
            expires_at: now,
            paid_at: None,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(ticket.effective_status(now), TicketStatus::Expired);
        assert_eq!(
            ticket.effective_status(now - Duration::seconds(1)),
            TicketStatus::Reserved
        );
        let paid = Ticket {
            status: TicketStatus::Paid,
            ..ticket
        };
        assert_eq!(paid.effective_status(now), TicketStatus::Paid);
    }

    #[test]
    fn refusals_name_the_reason() {
        let (owner, other) = (Uuid::new_v4(), Uuid::new_v4());
        let refusal = |user, status, past| Change::<()>::refusal(owner, user, status, past);
        assert_eq!(
            refusal(other, TicketStatus::Reserved, false),
            Change::NotOwner
        );
        assert_eq!(
            refusal(owner, TicketStatus::Reserved, true),
            Change::Expired
        );
        assert_eq!(
            refusal(owner, TicketStatus::Expired, false),
            Change::Expired
        );
        assert_eq!(
            refusal(owner, TicketStatus::Paid, false),
            Change::NotReserved(TicketStatus::Paid)
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TicketStatus::parse("refunded"), None);
    }
}
