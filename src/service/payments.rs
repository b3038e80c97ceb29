//! Payments through Stripe (PAYMENTS.md): pay starts a PaymentIntent the buyer confirms in the
//! browser; a signed webhook, or the reconciler when the webhook is lost, applies what Stripe
//! says; money that cannot buy a ticket is refunded. With the `none` provider none of this
//! runs and an order is paid by the ordinary write.
//!
//! Stripe is never called inside a database transaction: each step records what it needs
//! first (an intent, a refund owed) and the next one finishes it, so a process that dies in
//! between leaves work the reconciler completes, never money taken for nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ServiceError;
use crate::config::PaymentSettings;
use crate::domain::{
    Change, OrderChange, OrderDetails, PaymentProvider, PaymentStatus, TicketStatus, WriteOutcome,
};
use crate::payments::signature;
use crate::payments::stripe::{Intent, StripeClient, StripeError};
use crate::store::payments::{
    DueIntent, Heard, IntentNews, IntentRecorded, IntentStart, NewsApplied, OwedRefund,
    RefundReason, Settlement,
};
use crate::store::{DynStore, HeldKey, OrderAction};

/// Intents asked about, and refunds retried, per reconciler run.
const RECONCILE_BATCH: i64 = 100;
/// What a client is told to wait when Stripe cannot be reached.
const PROVIDER_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How a pay, cancel or refund of an order went through the provider.
#[derive(Debug)]
pub enum Handled {
    /// Nothing for the provider to do: the ordinary write does it (no provider, a free order,
    /// or one the ordinary write refuses anyway).
    Ordinary,
    Done(WriteOutcome),
    Refused(OrderChange),
}

/// What a verified webhook event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Applied,
    Duplicate,
    Ignored,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Ignored => "ignored",
        }
    }
}

pub struct Payments {
    store: DynStore,
    stripe: Option<StripeClient>,
    settings: PaymentSettings,
}

/// Where an intent stands, as far as the flow cares.
enum IntentState {
    Succeeded,
    /// The attempt failed or the intent was cancelled: its failure code.
    Failed(String),
    /// Waiting for the buyer or for the bank (`processing`).
    Open {
        processing: bool,
    },
}

fn state_of(intent: &Intent) -> IntentState {
    match intent.status.as_str() {
        "succeeded" => IntentState::Succeeded,
        "canceled" => IntentState::Failed("canceled".into()),
        "requires_payment_method" if intent.last_payment_error.is_some() => {
            IntentState::Failed(intent.failure_code().unwrap_or("payment_failed").to_owned())
        }
        status => IntentState::Open {
            processing: status == "processing",
        },
    }
}

fn unavailable(error: StripeError) -> ServiceError {
    tracing::warn!(%error, "Stripe unavailable");
    ServiceError::ProviderUnavailable {
        retry_after: PROVIDER_RETRY_AFTER,
    }
}

impl IntentState {
    /// An intent Stripe does not know (any more): nothing can pay it.
    fn gone() -> Self {
        IntentState::Failed("canceled".into())
    }
}

impl Payments {
    pub fn new(store: DynStore, settings: PaymentSettings) -> anyhow::Result<Self> {
        let stripe = settings.stripe.clone().map(StripeClient::new).transpose()?;
        Ok(Self {
            store,
            stripe,
            settings,
        })
    }

    pub fn provider(&self) -> PaymentProvider {
        if self.stripe.is_some() {
            PaymentProvider::Stripe
        } else {
            PaymentProvider::None
        }
    }

    /// Pays, cancels or refunds `order_id` through the provider where the provider has a part
    /// in it; [`Handled::Ordinary`] when it has none.
    pub async fn change(
        &self,
        user_id: Uuid,
        order_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        let Some(stripe) = &self.stripe else {
            return Ok(Handled::Ordinary);
        };
        match action {
            OrderAction::Pay => self.pay(stripe, user_id, order_id, key).await,
            OrderAction::Cancel => self.cancel(stripe, user_id, order_id, key).await,
            OrderAction::Refund => self.refund(stripe, user_id, order_id, key).await,
        }
    }

