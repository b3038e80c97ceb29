//! Payments over HTTP: how an order's payment is shown (in order and ticket answers alike),
//! and Stripe's webhook.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::schemas::ErrorBody;
use super::state::AppState;
use crate::domain::{Order, PaymentProvider, PaymentStatus};
use crate::service::Payments;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stripe_webhook))
}

/// What a webhook did: `applied` (the state changed), `duplicate` (its id was seen before),
/// `ignored` (nothing to do).
#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    received: bool,
    #[schema(example = "applied")]
    outcome: &'static str,
}

/// Stripe's webhook (no bearer; 404 when `PAYMENT_PROVIDER` is `none`). Register it in Stripe
/// for `payment_intent.succeeded`, `payment_intent.payment_failed`, `payment_intent.canceled`
/// and `charge.refunded`; it is checked with `STRIPE_WEBHOOK_SECRET` over the body as sent.
#[utoipa::path(
    post, path = "/payments/stripe/webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex>[,v1=…]")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event, at most 64 KiB"),
    responses(
        (status = 200, description = "Received", body = WebhookAnswer),
        (status = 400, description = "Invalid signature, or a signed body that is not a Stripe event", body = ErrorBody),
        (status = 404, description = "No payment provider takes webhooks", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "A refund owed could not be made now (it is retried); Retry-After", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    State(payments): State<Arc<Payments>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, ApiError> {
    if payments.provider() != PaymentProvider::Stripe {
        return Err(ApiError::NotFound(
            "This server takes no payments through Stripe (PAYMENT_PROVIDER is none)".into(),
        ));
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    let outcome = payments.webhook(signature, &body).await?;
    Ok(Json(WebhookAnswer {
        received: true,
        outcome: outcome.as_str(),
    }))
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
    /// What the browser confirms the payment with (Stripe.js): in the answer of a pay that
    /// started or goes on with a payment (202) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl PaymentBody {
    /// With the intent's client secret, for the answer of a pay that started a payment.
    pub fn with_client_secret(mut self, client_secret: &str) -> Self {
        self.client_secret = Some(client_secret.to_owned());
        self
    }
}

impl PaymentBody {
    /// `order`'s payment; one not started (nothing taken) names the `configured` provider, the
    /// one that will take it.
    pub fn new(order: &Order, configured: PaymentProvider) -> Self {
        let payment = &order.payment;
        let provider = match payment.status {
            PaymentStatus::None => configured,
            _ => payment.provider,
        };
        Self {
            provider: match provider {
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
            client_secret: None,
        }
    }
}
