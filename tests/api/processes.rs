//! Real `nearbytix` processes (the built binary) sharing one database: several API processes
//! and a worker, kill -9 in the middle of a sale, and graceful shutdown on SIGTERM.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestDatabase, assert_invariants, event_body, scalar};
use crate::process_support::{Api, Process, free_port};

backend_tests!(
    two_api_processes_and_a_worker_share_one_database,
    killing_an_api_process_loses_no_answered_reservation,
    sigterm_finishes_in_flight_requests,
    a_seat_released_in_one_process_sells_in_another_within_a_second,
    a_sold_out_tier_is_remembered_until_a_seat_comes_back_through_another_process,
    search_in_one_process_follows_changes_made_through_another,
);

async fn two_api_processes_and_a_worker_share_one_database(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let hold = [("TICKET_EXPIRATION_TIME", "2")];
    let first = Process::start(&database.url, &["serve", "--no-sweeper"], &hold).await;
    let second = Process::start(&database.url, &["serve", "--no-sweeper"], &hold).await;
    let _worker = Process::start(
        &database.url,
        &["worker"],
        &[("SWEEP_INTERVAL_SECONDS", "0.2")],
    )
    .await;
    let api = Api::new();
    let tokens = join_all((0..20).map(|_| api.register(&first.base))).await;
    let event = api.create_event(&first.base, &tokens[0], 60).await;

    let answers = join_all((0..300).map(|i| {
        let base = if i % 2 == 0 {
            &first.base
        } else {
            &second.base
        };
        api.reserve(base, &tokens[i % tokens.len()], &event)
    }))
    .await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().0.as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 60);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 240);
    assert_invariants(backend, &database.url).await;

    // The worker alone expires every hold, exactly once.
    tokio::time::sleep(Duration::from_millis(2000 + 1500)).await;
    assert_eq!(
        scalar(
            backend,
            &database.url,
            "SELECT COUNT(*) FROM tickets WHERE status = 'expired'"
        )
        .await,
        60
    );
    assert_eq!(
        scalar(
            backend,
            &database.url,
            "SELECT COUNT(*) FROM tickets WHERE status = 'reserved'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            backend,
            &database.url,
            "SELECT CAST(SUM(tickets_sold) AS BIGINT) FROM events"
        )
        .await,
        0
    );
    assert_invariants(backend, &database.url).await;
    let (status, _) = api.reserve(&second.base, &tokens[1], &event).await.unwrap();
    assert_eq!(status, StatusCode::CREATED);
}

async fn killing_an_api_process_loses_no_answered_reservation(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut victim = Process::start(&database.url, &["serve"], &[]).await;
    let survivor = Process::start(&database.url, &["serve"], &[]).await;
    let api = Api::new();
    let tokens = join_all((0..20).map(|_| api.register(&survivor.base))).await;
    let event = api.create_event(&survivor.base, &tokens[0], 5000).await;

    let load = join_all((0..600).map(|i| {
        let base = if i % 2 == 0 {
            victim.base.clone()
        } else {
            survivor.base.clone()
        };
        let (api, token, event) = (&api, &tokens[i % tokens.len()], &event);
        async move {
            // Spread the requests over time so the kill lands in the middle of the sale.
            tokio::time::sleep(Duration::from_millis((i as u64 % 60) * 5)).await;
            api.reserve(&base, token, event).await
        }
    }));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        victim.kill_hard();
    };
    let (answers, ()) = tokio::join!(load, kill);

    assert!(
        answers.iter().any(Option::is_none),
        "some requests met the killed process"
    );
    let mut answered = HashSet::new();
    for (status, ticket) in answers.into_iter().flatten() {
        assert!(status == StatusCode::CREATED, "unexpected {status}");
        answered.insert(ticket.unwrap());
    }
    assert!(!answered.is_empty());
    for ticket in &answered {
        let sql = match backend {
            Backend::Sqlite => format!(
                "SELECT COUNT(*) FROM tickets WHERE id = X'{}'",
                ticket.replace('-', "")
            ),
            Backend::Postgres => format!("SELECT COUNT(*) FROM tickets WHERE id = '{ticket}'"),
        };
        assert_eq!(
            scalar(backend, &database.url, &sql).await,
            1,
            "answered ticket {ticket} is stored"
        );
    }
    assert_invariants(backend, &database.url).await;
    let (status, _) = api
        .reserve(&survivor.base, &tokens[0], &event)
        .await
        .expect("survivor answers");
    assert_eq!(status, StatusCode::CREATED);
}

