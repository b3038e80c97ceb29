//! Order writes, each honouring `Idempotency-Key`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::response::OrderResponse;
use crate::api::current_user::BearerUserId;
use crate::api::error::ApiError;
use crate::api::extract::{Input, OwnerCommand, ValidJson, action_segment};
use crate::api::idempotency::{self, IdempotencyKey, KeyTaking, json_answer};
use crate::api::schemas::ErrorBody;
use crate::api::schemas::shared::{
    EventNotFound, Invalid, NotJson, NotYourOrder, OrderNotFound, OrderPath, RateLimited,
    Unauthenticated,
};
use crate::api::state::AppState;
use crate::domain::{OrderFields, PaymentProvider, Violations, WriteOutcome};
use crate::store::{KeyUse, OrderAction};

#[derive(Deserialize, ToSchema)]
pub struct OrderItemRequest {
    tier_id: Uuid,
    /// At least 1, at most the tier's `max_per_order`.
    #[schema(minimum = 1, example = 2)]
    quantity: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct OrderRequest {
    event_id: Uuid,
    /// One item per tier, at most `MAX_TICKETS_PER_ORDER` tickets in all.
    #[schema(min_items = 1)]
    items: Vec<OrderItemRequest>,
}

impl Input for OrderRequest {
    type Valid = OrderFields;

    fn validate(self) -> Result<OrderFields, Violations> {
        Ok(OrderFields {
            event_id: self.event_id,
            items: self
                .items
                .into_iter()
                .map(|item| (item.tier_id, item.quantity))
                .collect(),
        })
    }
}

/// Place an order of one or more tickets over the event's tiers, all or nothing, held for
/// `TICKET_EXPIRATION_TIME` seconds until paid.
#[utoipa::path(
    post, path = "/orders/", tag = "orders",
    security(("bearer" = [])), request_body = OrderRequest, params(IdempotencyKey),
    responses(
        (status = 201, description = "Reserved", body = OrderResponse),
        (status = 409, description = "Not enough tickets (the detail names the tier or the event and what is left), a tier's sales window closed, the per-person limit reached, the event already started, or a request with this Idempotency-Key is still running", body = ErrorBody),
        Unauthenticated, NotJson, Invalid, EventNotFound, RateLimited,
    )
)]
pub async fn place_order(
    State(state): State<AppState>,
    BearerUserId(user_id): BearerUserId,
    headers: HeaderMap,
    ValidJson(fields): ValidJson<OrderRequest>,
) -> Result<Response, ApiError> {
    // What the order asks for, as sent (its rules are checked later): at most 100 count.
    let tickets = fields
        .items
        .iter()
        .map(|(_, quantity)| (*quantity).clamp(0, 100));
    state
        .user_limits
        .reserve(user_id, tickets.sum::<i64>().min(100) as u32)?;
    let fingerprint = order_fingerprint(&fields);
    let orders = &state.orders;
    let place = |key: Option<KeyUse>| {
        let fields = fields.clone();
        async move {
            let order = orders.place(user_id, fields, key.as_ref()).await?;
            Ok(WriteOutcome::Order(Box::new(order)))
        }
    };
    let answer = order_answer(StatusCode::CREATED, state.orders.provider());
    let (keys, taking) = (&state.idempotency, KeyTaking::InTheWrite);
    idempotency::run(keys, user_id, &headers, &fingerprint, taking, place, answer).await
}

/// What an order request is, for `Idempotency-Key`.
fn order_fingerprint(fields: &OrderFields) -> String {
    let mut fingerprint = format!("POST /orders/ {}", fields.event_id);
    for (tier_id, quantity) in &fields.items {
        fingerprint.push_str(&format!(" {tier_id}x{quantity}"));
    }
    fingerprint
}

