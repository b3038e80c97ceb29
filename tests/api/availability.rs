//! Live availability (AVAILABILITY.md), over HTTP on both backends: snapshots, versions, the
//! streams' framing, pace, ends and caps, and changes made through another server process.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, error_locs, loc};

backend_tests!(
    a_snapshot_judges_each_tier_and_its_version_moves_only_with_what_it_shows,
    a_stream_sends_the_snapshot_then_each_change_paced,
    streams_end_when_the_event_is_deleted_or_starts,
    a_multiplexed_stream_follows_several_events,
    streams_are_checked_and_capped_in_order,
    a_change_made_through_another_process_reaches_the_stream,
    a_stream_keeps_up_with_a_sale_in_its_own_process,
    a_clock_instant_moves_the_version_once_across_processes,
    a_stream_ends_at_its_lifetime_and_outlives_the_request_timeout,
    shutdown_ends_open_streams_cleanly,
);

/// Longest wait for anything a test expects from a stream.
const PATIENCE: Duration = Duration::from_secs(5);

/// One Server-Sent Events message, or a comment.
#[derive(Debug, Clone)]
struct Message {
    event: Option<String>,
    id: Option<String>,
    data: Option<Value>,
    retry: Option<String>,
    comment: bool,
    at: Instant,
}

/// A stream being read.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> Sse {
        let response = open(app, path, last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next block within `within`; `None` when the stream ended cleanly. Panics on a
    /// timeout or a broken stream.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("a message in time")
                .expect("the stream ends cleanly");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => {
                    assert!(self.buffer.is_empty(), "a partial message: {}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next message that is not a comment.
    async fn message(&mut self, within: Duration) -> Option<Message> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.next(left).await?;
            if !message.comment {
                return Some(message);
            }
        }
    }

    /// The next `availability` message, checked; its snapshot.
    async fn availability(&mut self, within: Duration) -> (Message, Value) {
        let message = self.message(within).await.expect("an availability message");
        assert_eq!(
            message.event.as_deref(),
            Some("availability"),
            "{message:?}"
        );
        let data = message.data.clone().expect("data");
        (message, data)
    }

    /// The single-event stream of `event`, read past its `retry` and first snapshot.
    async fn following(app: &TestApp, event: &str) -> Sse {
        let path = format!("/events/{event}/availability/stream");
        let mut stream = Sse::open(app, &path, None).await;
        stream.retry_first().await;
        stream.availability(PATIENCE).await;
        stream
    }

    /// `retry: 3000` comes first.
    async fn retry_first(&mut self) {
        let first = self.next(PATIENCE).await.expect("a first block");
        assert_eq!(first.retry.as_deref(), Some("3000"), "{first:?}");
    }
}

fn parse(block: &str) -> Message {
    let mut message = Message {
        event: None,
        id: None,
        data: None,
        retry: None,
        comment: false,
        at: Instant::now(),
    };
    let mut data_lines = 0;
    for line in block.trim_end_matches('\n').split('\n') {
        if line.starts_with(':') {
            message.comment = true;
        } else if let Some((field, value)) = line.split_once(": ") {
            match field {
                "event" => message.event = Some(value.to_owned()),
                "id" => message.id = Some(value.to_owned()),
                "retry" => message.retry = Some(value.to_owned()),
                "data" => {
                    data_lines += 1;
                    message.data = Some(serde_json::from_str(value).expect("compact JSON data"));
                }
                other => panic!("unknown field {other:?} in {block:?}"),
            }
        } else {
            panic!("unexpected line {line:?} in {block:?}");
        }
    }
    assert!(data_lines <= 1, "one data line per message: {block:?}");
    message
}

async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("stream request")
}

