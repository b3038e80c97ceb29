//! PostgreSQL stopped and restarted under load: 503s while it is away, full service after,
//! invariants intact. It stops the real server, so it runs only where asked to:
//! NEARBYTIX_OUTAGE_TEST_CLUSTER="<version> <name>" (for pg_ctlcluster), as `.ci/run` sets.
//! Its own test binary, so no other test runs while the database is down.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/process_support.rs"]
mod process_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::Mutex;

use helpers::{Backend, TestDatabase, assert_invariants, scalar};
use process_support::{Api, Process};

/// Starts the cluster again when dropped, so a failing test never leaves it down.
struct Outage {
    cluster: Vec<String>,
}

impl Outage {
    fn begin(cluster: &str) -> Outage {
        let outage = Outage {
            cluster: cluster.split_whitespace().map(str::to_owned).collect(),
        };
        outage.ctl("stop");
        outage
    }

    fn ctl(&self, action: &str) {
        let status = Command::new("pg_ctlcluster")
            .arg("--skip-systemctl-redirect")
            .args(&self.cluster)
            .arg(action)
            .args(if action == "stop" {
                &["-m", "fast"][..]
            } else {
                &[][..]
            })
            .status()
            .expect("run pg_ctlcluster");
        assert!(status.success(), "pg_ctlcluster {action} failed");
    }

    fn end(self) {}
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.ctl("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_survives_a_database_restart() {
    let Ok(cluster) = std::env::var("NEARBYTIX_OUTAGE_TEST_CLUSTER") else {
        eprintln!("skipped: set NEARBYTIX_OUTAGE_TEST_CLUSTER to stop and restart PostgreSQL");
        return;
    };
    let Some(backend) = Backend::postgres_if_configured() else {
        return;
    };
    let database = TestDatabase::create(backend).await;
    let server = Process::start(
        &database.url,
        &["serve"],
        &[("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let api = Api::new();
    let token = api.register(&server.base).await;
    let event = api.create_event(&server.base, &token, 100_000).await;

    // Steady load for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (stop, answers, api) = (stop.clone(), answers.clone(), Api::new());
            let (base, token, event) = (server.base.clone(), token.clone(), event.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = api.reserve(&base, &token, &event).await;
                    answers.lock().await.push(answer);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let outage = Outage::begin(&cluster);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let health = api
        .client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = api
        .reserve(&server.base, &token, &event)
        .await
        .expect("an answer");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "503s come quickly"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    outage.end();

    // Back without a restart of the service.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = api
            .client
            .get(format!("{}/health", server.base))
            .send()
            .await;
        if health.is_ok_and(|response| response.status() == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not recover: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (status, _) = api.reserve(&server.base, &token, &event).await.unwrap();
    assert_eq!(status, StatusCode::CREATED);

    let answers = answers.lock().await;
    let created = answers
        .iter()
        .flatten()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let unavailable = answers
        .iter()
        .flatten()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    for (status, _) in answers.iter().flatten() {
        assert!(
            matches!(status.as_u16(), 201 | 503),
            "only reservations and 503s while the database comes and goes, got {status}"
        );
    }
    assert!(
        created > 0 && unavailable > 0,
        "created {created}, unavailable {unavailable}"
    );
    // Every answered reservation is stored (plus the final one).
    let stored = scalar(backend, &database.url, "SELECT COUNT(*) FROM tickets").await;
    assert!(
        stored as usize > created,
        "stored {stored} tickets, answered {} reservations",
        created + 1
    );
    assert_invariants(backend, &database.url).await;
}
