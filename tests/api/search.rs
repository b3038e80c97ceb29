//! Distance search: /for-you/ and /events/nearby on both backends.

use chrono::{Duration, Utc};
use nearbytix::domain::GeoPoint;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestUser};

backend_tests!(
    radius_keeps_exactly_the_events_inside_nearest_first,
    search_crosses_the_antimeridian,
    search_works_near_the_pole,
    past_and_sold_out_events_are_left_out,
    paging_radius_bounds_and_missing_location,
    nearby_is_public_and_matches_for_you,
    search_follows_moves_sales_and_deletes,
    a_buyers_own_sale_and_cancellation_show_in_their_next_search,
);

async fn event_at(app: &TestApp, user: &TestUser, title: &str, point: GeoPoint) -> Value {
    app.create_event(
        &user.token,
        json!({"title": title, "venue": {"latitude": point.latitude(), "longitude": point.longitude()}}),
    )
    .await
}

fn titles(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["title"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_close(actual: &Value, expected_km: f64) {
    let actual = actual.as_f64().unwrap();
    let tolerance = (expected_km * 0.005).max(0.002);
    assert!(
        (actual - expected_km).abs() <= tolerance,
        "{actual} km vs expected {expected_km} km"
    );
}

async fn radius_keeps_exactly_the_events_inside_nearest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let origin = GeoPoint::new(6.5244, 3.3792).unwrap();
    let user = app
        .register_user(Some((origin.latitude(), origin.longitude())))
        .await;
    let placements = [
        (80.0, 10.0),
        (20.0, 135.0),
        (50.1, 250.0),
        (1.0, 45.0),
        (400.0, 300.0),
        (49.9, 330.0),
    ];
    for (km, bearing) in placements {
        event_at(
            &app,
            &user,
            &format!("{km} km"),
            origin.destination(km, bearing),
        )
        .await;
    }
    let (status, body) = app.get("/for-you/?radius=50", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body["events"]), ["1 km", "20 km", "49.9 km"]);
    assert_eq!(body["total"], 3);
    for (event, km) in body["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip([1.0, 20.0, 49.9])
    {
        assert_close(&event["distance_km"], km);
    }
    for (recommendation, km) in body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .zip([1.0, 20.0, 49.9])
    {
        assert_close(&recommendation["distance_km"], km);
        assert!(recommendation["event"]["id"].is_string());
    }
    assert_eq!(body["user_latitude"], origin.latitude());
    assert_eq!(body["user_longitude"], origin.longitude());
    assert_eq!(
        body["user_location"],
        json!({"latitude": origin.latitude(), "longitude": origin.longitude()})
    );
    assert_eq!(body["radius_km"], 50.0);
    assert_eq!(body["search_radius_km"], 50.0);
    assert_eq!(body["skip"], 0);
    assert_eq!(body["limit"], 20);

    // The default radius is DEFAULT_SEARCH_RADIUS_KM (50); `radius_km` is an alias.
    let (_, default) = app.get("/for-you/", Some(&user.token)).await;
    assert_eq!(titles(&default["events"]), ["1 km", "20 km", "49.9 km"]);
    let (_, wide) = app.get("/for-you/?radius_km=100", Some(&user.token)).await;
    assert_eq!(
        titles(&wide["events"]),
        ["1 km", "20 km", "49.9 km", "50.1 km", "80 km"]
    );
    let (_, widest) = app.get("/for-you/?radius=500", Some(&user.token)).await;
    assert_eq!(widest["total"], 6);
    assert_close(&widest["events"][5]["distance_km"], 400.0);
}

async fn search_crosses_the_antimeridian(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(Some((0.0, 179.95))).await;
    event_at(
        &app,
        &user,
        "west of the line",
        GeoPoint::new(0.0, -179.95).unwrap(),
    )
    .await;
    event_at(
        &app,
        &user,
        "east of the line",
        GeoPoint::new(0.0, 179.9).unwrap(),
    )
    .await;
    event_at(&app, &user, "far west", GeoPoint::new(0.0, -179.0).unwrap()).await;
    let (status, body) = app.get("/for-you/?radius=20", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        titles(&body["events"]),
        ["east of the line", "west of the line"]
    );
    assert_close(&body["events"][0]["distance_km"], 5.56);
    assert_close(&body["events"][1]["distance_km"], 11.12);
}

async fn search_works_near_the_pole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let origin = GeoPoint::new(89.9, 0.0).unwrap();
    let user = app
        .register_user(Some((origin.latitude(), origin.longitude())))
        .await;
    // Across the pole: same latitude, opposite meridian, about 22 km away.
    event_at(
        &app,
        &user,
        "across the pole",
        GeoPoint::new(89.9, 180.0).unwrap(),
    )
    .await;
    event_at(&app, &user, "side", GeoPoint::new(89.9, 90.0).unwrap()).await;
    event_at(&app, &user, "south", GeoPoint::new(89.0, 0.0).unwrap()).await;
    let (status, body) = app.get("/for-you/?radius=50", Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(titles(&body["events"]), ["side", "across the pole"]);
    assert_close(
        &body["events"][0]["distance_km"],
        origin.distance_km(&GeoPoint::new(89.9, 90.0).unwrap()),
    );
    assert_close(&body["events"][1]["distance_km"], 22.24);
}

async fn past_and_sold_out_events_are_left_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let origin = GeoPoint::new(51.5, -0.12).unwrap();
    let user = app
        .register_user(Some((origin.latitude(), origin.longitude())))
        .await;
    let buyer = app.register_user(None).await;
    event_at(&app, &user, "open", origin.destination(2.0, 0.0)).await;
    let sold_out = app
        .create_event(
            &user.token,
            json!({"title": "sold out", "total_tickets": 1,
            "venue": {"latitude": origin.latitude(), "longitude": origin.longitude()}}),
        )
        .await;
    let (status, _) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": sold_out["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let soon = Utc::now() + Duration::seconds(2);
    app.create_event(
        &user.token,
        json!({"title": "starting", "start_time": soon.to_rfc3339(),
        "end_time": (soon + Duration::hours(1)).to_rfc3339(),
        "venue": {"latitude": origin.latitude(), "longitude": origin.longitude()}}),
    )
    .await;
    let (_, before) = app.get("/for-you/", Some(&user.token)).await;
    assert_eq!(titles(&before["events"]), ["starting", "open"]);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (_, after) = app.get("/for-you/", Some(&user.token)).await;
    assert_eq!(titles(&after["events"]), ["open"]);
    assert_eq!(after["total"], 1);
}

