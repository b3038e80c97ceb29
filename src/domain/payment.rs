//! An order's payment (PAYMENTS.md): who takes the money, where the payment stands, and what
//! was given back. Order statuses stay as they are; the payment says how the money went.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who takes the money (`PAYMENT_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProvider {
    /// Paying marks the order paid at once (the seed's simulated payment).
    #[default]
    None,
    Stripe,
}

impl PaymentProvider {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(PaymentProvider::None),
            "stripe" => Some(PaymentProvider::Stripe),
            _ => None,
        }
    }
}

/// Where an order's payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Nothing taken: not started, or the order is free.
    #[default]
    None,
    /// An intent is open at the provider.
    Pending,
    /// The money was taken (with no provider: recorded).
    Succeeded,
    /// The last attempt failed; the order is still reserved.
    Failed,
    /// Everything was given back; the order is cancelled or expired.
    Refunded,
}

impl PaymentStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(PaymentStatus::None),
            "pending" => Some(PaymentStatus::Pending),
            "succeeded" => Some(PaymentStatus::Succeeded),
            "failed" => Some(PaymentStatus::Failed),
            "refunded" => Some(PaymentStatus::Refunded),
            _ => None,
        }
    }
}

/// An order's payment as stored; its amount and currency are the order's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Payment {
    pub provider: PaymentProvider,
    pub status: PaymentStatus,
    /// The provider's current intent.
    pub intent_id: Option<String>,
    /// Given back so far, in the order's minor unit.
    pub refunded_minor: i64,
    /// The provider's code for why the last attempt failed.
    pub failure_code: Option<String>,
    /// When the payment last changed; `None` while nothing happened to it.
    pub updated_at: Option<DateTime<Utc>>,
    /// Intents started at the provider for the order so far.
    #[serde(default)]
    pub attempts: i32,
}
