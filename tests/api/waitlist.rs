//! The waiting list (WAITLIST.md), over HTTP on both backends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser, error_locs, loc};

backend_tests!(
    joining_follows_the_rules_in_order,
    seats_that_come_back_go_to_the_line_first,
    an_offer_that_lapses_goes_to_the_next_and_not_back_in_line,
    the_organiser_sees_the_line_and_removes_from_it,
    lines_close_when_the_list_is_disabled_a_tier_deleted_or_the_event_starts,
    a_storm_of_returns_never_offers_a_seat_twice,
    seats_a_rule_change_puts_on_sale_go_to_the_line,
    a_line_and_a_user_have_limits,
    joins_that_arrive_together_are_judged_one_after_another,
    a_joins_rank_leaves_out_lines_that_closed,
    a_deleted_tier_or_event_takes_its_line_along,
);

/// An event of `seats` seats (one tier) with its waiting list open; its id and tier id.
async fn line_event(app: &TestApp, creator: &TestUser, seats: i64) -> (String, String) {
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": seats, "waitlist_enabled": true}),
        )
        .await;
    let id = event["id"].as_str().unwrap().to_owned();
    let tier = event["tiers"][0]["id"].as_str().unwrap().to_owned();
    (id, tier)
}

async fn join(app: &TestApp, user: &TestUser, event: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/events/{event}/waitlist"),
        Some(&user.token),
        body,
    )
    .await
}

