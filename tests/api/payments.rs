//! Payments through Stripe against localstripe, a real (fake but stateful) Stripe server:
//! `STRIPE_TEST_API_BASE`, by default `http://127.0.0.1:8420`. Without it the tests are
//! skipped, except under CI=true, where a missing localstripe is a failure. The app's webhook
//! endpoint is registered with localstripe, which signs and sends its events as Stripe does;
//! the browser's part (Stripe.js confirming the intent with a card) is done over the same API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use nearbytix::config::Settings;
use nearbytix::payments::signature::{self, SignatureError};
use nearbytix::payments::stripe::{StripeClient, StripeError, StripeSettings};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser};
use crate::process_support::Process;

const SECRET_KEY: &str = "sk_test_nearbytix";

/// localstripe's base URL when it answers.
async fn localstripe() -> Option<String> {
    let base = std::env::var("STRIPE_TEST_API_BASE")
        .unwrap_or_else(|_| "http://127.0.0.1:8420".to_owned());
    let probe = reqwest::Client::new()
        .get(format!("{base}/v1/customers"))
        .basic_auth(SECRET_KEY, None::<&str>)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    match probe {
        Ok(answer) if answer.status().is_success() => Some(base),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but localstripe does not answer at {base}: payment tests must run")
        }
        _ => {
            eprintln!("skipping: localstripe does not answer at {base} (pip install localstripe)");
            None
        }
    }
}

fn client(base: &str, max_concurrency: usize) -> StripeClient {
    StripeClient::new(StripeSettings {
        secret_key: SecretString::from(SECRET_KEY.to_owned()),
        api_base: base.to_owned(),
        timeout: Duration::from_secs(5),
        max_concurrency,
    })
    .expect("client")
}

