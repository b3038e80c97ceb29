//! The live availability page in a real browser: Debian's headless Chromium, driven over its
//! DevTools pipe, opens `/events/{id}/live`, and the page says "Sold out" within 2 s of the
//! last seat's sale. Skipped when Chromium is not installed, except under CI=true.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(the_live_page_says_sold_out_within_two_seconds_of_the_last_sale);

/// The browser to drive: `NEARBYTIX_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> Option<String> {
    let named = std::env::var("NEARBYTIX_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&named)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    match found {
        true => Some(named),
        false if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but {named} does not run: the browser test must run")
        }
        false => {
            eprintln!("skipping: {named} is not installed (apt-get install chromium)");
            None
        }
    }
}

/// A headless Chromium spoken to over `--remote-debugging-pipe`: commands go to its fd 3,
/// answers and events come from its fd 4, each a JSON text ended by a NUL byte.
struct Browser {
    child: Child,
    commands: File,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    (fds[0], fds[1])
}

impl Browser {
    fn launch(program: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (their_commands, our_commands) = pipe();
        let (our_answers, their_answers) = pipe();
        let mut command = Command::new(program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                "--window-size=800,600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only dup2(2), which is async-signal-safe, runs.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(their_commands, 3) < 0 || libc::dup2(their_answers, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // SAFETY: each descriptor is open, ours alone, and owned by the File made of it.
        let (commands, answers) = unsafe {
            libc::close(their_commands);
            libc::close(their_answers);
            (
                File::from_raw_fd(our_commands),
                File::from_raw_fd(our_answers),
            )
        };
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answers);
            let mut message = Vec::new();
            while reader
                .read_until(0, &mut message)
                .is_ok_and(|read| read > 0)
            {
                message.pop();
                if let Ok(value) = serde_json::from_slice(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Browser {
            child,
            commands,
            answers: received,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends a command (to a page's `session` when given) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&command).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("chromium takes commands");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium answers {method}"));
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page; the page's session.
    fn open(&mut self, url: &str) -> String {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        attached["sessionId"].as_str().unwrap().to_owned()
    }

    /// The value of `expression` in the page.
    fn evaluate(&mut self, session: &str, expression: &str) -> Value {
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until `wanted` holds of it (within `within`); the value then.
    fn wait_for(
        &mut self,
        session: &str,
        expression: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.evaluate(session, expression);
            if wanted(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{expression} is still {value} after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STATUS: &str = "(() => { const s = document.getElementById('status'); \
                      return [s.textContent, s.dataset.status]; })()";

async fn the_live_page_says_sold_out_within_two_seconds_of_the_last_sale(backend: Backend) {
    let Some(program) = chromium() else {
        return;
    };
    let app = TestApp::spawn_with(backend, |settings| {
        settings.availability.min_interval = Duration::from_millis(200);
    })
    .await;
    let creator = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(&creator.token, json!({"total_tickets": 1}))
        .await;
    let id = event["id"].as_str().unwrap().to_owned();
    let page = app.url(&format!("/events/{id}/live"));
    let response = app.client.get(&page).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // The browser runs on a thread of its own: its calls block.
    let (to_browser, from_test) = mpsc::channel::<()>();
    let (to_test, from_browser) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let browser = std::thread::spawn(move || {
        let mut browser = Browser::launch(&program);
        let session = browser.open(&page);
        let status = browser.wait_for(&session, STATUS, Duration::from_secs(15), |value| {
            value[1].is_string() && value[1] != "loading"
        });
        to_test.send(status).unwrap();
        // The test sells the last seat, then says so.
        from_test.recv().unwrap();
        let sold = Instant::now();
        let status = browser.wait_for(&session, STATUS, Duration::from_secs(2), |value| {
            value[0] == "Sold out"
        });
        let took = sold.elapsed();
        let tier = browser.evaluate(&session, "document.querySelector('#tiers tr').textContent");
        if let Ok(path) = std::env::var("NEARBYTIX_LIVE_PAGE_SCREENSHOT") {
            let shot = browser.call(Some(&session), "Page.captureScreenshot", json!({}));
            let png = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                shot["data"].as_str().unwrap(),
            )
            .unwrap();
            std::fs::write(path, png).unwrap();
        }
        (status, tier, took)
    });

    let mut from_browser = from_browser;
    let shown = tokio::time::timeout(Duration::from_secs(30), from_browser.recv())
        .await
        .expect("the page shows the event")
        .expect("the browser thread runs");
    // One seat left of one: few.
    assert_eq!(shown, json!(["Few left", "few_left"]));
    let tier = event["tiers"][0]["id"].as_str().unwrap();
    app.order(&buyer, &id, tier, 1).await;
    to_browser.send(()).unwrap();
    let (status, tier, took) = tokio::task::spawn_blocking(move || browser.join())
        .await
        .unwrap()
        .expect("the page says sold out within 2 s");
    assert_eq!(status[1], "sold_out");
    assert!(took <= Duration::from_secs(2), "{took:?}");
    let tier = tier.as_str().unwrap();
    assert!(
        tier.contains("General admission") && tier.contains("Sold out"),
        "{tier}"
    );
}
