//! Tiers and orders over HTTP: every rule of the contract with its status code, all or nothing
//! under concurrency, and across two server processes.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, TestUser, assert_releases_recorded, block_reservations_and, error_locs, loc,
};

backend_tests!(
    events_are_created_with_their_tiers,
    an_order_over_two_tiers_is_paid_and_read_back,
    order_rules_answer_with_their_status,
    a_short_tier_refuses_the_whole_order,
    the_per_person_cap_holds_under_concurrent_orders,
    cancelling_an_order_returns_every_seat,
    orders_honour_idempotency_keys,
    two_processes_sell_one_tiered_capacity,
    creators_manage_tiers_with_the_409_rules,
    stats_count_sales_and_revenue_at_order_prices,
    a_due_order_reads_expired_and_pays_410,
    a_batch_answers_each_order_as_if_alone,
    orders_show_their_payment_and_organisers_refund_paid_ones,
    cancellations_at_once_each_answer_as_if_alone,
);

/// Early bird (1500, 5 seats, 2 per order), VIP (5000, 3 seats) and Regular (2500).
fn tiers() -> Value {
    json!([
        {"name": "Early bird", "price_minor": 1500, "quantity": 5, "max_per_order": 2},
        {"name": "VIP", "price_minor": 5000, "quantity": 3, "description": "Front rows"},
        {"name": "Regular", "price_minor": 2500},
    ])
}

async fn tiered_event(app: &TestApp, organiser: &TestUser, overrides: Value) -> Value {
    let mut body = json!({"total_tickets": 20, "currency": "NGN", "tiers": tiers()});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, overrides) {
        body.extend(extra);
    }
    app.create_event(&organiser.token, body).await
}

fn tier_id(event: &Value, name: &str) -> String {
    let tiers = event["tiers"].as_array().expect("tiers");
    let tier = tiers.iter().find(|tier| tier["name"] == name).expect(name);
    tier["id"].as_str().unwrap().to_owned()
}

async fn place(
    app: &TestApp,
    buyer: &TestUser,
    event: &Value,
    items: Value,
) -> (StatusCode, Value) {
    let body = json!({"event_id": event["id"], "items": items});
    app.post("/orders/", Some(&buyer.token), body).await
}