/// Pay for a reserved order (owner only) before its hold expires: every ticket is paid.
#[utoipa::path(
    post, path = "/orders/{order_id}/pay", tag = "orders",
    security(("bearer" = [])), params(OrderPath, IdempotencyKey),
    responses(
        (status = 200, description = "Paid (with PAYMENT_PROVIDER=stripe: free, or Stripe says the payment succeeded)", body = OrderResponse),
        (status = 202, description = "PAYMENT_PROVIDER=stripe: a payment started or goes on, the order still reserved (its hold extended); the browser confirms it with `payment.client_secret`, and `paid` follows from Stripe's webhook", body = OrderResponse),
        (status = 409, description = "Not reserved (already paid or cancelled), Stripe refused to start the payment, or the order started as many payments as it may", body = ErrorBody),
        (status = 410, description = "The hold expired", body = ErrorBody),
        (status = 503, description = "Stripe unreachable; nothing changed (Retry-After)", body = ErrorBody),
        Unauthenticated, Invalid, OrderNotFound, NotYourOrder, RateLimited,
    )
)]
pub async fn pay_order(command: OwnerCommand) -> Result<Response, ApiError> {
    change_order(command, OrderAction::Pay).await
}

/// Cancel a reserved order (owner only); every seat goes back on sale at once.
#[utoipa::path(
    post, path = "/orders/{order_id}/cancel", tag = "orders",
    security(("bearer" = [])), params(OrderPath, IdempotencyKey),
    responses(
        (status = 200, description = "Cancelled (a payment started is cancelled at Stripe first)", body = OrderResponse),
        (status = 409, description = "Not reserved (paid, expired or cancelled), or its payment succeeded or is processing at Stripe", body = ErrorBody),
        (status = 503, description = "Stripe unreachable; nothing changed (Retry-After)", body = ErrorBody),
        Unauthenticated, Invalid, OrderNotFound, NotYourOrder,
    )
)]
pub async fn cancel_order(command: OwnerCommand) -> Result<Response, ApiError> {
    change_order(command, OrderAction::Cancel).await
}

/// Refund a paid order (the event's creator only, also after the event started): the order
/// and its tickets are cancelled, the money given back (with no payment provider: recorded
/// only) and every seat goes back on sale.
#[utoipa::path(
    post, path = "/orders/{order_id}/refund", tag = "orders",
    security(("bearer" = [])), params(OrderPath, IdempotencyKey),
    responses(
        (status = 200, description = "Refunded: cancelled, payment refunded", body = OrderResponse),
        (status = 403, description = "Not the creator of the order's event (the buyer neither)", body = ErrorBody),
        (status = 409, description = "Not paid (reserved, expired, cancelled, or refunded already), or Stripe refused the refund", body = ErrorBody),
        (status = 503, description = "Stripe unreachable; nothing changed (Retry-After)", body = ErrorBody),
        Unauthenticated, Invalid, OrderNotFound,
    )
)]
pub async fn refund_order(command: OwnerCommand) -> Result<Response, ApiError> {
    change_order(command, OrderAction::Refund).await
}

async fn change_order(command: OwnerCommand, action: OrderAction) -> Result<Response, ApiError> {
    let OwnerCommand {
        state,
        user_id,
        id: order_id,
        headers,
    } = command;
    let (orders, limits) = (&state.orders, &state.user_limits);
    // Not for a replay: the limit is on pays done (each may call the payment provider).
    let apply = |key: Option<KeyUse>| async move {
        if action == OrderAction::Pay {
            limits.pay(user_id)?;
        }
        let key = key.as_ref().map(KeyUse::held);
        orders.change(user_id, order_id, action, key).await
    };
    let fingerprint = format!("POST /orders/{order_id}/{}", action_segment(action));
    let answer = order_answer(StatusCode::OK, state.orders.provider());
    let (keys, taking) = (&state.idempotency, KeyTaking::Before);
    idempotency::run(keys, user_id, &headers, &fingerprint, taking, apply, answer).await
}

/// How an order write answers, live and on replay: `success` with the order as the write left
/// it, shown as of the write's own time.
fn order_answer(
    success: StatusCode,
    provider: PaymentProvider,
) -> impl Fn(&WriteOutcome) -> Result<Response, ApiError> {
    move |outcome| match outcome {
        WriteOutcome::Order(order) => {
            let at = order.order.updated_at;
            json_answer(
                success,
                &OrderResponse::new(order.as_ref().clone(), at, provider),
            )
        }
        WriteOutcome::PaymentStarted {
            order,
            client_secret,
        } => {
            let at = order.order.updated_at;
            let shown = OrderResponse::new(order.as_ref().clone(), at, provider);
            json_answer(
                StatusCode::ACCEPTED,
                &shown.with_client_secret(client_secret),
            )
        }
        // A key answers only the request it was taken for (the path is in its fingerprint).
        other => Err(idempotency::not_this_write(other)),
    }
}
