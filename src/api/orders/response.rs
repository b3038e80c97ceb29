//! How orders are shown.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::schemas::PageInfo;
use crate::api::tickets::{TicketEvent, TicketStatusBody};
use crate::domain::{Order, OrderDetails, PaymentProvider, PaymentStatus, PlannedLine};

/// What an order bought of one tier, at the price it was placed at.
#[derive(Serialize, ToSchema)]
pub struct OrderItemBody {
    tier_id: Uuid,
    tier_name: String,
    quantity: i32,
    unit_price_minor: i64,
    subtotal_minor: i64,
}

impl From<PlannedLine> for OrderItemBody {
    fn from(line: PlannedLine) -> Self {
        Self {
            tier_id: line.tier_id,
            tier_name: line.tier_name,
            quantity: line.quantity,
            unit_price_minor: line.unit_price_minor,
            subtotal_minor: i64::from(line.quantity) * line.unit_price_minor,
        }
    }
}

/// One ticket of an order; it always has the order's status.
#[derive(Serialize, ToSchema)]
pub struct OrderTicketBody {
    id: Uuid,
    tier_id: Uuid,
    status: TicketStatusBody,
}

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

/// An order; `status` is the effective one (a hold past its deadline reads `expired`), and
/// every ticket has it.
#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    status: TicketStatusBody,
    /// ISO 4217 code of every price in the order.
    currency: String,
    /// In the currency's minor unit (cents).
    total_minor: i64,
    items: Vec<OrderItemBody>,
    tickets: Vec<OrderTicketBody>,
    event: TicketEvent,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    payment: PaymentBody,
}

impl OrderResponse {
    pub fn new(details: OrderDetails, now: DateTime<Utc>) -> Self {
        let order = details.order;
        let status = TicketStatusBody::from(order.effective_status(now));
        let payment = PaymentBody::from(&order);
        Self {
            id: order.id,
            user_id: order.user_id,
            event_id: order.event_id,
            status,
            currency: order.currency,
            total_minor: order.total_minor,
            items: details.lines.into_iter().map(OrderItemBody::from).collect(),
            tickets: details
                .tickets
                .into_iter()
                .map(|ticket| OrderTicketBody {
                    id: ticket.ticket.id,
                    tier_id: ticket.tier.id,
                    status,
                })
                .collect(),
            event: details.event.into(),
            created_at: order.created_at,
            expires_at: order.expires_at,
            paid_at: order.paid_at,
            updated_at: order.updated_at,
            payment,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MyOrdersResponse {
    pub orders: Vec<OrderResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}
