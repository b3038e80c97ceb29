//! Orders: several tickets over an event's tiers, placed, paid and cancelled all or nothing.
//! The one-ticket endpoints are a thin adapter over the same flow: a reservation is an order of
//! one, and a ticket is paid or cancelled through its order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::payments::{Handled, Payments};
use super::recent::Recent;
use super::{Action, Availability, Bulkhead, ReadModel, Resource, ServiceError};
use crate::domain::{
    Change, NewOrder, Order, OrderDetails, OrderFields, OrderOutcome, OrderRefusal, PageRequest,
    PathSegment, PaymentStatus, TicketDetails, TicketStatus, Violations, WriteOutcome,
};
use crate::store::{BuyerFilter, DynStore, HeldKey, KeyUse, OrderAction, Page, StoreError};

pub struct Orders {
    store: DynStore,
    /// Told of orders that take an event's last seat and of cancellations, so that the
    /// buyer's next search shows them.
    search: Arc<ReadModel>,
    /// Told of every order placed, cancelled or refunded, before its answer: the event's
    /// availability streams in this process then show it.
    availability: Arc<Availability>,
    /// Where paying, cancelling and refunding go through the payment provider.
    payments: Arc<Payments>,
    /// How long an order is held before it expires unpaid.
    hold: Duration,
    /// Most tickets in one order.
    max_tickets_per_order: i32,
    /// A buyer's pages of orders or tickets (up to 1 000 rows each) share the listings' bound.
    expensive_reads: Arc<Bulkhead>,
    /// Buyers whose account was seen to exist a moment ago: a refused order (often answered
    /// from memory, under a sold-out storm) checks its buyer at most once a second.
    buyers_seen: Recent<()>,
}

/// How long a buyer's account is taken to exist after a read found it.
const BUYER_SEEN_FOR: Duration = Duration::from_secs(1);
/// Most buyers remembered at once.
const MAX_BUYERS_SEEN: usize = 100_000;

/// Where the fields of an order's lines are in the request that asked for it.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// `POST /orders/`: `items[n].field`.
    Order,
    /// `POST /tickets/`: one line, its fields at the top.
    Ticket,
}

impl Orders {
    pub fn new(
        store: DynStore,
        search: Arc<ReadModel>,
        availability: Arc<Availability>,
        payments: Arc<Payments>,
        hold: Duration,
        max_tickets_per_order: i32,
        expensive_reads: Arc<Bulkhead>,
    ) -> Self {
        Self {
            store,
            search,
            availability,
            payments,
            hold,
            max_tickets_per_order,
            expensive_reads,
            buyers_seen: Recent::new(BUYER_SEEN_FOR, MAX_BUYERS_SEEN),
        }
    }

    /// Who takes the money of the orders placed now.
    pub fn provider(&self) -> crate::domain::PaymentProvider {
        self.payments.provider()
    }

    /// Places an order all or nothing. With a `key`, the placed order is recorded on it in the
    /// same transaction; a refusal records nothing.
    #[tracing::instrument(skip(self, fields, key), fields(event_id = %fields.event_id))]
    pub async fn place(
        &self,
        user_id: Uuid,
        fields: OrderFields,
        key: Option<&KeyUse>,
    ) -> Result<OrderDetails, ServiceError> {
        let order = NewOrder::parse(fields, user_id, self.max_tickets_per_order, self.hold)?;
        self.place_order(&order, key, Asked::Order).await
    }

    /// Reserves one ticket of `tier` (or of the first tier on sale): an order of one.
    #[tracing::instrument(skip(self, key))]
    pub async fn reserve_ticket(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        tier: Option<Uuid>,
        key: Option<&KeyUse>,
    ) -> Result<OrderDetails, ServiceError> {
        let order = NewOrder::one_ticket(user_id, event_id, tier, self.hold);
        self.place_order(&order, key, Asked::Ticket).await
    }

    async fn place_order(
        &self,
        order: &NewOrder,
        key: Option<&KeyUse>,
        asked: Asked,
    ) -> Result<OrderDetails, ServiceError> {
        let outcome = match self.store.place_order(order, key).await {
            // The event row was read, so the missing reference is the token's user.
            Err(StoreError::ForeignKeyViolation) => return Err(ServiceError::InvalidToken),
            other => other?,
        };
        match outcome {
            OrderOutcome::Placed {
                order,
                event_sold_out,
            } => {
                metrics::counter!("nearbytix_reservations_total").increment(1);
                self.availability.touched(order.order.event_id);
                // The buyer's next search on this server must not show the event.
                if event_sold_out {
                    self.search.catch_up().await;
                }
                Ok(*order)
            }
            OrderOutcome::Refused(refusal) => {
                if matches!(refusal, OrderRefusal::NotEnough { .. }) {
                    metrics::counter!("nearbytix_sold_out_total").increment(1);
                }
                // A refused order wrote nothing that would have found a deleted account.
                let refusal = refused(refusal, order.event_id, asked);
                Err(self.refused_buyer(order.user_id, refusal).await)
            }
        }
    }