async fn events_are_created_with_their_tiers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let event = tiered_event(&app, &organiser, json!({"max_tickets_per_user": 4})).await;
    assert_eq!(event["currency"], "NGN");
    assert_eq!(event["max_tickets_per_user"], 4);
    let tiers = event["tiers"].as_array().unwrap();
    let names: Vec<_> = tiers.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Early bird", "VIP", "Regular"]);
    assert_eq!(tiers[0]["position"], 0);
    assert_eq!(tiers[2]["position"], 2);
    assert_eq!(tiers[0]["available"], 5);
    assert_eq!(tiers[2]["available"], 20, "no quota: the event's seats");
    assert_eq!(tiers[2]["quantity"], Value::Null);
    assert_eq!(tiers[1]["description"], "Front rows");
    let (_, read) = app
        .get(&format!("/events/{}", event["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(read["tiers"], event["tiers"]);

    // Without tiers: one free General admission tier, in US dollars, no cap.
    let plain = app.create_event(&organiser.token, json!({})).await;
    assert_eq!(plain["currency"], "USD");
    assert_eq!(plain["max_tickets_per_user"], Value::Null);
    assert_eq!(plain["tiers"][0]["name"], "General admission");
    assert_eq!(plain["tiers"][0]["price_minor"], 0);
    assert_eq!(plain["tiers"][0]["sales_start"], Value::Null);

    let token = Some(organiser.token.as_str());
    for (body, at) in [
        (json!({"tiers": []}), vec!["body", "tiers"]),
        (
            json!({"tiers": [{"name": "A"}, {"name": "A"}]}),
            vec!["body", "tiers", "1", "name"],
        ),
        (
            json!({"tiers": [{"name": "A", "quantity": 101}]}),
            vec!["body", "tiers", "0", "quantity"],
        ),
        (
            json!({"tiers": [{"name": "A", "price_minor": -1}]}),
            vec!["body", "tiers", "0", "price_minor"],
        ),
        (
            json!({"tiers": [{"name": "A", "sales_start": "2030-01-02T00:00:00Z", "sales_end": "2030-01-01T00:00:00Z"}]}),
            vec!["body", "tiers", "0", "sales_end"],
        ),
        (json!({"currency": "usd"}), vec!["body", "currency"]),
        (
            json!({"max_tickets_per_user": 0}),
            vec!["body", "max_tickets_per_user"],
        ),
    ] {
        let (status, answer) = app
            .post("/events/", token, crate::helpers::event_body(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let locs = error_locs(&answer);
        assert!(locs.contains(&loc(&at)), "{body}: {locs:?}");
    }
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (status, answer) = app.put(&path, token, json!({"tiers": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(error_locs(&answer).contains(&loc(&["body", "tiers"])));
    let (status, changed) = app
        .put(
            &path,
            token,
            json!({"currency": "EUR", "max_tickets_per_user": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["currency"], "EUR");
    assert_eq!(changed["max_tickets_per_user"], Value::Null);
}

async fn an_order_over_two_tiers_is_paid_and_read_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({})).await;
    let (early, vip) = (tier_id(&event, "Early bird"), tier_id(&event, "VIP"));
    let items = json!([{"tier_id": early, "quantity": 2}, {"tier_id": vip, "quantity": 1}]);
    let (status, order) = place(&app, &buyer, &event, items).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "reserved");
    assert_eq!(order["currency"], "NGN");
    assert_eq!(order["total_minor"], 2 * 1500 + 5000);
    assert_eq!(order["items"][0]["tier_name"], "Early bird");
    assert_eq!(order["items"][0]["subtotal_minor"], 3000);
    assert_eq!(order["items"][1]["unit_price_minor"], 5000);
    assert_eq!(order["tickets"].as_array().unwrap().len(), 3);
    assert_eq!(order["event"]["id"], event["id"]);
    let order_id = order["id"].as_str().unwrap();
    let token = Some(buyer.token.as_str());

    // Its tickets show the order and the tier; one of them cannot be paid on its own.
    let ticket_id = order["tickets"][0]["id"].as_str().unwrap();
    let (_, ticket) = app.get(&format!("/tickets/{ticket_id}"), token).await;
    assert_eq!(ticket["order_id"], order_id);
    assert_eq!(ticket["tier"]["price_minor"], 1500);
    let (status, refusal) = app
        .ticket_action(&format!("/tickets/{ticket_id}"), token, "pay")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refusal["detail"].as_str().unwrap().contains(order_id),
        "{refusal}"
    );

    let (status, paid) = app
        .post(&format!("/orders/{order_id}/pay"), token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");
    assert!(paid["paid_at"].is_string());
    assert!(
        paid["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "paid")
    );
    let (status, _) = app
        .post(&format!("/orders/{order_id}/cancel"), token, json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a paid order is not cancelled"
    );

    let (status, read) = app.get(&format!("/orders/{order_id}"), token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["status"], "paid");
    let stranger = app.register_user(None).await;
    let (status, _) = app
        .get(&format!("/orders/{order_id}"), Some(&stranger.token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            &format!("/orders/{order_id}/pay"),
            Some(&stranger.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let missing = uuid::Uuid::new_v4();
    let (status, _) = app.get(&format!("/orders/{missing}"), token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, mine) = app.get("/orders/my-orders?status=paid", token).await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["orders"][0]["total_minor"], 8000);
    let (_, none) = app.get("/orders/my-orders?status=reserved", token).await;
    assert_eq!(none["total"], 0);
    let (status, _) = app.get("/orders/my-orders?status=refunded", token).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = app.get("/tickets/my-tickets", token).await;
    assert_eq!(listed["total"], 3);
    assert_eq!(listed["tickets"][0]["order_id"], order_id);
    app.assert_invariants().await;
}

async fn order_rules_answer_with_their_status(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.max_tickets_per_order = 4).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let now = chrono::Utc::now();
    let tiers = json!([
        {"name": "Later", "sales_start": (now + chrono::Duration::days(1)).to_rfc3339()},
        {"name": "Over", "sales_end": (now - chrono::Duration::hours(1)).to_rfc3339(),
         "sales_start": (now - chrono::Duration::days(1)).to_rfc3339()},
        {"name": "Open", "max_per_order": 2},
    ]);
    let event = app
        .create_event(
            &organiser.token,
            json!({"tiers": tiers, "total_tickets": 50}),
        )
        .await;
    let (later, over, open) = (
        tier_id(&event, "Later"),
        tier_id(&event, "Over"),
        tier_id(&event, "Open"),
    );
    let unknown = uuid::Uuid::new_v4();
    let invalid = [
        (json!([]), vec!["body", "items"]),
        (
            json!([{"tier_id": open, "quantity": 0}]),
            vec!["body", "items", "0", "quantity"],
        ),
        (
            json!([{"tier_id": open, "quantity": 1}, {"tier_id": open, "quantity": 1}]),
            vec!["body", "items", "1", "tier_id"],
        ),
        (
            json!([{"tier_id": open, "quantity": 1}, {"tier_id": unknown, "quantity": 1}]),
            vec!["body", "items", "1", "tier_id"],
        ),
        (
            json!([{"tier_id": open, "quantity": 3}]),
            vec!["body", "items", "0", "quantity"],
        ),
        (
            json!([{"tier_id": open, "quantity": 2}, {"tier_id": later, "quantity": 3}]),
            vec!["body", "items"],
        ),
    ];
    for (items, at) in invalid {
        let (status, answer) = place(&app, &buyer, &event, items.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{items}: {answer}"
        );
        assert!(error_locs(&answer).contains(&loc(&at)), "{items}: {answer}");
    }
    let (status, answer) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": later, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["detail"], "Sales for 'Later' have not started");
    let (status, answer) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": over, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["detail"], "Sales for 'Over' have ended");
    let missing = json!({"id": uuid::Uuid::new_v4()});
    let (status, _) = place(
        &app,
        &buyer,
        &missing,
        json!([{"tier_id": open, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A ticket without a tier comes from the first tier on sale; naming a closed one is 409.
    let (status, ticket) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["tier"]["name"], "Open");
    let (status, _) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event["id"], "tier_id": later}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event["id"], "tier_id": unknown}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error_locs(&answer).contains(&loc(&["body", "tier_id"])),
        "{answer}"
    );
    // On a sold-out event the rules on named tiers still come first (422, not "sold out").
    let full = app
        .create_event(&organiser.token, json!({"total_tickets": 1}))
        .await;
    let (status, _) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": full["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = place(
        &app,
        &buyer,
        &full,
        json!([{"tier_id": unknown, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    app.assert_invariants().await;
}

async fn a_short_tier_refuses_the_whole_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    // VIP has 3 seats; the event has only 6, fewer than Regular could sell.
    let event = tiered_event(&app, &organiser, json!({"total_tickets": 6})).await;
    let (vip, regular) = (tier_id(&event, "VIP"), tier_id(&event, "Regular"));
    let (status, _) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 2}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let items = json!([{"tier_id": regular, "quantity": 1}, {"tier_id": vip, "quantity": 2}]);
    let (status, answer) = place(&app, &buyer, &event, items).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["detail"], "Not enough tickets: 'VIP' has 1 left");
    let (_, read) = app
        .get(&format!("/events/{}", event["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(
        read["tickets_sold"], 2,
        "nothing of the refused order was taken"
    );
    let items = json!([{"tier_id": regular, "quantity": 5}]);
    let (status, answer) = place(&app, &buyer, &event, items).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["detail"], "Not enough tickets: the event has 4 left");
    let (status, _) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": regular, "quantity": 4}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        answer["detail"].as_str().unwrap().contains("sold out"),
        "{answer}"
    );
    app.assert_invariants().await;
}

async fn the_per_person_cap_holds_under_concurrent_orders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({"max_tickets_per_user": 4})).await;
    let regular = tier_id(&event, "Regular");
    let attempts = (0..12).map(|_| {
        place(
            &app,
            &buyer,
            &event,
            json!([{"tier_id": regular, "quantity": 1}]),
        )
    });
    let answers = join_all(attempts).await;
    let granted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(granted, 4, "{answers:?}");
    for (status, answer) in &answers {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT);
            assert_eq!(
                answer["detail"],
                "Limit of 4 tickets per person for this event"
            );
        }
    }
    // Lowering the cap cancels nothing; another buyer still buys.
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (status, _) = app
        .put(
            &path,
            Some(&organiser.token),
            json!({"max_tickets_per_user": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mine) = app
        .get("/tickets/my-tickets?status=reserved", Some(&buyer.token))
        .await;
    assert_eq!(mine["total"], 4);
    let other = app.register_user(None).await;
    let (status, _) = place(
        &app,
        &other,
        &event,
        json!([{"tier_id": regular, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    app.assert_invariants().await;
}

async fn cancelling_an_order_returns_every_seat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({})).await;
    let (early, vip) = (tier_id(&event, "Early bird"), tier_id(&event, "VIP"));
    let items = json!([{"tier_id": early, "quantity": 2}, {"tier_id": vip, "quantity": 3}]);
    let (_, order) = place(&app, &buyer, &event, items).await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (_, read) = app.get(&path, None).await;
    assert_eq!(read["tickets_sold"], 5);
    assert_eq!(read["tiers"][1]["available"], 0);
    let order_path = format!("/orders/{}", order["id"].as_str().unwrap());
    let token = Some(buyer.token.as_str());
    let (status, cancelled) = app
        .post(&format!("{order_path}/cancel"), token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, read) = app.get(&path, None).await;
    assert_eq!(read["tickets_sold"], 0);
    assert_eq!(read["tiers"][1]["available"], 3);
    assert_eq!(read["tiers"][0]["sold"], 0);
    let (status, _) = app
        .post(&format!("{order_path}/pay"), token, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.assert_invariants().await;
}

async fn orders_honour_idempotency_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({})).await;
    let regular = tier_id(&event, "Regular");
    let send = |quantity: i64| {
        app.client
            .post(app.url("/orders/"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "order-once")
            .json(&json!({"event_id": event["id"], "items": [{"tier_id": regular, "quantity": quantity}]}))
            .send()
    };
    let answers = join_all((0..8).map(|_| send(2))).await;
    let mut bodies = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        bodies.push(answer.text().await.unwrap());
    }
    assert!(
        bodies.iter().all(|body| *body == bodies[0]),
        "one answer for all"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM orders").await, 1);
    let other = send(3).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let order: Value = serde_json::from_str(&bodies[0]).unwrap();
    let pay = || {
        app.client
            .post(app.url(&format!("/orders/{}/pay", order["id"].as_str().unwrap())))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "pay-order-once")
            .send()
    };
    let first = pay().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.text().await.unwrap();
    let retry = pay().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), first);
}

async fn two_processes_sell_one_tiered_capacity(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = first.spawn_sibling(|_| {}).await;
    let organiser = first.register_user(None).await;
    let event = tiered_event(&first, &organiser, json!({"total_tickets": 40})).await;
    let tiers = [
        tier_id(&event, "Early bird"),
        tier_id(&event, "VIP"),
        tier_id(&event, "Regular"),
    ];
    let buyers = join_all((0..10).map(|_| first.register_user(None))).await;
    // 300 orders of 1-4 tickets over three tiers, through two server processes: far more
    // demand than 40 seats.
    let attempts = (0..300).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let items = match i % 3 {
            0 => json!([{"tier_id": tiers[0], "quantity": 1}, {"tier_id": tiers[2], "quantity": i % 4 + 1}]),
            1 => json!([{"tier_id": tiers[1], "quantity": 1}]),
            _ => json!([{"tier_id": tiers[2], "quantity": i % 4 + 1}]),
        };
        place(app, &buyers[i % 10], &event, items)
    });
    let answers = join_all(attempts).await;
    let mut sold = 0;
    for (status, order) in &answers {
        match *status {
            StatusCode::CREATED => {
                let tickets = order["tickets"].as_array().unwrap();
                let items = order["items"].as_array().unwrap();
                let ordered: i64 = items
                    .iter()
                    .map(|item| item["quantity"].as_i64().unwrap())
                    .sum();
                assert_eq!(tickets.len() as i64, ordered, "{order}");
                sold += tickets.len();
            }
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {order}"),
        }
    }
    let (_, read) = second
        .get(&format!("/events/{}", event["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(read["tickets_sold"], sold as i64);
    let rows = first.scalar("SELECT COUNT(*) FROM tickets").await;
    assert_eq!(rows, sold as i64, "refused orders left no ticket");
    let early_sold = read["tiers"][0]["sold"].as_i64().unwrap();
    let vip_sold = read["tiers"][1]["sold"].as_i64().unwrap();
    assert!(early_sold <= 5 && vip_sold <= 3, "{read}");
    first.assert_invariants().await;
}

async fn creators_manage_tiers_with_the_409_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({})).await;
    let event_path = format!("/events/{}", event["id"].as_str().unwrap());
    let tiers_path = format!("{event_path}/tiers");
    let token = Some(organiser.token.as_str());

    let (status, student) = app
        .post(
            &tiers_path,
            token,
            json!({"name": "Student", "price_minor": 1000, "quantity": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{student}");
    assert_eq!(student["position"], 3, "a new tier goes last");
    assert_eq!(student["available"], 4);
    let (status, _) = app.post(&tiers_path, token, json!({"name": "VIP"})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "names are unique within the event"
    );
    let (status, answer) = app
        .post(&tiers_path, token, json!({"name": "Huge", "quantity": 21}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error_locs(&answer).contains(&loc(&["body", "quantity"])),
        "{answer}"
    );
    let (status, _) = app
        .post(&tiers_path, Some(&buyer.token), json!({"name": "Mine"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let nowhere = format!("/events/{}/tiers", uuid::Uuid::new_v4());
    let (status, _) = app.post(&nowhere, token, json!({"name": "Lost"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let early = tier_id(&event, "Early bird");
    let items = json!([{"tier_id": early, "quantity": 2}]);
    let (_, order) = place(&app, &buyer, &event, items).await;
    let early_path = format!("{tiers_path}/{early}");
    let (status, answer) = app.put(&early_path, token, json!({"quantity": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = app.put(&early_path, token, json!({"name": "VIP"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, changed) = app
        .put(
            &early_path,
            token,
            json!({"quantity": 2, "price_minor": 9999, "description": "Gone fast"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["quantity"], 2);
    assert_eq!(changed["available"], 0);
    assert_eq!(changed["description"], "Gone fast");
    // The order keeps the price it was placed at.
    let order_path = format!("/orders/{}", order["id"].as_str().unwrap());
    let (_, read) = app.get(&order_path, Some(&buyer.token)).await;
    assert_eq!(read["total_minor"], 3000);
    assert_eq!(read["items"][0]["unit_price_minor"], 1500);
    let other = app.create_event(&organiser.token, json!({})).await;
    let foreign = format!("/events/{}/tiers/{early}", other["id"].as_str().unwrap());
    let (status, _) = app.put(&foreign, token, json!({"price_minor": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a tier of another event");
    let (status, _) = app
        .put(&format!("{tiers_path}/not-a-uuid"), token, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, _) = app.delete(&early_path, token).await;
    assert_eq!(status, StatusCode::CONFLICT, "it has reserved tickets");
    let student_path = format!("{tiers_path}/{}", student["id"].as_str().unwrap());
    let (status, _) = app.delete(&student_path, token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, read) = app.get(&event_path, None).await;
    assert_eq!(read["tiers"].as_array().unwrap().len(), 3);
    let only = format!(
        "/events/{}/tiers/{}",
        other["id"].as_str().unwrap(),
        other["tiers"][0]["id"].as_str().unwrap()
    );
    let (status, answer) = app.delete(&only, token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["detail"], "An event keeps at least one tier");
    app.assert_invariants().await;
}

async fn stats_count_sales_and_revenue_at_order_prices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({})).await;
    let (early, vip) = (tier_id(&event, "Early bird"), tier_id(&event, "VIP"));
    let token = Some(buyer.token.as_str());
    let items = json!([{"tier_id": early, "quantity": 2}, {"tier_id": vip, "quantity": 1}]);
    let (_, paid) = place(&app, &buyer, &event, items).await;
    let pay = format!("/orders/{}/pay", paid["id"].as_str().unwrap());
    assert_eq!(app.post(&pay, token, json!({})).await.0, StatusCode::OK);
    let (status, _) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // A later price does not rewrite what was paid.
    let vip_path = format!("/events/{}/tiers/{vip}", event["id"].as_str().unwrap());
    let (status, _) = app
        .put(&vip_path, Some(&organiser.token), json!({"price_minor": 1}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let stats_path = format!("/events/{}/stats", event["id"].as_str().unwrap());
    let (status, stats) = app.get(&stats_path, Some(&organiser.token)).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["currency"], "NGN");
    assert_eq!(stats["total_tickets"], 20);
    assert_eq!(stats["paid"], 3);
    assert_eq!(stats["reserved"], 1);
    assert_eq!(stats["available"], 16);
    assert_eq!(stats["revenue_minor"], 2 * 1500 + 5000);
    let vip_stats = &stats["tiers"][1];
    assert_eq!(vip_stats["name"], "VIP");
    assert_eq!(
        (vip_stats["paid"].clone(), vip_stats["reserved"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(vip_stats["revenue_minor"], 5000);
    assert_eq!(vip_stats["available"], 1);
    let (status, _) = app.get(&stats_path, token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn a_due_order_reads_expired_and_pays_410(backend: Backend) {
    let hold = std::time::Duration::from_secs(1);
    let app = TestApp::spawn_without_sweeper_with(backend, |settings| {
        settings.ticket_hold = hold;
    })
    .await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let event = tiered_event(&app, &organiser, json!({"total_tickets": 5})).await;
    let vip = tier_id(&event, "VIP");
    let (status, order) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_str().unwrap();
    // Real time passes: a server may rely on a hold lasting until its deadline (PostgreSQL
    // remembers the sold-out VIP tier that long), so the deadline is not moved behind its back.
    tokio::time::sleep(hold + std::time::Duration::from_millis(100)).await;
    let token = Some(buyer.token.as_str());
    let path = format!("/orders/{order_id}");
    let (_, read) = app.get(&path, token).await;
    assert_eq!(read["status"], "expired");
    assert!(
        read["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "expired")
    );
    // Pay and cancel take no body.
    let pay = app
        .client
        .post(app.url(&format!("{path}/pay")))
        .bearer_auth(&buyer.token)
        .send();
    assert_eq!(pay.await.unwrap().status(), StatusCode::GONE);
    let cancel = app
        .client
        .post(app.url(&format!("{path}/cancel")))
        .bearer_auth(&buyer.token)
        .send();
    assert_eq!(cancel.await.unwrap().status(), StatusCode::CONFLICT);
    // The seats are on sale again: the order path releases the due order first.
    let (status, again) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let paid = app
        .client
        .post(app.url(&format!("/orders/{}/pay", again["id"].as_str().unwrap())))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    app.assert_invariants().await;
}

/// Orders that wait together (the event's lock held elsewhere) are placed together, and each
/// gets the answer it would get alone, in arrival order: grants, a per-person cap, a short
/// tier, a short event, a buyer deleted while waiting, and sold out.
async fn a_batch_answers_each_order_as_if_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let buyers: Vec<TestUser> = join_all((0..6).map(|_| app.register_user(None))).await;
    let limits = json!({"total_tickets": 6, "max_tickets_per_user": 3});
    let event = tiered_event(&app, &organiser, limits).await;
    let (early, vip) = (tier_id(&event, "Early bird"), tier_id(&event, "VIP"));
    let line = |tier: &str, quantity: i64| json!([{"tier_id": tier, "quantity": quantity}]);
    let orders = [
        (0, line(&early, 2), 201, "", 2),
        (0, line(&vip, 2), 409, "Limit of 3 tickets per person", 0),
        (1, line(&vip, 3), 201, "", 3),
        (2, line(&vip, 1), 409, "'VIP' is sold out", 0),
        (3, line(&early, 1), 401, "", 0),
        (4, line(&early, 2), 409, "the event has 1 left", 0),
        (5, line(&early, 1), 201, "", 1),
        (2, line(&early, 1), 409, "Event is sold out", 0),
    ];
    // The lock is held by a transaction that also deletes buyer 3, committed on release: the
    // buyer is gone by the time its order is placed, though not when it was sent.
    let delete_buyer = format!("DELETE FROM users WHERE email = '{}'", buyers[3].email);
    let event_id = event["id"].as_str().unwrap();
    let unblock = block_reservations_and(&app, event_id, Some(delete_buyer)).await;
    let pause = std::time::Duration::from_millis(60);
    let requests = orders.iter().enumerate().map(|(i, (buyer, items, ..))| {
        let (app, buyer, event) = (&app, &buyers[*buyer], &event);
        async move {
            // Sent one after another, so they wait for the lock in this order.
            tokio::time::sleep(pause * u32::try_from(i).unwrap()).await;
            place(app, buyer, event, items.clone()).await
        }
    });
    let release = async {
        tokio::time::sleep(pause * (u32::try_from(orders.len()).unwrap() + 2)).await;
        unblock.send(()).unwrap();
    };
    let (answers, ()) = tokio::join!(join_all(requests), release);
    for ((buyer, items, status, detail, tickets), (got, answer)) in orders.iter().zip(&answers) {
        let what = format!("buyer {buyer} ordering {items}: {answer}");
        assert_eq!(got.as_u16(), *status, "{what}");
        assert!(
            answer["detail"].as_str().unwrap_or("").contains(detail),
            "{what}"
        );
        let placed = answer["tickets"].as_array().map_or(0, Vec::len);
        assert_eq!(placed, *tickets, "{what}");
    }
    let (_, read) = app.get(&format!("/events/{event_id}"), None).await;
    assert_eq!(read["tickets_sold"], 6);
    app.assert_invariants().await;
}

/// Every order shows its payment (`PAYMENT_PROVIDER=none`: paying records the money taken, a
/// free order takes none). The event's creator refunds a paid order — cancelled with its
/// tickets, money and seats given back, stats counting it — and nobody else may; an order that
/// is not paid cannot be refunded; a keyed refund is replayed byte for byte.
async fn orders_show_their_payment_and_organisers_refund_paid_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer) = (app.register_user(None).await, app.register_user(None).await);
    let stranger = app.register_user(None).await;
    let mut body = json!({"total_tickets": 10, "currency": "NGN",
                          "tiers": [{"name": "VIP", "price_minor": 5000},
                                    {"name": "Free", "price_minor": 0}]});
    let event = app.create_event(&organiser.token, body.take()).await;
    let event_path = format!("/events/{}", event["id"].as_str().unwrap());
    let (vip, free) = (tier_id(&event, "VIP"), tier_id(&event, "Free"));
    let buyer_token = Some(buyer.token.as_str());

    let (status, placed) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": vip, "quantity": 2}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let payment = &placed["payment"];
    assert_eq!(
        (payment["provider"].clone(), payment["status"].clone()),
        (json!("none"), json!("none"))
    );
    assert_eq!(
        (payment["amount_minor"].clone(), payment["currency"].clone()),
        (json!(10000), json!("NGN"))
    );
    let order = placed["id"].as_str().unwrap().to_owned();
    let refund = format!("/orders/{order}/refund");
    let (status, body) = app.post(&refund, Some(&organiser.token), json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a reserved order is not paid: {body}"
    );

    let (status, paid) = app
        .post(&format!("/orders/{order}/pay"), buyer_token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(paid["payment"]["refunded_minor"], 0);
    assert_eq!(paid["payment"]["updated_at"], paid["paid_at"]);

    for (who, token) in [("the buyer", &buyer.token), ("a stranger", &stranger.token)] {
        let (status, body) = app.post(&refund, Some(token), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
    }
    let unknown = format!("/orders/{}/refund", uuid::Uuid::new_v4());
    let (status, _) = app.post(&unknown, Some(&organiser.token), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, before) = app.get(&event_path, None).await;
    assert_eq!(before["tickets_available"], 8);

    let keyed = || {
        app.client
            .post(app.url(&refund))
            .bearer_auth(&organiser.token)
            .header("Idempotency-Key", "refund-1")
            .send()
    };
    let first = keyed().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.text().await.unwrap();
    let refunded: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(refunded["status"], "cancelled");
    assert_eq!(refunded["paid_at"], Value::Null);
    assert!(
        refunded["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "cancelled")
    );
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert_eq!(refunded["payment"]["refunded_minor"], 10000);
    let replay = keyed().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first);
    let (status, body) = app.post(&refund, Some(&organiser.token), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "refunded already: {body}");
    let (_, read) = app.get(&format!("/orders/{order}"), buyer_token).await;
    assert_eq!(read["payment"], refunded["payment"]);
    let ticket = format!(
        "/tickets/{}",
        refunded["tickets"][0]["id"].as_str().unwrap()
    );
    let (_, ticket) = app.get(&ticket, buyer_token).await;
    assert_eq!(
        ticket["payment"], refunded["payment"],
        "a ticket shows its order's payment"
    );

    let (_, after) = app.get(&event_path, None).await;
    assert_eq!(after["tickets_available"], 10, "the seats are back on sale");
    let (_, stats) = app
        .get(&format!("{event_path}/stats"), Some(&organiser.token))
        .await;
    assert_eq!(
        (stats["paid"].clone(), stats["revenue_minor"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(stats["refunded_minor"], 10000);

    let (_, gratis) = place(
        &app,
        &buyer,
        &event,
        json!([{"tier_id": free, "quantity": 1}]),
    )
    .await;
    let pay_free = format!("/orders/{}/pay", gratis["id"].as_str().unwrap());
    let (status, gratis) = app.post(&pay_free, buyer_token, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            gratis["status"].clone(),
            gratis["payment"]["status"].clone()
        ),
        (json!("paid"), json!("none")),
        "a free order takes no money"
    );
    let refund_free = format!("/orders/{}/refund", gratis["id"].as_str().unwrap());
    let (status, gratis) = app
        .post(&refund_free, Some(&organiser.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{gratis}");
    assert_eq!(
        (
            gratis["payment"]["status"].clone(),
            gratis["payment"]["refunded_minor"].clone()
        ),
        (json!("refunded"), json!(0)),
        "a free order's refund is recorded only"
    );
    app.assert_invariants().await;
}

/// Cancellations that arrive together (on PostgreSQL they share a transaction): each answers
/// as if alone — one 200 per order, its repeats 409, a stranger's 403 — and every seat comes
/// back once.
async fn cancellations_at_once_each_answer_as_if_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let event = app
        .create_event(&organiser.token, json!({"total_tickets": 40}))
        .await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    let stranger = app.register_user(None).await;
    let mut orders = Vec::new();
    for _ in 0..10 {
        let buyer = app.register_user(None).await;
        let (status, ticket) = app
            .post(
                "/tickets/",
                Some(&buyer.token),
                json!({"event_id": event_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        orders.push((buyer, ticket["order_id"].as_str().unwrap().to_owned()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (buyer, order) in &orders {
        for token in [&buyer.token, &buyer.token, &buyer.token, &stranger.token] {
            let url = app.url(&format!("/orders/{order}/cancel"));
            let (client, token, order) = (app.client.clone(), token.clone(), order.clone());
            tasks.spawn(async move {
                let sent = client.post(url).bearer_auth(&token).send().await.unwrap();
                (order, token, sent.status())
            });
        }
    }
    let mut done = std::collections::HashMap::<String, usize>::new();
    while let Some(answer) = tasks.join_next().await {
        let (order, token, status) = answer.unwrap();
        if token == stranger.token {
            assert_eq!(status, StatusCode::FORBIDDEN);
        } else if status == StatusCode::OK {
            *done.entry(order).or_default() += 1;
        } else {
            assert_eq!(status, StatusCode::CONFLICT);
        }
    }
    assert_eq!(done.len(), 10, "every order cancelled");
    assert!(done.values().all(|n| *n == 1), "once each: {done:?}");
    let (_, read) = app.get(&format!("/events/{event_id}"), None).await;
    assert_eq!(read["tickets_available"], 40);
    app.assert_invariants().await;
    assert_releases_recorded(backend, &app.database.url).await;
}