/// What Stripe.js does in the browser with a card: a payment method, set on the intent, which
/// is then confirmed; the answer of the confirmation. (localstripe has no client-side
/// confirmation: the secret key stands in for the publishable key and the client secret.)
async fn confirm_with_card(base: &str, intent_id: &str, card: &str) -> Value {
    let http = reqwest::Client::new();
    let method: Value = http
        .post(format!("{base}/v1/payment_methods"))
        .basic_auth(SECRET_KEY, None::<&str>)
        .form(&[
            ("type", "card"),
            ("card[number]", card),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2030"),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let method = method["id"].as_str().expect("a payment method").to_owned();
    let intent = format!("{base}/v1/payment_intents/{intent_id}");
    let attached = http
        .post(&intent)
        .basic_auth(SECRET_KEY, None::<&str>)
        .form(&[("payment_method", method.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        attached.status().is_success(),
        "{}",
        attached.text().await.unwrap()
    );
    http.post(format!("{intent}/confirm"))
        .basic_auth(SECRET_KEY, None::<&str>)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The client creates, reads, cancels and refunds through the real HTTP API; a declined card
/// leaves its code on the intent; Stripe's refusals and absence are told apart.
#[tokio::test]
async fn the_stripe_client_drives_intents_and_refunds() {
    let Some(base) = localstripe().await else {
        return;
    };
    let stripe = client(&base, 8);
    let (order, event) = (Uuid::new_v4(), Uuid::new_v4());
    let key = format!("nearbytix-pi-{order}-1");
    let intent = stripe
        .create_intent(2500, "NGN", order, event, &key)
        .await
        .expect("intent");
    assert_eq!((intent.amount, intent.currency.as_str()), (2500, "ngn"));
    assert_eq!(intent.status, "requires_payment_method");
    assert!(intent.client_secret.is_some());

    let confirmed = confirm_with_card(&base, &intent.id, "4242424242424242").await;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let read = stripe.retrieve_intent(&intent.id).await.expect("retrieve");
    assert_eq!(
        (read.status.as_str(), read.failure_code()),
        ("succeeded", None)
    );

    let refund = stripe
        .create_refund(
            &intent.id,
            2500,
            order,
            &format!("nearbytix-refund-{}", intent.id),
        )
        .await
        .expect("refund");
    assert_eq!(refund.amount, 2500);
    let refunds = stripe.list_refunds(&intent.id).await.expect("refunds");
    assert_eq!(
        refunds.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [refund.id.as_str()]
    );

    let declined = stripe
        .create_intent(
            1000,
            "usd",
            order,
            event,
            &format!("nearbytix-pi-{order}-2"),
        )
        .await
        .expect("intent");
    confirm_with_card(&base, &declined.id, "4000000000000341").await;
    let read = stripe
        .retrieve_intent(&declined.id)
        .await
        .expect("retrieve");
    assert_eq!(read.failure_code(), Some("card_declined"), "{read:?}");
    let cancelled = stripe.cancel_intent(&declined.id).await.expect("cancel");
    assert_eq!(cancelled.status, "canceled");

    match stripe.retrieve_intent("pi_does_not_exist").await {
        Err(StripeError::Refused { status: 404, .. }) => {}
        other => panic!("an unknown intent is refused: {other:?}"),
    }
    match client(&base, 0).retrieve_intent(&intent.id).await {
        Err(StripeError::Unavailable(_)) => {}
        other => panic!("no call past the bound in flight: {other:?}"),
    }
    match client("http://127.0.0.1:9", 8)
        .retrieve_intent(&intent.id)
        .await
    {
        Err(StripeError::Unavailable(_)) => {}
        other => panic!("an unreachable Stripe is unavailable: {other:?}"),
    }
}

/// localstripe signs its webhooks as Stripe does; the verifier takes them, and refuses them
/// with another secret or body.
#[tokio::test]
async fn localstripe_webhooks_verify_with_the_endpoint_secret() {
    let Some(base) = localstripe().await else {
        return;
    };
    let (deliveries, mut delivered) = mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let deliveries = deliveries.clone();
            async move {
                let _ = deliveries.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    receive_webhooks_at(&base, format!("http://127.0.0.1:{port}/hook")).await;
    let secret = WEBHOOK_SECRET.to_owned();

    let stripe = client(&base, 8);
    let order = Uuid::new_v4();
    let intent = stripe
        .create_intent(
            700,
            "usd",
            order,
            Uuid::new_v4(),
            &format!("nearbytix-pi-{order}-1"),
        )
        .await
        .expect("intent");
    confirm_with_card(&base, &intent.id, "4242424242424242").await;
    // Every registered endpoint gets every event: wait for this intent's.
    let (headers, body) = loop {
        let (headers, body) = tokio::time::timeout(Duration::from_secs(10), delivered.recv())
            .await
            .expect("a webhook within 10 s")
            .expect("the receiver runs");
        let event: Value = serde_json::from_slice(&body).unwrap();
        if event["data"]["object"]["id"] == intent.id.as_str() {
            assert_eq!(event["type"], "payment_intent.succeeded");
            break (headers, body);
        }
    };
    let header = headers["stripe-signature"].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let secrets = [SecretString::from(secret)];
    assert_eq!(signature::verify(header, &body, &secrets, now, 300), Ok(()));
    let others = [SecretString::from("whsec_other".to_owned())];
    assert_eq!(
        signature::verify(header, &body, &others, now, 300),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = body.to_vec();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        signature::verify(header, &tampered, &secrets, now, 300),
        Err(SignatureError::Mismatch)
    );
}

backend_tests!(
    a_card_payment_goes_from_intent_to_paid_by_webhook,
    a_declined_card_can_be_retried_with_a_new_intent,
    webhooks_need_a_valid_signature_and_apply_once,
    a_late_payment_takes_its_seats_again_or_is_refunded,
    the_reconciler_pays_an_order_whose_webhook_was_lost,
    stripe_unreachable_answers_503_and_changes_nothing,
    organisers_refund_through_stripe_and_cancel_closes_the_intent,
    concurrent_pays_and_webhooks_keep_every_payment,
    a_retried_pay_and_a_cancel_follow_what_stripe_knows,
    a_refund_stripe_cannot_take_now_is_made_by_the_reconciler,
    an_intent_left_open_after_its_hold_is_cancelled,
);

/// The webhook secret of every test app: localstripe signs for one hub (below) with it.
const WEBHOOK_SECRET: &str = "whsec_nearbytix_tests";

/// Settings of an app that takes payments through localstripe at `base`.
fn with_stripe(settings: &mut Settings, base: &str) {
    settings.payments.stripe = Some(StripeSettings {
        secret_key: SecretString::from(SECRET_KEY.to_owned()),
        api_base: base.to_owned(),
        timeout: Duration::from_secs(5),
        max_concurrency: 64,
    });
    settings.payments.webhook_secrets = vec![SecretString::from(WEBHOOK_SECRET.to_owned())];
}

/// An app on `backend` taking payments through localstripe, receiving its webhooks (when
/// `webhooks`); `configure` changes anything else.
async fn stripe_app(
    backend: Backend,
    base: &str,
    webhooks: bool,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let app = TestApp::spawn_with(backend, |settings| {
        with_stripe(settings, base);
        configure(settings);
    })
    .await;
    if webhooks {
        receive_webhooks(base, &app).await;
    }
    app
}

/// Where this test process receives localstripe's webhooks, and the apps it hands them to.
///
/// One endpoint registered once, rather than one per app: localstripe drops the deliveries
/// in flight when an endpoint is registered ("dictionary changed size during iteration"), so
/// tests running side by side would lose each other's webhooks. The hub runs on a thread of
/// its own (a test's runtime ends with the test) and passes every delivery, as received, to
/// every app that asked; an app gets others' events too, which it ignores, as with Stripe.
struct WebhookHub {
    apps: Arc<std::sync::Mutex<Vec<String>>>,
    /// What each app answered: (app, intent, outcome), for each delivery.
    answers: Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

static HUB: std::sync::OnceLock<WebhookHub> = std::sync::OnceLock::new();

async fn receive_webhooks(base: &str, app: &TestApp) -> &'static WebhookHub {
    receive_webhooks_at(base, app.url("/payments/stripe/webhook")).await
}

async fn receive_webhooks_at(base: &str, url: String) -> &'static WebhookHub {
    let base = base.to_owned();
    let hub = tokio::task::spawn_blocking(move || HUB.get_or_init(|| WebhookHub::start(&base)))
        .await
        .unwrap();
    hub.apps.lock().unwrap().push(url);
    hub
}

impl WebhookHub {
    fn start(base: &str) -> WebhookHub {
        let apps = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heard = answers.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (registered, done) = std::sync::mpsc::channel();
        let (targets, base) = (apps.clone(), base.to_owned());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let client = reqwest::Client::new();
                let hook = client
                    .post(format!("{base}/_config/webhooks/nearbytix-tests"))
                    .form(&[
                        ("url", url.as_str()),
                        ("secret", WEBHOOK_SECRET),
                        ("events[0]", "payment_intent.succeeded"),
                        ("events[1]", "payment_intent.payment_failed"),
                    ])
                    .send()
                    .await
                    .unwrap();
                registered.send(hook.status().is_success()).unwrap();
                let hub = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                        let (client, apps) = (client.clone(), targets.lock().unwrap().clone());
                        let heard = heard.clone();
                        async move {
                            let signature = headers["stripe-signature"].clone();
                            let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let intent = event["data"]["object"]["id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let sends = apps.into_iter().map(|app| {
                                let send = client
                                    .post(&app)
                                    .header("Stripe-Signature", signature.clone())
                                    .header("Content-Type", "application/json")
                                    .timeout(Duration::from_secs(10))
                                    .body(body.clone())
                                    .send();
                                async move {
                                    let answer = send.await.ok()?.json::<Value>().await.ok()?;
                                    Some((app, answer["outcome"].as_str()?.to_owned()))
                                }
                            });
                            for (app, outcome) in
                                futures::future::join_all(sends).await.into_iter().flatten()
                            {
                                heard.lock().unwrap().push((app, intent.clone(), outcome));
                            }
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, hub).await.unwrap();
            });
        });
        assert!(
            done.recv().unwrap(),
            "the hub is registered with localstripe"
        );
        WebhookHub { apps, answers }
    }
}