async fn entry(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let (status, entry) = app.get(&format!("/waitlist/{id}"), Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    entry
}

async fn cancel(app: &TestApp, user: &TestUser, order: &Value) {
    let id = order["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/orders/{id}/cancel"),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn available(app: &TestApp, event: &str) -> i64 {
    let (_, event) = app.get(&format!("/events/{event}"), None).await;
    event["tickets_available"].as_i64().unwrap()
}

/// Polls `check` on the entry until it holds (the sweeper's work), at most 5 s.
async fn until(app: &TestApp, user: &TestUser, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let read = entry(app, user, id).await;
        if check(&read) {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("entry {id} never got there: {}", entry(app, user, id).await);
}

async fn joining_follows_the_rules_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let waiter = app.register_user(None).await;
    let (event, tier) = line_event(&app, &creator, 2).await;

    let (status, body) = join(&app, &waiter, &event, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "rule 9: seats on sale");
    assert_eq!(body["detail"], "Tickets are available: order them instead");
    app.order(&buyer, &event, &tier, 2).await;

    let (status, body) = join(&app, &waiter, &event, json!({"quantity": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), vec![loc(&["body", "quantity"])]);
    let (status, body) = join(&app, &waiter, &event, json!({"tier_id": "nope"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = join(&app, &waiter, &unknown.to_string(), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["detail"], format!("Event with ID {unknown} not found"));
    let (status, body) = join(&app, &waiter, &event, json!({"tier_id": unknown})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), vec![loc(&["body", "tier_id"])]);

    let closed = app
        .create_event(&creator.token, json!({"total_tickets": 1}))
        .await;
    let closed_id = closed["id"].as_str().unwrap();
    let closed_tier = closed["tiers"][0]["id"].as_str().unwrap();
    app.order(&buyer, closed_id, closed_tier, 1).await;
    let (status, body) = join(&app, &waiter, closed_id, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Waiting list is not open for this event");

    let (status, joined) = join(
        &app,
        &waiter,
        &event,
        json!({"tier_id": tier, "quantity": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{joined}");
    assert_eq!(joined["status"], "waiting");
    assert_eq!(joined["position"], 1);
    assert_eq!(joined["quantity"], 2);
    assert_eq!(joined["tier_name"], "General admission");
    assert_eq!(joined["offer"], Value::Null);
    assert_eq!(joined["user"]["id"], waiter.id.as_str());
    assert_eq!(joined["event"]["id"], event.as_str());
    let id = joined["id"].as_str().unwrap();
    let (status, body) = join(&app, &waiter, &event, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["detail"],
        format!("Already on the waiting list for this event (entry {id})")
    );

    // Its user and the event's creator may read it; nobody else.
    assert_eq!(entry(&app, &waiter, id).await, joined);
    assert_eq!(entry(&app, &creator, id).await["id"], id);
    let (status, _) = app
        .get(&format!("/waitlist/{id}"), Some(&buyer.token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(&format!("/waitlist/{unknown}"), Some(&buyer.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, mine) = app.get("/waitlist/mine/", Some(&waiter.token)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["entries"][0], joined);
    let (status, body) = app
        .get("/waitlist/mine?status=bogus", Some(&waiter.token))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A key replays the first answer byte for byte.
    let other = app.register_user(None).await;
    let path = app.url(&format!("/events/{event}/waitlist"));
    let send = || {
        app.client
            .post(&path)
            .bearer_auth(&other.token)
            .header("Idempotency-Key", "join-1")
            .json(&json!({}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.bytes().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first);

    // Leaving is final.
    let (status, left) = app
        .delete(&format!("/waitlist/{id}"), Some(&waiter.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(
        (&left["status"], &left["position"]),
        (&json!("left"), &Value::Null)
    );
    let (status, body) = app
        .delete(&format!("/waitlist/{id}"), Some(&waiter.token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Entry is already left");
    let (status, _) = app
        .delete(&format!("/waitlist/{id}"), Some(&creator.token))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the creator removes, never leaves"
    );
    app.assert_invariants().await;
}

async fn seats_that_come_back_go_to_the_line_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let (a, e) = (app.register_user(None).await, app.register_user(None).await);
    let (b, c, d) = (
        app.register_user(None).await,
        app.register_user(None).await,
        app.register_user(None).await,
    );
    let (event, tier) = line_event(&app, &creator, 2).await;
    let order_a = app.order(&a, &event, &tier, 1).await;
    let order_e = app.order(&e, &event, &tier, 1).await;
    let (_, entry_b) = join(&app, &b, &event, json!({"quantity": 2})).await;
    let (_, entry_c) = join(&app, &c, &event, json!({})).await;
    let (_, entry_d) = join(&app, &d, &event, json!({"tier_id": tier})).await;
    let ids = [&entry_b, &entry_c, &entry_d].map(|e| e["id"].as_str().unwrap().to_owned());
    assert_eq!(
        [&entry_b, &entry_c, &entry_d].map(|e| e["position"].clone()),
        [json!(1), json!(2), json!(3)]
    );

    // One seat back: the group of two keeps its place, the next who fits gets it.
    cancel(&app, &e, &order_e).await;
    let c_now = entry(&app, &c, &ids[1]).await;
    assert_eq!(c_now["status"], "offered", "{c_now}");
    let offer = &c_now["offer"];
    assert_eq!(
        (&offer["quantity"], &offer["tier_id"]),
        (&json!(1), &json!(tier))
    );
    let (status, offered) = app
        .get(
            &format!("/orders/{}", offer["order_id"].as_str().unwrap()),
            Some(&c.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(offered["status"], "reserved");
    assert_eq!(offered["waitlist_entry_id"], ids[1].as_str());
    assert_eq!(
        available(&app, &event).await,
        0,
        "the seat never reached the public"
    );
    assert_eq!(entry(&app, &b, &ids[0]).await["position"], 1);
    assert_eq!(entry(&app, &d, &ids[2]).await["position"], 2);
    let outsider = app.register_user(None).await;
    let body = json!({"event_id": event, "items": [{"tier_id": tier, "quantity": 1}]});
    let (status, _) = app.post("/orders/", Some(&outsider.token), body).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another: D, behind the group, again.
    cancel(&app, &a, &order_a).await;
    assert_eq!(entry(&app, &d, &ids[2]).await["status"], "offered");

    // C declines: one seat back, the group still cannot be served, so it goes on sale.
    let (status, declined) = app
        .delete(&format!("/waitlist/{}", ids[1]), Some(&c.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{declined}");
    assert_eq!(declined["status"], "left");
    assert_eq!(
        declined["offer"]["quantity"], 1,
        "the offer is kept after it ends"
    );
    assert_eq!(available(&app, &event).await, 1);

    // Capacity raised: the group's two seats exist now; the answer shows them taken.
    let (status, raised) = app
        .put(
            &format!("/events/{event}"),
            Some(&creator.token),
            json!({"total_tickets": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{raised}");
    assert_eq!(raised["tickets_sold"], 3, "{raised}");
    let b_now = entry(&app, &b, &ids[0]).await;
    assert_eq!(b_now["status"], "offered");
    let order_b = b_now["offer"]["order_id"].as_str().unwrap();
    let (status, paid) = app
        .post(&format!("/orders/{order_b}/pay"), Some(&b.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(entry(&app, &b, &ids[0]).await["status"], "purchased");

    let (status, stats) = app
        .get(&format!("/events/{event}/stats"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let expected = json!({"waiting": 0, "waiting_seats": 0, "offered": 1, "purchased": 1,
        "expired": 0, "left": 1, "removed": 0, "closed": 0});
    assert_eq!(stats["waitlist"], expected, "{stats}");
    assert_eq!(
        stats["tiers"][0]["waitlist"]["offered"], 1,
        "D chose the tier"
    );
    app.assert_invariants().await;
}

async fn an_offer_that_lapses_goes_to_the_next_and_not_back_in_line(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.waitlist.offer = Duration::from_secs(1);
    })
    .await;
    let creator = app.register_user(None).await;
    let (holder, first, second) = (
        app.register_user(None).await,
        app.register_user(None).await,
        app.register_user(None).await,
    );
    let (event, tier) = line_event(&app, &creator, 1).await;
    let held = app.order(&holder, &event, &tier, 1).await;
    let (_, one) = join(&app, &first, &event, json!({})).await;
    let (_, two) = join(&app, &second, &event, json!({})).await;
    let (one, two) = (one["id"].as_str().unwrap(), two["id"].as_str().unwrap());
    cancel(&app, &holder, &held).await;
    let offered = entry(&app, &first, one).await;
    assert_eq!(offered["status"], "offered");
    let offered_at = offered["offer"]["offered_at"].as_str().unwrap();
    let expires_at = offered["offer"]["expires_at"].as_str().unwrap();
    let span = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap()
        - chrono::DateTime::parse_from_rfc3339(offered_at).unwrap();
    assert_eq!(
        span.num_seconds(),
        1,
        "WAITLIST_OFFER_MINUTES as the entry joined"
    );

    let lapsed = until(&app, &first, one, |e| e["status"] == "expired").await;
    assert_eq!(lapsed["position"], Value::Null);
    let next = until(&app, &second, two, |e| e["status"] == "offered").await;
    assert_eq!(next["offer"]["quantity"], 1);
    // The sweeper wrote it: stored, not only read so.
    let stored = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM waitlist_entries WHERE status = 'expired' AND user_id = {}",
            uuid_literal(backend, &first.id)
        ))
        .await;
    assert_eq!(stored, 1);
    // Not put back in line: joining again goes to the back.
    let (status, _) = join(&app, &first, &event, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    app.assert_invariants().await;
}

fn uuid_literal(backend: Backend, id: &str) -> String {
    match backend {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.replace('-', "")),
    }
}

async fn the_organiser_sees_the_line_and_removes_from_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let holder = app.register_user(None).await;
    let (event, tier) = line_event(&app, &creator, 1).await;
    let held = app.order(&holder, &event, &tier, 1).await;
    let mut waiting = Vec::new();
    for rank in 1..=3 {
        let user = app.register_user(None).await;
        let (status, joined) = join(&app, &user, &event, json!({})).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(joined["position"], rank, "a join answers its rank");
        waiting.push((user, joined["id"].as_str().unwrap().to_owned()));
    }
    let path = format!("/events/{event}/waitlist");
    let (status, line) = app.get(&path, Some(&creator.token)).await;
    assert_eq!(status, StatusCode::OK, "{line}");
    assert_eq!(
        (&line["total"], &line["skip"], &line["limit"]),
        (&json!(3), &json!(0), &json!(100))
    );
    let positions: Vec<_> = line["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].clone())
        .collect();
    assert_eq!(positions, [json!(1), json!(2), json!(3)]);
    assert_eq!(
        app.get(&path, Some(&holder.token)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, page) = app
        .get(&format!("{path}?limit=1&skip=1"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["entries"][0]["id"], waiting[1].1.as_str());

    // The first is offered the seat; the creator removes them: the order is cancelled and
    // the seat goes to the next.
    cancel(&app, &holder, &held).await;
    let (status, offered) = app
        .get(&format!("{path}?status=offered"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(offered["total"], 1);
    let first = &waiting[0].1;
    let (status, removed) = app
        .delete(&format!("{path}/{first}"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["status"], "removed");
    let order_id = removed["offer"]["order_id"].as_str().unwrap();
    let (_, cancelled) = app
        .get(&format!("/orders/{order_id}"), Some(&waiting[0].0.token))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        entry(&app, &waiting[1].0, &waiting[1].1).await["status"],
        "offered"
    );
    let (status, _) = app
        .delete(&format!("{path}/{first}"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .delete(&format!("{path}/{}", waiting[2].1), Some(&holder.token))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = app.create_event(&creator.token, json!({})).await;
    let (status, _) = app
        .delete(
            &format!(
                "/events/{}/waitlist/{}",
                other["id"].as_str().unwrap(),
                waiting[2].1
            ),
            Some(&creator.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another event's entry");
    let (_, stats) = app
        .get(&format!("/events/{event}/stats"), Some(&creator.token))
        .await;
    let expected = json!({"waiting": 1, "waiting_seats": 1, "offered": 1, "purchased": 0,
        "expired": 0, "left": 0, "removed": 1, "closed": 0});
    assert_eq!(stats["waitlist"], expected, "{stats}");
    // An open offer keeps the event.
    let (status, _) = app
        .delete(&format!("/events/{event}"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.assert_invariants().await;
}

async fn lines_close_when_the_list_is_disabled_a_tier_deleted_or_the_event_starts(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    // A seat more than the tiers sell: raising a tier puts it on sale.
    let body = json!({"total_tickets": 3, "waitlist_enabled": true, "tiers": [
        {"name": "Floor", "price_minor": 1000, "quantity": 1},
        {"name": "Balcony", "price_minor": 500, "quantity": 1}]});
    let event = app.create_event(&creator.token, body).await;
    let id = event["id"].as_str().unwrap();
    let floor = event["tiers"][0]["id"].as_str().unwrap();
    let balcony = event["tiers"][1]["id"].as_str().unwrap();
    app.order(&buyer, id, floor, 1).await;
    let (u1, u2) = (app.register_user(None).await, app.register_user(None).await);
    // Balcony is still on sale: its line is refused, any tier too.
    let (status, _) = join(&app, &u1, id, json!({"tier_id": balcony})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, floor_entry) = join(&app, &u1, id, json!({"tier_id": floor})).await;
    assert_eq!(status, StatusCode::CREATED, "{floor_entry}");
    let floor_entry = floor_entry["id"].as_str().unwrap();
    app.order(&buyer, id, balcony, 1).await;
    let (status, any) = join(&app, &u2, id, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{any}");
    let any = any["id"].as_str().unwrap();

    // A raised Balcony goes to the any-tier entry, not to Floor's line.
    let (status, _) = app
        .put(
            &format!("/events/{id}/tiers/{balcony}"),
            Some(&creator.token),
            json!({"quantity": 2}),
        )
        .await;
    assert!(status.is_success());
    let (_, raised) = app.get(&format!("/events/{id}"), None).await;
    assert_eq!(raised["tickets_available"], 0, "{raised}");
    assert_eq!(entry(&app, &u2, any).await["status"], "offered");
    assert_eq!(entry(&app, &u1, floor_entry).await["status"], "waiting");

    // Disabling the list closes its waiting entries; the open offer runs its course.
    let (status, _) = app
        .put(
            &format!("/events/{id}"),
            Some(&creator.token),
            json!({"waitlist_enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let closed = entry(&app, &u1, floor_entry).await;
    assert_eq!(
        (&closed["status"], &closed["closed_reason"]),
        (&json!("closed"), &json!("waitlist_disabled"))
    );
    assert_eq!(entry(&app, &u2, any).await["status"], "offered");

    // A tier deleted closes its line (a fresh event: Floor has tickets here).
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 2, "waitlist_enabled": true, "tiers": [
                {"name": "Floor", "price_minor": 1000, "quantity": 1},
                {"name": "Early", "price_minor": 500, "quantity": 1,
                 "sales_start": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}]}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let floor = event["tiers"][0]["id"].as_str().unwrap();
    let early = event["tiers"][1]["id"].as_str().unwrap();
    app.order(&buyer, id, floor, 1).await;
    let (status, body) = join(&app, &u1, id, json!({"tier_id": early})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Sales for 'Early' have not started");
    let (status, waiting) = join(&app, &u1, id, json!({"tier_id": floor})).await;
    assert_eq!(status, StatusCode::CREATED, "{waiting}");
    let waiting = waiting["id"].as_str().unwrap();
    let (status, _) = app
        .delete(&format!("/events/{id}/tiers/{early}"), Some(&creator.token))
        .await;
    assert!(status.is_success());
    assert_eq!(
        entry(&app, &u1, waiting).await["status"],
        "waiting",
        "another tier's line"
    );

    // The event starts: its line reads closed at once, and the sweeper writes it.
    let start = chrono::Utc::now() + chrono::Duration::seconds(1);
    let (status, body) = app
        .put(
            &format!("/events/{id}"),
            Some(&creator.token),
            json!({"start_time": start.to_rfc3339(),
                   "end_time": (start + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let closed = until(&app, &u1, waiting, |e| e["status"] == "closed").await;
    assert_eq!(closed["closed_reason"], "event_started");
    let (status, body) = join(&app, &u2, id, json!({"tier_id": floor})).await;
    assert_eq!(status, StatusCode::CONFLICT, "rule 5");
    assert_eq!(body["detail"], "Event has already started");
    for _ in 0..100 {
        let stored = app
            .scalar(&format!(
                "SELECT CAST(waitlist_waiting AS BIGINT) FROM events WHERE id = {}",
                uuid_literal(backend, id)
            ))
            .await;
        if stored == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.assert_invariants().await;
}

/// 120 seats come back at once — 50 cancellations, 50 holds expiring (by the sweeper or an
/// order short of seats) and a capacity raise of 20 — while 300 people wait and 100 others try
/// to buy: every seat goes to the line, in join order, none twice, none to the public.
async fn a_storm_of_returns_never_offers_a_seat_twice(backend: Backend) {
    let hold = Duration::from_secs(4);
    let app = TestApp::spawn_with(backend, |settings| settings.ticket_hold = hold).await;
    // A second server process on PostgreSQL takes half of everything.
    let sibling = match backend {
        Backend::Postgres => Some(app.spawn_sibling(|s| s.ticket_hold = hold).await),
        Backend::Sqlite => None,
    };
    let apps = [&app, sibling.as_ref().unwrap_or(&app)];
    let creator = app.register_user(None).await;
    let (event, tier) = line_event(&app, &creator, 100).await;
    let mut expiring = Vec::new();
    for _ in 0..50 {
        expiring.push(app.register_user(None).await);
    }
    let mut cancelling = Vec::new();
    for _ in 0..50 {
        cancelling.push(app.register_user(None).await);
    }
    let mut waiting = Vec::new();
    for _ in 0..300 {
        waiting.push(app.register_user(None).await);
    }
    let mut buyers = Vec::new();
    for _ in 0..100 {
        buyers.push(app.register_user(None).await);
    }
    // The holds last `hold`: the line forms (within it) while the first 50 run out.
    for user in &expiring {
        app.order(user, &event, &tier, 1).await;
    }
    let mut holds = Vec::new();
    for user in cancelling {
        let held = app.order(&user, &event, &tier, 1).await;
        holds.push((user, held));
    }
    assert_eq!(available(&app, &event).await, 0);
    let mut joins = tokio::task::JoinSet::new();
    for (i, user) in waiting.iter().enumerate() {
        let (url, client) = (
            apps[i % 2].url(&format!("/events/{event}/waitlist")),
            apps[i % 2].client.clone(),
        );
        let token = user.token.clone();
        joins.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut joined = 0;
    while let Some(status) = joins.join_next().await {
        // A seat that came back during the joins is offered, never "order instead".
        assert_eq!(status.unwrap(), StatusCode::CREATED);
        joined += 1;
    }
    assert_eq!(joined, 300);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (user, held)) in holds.into_iter().enumerate() {
        let (app, id) = (apps[i % 2], held["id"].as_str().unwrap().to_owned());
        let (url, client) = (app.url(&format!("/orders/{id}/cancel")), app.client.clone());
        tasks.spawn(async move {
            let sent = client
                .post(url)
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap();
            ("cancel", sent.status())
        });
    }
    for (i, buyer) in buyers.into_iter().enumerate() {
        let (url, client) = (apps[i % 2].url("/orders/"), apps[i % 2].client.clone());
        let body = json!({"event_id": event, "items": [{"tier_id": tier, "quantity": 1}]});
        tasks.spawn(async move {
            // Spread over the holds' expiry.
            tokio::time::sleep(Duration::from_millis(40 * (i as u64 % 100))).await;
            let sent = client
                .post(url)
                .bearer_auth(&buyer.token)
                .json(&body)
                .send()
                .await
                .unwrap();
            ("order", sent.status())
        });
    }
    {
        let (url, client) = (
            apps[1].url(&format!("/events/{event}")),
            apps[1].client.clone(),
        );
        let token = creator.token.clone();
        tasks.spawn(async move {
            let body = json!({"total_tickets": 120});
            let sent = client
                .put(url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            ("raise", sent.status())
        });
    }
    let mut placed = 0;
    while let Some(done) = tasks.join_next().await {
        let (what, status) = done.unwrap();
        match what {
            "order" if status == StatusCode::CREATED => placed += 1,
            "order" => assert_eq!(status, StatusCode::CONFLICT),
            // A slow cancellation may come after its hold ran out (refused: expired).
            "cancel" => assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{status}"
            ),
            _ => assert_eq!(status, StatusCode::OK, "{what}"),
        }
    }
    // Every hold has run out by now and the sweeper (every 200 ms) has given its seat back.
    let offered_sql = "SELECT COUNT(*) FROM waitlist_entries WHERE status = 'offered'";
    for _ in 0..200 {
        if app.scalar(offered_sql).await == 120 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        placed, 0,
        "a public order took a seat someone in line could use"
    );
    assert_eq!(app.scalar(offered_sql).await, 120);
    let offer_seats = app
        .scalar(
            "SELECT COUNT(*) FROM tickets t JOIN orders o ON o.id = t.order_id \
                 WHERE o.waitlist_entry_id IS NOT NULL AND t.status = 'reserved'",
        )
        .await;
    assert_eq!(
        offer_seats, 120,
        "one seat per offer, never two offers for one"
    );
    assert_eq!(available(&app, &event).await, 0);
    // The first 120 in line, in join order.
    let (_, line) = app
        .get(
            &format!("/events/{event}/waitlist?limit=1000"),
            Some(&creator.token),
        )
        .await;
    let entries = line["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 300);
    let statuses: Vec<&str> = entries
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses[..120].iter().all(|s| *s == "offered"),
        "{statuses:?}"
    );
    assert!(
        statuses[120..].iter().all(|s| *s == "waiting"),
        "{statuses:?}"
    );
    let positions: Vec<i64> = entries[120..]
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (1..=180).collect::<Vec<_>>());
    app.assert_invariants().await;
    if let Some(sibling) = sibling {
        sibling.stop().await;
    }
}

/// No seat comes back, yet the line can be served: a tier's sales open early. And the per-person
/// cap is judged on the tickets as the freeing write left them.
async fn seats_a_rule_change_puts_on_sale_go_to_the_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let (buyer, waiter) = (app.register_user(None).await, app.register_user(None).await);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 2, "waitlist_enabled": true, "max_tickets_per_user": 4,
                   "tiers": [{"name": "Now", "price_minor": 100, "quantity": 1},
                             {"name": "Later", "price_minor": 100, "quantity": 1,
                              "sales_start": later}]}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let now_tier = event["tiers"][0]["id"].as_str().unwrap();
    let later_tier = event["tiers"][1]["id"].as_str().unwrap();
    app.order(&buyer, id, now_tier, 1).await;
    let (status, any) = join(&app, &waiter, id, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{any}");
    let any = any["id"].as_str().unwrap();
    let (status, body) = app
        .put(
            &format!("/events/{id}/tiers/{later_tier}"),
            Some(&creator.token),
            json!({"sales_start": null}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(body["sold"], 1, "the answer shows the offer: {body}");
    assert_eq!(entry(&app, &waiter, any).await["status"], "offered");

    // Capped at 4: a user holding 3 who waits for one more is served from their own seats.
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 5, "waitlist_enabled": true, "max_tickets_per_user": 4}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let tier = event["tiers"][0]["id"].as_str().unwrap();
    let mine = app.order(&waiter, id, tier, 3).await;
    app.order(&buyer, id, tier, 2).await;
    let (status, group) = join(&app, &waiter, id, json!({"quantity": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap();
    cancel(&app, &waiter, &mine).await;
    let served = entry(&app, &waiter, group).await;
    assert_eq!(served["status"], "offered", "{served}");
    app.assert_invariants().await;
}

async fn a_line_and_a_user_have_limits(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.waitlist.max_waiting_per_event = 2;
        settings.waitlist.max_active_per_user = 1;
        settings.reservation_rate_limit_per_user = std::num::NonZeroU32::new(3).unwrap();
    })
    .await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let (first, second) = line_event(&app, &creator, 1).await;
    app.order(&buyer, &first, &second, 1).await;
    let (other, other_tier) = line_event(&app, &creator, 1).await;
    app.order(&buyer, &other, &other_tier, 1).await;
    let (a, b, c) = (
        app.register_user(None).await,
        app.register_user(None).await,
        app.register_user(None).await,
    );
    assert_eq!(
        join(&app, &a, &first, json!({})).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        join(&app, &b, &first, json!({})).await.0,
        StatusCode::CREATED
    );
    let (status, body) = join(&app, &c, &first, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["detail"], "Waiting list is full");
    let (status, body) = join(&app, &a, &other, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["detail"],
        "Too many active waiting-list entries (limit 1)"
    );
    // Joins count against the reservation rate (3 a minute here): the fourth is 429.
    let (status, _) = join(&app, &a, &other, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = join(&app, &a, &other, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    app.assert_invariants().await;
}

/// Joins sent at once (from two server processes on PostgreSQL, where they share their
/// event's transactions): each is judged on the line the ones before it left. The line fills
/// to its limit and no further, a user gets one entry however many joins they send, the
/// per-user limit holds across events, and a keyed join's answer replays byte for byte.
async fn joins_that_arrive_together_are_judged_one_after_another(backend: Backend) {
    let limits = |settings: &mut nearbytix::config::Settings| {
        settings.waitlist.max_waiting_per_event = 5;
        settings.waitlist.max_active_per_user = 1;
    };
    let app = TestApp::spawn_with(backend, limits).await;
    let sibling = match backend {
        Backend::Postgres => Some(app.spawn_sibling(limits).await),
        Backend::Sqlite => None,
    };
    let apps = [&app, sibling.as_ref().unwrap_or(&app)];
    let creator = app.register_user(None).await;
    let (event, tier) = line_event(&app, &creator, 1).await;
    let (other, other_tier) = line_event(&app, &creator, 1).await;
    let holder = app.register_user(None).await;
    app.order(&holder, &event, &tier, 1).await;
    app.order(&holder, &other, &other_tier, 1).await;
    let mut users = Vec::new();
    for _ in 0..12 {
        users.push(app.register_user(None).await);
    }
    // The last user joins four times on `event` and once on `other`, all at once.
    let last = users.last().unwrap().clone();
    let mut sends: Vec<(TestUser, String, Option<String>)> = users
        .iter()
        .enumerate()
        .map(|(i, user)| (user.clone(), event.clone(), Some(format!("burst-{i}"))))
        .collect();
    sends.extend((0..3).map(|_| (last.clone(), event.clone(), None)));
    sends.push((last.clone(), other.clone(), None));
    let mut joins = tokio::task::JoinSet::new();
    for (i, (user, event_id, key)) in sends.into_iter().enumerate() {
        let (url, client) = (
            apps[i % 2].url(&format!("/events/{event_id}/waitlist")),
            apps[i % 2].client.clone(),
        );
        joins.spawn(async move {
            let mut request = client.post(url).bearer_auth(&user.token).json(&json!({}));
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", key);
            }
            let sent = request.send().await.unwrap();
            let status = sent.status();
            let body = sent.text().await.unwrap();
            (user.id, event_id, key, status, body)
        });
    }
    let (mut joined, mut full, mut again, mut elsewhere) = (Vec::new(), 0, 0, 0);
    while let Some(done) = joins.join_next().await {
        let (user, event_id, key, status, body) = done.unwrap();
        let detail = serde_json::from_str::<Value>(&body).unwrap()["detail"].clone();
        match status {
            StatusCode::CREATED => joined.push((user, event_id, key, body)),
            StatusCode::CONFLICT if detail == "Waiting list is full" => full += 1,
            StatusCode::CONFLICT
                if detail
                    .as_str()
                    .is_some_and(|d| d.starts_with("Already on the waiting list")) =>
            {
                again += 1
            }
            StatusCode::CONFLICT if detail == "Too many active waiting-list entries (limit 1)" => {
                elsewhere += 1
            }
            _ => panic!("{status} {body}"),
        }
    }
    let mut ranks: Vec<i64> = joined
        .iter()
        .filter(|(_, id, ..)| *id == event)
        .map(|(.., body)| {
            serde_json::from_str::<Value>(body).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ranks.sort_unstable();
    assert_eq!(
        ranks,
        [1, 2, 3, 4, 5],
        "the line fills to its limit, each join its own rank"
    );
    let of_last = joined.iter().filter(|(user, ..)| *user == last.id).count();
    assert!(of_last <= 1, "one active entry per user: {joined:?}");
    assert_eq!(joined.len() + full + again + elsewhere, 16);
    assert_eq!(
        app.scalar(&format!(
            "SELECT CAST(waitlist_waiting AS BIGINT) FROM events WHERE id = {}",
            uuid_literal(backend, &event)
        ))
        .await,
        5
    );
    // A keyed join's answer, sent again, is the one it got.
    let (user, _, key, body) = joined
        .iter()
        .find(|(_, _, key, _)| key.is_some())
        .expect("a keyed join got in");
    let user = users.iter().find(|u| u.id == *user).unwrap();
    let replayed = app
        .client
        .post(app.url(&format!("/events/{event}/waitlist")))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", key.as_deref().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(&replayed.text().await.unwrap(), body);
    app.assert_invariants().await;
}

/// A join's rank counts the open lines only: entries for a tier whose sales ended are not
/// ahead of anyone, even before the sweeper (off here) closes them.
async fn a_joins_rank_leaves_out_lines_that_closed(backend: Backend) {
    let app = TestApp::spawn_without_sweeper_with(backend, |_| {}).await;
    let creator = app.register_user(None).await;
    let holder = app.register_user(None).await;
    let (a, b, c) = (
        app.register_user(None).await,
        app.register_user(None).await,
        app.register_user(None).await,
    );
    // Early sells for 3 s: time for one order and two joins on a busy machine.
    let ends = chrono::Utc::now() + chrono::Duration::seconds(3);
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 1, "waitlist_enabled": true,
                   "tiers": [{"name": "Early", "price_minor": 100,
                              "sales_end": ends.to_rfc3339()},
                             {"name": "Late", "price_minor": 150}]}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let early = event["tiers"][0]["id"].as_str().unwrap();
    let late = event["tiers"][1]["id"].as_str().unwrap();
    app.order(&holder, id, late, 1).await;
    let (status, on_early) = join(&app, &a, id, json!({"tier_id": early})).await;
    assert_eq!(
        (status, &on_early["position"]),
        (StatusCode::CREATED, &json!(1))
    );
    let (status, on_late) = join(&app, &b, id, json!({"tier_id": late})).await;
    assert_eq!(
        (status, &on_late["position"]),
        (StatusCode::CREATED, &json!(2))
    );
    tokio::time::sleep((ends - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, last) = join(&app, &c, id, json!({"tier_id": late})).await;
    assert_eq!(status, StatusCode::CREATED, "{last}");
    assert_eq!(last["position"], 2, "behind b only: a's line closed");
    let read = entry(&app, &c, last["id"].as_str().unwrap()).await;
    assert_eq!(read["position"], last["position"]);
    assert_eq!(
        entry(&app, &a, on_early["id"].as_str().unwrap()).await["status"],
        "closed"
    );
    app.assert_invariants().await;
}

/// Rule 8 (the per-person cap at join), the organiser's tier filter, a deleted tier's line
/// closing (`tier_unavailable`) and a deleted event's entries going with it (404).
async fn a_deleted_tier_or_event_takes_its_line_along(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let (holder, waiter) = (app.register_user(None).await, app.register_user(None).await);
    // One seat for the event: Floor sells it; Balcony, empty, cannot sell without it.
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 1, "waitlist_enabled": true, "max_tickets_per_user": 1,
                   "tiers": [{"name": "Floor", "price_minor": 100},
                             {"name": "Balcony", "price_minor": 50}]}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let floor = event["tiers"][0]["id"].as_str().unwrap();
    let balcony = event["tiers"][1]["id"].as_str().unwrap();
    let held = app.order(&holder, id, floor, 1).await;
    let (status, body) = join(&app, &holder, id, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "rule 8: {body}");
    assert_eq!(
        body["detail"],
        "Limit of 1 tickets per person for this event"
    );
    let (status, on_balcony) = join(&app, &waiter, id, json!({"tier_id": balcony})).await;
    assert_eq!(status, StatusCode::CREATED, "{on_balcony}");
    let on_balcony = on_balcony["id"].as_str().unwrap();
    let path = format!("/events/{id}/waitlist");
    let (_, by_tier) = app
        .get(&format!("{path}?tier_id={floor}"), Some(&creator.token))
        .await;
    assert_eq!(by_tier["total"], 0);
    let (_, by_tier) = app
        .get(&format!("{path}?tier_id={balcony}"), Some(&creator.token))
        .await;
    assert_eq!(by_tier["entries"][0]["id"], on_balcony);

    let (status, _) = app
        .delete(
            &format!("/events/{id}/tiers/{balcony}"),
            Some(&creator.token),
        )
        .await;
    assert!(status.is_success());
    let closed = entry(&app, &waiter, on_balcony).await;
    assert_eq!(
        (&closed["status"], &closed["closed_reason"]),
        (&json!("closed"), &json!("tier_unavailable"))
    );
    assert_eq!(
        closed["tier_name"], "Balcony",
        "the entry keeps its tier's name"
    );

    // The event goes, its entries with it.
    cancel(&app, &holder, &held).await;
    let (status, _) = app
        .delete(&format!("/events/{id}"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .get(&format!("/waitlist/{on_balcony}"), Some(&waiter.token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.assert_invariants().await;
}
