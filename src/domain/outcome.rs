//! What a keyed write did ([`WriteOutcome`]), whatever it wrote: an order, a payment, a code,
//! a check-in list, a waiting-list entry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checkin_list::CheckinList;
use super::order::OrderDetails;
use super::payment::{Payment, PaymentStatus};
use super::ticket::TicketStatus;
use super::waitlist::WaitlistEntry;

/// What a write that a client may retry (with an `Idempotency-Key`) did, recorded with its key
/// in the write's own transaction: a retry is answered from it exactly as the first request was.
/// Only what succeeded is recorded; a refused write leaves the key free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// An order placed, paid or cancelled (a ticket's write included: an order of one), as the
    /// write left it.
    Order(Box<OrderDetails>),
    /// A payment started at the provider: the order (reserved, its payment pending) and the
    /// client secret its buyer confirms the payment with (given in this answer only).
    PaymentStarted {
        order: Box<OrderDetails>,
        client_secret: String,
    },
    /// A ticket's code reissued: the code it now has.
    CodeReissued(ReissuedCode),
    /// A check-in list created.
    ListCreated(Box<CheckinList>),
    /// A waiting-list entry made, as it read when made.
    WaitlistJoined(Box<WaitlistEntry>),
}

/// What a ticket code names, with the key it is signed with: its text is signed from it when
/// shown, so a replay signs it again as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReissuedCode {
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Uuid,
    pub serial: u32,
    pub key_id: u16,
}

impl WriteOutcome {
    /// The outcome as it reads today when it was recorded before orders carried a payment: a
    /// paid order that was not free had its money taken (as migration 0013 says of stored
    /// orders).
    pub fn with_payment_of_its_time(self) -> Self {
        match self {
            WriteOutcome::Order(mut details) => {
                let order = &mut details.order;
                if order.payment == Payment::default()
                    && order.status == TicketStatus::Paid
                    && order.total_minor > 0
                {
                    order.payment.status = PaymentStatus::Succeeded;
                    order.payment.updated_at = order.paid_at;
                }
                WriteOutcome::Order(details)
            }
            // Recorded since orders carry their payment.
            later @ (WriteOutcome::PaymentStarted { .. }
            | WriteOutcome::CodeReissued(_)
            | WriteOutcome::ListCreated(_)
            | WriteOutcome::WaitlistJoined(_)) => later,
        }
    }
}