/// An event by a new organiser selling `seats` seats at 2,500 NGN (minor units), and a buyer.
async fn paid_event(app: &TestApp, seats: i64) -> (TestUser, TestUser, Value) {
    let organiser = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(
            &organiser.token,
            json!({"total_tickets": seats, "currency": "NGN",
                   "tiers": [{"name": "Standard", "price_minor": 2500},
                             {"name": "Guest", "price_minor": 0}]}),
        )
        .await;
    (organiser, buyer, event)
}

fn tier(event: &Value, name: &str) -> String {
    let tiers = event["tiers"].as_array().expect("tiers");
    let tier = tiers.iter().find(|tier| tier["name"] == name).expect(name);
    tier["id"].as_str().unwrap().to_owned()
}

/// Places an order of `quantity` Standard tickets; its id.
async fn order(app: &TestApp, buyer: &TestUser, event: &Value, quantity: i64) -> String {
    let items = json!([{"tier_id": tier(event, "Standard"), "quantity": quantity}]);
    let body = json!({"event_id": event["id"], "items": items});
    let (status, placed) = app.post("/orders/", Some(&buyer.token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    placed["id"].as_str().unwrap().to_owned()
}

async fn pay(app: &TestApp, buyer: &TestUser, order: &str) -> (StatusCode, Value) {
    let path = format!("/orders/{order}/pay");
    app.post(&path, Some(&buyer.token), json!({})).await
}

/// Pays as a client should: after a 503 (Stripe calls in flight at their bound), again.
async fn pay_patiently(app: &TestApp, buyer: &TestUser, order: &str) -> (StatusCode, Value) {
    let mut answer = pay(app, buyer, order).await;
    for _ in 0..240 {
        if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = pay(app, buyer, order).await;
    }
    panic!("Stripe stayed unavailable: {}", answer.1)
}

/// Waits (up to 15 s) until the sweeper gave the event's seats back: `seats` on sale.
async fn seats_back(app: &TestApp, event: &Value, seats: i64) {
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, read) = app.get(&path, None).await;
        if read["tickets_available"] == seats {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seats never came back: {read}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The order, once `done` says it is as expected (within 15 s).
async fn order_when(
    app: &TestApp,
    buyer: &TestUser,
    order: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/orders/{order}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get(&path, Some(&buyer.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order did not get there in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn intent_of(answer: &Value) -> String {
    answer["payment"]["intent_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an intent: {answer}"))
        .to_owned()
}

/// Money taken ⇒ the order is paid or the money is given back (or owed): checked against
/// Stripe's own record of every intent the server made.
async fn assert_money_kept_only_for_tickets(app: &TestApp, base: &str) {
    let stripe = client(base, 8);
    let intents: Vec<(String, String)> = rows_of(
        app,
        "SELECT p.id, o.status FROM payment_intents p JOIN orders o ON o.id = p.order_id",
    )
    .await;
    for (intent_id, status) in intents {
        let intent = stripe.retrieve_intent(&intent_id).await.expect("intent");
        if intent.status != "succeeded" {
            continue;
        }
        let owed = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM payment_refunds WHERE intent_id = '{intent_id}'"
            ))
            .await;
        let kept = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM orders WHERE payment_intent_id = '{intent_id}' \
                 AND status = 'paid'"
            ))
            .await;
        assert!(
            kept == 1 || owed == 1,
            "intent {intent_id} took money for an order that is {status} with no refund"
        );
        if owed == 1 {
            let given = stripe.list_refunds(&intent_id).await.expect("refunds");
            let done = app
                .scalar(&format!(
                    "SELECT COUNT(*) FROM payment_refunds WHERE intent_id = '{intent_id}' \
                     AND state = 'done'"
                ))
                .await;
            assert_eq!(done, 1, "the refund of {intent_id} is made");
            assert_eq!(given.len(), 1, "one refund at Stripe for {intent_id}");
        }
    }
    app.assert_invariants().await;
}

async fn rows_of(app: &TestApp, sql: &str) -> Vec<(String, String)> {
    use sqlx::Connection;
    match app.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database.url)
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    }
}

