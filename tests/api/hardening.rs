//! Abuse and bad input: every case here once broke the server (a 500, a forged log line,
//! unbounded memory) and must now get a clear, bounded answer.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{
    Backend, TestApp, TestDatabase, block_reservations, error_locs, event_body, loc,
};
use crate::process_support::Process;
use nearbytix::store::{ClaimTerms, IdempotencyClaim, RequestKey};

backend_tests!(
    nul_characters_are_refused_not_stored,
    timestamps_are_truncated_and_years_bounded,
    request_ids_cannot_forge_log_lines,
    metrics_labels_come_from_a_closed_set,
    look_alike_emails_are_one_account_or_refused,
    a_deleted_users_token_is_refused_everywhere,
    listings_beyond_the_bulkhead_are_shed_while_reads_go_on,
    password_hashing_beyond_its_queue_answers_busy,
    idle_and_stalled_connections_are_closed_and_capped,
    metrics_can_have_an_address_of_their_own,
    idempotency_keys_per_user_are_bounded,
    a_cut_off_keyed_write_commits_nothing_and_its_retry_runs_once,
    a_key_claimed_by_a_dead_process_is_taken_over,
    sold_out_answers_take_no_lock,
    a_flood_of_keyed_orders_leaves_health_and_other_reads_answered,
    refused_keyed_writes_store_no_key,
    deep_pages_are_refused_on_every_listing_and_search,
    reservations_count_tickets_and_event_writes_are_limited,
    a_tier_change_is_judged_on_what_it_changes,
    a_retry_of_the_order_that_took_the_last_seat_replays_it,
    the_key_quota_is_exact_under_concurrency,
    an_event_is_sold_out_when_nothing_can_be_bought_now,
    search_shows_long_descriptions_it_does_not_keep,
);