    /// Starts (or goes on with) the payment of a reserved order (PAYMENTS.md § Pay).
    async fn pay(
        &self,
        stripe: &StripeClient,
        user_id: Uuid,
        order_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        // A second look when a concurrent pay recorded its intent first.
        for _ in 0..2 {
            let Some(details) = self.store.find_order(order_id).await? else {
                return Ok(Handled::Ordinary);
            };
            let order = &details.order;
            // Not theirs, not reserved, or free: the ordinary write refuses (or pays a free
            // order); it never pays a reserved order that costs money.
            if order.user_id != user_id
                || order.status != TicketStatus::Reserved
                || order.total_minor == 0
            {
                return Ok(Handled::Ordinary);
            }
            if order.expires_at <= chrono::Utc::now() {
                return Err(ServiceError::HoldExpired);
            }
            let payment = &order.payment;
            if let (Some(intent_id), PaymentStatus::Pending | PaymentStatus::Failed) =
                (&payment.intent_id, payment.status)
            {
                let mut intent = look(stripe, intent_id).await?;
                let open = intent
                    .as_ref()
                    .filter(|intent| matches!(state_of(intent), IntentState::Open { .. }));
                if let (Some(open), PaymentStatus::Pending) = (open, payment.status) {
                    let started = started(details.clone(), open)?;
                    if let Some(key) = key {
                        self.store.record_answer(key, &started).await?;
                    }
                    return Ok(Handled::Done(started));
                }
                // An attempt that failed is closed before another is made: at Stripe a
                // failed intent could still be confirmed, and two could take money.
                if intent
                    .as_ref()
                    .is_some_and(|intent| intent.status != "canceled")
                {
                    intent = close(stripe, intent_id).await?;
                }
                match intent.as_ref().map_or(IntentState::gone(), state_of) {
                    IntentState::Succeeded => {
                        let intent = intent.as_ref().expect("a succeeded intent was read");
                        return self.succeeded(intent, order_id, key).await;
                    }
                    IntentState::Open { .. } => return Err(ServiceError::PaymentProcessing),
                    IntentState::Failed(code) => self.failed(intent_id, &code).await?,
                }
            }
            let attempt = payment.attempts + 1;
            if attempt > self.settings.attempts_per_order {
                return Err(ServiceError::PaymentAttemptsExhausted);
            }
            let idempotency_key = format!("nearbytix-pi-{order_id}-{attempt}");
            let created = stripe
                .create_intent(
                    order.total_minor,
                    &order.currency,
                    order_id,
                    order.event_id,
                    &idempotency_key,
                )
                .await;
            let intent = match created {
                Ok(intent) => intent,
                Err(StripeError::Refused { message, .. }) => {
                    return Err(ServiceError::PaymentNotStarted(message));
                }
                Err(error) => return Err(unavailable(error)),
            };
            let Some(client_secret) = intent.client_secret.clone() else {
                let error =
                    anyhow::anyhow!("Stripe made intent {} without a client secret", intent.id);
                return Err(ServiceError::Internal(error));
            };
            let currency = order.currency.to_lowercase();
            let start = IntentStart {
                order_id,
                user_id,
                attempt,
                intent_id: &intent.id,
                amount_minor: order.total_minor,
                currency: &currency,
                window: self.settings.window,
            };
            match self
                .store
                .record_intent(&start, &client_secret, key)
                .await?
            {
                IntentRecorded::Recorded(order) => {
                    metrics::counter!("nearbytix_payments_started_total", "provider" => "stripe")
                        .increment(1);
                    return Ok(Handled::Done(WriteOutcome::PaymentStarted {
                        order,
                        client_secret,
                    }));
                }
                // Stripe gave the concurrent pay the same intent (one key per attempt).
                IntentRecorded::Raced(order)
                    if order.order.payment.intent_id.as_deref() == Some(intent.id.as_str()) =>
                {
                    let started = WriteOutcome::PaymentStarted {
                        order,
                        client_secret,
                    };
                    if let Some(key) = key {
                        self.store.record_answer(key, &started).await?;
                    }
                    return Ok(Handled::Done(started));
                }
                // Another intent is the order's (a fake Stripe that ignores keys made two):
                // this one is closed, and the order looked at again.
                IntentRecorded::Raced(_) => self.close_unrecorded(stripe, &intent.id).await,
                IntentRecorded::Refused(refusal) => {
                    self.close_unrecorded(stripe, &intent.id).await;
                    return Ok(Handled::Refused(refusal));
                }
            }
        }
        // Raced twice by concurrent pays: the client tries again.
        Err(ServiceError::Overloaded {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Records that an attempt failed (or its intent was cancelled: `canceled`).
    async fn failed(&self, intent_id: &str, failure_code: &str) -> Result<(), ServiceError> {
        let news = IntentNews::Failed { failure_code };
        let heard = self.store.intent_news(intent_id, news, None, None).await?;
        if heard == Heard::New(NewsApplied::Applied(None)) && failure_code != "canceled" {
            count_outcome("failed");
        }
        Ok(())
    }

    /// Cancels an intent made for an order that did not take it. Nothing can pay it: its
    /// client secret was never given out; should the cancel fail, the reconciler never hears
    /// of it either, which is harmless for the same reason.
    async fn close_unrecorded(&self, stripe: &StripeClient, intent_id: &str) {
        if let Err(error) = stripe.cancel_intent(intent_id).await {
            tracing::warn!(%error, intent_id, "could not cancel an intent no order took");
        }
    }

    /// The success rule for an intent Stripe says succeeded, outside a webhook: the order as
    /// the rule left it (paid: 200), else why it is not paid.
    async fn succeeded(
        &self,
        intent: &Intent,
        order_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        let currency = intent.currency.to_lowercase();
        let news = IntentNews::Succeeded {
            amount_minor: intent.amount,
            currency: &currency,
        };
        let heard = self.store.intent_news(&intent.id, news, None, key).await?;
        if let Heard::New(NewsApplied::Applied(Some(settled))) = heard {
            match settled {
                Settlement::Paid { order, late } => {
                    count_outcome(if late { "late_paid" } else { "succeeded" });
                    return Ok(Handled::Done(WriteOutcome::Order(order)));
                }
                Settlement::RefundOwed(refund) => {
                    // Answered below from the order; the refund is retried if Stripe fails.
                    let _ = self.give_back(&refund).await;
                }
                Settlement::Ignored => {}
            }
        }
        // Settled before (a webhook, the reconciler): the order as it is.
        self.as_it_is(order_id, key).await
    }

    /// The order as it is now: paid is done (its answer recorded on `key`), else refused.
    async fn as_it_is(
        &self,
        order_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        let Some(details) = self.store.find_order(order_id).await? else {
            return Ok(Handled::Refused(Change::NotFound));
        };
        match details.order.status {
            TicketStatus::Paid => {
                let paid = WriteOutcome::Order(Box::new(details));
                if let Some(key) = key {
                    self.store.record_answer(key, &paid).await?;
                }
                Ok(Handled::Done(paid))
            }
            TicketStatus::Expired => Ok(Handled::Refused(Change::Expired)),
            status => Ok(Handled::Refused(Change::NotReserved(status))),
        }
    }

    /// Cancels a reserved order's open or failed intent at Stripe, then the order; an intent
    /// that succeeded meanwhile pays the order instead (409).
    async fn cancel(
        &self,
        stripe: &StripeClient,
        user_id: Uuid,
        order_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        // A second look when a concurrent pay started another intent meanwhile.
        for _ in 0..2 {
            let Some(details) = self.store.find_order(order_id).await? else {
                return Ok(Handled::Ordinary);
            };
            let order = &details.order;
            let (Some(intent_id), PaymentStatus::Pending | PaymentStatus::Failed) =
                (&order.payment.intent_id, order.payment.status)
            else {
                return Ok(Handled::Ordinary);
            };
            let live =
                order.status == TicketStatus::Reserved && order.expires_at > chrono::Utc::now();
            if order.user_id != user_id || !live {
                return Ok(Handled::Ordinary);
            }
            let intent = close(stripe, intent_id).await?;
            match intent.as_ref().map_or(IntentState::gone(), state_of) {
                IntentState::Succeeded => {
                    let intent = intent.as_ref().expect("a succeeded intent was read");
                    self.succeeded(intent, order_id, None).await?;
                    return self.refused_as_it_is(order_id).await;
                }
                IntentState::Open { .. } => return Err(ServiceError::PaymentProcessing),
                IntentState::Failed(_) => self.failed(intent_id, "canceled").await?,
            }
            let change = self
                .store
                .change_order(order_id, user_id, OrderAction::Cancel, key)
                .await?;
            match change {
                Change::Done(order) => return Ok(Handled::Done(WriteOutcome::Order(order))),
                // Still reserved: a pay started another intent meanwhile.
                Change::NotReserved(TicketStatus::Reserved) => continue,
                refusal => return Ok(Handled::Refused(refusal)),
            }
        }
        Err(ServiceError::Overloaded {
            retry_after: Duration::from_secs(1),
        })
    }

    /// Why an order that was to be cancelled is not, as it is now (paid by a payment that
    /// succeeded meanwhile, or expired and refunded).
    async fn refused_as_it_is(&self, order_id: Uuid) -> Result<Handled, ServiceError> {
        let Some(details) = self.store.find_order(order_id).await? else {
            return Ok(Handled::Refused(Change::NotFound));
        };
        Ok(Handled::Refused(match details.order.status {
            TicketStatus::Expired => Change::Expired,
            status => Change::NotReserved(status),
        }))
    }

    /// The organiser's refund of a paid order: owed first, made at Stripe, then recorded by the
    /// ordinary refund (cancelled, seats back).
    async fn refund(
        &self,
        stripe: &StripeClient,
        user_id: Uuid,
        order_id: Uuid,
        key: Option<&HeldKey>,
    ) -> Result<Handled, ServiceError> {
        let Some((refund, fresh)) = self.store.owe_organiser_refund(order_id, user_id).await?
        else {
            return Ok(Handled::Ordinary);
        };
        match self.make_refund(stripe, &refund, !fresh).await {
            Ok(()) => {}
            Err(StripeError::Refused { message, .. }) => {
                self.store.drop_refund(&refund.intent_id).await?;
                return Err(ServiceError::RefundRefused(message));
            }
            // Stays owed: the reconciler finds whether Stripe made it.
            Err(error) => return Err(unavailable(error)),
        }
        let change = self
            .store
            .change_order(order_id, user_id, OrderAction::Refund, key)
            .await?;
        match change {
            Change::Done(order) => Ok(Handled::Done(WriteOutcome::Order(order))),
            // Stripe's `charge.refunded` got there first: the order is refunded all the same.
            refusal => match self.store.find_order(order_id).await? {
                Some(details) if details.order.payment.status == PaymentStatus::Refunded => {
                    let refunded = WriteOutcome::Order(Box::new(details));
                    if let Some(key) = key {
                        self.store.record_answer(key, &refunded).await?;
                    }
                    Ok(Handled::Done(refunded))
                }
                _ => Ok(Handled::Refused(refusal)),
            },
        }
    }

    /// Asks Stripe for `refund`, once: with `look_first`, an earlier request may have reached
    /// it, so the intent's refunds are listed first.
    async fn make_refund(
        &self,
        stripe: &StripeClient,
        refund: &OwedRefund,
        look_first: bool,
    ) -> Result<(), StripeError> {
        if look_first
            && refunded_at_stripe(stripe, &refund.intent_id).await? >= refund.charged_minor
        {
            return Ok(());
        }
        let key = format!("nearbytix-refund-{}", refund.intent_id);
        stripe
            .create_refund(
                &refund.intent_id,
                refund.amount_minor,
                refund.order_id,
                &key,
            )
            .await?;
        Ok(())
    }

    /// Gives back money owed by the success rule; on failure it stays owed for the reconciler.
    async fn give_back(&self, refund: &OwedRefund) -> Result<(), ServiceError> {
        let Some(stripe) = &self.stripe else {
            return Ok(());
        };
        self.make_refund(stripe, refund, false)
            .await
            .map_err(unavailable)?;
        self.store.refund_made(&refund.intent_id).await?;
        count_outcome(match refund.reason {
            RefundReason::Late => "late_refunded",
            RefundReason::Extra | RefundReason::Organiser => "extra_refunded",
        });
        Ok(())
    }

    /// A webhook from Stripe (PAYMENTS.md § Webhook): `signature` is the `Stripe-Signature`
    /// header, `body` the bytes as received.
    pub async fn webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, ServiceError> {
        let now = chrono::Utc::now().timestamp();
        let verified = signature::verify(
            signature.unwrap_or_default(),
            body,
            &self.settings.webhook_secrets,
            now,
            self.settings.webhook_tolerance_seconds,
        );
        if let Err(error) = verified {
            count_webhook("other", "bad_signature");
            tracing::info!(%error, "webhook refused");
            return Err(ServiceError::InvalidSignature);
        }
        let Ok(event) = serde_json::from_slice::<WebhookEvent>(body) else {
            count_webhook("other", "malformed");
            return Err(ServiceError::MalformedWebhook);
        };
        let kind = match event.kind.as_str() {
            "payment_intent.succeeded" => "payment_intent.succeeded",
            "payment_intent.payment_failed" => "payment_intent.payment_failed",
            "payment_intent.canceled" => "payment_intent.canceled",
            "charge.refunded" => "charge.refunded",
            _ => "other",
        };
        let outcome = self.apply_event(&event, kind).await;
        let label = match &outcome {
            Ok(outcome) => outcome.as_str(),
            Err(_) => "unavailable",
        };
        count_webhook(kind, label);
        outcome
    }

    async fn apply_event(
        &self,
        event: &WebhookEvent,
        kind: &str,
    ) -> Result<WebhookOutcome, ServiceError> {
        let object = &event.data.object;
        let text = |field: &str| object.get(field).and_then(Value::as_str);
        let number = |field: &str| object.get(field).and_then(Value::as_i64);
        let currency = text("currency").map(str::to_lowercase);
        let failure_code = object
            .pointer("/last_payment_error/code")
            .and_then(Value::as_str)
            .unwrap_or("payment_failed");
        let (intent_id, news) = match (kind, text("id"), text("payment_intent")) {
            ("payment_intent.succeeded", Some(id), _) => match (number("amount"), &currency) {
                (Some(amount_minor), Some(currency)) => (
                    id,
                    IntentNews::Succeeded {
                        amount_minor,
                        currency,
                    },
                ),
                _ => return self.ignored(&event.id).await,
            },
            ("payment_intent.payment_failed", Some(id), _) => {
                (id, IntentNews::Failed { failure_code })
            }
            ("payment_intent.canceled", Some(id), _) => (
                id,
                IntentNews::Failed {
                    failure_code: "canceled",
                },
            ),
            ("charge.refunded", _, Some(intent_id)) => (
                intent_id,
                IntentNews::Refunded {
                    refunded_minor: number("amount_refunded").unwrap_or_default(),
                    fully: object.get("refunded").and_then(Value::as_bool) == Some(true),
                },
            ),
            _ => return self.ignored(&event.id).await,
        };
        let heard = self
            .store
            .intent_news(intent_id, news, Some(&event.id), None)
            .await?;
        match heard {
            Heard::Duplicate => Ok(WebhookOutcome::Duplicate),
            Heard::New(NewsApplied::Ignored) => Ok(WebhookOutcome::Ignored),
            Heard::New(NewsApplied::Applied(settled)) => {
                match settled {
                    Some(Settlement::Paid { late, .. }) => {
                        count_outcome(if late { "late_paid" } else { "succeeded" })
                    }
                    Some(Settlement::RefundOwed(refund)) => self.give_back(&refund).await?,
                    Some(Settlement::Ignored) => {}
                    None if matches!(news, IntentNews::Failed { .. }) => count_outcome("failed"),
                    None => {}
                }
                Ok(WebhookOutcome::Applied)
            }
        }
    }

    async fn ignored(&self, event_id: &str) -> Result<WebhookOutcome, ServiceError> {
        Ok(match self.store.webhook_ignored(event_id).await? {
            Heard::New(()) => WebhookOutcome::Ignored,
            Heard::Duplicate => WebhookOutcome::Duplicate,
        })
    }

    /// One reconciler run (PAYMENTS.md § Reconciler): asks Stripe about open intents unheard
    /// of for a while, cancels those open too long after their hold, and retries refunds owed.
    /// It ends early, between two of them, once `stop` turns true: what it had taken but not
    /// done is taken again after `PAYMENT_RECONCILE_AFTER_SECONDS`.
    pub async fn reconcile(&self, stop: &watch::Receiver<bool>) -> Result<(), ServiceError> {
        let Some(stripe) = &self.stripe else {
            return Ok(());
        };
        let open = self.store.open_intents().await?;
        metrics::gauge!("nearbytix_payments_pending").set(open as f64);
        let after = self.settings.reconcile_after;
        for due in self.store.due_intents(after, RECONCILE_BATCH).await? {
            if *stop.borrow() {
                return Ok(());
            }
            if let Err(error) = self.reconcile_intent(stripe, &due).await {
                tracing::warn!(%error, intent_id = due.intent_id, "reconciling an intent failed");
            }
        }
        for refund in self.store.owed_refunds(after, RECONCILE_BATCH).await? {
            if *stop.borrow() {
                return Ok(());
            }
            if let Err(error) = self.reconcile_refund(stripe, &refund).await {
                tracing::warn!(%error, intent_id = refund.intent_id, "a refund owed failed again");
            }
        }
        Ok(())
    }

    async fn reconcile_intent(
        &self,
        stripe: &StripeClient,
        due: &DueIntent,
    ) -> Result<(), ServiceError> {
        let mut intent = look(stripe, &due.intent_id).await?;
        let ttl = chrono::Duration::from_std(self.settings.intent_ttl).unwrap_or_default();
        let too_old = due
            .hold_ended_at
            .is_some_and(|ended| ended + ttl <= chrono::Utc::now());
        let closable = |intent: &Intent| {
            intent.status != "canceled"
                && matches!(
                    state_of(intent),
                    IntentState::Open { processing: false } | IntentState::Failed(_)
                )
        };
        if too_old && intent.as_ref().is_some_and(closable) {
            intent = close(stripe, &due.intent_id).await?;
        }
        match intent.as_ref().map_or(IntentState::gone(), state_of) {
            IntentState::Succeeded => {
                let intent = intent.as_ref().expect("a succeeded intent was read");
                self.succeeded(intent, due.order_id, None).await?;
                count_reconciled("succeeded");
            }
            IntentState::Failed(code) => {
                self.failed(&due.intent_id, &code).await?;
                count_reconciled(if code == "canceled" {
                    "canceled"
                } else {
                    "failed"
                });
            }
            IntentState::Open { .. } => count_reconciled("pending"),
        }
        Ok(())
    }

    async fn reconcile_refund(
        &self,
        stripe: &StripeClient,
        refund: &OwedRefund,
    ) -> Result<(), ServiceError> {
        let given = refunded_at_stripe(stripe, &refund.intent_id)
            .await
            .map_err(unavailable)?;
        let made = given >= refund.charged_minor;
        match (refund.reason, made) {
            // Stripe made the organiser's refund: the order is refunded as by `charge.refunded`.
            (RefundReason::Organiser, true) => {
                let news = IntentNews::Refunded {
                    refunded_minor: given,
                    fully: true,
                };
                self.store
                    .intent_news(&refund.intent_id, news, None, None)
                    .await?;
            }
            // Stripe did not make it: the order stays paid.
            (RefundReason::Organiser, false) => {
                self.store.drop_refund(&refund.intent_id).await?;
                return Ok(());
            }
            (_, true) => self.store.refund_made(&refund.intent_id).await?,
            (_, false) => self.give_back(refund).await?,
        }
        count_reconciled("refunded");
        Ok(())
    }
}

/// The intent as Stripe has it; `None` when Stripe does not know it (any more).
async fn look(stripe: &StripeClient, intent_id: &str) -> Result<Option<Intent>, ServiceError> {
    match stripe.retrieve_intent(intent_id).await {
        Ok(intent) => Ok(Some(intent)),
        Err(StripeError::Refused { .. }) => Ok(None),
        Err(error) => Err(unavailable(error)),
    }
}

/// Cancels an intent at Stripe; the intent as it is then. Stripe refuses to cancel one that
/// succeeded (or is already closed): it is read instead.
async fn close(stripe: &StripeClient, intent_id: &str) -> Result<Option<Intent>, ServiceError> {
    match stripe.cancel_intent(intent_id).await {
        Ok(intent) => Ok(Some(intent)),
        Err(StripeError::Refused { .. }) => look(stripe, intent_id).await,
        Err(error) => Err(unavailable(error)),
    }
}

/// What Stripe gave back of an intent's charge so far.
async fn refunded_at_stripe(stripe: &StripeClient, intent_id: &str) -> Result<i64, StripeError> {
    let refunds = stripe.list_refunds(intent_id).await?;
    Ok(refunds
        .iter()
        .filter(|refund| !matches!(refund.status.as_str(), "failed" | "canceled"))
        .map(|refund| refund.amount)
        .sum())
}

/// The 202 answer of a pay whose intent is open: the order and the intent's client secret.
fn started(details: OrderDetails, intent: &Intent) -> Result<WriteOutcome, ServiceError> {
    let client_secret = intent.client_secret.clone().ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("Stripe's intent has no client secret"))
    })?;
    Ok(WriteOutcome::PaymentStarted {
        order: Box::new(details),
        client_secret,
    })
}