async fn snapshot(app: &TestApp, event: &str) -> Value {
    let (status, body) = app
        .get(&format!("/events/{event}/availability"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn version(app: &TestApp, event: &str) -> i64 {
    snapshot(app, event).await["version"].as_i64().unwrap()
}

/// A snapshot without its read time, to compare two reads.
fn without_as_of(mut snapshot: Value) -> Value {
    snapshot.as_object_mut().unwrap().remove("as_of");
    snapshot
}

/// Streams paced at 100 ms, keep-alives after 1 s.
async fn fast_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |settings| {
        settings.availability.min_interval = Duration::from_millis(100);
        settings.availability.keepalive = Duration::from_secs(1);
    })
    .await
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn a_snapshot_judges_each_tier_and_its_version_moves_only_with_what_it_shows(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let event = app
        .create_event(
            &creator.token,
            json!({"total_tickets": 100, "tiers": [
                {"name": "Early bird", "quantity": 10, "sales_start": later.to_rfc3339()},
                {"name": "Regular", "quantity": 50},
                {"name": "VIP", "quantity": 2},
                {"name": "Door"},
            ]}),
        )
        .await;
    let id = id_of(&event);
    let tier = |n: usize| event["tiers"][n]["id"].as_str().unwrap().to_owned();
    for _ in 0..9 {
        app.order(&buyer, &id, &tier(1), 5).await;
    }
    app.order(&buyer, &id, &tier(2), 2).await;

    let body = snapshot(&app, &id).await;
    assert_eq!(body["event_id"], id.as_str());
    assert_eq!(
        body["available"],
        100 - 47,
        "the door tier sells every seat left"
    );
    assert_eq!(body["is_sold_out"], false);
    assert_eq!(body["status"], "available", "the door tier is available");
    assert_eq!(body["waitlist"], json!({"enabled": false, "waiting": 0}));
    let tiers: Vec<(&str, &str, i64)> = body["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
                t["available"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tiers,
        [
            ("Early bird", "not_on_sale", 10),
            ("Regular", "few_left", 5),
            ("VIP", "sold_out", 0),
            ("Door", "available", 53),
        ]
    );
    assert_eq!(body["tiers"][0]["tier_id"], event["tiers"][0]["id"]);
    let as_of = body["as_of"].as_str().unwrap();
    assert!(
        as_of.len() == 24 && as_of.ends_with('Z') && as_of.as_bytes()[19] == b'.',
        "UTC with milliseconds: {as_of}"
    );
    assert!(body["version"].as_i64().unwrap() >= 1);

    // Not found, malformed.
    let (status, _) = app
        .get(
            &format!("/events/{}/availability", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.get("/events/nope/availability", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_locs(&body), [loc(&["path", "event_id"])]);

    // What does not change a snapshot leaves the version alone…
    let before = snapshot(&app, &id).await;
    let (status, _) = app
        .put(
            &format!("/events/{id}"),
            Some(&creator.token),
            json!({"title": "Renamed", "description": "Other words"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({"event_id": id, "items": [{"tier_id": tier(2), "quantity": 1}]});
    let (status, _) = app.post("/orders/", Some(&buyer.token), body).await;
    assert_eq!(status, StatusCode::CONFLICT, "the VIP tier is sold out");
    let (status, _) = app
        .put(
            &format!("/events/{id}/tiers/{}", tier(3)),
            Some(&creator.token),
            json!({"price_minor": 2500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            &format!("/events/{id}"),
            Some(&creator.token),
            json!({"total_tickets": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the same value written again");
    let (status, _) = app
        .put(
            &format!("/events/{id}/tiers/{}", tier(3)),
            Some(&creator.token),
            json!({"name": "Door"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a tier written with its own values");
    assert_eq!(
        version(&app, &id).await,
        before["version"].as_i64().unwrap(),
        "a title, a description, a price, a refused order, the same values: no change"
    );
    let order = app.order(&buyer, &id, &tier(3), 1).await;
    let sold = version(&app, &id).await;
    assert!(
        sold > before["version"].as_i64().unwrap(),
        "a sale moves it"
    );
    let (status, _) = app
        .post(
            &format!("/orders/{}/pay", id_of(&order)),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        version(&app, &id).await,
        sold,
        "paying keeps the seats taken"
    );
    let after = snapshot(&app, &id).await;
    let mut expected = without_as_of(before);
    expected["version"] = json!(sold);
    expected["available"] = json!(100 - 47 - 1);
    expected["tiers"][3]["available"] = json!(52);
    assert_eq!(without_as_of(after), expected);

    // …and each of the listed changes moves it.
    let mut last = sold;
    let changes = [
        (
            "PUT",
            format!("/events/{id}"),
            json!({"total_tickets": 120}),
        ),
        (
            "PUT",
            format!("/events/{id}/tiers/{}", tier(3)),
            json!({"name": "At the door"}),
        ),
        (
            "PUT",
            format!("/events/{id}/tiers/{}", tier(1)),
            json!({"quantity": 60}),
        ),
        (
            "POST",
            format!("/events/{id}/tiers"),
            json!({"name": "Late", "quantity": 5}),
        ),
        (
            "PUT",
            format!("/events/{id}"),
            json!({"waitlist_enabled": true}),
        ),
        (
            "PUT",
            format!("/events/{id}/tiers/{}", tier(0)),
            json!({"sales_start": (later + chrono::Duration::hours(1)).to_rfc3339()}),
        ),
        (
            "DELETE",
            format!("/events/{id}/tiers/{}", tier(0)),
            json!({}),
        ),
        (
            "PUT",
            format!("/events/{id}"),
            json!({"start_time": (later + chrono::Duration::days(2)).to_rfc3339(),
                   "end_time": (later + chrono::Duration::days(3)).to_rfc3339()}),
        ),
    ];
    for (method, path, body) in changes {
        let (status, answer) = match method {
            "PUT" => app.put(&path, Some(&creator.token), body).await,
            "DELETE" => app.delete(&path, Some(&creator.token)).await,
            _ => app.post(&path, Some(&creator.token), body).await,
        };
        assert!(status.is_success(), "{path}: {answer}");
        let now = version(&app, &id).await;
        assert!(now > last, "{path} moves the version");
        last = now;
    }
    // The waiting line is in the snapshot: a join moves it.
    let (status, body) = app
        .post(
            &format!("/events/{id}/waitlist"),
            Some(&buyer.token),
            json!({"tier_id": tier(2)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let joined = snapshot(&app, &id).await;
    assert!(joined["version"].as_i64().unwrap() > last);
    assert_eq!(joined["waitlist"], json!({"enabled": true, "waiting": 1}));
    app.assert_invariants().await;
}

async fn a_stream_sends_the_snapshot_then_each_change_paced(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.availability.min_interval = Duration::from_millis(1000);
        settings.availability.keepalive = Duration::from_secs(1);
    })
    .await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&creator.token, json!({"total_tickets": 30}))
        .await;
    let id = id_of(&event);
    let tier = event["tiers"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/events/{id}/availability/stream");

    let opened = Instant::now();
    let mut stream = Sse::open(&app, &path, None).await;
    let response_headers = stream.response.headers().clone();
    assert_eq!(response_headers["cache-control"], "no-cache");
    assert_eq!(response_headers["x-accel-buffering"], "no");
    assert!(response_headers.get("content-encoding").is_none());
    stream.retry_first().await;
    let (first, data) = stream.availability(PATIENCE).await;
    assert!(first.at - opened < Duration::from_secs(1), "at once");
    let current = snapshot(&app, &id).await;
    assert_eq!(
        first.id.as_deref(),
        Some(current["version"].to_string().as_str())
    );
    assert_eq!(without_as_of(data), without_as_of(current));

    // A sale: the next message, sent after its response, shows it; a second sale at once is
    // paced an interval after the first message.
    app.order(&buyer, &id, &tier, 2).await;
    let (second, data) = stream.availability(PATIENCE).await;
    assert_eq!(
        data["available"], 28,
        "sent after the response, it shows the sale"
    );
    assert!(second.at - first.at >= Duration::from_millis(900), "paced");
    app.order(&buyer, &id, &tier, 3).await;
    app.order(&buyer, &id, &tier, 4).await;
    let responded = Instant::now();
    let (third, data) = stream.availability(PATIENCE).await;
    assert!(third.at - second.at >= Duration::from_millis(900), "paced");
    assert!(
        third.at - responded <= Duration::from_millis(1500),
        "within the interval of the response"
    );
    assert_eq!(data["available"], 21, "the states between are skipped");
    let versions: Vec<i64> = [&first, &second, &third]
        .iter()
        .map(|m| m.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );

    // Silence: a keep-alive comment.
    let quiet = stream.next(PATIENCE).await.expect("a keep-alive");
    assert!(quiet.comment, "{quiet:?}");
    drop(stream);

    // Opened with the current version as Last-Event-ID: no first snapshot.
    let current = version(&app, &id).await.to_string();
    let mut resumed = Sse::open(&app, &path, Some(&current)).await;
    resumed.retry_first().await;
    let next = resumed.next(PATIENCE).await.expect("a block");
    assert!(next.comment, "the initial snapshot is skipped: {next:?}");
    app.order(&buyer, &id, &tier, 1).await;
    let (update, data) = resumed.availability(PATIENCE).await;
    assert_eq!(data["available"], 20);
    assert!(update.id.unwrap().parse::<i64>().unwrap() > current.parse().unwrap());
    // Any other value gets the snapshot.
    let mut stale = Sse::open(&app, &path, Some("1")).await;
    stale.retry_first().await;
    let (_, data) = stale.availability(PATIENCE).await;
    assert_eq!(data["available"], 20);
    app.assert_invariants().await;
}

async fn streams_end_when_the_event_is_deleted_or_starts(backend: Backend) {
    let app = fast_app(backend).await;
    let creator = app.register_user(None).await;
    let doomed = id_of(&app.create_event(&creator.token, json!({})).await);
    let mut stream = Sse::following(&app, &doomed).await;
    let (status, _) = app
        .delete(&format!("/events/{doomed}"), Some(&creator.token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = stream.message(PATIENCE).await.expect("gone");
    assert_eq!(gone.event.as_deref(), Some("gone"));
    assert_eq!(gone.id, None);
    assert_eq!(gone.data, Some(json!({"event_id": doomed})));
    assert!(stream.next(PATIENCE).await.is_none(), "then the end");

    // An event that starts: its closed snapshot, then the end; a new stream gets 204.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let event = app
        .create_event(
            &creator.token,
            json!({"start_time": soon.to_rfc3339(),
                   "end_time": (soon + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    let id = id_of(&event);
    let path = format!("/events/{id}/availability/stream");
    let mut stream = Sse::open(&app, &path, None).await;
    stream.retry_first().await;
    let (_, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["status"], "available");
    let (closing, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["status"], "closed");
    assert!(
        data["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "closed")
    );
    let started_at = soon.signed_duration_since(chrono::Utc::now());
    assert!(
        started_at > chrono::Duration::milliseconds(-1500),
        "within 1 s of the start (+ the sweep): {started_at}"
    );
    assert!(closing.id.is_some());
    assert!(stream.next(PATIENCE).await.is_none(), "then the end");
    let response = open(&app, &path, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(snapshot(&app, &id).await["status"], "closed");
}

async fn a_multiplexed_stream_follows_several_events(backend: Backend) {
    let app = fast_app(backend).await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let a = app
        .create_event(&creator.token, json!({"total_tickets": 5}))
        .await;
    let b = app
        .create_event(&creator.token, json!({"total_tickets": 7}))
        .await;
    let (a_id, b_id) = (id_of(&a), id_of(&b));
    let unknown = uuid::Uuid::new_v4().to_string();
    let path = format!("/availability/stream?event_ids={b_id},{unknown},{a_id},{b_id}");
    // Last-Event-ID is ignored: the first event's current version still gets its snapshot.
    let current_b = version(&app, &b_id).await.to_string();
    let mut stream = Sse::open(&app, &path, Some(&current_b)).await;
    stream.retry_first().await;
    // The listed order, a repeated id once, the unknown one gone; no ids.
    let (first, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["event_id"], b_id.as_str());
    assert_eq!(first.id, None, "multiplexed streams send no id");
    let gone = stream.message(PATIENCE).await.unwrap();
    assert_eq!(gone.event.as_deref(), Some("gone"));
    assert_eq!(gone.data, Some(json!({"event_id": unknown})));
    let (_, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["event_id"], a_id.as_str());
    let order = app
        .order(&buyer, &a_id, a["tiers"][0]["id"].as_str().unwrap(), 5)
        .await;
    let (_, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["event_id"], a_id.as_str());
    assert_eq!(data["status"], "sold_out");
    // Deleting one leaves the other; deleting both ends the stream.
    let (status, _) = app
        .post(
            &format!("/orders/{}/cancel", id_of(&order)),
            Some(&buyer.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for id in [&a_id, &b_id] {
        let (status, body) = app
            .delete(&format!("/events/{id}"), Some(&creator.token))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let mut gone = Vec::new();
    while let Some(message) = stream.message(PATIENCE).await {
        if message.event.as_deref() == Some("gone") {
            gone.push(
                message.data.unwrap()["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    gone.sort();
    let mut expected = vec![a_id.clone(), b_id.clone()];
    expected.sort();
    assert_eq!(gone, expected, "each said gone, then the end");

    // No id exists: 404; each unknown or started with one existing: 204.
    let response = open(
        &app,
        &format!("/availability/stream?event_ids={unknown}"),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    let started = app
        .create_event(
            &creator.token,
            json!({"start_time": soon.to_rfc3339(),
                   "end_time": (soon + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let path = format!(
        "/availability/stream?event_ids={unknown},{}",
        id_of(&started)
    );
    assert_eq!(
        open(&app, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn streams_are_checked_and_capped_in_order(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.availability.streams_per_client = 2;
        settings.availability.streams_max = 3;
        settings.availability.max_events = 2;
    })
    .await;
    let creator = app.register_user(None).await;
    let id = id_of(&app.create_event(&creator.token, json!({})).await);
    let other = id_of(&app.create_event(&creator.token, json!({})).await);
    let third = uuid::Uuid::new_v4();

    // 422 first, whatever else holds.
    let query = |q: &str| format!("/availability/stream{q}");
    for bad in [
        query(""),
        query("?event_ids="),
        query(&format!("?event_ids={id},nope")),
        query(&format!("?event_ids={id},{other},{third}")),
    ] {
        let response = open(&app, &bad, None).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_locs(&body), [loc(&["query", "event_ids"])], "{bad}");
    }
    let response = open(&app, "/events/nope/availability/stream", None).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A repeated id counts once.
    let mut repeated =
        Sse::open(&app, &query(&format!("?event_ids={id},{id},{other}")), None).await;
    repeated.retry_first().await;
    let (_, data) = repeated.availability(PATIENCE).await;
    assert_eq!(data["event_id"], id.as_str());
    let (_, data) = repeated.availability(PATIENCE).await;
    assert_eq!(data["event_id"], other.as_str());
    drop(repeated);
    // It stops counting within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // This client's cap: 429 with Retry-After, checked before an unknown event's 404.
    let path = format!("/events/{id}/availability/stream");
    let first = Sse::open(&app, &path, None).await;
    let second = Sse::open(&app, &query(&format!("?event_ids={id},{other}")), None).await;
    for refused in [path.clone(), format!("/events/{third}/availability/stream")] {
        let response = open(&app, &refused, None).await;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{refused}"
        );
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
    }
    let response = open(&app, "/events/nope/availability/stream", None).await;
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "422 before 429"
    );
    // A closed stream stops counting within a second.
    drop(first);
    let mut reopened = None;
    for _ in 0..20 {
        let response = open(&app, &path, None).await;
        if response.status() == StatusCode::OK {
            reopened = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reopened = reopened.expect("the closed stream stopped counting within 1 s");

    // The process's cap: 503 with Retry-After once three are open, from any address. The
    // third stream comes from another address of this machine.
    let from_elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let third_stream = from_elsewhere.get(app.url(&path)).send().await.unwrap();
    assert_eq!(third_stream.status(), StatusCode::OK);
    let refused = from_elsewhere.get(app.url(&path)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let metrics = app.get_unprefixed("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("nearbytix_availability_rejected_total{reason=\"client_cap\"}"));
    assert!(metrics.contains("nearbytix_availability_rejected_total{reason=\"process_cap\"}"));
    drop((second, reopened, third_stream));

    // CORS: an allowed origin may send Last-Event-ID.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(&path))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("last-event-id"), "{allowed}");
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
}

async fn a_change_made_through_another_process_reaches_the_stream(backend: Backend) {
    let app = fast_app(backend).await;
    let sibling = app.spawn_sibling(|_| {}).await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&creator.token, json!({"total_tickets": 10}))
        .await;
    let id = id_of(&event);
    let tier = event["tiers"][0]["id"].as_str().unwrap().to_owned();
    let mut stream = Sse::following(&app, &id).await;
    let mut readers = Vec::new();
    for _ in 0..10 {
        let reader = Sse::following(&app, &id).await;
        readers.push(reader);
    }
    sibling.order(&buyer, &id, &tier, 3).await;
    let committed = Instant::now();
    let (message, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["available"], 7);
    // The contract allows 1 s + the interval (100 ms); the rest is slack for a loaded machine.
    assert!(
        message.at - committed <= Duration::from_millis(1500),
        "within 1 s + the interval: {:?}",
        message.at - committed
    );
    for reader in &mut readers {
        let (_, data) = reader.availability(PATIENCE).await;
        assert_eq!(data["available"], 7);
    }
    sibling.stop().await;
}

/// Buyers of this very process never stop writing: the stream still sends, at its pace, and
/// reaches the final state.
async fn a_stream_keeps_up_with_a_sale_in_its_own_process(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.availability.min_interval = Duration::from_millis(200);
    })
    .await;
    let creator = app.register_user(None).await;
    let event = app
        .create_event(&creator.token, json!({"total_tickets": 20000}))
        .await;
    let id = id_of(&event);
    let tier = event["tiers"][0]["id"].as_str().unwrap().to_owned();
    let mut stream = Sse::following(&app, &id).await;
    let mut buyers = Vec::new();
    for _ in 0..8 {
        buyers.push(app.register_user(None).await);
    }
    let app = std::sync::Arc::new(app);
    let sale_ends = Instant::now() + Duration::from_millis(2000);
    let sellers: Vec<_> = buyers
        .into_iter()
        .map(|buyer| {
            let (app, id, tier) = (app.clone(), id.clone(), tier.clone());
            tokio::spawn(async move {
                let body = json!({"event_id": id, "items": [{"tier_id": tier, "quantity": 1}]});
                while Instant::now() < sale_ends {
                    let (status, _) = app.post("/orders/", Some(&buyer.token), body.clone()).await;
                    assert_eq!(status, StatusCode::CREATED);
                }
            })
        })
        .collect();
    let mut during = Vec::new();
    while Instant::now() < sale_ends {
        let (_, data) = stream.availability(PATIENCE).await;
        during.push(data["available"].as_i64().unwrap());
    }
    for seller in sellers {
        seller.await.unwrap();
    }
    assert!(
        during.len() >= 3 && during.windows(2).all(|pair| pair[1] < pair[0]),
        "messages during the sale, each showing more sold: {during:?}"
    );
    let final_state = snapshot(&app, &id).await["available"].as_i64().unwrap();
    let mut last = *during.last().unwrap();
    while last != final_state {
        let (_, data) = stream.availability(PATIENCE).await;
        last = data["available"].as_i64().unwrap();
    }
}

/// A tier's sales start: both processes' sweepers pass the instant, the version goes up once,
/// and the stream shows the tier on sale within 1 s (+ the interval) of the instant.
async fn a_clock_instant_moves_the_version_once_across_processes(backend: Backend) {
    let app = fast_app(backend).await;
    let sibling = app.spawn_sibling(|_| {}).await;
    let creator = app.register_user(None).await;
    let opens = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let event = app
        .create_event(
            &creator.token,
            json!({"tiers": [{"name": "Regular", "sales_start": opens.to_rfc3339()}]}),
        )
        .await;
    let id = id_of(&event);
    let before = snapshot(&app, &id).await;
    assert_eq!(before["tiers"][0]["status"], "not_on_sale");
    let mut stream = Sse::open(&app, &format!("/events/{id}/availability/stream"), None).await;
    stream.retry_first().await;
    let (_, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["status"], "not_on_sale");
    let (on_sale, data) = stream.availability(PATIENCE).await;
    assert_eq!(data["tiers"][0]["status"], "available");
    let late = chrono::Utc::now().signed_duration_since(opens);
    assert!(
        late < chrono::Duration::milliseconds(1600),
        "within 1 s (+ the interval) of the instant, with slack: {late}"
    );
    // Both sweepers have passed the instant several times since: one bump in all.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = version(&app, &id).await;
    assert_eq!(
        after,
        before["version"].as_i64().unwrap() + 1,
        "once per instant"
    );
    assert_eq!(on_sale.id, Some(after.to_string()));
    sibling.stop().await;
}

/// A stream ends cleanly, without a message, at its lifetime (± 10 %), and lives past the
/// request timeout.
async fn a_stream_ends_at_its_lifetime_and_outlives_the_request_timeout(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.request_timeout = Duration::from_secs(1);
        settings.availability.max_lifetime = Duration::from_millis(2500);
        settings.availability.keepalive = Duration::from_secs(1);
    })
    .await;
    let creator = app.register_user(None).await;
    let id = id_of(&app.create_event(&creator.token, json!({})).await);
    let opened = Instant::now();
    let mut stream = Sse::following(&app, &id).await;
    while let Some(message) = stream.next(PATIENCE).await {
        assert!(
            message.comment,
            "only keep-alives until the end: {message:?}"
        );
    }
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(2250) && lived <= Duration::from_millis(3250),
        "2.5 s ± 10 % (and past the 1 s request timeout): {lived:?}"
    );
}

async fn shutdown_ends_open_streams_cleanly(backend: Backend) {
    let app = fast_app(backend).await;
    let creator = app.register_user(None).await;
    let id = id_of(&app.create_event(&creator.token, json!({})).await);
    let mut stream = Sse::following(&app, &id).await;
    let stopping = tokio::spawn(app.stop());
    // The end, without a message: `next` panics on a reset.
    while let Some(message) = stream.next(PATIENCE).await {
        assert!(message.comment, "no message at shutdown: {message:?}");
    }
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("the server stops with streams open")
        .unwrap();
}