/// Pay starts an intent (202, the client secret, the hold extended); a second pay goes on with
/// the same intent; the card confirmed in the browser makes the order paid through the webhook.
/// A free order is paid at once without Stripe.
async fn a_card_payment_goes_from_intent_to_paid_by_webhook(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, true, |_| {}).await;
    let (organiser, buyer, event) = paid_event(&app, 10).await;
    let order_id = order(&app, &buyer, &event, 2).await;
    let (_, placed) = app
        .get(&format!("/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(
        (&placed["payment"]["provider"], &placed["payment"]["status"]),
        (&json!("stripe"), &json!("none")),
        "an order not paid yet names the provider that will take its money"
    );

    let (status, started) = pay(&app, &buyer, &order_id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "reserved");
    let payment = &started["payment"];
    assert_eq!(
        (&payment["provider"], &payment["status"]),
        (&json!("stripe"), &json!("pending"))
    );
    assert_eq!(payment["amount_minor"], 5000);
    assert!(payment["client_secret"].as_str().is_some(), "{started}");
    let held_until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(started["expires_at"].clone()).unwrap();
    assert!(
        held_until > chrono::Utc::now() + chrono::Duration::seconds(500),
        "the hold is extended to the payment window: {held_until}"
    );
    let intent_id = intent_of(&started);
    let at_stripe = client(&base, 8).retrieve_intent(&intent_id).await.unwrap();
    assert_eq!(
        (at_stripe.amount, at_stripe.currency.as_str()),
        (5000, "ngn")
    );

    let (status, again) = pay(&app, &buyer, &order_id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(
        intent_of(&again),
        intent_id,
        "a retried pay reuses its intent"
    );
    assert_eq!(
        again["payment"]["client_secret"],
        started["payment"]["client_secret"]
    );
    let (_, read) = app
        .get(&format!("/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(read["payment"]["status"], "pending");
    assert!(
        read["payment"].get("client_secret").is_none(),
        "the secret is in pay answers only"
    );

    let confirmed = confirm_with_card(&base, &intent_id, "4242424242424242").await;
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let paid = order_when(&app, &buyer, &order_id, |order| order["status"] == "paid").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(paid["payment"]["intent_id"], intent_id.as_str());
    let (status, body) = pay(&app, &buyer, &order_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "paid already: {body}");

    let event_id = event["id"].as_str().unwrap();
    let (_, stats) = app
        .get(&format!("/events/{event_id}/stats"), Some(&organiser.token))
        .await;
    assert_eq!(stats["revenue_minor"], 5000, "{stats}");

    let free = json!([{"tier_id": tier(&event, "Guest"), "quantity": 1}]);
    let body = json!({"event_id": event_id, "items": free});
    let (_, placed) = app.post("/orders/", Some(&buyer.token), body).await;
    let (status, paid) = pay(&app, &buyer, placed["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(
        (&paid["status"], &paid["payment"]["status"]),
        (&json!("paid"), &json!("none")),
        "a free order never reaches Stripe"
    );
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// A declined card fails the payment (the order stays reserved, the code says why); paying
/// again closes that intent and makes a new one, which a good card pays.
async fn a_declined_card_can_be_retried_with_a_new_intent(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, true, |_| {}).await;
    let (_, buyer, event) = paid_event(&app, 10).await;
    let order_id = order(&app, &buyer, &event, 1).await;
    let (status, started) = pay(&app, &buyer, &order_id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let first = intent_of(&started);
    confirm_with_card(&base, &first, "4000000000000341").await;
    let failed = order_when(&app, &buyer, &order_id, |order| {
        order["payment"]["status"] == "failed"
    })
    .await;
    assert_eq!(failed["status"], "reserved");
    assert_eq!(failed["payment"]["failure_code"], "card_declined");

    let (status, retried) = pay(&app, &buyer, &order_id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let second = intent_of(&retried);
    assert_ne!(second, first, "a declined intent is not confirmed again");
    assert_eq!(retried["payment"]["status"], "pending");
    assert_eq!(retried["payment"]["failure_code"], Value::Null);
    let closed = client(&base, 8).retrieve_intent(&first).await.unwrap();
    assert_eq!(closed.status, "canceled", "the failed intent is closed");
    confirm_with_card(&base, &second, "4242424242424242").await;
    let paid = order_when(&app, &buyer, &order_id, |order| order["status"] == "paid").await;
    assert_eq!(paid["payment"]["intent_id"], second.as_str());
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// Signs `event` as Stripe would for `secret`, `age` seconds ago, and posts it to the webhook.
async fn post_event(app: &TestApp, secret: &str, event: &Value, age: i64) -> (StatusCode, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let at = chrono::Utc::now().timestamp() - age;
    let header = signature::header_for(&SecretString::from(secret.to_owned()), at, &body);
    let answer = app
        .client
        .post(app.url("/payments/stripe/webhook"))
        .header("Stripe-Signature", header)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A webhook with a wrong or stale signature, or a signed body that is no event, is refused
/// and changes nothing; a signed event applies once, its repeat is a duplicate; an intent the
/// server did not make, or an amount that is not the intent's, is ignored.
async fn webhooks_need_a_valid_signature_and_apply_once(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, false, |_| {}).await;
    let (_, buyer, event) = paid_event(&app, 10).await;
    let order_id = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &order_id).await;
    let intent_id = intent_of(&started);
    let succeeded = |id: &str, amount: i64| {
        json!({"id": id, "type": "payment_intent.succeeded", "created": 1,
               "data": {"object": {"id": intent_id, "object": "payment_intent",
                                    "status": "succeeded", "amount": amount,
                                    "currency": "ngn"}}})
    };
    let event_id = format!("evt_{}", Uuid::new_v4().simple());

    let (status, body) = post_event(&app, "whsec_wrong", &succeeded(&event_id, 2500), 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"], "Invalid signature");
    let (status, _) = post_event(&app, WEBHOOK_SECRET, &succeeded(&event_id, 2500), 400).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a stale signature is refused"
    );
    let unsigned = app
        .client
        .post(app.url("/payments/stripe/webhook"))
        .body(serde_json::to_vec(&succeeded(&event_id, 2500)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
    let (status, _) = post_event(&app, WEBHOOK_SECRET, &json!(["not", "an", "event"]), 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "signed, but not an event");
    let (_, read) = app
        .get(&format!("/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(read["status"], "reserved", "nothing was applied: {read}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM stripe_events").await, 0);

    let wrong_amount = format!("evt_{}", Uuid::new_v4().simple());
    let (status, body) = post_event(&app, WEBHOOK_SECRET, &succeeded(&wrong_amount, 1), 0).await;
    assert_eq!(
        (status, &body["outcome"]),
        (StatusCode::OK, &json!("ignored"))
    );
    let stranger = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_not_ours", "amount": 2500, "currency": "ngn"}}});
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &stranger, 0).await;
    assert_eq!(body["outcome"], "ignored");
    let other = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "customer.created", "data": {"object": {"id": "cus_1"}}});
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &other, 0).await;
    assert_eq!(body["outcome"], "ignored");

    let (status, body) = post_event(&app, WEBHOOK_SECRET, &succeeded(&event_id, 2500), 0).await;
    assert_eq!(
        (status, &body),
        (
            StatusCode::OK,
            &json!({"received": true, "outcome": "applied"})
        )
    );
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &succeeded(&event_id, 2500), 0).await;
    assert_eq!(body["outcome"], "duplicate");
    let again = format!("evt_{}", Uuid::new_v4().simple());
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &succeeded(&again, 2500), 0).await;
    assert_eq!(body["outcome"], "ignored", "an intent succeeds once");
    let (_, read) = app
        .get(&format!("/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(read["status"], "paid", "{read}");
    let failed = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "payment_intent.payment_failed",
        "data": {"object": {"id": intent_id, "last_payment_error": {"code": "card_declined"}}}});
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &failed, 0).await;
    assert_eq!(body["outcome"], "ignored", "state only moves forward");

    // Refunds made at Stripe's dashboard: part, then all; a late partial one changes nothing.
    let refunded = |amount: i64, all: bool| {
        json!({"id": format!("evt_{}", Uuid::new_v4().simple()), "type": "charge.refunded",
               "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": intent_id,
                                    "amount": 2500, "amount_refunded": amount, "refunded": all}}})
    };
    let path = format!("/orders/{order_id}");
    let read = || app.get(&path, Some(&buyer.token));
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &refunded(1000, false), 0).await;
    assert_eq!(body["outcome"], "applied");
    let (_, partly) = read().await;
    assert_eq!(
        (&partly["status"], &partly["payment"]["refunded_minor"]),
        (&json!("paid"), &json!(1000))
    );
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &refunded(2500, true), 0).await;
    assert_eq!(body["outcome"], "applied");
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &refunded(1000, false), 0).await;
    assert_eq!(body["outcome"], "ignored", "refunds only grow");
    let (_, wholly) = read().await;
    assert_eq!(wholly["status"], "cancelled", "{wholly}");
    assert_eq!(
        (
            &wholly["payment"]["status"],
            &wholly["payment"]["refunded_minor"]
        ),
        (&json!("refunded"), &json!(2500))
    );

    let second = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &second).await;
    let canceled = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "payment_intent.canceled",
        "data": {"object": {"id": intent_of(&started), "status": "canceled"}}});
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &canceled, 0).await;
    assert_eq!(body["outcome"], "applied");
    let (_, read) = app
        .get(&format!("/orders/{second}"), Some(&buyer.token))
        .await;
    assert_eq!(
        (&read["payment"]["status"], &read["payment"]["failure_code"]),
        (&json!("failed"), &json!("canceled"))
    );
    app.assert_invariants().await;

    let plain = TestApp::spawn(backend).await;
    let (status, body) = post_event(&plain, WEBHOOK_SECRET, &canceled, 0).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no Stripe, no webhook: {body}"
    );
}

