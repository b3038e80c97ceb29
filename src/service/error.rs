//! Every way a use case can refuse, with the message a client may read. Mapping these to
//! status codes is the HTTP layer's job.

use std::fmt;

use uuid::Uuid;

use crate::auth::password::HashError;
use crate::domain::waitlist::EntryStatus;
use crate::domain::{Shortage, TicketStatus, Violations};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Event,
    Ticket,
    Order,
    Tier,
    CheckinList,
    ScannerToken,
    WaitlistEntry,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Event => "Event",
            Resource::Ticket => "Ticket",
            Resource::Order => "Order",
            Resource::Tier => "Tier",
            Resource::CheckinList => "Check-in list",
            Resource::ScannerToken => "Scanner token",
            Resource::WaitlistEntry => "Waiting-list entry",
        })
    }
}

/// What a caller tried to do to something that is not theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ModifyEvent,
    DeleteEvent,
    PayTicket,
    CancelTicket,
    ViewTicket,
    PayOrder,
    CancelOrder,
    RefundOrder,
    ViewOrder,
    ViewTicketCode,
    ViewStats,
    ManageCheckin,
    Scan,
    ViewWaitlistEntry,
    LeaveWaitlist,
    ManageWaitlist,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::ModifyEvent => "You can only modify your own events",
            Action::DeleteEvent => "You can only delete your own events",
            Action::PayTicket => "You can only pay for your own tickets",
            Action::CancelTicket => "You can only cancel your own tickets",
            Action::ViewTicket => "You can only view your own tickets",
            Action::PayOrder => "You can only pay for your own orders",
            Action::CancelOrder => "You can only cancel your own orders",
            Action::RefundOrder => "Only the event's creator can refund its orders",
            Action::ViewTicketCode => "You can only see the codes of your own tickets",
            Action::ViewOrder => "You can only view your own orders",
            Action::ViewStats => "You can only see the sales of your own events",
            Action::ManageCheckin => "Only the event's creator can manage its check-in",
            Action::Scan => "Only the event's creator or its scanners may scan here",
            Action::ViewWaitlistEntry => "Only the entry's user or the event's creator can view it",
            Action::LeaveWaitlist => "You can only leave the waiting list for yourself",
            Action::ManageWaitlist => "Only the event's creator can manage its waiting list",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that breaks the product's rules.
    #[error("invalid input: {0}")]
    Invalid(Violations),
    #[error("Invalid email or password")]
    WrongCredentials,
    /// A token that is malformed, expired, or whose user no longer exists.
    #[error("Invalid authentication credentials")]
    InvalidToken,
    #[error("Email already registered")]
    EmailTaken,
    #[error("{0} with ID {1} not found")]
    NotFound(Resource, Uuid),
    #[error("{0}")]
    NotOwner(Action),
    #[error("Event has already started; tickets are no longer on sale")]
    EventStarted,
    /// An order wants more seats than a tier or the event has left.
    #[error("{}", not_enough(.short, *.left))]
    NotEnough { short: Shortage, left: i64 },
    #[error("Sales for '{0}' have not started")]
    SalesNotStarted(String),
    #[error("Sales for '{0}' have ended")]
    SalesEnded(String),
    #[error("Limit of {0} tickets per person for this event")]
    PerPersonLimit(i32),
    #[error("Ticket is part of order {0}: pay or cancel the order")]
    PartOfOrder(Uuid),
    #[error("Another tier of this event has this name")]
    TierNameTaken,
    #[error("An event has at most 20 tiers")]
    TooManyTiers,
    #[error("An event has at most {0} check-in lists")]
    TooManyLists(u32),
    #[error("An event has at most {0} live scanner tokens")]
    TooManyTokens(u32),
    #[error("The list has check-ins or a live scanner token names it")]
    ListInUse,
    /// A bundle cursor that is not one of the event's.
    #[error("Unknown cursor")]
    UnknownCursor,
    #[error("quantity cannot be lower than the tickets this tier already sold")]
    TierBelowSold,
    #[error("Tier has reserved or paid tickets and cannot be deleted")]
    TierHasTickets,
    #[error("An event keeps at least one tier")]
    LastTier,
    #[error("total_tickets cannot be lower than the number of tickets already sold")]
    TotalBelowSold,
    #[error("The currency cannot change once the event has orders")]
    CurrencyLocked,
    #[error("Event has reserved or paid tickets and cannot be deleted")]
    EventHasTickets,
    /// Paying a hold whose deadline has passed.
    #[error("Ticket reservation has expired")]
    HoldExpired,
    #[error("{}", not_reserved(*.0))]
    NotReserved(TicketStatus),
    /// A per-user limit of requests reached, for `retry_after` more.
    #[error("Too many attempts; try again later")]
    RateLimited { retry_after: std::time::Duration },
    /// A ticket's code reissued as many times as a day allows, for `retry_after` more.
    #[error("This ticket's code was reissued as often as a day allows")]
    TooManyReissues { retry_after: std::time::Duration },
    /// A code asked for a ticket that is not paid.
    #[error("Ticket is not paid")]
    TicketNotPaid,
    /// Refunding an order that is not paid (reserved, expired, cancelled or refunded).
    #[error("Order is not paid (it is {})", .0.as_str())]
    NotPaid(TicketStatus),
    /// Stripe refused to start a payment (below its minimum amount, say).
    #[error("Payment could not be started: {0}")]
    PaymentNotStarted(String),
    #[error("This order started as many payments as it may")]
    PaymentAttemptsExhausted,
    /// Cancelling an order whose payment the bank is still processing.
    #[error("The payment is being processed; the order cannot be cancelled now")]
    PaymentProcessing,
    /// Stripe refused a refund (the charge was refunded already, say).
    #[error("Refund could not be made: {0}")]
    RefundRefused(String),
    /// The payment provider cannot be reached (or is too busy); nothing was changed.
    #[error("Payment provider unavailable; try again shortly")]
    ProviderUnavailable { retry_after: std::time::Duration },
    #[error("Invalid signature")]
    InvalidSignature,
    #[error("Webhook body is not a Stripe event")]
    MalformedWebhook,
    /// A join the waiting list's rules refuse (WAITLIST.md § Join rules 4 to 10).
    #[error("{0}")]
    WaitlistRefused(String),
    /// Ending an entry that is already final.
    #[error("Entry is already {}", .0.as_str())]
    EntryFinal(EntryStatus),
    #[error("User has no location set. Please update user location first.")]
    NoLocation,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("A request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInProgress,
    /// A write that was to claim a new key in its own transaction found the key in use and did
    /// nothing: the caller claims the key the long way and writes again.
    #[error("A request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInUse,
    #[error("Too many Idempotency-Keys used in the last 24 hours")]
    TooManyIdempotencyKeys,
    /// Too much of this kind of work is in flight: the client may retry after `retry_after`.
    #[error("Server busy; try again shortly")]
    Overloaded { retry_after: std::time::Duration },
    /// The database is away; the client may retry.
    #[error("service unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn not_enough(short: &Shortage, left: i64) -> String {
    match (short, left) {
        (Shortage::Event, 0) => "Event is sold out".to_owned(),
        (Shortage::Tier(tier), 0) => format!("'{tier}' is sold out"),
        (Shortage::Event, left) => format!("Not enough tickets: the event has {left} left"),
        (Shortage::Tier(tier), left) => format!("Not enough tickets: '{tier}' has {left} left"),
    }
}

fn not_reserved(status: TicketStatus) -> String {
    match status {
        TicketStatus::Paid => "Ticket is already paid".to_owned(),
        TicketStatus::Expired => "Ticket reservation has already expired".to_owned(),
        other => format!("Ticket is {} and not reserved", other.as_str()),
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ServiceError::Unavailable(error),
            StoreError::ClaimLost => ServiceError::IdempotencyKeyInProgress,
            StoreError::KeyInUse => ServiceError::IdempotencyKeyInUse,
            StoreError::Busy => ServiceError::Overloaded {
                retry_after: std::time::Duration::from_secs(1),
            },
            other => ServiceError::Internal(other.into()),
        }
    }
}

impl From<HashError> for ServiceError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => ServiceError::Overloaded {
                retry_after: std::time::Duration::from_secs(1),
            },
            HashError::Failed(error) => ServiceError::Internal(error),
        }
    }
}

impl From<anyhow::Error> for ServiceError {
    fn from(error: anyhow::Error) -> Self {
        ServiceError::Internal(error)
    }
}

impl From<Violations> for ServiceError {
    fn from(violations: Violations) -> Self {
        ServiceError::Invalid(violations)
    }
}