    /// Pays or cancels a reserved order whose hold has not passed, or (its event's creator)
    /// refunds a paid one; a cancellation or refund puts every seat back on sale at once. With
    /// a `key`, the changed order is recorded on it. With Stripe, paying starts a payment
    /// ([`WriteOutcome::PaymentStarted`]) that a webhook completes.
    #[tracing::instrument(skip(self, key))]
    pub async fn change(
        &self,
        user_id: Uuid,
        order_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> Result<WriteOutcome, ServiceError> {
        let change = self.change_order(user_id, order_id, action, key).await?;
        let not_owner = match action {
            OrderAction::Pay => Action::PayOrder,
            OrderAction::Cancel => Action::CancelOrder,
            OrderAction::Refund => Action::RefundOrder,
        };
        changed(change, action, || ServiceError::NotOwner(not_owner))
            .map_err(|refusal| refusal.unwrap_or(ServiceError::NotFound(Resource::Order, order_id)))
    }

    /// Pays or cancels a reserved ticket through its order, which must hold only that ticket;
    /// answers the order (its one ticket is the one asked for).
    #[tracing::instrument(skip(self, key))]
    pub async fn change_ticket(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> Result<WriteOutcome, ServiceError> {
        let not_owner = match action {
            OrderAction::Pay => Action::PayTicket,
            OrderAction::Cancel => Action::CancelTicket,
            // The ticket path checks the buyer; a refund is the organiser's, on the order.
            OrderAction::Refund => {
                let wrong_path = anyhow::anyhow!("a ticket is refunded through its order");
                return Err(ServiceError::Internal(wrong_path));
            }
        };
        let not_found = ServiceError::NotFound(Resource::Ticket, ticket_id);
        let Some(of) = self.store.ticket_order(ticket_id).await? else {
            return Err(self.as_stranger(user_id, not_found).await);
        };
        if of.user_id != user_id {
            return Err(self
                .as_stranger(user_id, ServiceError::NotOwner(not_owner))
                .await);
        }
        if of.tickets > 1 {
            return Err(ServiceError::PartOfOrder(of.order_id));
        }
        let change = self.change_order(user_id, of.order_id, action, key).await?;
        changed(change, action, || ServiceError::NotOwner(not_owner))
            .map_err(|refusal| refusal.unwrap_or(not_found))
    }

    async fn change_order(
        &self,
        user_id: Uuid,
        order_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> Result<Change<WriteOutcome>, ServiceError> {
        let change = match self.payments.change(user_id, order_id, action, key).await? {
            Handled::Done(outcome) => Change::Done(Box::new(outcome)),
            Handled::Refused(refusal) => refusal.map(|order| Box::new(WriteOutcome::Order(order))),
            Handled::Ordinary => {
                let change = self
                    .store
                    .change_order(order_id, user_id, action, key)
                    .await?;
                if let (Change::Done(order), OrderAction::Pay) = (&change, action) {
                    if order.order.payment.status == PaymentStatus::Succeeded {
                        metrics::counter!("nearbytix_payments_started_total", "provider" => "none")
                            .increment(1);
                    }
                }
                change.map(|order| Box::new(WriteOutcome::Order(order)))
            }
        };
        // A payment may re-reserve a lapsed order's seats; a cancellation or refund gives them
        // back.
        if let Change::Done(outcome) = &change
            && let WriteOutcome::Order(order) | WriteOutcome::PaymentStarted { order, .. } =
                outcome.as_ref()
        {
            self.availability.touched(order.order.event_id);
        }
        match (&change, action) {
            // Refused as a stranger: a deleted account's token is refused as such.
            (Change::NotFound | Change::NotOwner, _)
                if !self.store.user_exists(user_id).await? =>
            {
                return Err(ServiceError::InvalidToken);
            }
            (Change::Done(_), OrderAction::Cancel | OrderAction::Refund) => {
                if action == OrderAction::Refund {
                    metrics::counter!("nearbytix_payment_outcomes_total", "outcome" => "refunded")
                        .increment(1);
                }
                // The seats are back: the caller's next search on this server shows them.
                self.search.catch_up().await;
            }
            _ => {}
        }
        Ok(change)
    }

    /// `refusal` of an order, unless the buyer's account is gone (401), as a read at most
    /// [`BUYER_SEEN_FOR`] old says; when the database cannot tell, the refusal.
    async fn refused_buyer(&self, user_id: Uuid, refusal: ServiceError) -> ServiceError {
        if self.buyers_seen.get(user_id).is_some() {
            return refusal;
        }
        let read_at = Instant::now();
        match self.store.user_exists(user_id).await {
            Ok(false) => ServiceError::InvalidToken,
            Ok(true) => {
                self.buyers_seen.keep(user_id, (), read_at);
                refusal
            }
            Err(_) => refusal,
        }
    }

    /// `refusal` for a caller treated as a stranger (not found, not the owner), unless the
    /// caller's account is gone: then its token is invalid (401).
    async fn as_stranger(&self, user_id: Uuid, refusal: ServiceError) -> ServiceError {
        match self.store.user_exists(user_id).await {
            Ok(false) => ServiceError::InvalidToken,
            Ok(true) => refusal,
            Err(error) => error.into(),
        }
    }

    pub async fn get(&self, user_id: Uuid, order_id: Uuid) -> Result<OrderDetails, ServiceError> {
        let details = self
            .store
            .find_order(order_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Order, order_id))?;
        if details.order.user_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewOrder));
        }
        Ok(details)
    }

    pub async fn ticket(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<(TicketDetails, Order), ServiceError> {
        let not_found = || ServiceError::NotFound(Resource::Ticket, ticket_id);
        let details = self
            .store
            .find_ticket(ticket_id)
            .await?
            .ok_or_else(not_found)?;
        if details.ticket.user_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewTicket));
        }
        // Its order, for the payment every ticket answer shows.
        let order = self
            .store
            .find_order(details.ticket.order_id)
            .await?
            .ok_or_else(not_found)?;
        Ok((details, order.order))
    }

    /// The caller's orders, newest first; `status` filters on the effective status.
    pub async fn of_user(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        page: PageRequest,
    ) -> Result<Page<OrderDetails>, ServiceError> {
        let filter = BuyerFilter {
            user_id,
            status,
            page,
        };
        let _running = self.expensive_reads.enter().await?;
        Ok(self.store.user_orders(&filter).await?)
    }

    /// The caller's tickets, newest first; `status` filters on the effective status.
    pub async fn tickets_of_user(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        page: PageRequest,
    ) -> Result<Page<TicketDetails>, ServiceError> {
        let filter = BuyerFilter {
            user_id,
            status,
            page,
        };
        let _running = self.expensive_reads.enter().await?;
        Ok(self.store.user_tickets(&filter).await?)
    }
}

