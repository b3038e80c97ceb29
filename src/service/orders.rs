//! Orders: several tickets over an event's tiers, placed, paid and cancelled all or nothing.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::tickets::{KeyedWrite, Recorder, placed_or_refused, refuse_deleted_user, refused};
use super::{Action, ReadModel, Resource, ServiceError};
use crate::domain::{
    Change, NewOrder, OrderChange, OrderDetails, OrderFields, OrderOutcome, PageRequest,
    PathSegment, TicketStatus,
};
use crate::store::{BuyerFilter, DynStore, OrderAction, Page, StoreError};

pub struct Orders {
    store: DynStore,
    /// Told of orders that take an event's last seat and of cancellations, so that the
    /// buyer's next search shows them.
    search: Arc<ReadModel>,
    /// How long an order is held before it expires unpaid.
    hold: Duration,
    /// Most tickets in one order.
    max_tickets_per_order: i32,
}

/// What an order write answers: the order, or why not.
pub type OrderAnswer = Result<OrderDetails, ServiceError>;

impl Orders {
    pub fn new(
        store: DynStore,
        search: Arc<ReadModel>,
        hold: Duration,
        max_tickets_per_order: i32,
    ) -> Self {
        Self {
            store,
            search,
            hold,
            max_tickets_per_order,
        }
    }

    /// Places an order all or nothing. `Err`: nothing was done (and nothing recorded for the
    /// key); `Ok`: the answer, recorded with the key when there is one.
    #[tracing::instrument(skip(self, fields, keyed), fields(event_id = %fields.event_id))]
    pub async fn place(
        &self,
        user_id: Uuid,
        fields: OrderFields,
        keyed: Option<KeyedWrite<'_, OrderDetails>>,
    ) -> Result<OrderAnswer, ServiceError> {
        let event_id = fields.event_id;
        let order = NewOrder::parse(fields, user_id, self.max_tickets_per_order, self.hold)?;
        let recorder = Recorder::new(keyed.as_ref(), |outcome: &OrderOutcome| {
            placed(outcome.clone(), event_id)
        });
        let record = recorder.as_ref().map(Recorder::record);
        let outcome = match self.store.place_order(&order, record.as_ref()).await {
            Err(StoreError::ForeignKeyViolation) => return Err(ServiceError::InvalidToken),
            other => other?,
        };
        placed_or_refused(&self.search, &outcome).await;
        Ok(placed(outcome, event_id))
    }

    /// Pays or cancels a reserved order whose hold has not passed (a cancellation puts every
    /// seat back on sale at once); answers as [`Orders::place`] does.
    #[tracing::instrument(skip(self, keyed))]
    pub async fn change(
        &self,
        user_id: Uuid,
        order_id: Uuid,
        action: OrderAction,
        keyed: Option<KeyedWrite<'_, OrderDetails>>,
    ) -> Result<OrderAnswer, ServiceError> {
        let recorder = Recorder::new(keyed.as_ref(), |outcome: &OrderChange| {
            changed(order_id, outcome.clone(), action)
        });
        let record = recorder.as_ref().map(Recorder::record);
        let record = record.as_ref();
        let change = self
            .store
            .change_order(order_id, user_id, action, record)
            .await?;
        refuse_deleted_user(&self.store, user_id, keyed.is_some(), &change).await?;
        if let (OrderAction::Cancel, Change::Done(_)) = (action, &change) {
            self.search.catch_up().await;
        }
        Ok(changed(order_id, change, action))
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
        Ok(self.store.user_orders(&filter).await?)
    }
}

fn placed(outcome: OrderOutcome, event_id: Uuid) -> OrderAnswer {
    match outcome {
        OrderOutcome::Placed { order, .. } => Ok(*order),
        OrderOutcome::Refused(refusal) => Err(refused(refusal, event_id, |line, field| {
            vec![
                PathSegment::Field("items".into()),
                PathSegment::Index(line),
                PathSegment::Field(field.into()),
            ]
        })),
    }
}

fn changed(order_id: Uuid, change: OrderChange, action: OrderAction) -> OrderAnswer {
    let not_owner = match action {
        OrderAction::Pay => Action::PayOrder,
        OrderAction::Cancel => Action::CancelOrder,
    };
    match change {
        Change::Done(details) => Ok(*details),
        Change::NotFound | Change::PartOfOrder(_) => {
            Err(ServiceError::NotFound(Resource::Order, order_id))
        }
        Change::NotOwner => Err(ServiceError::NotOwner(not_owner)),
        Change::Expired if action == OrderAction::Pay => Err(ServiceError::HoldExpired),
        Change::Expired => Err(ServiceError::NotReserved(TicketStatus::Expired)),
        Change::NotReserved(status) => Err(ServiceError::NotReserved(status)),
    }
}