async fn nul_characters_are_refused_not_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let (status, body) = app
        .post("/events/", token, event_body(json!({"title": "Gig\u{0}"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_locs(&body).contains(&loc(&["body", "title"])));
    let (status, body) = app
        .register_with(
            json!({"name": "A\u{0}", "email": "nul@example.com", "password": "password1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "a\u{0}@example.com", "password": "password1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app.get("/events/?q=a%00b", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_locs(&body).contains(&loc(&["query", "q"])));
}

async fn timestamps_are_truncated_and_years_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    // Start and end differ only below a microsecond: the same instant once truncated.
    let (status, body) = app
        .post(
            "/events/",
            token,
            event_body(json!({
                "start_time": "2099-01-01T10:00:00.0000001Z",
                "end_time": "2099-01-01T10:00:00.0000009Z"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_locs(&body).contains(&loc(&["body", "end_time"])));
    let (status, body) = app
        .post(
            "/events/",
            token,
            event_body(json!({
                "start_time": "2099-01-01T10:00:00.1234567Z",
                "end_time": "9999-12-31T23:59:59-23:59"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_locs(&body).contains(&loc(&["body", "end_time"])));
    let event = app
        .create_event(
            &user.token,
            json!({"start_time": "2099-01-01T10:00:00.1234567Z", "end_time": "2099-01-01T12:00:00Z"}),
        )
        .await;
    assert_eq!(event["start_time"], "2099-01-01T10:00:00.123456Z");
}

async fn request_ids_cannot_forge_log_lines(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id_of = |value: &'static str| {
        let request = app
            .client
            .get(app.url("/events/"))
            .header("x-request-id", value);
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(id_of("trace-42.a_b").await, "trace-42.a_b");
    let forged = id_of("fake} user_id=admin").await;
    assert_ne!(forged, "fake} user_id=admin");
    assert!(uuid::Uuid::parse_str(&forged).is_ok(), "{forged}");
    let long = id_of(Box::leak("x".repeat(65).into_boxed_str())).await;
    assert!(uuid::Uuid::parse_str(&long).is_ok(), "{long}");
}

async fn metrics_labels_come_from_a_closed_set(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("GARBAGE{i}X").as_bytes()).unwrap();
        let path = format!("/nothing/here/{i}");
        let response = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let metrics = app.get_unprefixed("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("GARBAGE"), "a method became a label");
    assert!(!metrics.contains("/nothing/here"), "a path became a label");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(metrics.contains(r#"route="unmatched""#));
}

async fn look_alike_emails_are_one_account_or_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = |email: &str| json!({"name": "Admin", "email": email, "password": "password1"});
    let (status, _) = app.register_with(body("admin@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Full-width letters are the same address after NFKC.
    let (status, _) = app.register_with(body("ａdmin@example.com")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A Cyrillic letter among Latin ones is a look-alike, not another account.
    let (status, answer) = app.register_with(body("\u{430}dmin@example.com")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // The full-width spelling logs in to the one account.
    let (status, _) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ＡＤＭＩＮ@example.com", "password": "password1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A malformed email on login is a 422, as on registration.
    let (status, answer) = app
        .post(
            "/auth/login",
            None,
            json!({"email": "not-an-email", "password": "password1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_locs(&answer).contains(&loc(&["body", "email"])));
}

async fn a_deleted_users_token_is_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let event = app.create_event(&organiser.token, json!({})).await;
    // Sold out, and known to be (on PostgreSQL, an order refused from memory reads nothing).
    let sold_out = app
        .create_event(&organiser.token, json!({"total_tickets": 1}))
        .await;
    for _ in 0..2 {
        app.post(
            "/tickets/",
            Some(&organiser.token),
            json!({"event_id": sold_out["id"]}),
        )
        .await;
    }
    let gone = app.register_user(None).await;
    let deleted = app
        .scalar(&format!(
            "DELETE FROM users WHERE email = '{}' RETURNING CAST(1 AS BIGINT)",
            gone.email
        ))
        .await;
    assert_eq!(deleted, 1);
    let token = Some(gone.token.as_str());
    let ticket = format!("/tickets/{}", uuid::Uuid::new_v4());
    for key in [None, Some("retry-1")] {
        let post = |path: String, body: Value| {
            let mut request = app
                .client
                .post(app.url(&path))
                .bearer_auth(&gone.token)
                .json(&body);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            request.send()
        };
        for event_id in [&event["id"], &sold_out["id"], &json!(uuid::Uuid::new_v4())] {
            let reserve = post("/tickets/".into(), json!({"event_id": event_id}))
                .await
                .unwrap();
            assert_eq!(
                reserve.status(),
                StatusCode::UNAUTHORIZED,
                "reserve {event_id}, key {key:?}"
            );
        }
        let order = json!({"event_id": sold_out["id"],
                           "items": [{"tier_id": sold_out["tiers"][0]["id"], "quantity": 1}]});
        let answer = post("/orders/".into(), order).await.unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::UNAUTHORIZED,
            "order, key {key:?}"
        );
        for action in ["pay", "cancel"] {
            let answer = post(format!("{ticket}/{action}"), json!({})).await.unwrap();
            assert_eq!(
                answer.status(),
                StatusCode::UNAUTHORIZED,
                "{action}, key {key:?}"
            );
        }
    }
    for path in ["/users/me", "/tickets/my-tickets", ticket.as_str()] {
        assert_eq!(
            app.get(path, token).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    // Its keyed requests wrote no key.
    app.assert_invariants().await;
}

async fn listings_beyond_the_bulkhead_are_shed_while_reads_go_on(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.expensive_reads_max = 1;
        settings.expensive_read_wait = Duration::from_millis(1);
    })
    .await;
    let user = app.register_user(None).await;
    let event = app.create_event(&user.token, json!({})).await;
    // Listings read the database; searches served from memory do not take the bulkhead. A
    // buyer's pages of orders and tickets and an organiser's stats share it.
    let paths = [
        "/events/?limit=1000".to_owned(),
        "/orders/my-orders?limit=1000".to_owned(),
        "/tickets/my-tickets?limit=1000".to_owned(),
        format!("/events/{}/stats", event["id"].as_str().unwrap()),
    ];
    for path in &paths {
        let listing = || {
            app.client
                .get(app.url(path))
                .bearer_auth(&user.token)
                .send()
        };
        let answers = futures::future::join_all((0..48).map(|_| listing())).await;
        let mut shed = 0;
        for answer in answers {
            let answer = answer.unwrap();
            match answer.status() {
                StatusCode::OK => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    shed += 1;
                    assert!(answer.headers().contains_key("retry-after"));
                    let body: Value = answer.json().await.unwrap();
                    assert!(body["detail"].is_string());
                }
                other => panic!("{path} answered {other}"),
            }
        }
        assert!(
            shed > 0,
            "48 of {path} at once through a bulkhead of one: none was shed"
        );
    }
    // Event reads and health do not queue behind listings.
    let (status, _) = app
        .get(&format!("/events/{}", event["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get_unprefixed("/health").await.status(), StatusCode::OK);
}

/// A login storm against a real server process: beyond the hashing queue logins answer 503
/// at once, and the process's memory stays bounded (it grew by gigabytes before).
async fn password_hashing_beyond_its_queue_answers_busy(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let env = [
        ("PASSWORD_HASH_QUEUE", "8"),
        ("AUTH_RATE_LIMIT_PER_EMAIL_TOTAL", "100000"),
    ];
    let server = Process::start(&database.url, &["serve"], &env).await;
    let client = reqwest::Client::new();
    let login = |i: usize| {
        let body = json!({"email": format!("nobody{i}@example.com"), "password": "password1"});
        client
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&body)
            .send()
    };
    let rss_before = server.resident_kib();
    for burst in 0..3 {
        let answers = futures::future::join_all((0..200).map(|i| login(burst * 200 + i))).await;
        let mut busy = 0;
        for answer in answers {
            let answer = answer.unwrap();
            match answer.status() {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    busy += 1;
                    assert!(answer.headers().contains_key("retry-after"));
                }
                other => panic!("a login answered {other}"),
            }
        }
        assert!(
            busy > 0,
            "200 logins at once with a queue of 8: none refused"
        );
    }
    // A few 19 MiB hashes at a time: memory cannot grow with the number of logins.
    let grown_mib = server.resident_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 200, "resident memory grew by {grown_mib} MiB");
}

async fn idle_and_stalled_connections_are_closed_and_capped(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(backend, |settings| {
        settings.max_connections = 20;
        settings.idle_connection_timeout = Duration::from_millis(300);
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Twice the cap: half send nothing, half stall in the middle of their headers.
    let mut sockets = Vec::new();
    for i in 0..40 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 2 == 1 {
            socket
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        sockets.push(socket);
    }
    // Health is answered once idle sockets free their slots (they are closed, not kept).
    let health = tokio::time::timeout(Duration::from_secs(20), app.get_unprefixed("/health"));
    assert_eq!(
        health.await.expect("health answered").status(),
        StatusCode::OK
    );
    // Every socket is eventually closed by the server: reading to the end finishes (end of
    // stream or a reset) instead of hanging.
    for mut socket in sockets {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut rest))
            .await
            .expect("the server closed the idle socket")
            .ok();
    }
}

async fn metrics_can_have_an_address_of_their_own(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let metrics_port = crate::process_support::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let server = Process::start(
        &database.url,
        &["serve"],
        &[("METRICS_ADDR", &metrics_addr)],
    )
    .await;
    let client = reqwest::Client::new();
    let on_api = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        on_api.status(),
        StatusCode::NOT_FOUND,
        "not on the API's address"
    );
    let scraped = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
}

async fn idempotency_keys_per_user_are_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.idempotency_keys_per_user = 2).await;
    let user = app.register_user(None).await;
    let event = app.create_event(&user.token, json!({})).await;
    let reserve = |key: &'static str| {
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&json!({"event_id": event["id"]}))
            .send()
    };
    assert_eq!(reserve("k1").await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(reserve("k2").await.unwrap().status(), StatusCode::CREATED);
    let third = reserve("k3").await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    // Keys already held still replay their answers.
    let replay = reserve("k1").await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 2);
}

async fn a_cut_off_keyed_write_commits_nothing_and_its_retry_runs_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.request_timeout = Duration::from_millis(500);
    })
    .await;
    let buyer = app.register_user(None).await;
    let event = app.create_event(&buyer.token, json!({})).await;
    let event_id = event["id"].as_str().unwrap();
    let reserve = || {
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", "flaky-network")
            .json(&json!({"event_id": event_id}))
            .send()
    };

    let unblock = block_reservations(&app, event_id).await;
    let first = reserve().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE, "cut off");
    assert_eq!(
        first.headers()["retry-after"],
        "1",
        "every 503 says when to come back"
    );
    unblock.send(()).unwrap();
    // The cut-off work rolled back with its transaction. Its claim on the key lapses after
    // its lease; until then retries hear "in progress", then one takes the key and reserves.
    let retry = loop {
        let retry = reserve().await.unwrap();
        if retry.status() != StatusCode::CONFLICT {
            break retry;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(retry.status(), StatusCode::CREATED);
    let created = retry.text().await.unwrap();
    let replay = reserve().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), created);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 1);
    app.assert_invariants().await;
}

async fn sold_out_answers_take_no_lock(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.request_timeout = Duration::from_secs(2);
    })
    .await;
    let (first, second) = (app.register_user(None).await, app.register_user(None).await);
    let event = app
        .create_event(&first.token, json!({"total_tickets": 1}))
        .await;
    let event_id = event["id"].as_str().unwrap();
    let body = json!({"event_id": event_id});
    let (status, _) = app
        .post("/tickets/", Some(&first.token), body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // With the event's lock (the write lock on SQLite) held elsewhere, "sold out" still comes
    // at once: it is read, not written (a write would wait and be cut off with 503). On
    // PostgreSQL the memory forgets a sale at any notification about it, and the event's
    // creation sent one that a busy machine may deliver after the sale was remembered: a
    // refusal then reads the database once (and waits), after which the memory answers.
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        let unblock = block_reservations(&app, event_id).await;
        let (status, answer) = app
            .post("/tickets/", Some(&second.token), body.clone())
            .await;
        unblock.send(()).unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE && backend == Backend::Postgres && attempts < 2
        {
            app.post("/tickets/", Some(&second.token), body.clone())
                .await;
            continue;
        }
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        break answer;
    };
    assert!(
        answer["detail"].as_str().unwrap().contains("sold out"),
        "{answer}"
    );
}

async fn a_key_claimed_by_a_dead_process_is_taken_over(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.request_timeout = Duration::from_secs(2);
    })
    .await;
    let buyer = app.register_user(None).await;
    let event = app.create_event(&buyer.token, json!({})).await;
    let event_id = event["id"].as_str().unwrap();
    // What a process that claimed the key and died at once leaves behind.
    let dead_claim = ClaimTerms {
        claim: uuid::Uuid::new_v4(),
        lease: Duration::from_millis(500),
        quota: 1000,
    };
    let key = RequestKey {
        user_id: buyer.id.parse().unwrap(),
        key: "after-a-crash",
    };
    let fingerprint = format!("POST /tickets/ {event_id}");
    let claimed = app.store.claim_key(key, &fingerprint, dead_claim).await;
    assert_eq!(claimed.unwrap(), IdempotencyClaim::Claimed);

    // The retry waits (reading) for the first to finish, and takes the key once its lease lapses.
    let retry = app
        .client
        .post(app.url("/tickets/"))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", "after-a-crash")
        .json(&json!({"event_id": event_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 1);
}

/// A small tmpfs mounted for one test (needs root), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk: writes are refused with 503 and every 201 answered is a stored row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_on_a_full_disk_answers_503_and_keeps_every_answered_write() {
    let Some(disk) = Tmpfs::mount("2m") else {
        eprintln!("skipping: mounting a tmpfs needs root (.ci/run runs as root)");
        return;
    };
    let path = disk.dir.path().join("full.db");
    let app = TestApp::spawn_on_sqlite_file(&path).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let (mut created, mut refused) = (0i64, 0);
    let description = "x".repeat(4000);
    while refused < 10 && created < 5000 {
        let body = event_body(json!({"description": description}));
        let (status, answer) = app.post("/events/", token, body).await;
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("creating an event on a full disk answered {other}: {answer}"),
        }
    }
    assert!(refused > 0, "2 MiB never filled up after {created} events");
    // A registration is refused, or it really created the account.
    let email = "late@example.com";
    let body = json!({"name": "Late", "email": email, "password": "password1"});
    let (status, _) = app.register_with(body).await;
    assert!(
        [StatusCode::CREATED, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
        "{status}"
    );
    if status == StatusCode::CREATED {
        let login = json!({"email": email, "password": "password1"});
        assert_eq!(app.post("/auth/login", None, login).await.0, StatusCode::OK);
    }
    let stored = app.scalar("SELECT COUNT(*) FROM events").await;
    assert_eq!(
        stored, created,
        "every 201 is a stored event, and nothing else is"
    );
    app.stop().await;
}

/// A database file (and its WAL) made read-only under a running server: writes answer 503 and
/// health says so. (The `-shm` index is left writable: SQLite maps it shared, and the kernel
/// kills a process that dirties a mapped page of an immutable file with SIGBUS, whatever the
/// process does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_made_read_only_answers_503_and_health_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frozen.db");
    let app = TestApp::spawn_on_sqlite_file(&path).await;
    let user = app.register_user(None).await;
    let event = app.create_event(&user.token, json!({})).await;
    let files: Vec<_> = ["", "-wal"]
        .iter()
        .map(|suffix| format!("{}{suffix}", path.display()))
        .filter(|file| std::path::Path::new(file).exists())
        .collect();
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .args(&files)
            .status()
            .is_ok_and(|status| status.success())
    };
    if !chattr("+i") {
        eprintln!("skipping: chattr +i needs root and a file system that supports it");
        return;
    }
    let token = Some(user.token.as_str());
    let event_path = format!("/events/{}", event["id"].as_str().unwrap());
    let body = json!({"name": "N", "email": "frozen@example.com", "password": "password1"});
    let register = app.register_with(body).await.0;
    let update = app.put(&event_path, token, json!({"title": "New"})).await.0;
    let location = json!({"latitude": 1.0, "longitude": 2.0});
    let moved = app.put("/users/me/location", token, location).await.0;
    let health = app.get_unprefixed("/health").await;
    let health_status = health.status();
    let health_body: Value = health.json().await.unwrap();
    chattr("-i");
    for (what, status) in [
        ("register", register),
        ("update", update),
        ("location", moved),
    ] {
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what} on a read-only file"
        );
    }
    assert_eq!(
        health_status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{health_body}"
    );
    assert_eq!(health_body["database"]["writable"], false);
    // Nothing answered 503 was stored.
    let (_, stored) = app.get(&event_path, None).await;
    assert_ne!(stored["title"], "New");
    app.stop().await;
}

