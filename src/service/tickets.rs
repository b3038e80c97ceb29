//! Ticket life cycle rules around the store's atomic operations.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Action, ReadModel, Resource, ServiceError};
use crate::domain::{
    Change, NewOrder, OrderOutcome, OrderRefusal, PageRequest, PathSegment, TicketChange,
    TicketDetails, TicketStatus, Violations,
};
use crate::store::{
    AnswerRecord, BuyerFilter, DynStore, HeldKey, OrderAction, Page, StoreError, StoredAnswer,
};

pub struct Tickets {
    store: DynStore,
    /// Told of orders that take an event's last seat and of cancellations, so that the
    /// buyer's next search shows them.
    search: Arc<ReadModel>,
    /// How long a reservation is held before it expires unpaid.
    hold: Duration,
}

/// What a ticket write answers: the ticket, or why not.
pub type TicketAnswer = Result<TicketDetails, ServiceError>;

/// A write under an `Idempotency-Key`: the key this request holds, and how the answer (`T`
/// or why not) reads to a client, so that the store records it with the work.
pub struct KeyedWrite<'a, T> {
    pub held: &'a HeldKey,
    pub answer: &'a (dyn Fn(Result<T, ServiceError>) -> StoredAnswer + Send + Sync),
}

/// The answer record a keyed write hands the store: how its outcome `O` reads to a client.
pub(super) struct Recorder<'a, O> {
    held: &'a HeldKey,
    answer: Box<dyn Fn(&O) -> StoredAnswer + Send + Sync + 'a>,
}

impl<'a, O> Recorder<'a, O> {
    /// `None` for an unkeyed write; `result` turns the store's outcome into the service's.
    pub(super) fn new<T>(
        keyed: Option<&'a KeyedWrite<'a, T>>,
        result: impl Fn(&O) -> Result<T, ServiceError> + Send + Sync + 'a,
    ) -> Option<Self> {
        keyed.map(|keyed| Self {
            held: keyed.held,
            answer: Box::new(move |outcome| (keyed.answer)(result(outcome))),
        })
    }

    pub(super) fn record(&self) -> AnswerRecord<'_, O> {
        AnswerRecord {
            held: self.held,
            answer: self.answer.as_ref(),
        }
    }
}

impl Tickets {
    pub fn new(store: DynStore, search: Arc<ReadModel>, hold: Duration) -> Self {
        Self {
            store,
            search,
            hold,
        }
    }

    /// Reserves one ticket of `tier` (or of the first tier on sale): an order of one.
    /// `Err`: nothing was done (and nothing recorded for the key); `Ok`: the answer, recorded
    /// with the key when there is one.
    #[tracing::instrument(skip(self, keyed))]
    pub async fn reserve(
        &self,
        user_id: Uuid,
        event_id: Uuid,
        tier: Option<Uuid>,
        keyed: Option<KeyedWrite<'_, TicketDetails>>,
    ) -> Result<TicketAnswer, ServiceError> {
        let order = NewOrder::one_ticket(user_id, event_id, tier, self.hold);
        let recorder = Recorder::new(keyed.as_ref(), |outcome: &OrderOutcome| {
            reserved(outcome.clone(), event_id)
        });
        let record = recorder.as_ref().map(Recorder::record);
        let outcome = match self.store.place_order(&order, record.as_ref()).await {
            // The event row was read, so the missing reference is the token's user.
            Err(StoreError::ForeignKeyViolation) => return Err(ServiceError::InvalidToken),
            other => other?,
        };
        placed_or_refused(&self.search, &outcome).await;
        Ok(reserved(outcome, event_id))
    }

    /// Pays or cancels a reserved ticket (the order of that one ticket); answers as
    /// [`Tickets::reserve`] does.
    #[tracing::instrument(skip(self, keyed))]
    pub async fn change(
        &self,
        user_id: Uuid,
        ticket_id: Uuid,
        order_action: OrderAction,
        keyed: Option<KeyedWrite<'_, TicketDetails>>,
    ) -> Result<TicketAnswer, ServiceError> {
        let action = match order_action {
            OrderAction::Pay => Action::PayTicket,
            OrderAction::Cancel => Action::CancelTicket,
        };
        let recorder = Recorder::new(keyed.as_ref(), |outcome: &TicketChange| {
            changed(ticket_id, outcome.clone(), action)
        });
        let record = recorder.as_ref().map(Recorder::record);
        let record = record.as_ref();
        let change = self
            .store
            .change_ticket(ticket_id, user_id, order_action, record)
            .await?;
        refuse_deleted_user(&self.store, user_id, keyed.is_some(), &change).await?;
        if let (OrderAction::Cancel, Change::Done(_)) = (order_action, &change) {
            self.search.catch_up().await;
        }
        Ok(changed(ticket_id, change, action))
    }