async fn paging_radius_bounds_and_missing_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let origin = GeoPoint::new(-33.86, 151.2).unwrap();
    let user = app
        .register_user(Some((origin.latitude(), origin.longitude())))
        .await;
    let start = Utc::now() + Duration::days(3);
    // Two events at the same spot: ties go to the earlier start.
    for (title, km, offset_hours) in [
        ("a", 1.0, 0),
        ("b", 2.0, 5),
        ("c", 2.0, 1),
        ("d", 3.0, 0),
        ("e", 4.0, 0),
    ] {
        let when = start + Duration::hours(offset_hours);
        let point = origin.destination(km, 90.0);
        app.create_event(
            &user.token,
            json!({"title": title, "start_time": when.to_rfc3339(),
            "end_time": (when + Duration::hours(1)).to_rfc3339(),
            "venue": {"latitude": point.latitude(), "longitude": point.longitude()}}),
        )
        .await;
    }
    let (_, page) = app.get("/for-you/?limit=2&skip=1", Some(&user.token)).await;
    assert_eq!(titles(&page["events"]), ["c", "b"]);
    assert_eq!(page["total"], 5);
    assert_eq!(page["skip"], 1);
    assert_eq!(page["limit"], 2);
    let (_, page) = app.get("/for-you/?skip=10", Some(&user.token)).await;
    assert_eq!(page["events"], json!([]));
    assert_eq!(page["total"], 5);

    for bad in [
        "radius=0",
        "radius=501",
        "radius=-5",
        "radius=far",
        "radius_km=0.5",
        "limit=0",
        "limit=101",
        "skip=-1",
    ] {
        let (status, body) = app
            .get(&format!("/for-you/?{bad}"), Some(&user.token))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["detail"][0]["loc"][0], "query", "{bad}");
    }
    assert_eq!(
        app.get("/for-you/?radius=1", Some(&user.token)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/for-you/?radius=500&limit=100", Some(&user.token))
            .await
            .0,
        StatusCode::OK
    );

    let nowhere = app.register_user(None).await;
    let (status, body) = app.get("/for-you/", Some(&nowhere.token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"detail": "User has no location set. Please update user location first."})
    );
    assert_eq!(app.get("/for-you/", None).await.0, StatusCode::UNAUTHORIZED);
}

