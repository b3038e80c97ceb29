//! Running the built `nearbytix` binary as child processes, and a small HTTP client for them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SECRET, TICKET_KEYS, event_body};

/// A `nearbytix` child process; killed when dropped.
pub struct Process {
    child: Child,
    pub base: String,
    pub port: u16,
    _log: tempfile::NamedTempFile,
}

impl Process {
    pub async fn start(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_nearbytix"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET_KEY", SECRET)
            .env("TICKET_SIGNING_KEYS", TICKET_KEYS)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            // Load generators: one client stands for many users.
            .env("AUTH_RATE_LIMIT_PER_IP", "100000")
            .env("AUTH_RATE_LIMIT_PER_EMAIL", "100000")
            .env("RESERVATION_RATE_LIMIT_PER_USER", "100000")
            .env("PAYMENT_RATE_LIMIT_PER_USER", "100000")
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start nearbytix");
        let process = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            _log: log,
        };
        if !args.contains(&"worker") {
            process.wait_healthy().await;
        }
        process
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nearbytix on port {} did not become healthy: {}",
            self.port,
            self.log()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory in KiB, from /proc (0 where there is none).
    pub fn resident_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._log.path()).unwrap_or_default()
    }

    pub fn kill_hard(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Api {
    pub client: reqwest::Client,
}

impl Api {
    pub fn new() -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    async fn post_json(&self, url: String, token: Option<&str>, body: Value) -> Value {
        let mut request = self.client.post(url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Registers a user through `base`; their token.
    pub async fn register(&self, base: &str) -> String {
        let email = format!("p-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"name": "P", "email": email, "password": "password123"});
        let user = self
            .post_json(format!("{base}/api/v1/auth/register"), None, body)
            .await;
        user["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn create_event(&self, base: &str, token: &str, tickets: i64) -> String {
        let body = event_body(json!({"total_tickets": tickets}));
        let event = self
            .post_json(format!("{base}/api/v1/events/"), Some(token), body)
            .await;
        event["id"].as_str().unwrap().to_owned()
    }

    /// Any request through `base` (`path` from `/api/v1`); the answer's status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{base}/api/v1{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Cancels a ticket through `base`; the answer's status.
    pub async fn cancel(&self, base: &str, token: &str, ticket: &str) -> StatusCode {
        let response = self
            .client
            .post(format!("{base}/api/v1/tickets/{ticket}/cancel"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.status()
    }

    /// A reservation's status and ticket id; `None` when no HTTP answer arrived.
    pub async fn reserve(
        &self,
        base: &str,
        token: &str,
        event: &str,
    ) -> Option<(StatusCode, Option<String>)> {
        let response = self
            .client
            .post(format!("{base}/api/v1/tickets/"))
            .bearer_auth(token)
            .json(&json!({"event_id": event}))
            .send()
            .await
            .ok()?;
        let status = response.status();
        let body: Value = response.json().await.ok()?;
        Some((status, body["id"].as_str().map(str::to_owned)))
    }
}
