//! How orders are shown.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::payment::PaymentBody;
use crate::api::schemas::PageInfo;
use crate::api::tickets::{TicketEvent, TicketStatusBody};
use crate::domain::{OrderDetails, PaymentProvider, PlannedLine};

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
    /// The waiting-list entry this order was offered to; null for an ordinary order.
    waitlist_entry_id: Option<Uuid>,
}

impl OrderResponse {
    /// `details` as of `now`, with `provider` configured.
    pub fn new(details: OrderDetails, now: DateTime<Utc>, provider: PaymentProvider) -> Self {
        let order = details.order;
        let status = TicketStatusBody::from(order.effective_status(now));
        let payment = PaymentBody::new(&order, provider);
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
            waitlist_entry_id: order.waitlist_entry_id,
        }
    }

    /// With the client secret of the payment it started.
    pub fn with_client_secret(mut self, client_secret: &str) -> Self {
        self.payment = self.payment.with_client_secret(client_secret);
        self
    }
}

#[derive(Serialize, ToSchema)]
pub struct MyOrdersResponse {
    pub orders: Vec<OrderResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}
