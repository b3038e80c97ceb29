//! Reservations, payment, cancellation, expiry and idempotency, including under concurrency.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser};

backend_tests!(
    reserve_pay_and_read_a_ticket,
    concurrent_buyers_never_oversell,
    two_app_instances_share_one_capacity,
    cancel_returns_the_seat_at_once,
    holds_expire_on_time_and_the_seat_returns,
    a_due_hold_reads_expired_before_any_sweep,
    payment_and_expiry_never_both_win,
    owners_only_and_unknown_ids,
    started_events_refuse_reservations,
    my_tickets_filters_pages_and_counts,
    idempotent_retries_get_the_first_answer,
    a_vanished_user_does_not_spoil_concurrent_reservations,
);

async fn users(app: &TestApp, count: usize) -> Vec<TestUser> {
    join_all((0..count).map(|_| app.register_user(None))).await
}

async fn reserve(app: &TestApp, user: &TestUser, event_id: &str) -> (StatusCode, Value) {
    app.post(
        "/tickets/",
        Some(&user.token),
        json!({"event_id": event_id}),
    )
    .await
}

async fn reserve_many(
    app: &TestApp,
    users: &[TestUser],
    event_id: &str,
    requests: usize,
) -> BTreeMap<u16, usize> {
    let answers =
        join_all((0..requests).map(|i| reserve(app, &users[i % users.len()], event_id))).await;
    let mut counts = BTreeMap::new();
    for (status, body) in answers {
        if status == StatusCode::CONFLICT {
            assert!(
                body["detail"].as_str().unwrap().contains("sold out"),
                "{body}"
            );
        }
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

async fn reserve_pay_and_read_a_ticket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&owner.token, json!({"total_tickets": 5}))
        .await;
    let event_id = event["id"].as_str().unwrap();

    let (status, ticket) = reserve(&app, &buyer, event_id).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["status"], "reserved");
    assert_eq!(ticket["is_reserved"], true);
    assert_eq!(ticket["is_paid"], false);
    assert_eq!(ticket["is_expired"], false);
    assert_eq!(ticket["paid_at"], Value::Null);
    assert_eq!(ticket["user_id"], buyer.id.as_str());
    assert_eq!(ticket["user"]["email"], buyer.email.as_str());
    assert_eq!(ticket["event"]["title"], "Afrobeats Night");
    assert_eq!(ticket["event"]["venue_name"], "Eko Hall");
    let created =
        chrono::DateTime::parse_from_rfc3339(ticket["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(ticket["expires_at"].as_str().unwrap()).unwrap();
    let hold = (expires - created).num_seconds();
    assert!(
        (119..=121).contains(&hold),
        "hold is TICKET_EXPIRATION_TIME (120 s), got {hold}"
    );
    let (_, event_now) = app.get(&format!("/events/{event_id}"), None).await;
    assert_eq!(event_now["tickets_sold"], 1);
    assert_eq!(event_now["tickets_available"], 4);

    let ticket_path = format!("/tickets/{}", ticket["id"].as_str().unwrap());
    // Existing clients send no body and no content type.
    let response = app
        .client
        .post(app.url(&format!("{ticket_path}/pay")))
        .bearer_auth(&buyer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let paid: Value = response.json().await.unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["is_paid"], true);
    assert!(paid["paid_at"].is_string());
    assert!(paid["event"]["id"].is_string() && paid["user"]["id"].is_string());

    let (status, again) = app
        .ticket_action(&ticket_path, Some(&buyer.token), "pay")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, fetched) = app.get(&ticket_path, Some(&buyer.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["status"], "paid");
    assert_eq!(
        app.get(&format!("/events/{event_id}"), None).await.1["tickets_sold"],
        1
    );

    let (status, body) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .post("/tickets/", Some(&buyer.token), json!({"event_id": "nope"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "event_id"]));
    assert_eq!(
        app.post("/tickets/", None, json!({"event_id": event_id}))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    app.assert_invariants().await;
}

async fn concurrent_buyers_never_oversell(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyers = users(&app, 50).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 50}))
        .await;
    let counts = reserve_many(&app, &buyers, event["id"].as_str().unwrap(), 500).await;
    assert_eq!(counts, BTreeMap::from([(201, 50), (409, 450)]));
    let (_, event) = app
        .get(&format!("/events/{}", event["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(event["tickets_sold"], 50);
    assert_eq!(event["is_sold_out"], true);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 50);
    app.assert_invariants().await;
}

async fn two_app_instances_share_one_capacity(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = first.spawn_sibling(|_| {}).await;
    let buyers = users(&first, 30).await;
    let event = first
        .create_event(&buyers[0].token, json!({"total_tickets": 100}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let answers = join_all((0..300).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        reserve(app, &buyers[i % buyers.len()], event_id)
    }))
    .await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (100, 200));
    assert_eq!(
        first
            .scalar("SELECT COUNT(*) FROM tickets WHERE status = 'reserved'")
            .await,
        100
    );
    first.assert_invariants().await;
    second.stop().await;
}