/// Hundreds of connections placing keyed orders (each its own `Idempotency-Key`, as
/// payment-grade clients send) on one hot event: they share the order batches like unkeyed
/// ones, so `/health` and another event's reads are answered throughout, never 503, and every
/// placed order replays.
async fn a_flood_of_keyed_orders_leaves_health_and_other_reads_answered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let buyers = futures::future::join_all((0..16).map(|_| app.register_user(None))).await;
    let hot = app
        .create_event(&organiser.token, json!({"total_tickets": 1_000_000}))
        .await;
    let other = app.create_event(&organiser.token, json!({})).await;
    let other_path = format!("/events/{}", other["id"].as_str().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hot_body = json!({"event_id": hot["id"]});
    let flood = (0..200).map(|connection| {
        let (app, stop, body) = (&app, stop.clone(), &hot_body);
        let buyer = &buyers[connection % buyers.len()];
        async move {
            let mut placed = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = uuid::Uuid::new_v4().to_string();
                let response = app
                    .client
                    .post(app.url("/tickets/"))
                    .bearer_auth(&buyer.token)
                    .header("Idempotency-Key", &key)
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                placed.push((buyer, key, response.text().await.unwrap()));
            }
            placed
        }
    });
    let watch = async {
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        let mut answered = 0;
        while tokio::time::Instant::now() < until {
            let health = app.get_unprefixed("/health").await.status();
            assert_eq!(health, StatusCode::OK, "/health during the flood");
            let (status, _) = app.get(&other_path, None).await;
            assert_eq!(status, StatusCode::OK, "another event during the flood");
            answered += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        answered
    };
    let (placed, answered) = tokio::join!(futures::future::join_all(flood), watch);
    let placed: Vec<_> = placed.into_iter().flatten().collect();
    assert!(
        answered > 0 && placed.len() > 200,
        "{answered} reads, {} orders",
        placed.len()
    );
    let sold = app.scalar("SELECT COUNT(*) FROM tickets").await;
    assert_eq!(sold, placed.len() as i64, "one ticket per answered order");
    // A sample of them replays byte for byte.
    for (buyer, key, first) in placed.iter().step_by(placed.len() / 20) {
        let replay = app
            .client
            .post(app.url("/tickets/"))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", key)
            .json(&json!({"event_id": hot["id"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(&replay.text().await.unwrap(), first);
    }
    app.assert_invariants().await;
}

/// A keyed write that is refused (422, 409, 404) leaves its key free: nothing is stored for
/// it, and the same request with the same key runs again — and succeeds once it can.
async fn refused_keyed_writes_store_no_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&buyer.token, json!({"total_tickets": 1}))
        .await;
    let keyed = |path: &str, key: &'static str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(&buyer.token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let unknown_tier = json!({"event_id": event["id"],
        "items": [{"tier_id": uuid::Uuid::new_v4(), "quantity": 1}]});
    for _ in 0..2 {
        let refused = keyed("/orders/", "bad-tier", unknown_tier.clone())
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!refused.headers().contains_key("idempotent-replayed"));
    }
    let unknown_ticket = format!("/tickets/{}/pay", uuid::Uuid::new_v4());
    let refused = keyed(&unknown_ticket, "no-ticket", json!({}))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM idempotency_keys").await, 0);

    let first = keyed("/tickets/", "first", json!({"event_id": event["id"]}))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let sold_out = keyed("/tickets/", "second", json!({"event_id": event["id"]}))
        .await
        .unwrap();
    assert_eq!(sold_out.status(), StatusCode::CONFLICT);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM idempotency_keys").await, 1);
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (status, _) = app
        .put(&path, Some(&buyer.token), json!({"total_tickets": 2}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let retry = keyed("/tickets/", "second", json!({"event_id": event["id"]}))
        .await
        .unwrap();
    assert_eq!(
        retry.status(),
        StatusCode::CREATED,
        "the refused key ran again"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM idempotency_keys").await, 2);
}

/// Every listing and search pages at most 10 000 rows deep (`skip + limit`): deeper asks are
/// 422 at `skip`, at the bound they are answered.
async fn deep_pages_are_refused_on_every_listing_and_search(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(Some((6.5, 3.4))).await;
    let token = Some(user.token.as_str());
    let paths = [
        "/events/?",
        "/events/nearby?latitude=6.5&longitude=3.4&",
        "/for-you/?",
        "/tickets/my-tickets?",
        "/orders/my-orders?",
    ];
    for path in paths {
        let (status, body) = app.get(&format!("{path}skip=9981&limit=20"), token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert!(
            error_locs(&body).contains(&loc(&["query", "skip"])),
            "{path}: {body}"
        );
        let (status, body) = app.get(&format!("{path}skip=9980&limit=20"), token).await;
        assert_eq!(status, StatusCode::OK, "{path} at the bound: {body}");
    }
}

/// One account cannot take a sale's seats by the thousand: the reservation limit counts
/// tickets, not requests; and event writes (creations, changes, tier changes) and pay requests
/// have limits of their own. Each answers 429 with `Retry-After`.
async fn reservations_count_tickets_and_event_writes_are_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.reservation_rate_limit_per_user = std::num::NonZeroU32::new(10).unwrap();
        settings.event_write_rate_limit_per_user = std::num::NonZeroU32::new(3).unwrap();
        settings.payment_rate_limit_per_user = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let event = app
        .create_event(&user.token, json!({"total_tickets": 100}))
        .await;
    let tier = &event["tiers"][0]["id"];
    let order = |quantity: i64| {
        json!({"event_id": event["id"],
        "items": [{"tier_id": tier, "quantity": quantity}]})
    };
    assert_eq!(
        app.post("/orders/", token, order(8)).await.0,
        StatusCode::CREATED
    );
    let refused = app
        .client
        .post(app.url("/orders/"))
        .bearer_auth(&user.token)
        .json(&order(3))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "only 2 tickets left"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let (status, second) = app.post("/orders/", token, order(2)).await;
    assert_eq!(status, StatusCode::CREATED);
    // Two pays a minute: the third is refused before it reaches the order; a replay of a
    // keyed pay is no pay and is answered past the limit.
    let pay = format!("/orders/{}/pay", second["id"].as_str().unwrap());
    let keyed_pay = || {
        app.client
            .post(app.url(&pay))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", "pay-once")
            .send()
    };
    assert_eq!(keyed_pay().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        app.post(&pay, token, json!({})).await.0,
        StatusCode::CONFLICT
    );
    let refused = app
        .client
        .post(app.url(&pay))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "two pays a minute"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let replay = keyed_pay().await.unwrap();
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (status, _) = app
        .post("/tickets/", token, json!({"event_id": event["id"]}))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "10 tickets this minute"
    );

    // One creation above; two more writes pass, the next is refused.
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    assert_eq!(
        app.put(&path, token, json!({"title": "Again"})).await.0,
        StatusCode::OK
    );
    let tiers = format!("{path}/tiers");
    let (status, _) = app.post(&tiers, token, json!({"name": "VIP"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post("/events/", token, event_body(json!({}))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

/// Lowering an event's total leaves its tiers' quantities as they are; a later change of only
/// a tier's price is then judged on the price, not refused on the quantity it left alone.
async fn a_tier_change_is_judged_on_what_it_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let event = app
        .create_event(
            &user.token,
            json!({"total_tickets": 10, "tiers": [{"name": "Regular", "quantity": 8}]}),
        )
        .await;
    let path = format!("/events/{}", event["id"].as_str().unwrap());
    let (status, _) = app.put(&path, token, json!({"total_tickets": 5})).await;
    assert_eq!(status, StatusCode::OK);
    let tier = format!("{path}/tiers/{}", event["tiers"][0]["id"].as_str().unwrap());
    let (status, body) = app.put(&tier, token, json!({"price_minor": 2500})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["price_minor"].clone(), body["quantity"].clone()),
        (json!(2500), json!(8))
    );
    let (status, body) = app.put(&tier, token, json!({"quantity": 9})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a new quantity is checked: {body}"
    );
}

/// A keyed order that took an event's last seat is replayed to its retry, byte for byte, even
/// though any other order for the event is now refused (from the sold-out memory on
/// PostgreSQL, from a glance at the event on SQLite).
async fn a_retry_of_the_order_that_took_the_last_seat_replays_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let buyer = app.register_user(None).await;
    let other = app.register_user(None).await;
    let event = app
        .create_event(&buyer.token, json!({"total_tickets": 1}))
        .await;
    let body = json!({"event_id": event["id"]});
    let reserve = |token: &str, key: &'static str| {
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = reserve(&buyer.token, "last-seat").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.text().await.unwrap();
    let (status, _) = app
        .post("/tickets/", Some(&other.token), body.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "sold out for anyone else");
    for _ in 0..3 {
        let retry = reserve(&buyer.token, "last-seat").await.unwrap();
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.text().await.unwrap(), first);
    }
    let refused = reserve(&other.token, "sold-out").await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "a new key on a sold-out event"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 1);
}

/// `IDEMPOTENCY_KEYS_PER_USER` holds exactly when one user sends many keyed orders at once,
/// spread over events (so over every order lane): as many succeed as the quota allows, the rest
/// get 429, and no more keys are stored.
async fn the_key_quota_is_exact_under_concurrency(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |settings| settings.idempotency_keys_per_user = 20).await;
    let user = app.register_user(None).await;
    let mut events = Vec::new();
    for _ in 0..8 {
        events.push(
            app.create_event(&user.token, json!({"total_tickets": 1000}))
                .await,
        );
    }
    let attempts = (0..160).map(|i| {
        let body = json!({"event_id": events[i % events.len()]["id"]});
        app.client
            .post(app.url("/tickets/"))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", format!("quota-{i}"))
            .json(&body)
            .send()
    });
    let mut created = 0;
    for answer in futures::future::join_all(attempts).await {
        match answer.unwrap().status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("a keyed order answered {other}"),
        }
    }
    assert_eq!(created, 20, "exactly the quota");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM idempotency_keys").await,
        20
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM tickets").await, 20);
}