/// Why an order was refused, with each line's fields where `asked` put them.
fn refused(refusal: OrderRefusal, event_id: Uuid, asked: Asked) -> ServiceError {
    let line_path = |line: usize, field: &str| match asked {
        Asked::Order => vec![
            PathSegment::Field("items".into()),
            PathSegment::Index(line),
            PathSegment::Field(field.into()),
        ],
        Asked::Ticket => vec![PathSegment::Field(field.into())],
    };
    let invalid = |line, field, message: String| {
        let mut violations = Violations::new();
        violations.push_at(line_path(line, field), message);
        ServiceError::Invalid(violations)
    };
    match refusal {
        OrderRefusal::EventNotFound => ServiceError::NotFound(Resource::Event, event_id),
        OrderRefusal::EventStarted => ServiceError::EventStarted,
        OrderRefusal::UnknownTier { line } => {
            invalid(line, "tier_id", "is not a tier of this event".into())
        }
        OrderRefusal::OverTierLimit { line, max } => invalid(
            line,
            "quantity",
            format!("at most {max} tickets of this tier per order"),
        ),
        OrderRefusal::SalesNotStarted { tier } => ServiceError::SalesNotStarted(tier),
        OrderRefusal::SalesEnded { tier } => ServiceError::SalesEnded(tier),
        OrderRefusal::NotEnough { short, left } => ServiceError::NotEnough { short, left },
        OrderRefusal::PerPersonLimit { limit } => ServiceError::PerPersonLimit(limit),
    }
}

/// What the change did, or why not (`None`: not found, which the caller names).
fn changed(
    change: Change<WriteOutcome>,
    action: OrderAction,
    not_owner: impl FnOnce() -> ServiceError,
) -> Result<WriteOutcome, Option<ServiceError>> {
    match change {
        Change::Done(details) => Ok(*details),
        Change::NotFound => Err(None),
        Change::NotOwner => Err(Some(not_owner())),
        Change::Expired if action == OrderAction::Refund => {
            Err(Some(ServiceError::NotPaid(TicketStatus::Expired)))
        }
        Change::NotReserved(status) if action == OrderAction::Refund => {
            Err(Some(ServiceError::NotPaid(status)))
        }
        Change::Expired if action == OrderAction::Pay => Err(Some(ServiceError::HoldExpired)),
        Change::Expired => Err(Some(ServiceError::NotReserved(TicketStatus::Expired))),
        Change::NotReserved(status) => Err(Some(ServiceError::NotReserved(status))),
    }
}
