//! Event management and listings.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, error_locs, event_body, loc};

backend_tests!(
    creator_can_create_read_update_and_delete,
    every_create_rule_has_its_own_422,
    updates_are_revalidated_on_the_merged_event,
    only_the_creator_may_change_an_event,
    events_with_live_tickets_cannot_be_deleted,
    listing_counts_filters_and_pages,
    listing_totals_match_the_rows_around_day_boundaries,
    events_moving_between_two_days_at_once_keep_the_counts,
    the_currency_is_fixed_once_the_event_has_orders,
    waiting_list_settings_are_kept_and_checked,
);

async fn creator_can_create_read_update_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let event = app
        .create_event(&user.token, json!({"total_tickets": 25}))
        .await;
    assert_eq!(event["creator_id"], user.id.as_str());
    assert_eq!(event["total_tickets"], 25);
    assert_eq!(event["tickets_sold"], 0);
    assert_eq!(event["tickets_available"], 25);
    assert_eq!(event["is_sold_out"], false);
    assert_eq!(event["venue_name"], "Eko Hall");
    assert_eq!(event["latitude"], 6.5244);
    assert_eq!(event["address_line2"], Value::Null);
    let path = format!("/events/{}", event["id"].as_str().unwrap());

    let (status, fetched) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, event);

    let (status, updated) = app
        .put(
            &path,
            token,
            json!({"title": "Renamed", "description": null, "total_tickets": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["title"], "Renamed");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["total_tickets"], 30);
    assert_eq!(updated["venue_name"], "Eko Hall");

    let venue = json!({"venue": {"latitude": 9.07, "longitude": 7.39, "venue_name": "Abuja Arena",
        "address_line1": "2 Road", "city": "Abuja", "state": "FCT", "country": "Nigeria",
        "postal_code": "900001"}});
    let (status, moved) = app.put(&path, token, venue).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["city"], "Abuja");
    assert_eq!(moved["latitude"], 9.07);

    let (status, body) = app.delete(&path, token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains("not found"));
    assert_eq!(app.delete(&path, token).await.0, StatusCode::NOT_FOUND);
}