/// Event-level `is_sold_out` and `tickets_available`, and search, mean "can be bought now",
/// derived from the tiers: the same in the event, the listing, nearby and for-you, and as
/// ordering answers. A sales window opening by the clock, and a tier edited to sell now, put
/// the event on sale (and in search) without any sale.
async fn an_event_is_sold_out_when_nothing_can_be_bought_now(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(None).await;
    let buyer = app.register_user(Some((6.5244, 3.3792))).await;
    let token = Some(organiser.token.as_str());
    let quota_sold = app
        .create_event(
            &organiser.token,
            json!({"title": "Quota", "total_tickets": 99,
                   "tiers": [{"name": "Only", "quantity": 1}]}),
        )
        .await;
    let opens_soon = chrono::Utc::now() + chrono::Duration::seconds(3);
    let not_yet = app
        .create_event(
            &organiser.token,
            json!({"title": "Soon", "total_tickets": 50,
                   "tiers": [{"name": "Later", "sales_start": opens_soon.to_rfc3339()}]}),
        )
        .await;
    let edited = app
        .create_event(
            &organiser.token,
            json!({"title": "Edited", "total_tickets": 20,
                   "tiers": [{"name": "Tomorrow",
                              "sales_start": (chrono::Utc::now() + chrono::Duration::days(1))
                                  .to_rfc3339()}]}),
        )
        .await;
    let on_sale = app
        .create_event(&organiser.token, json!({"title": "Open"}))
        .await;
    let (status, body) = app
        .post(
            "/orders/",
            Some(&buyer.token),
            json!({"event_id": quota_sold["id"],
                   "items": [{"tier_id": quota_sold["tiers"][0]["id"], "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // (available, sold out) of an event in every read that shows it.
    let shown = |event: &Value| {
        (
            event["tickets_available"].clone(),
            event["is_sold_out"].clone(),
        )
    };
    // The titles nearby and for-you find, each checked against its total.
    let searched = || async {
        let (_, nearby) = app
            .get(
                "/events/nearby?latitude=6.5244&longitude=3.3792&radius_km=10",
                None,
            )
            .await;
        let (_, for_you) = app.get("/for-you/?radius=10", Some(&buyer.token)).await;
        let titles = |found: &Value| -> Vec<String> {
            let mut titles: Vec<String> = found["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["title"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(found["total"], json!(titles.len()));
            titles.sort();
            titles
        };
        (titles(&nearby), titles(&for_you))
    };
    let both = |titles: &[&str]| {
        let titles: Vec<String> = titles.iter().map(|title| title.to_string()).collect();
        (titles.clone(), titles)
    };
    let (_, listing) = app.get("/events/?limit=10", None).await;
    let listed = |id: &Value| {
        listing["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["id"] == *id)
            .map(shown)
            .unwrap()
    };
    for (event, expected) in [
        (&quota_sold, (json!(0), json!(true))),
        (&not_yet, (json!(0), json!(true))),
        (&edited, (json!(0), json!(true))),
        (&on_sale, (json!(100), json!(false))),
    ] {
        let path = format!("/events/{}", event["id"].as_str().unwrap());
        let (_, read) = app.get(&path, None).await;
        assert_eq!(shown(&read), expected, "{}", read["title"]);
        assert_eq!(listed(&event["id"]), expected, "{} listed", read["title"]);
    }
    assert_eq!(searched().await, both(&["Open"]));
    for event in [&quota_sold, &not_yet] {
        let (status, body) = app
            .post(
                "/tickets/",
                Some(&buyer.token),
                json!({"event_id": event["id"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }

    // A tier edited to sell now: the event is on sale at once, search within its bound.
    let tier = format!(
        "/events/{}/tiers/{}",
        edited["id"].as_str().unwrap(),
        edited["tiers"][0]["id"].as_str().unwrap()
    );
    let (status, body) = app.put(&tier, token, json!({"sales_start": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = app
        .get(&format!("/events/{}", edited["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(shown(&read), (json!(20), json!(false)));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while searched().await != both(&["Edited", "Open"]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the edited tier shows in search"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A window opening by the clock: on sale, and in search within a second of it.
    let wait = (opens_soon - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let (_, read) = app
        .get(
            &format!("/events/{}", not_yet["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shown(&read), (json!(50), json!(false)));
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while searched().await != both(&["Edited", "Open", "Soon"]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the opened window shows in search"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The search model keeps no description longer than `KEPT_DESCRIPTION_BYTES` (its memory per
/// event does not grow with them); a page reads those by id, so answers show them in full.
async fn search_shows_long_descriptions_it_does_not_keep(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let organiser = app.register_user(Some((6.5244, 3.3792))).await;
    let long = "Ein langer Abend.".repeat(290);
    assert!(long.chars().count() <= 5000 && long.len() > 256);
    for (title, description) in [("Long", long.as_str()), ("Short", "Live music")] {
        app.create_event(
            &organiser.token,
            json!({"title": title, "description": description}),
        )
        .await;
    }
    let (_, nearby) = app
        .get("/events/nearby?latitude=6.5244&longitude=3.3792", None)
        .await;
    let (_, for_you) = app.get("/for-you/", Some(&organiser.token)).await;
    for found in [&nearby, &for_you] {
        let shown: Vec<(&str, &str)> = found["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| {
                (
                    event["title"].as_str().unwrap(),
                    event["description"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(shown.len(), 2, "{found}");
        assert!(shown.contains(&("Long", long.as_str())));
        assert!(shown.contains(&("Short", "Live music")));
    }
}