async fn sigterm_finishes_in_flight_requests(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut server = Process::start(&database.url, &["serve"], &[]).await;
    let api = Api::new();
    let tokens = join_all((0..10).map(|_| api.register(&server.base))).await;
    let event = api.create_event(&server.base, &tokens[0], 10_000).await;
    let base = server.base.clone();
    let load = join_all((0..400).map(|i| {
        let (api, token, event, base) = (&api, &tokens[i % tokens.len()], &event, &base);
        async move {
            tokio::time::sleep(Duration::from_millis((i as u64 % 40) * 5)).await;
            api.reserve(base, token, event).await
        }
    }));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.terminate();
    };
    let (answers, ()) = tokio::join!(load, stop);
    assert!(
        answers.iter().any(Option::is_none),
        "the signal landed during the load"
    );
    let created = answers
        .iter()
        .flatten()
        .inspect(|(status, _)| assert!(!status.is_server_error(), "shutdown caused {status}"))
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert!(created > 0);
    assert_eq!(
        server.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        server.log()
    );
    let stored = scalar(backend, &database.url, "SELECT COUNT(*) FROM tickets").await;
    assert_eq!(
        stored as usize, created,
        "every 201 is stored and nothing else is"
    );
    assert_invariants(backend, &database.url).await;
}

/// A process that has seen an event sell out (and answers "sold out" from memory on
/// PostgreSQL) sells a seat cancelled through another process within a second.
async fn a_seat_released_in_one_process_sells_in_another_within_a_second(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let first = Process::start(&database.url, &["serve", "--no-sweeper"], &[]).await;
    let second = Process::start(&database.url, &["serve", "--no-sweeper"], &[]).await;
    let api = Api::new();
    let tokens = join_all((0..3).map(|_| api.register(&first.base))).await;
    let event = api.create_event(&first.base, &tokens[0], 2).await;
    let mut held = Vec::new();
    for token in &tokens[..2] {
        let (status, ticket) = api.reserve(&second.base, token, &event).await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        held.push(ticket.unwrap());
    }
    for _ in 0..3 {
        let (status, _) = api.reserve(&second.base, &tokens[2], &event).await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT, "sold out");
    }
    assert_eq!(
        api.cancel(&first.base, &tokens[0], &held[0]).await,
        StatusCode::OK
    );
    let cancelled = std::time::Instant::now();
    loop {
        let (status, _) = api.reserve(&second.base, &tokens[2], &event).await.unwrap();
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            cancelled.elapsed() < Duration::from_secs(1),
            "the released seat was still sold out after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_invariants(backend, &database.url).await;
}