async fn every_create_rule_has_its_own_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let now = Utc::now();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"title": ""}), vec!["body", "title"]),
        (json!({"title": "t".repeat(256)}), vec!["body", "title"]),
        (
            json!({"description": "d".repeat(5001)}),
            vec!["body", "description"],
        ),
        (json!({"total_tickets": 0}), vec!["body", "total_tickets"]),
        (
            json!({"total_tickets": 1_000_001}),
            vec!["body", "total_tickets"],
        ),
        (
            json!({"total_tickets": "many"}),
            vec!["body", "total_tickets"],
        ),
        (
            json!({"start_time": "2030-01-01T10:00:00"}),
            vec!["body", "start_time"],
        ),
        (
            json!({"start_time": "next tuesday"}),
            vec!["body", "start_time"],
        ),
        (
            json!({"end_time": "2030-01-01T10:00:00"}),
            vec!["body", "end_time"],
        ),
        (
            json!({"start_time": (now - Duration::hours(1)).to_rfc3339()}),
            vec!["body", "start_time"],
        ),
        (
            json!({"start_time": (now + Duration::days(2)).to_rfc3339(), "end_time": (now + Duration::days(1)).to_rfc3339()}),
            vec!["body", "end_time"],
        ),
        (
            json!({"venue": {"latitude": 90.1}}),
            vec!["body", "venue", "latitude"],
        ),
        (
            json!({"venue": {"latitude": -90.1}}),
            vec!["body", "venue", "latitude"],
        ),
        (
            json!({"venue": {"longitude": 180.1}}),
            vec!["body", "venue", "longitude"],
        ),
        (
            json!({"venue": {"longitude": -180.1}}),
            vec!["body", "venue", "longitude"],
        ),
        (
            json!({"venue": {"venue_name": ""}}),
            vec!["body", "venue", "venue_name"],
        ),
        (
            json!({"venue": {"venue_name": "v".repeat(256)}}),
            vec!["body", "venue", "venue_name"],
        ),
        (
            json!({"venue": {"address_line1": " "}}),
            vec!["body", "venue", "address_line1"],
        ),
        (
            json!({"venue": {"address_line2": "a".repeat(256)}}),
            vec!["body", "venue", "address_line2"],
        ),
        (
            json!({"venue": {"city": ""}}),
            vec!["body", "venue", "city"],
        ),
        (
            json!({"venue": {"city": "c".repeat(101)}}),
            vec!["body", "venue", "city"],
        ),
        (
            json!({"venue": {"state": ""}}),
            vec!["body", "venue", "state"],
        ),
        (
            json!({"venue": {"country": "c".repeat(101)}}),
            vec!["body", "venue", "country"],
        ),
        (
            json!({"venue": {"postal_code": ""}}),
            vec!["body", "venue", "postal_code"],
        ),
        (
            json!({"venue": {"postal_code": "1".repeat(21)}}),
            vec!["body", "venue", "postal_code"],
        ),
        (json!({"venue": "Eko Hall"}), vec!["body", "venue"]),
    ];
    for (overrides, expected) in cases {
        let body = event_body(overrides.clone());
        let (status, answer) = app.post("/events/", Some(&user.token), body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{overrides} -> {answer}"
        );
        assert!(
            error_locs(&answer).contains(&loc(&expected)),
            "{overrides} -> {answer}"
        );
    }
    // Missing required fields, one at a time.
    for field in ["title", "start_time", "end_time", "total_tickets", "venue"] {
        let mut body = event_body(json!({}));
        body.as_object_mut().unwrap().remove(field);
        let (status, answer) = app.post("/events/", Some(&user.token), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body", field]));
        assert_eq!(answer["detail"][0]["type"], "missing");
    }
    let mut body = event_body(json!({}));
    body["venue"].as_object_mut().unwrap().remove("city");
    let (_, answer) = app.post("/events/", Some(&user.token), body).await;
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "venue", "city"]));
    // Anonymous callers cannot create events.
    let (status, _) = app.post("/events/", None, event_body(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM events").await, 0);
}

async fn updates_are_revalidated_on_the_merged_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let event = app.create_event(&user.token, json!({})).await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let start = event["start_time"].as_str().unwrap();

    // An end before the stored start is refused even though only end_time is sent.
    let (status, answer) = app.put(&path, token, json!({"end_time": start})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_locs(&answer).contains(&loc(&["body", "end_time"])));
    let (status, answer) = app.put(&path, token, json!({"title": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = app.put(&path, token, json!({"total_tickets": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .put(
            &path,
            token,
            json!({"start_time": (Utc::now() - Duration::hours(2)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing changed.
    assert_eq!(app.get(&path, None).await.1, event);
}

async fn only_the_creator_may_change_an_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register_user(None).await;
    let other = app.register_user(None).await;
    let event = app.create_event(&owner.token, json!({})).await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());

    let (status, body) = app
        .put(&path, Some(&other.token), json!({"title": "Mine now"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["detail"].is_string());
    assert_eq!(
        app.delete(&path, Some(&other.token)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.put(&path, None, json!({"title": "x"})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.delete(&path, None).await.0, StatusCode::UNAUTHORIZED);

    let missing = format!("/events/{}", uuid::Uuid::new_v4());
    assert_eq!(
        app.put(&missing, Some(&owner.token), json!({"title": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&missing, Some(&owner.token)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = app.delete("/events/123", Some(&owner.token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "event_id"]));
    assert_eq!(app.get(&path, None).await.1["title"], "Afrobeats Night");
}

async fn events_with_live_tickets_cannot_be_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&owner.token, json!({"total_tickets": 3}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let path = format!("/events/{event_id}");
    let (status, ticket) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.get(&path, None).await.1["tickets_sold"], 1);

    // Lowering the capacity below the sold count conflicts.
    let (status, body) = app
        .put(&path, Some(&owner.token), json!({"total_tickets": 0}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .put(&path, Some(&owner.token), json!({"total_tickets": 1}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.get(&path, None).await.1["total_tickets"], 3);

    let (status, body) = app.delete(&path, Some(&owner.token)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.get(&path, None).await.0, StatusCode::OK);

    // Once every ticket is released the event can go.
    for ticket_id in [
        ticket["id"].as_str().unwrap().to_owned(),
        body_ticket_id(&app, &buyer.token).await,
    ] {
        let (status, _) = app
            .ticket_action(
                &format!("/tickets/{ticket_id}"),
                Some(&buyer.token),
                "cancel",
            )
            .await;
        assert!(status == StatusCode::OK || status == StatusCode::CONFLICT);
    }
    app.assert_invariants().await;
    let (status, body) = app.delete(&path, Some(&owner.token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn body_ticket_id(app: &TestApp, token: &str) -> String {
    let (_, mine) = app
        .get("/tickets/my-tickets?status=reserved", Some(token))
        .await;
    mine["tickets"][0]["id"].as_str().unwrap().to_owned()
}

async fn listing_counts_filters_and_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let base = Utc::now() + Duration::days(1);
    let titles = [
        "Jazz Brunch",
        "Rock Night",
        "jazz at the park",
        "Comedy Hour",
        "Opera Gala",
    ];
    for (i, title) in titles.iter().enumerate() {
        let start = base + Duration::hours(i as i64);
        let city = if i == 3 { "Jazzville" } else { "Lagos" };
        app.create_event(
            &user.token,
            json!({"title": title, "start_time": start.to_rfc3339(),
                   "end_time": (start + Duration::hours(1)).to_rfc3339(), "venue": {"city": city}}),
        )
        .await;
    }
    // An event that already started, written straight to the database.
    let past = app
        .create_event(&user.token, json!({"title": "Old Show"}))
        .await;
    let past_id = past["id"].as_str().unwrap();
    let started = match backend {
        Backend::Sqlite => format!(
            "UPDATE events SET start_time = start_time - 172800000000, end_time = end_time - 172800000000 WHERE id = X'{}' RETURNING 1",
            past_id.replace('-', "")
        ),
        Backend::Postgres => format!(
            "UPDATE events SET start_time = start_time - interval '2 days', end_time = end_time - interval '2 days' WHERE id = '{past_id}' RETURNING 1::bigint"
        ),
    };
    assert_eq!(app.scalar(&started).await, 1);

    let (status, page) = app.get("/events/?limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 6);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["skip"], 0);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["title"], "Old Show");
    assert!(
        events[0].get("total_tickets").is_none(),
        "list items are summaries"
    );
    assert!(events[0].get("distance_km").is_none());

    let (_, page) = app.get("/events/?skip=2&limit=2", None).await;
    let titles_on_page: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles_on_page, ["Rock Night", "jazz at the park"]);
    // The last, partial page tells the total by itself; it must agree with the count.
    let (_, last) = app.get("/events/?skip=4&limit=5", None).await;
    assert_eq!(last["events"].as_array().unwrap().len(), 2);
    assert_eq!(last["total"], 6);

    let (_, page) = app.get("/events/?upcoming_only=true", None).await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["events"][0]["title"], "Jazz Brunch");

    // q matches title, venue name or city, ignoring case.
    let (_, page) = app.get("/events/?q=JAZZ", None).await;
    assert_eq!(page["total"], 3);
    let (_, page) = app.get("/events/?q=eko%20hall", None).await;
    assert_eq!(page["total"], 6);
    let (_, page) = app.get("/events/?q=100%25", None).await;
    assert_eq!(page["total"], 0, "LIKE wildcards in q are literal");

    let after = (base + Duration::minutes(90)).to_rfc3339();
    let before = (base + Duration::minutes(210)).to_rfc3339();
    let query = format!(
        "/events/?starts_after={}&starts_before={}",
        urlencode(&after),
        urlencode(&before)
    );
    let (status, page) = app.get(&query, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 2);

    let (status, page) = app.get("/events/?skip=50", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["total"], 6);

    for bad in [
        "limit=0",
        "limit=1001",
        "skip=-1",
        "upcoming_only=maybe",
        "starts_after=yesterday",
    ] {
        let (status, body) = app.get(&format!("/events/?{bad}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body["detail"][0]["loc"][0], "query", "{bad}");
    }
    assert_eq!(app.get("/events/?limit=1000", None).await.0, StatusCode::OK);
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The listing's `total` (counted from per-day counts when no text filter applies) equals the
/// rows the filter matches, for bounds on, beside and between events that start around UTC
/// midnight, and stays so after an event moves to another day or is deleted.
async fn listing_totals_match_the_rows_around_day_boundaries(backend: Backend) {
    use chrono::SecondsFormat;
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let midnight = (Utc::now() + Duration::days(2))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let starts = [
        midnight - Duration::seconds(1),
        midnight,
        midnight,
        midnight + Duration::seconds(1),
        midnight + Duration::days(1) - Duration::seconds(1),
        midnight + Duration::days(1),
        midnight + Duration::days(3) + Duration::hours(5),
    ];
    let mut ids = Vec::new();
    for start in starts {
        let event = app
            .create_event(
                &user.token,
                json!({"start_time": start.to_rfc3339(),
                       "end_time": (start + Duration::hours(1)).to_rfc3339()}),
            )
            .await;
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    let mut bounds: Vec<Option<chrono::DateTime<Utc>>> = vec![None];
    for start in starts {
        for shift in [-1, 0, 1] {
            bounds.push(Some(start + Duration::seconds(shift)));
        }
    }
    bounds.push(Some(midnight - Duration::days(1)));
    bounds.push(Some(midnight + Duration::days(10)));
    let check = |bounds: Vec<Option<chrono::DateTime<Utc>>>| {
        let app = &app;
        async move {
            for after in &bounds {
                for before in &bounds {
                    let mut path = "/events/?limit=1000".to_owned();
                    if let Some(after) = after {
                        let at = after.to_rfc3339_opts(SecondsFormat::Secs, true);
                        path.push_str(&format!("&starts_after={at}"));
                    }
                    if let Some(before) = before {
                        let at = before.to_rfc3339_opts(SecondsFormat::Secs, true);
                        path.push_str(&format!("&starts_before={at}"));
                    }
                    // `upcoming_only` is one more lower bound (now, before every event).
                    let upcoming: &[&str] = if after.is_none() {
                        &["", "&upcoming_only=true"]
                    } else {
                        &[""]
                    };
                    for upcoming in upcoming {
                        let path = format!("{path}{upcoming}");
                        let (status, page) = app.get(&path, None).await;
                        assert_eq!(status, StatusCode::OK, "{path}: {page}");
                        let rows = page["events"].as_array().unwrap().len();
                        assert_eq!(page["total"], rows, "{path}");
                    }
                }
            }
        }
    };
    check(bounds.clone()).await;
    // One event moves to another day, another is deleted: the counts follow.
    let moved = midnight + Duration::days(2) + Duration::hours(1);
    let (status, _) = app
        .put(
            &format!("/events/{}", ids[1]),
            token,
            json!({"start_time": moved.to_rfc3339(),
                   "end_time": (moved + Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.delete(&format!("/events/{}", ids[4]), token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    bounds.push(Some(moved));
    check(bounds).await;
    let (_, all) = app.get("/events/?limit=1", None).await;
    assert_eq!(all["total"], starts.len() - 1);
}

/// Two events swapping days again and again at the same time (each move updates both days'
/// counts) all succeed, and the counts still match the rows.
async fn events_moving_between_two_days_at_once_keep_the_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let day = |n: i64| Utc::now() + Duration::days(n);
    let body = |start: chrono::DateTime<Utc>| {
        json!({"start_time": start.to_rfc3339(),
               "end_time": (start + Duration::hours(1)).to_rfc3339()})
    };
    let first = app.create_event(&user.token, body(day(2))).await;
    let second = app.create_event(&user.token, body(day(3))).await;
    let paths = [first, second].map(|e| format!("/events/{}", e["id"].as_str().unwrap()));
    for round in 0..15 {
        let (a, b) = if round % 2 == 0 { (3, 2) } else { (2, 3) };
        let (one, other) = tokio::join!(
            app.put(&paths[0], token, body(day(a))),
            app.put(&paths[1], token, body(day(b))),
        );
        assert_eq!(one.0, StatusCode::OK, "{}", one.1);
        assert_eq!(other.0, StatusCode::OK, "{}", other.1);
    }
    for n in [2, 3] {
        let after =
            (day(n) - Duration::hours(12)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let before =
            (day(n) + Duration::hours(12)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (_, page) = app
            .get(
                &format!("/events/?starts_after={after}&starts_before={before}"),
                None,
            )
            .await;
        assert_eq!(page["total"], page["events"].as_array().unwrap().len());
    }
    let (_, all) = app.get("/events/", None).await;
    assert_eq!(all["total"], 2);
}

/// An order keeps its prices in the event's currency, so the currency cannot change once the
/// event has any order, live or not (409); before that it may.
async fn the_currency_is_fixed_once_the_event_has_orders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let event = app.create_event(&user.token, json!({})).await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (status, changed) = app.put(&path, token, json!({"currency": "EUR"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["currency"], "EUR");

    let (status, ticket) = app
        .post("/tickets/", token, json!({"event_id": event["id"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) = app.put(&path, token, json!({"currency": "JPY"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("currency"));
    let cancel = format!("/tickets/{}/cancel", ticket["id"].as_str().unwrap());
    assert_eq!(app.post(&cancel, token, json!({})).await.0, StatusCode::OK);
    let (status, _) = app.put(&path, token, json!({"currency": "JPY"})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled order keeps its prices too"
    );
    let (status, same) = app
        .put(&path, token, json!({"currency": "EUR", "title": "Renamed"}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same currency is no change: {same}"
    );
    assert_eq!(app.get(&path, None).await.1["currency"], "EUR");
}

async fn waiting_list_settings_are_kept_and_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let plain = app.create_event(&user.token, json!({})).await;
    assert_eq!(
        (&plain["waitlist_enabled"], &plain["waitlist_offer_minutes"]),
        (&json!(false), &Value::Null),
        "off, with the server's offer time, unless asked"
    );
    let event = app
        .create_event(
            &user.token,
            json!({"waitlist_enabled": true, "waitlist_offer_minutes": 45}),
        )
        .await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (_, read) = app.get(&path, None).await;
    assert_eq!(
        (&read["waitlist_enabled"], &read["waitlist_offer_minutes"]),
        (&json!(true), &json!(45))
    );

    // A PUT changes what it names; null puts the server's offer time back.
    let (status, body) = app
        .put(&path, token, json!({"waitlist_offer_minutes": 10080}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["waitlist_enabled"], &body["waitlist_offer_minutes"]),
        (&json!(true), &json!(10080))
    );
    let (_, body) = app
        .put(
            &path,
            token,
            json!({"waitlist_enabled": false, "waitlist_offer_minutes": null}),
        )
        .await;
    assert_eq!(
        (&body["waitlist_enabled"], &body["waitlist_offer_minutes"]),
        (&json!(false), &Value::Null)
    );

    // Out of range or of the wrong type: 422 at the field, on create and on update.
    for (field, value) in [
        ("waitlist_offer_minutes", json!(0)),
        ("waitlist_offer_minutes", json!(10081)),
        ("waitlist_offer_minutes", json!("ten")),
        ("waitlist_enabled", json!("yes")),
    ] {
        let (status, body) = app
            .post("/events/", token, event_body(json!({field: value})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(error_locs(&body), [loc(&["body", field])], "{body}");
        let (status, body) = app.put(&path, token, json!({field: value})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(error_locs(&body), [loc(&["body", field])], "{body}");
    }
    let (_, unchanged) = app.get(&path, None).await;
    assert_eq!(unchanged["waitlist_enabled"], false);
}
