//! A small client of Stripe's HTTP API: form-encoded requests, an `Idempotency-Key` on every
//! create, a bound on calls in flight and on each call's time. Only what the payment flow uses:
//! PaymentIntents (create, retrieve, cancel) and refunds (create, list).
//!
//! Hand-written over `reqwest` rather than a Stripe crate: the five calls are a few lines each,
//! while the maintained crates (`async-stripe`) generate the whole API and cost minutes of
//! compile time per build.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Where and how to reach Stripe (its `Debug` redacts the key).
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: SecretString,
    /// `https://api.stripe.com`, or a fake such as localstripe; `/v1/…` is appended.
    pub api_base: String,
    /// Longest one call may take.
    pub timeout: Duration,
    /// Calls in flight at once; past it a call fails at once as unavailable.
    pub max_concurrency: usize,
}

/// The Stripe API version the client is written against: answers keep this shape whatever the
/// account's default version.
const API_VERSION: &str = "2024-06-20";

/// Why a call to Stripe did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request itself (400 invalid, 402 declined, 404 unknown object):
    /// sending it again will not help.
    #[error("Stripe refused: {message}")]
    Refused { status: u16, message: String },
    /// No answer to act on: unreachable, too slow, a server error, our key refused, Stripe's
    /// rate limit or a conflicting request in flight, or too many calls of ours in flight.
    #[error("Stripe unavailable: {0}")]
    Unavailable(String),
}

/// A PaymentIntent, as far as the payment flow reads it (its `Debug` hides the client secret).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Intent {
    pub id: String,
    /// `requires_payment_method`, `requires_confirmation`, `requires_action`, `processing`,
    /// `requires_capture`, `canceled` or `succeeded`.
    pub status: String,
    pub amount: i64,
    /// Lower case, as Stripe writes it.
    pub currency: String,
    /// Present when the secret key reads it; never logged.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
}

impl std::fmt::Debug for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intent")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .field("last_payment_error", &self.last_payment_error)
            .finish_non_exhaustive()
    }
}

impl Intent {
    /// Why the last attempt failed (`card_declined`), if it did.
    pub fn failure_code(&self) -> Option<&str> {
        self.last_payment_error.as_ref()?.code.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentError {
    #[serde(default)]
    pub code: Option<String>,
}

/// A refund of (part of) an intent's charge.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    /// `pending`, `succeeded`, `failed` or `canceled`.
    pub status: String,
}

#[derive(Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

pub struct StripeClient {
    http: reqwest::Client,
    settings: StripeSettings,
    in_flight: Semaphore,
}

impl StripeClient {
    pub fn new(settings: StripeSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()?;
        Ok(Self {
            http,
            in_flight: Semaphore::new(settings.max_concurrency),
            settings,
        })
    }

    /// Creates the PaymentIntent of an order: exactly the fields the contract names, with
    /// `key` as the `Idempotency-Key` (a retry reuses Stripe's object).
    pub async fn create_intent(
        &self,
        amount_minor: i64,
        currency: &str,
        order_id: Uuid,
        event_id: Uuid,
        key: &str,
    ) -> Result<Intent, StripeError> {
        let form = [
            ("amount", amount_minor.to_string()),
            ("currency", currency.to_lowercase()),
            ("payment_method_types[0]", "card".to_owned()),
            ("metadata[order_id]", order_id.to_string()),
            ("metadata[event_id]", event_id.to_string()),
        ];
        let request = self
            .http
            .post(self.url("/v1/payment_intents"))
            .header("Idempotency-Key", key)
            .form(&form);
        self.send("create_intent", request).await
    }

    pub async fn retrieve_intent(&self, intent_id: &str) -> Result<Intent, StripeError> {
        let path = format!("/v1/payment_intents/{}", path_id(intent_id)?);
        let request = self.http.get(self.url(&path));
        self.send("retrieve_intent", request).await
    }

    pub async fn cancel_intent(&self, intent_id: &str) -> Result<Intent, StripeError> {
        let path = format!("/v1/payment_intents/{}/cancel", path_id(intent_id)?);
        let request = self.http.post(self.url(&path));
        self.send("cancel_intent", request).await
    }

    /// Refunds `amount_minor` of an intent's charge, with `key` as the `Idempotency-Key`.
    pub async fn create_refund(
        &self,
        intent_id: &str,
        amount_minor: i64,
        order_id: Uuid,
        key: &str,
    ) -> Result<Refund, StripeError> {
        let form = [
            ("payment_intent", intent_id.to_owned()),
            ("amount", amount_minor.to_string()),
            ("metadata[order_id]", order_id.to_string()),
        ];
        let request = self
            .http
            .post(self.url("/v1/refunds"))
            .header("Idempotency-Key", key)
            .form(&form);
        self.send("create_refund", request).await
    }

    /// The refunds made of an intent's charge (up to 100: a charge is refunded once or a few
    /// times).
    pub async fn list_refunds(&self, intent_id: &str) -> Result<Vec<Refund>, StripeError> {
        let request = self
            .http
            .get(self.url("/v1/refunds"))
            .query(&[("payment_intent", intent_id), ("limit", "100")]);
        let list: List<Refund> = self.send("list_refunds", request).await?;
        Ok(list.data)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base.trim_end_matches('/'))
    }

    /// Sends `request` under the bound on calls in flight, and reads its answer; every call is
    /// counted by operation and result.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, StripeError> {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            count(operation, "unreachable");
            return Err(StripeError::Unavailable("too many calls in flight".into()));
        };
        let started = Instant::now();
        let sent = request
            .basic_auth(self.settings.secret_key.expose_secret(), None::<&str>)
            .header("Stripe-Version", API_VERSION)
            .send()
            .await;
        metrics::histogram!("nearbytix_stripe_request_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let result = if error.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                };
                count(operation, result);
                // Without the URL: it names no secret, but says nothing the operation does not.
                return Err(StripeError::Unavailable(error.without_url().to_string()));
            }
        };
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            let result = if error.is_timeout() {
                "timeout"
            } else {
                "unreachable"
            };
            count(operation, result);
            StripeError::Unavailable(error.without_url().to_string())
        })?;
        if matches!(status.as_u16(), 400 | 402 | 404) {
            count(operation, "client_error");
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|body| body.error.message)
                .unwrap_or_else(|| status.to_string());
            return Err(StripeError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        if !status.is_success() {
            let result = if status.is_client_error() {
                "client_error"
            } else {
                "server_error"
            };
            count(operation, result);
            return Err(StripeError::Unavailable(format!(
                "Stripe answered {status}"
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|error| {
                count(operation, "server_error");
                StripeError::Unavailable(format!("an answer that is not what was asked: {error}"))
            })
            .inspect(|_| count(operation, "ok"))
    }
}

/// `id` as a path segment: Stripe's ids are letters, digits and underscores.
fn path_id(id: &str) -> Result<&str, StripeError> {
    let plain = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(id)
    } else {
        Err(StripeError::Refused {
            status: 400,
            message: "not a Stripe id".into(),
        })
    }
}

fn count(operation: &'static str, result: &'static str) {
    metrics::counter!(
        "nearbytix_stripe_requests_total",
        "operation" => operation,
        "result" => result
    )
    .increment(1);
}