async fn nearby_is_public_and_matches_for_you(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let origin = GeoPoint::new(40.71, -74.0).unwrap();
    let user = app
        .register_user(Some((origin.latitude(), origin.longitude())))
        .await;
    for (km, bearing) in [(3.0, 10.0), (7.0, 100.0), (30.0, 200.0), (70.0, 300.0)] {
        event_at(
            &app,
            &user,
            &format!("{km}"),
            origin.destination(km, bearing),
        )
        .await;
    }
    let path = format!(
        "/events/nearby?latitude={}&longitude={}&radius_km=40",
        origin.latitude(),
        origin.longitude()
    );
    let (status, nearby) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::OK, "{nearby}");
    let (_, for_you) = app.get("/for-you/?radius=40", Some(&user.token)).await;
    assert_eq!(nearby["events"], for_you["events"]);
    assert_eq!(nearby["total"], 3);
    assert_eq!(nearby["limit"], 20);
    assert_eq!(titles(&nearby["events"]), ["3", "7", "30"]);

    let (_, default_radius) = app
        .get(
            &format!(
                "/events/nearby?latitude={}&longitude={}",
                origin.latitude(),
                origin.longitude()
            ),
            None,
        )
        .await;
    assert_eq!(default_radius["total"], 3, "default radius is 50 km");
    for bad in [
        "latitude=91&longitude=0",
        "latitude=0&longitude=-181",
        "longitude=0",
        "latitude=x&longitude=0",
        "latitude=0&longitude=0&radius_km=0",
        "latitude=0&longitude=0&limit=101",
    ] {
        let (status, body) = app.get(&format!("/events/nearby?{bad}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
}

/// Waits for the caller's for-you total to be `expected`: a sale or a cancellation shows in
/// search within a second (the organiser's own event writes show at once).
async fn soon_total(app: &TestApp, user: &TestUser, expected: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let (_, found) = app.get("/for-you/", Some(&user.token)).await;
        if found["total"] == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "total {} instead of {expected} after a second",
            found["total"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn search_follows_moves_sales_and_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let here = GeoPoint::new(48.85, 2.35).unwrap();
    let user = app
        .register_user(Some((here.latitude(), here.longitude())))
        .await;
    let far = here.destination(300.0, 45.0);
    let event = app
        .create_event(
            &user.token,
            json!({"title": "moving", "total_tickets": 1,
            "venue": {"latitude": far.latitude(), "longitude": far.longitude()}}),
        )
        .await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    assert_eq!(app.get("/for-you/", Some(&user.token)).await.1["total"], 0);

    let near = here.destination(5.0, 180.0);
    let venue = json!({"venue": {"latitude": near.latitude(), "longitude": near.longitude(),
        "venue_name": "New Hall", "address_line1": "2 Rue", "city": "Paris", "state": "IDF",
        "country": "France", "postal_code": "75001"}});
    assert_eq!(
        app.put(&path, Some(&user.token), venue).await.0,
        StatusCode::OK
    );
    let (_, found) = app.get("/for-you/", Some(&user.token)).await;
    assert_eq!(titles(&found["events"]), ["moving"]);
    assert_close(&found["events"][0]["distance_km"], 5.0);

    // Selling the last seat hides the event; cancelling brings it back.
    let (status, ticket) = app
        .post(
            "/tickets/",
            Some(&user.token),
            json!({"event_id": event["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    soon_total(&app, &user, 0).await;
    let cancel = format!("/tickets/{}/cancel", ticket["id"].as_str().unwrap());
    assert_eq!(
        app.post(&cancel, Some(&user.token), json!({})).await.0,
        StatusCode::OK
    );
    soon_total(&app, &user, 1).await;

    // A bigger capacity after selling out also brings it back.
    app.post(
        "/tickets/",
        Some(&user.token),
        json!({"event_id": event["id"]}),
    )
    .await;
    soon_total(&app, &user, 0).await;
    assert_eq!(
        app.put(&path, Some(&user.token), json!({"total_tickets": 2}))
            .await
            .0,
        StatusCode::OK
    );
    soon_total(&app, &user, 1).await;

    assert_eq!(
        app.put(&path, Some(&user.token), json!({"total_tickets": 1}))
            .await
            .0,
        StatusCode::OK
    );
    let (_, mine) = app
        .get("/tickets/my-tickets?status=reserved", Some(&user.token))
        .await;
    let cancel = format!(
        "/tickets/{}/cancel",
        mine["tickets"][0]["id"].as_str().unwrap()
    );
    app.post(&cancel, Some(&user.token), json!({})).await;
    assert_eq!(
        app.delete(&path, Some(&user.token)).await.0,
        StatusCode::NO_CONTENT
    );
    soon_total(&app, &user, 0).await;
}

/// The process that sold the last seat, or took a cancellation, answers the buyer's very next
/// search with it (no waiting): for an order and for a ticket, several times over.
async fn a_buyers_own_sale_and_cancellation_show_in_their_next_search(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let here = GeoPoint::new(-33.87, 151.21).unwrap();
    let buyer = app
        .register_user(Some((here.latitude(), here.longitude())))
        .await;
    let event = app
        .create_event(
            &buyer.token,
            json!({"title": "last seats", "total_tickets": 2,
            "venue": {"latitude": here.latitude(), "longitude": here.longitude()}}),
        )
        .await;
    let (event_id, tier_id) = (&event["id"], &event["tiers"][0]["id"]);
    let token = Some(buyer.token.as_str());
    let total = || async { app.get("/for-you/", token).await.1["total"].clone() };
    for round in 0..5 {
        let order = json!({"event_id": event_id, "items": [{"tier_id": tier_id, "quantity": 2}]});
        let (status, order) = app.post("/orders/", token, order).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(total().await, 0, "round {round}: the sale shows at once");
        let cancel = format!("/orders/{}/cancel", order["id"].as_str().unwrap());
        assert_eq!(app.post(&cancel, token, json!({})).await.0, StatusCode::OK);
        assert_eq!(
            total().await,
            1,
            "round {round}: the cancellation shows at once"
        );

        let (_, first) = app
            .post("/tickets/", token, json!({"event_id": event_id}))
            .await;
        assert_eq!(total().await, 1, "round {round}: one seat is left");
        let (status, last) = app
            .post("/tickets/", token, json!({"event_id": event_id}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{last}");
        assert_eq!(
            total().await,
            0,
            "round {round}: the last ticket shows at once"
        );
        for ticket in [first, last] {
            let cancel = format!("/tickets/{}/cancel", ticket["id"].as_str().unwrap());
            assert_eq!(app.post(&cancel, token, json!({})).await.0, StatusCode::OK);
        }
        assert_eq!(
            total().await,
            1,
            "round {round}: the cancellations show at once"
        );
    }
}