/// A tier sold out through process B is refused by B from memory (PostgreSQL: its metrics say
/// so) while the event's other tier still sells there; a seat given back, more seats for the
/// tier, and its sales closed, through process A, show through B within a second.
async fn a_sold_out_tier_is_remembered_until_a_seat_comes_back_through_another_process(
    backend: Backend,
) {
    use reqwest::Method;
    let database = TestDatabase::create(backend).await;
    let (first, second, metrics) = two_processes_the_second_measured(&database).await;
    let api = Api::new();
    let tokens = join_all((0..4).map(|_| api.register(&first.base))).await;
    let (organiser, buyers) = (&tokens[0], &tokens[1..]);
    let body = event_body(json!({
        "total_tickets": 10,
        "max_tickets_per_user": 2,
        "tiers": [{"name": "VIP", "quantity": 1, "price_minor": 5000}, {"name": "General"}],
    }));
    let (status, event) = api
        .send(
            Method::POST,
            &first.base,
            "/events/",
            Some(organiser),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    let tier = |name: &str| {
        let tiers = event["tiers"].as_array().unwrap();
        let tier = tiers.iter().find(|tier| tier["name"] == name).unwrap();
        tier["id"].as_str().unwrap().to_owned()
    };
    let (vip, general) = (tier("VIP"), tier("General"));
    let (status, held) = order_one(&api, &second.base, &event, &buyers[0], &vip).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    for _ in 0..3 {
        assert_vip_sold_out(order_one(&api, &second.base, &event, &buyers[1], &vip).await);
    }
    let (status, answer) = order_one(&api, &second.base, &event, &buyers[1], &general).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the other tier still sells: {answer}"
    );
    let from_memory = refusals_from_memory(&metrics).await;
    if backend == Backend::Postgres {
        // The first refusal may have gone to the database, should a notification (the event's
        // creation) have reached B while the sell-out was read.
        assert!(from_memory >= 2.0, "{from_memory} refusals from memory");
    }

    let cancel = format!("/orders/{}/cancel", held["id"].as_str().unwrap());
    let (status, _) = api
        .send(Method::POST, &first.base, &cancel, Some(&buyers[0]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    vip_on_sale_within_a_second(&api, &second.base, &event, &buyers[1], &vip, "cancelled").await;

    assert_vip_sold_out(order_one(&api, &second.base, &event, &buyers[2], &vip).await);
    if backend == Backend::Postgres {
        let now_from_memory = refusals_from_memory(&metrics).await;
        assert!(
            now_from_memory > from_memory,
            "the new sell-out was remembered"
        );
    }
    let more = format!("/events/{}/tiers/{vip}", event["id"].as_str().unwrap());
    let (status, answer) = api
        .send(
            Method::PUT,
            &first.base,
            &more,
            Some(organiser),
            Some(json!({"quantity": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    vip_on_sale_within_a_second(&api, &second.base, &event, &buyers[2], &vip, "more seats").await;

    // Sold out again, and remembered; a changed rule (sales closed) shows through B too.
    assert_vip_sold_out(order_one(&api, &second.base, &event, &buyers[0], &vip).await);
    let closed = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let (status, answer) = api
        .send(
            Method::PUT,
            &first.base,
            &more,
            Some(organiser),
            Some(json!({"sales_end": closed})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let changed = std::time::Instant::now();
    loop {
        let (status, answer) = order_one(&api, &second.base, &event, &buyers[0], &vip).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        if answer["detail"] == "Sales for 'VIP' have ended" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "closed sales still answered as {answer} through the other process after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_invariants(backend, &database.url).await;
}

/// How many orders a process refused from memory, from its `/metrics` at `metrics`.
async fn refusals_from_memory(metrics: &str) -> f64 {
    let text = metrics_text(metrics).await;
    counter(&text, "nearbytix_order_refusals_from_memory_total", "")
}

/// Two API processes on `database`, without sweepers; the second serves its `/metrics` at the
/// address returned.
async fn two_processes_the_second_measured(database: &TestDatabase) -> (Process, Process, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let first = Process::start(&database.url, &["serve", "--no-sweeper"], &[]).await;
    let second = Process::start(
        &database.url,
        &["serve", "--no-sweeper"],
        &[("METRICS_ADDR", metrics.as_str())],
    )
    .await;
    (first, second, metrics)
}

/// A process's `/metrics` text, served at `metrics`.
async fn metrics_text(metrics: &str) -> String {
    reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn order_one(
    api: &Api,
    base: &str,
    event: &serde_json::Value,
    buyer: &str,
    tier: &str,
) -> (StatusCode, serde_json::Value) {
    let body = json!({"event_id": event["id"], "items": [{"tier_id": tier, "quantity": 1}]});
    api.send(
        reqwest::Method::POST,
        base,
        "/orders/",
        Some(buyer),
        Some(body),
    )
    .await
}

fn assert_vip_sold_out((status, answer): (StatusCode, serde_json::Value)) {
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let detail = answer["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("'VIP' is sold out"), "{answer}");
}

/// Orders `vip` through `base` until one is placed, within a second of `what`.
async fn vip_on_sale_within_a_second(
    api: &Api,
    base: &str,
    event: &serde_json::Value,
    buyer: &str,
    vip: &str,
    what: &str,
) {
    let changed = std::time::Instant::now();
    loop {
        let answer = order_one(api, base, event, buyer, vip).await;
        if answer.0 == StatusCode::CREATED {
            return;
        }
        assert_vip_sold_out(answer);
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "{what}: the VIP seat was still sold out through the other process after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of a counter's samples whose labels include `labels`, in a `/metrics` text.
fn counter(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Search in process B follows what is done through process A within a second — an event
/// created, moved away and back, sold out, released, deleted — including a change made while
/// the listening connections were cut (PostgreSQL), whose notification is lost. B answers from
/// its read model throughout (its metrics say so), not by falling back to the database.
async fn search_in_one_process_follows_changes_made_through_another(backend: Backend) {
    use reqwest::Method;
    let database = TestDatabase::create(backend).await;
    let (first, second, metrics) = two_processes_the_second_measured(&database).await;
    let api = Api::new();
    let (organiser, buyer) = (
        api.register(&first.base).await,
        api.register(&first.base).await,
    );
    let searches = std::cell::Cell::new(0);
    let found_in_second = || async {
        searches.set(searches.get() + 1);
        let path = "/events/nearby?latitude=6.5244&longitude=3.3792&radius_km=10&limit=100";
        let (status, body) = api.send(Method::GET, &second.base, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect::<HashSet<_>>()
    };
    let within_a_second = |what: &'static str, event: String, expected: bool| {
        let found_in_second = &found_in_second;
        async move {
            let changed = std::time::Instant::now();
            while found_in_second().await.contains(&event) != expected {
                assert!(
                    changed.elapsed() < Duration::from_secs(1),
                    "{what}: search in the other process did not follow within a second"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let event = api.create_event(&first.base, &organiser, 1).await;
    within_a_second("created", event.clone(), true).await;

    let path = format!("/events/{event}");
    let move_to = |latitude: f64| {
        let mut venue = event_body(json!({}))["venue"].clone();
        venue["latitude"] = json!(latitude);
        let (api, base, path, organiser) = (&api, &first.base, &path, &organiser);
        async move {
            let body = json!({ "venue": venue });
            let (status, _) = api
                .send(Method::PUT, base, path, Some(organiser), Some(body))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    move_to(8.0).await;
    within_a_second("moved away", event.clone(), false).await;
    move_to(6.5244).await;
    within_a_second("moved back", event.clone(), true).await;

    let (status, ticket) = api.reserve(&first.base, &buyer, &event).await.unwrap();
    assert_eq!(status, StatusCode::CREATED);
    within_a_second("sold out", event.clone(), false).await;
    assert_eq!(
        api.cancel(&first.base, &buyer, &ticket.unwrap()).await,
        StatusCode::OK
    );
    within_a_second("seat released", event.clone(), true).await;

    if backend == Backend::Postgres {
        let cut = scalar(
            backend,
            &database.url,
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name IN ('nearbytix-listener-{}', 'nearbytix-listener-{}')",
                first.pid(),
                second.pid()
            ),
        )
        .await;
        assert_eq!(cut, 2, "each process has one listening connection");
    }
    let unannounced = api.create_event(&first.base, &organiser, 5).await;
    within_a_second("created while not listening", unannounced.clone(), true).await;
    let (status, _) = api
        .send(
            Method::DELETE,
            &first.base,
            &format!("/events/{unannounced}"),
            Some(&organiser),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    within_a_second("deleted", unannounced, false).await;

    let text = metrics_text(&metrics).await;
    let from_memory = counter(&text, "nearbytix_search_answers_total", "source=\"memory\"");
    // Most, not all: a read of B's that took long on a busy machine sends a search to the
    // database, which answers it correctly.
    assert!(
        from_memory >= f64::from(searches.get()) * 0.5,
        "{from_memory} of {} searches answered from memory:\n{text}",
        searches.get()
    );
}