#[derive(Deserialize)]
struct WebhookEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

#[derive(Deserialize, Default)]
struct EventData {
    #[serde(default)]
    object: Value,
}

fn count_outcome(outcome: &'static str) {
    metrics::counter!("nearbytix_payment_outcomes_total", "outcome" => outcome).increment(1);
}

fn count_webhook(kind: &'static str, outcome: &'static str) {
    metrics::counter!("nearbytix_stripe_webhooks_total", "type" => kind, "outcome" => outcome)
        .increment(1);
}

fn count_reconciled(result: &'static str) {
    metrics::counter!("nearbytix_payment_reconciled_total", "result" => result).increment(1);
}

/// The reconciler's task, beside the expiry sweeper in `serve` and `worker`.
pub struct Reconciler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reconciler {
    /// Runs [`Payments::reconcile`] every `PAYMENT_RECONCILE_INTERVAL_SECONDS`; `None` with no
    /// provider.
    pub fn start(payments: Arc<Payments>) -> Option<Self> {
        payments.stripe.as_ref()?;
        let interval = payments.settings.reconcile_interval;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = payments.reconcile(&stopped).await {
                    tracing::warn!(%error, "payment reconciler run failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Some(Self { stop, task })
    }

    /// Stops the reconciler at its next intent or refund and waits for it (at most one
    /// Stripe call, `STRIPE_TIMEOUT_SECONDS`).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "payment reconciler task failed");
        }
    }
}