async fn cancel_returns_the_seat_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyers = users(&app, 2).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 1}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let (_, ticket) = reserve(&app, &buyers[0], event_id).await;
    let ticket_path = format!("/tickets/{}", ticket["id"].as_str().unwrap());
    assert_eq!(
        reserve(&app, &buyers[1], event_id).await.0,
        StatusCode::CONFLICT
    );

    let (status, cancelled) = app
        .ticket_action(&ticket_path, Some(&buyers[0].token), "cancel")
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["is_reserved"], false);
    assert_eq!(
        app.get(&format!("/events/{event_id}"), None).await.1["tickets_sold"],
        0
    );

    let (status, _) = app
        .ticket_action(&ticket_path, Some(&buyers[0].token), "cancel")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .ticket_action(&ticket_path, Some(&buyers[0].token), "pay")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        reserve(&app, &buyers[1], event_id).await.0,
        StatusCode::CREATED
    );

    // A paid ticket cannot be cancelled.
    let (_, mine) = app
        .get(
            "/tickets/my-tickets?status=reserved",
            Some(&buyers[1].token),
        )
        .await;
    let other_path = format!("/tickets/{}", mine["tickets"][0]["id"].as_str().unwrap());
    assert_eq!(
        app.ticket_action(&other_path, Some(&buyers[1].token), "pay")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.ticket_action(&other_path, Some(&buyers[1].token), "cancel")
            .await
            .0,
        StatusCode::CONFLICT
    );
    app.assert_invariants().await;
}

async fn holds_expire_on_time_and_the_seat_returns(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.ticket_hold = std::time::Duration::from_secs(2)
    })
    .await;
    let buyers = users(&app, 2).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 1}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let event_path = format!("/events/{event_id}");
    let (status, ticket) = reserve(&app, &buyers[0], event_id).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.get(&event_path, None).await.1["is_sold_out"], true);
    assert_eq!(
        reserve(&app, &buyers[1], event_id).await.0,
        StatusCode::CONFLICT
    );

    // Capacity must be back within 2 s of the deadline (the sweeper runs every 0.2 s here).
    tokio::time::sleep(Duration::from_millis(2000 + 1500)).await;
    let ticket_path = format!("/tickets/{}", ticket["id"].as_str().unwrap());
    let (_, seen) = app.get(&ticket_path, Some(&buyers[0].token)).await;
    assert_eq!(seen["status"], "expired");
    assert_eq!(seen["is_expired"], true);
    let (_, event_now) = app.get(&event_path, None).await;
    assert_eq!(
        event_now["tickets_sold"], 0,
        "the sweeper gave the seat back"
    );
    assert_eq!(event_now["tickets_available"], 1);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM tickets WHERE status = 'expired'")
            .await,
        1
    );

    let (status, body) = app
        .ticket_action(&ticket_path, Some(&buyers[0].token), "pay")
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(
        reserve(&app, &buyers[1], event_id).await.0,
        StatusCode::CREATED
    );
    app.assert_invariants().await;
}