/// The hold ends while the buyer pays. With the seats still there, the late payment takes them
/// again and the order is paid; with the event sold out meanwhile, the order stays expired and
/// the money is refunded at Stripe.
async fn a_late_payment_takes_its_seats_again_or_is_refunded(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, true, |settings| {
        settings.ticket_hold = Duration::from_secs(2);
        settings.payments.window = Duration::from_secs(2);
    })
    .await;
    let (_, buyer, event) = paid_event(&app, 2).await;
    let rival = app.register_user(None).await;

    let kept = order(&app, &buyer, &event, 1).await;
    let lost = order(&app, &buyer, &event, 1).await;
    let (_, kept_started) = pay(&app, &buyer, &kept).await;
    let (_, lost_started) = pay(&app, &buyer, &lost).await;
    let expired = |order: &Value| order["status"] == "expired";
    order_when(&app, &buyer, &kept, expired).await;
    order_when(&app, &buyer, &lost, expired).await;
    seats_back(&app, &event, 2).await;
    // One seat goes to someone else for good (a free seat, paid at once): one late payment
    // finds a seat, the other none.
    let guest = json!([{"tier_id": tier(&event, "Guest"), "quantity": 1}]);
    let body = json!({"event_id": event["id"], "items": guest});
    let (status, placed) = app.post("/orders/", Some(&rival.token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let (status, body) = pay(&app, &rival, placed["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    confirm_with_card(&base, &intent_of(&kept_started), "4242424242424242").await;
    let paid = order_when(&app, &buyer, &kept, |order| order["status"] == "paid").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    confirm_with_card(&base, &intent_of(&lost_started), "4242424242424242").await;
    let refunded = order_when(&app, &buyer, &lost, |order| {
        order["payment"]["status"] == "refunded"
    })
    .await;
    assert_eq!(refunded["status"], "expired");
    assert_eq!(refunded["payment"]["refunded_minor"], 2500);
    let at_stripe = client(&base, 8)
        .list_refunds(&intent_of(&lost_started))
        .await
        .unwrap();
    assert_eq!(at_stripe.iter().map(|r| r.amount).sum::<i64>(), 2500);
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// No webhook reaches the app: the reconciler asks Stripe about the pending intent and pays
/// the order within its interval.
async fn the_reconciler_pays_an_order_whose_webhook_was_lost(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, false, |settings| {
        settings.payments.reconcile_after = Duration::from_millis(500);
        settings.payments.reconcile_interval = Duration::from_millis(200);
    })
    .await;
    let (_, buyer, event) = paid_event(&app, 10).await;
    let order_id = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &order_id).await;
    confirm_with_card(&base, &intent_of(&started), "4242424242424242").await;
    let paid = order_when(&app, &buyer, &order_id, |order| order["status"] == "paid").await;
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM stripe_events").await, 0);
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// A TCP relay to localstripe that can be cut (Stripe going away mid-test) and mended.
struct Relay {
    address: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn to(base: &str) -> Relay {
        let upstream = base.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (cut, cut_off) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_off.borrow() {
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_off = cut_off.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_off.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { address, cut }
    }

    fn cut(&self) {
        let _ = self.cut.send(true);
    }

    fn mend(&self) {
        let _ = self.cut.send(false);
    }
}

/// Stripe goes away mid-test: pay, cancel and refund answer 503 with Retry-After and change
/// nothing (no intent, no extended hold, the order as it was).
async fn stripe_unreachable_answers_503_and_changes_nothing(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let relay = Relay::to(&base).await;
    let app = stripe_app(backend, &relay.address, false, |_| {}).await;
    let (organiser, buyer, event) = paid_event(&app, 10).await;
    let started_order = order(&app, &buyer, &event, 1).await;
    let paid_order = order(&app, &buyer, &event, 1).await;
    let untouched = order(&app, &buyer, &event, 1).await;
    let (status, started) = pay(&app, &buyer, &started_order).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let (_, to_pay) = pay(&app, &buyer, &paid_order).await;
    let paid_intent = intent_of(&to_pay);
    confirm_with_card(&base, &paid_intent, "4242424242424242").await;
    let succeeded = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": paid_intent, "amount": 2500, "currency": "ngn"}}});
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &succeeded, 0).await;
    assert_eq!(body["outcome"], "applied");
    let path = |order: &str| format!("/orders/{order}");
    let (_, before) = app.get(&path(&untouched), Some(&buyer.token)).await;

    relay.cut();
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            &format!("/orders/{untouched}/pay"),
            Some(&buyer.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let answer = app
        .client
        .post(app.url(&format!("/orders/{untouched}/pay")))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .unwrap();
    assert!(answer.headers().contains_key("retry-after"));
    let (_, after) = app.get(&path(&untouched), Some(&buyer.token)).await;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM payment_intents").await,
        2,
        "no intent recorded for the pay Stripe did not answer"
    );

    let (status, _) = pay(&app, &buyer, &started_order).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = app
        .post(
            &format!("/orders/{started_order}/cancel"),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, still) = app.get(&path(&started_order), Some(&buyer.token)).await;
    assert_eq!(
        (&still["status"], &still["payment"]["status"]),
        (&json!("reserved"), &json!("pending"))
    );
    let (status, _) = app
        .post(
            &format!("/orders/{paid_order}/refund"),
            Some(&organiser.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, still) = app.get(&path(&paid_order), Some(&buyer.token)).await;
    assert_eq!(
        (&still["status"], &still["payment"]["status"]),
        (&json!("paid"), &json!("succeeded"))
    );
    app.assert_invariants().await;
}

/// The organiser refunds a paid order through Stripe: cancelled, refunded, seats back, the
/// refund made at Stripe once; the buyer and strangers get 403, a second refund 409. A buyer's
/// cancel closes the open intent at Stripe first.
async fn organisers_refund_through_stripe_and_cancel_closes_the_intent(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, true, |_| {}).await;
    let (organiser, buyer, event) = paid_event(&app, 3).await;
    let order_id = order(&app, &buyer, &event, 3).await;
    let (_, started) = pay(&app, &buyer, &order_id).await;
    let intent_id = intent_of(&started);
    confirm_with_card(&base, &intent_id, "4242424242424242").await;
    order_when(&app, &buyer, &order_id, |order| order["status"] == "paid").await;

    let refund = format!("/orders/{order_id}/refund");
    let (status, body) = app.post(&refund, Some(&buyer.token), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, refunded) = app.post(&refund, Some(&organiser.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{refunded}");
    assert_eq!(refunded["status"], "cancelled");
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["payment"]["refunded_minor"], 7500);
    let made = client(&base, 8).list_refunds(&intent_id).await.unwrap();
    assert_eq!(made.iter().map(|r| r.amount).collect::<Vec<_>>(), [7500]);
    let (status, body) = app.post(&refund, Some(&organiser.token), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "refunded already: {body}");
    let event_id = event["id"].as_str().unwrap();
    let (_, read) = app.get(&format!("/events/{event_id}"), None).await;
    assert_eq!(read["tickets_available"], 3, "the seats are back: {read}");
    let (_, stats) = app
        .get(&format!("/events/{event_id}/stats"), Some(&organiser.token))
        .await;
    assert_eq!(
        (&stats["revenue_minor"], &stats["refunded_minor"]),
        (&json!(0), &json!(7500))
    );

    let cancelled = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &cancelled).await;
    let open = intent_of(&started);
    let (status, body) = app
        .post(
            &format!("/orders/{cancelled}/cancel"),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(
        (&body["payment"]["status"], &body["payment"]["failure_code"]),
        (&json!("failed"), &json!("canceled"))
    );
    let at_stripe = client(&base, 8).retrieve_intent(&open).await.unwrap();
    assert_eq!(at_stripe.status, "canceled");
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// 100 orders on one event, each paid twice at once (200 pays in flight) and confirmed,
/// webhooks arriving while others pay: every order is paid through one intent, every charge
/// kept or refunded, the counters match the rows. Then two server processes on the same
/// database receive the same webhooks as the app: each is applied once.
async fn concurrent_pays_and_webhooks_keep_every_payment(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, true, |_| {}).await;
    let app = Arc::new(app);
    let (_, _, event) = paid_event(&app, 100).await;
    let mut buyers = Vec::new();
    for _ in 0..10 {
        buyers.push(app.register_user(None).await);
    }
    let mut orders = Vec::new();
    for buyer in &buyers {
        for _ in 0..10 {
            orders.push((buyer.clone(), order(&app, buyer, &event, 1).await));
        }
    }
    let mut paying = tokio::task::JoinSet::new();
    let confirmations = Arc::new(tokio::sync::Semaphore::new(16));
    for (buyer, order_id) in orders.clone() {
        let (app, base) = (app.clone(), base.clone());
        let confirmations = confirmations.clone();
        paying.spawn(async move {
            let (first, second) = tokio::join!(
                pay_patiently(&app, &buyer, &order_id),
                pay_patiently(&app, &buyer, &order_id)
            );
            assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
            assert_eq!(second.0, StatusCode::ACCEPTED, "{}", second.1);
            assert_eq!(
                intent_of(&first.1),
                intent_of(&second.1),
                "one intent per order"
            );
            let _turn = confirmations.acquire().await.unwrap();
            let confirmed =
                confirm_with_card(&base, &intent_of(&first.1), "4242424242424242").await;
            assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
        });
    }
    while let Some(done) = paying.join_next().await {
        done.unwrap();
    }
    for (buyer, order_id) in &orders {
        order_when(&app, buyer, order_id, |order| order["status"] == "paid").await;
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM orders WHERE payment_attempts <> 1")
            .await,
        0,
        "one intent per order"
    );
    assert_money_kept_only_for_tickets(&app, &base).await;

    // Two server processes on the same database, both receiving every webhook (as this app
    // does): each success is applied by one of the three, the others see a duplicate.
    let env = [
        ("PAYMENT_PROVIDER", "stripe"),
        ("STRIPE_API_BASE", base.as_str()),
        ("STRIPE_SECRET_KEY", SECRET_KEY),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let first = Process::start(&app.database.url, &["serve"], &env).await;
    let second = Process::start(&app.database.url, &["serve", "--no-sweeper"], &env).await;
    let hook = |process: &Process| format!("{}/api/v1/payments/stripe/webhook", process.base);
    receive_webhooks_at(&base, hook(&first)).await;
    let hub = receive_webhooks_at(&base, hook(&second)).await;
    let receivers = [
        app.url("/payments/stripe/webhook"),
        hook(&first),
        hook(&second),
    ];
    let (organiser, buyer, second_event) = paid_event(&app, 20).await;
    let mut twice = Vec::new();
    for _ in 0..10 {
        let order_id = order(&app, &buyer, &second_event, 1).await;
        let (_, started) = pay(&app, &buyer, &order_id).await;
        let intent = intent_of(&started);
        confirm_with_card(&base, &intent, "4242424242424242").await;
        twice.push((order_id, intent));
    }
    for (order_id, intent) in &twice {
        order_when(&app, &buyer, order_id, |order| order["status"] == "paid").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let outcomes = loop {
            let mut outcomes: Vec<String> = hub
                .answers
                .lock()
                .unwrap()
                .iter()
                .filter(|(to, of, _)| receivers.contains(to) && of == intent)
                .map(|(_, _, outcome)| outcome.clone())
                .collect();
            outcomes.sort();
            if outcomes.len() >= 3 || tokio::time::Instant::now() > deadline {
                break outcomes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            outcomes,
            ["applied", "duplicate", "duplicate"],
            "intent {intent}: applied once over three receivers"
        );
    }
    let stats = format!("/events/{}/stats", second_event["id"].as_str().unwrap());
    let (_, stats) = app.get(&stats, Some(&organiser.token)).await;
    assert_eq!(stats["revenue_minor"], 10 * 2500, "each paid once: {stats}");
    assert_money_kept_only_for_tickets(&app, &base).await;
    drop((first, second));
}

/// With no webhook arriving, a pay asks Stripe first: a declined intent is closed and a new one
/// made (until the attempts run out: 409); one that succeeded pays the order (200). A cancel of
/// an order whose payment succeeded answers 409 and leaves it paid. The ticket path answers
/// 202 too, and its replay is the same answer.
async fn a_retried_pay_and_a_cancel_follow_what_stripe_knows(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, false, |settings| {
        settings.payments.attempts_per_order = 2;
    })
    .await;
    let (_, buyer, event) = paid_event(&app, 10).await;
    let stripe = client(&base, 8);

    let declined = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &declined).await;
    let first = intent_of(&started);
    confirm_with_card(&base, &first, "4000000000000341").await;
    let (status, retried) = pay(&app, &buyer, &declined).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let second = intent_of(&retried);
    assert_ne!(second, first);
    let closed = stripe.retrieve_intent(&first).await.unwrap();
    assert_eq!(
        closed.status, "canceled",
        "the failed intent is closed first"
    );
    confirm_with_card(&base, &second, "4000000000000341").await;
    let (status, body) = pay(&app, &buyer, &declined).await;
    assert_eq!(status, StatusCode::CONFLICT, "attempts exhausted: {body}");

    let succeeded = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &succeeded).await;
    confirm_with_card(&base, &intent_of(&started), "4242424242424242").await;
    let (status, paid) = pay(&app, &buyer, &succeeded).await;
    assert_eq!(status, StatusCode::OK, "Stripe says it succeeded: {paid}");
    assert_eq!(
        (&paid["status"], &paid["payment"]["status"]),
        (&json!("paid"), &json!("succeeded"))
    );

    let raced = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &raced).await;
    confirm_with_card(&base, &intent_of(&started), "4242424242424242").await;
    let (status, body) = app
        .post(
            &format!("/orders/{raced}/cancel"),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "its payment succeeded: {body}"
    );
    let (_, read) = app
        .get(&format!("/orders/{raced}"), Some(&buyer.token))
        .await;
    assert_eq!(read["status"], "paid");

    let body = json!({"event_id": event["id"], "tier_id": tier(&event, "Standard")});
    let (status, ticket) = app.post("/tickets/", Some(&buyer.token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let path = format!("/tickets/{}/pay", ticket["id"].as_str().unwrap());
    let keyed = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "pay-the-ticket")
            .send()
    };
    let first = keyed().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    assert!(first["payment"]["client_secret"].is_string(), "{first}");
    let replay = keyed().await.unwrap();
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// A late payment for an order whose seat went to someone else is owed back; Stripe is away
/// when the webhook comes (503, the refund stays owed); once Stripe is back the reconciler
/// makes the refund, once.
async fn a_refund_stripe_cannot_take_now_is_made_by_the_reconciler(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let relay = Relay::to(&base).await;
    let app = stripe_app(backend, &relay.address, false, |settings| {
        settings.ticket_hold = Duration::from_secs(1);
        settings.payments.window = Duration::from_secs(1);
        settings.payments.reconcile_after = Duration::from_millis(500);
        settings.payments.reconcile_interval = Duration::from_millis(200);
    })
    .await;
    let (_, buyer, event) = paid_event(&app, 1).await;
    let order_id = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &order_id).await;
    let intent_id = intent_of(&started);
    order_when(&app, &buyer, &order_id, |order| {
        order["status"] == "expired"
    })
    .await;
    seats_back(&app, &event, 1).await;
    let rival = app.register_user(None).await;
    let guest = json!([{"tier_id": tier(&event, "Guest"), "quantity": 1}]);
    let body = json!({"event_id": event["id"], "items": guest});
    let (status, placed) = app.post("/orders/", Some(&rival.token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let (status, _) = pay(&app, &rival, placed["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the last seat is taken for good");
    confirm_with_card(&base, &intent_id, "4242424242424242").await;

    relay.cut();
    let succeeded = json!({"id": format!("evt_{}", Uuid::new_v4().simple()),
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent_id, "amount": 2500, "currency": "ngn"}}});
    let (status, body) = post_event(&app, WEBHOOK_SECRET, &succeeded, 0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (_, owed) = app
        .get(&format!("/orders/{order_id}"), Some(&buyer.token))
        .await;
    assert_eq!(
        (&owed["status"], &owed["payment"]["status"]),
        (&json!("expired"), &json!("succeeded")),
        "the money was taken and is owed back"
    );
    let (_, body) = post_event(&app, WEBHOOK_SECRET, &succeeded, 0).await;
    assert_eq!(body["outcome"], "duplicate");

    relay.mend();
    let refunded = order_when(&app, &buyer, &order_id, |order| {
        order["payment"]["status"] == "refunded"
    })
    .await;
    assert_eq!(refunded["payment"]["refunded_minor"], 2500);
    let made = client(&base, 8).list_refunds(&intent_id).await.unwrap();
    assert_eq!(made.iter().map(|r| r.amount).collect::<Vec<_>>(), [2500]);
    assert_money_kept_only_for_tickets(&app, &base).await;
}

/// A buyer who never confirms: once the hold ended `PAYMENT_INTENT_TTL_SECONDS` ago, the
/// reconciler cancels the intent at Stripe and the payment reads failed (`canceled`).
async fn an_intent_left_open_after_its_hold_is_cancelled(backend: Backend) {
    let Some(base) = localstripe().await else {
        return;
    };
    let app = stripe_app(backend, &base, false, |settings| {
        settings.ticket_hold = Duration::from_secs(1);
        settings.payments.window = Duration::from_secs(1);
        settings.payments.intent_ttl = Duration::from_secs(1);
        settings.payments.reconcile_after = Duration::from_millis(300);
        settings.payments.reconcile_interval = Duration::from_millis(200);
    })
    .await;
    let (_, buyer, event) = paid_event(&app, 5).await;
    let order_id = order(&app, &buyer, &event, 1).await;
    let (_, started) = pay(&app, &buyer, &order_id).await;
    let intent_id = intent_of(&started);
    let closed = order_when(&app, &buyer, &order_id, |order| {
        order["payment"]["failure_code"] == "canceled"
    })
    .await;
    assert_eq!(
        (&closed["status"], &closed["payment"]["status"]),
        (&json!("expired"), &json!("failed"))
    );
    let at_stripe = client(&base, 8).retrieve_intent(&intent_id).await.unwrap();
    assert_eq!(at_stripe.status, "canceled");
    assert_money_kept_only_for_tickets(&app, &base).await;
}
