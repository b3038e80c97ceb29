//! How tickets are shown.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::payment::PaymentBody;
use crate::api::schemas::PageInfo;
use crate::domain::{
    EventSummary, Order, PaymentProvider, TicketDetails, TicketStatus, TierSummary, UserSummary,
};

/// The status as clients read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatusBody {
    Reserved,
    Paid,
    Expired,
    Cancelled,
}

impl From<TicketStatus> for TicketStatusBody {
    fn from(status: TicketStatus) -> Self {
        match status {
            TicketStatus::Reserved => TicketStatusBody::Reserved,
            TicketStatus::Paid => TicketStatusBody::Paid,
            TicketStatus::Expired => TicketStatusBody::Expired,
            TicketStatus::Cancelled => TicketStatusBody::Cancelled,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TicketUser {
    id: Uuid,
    name: String,
    email: String,
}

impl From<UserSummary> for TicketUser {
    fn from(user: UserSummary) -> Self {
        Self {
            id: user.id,
            name: user.name,
            email: user.email,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TicketEvent {
    id: Uuid,
    title: String,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    venue_name: String,
    city: String,
    state: String,
}

impl From<EventSummary> for TicketEvent {
    fn from(event: EventSummary) -> Self {
        Self {
            id: event.id,
            title: event.title,
            start_time: event.start_time,
            end_time: event.end_time,
            venue_name: event.venue_name,
            city: event.city,
            state: event.state,
        }
    }
}

/// The tier a ticket was bought from, with the name and price its order recorded.
#[derive(Serialize, ToSchema)]
pub struct TicketTier {
    id: Uuid,
    name: String,
    /// In the event currency's minor unit (cents); 0 is free.
    price_minor: i64,
}

impl From<TierSummary> for TicketTier {
    fn from(tier: TierSummary) -> Self {
        Self {
            id: tier.id,
            name: tier.name,
            price_minor: tier.price_minor,
        }
    }
}

/// A ticket; `status` is the effective one (a hold past its deadline reads `expired`).
#[derive(Serialize, ToSchema)]
pub struct TicketResponse {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    /// The order the ticket was bought in; it always has the order's status.
    order_id: Uuid,
    tier: TicketTier,
    status: TicketStatusBody,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    user: TicketUser,
    event: TicketEvent,
    is_expired: bool,
    is_paid: bool,
    is_reserved: bool,
    /// The payment of the ticket's order.
    payment: PaymentBody,
}

impl TicketResponse {
    /// `details` of a ticket of `order`, as of `now`, with `provider` configured.
    pub fn new(
        details: TicketDetails,
        order: &Order,
        now: DateTime<Utc>,
        provider: PaymentProvider,
    ) -> Self {
        let status = details.ticket.effective_status(now);
        Self {
            id: details.ticket.id,
            user_id: details.ticket.user_id,
            event_id: details.ticket.event_id,
            order_id: details.ticket.order_id,
            tier: details.tier.into(),
            status: status.into(),
            created_at: details.ticket.created_at,
            expires_at: details.ticket.expires_at,
            paid_at: details.ticket.paid_at,
            updated_at: details.ticket.updated_at,
            user: details.user.into(),
            event: details.event.into(),
            is_expired: status == TicketStatus::Expired,
            is_paid: status == TicketStatus::Paid,
            is_reserved: status == TicketStatus::Reserved,
            payment: PaymentBody::new(order, provider),
        }
    }

    /// With the client secret of the payment it started.
    pub fn with_client_secret(mut self, client_secret: &str) -> Self {
        self.payment = self.payment.with_client_secret(client_secret);
        self
    }
}

#[derive(Serialize, ToSchema)]
pub struct MyTicketItem {
    id: Uuid,
    event_id: Uuid,
    order_id: Uuid,
    tier_id: Uuid,
    status: TicketStatusBody,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    event_title: String,
    event_start_time: DateTime<Utc>,
    event: TicketEvent,
}

impl MyTicketItem {
    pub fn new(details: TicketDetails, now: DateTime<Utc>) -> Self {
        Self {
            id: details.ticket.id,
            event_id: details.ticket.event_id,
            order_id: details.ticket.order_id,
            tier_id: details.tier.id,
            status: details.ticket.effective_status(now).into(),
            created_at: details.ticket.created_at,
            expires_at: details.ticket.expires_at,
            paid_at: details.ticket.paid_at,
            event_title: details.event.title.clone(),
            event_start_time: details.event.start_time,
            event: details.event.into(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MyTicketsResponse {
    pub tickets: Vec<MyTicketItem>,
    #[serde(flatten)]
    pub page: PageInfo,
}