async fn a_due_hold_reads_expired_before_any_sweep(backend: Backend) {
    let hold = std::time::Duration::from_secs(1);
    let app = TestApp::spawn_without_sweeper_with(backend, |settings| {
        settings.ticket_hold = hold;
    })
    .await;
    let buyers = users(&app, 2).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 1}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let (_, ticket) = reserve(&app, &buyers[0], event_id).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    // Real time passes: a server may rely on a hold lasting until its deadline (PostgreSQL
    // remembers a sold-out event that long), so the deadline is not moved behind its back.
    tokio::time::sleep(hold + std::time::Duration::from_millis(100)).await;
    let (_, seen) = app
        .get(&format!("/tickets/{ticket_id}"), Some(&buyers[0].token))
        .await;
    assert_eq!(seen["status"], "expired");
    let (_, mine) = app
        .get("/tickets/my-tickets?status=expired", Some(&buyers[0].token))
        .await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["tickets"][0]["status"], "expired");
    let (_, mine) = app
        .get(
            "/tickets/my-tickets?status=reserved",
            Some(&buyers[0].token),
        )
        .await;
    assert_eq!(mine["total"], 0);
    assert_eq!(
        app.ticket_action(
            &format!("/tickets/{ticket_id}"),
            Some(&buyers[0].token),
            "pay"
        )
        .await
        .0,
        StatusCode::GONE
    );
    assert_eq!(
        app.ticket_action(
            &format!("/tickets/{ticket_id}"),
            Some(&buyers[0].token),
            "cancel"
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    // With no sweeper, the reservation path itself reclaims the due hold before "sold out".
    let (status, body) = reserve(&app, &buyers[1], event_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.assert_invariants().await;
}

async fn payment_and_expiry_never_both_win(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.ticket_hold = std::time::Duration::from_secs(1);
        settings.sweep_interval = std::time::Duration::from_millis(50);
    })
    .await;
    let sweeper_twin = app
        .spawn_sibling(|settings| settings.sweep_interval = std::time::Duration::from_millis(50))
        .await;
    let buyers = users(&app, 10).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 200}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let mut tickets = Vec::new();
    for round in 0..4 {
        let batch = join_all(buyers.iter().map(|buyer| reserve(&app, buyer, event_id))).await;
        for (i, (status, ticket)) in batch.into_iter().enumerate() {
            assert_eq!(status, StatusCode::CREATED);
            tickets.push((i, ticket["id"].as_str().unwrap().to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(50 * round)).await;
    }
    // Pay each ticket right around its 1 s deadline while two sweepers run.
    tokio::time::sleep(Duration::from_millis(950)).await;
    let (app_ref, buyers_ref) = (&app, &buyers);
    let answers = join_all(tickets.iter().map(|(buyer, id)| async move {
        app_ref
            .post(
                &format!("/tickets/{id}/pay"),
                Some(&buyers_ref[*buyer].token),
                json!({}),
            )
            .await
    }))
    .await;
    let paid: HashSet<&str> = answers
        .iter()
        .zip(&tickets)
        .filter(|((status, _), _)| *status == StatusCode::OK)
        .map(|(_, (_, id))| id.as_str())
        .collect();
    for (status, body) in &answers {
        assert!(matches!(status.as_u16(), 200 | 410), "{status}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paid_rows = app
        .scalar("SELECT COUNT(*) FROM tickets WHERE status = 'paid'")
        .await;
    let expired_rows = app
        .scalar("SELECT COUNT(*) FROM tickets WHERE status = 'expired'")
        .await;
    assert_eq!(
        paid_rows as usize,
        paid.len(),
        "every 200 is a paid ticket and nothing else is"
    );
    assert_eq!(
        paid_rows + expired_rows,
        tickets.len() as i64,
        "each ticket ends paid xor expired"
    );
    let late = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM tickets WHERE status = 'paid' AND paid_at >= expires_at"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM tickets WHERE status = 'paid' AND paid_at >= expires_at"
        }
    };
    assert_eq!(
        app.scalar(late).await,
        0,
        "no payment accepted after its deadline"
    );
    let (_, event_now) = app.get(&format!("/events/{event_id}"), None).await;
    assert_eq!(event_now["tickets_sold"], paid_rows);
    app.assert_invariants().await;
    sweeper_twin.stop().await;
}

async fn owners_only_and_unknown_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyers = users(&app, 2).await;
    let event = app.create_event(&buyers[0].token, json!({})).await;
    let (_, ticket) = reserve(&app, &buyers[0], event["id"].as_str().unwrap()).await;
    let ticket_path = format!("/tickets/{}", ticket["id"].as_str().unwrap());
    let intruder = Some(buyers[1].token.as_str());

    let (status, body) = app.get(&ticket_path, intruder).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app.ticket_action(&ticket_path, intruder, "pay").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("your own tickets"),
        "{body}"
    );
    let (status, _) = app.ticket_action(&ticket_path, intruder, "cancel").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&ticket_path, Some(&buyers[0].token)).await.1["status"],
        "reserved"
    );

    let unknown = format!("/tickets/{}", uuid::Uuid::new_v4());
    assert_eq!(app.get(&unknown, intruder).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.ticket_action(&unknown, intruder, "pay").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.ticket_action(&unknown, intruder, "cancel").await.0,
        StatusCode::NOT_FOUND
    );
    for path in ["/tickets/xyz", "/tickets/xyz/pay", "/tickets/xyz/cancel"] {
        let (status, body) = if path.ends_with("xyz") {
            app.get(path, intruder).await
        } else {
            app.post(path, intruder, json!({})).await
        };
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(body["detail"][0]["loc"], json!(["path", "ticket_id"]));
    }
    assert_eq!(
        app.get(&ticket_path, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn started_events_refuse_reservations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let start = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let event = app
        .create_event(
            &user.token,
            json!({"start_time": start.to_rfc3339(),
            "end_time": (start + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, body) = reserve(&app, &user, event["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("started"),
        "{body}"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 0);
}

async fn my_tickets_filters_pages_and_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyer = app.register_user(None).await;
    let other = app.register_user(None).await;
    let event = app
        .create_event(&buyer.token, json!({"title": "Gig"}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (_, ticket) = reserve(&app, &buyer, event_id).await;
        ids.push(ticket["id"].as_str().unwrap().to_owned());
    }
    reserve(&app, &other, event_id).await;
    app.post(
        &format!("/tickets/{}/pay", ids[0]),
        Some(&buyer.token),
        json!({}),
    )
    .await;
    app.post(
        &format!("/tickets/{}/cancel", ids[1]),
        Some(&buyer.token),
        json!({}),
    )
    .await;

    let token = Some(buyer.token.as_str());
    let (status, all) = app.get("/tickets/my-tickets", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["total"], 5);
    assert_eq!(all["skip"], 0);
    assert_eq!(all["limit"], 100);
    let listed: Vec<&str> = all["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    let first = &all["tickets"][0];
    assert_eq!(first["event_title"], "Gig");
    assert_eq!(first["event_start_time"], event["start_time"]);
    assert_eq!(first["event"]["id"], event_id);
    assert_eq!(first["event_id"], event_id);

    for (status, expected) in [
        ("paid", 1),
        ("cancelled", 1),
        ("reserved", 3),
        ("expired", 0),
        ("PAID", 1),
        ("", 5),
    ] {
        let (code, page) = app
            .get(&format!("/tickets/my-tickets?status={status}"), token)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(page["total"], expected, "{status}");
    }
    let (_, page) = app.get("/tickets/my-tickets?limit=2&skip=1", token).await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(page["tickets"][0]["id"], ids[3].as_str());
    let (_, page) = app.get("/tickets/my-tickets?skip=9", token).await;
    assert_eq!(page["tickets"], json!([]));
    assert_eq!(page["total"], 5);

    for bad in ["status=refunded", "limit=0", "limit=1001", "skip=-2"] {
        let (status, body) = app.get(&format!("/tickets/my-tickets?{bad}"), token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["detail"][0]["loc"][0], "query");
    }
}

async fn idempotent_retries_get_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&buyer.token, json!({"total_tickets": 10}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let send = |body: Value, key: String| {
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let responses =
        join_all((0..20).map(|_| send(json!({"event_id": event_id}), key.clone()))).await;
    let mut answers = Vec::new();
    for response in responses {
        let response = response.unwrap();
        answers.push((response.status(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::CREATED);
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "all 20 answers identical"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 1);
    assert_eq!(
        app.get(&format!("/events/{event_id}"), None).await.1["tickets_sold"],
        1
    );

    // The same key with a different body is refused.
    let other_event = app.create_event(&buyer.token, json!({})).await;
    let response = send(json!({"event_id": other_event["id"]}), key.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["header", "Idempotency-Key"])
    );

    // Keys are per user: another user's identical key is a new request.
    let stranger = app.register_user(None).await;
    let response = app
        .client
        .post(app.url("/tickets/"))
        .bearer_auth(&stranger.token)
        .header("Idempotency-Key", key.clone())
        .json(&json!({"event_id": event_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Pay is idempotent too: the retry gets the same 200, not a 409.
    let ticket: Value = serde_json::from_str(&answers[0].1).unwrap();
    let pay_path = app.url(&format!("/tickets/{}/pay", ticket["id"].as_str().unwrap()));
    let pay = || {
        app.client
            .post(&pay_path)
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "pay-once")
            .send()
    };
    let first = pay().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first_body = first.text().await.unwrap();
    let retry = pay().await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.text().await.unwrap(), first_body);

    let response = app
        .client
        .post(&pay_path)
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.assert_invariants().await;
}

async fn a_vanished_user_does_not_spoil_concurrent_reservations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyers = users(&app, 8).await;
    let event = app
        .create_event(&buyers[0].token, json!({"total_tickets": 100}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    // A user removed behind the service's back; their token is still well signed.
    let gone = &buyers[7];
    let delete = match backend {
        Backend::Sqlite => format!(
            "DELETE FROM users WHERE id = X'{}' RETURNING 1",
            gone.id.replace('-', "")
        ),
        Backend::Postgres => format!(
            "DELETE FROM users WHERE id = '{}' RETURNING 1::bigint",
            gone.id
        ),
    };
    assert_eq!(app.scalar(&delete).await, 1);
    let answers =
        join_all((0..64).map(|i| reserve(&app, &buyers[i % buyers.len()], event_id))).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        let expected = if i % buyers.len() == 7 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::CREATED
        };
        assert_eq!(*status, expected, "request {i}: {body}");
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 56);
    app.assert_invariants().await;
}
