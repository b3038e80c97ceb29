//! How an order's payment is shown, in order and ticket answers alike.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Order, PaymentProvider, PaymentStatus};

/// Who takes an order's money (`PAYMENT_PROVIDER`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProviderBody {
    None,
    Stripe,
}

/// Where an order's payment stands: `none` nothing taken (not started, or free), `pending` an
/// intent is open, `succeeded` money taken, `failed` the last attempt failed (the order is
/// still reserved), `refunded` all given back (the order is cancelled or expired).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatusBody {
    None,
    Pending,
    Succeeded,
    Failed,
    Refunded,
}

/// An order's payment; its amount and currency are the order's.
#[derive(Serialize, ToSchema)]
pub struct PaymentBody {
    provider: PaymentProviderBody,
    status: PaymentStatusBody,
    /// The provider's current PaymentIntent, if any.
    intent_id: Option<String>,
    amount_minor: i64,
    currency: String,
    /// Given back so far.
    refunded_minor: i64,
    /// The provider's code for why the last attempt failed (`card_declined`).
    failure_code: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<&Order> for PaymentBody {
    fn from(order: &Order) -> Self {
        let payment = &order.payment;
        Self {
            provider: match payment.provider {
                PaymentProvider::None => PaymentProviderBody::None,
                PaymentProvider::Stripe => PaymentProviderBody::Stripe,
            },
            status: match payment.status {
                PaymentStatus::None => PaymentStatusBody::None,
                PaymentStatus::Pending => PaymentStatusBody::Pending,
                PaymentStatus::Succeeded => PaymentStatusBody::Succeeded,
                PaymentStatus::Failed => PaymentStatusBody::Failed,
                PaymentStatus::Refunded => PaymentStatusBody::Refunded,
            },
            intent_id: payment.intent_id.clone(),
            amount_minor: order.total_minor,
            currency: order.currency.clone(),
            refunded_minor: payment.refunded_minor,
            failure_code: payment.failure_code.clone(),
            updated_at: payment.updated_at.unwrap_or(order.created_at),
        }
    }
}
