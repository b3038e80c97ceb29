//! Payments through a provider (PAYMENTS.md), as the store keeps them: the intents started for
//! an order, the success rule, refunds owed and made, and the webhook events processed. Every
//! rule that must hold whatever runs at once (one kept payment per order, never both paid and
//! released, a webhook applied once) holds inside one call here, in one transaction that
//! holds the order's row; the provider is called by the service, between calls.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{HeldKey, StoreResult};
use crate::domain::{OrderChange, OrderDetails, WriteOutcome};

/// An intent made at the provider, to record as its order's current one.
#[derive(Debug, Clone, Copy)]
pub struct IntentStart<'a> {
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// 1 for the order's first intent; the order must have had `attempt - 1` so far.
    pub attempt: i32,
    pub intent_id: &'a str,
    pub amount_minor: i64,
    /// Lower case, as the provider writes it.
    pub currency: &'a str,
    /// The first intent extends the hold to at least this long from now.
    pub window: Duration,
}

/// How recording an intent ended.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentRecorded {
    /// The order's current intent; the order as it is now.
    Recorded(Box<OrderDetails>),
    /// Another intent took this attempt first (a concurrent pay): the order as it is now.
    Raced(Box<OrderDetails>),
    /// The order cannot take an intent now (not the caller's, not reserved, hold ended).
    Refused(OrderChange),
}

/// Why money taken is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    /// Paid after the hold ended, when the seats could not be taken again.
    Late,
    /// A payment the order does not keep: it was paid through another intent, or cancelled.
    Extra,
    /// Asked by the event's creator.
    Organiser,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Late => "late",
            RefundReason::Extra => "extra",
            RefundReason::Organiser => "organiser",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "late" => Some(RefundReason::Late),
            "extra" => Some(RefundReason::Extra),
            "organiser" => Some(RefundReason::Organiser),
            _ => None,
        }
    }
}

/// A refund recorded as owed before the provider is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedRefund {
    pub intent_id: String,
    pub order_id: Uuid,
    /// What this refund gives back.
    pub amount_minor: i64,
    /// What the intent took: once the provider gave back this much, the refund is made.
    pub charged_minor: i64,
    pub reason: RefundReason,
}

/// What the success rule did with an intent the provider says succeeded.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Not an intent of ours, already settled, or not the amount and currency it was made for.
    Ignored,
    /// The order is paid; `late` when its hold had ended and its seats were taken again.
    Paid {
        order: Box<OrderDetails>,
        late: bool,
    },
    /// The money is owed back (recorded; the caller asks the provider).
    RefundOwed(OwedRefund),
}

/// What the provider says happened to an intent, as a webhook or a read tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentNews<'a> {
    /// Money taken: the success rule.
    Succeeded {
        amount_minor: i64,
        /// Lower case.
        currency: &'a str,
    },
    /// The attempt failed (`card_declined`), or the intent was cancelled (`canceled`).
    Failed { failure_code: &'a str },
    /// Money given back at the provider: `refunded_minor` in all, `fully` when all of it.
    Refunded { refunded_minor: i64, fully: bool },
}

/// What news of an intent did.
#[derive(Debug, Clone, PartialEq)]
pub enum NewsApplied {
    /// The state moved (for a success: as the settlement says).
    Applied(Option<Settlement>),
    /// Nothing to do: not ours, stale, or the state is already past it.
    Ignored,
}

/// A webhook event's id, recorded with its outcome in the transaction of its effect; a repeat
/// is answered [`Heard::Duplicate`] having done nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard<T> {
    New(T),
    Duplicate,
}

/// An open intent the reconciler asks the provider about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueIntent {
    pub intent_id: String,
    pub order_id: Uuid,
    /// When its order's hold ended, if it did (or the order left `reserved`).
    pub hold_ended_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records `start` as its order's current intent, `pending`, when the order is the
    /// caller's, reserved, within its hold and had `attempt - 1` intents; the first extends the
    /// hold. With a `key`, the recorded order's answer (`client_secret`) is recorded on it.
    async fn record_intent(
        &self,
        start: &IntentStart<'_>,
        client_secret: &str,
        key: Option<&HeldKey>,
    ) -> StoreResult<IntentRecorded>;
    /// Applies `news` of an intent (webhook event `event_id`, if it came by one, recorded in
    /// the same transaction). A success runs the success rule; with a `key`, a paid order's
    /// answer is recorded on it.
    async fn intent_news(
        &self,
        intent_id: &str,
        news: IntentNews<'_>,
        event_id: Option<&str>,
        key: Option<&HeldKey>,
    ) -> StoreResult<Heard<NewsApplied>>;
    /// Records a webhook event that changes nothing (`ignored`); [`Heard::Duplicate`] when seen.
    async fn webhook_ignored(&self, event_id: &str) -> StoreResult<Heard<()>>;
    /// Forgets webhook events received before `older_than`.
    async fn purge_webhook_events(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
    /// A refund the provider made: owed → done; a late or extra one marks its order's payment
    /// refunded (when it is the order's current intent) and is counted in its event's stats.
    async fn refund_made(&self, intent_id: &str) -> StoreResult<()>;
    /// Records the refund of paid order `order_id` that `organiser` (its event's creator) asks
    /// of the provider, owed; `None` when the order is not such a one (the ordinary refund then
    /// answers why, or records a refund that needs no provider). The flag: newly owed (false:
    /// an earlier request may have reached the provider).
    async fn owe_organiser_refund(
        &self,
        order_id: Uuid,
        organiser: Uuid,
    ) -> StoreResult<Option<(OwedRefund, bool)>>;
    /// Forgets an owed refund the provider did not make.
    async fn drop_refund(&self, intent_id: &str) -> StoreResult<()>;
    /// Up to `limit` open intents unheard of for `unheard_for`, marked heard now so that no
    /// other reconciler takes them meanwhile.
    async fn due_intents(&self, unheard_for: Duration, limit: i64) -> StoreResult<Vec<DueIntent>>;
    /// Up to `limit` refunds owed and untried for `untried_for`, marked tried now.
    async fn owed_refunds(&self, untried_for: Duration, limit: i64)
    -> StoreResult<Vec<OwedRefund>>;
    /// Intents open now (their partial index counts them).
    async fn open_intents(&self) -> StoreResult<i64>;
    /// Records `outcome` on a held key outside any other write (an answer that wrote nothing).
    async fn record_answer(&self, key: &HeldKey, outcome: &WriteOutcome) -> StoreResult<()>;
}