    pub async fn get(&self, user_id: Uuid, ticket_id: Uuid) -> Result<TicketDetails, ServiceError> {
        let details = self
            .store
            .find_ticket(ticket_id)
            .await?
            .ok_or(ServiceError::NotFound(Resource::Ticket, ticket_id))?;
        if details.ticket.user_id != user_id {
            return Err(ServiceError::NotOwner(Action::ViewTicket));
        }
        Ok(details)
    }

    /// The caller's tickets, newest first; `status` filters on the effective status.
    pub async fn of_user(
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
        Ok(self.store.user_tickets(&filter).await?)
    }
}

/// Counts an order placed or refused for want of seats; an order that took its event's last
/// seat waits (a bounded time) until search shows the event gone, so that the buyer's next
/// search on this server does.
pub(super) async fn placed_or_refused(search: &ReadModel, outcome: &OrderOutcome) {
    match outcome {
        OrderOutcome::Placed { event_sold_out, .. } => {
            metrics::counter!("nearbytix_reservations_total").increment(1);
            if *event_sold_out {
                search.catch_up().await;
            }
        }
        OrderOutcome::Refused(OrderRefusal::NotEnough { .. }) => {
            metrics::counter!("nearbytix_sold_out_total").increment(1);
        }
        OrderOutcome::Refused(_) => {}
    }
}

/// A refusal as a stranger (not found, not the owner) first checks that the caller still
/// exists: a deleted user's token is 401. A keyed request's user existed when it claimed its
/// key, and its answer is already recorded.
pub(super) async fn refuse_deleted_user<T>(
    store: &DynStore,
    user_id: Uuid,
    keyed: bool,
    change: &Change<T>,
) -> Result<(), ServiceError> {
    let as_stranger = matches!(change, Change::NotFound | Change::NotOwner);
    if !keyed && as_stranger && !store.user_exists(user_id).await? {
        return Err(ServiceError::InvalidToken);
    }
    Ok(())
}

/// The one ticket of an order of one, or why the order was refused.
fn reserved(outcome: OrderOutcome, event_id: Uuid) -> TicketAnswer {
    match outcome {
        OrderOutcome::Placed { order, .. } => order.tickets.into_iter().next().ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("an order of one ticket holds none"))
        }),
        OrderOutcome::Refused(refusal) => Err(refused(refusal, event_id, |_, field| {
            vec![PathSegment::Field(field.into())]
        })),
    }
}

/// Why an order was refused; `line_path(n, field)` says where `field` of line `n` is in the
/// request body.
pub(super) fn refused(
    refusal: OrderRefusal,
    event_id: Uuid,
    line_path: impl Fn(usize, &str) -> Vec<PathSegment>,
) -> ServiceError {
    match refusal {
        OrderRefusal::EventNotFound => ServiceError::NotFound(Resource::Event, event_id),
        OrderRefusal::EventStarted => ServiceError::EventStarted,
        OrderRefusal::UnknownTier { line } => {
            let mut violations = Violations::new();
            violations.push_at(line_path(line, "tier_id"), "is not a tier of this event");
            ServiceError::Invalid(violations)
        }
        OrderRefusal::OverTierLimit { line, max } => {
            let path = line_path(line, "quantity");
            let mut violations = Violations::new();
            violations.push_at(
                path,
                format!("at most {max} tickets of this tier per order"),
            );
            ServiceError::Invalid(violations)
        }
        OrderRefusal::SalesNotStarted { tier } => ServiceError::SalesNotStarted(tier),
        OrderRefusal::SalesEnded { tier } => ServiceError::SalesEnded(tier),
        OrderRefusal::NotEnough { short, left } => ServiceError::NotEnough { short, left },
        OrderRefusal::PerPersonLimit { limit } => ServiceError::PerPersonLimit(limit),
    }
}

fn changed(ticket_id: Uuid, change: TicketChange, action: Action) -> TicketAnswer {
    match change {
        TicketChange::Done(details) => Ok(*details),
        TicketChange::NotFound => Err(ServiceError::NotFound(Resource::Ticket, ticket_id)),
        TicketChange::NotOwner => Err(ServiceError::NotOwner(action)),
        TicketChange::Expired if action == Action::PayTicket => Err(ServiceError::HoldExpired),
        TicketChange::Expired => Err(ServiceError::NotReserved(TicketStatus::Expired)),
        TicketChange::NotReserved(status) => Err(ServiceError::NotReserved(status)),
        TicketChange::PartOfOrder(order_id) => Err(ServiceError::PartOfOrder(order_id)),
    }
}
