//! Health, docs, metrics, and the error contract for malformed requests.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

backend_tests!(
    health_reports_the_backend,
    root_docs_and_openapi_are_served,
    malformed_requests_get_contract_errors,
    collection_paths_work_with_and_without_slash,
    every_documented_path_answers_alike_with_and_without_slash,
    metrics_and_request_ids_are_exposed,
);

/// The committed `openapi.json`: the published contract, pinned.
fn committed_openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let text = std::fs::read_to_string(path).expect("openapi.json is committed");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// The OpenAPI document cannot drift from the committed one unnoticed. After an intended
/// change, regenerate it with `cargo run -- openapi > openapi.json` and review the diff.
#[test]
fn openapi_document_matches_the_committed_snapshot() {
    let document = nearbytix::api::openapi("/api/v1").to_pretty_json().unwrap();
    let generated: Value = serde_json::from_str(&document).unwrap();
    assert!(
        generated == committed_openapi(),
        "openapi.json is out of date: run `cargo run -- openapi > openapi.json` and review the diff"
    );
}

/// The container files call subcommands and set variables the binary really has (they cannot
/// be built here: no Docker engine).
#[test]
fn container_files_match_the_cli() {
    use clap::{CommandFactory, Parser};
    use nearbytix::cli::Cli;

    let known_env: Vec<String> = Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env().map(|env| env.to_string_lossy().into_owned()))
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    let compose = std::fs::read_to_string(format!("{root}/docker-compose.yml")).unwrap();

    let json_array = |line: &str| -> Vec<String> {
        let start = line.find('[').expect("exec form");
        serde_json::from_str(&line[start..]).expect("a JSON array")
    };
    let mut invocations = Vec::new();
    for line in dockerfile.lines() {
        if line.starts_with("CMD ") || line.starts_with("HEALTHCHECK ") {
            invocations.push(json_array(line));
        }
    }
    assert!(dockerfile.contains(r#"ENTRYPOINT ["nearbytix"]"#));
    for line in compose.lines().map(str::trim) {
        if let Some(command) = line.strip_prefix("command: ") {
            let mut args = vec!["nearbytix".to_owned()];
            args.extend(json_array(command));
            invocations.push(args);
        }
    }
    assert!(invocations.len() >= 4, "{invocations:?}");
    for args in invocations {
        let args: Vec<&str> = args
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with("CMD") && *a != "nearbytix")
            .collect();
        let mut full = vec!["nearbytix"];
        full.extend(args);
        Cli::try_parse_from(&full).unwrap_or_else(|error| panic!("{full:?}: {error}"));
    }
    // Variables the files set for the app are ones it reads.
    let mut set = Vec::new();
    for line in dockerfile
        .lines()
        .skip_while(|line| !line.starts_with("ENV "))
    {
        let line = line
            .trim_start_matches("ENV ")
            .trim()
            .trim_end_matches('\\')
            .trim();
        if let Some((name, _)) = line.split_once('=') {
            set.push(name.to_owned());
        }
        if !line.ends_with('\\') && !line.contains('=') {
            break;
        }
    }
    let mut in_environment = false;
    for line in compose.lines() {
        let trimmed = line.trim();
        if trimmed == "environment:" {
            in_environment = true;
            continue;
        }
        if in_environment && line.starts_with("      ") {
            if let Some((name, _)) = trimmed.split_once(':') {
                set.push(name.to_owned());
            }
        } else {
            in_environment = false;
        }
    }
    for name in set.iter().filter(|name| !name.starts_with("POSTGRES_")) {
        assert!(
            known_env.contains(name) || name == "RUST_LOG",
            "{name} is not read by nearbytix"
        );
    }
    assert!(set.contains(&"JWT_SECRET_KEY".to_owned()) && set.contains(&"HOST".to_owned()));
}

async fn health_reports_the_backend(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get_unprefixed("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["app_name"], "NearbyTix");
    assert_eq!(body["database"]["connected"], true);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"]["backend"], expected);
    let live: Value = app
        .get_unprefixed("/health/live")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "alive");

    // With the database gone, health says so.
    app.store.close().await;
    let response = app.get_unprefixed("/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"]["connected"], false);
    // Liveness does not depend on the database.
    let live = app.get_unprefixed("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
}

/// Every path of API.md, as clients call it.
const CONTRACT_PATHS: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/users/me"),
    ("put", "/api/v1/users/me/location"),
    ("post", "/api/v1/events/"),
    ("get", "/api/v1/events/"),
    ("get", "/api/v1/events/{event_id}"),
    ("put", "/api/v1/events/{event_id}"),
    ("delete", "/api/v1/events/{event_id}"),
    ("get", "/api/v1/events/nearby"),
    ("post", "/api/v1/tickets/"),
    ("post", "/api/v1/tickets/{ticket_id}/pay"),
    ("post", "/api/v1/tickets/{ticket_id}/cancel"),
    ("get", "/api/v1/tickets/{ticket_id}"),
    ("get", "/api/v1/tickets/my-tickets"),
    ("get", "/api/v1/for-you/"),
];

async fn root_docs_and_openapi_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root: Value = app.get_unprefixed("/").await.json().await.unwrap();
    assert_eq!(root["message"], "Welcome to NearbyTix API");
    assert_eq!(root["docs"], "/docs");

    let docs = app.get_unprefixed("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));

    let spec: Value = app
        .get_unprefixed("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        spec,
        committed_openapi(),
        "the served /openapi.json differs from the committed openapi.json"
    );
    for (method, path) in CONTRACT_PATHS {
        let operation = &spec["paths"][path][method];
        assert!(
            operation.is_object(),
            "{method} {path} missing from /openapi.json"
        );
        assert!(
            operation["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let reserve = &spec["paths"]["/api/v1/tickets/"]["post"];
    assert!(reserve["security"].is_array());
    for status in ["201", "401", "404", "409", "422"] {
        assert!(
            reserve["responses"][status].is_object(),
            "reserve lacks {status}"
        );
    }
    assert!(spec["components"]["schemas"]["EventResponse"].is_object());
    assert!(spec["components"]["schemas"]["ValidationErrorBody"].is_object());
}

async fn malformed_requests_get_contract_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let register = app.url("/auth/register");

    let response = app
        .client
        .post(&register)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body"]));
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let response = app
        .client
        .post(&register)
        .header("content-type", "text/plain")
        .body("name=ada")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string());

    // Its own client: the server closes a connection whose body it refused to read, and a
    // pooled connection must not be reused after that.
    let response = reqwest::Client::new()
        .post(&register)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string());

    let response = app
        .client
        .post(&register)
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = app.get("/events/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "event_id"]));

    let (status, body) = app.get("/events/?limit=abc", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "limit"]));

    let (status, body) = app.get("/no-such-route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].is_string());

    let (status, body) = app.delete("/auth/login", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["detail"].is_string());
}

async fn collection_paths_work_with_and_without_slash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(Some((6.5, 3.4))).await;
    let token = Some(user.token.as_str());
    for path in ["/events", "/events/"] {
        assert_eq!(app.get(path, None).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/for-you", "/for-you/"] {
        assert_eq!(app.get(path, token).await.0, StatusCode::OK, "{path}");
    }
    let event = app.create_event(&user.token, json!({})).await;
    let event_id = event["id"].as_str().unwrap();
    for path in ["/tickets", "/tickets/"] {
        let (status, body) = app.post(path, token, json!({"event_id": event_id})).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
    }
    let (status, body) = app
        .post("/events", token, crate::helpers::event_body(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Every operation of the served OpenAPI document, asked with and without a trailing slash by
/// a signed-in caller (path ids unknown, bodies empty), gets the same status and body.
async fn every_documented_path_answers_alike_with_and_without_slash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(Some((6.5, 3.4))).await;
    let document: Value = app
        .get_unprefixed("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut asked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    unknown.as_str()
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let bare = path.trim_end_matches('/');
        if bare.is_empty() {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut answers = Vec::new();
            for form in [bare.to_owned(), format!("{bare}/")] {
                let mut request = app
                    .client
                    .request(method.clone(), format!("{}{form}", app.address))
                    .bearer_auth(&user.token);
                if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                    request = request.json(&json!({}));
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let json = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
                let body = response.text().await.unwrap();
                // Metrics change between two scrapes; JSON answers must match exactly.
                answers.push((status, json.then_some(body)));
            }
            let unrouted = [
                r#"{"detail":"Not Found"}"#,
                r#"{"detail":"Method Not Allowed"}"#,
            ];
            let body = answers[0].1.as_deref().unwrap_or_default();
            assert!(
                !unrouted.contains(&body),
                "{method} {bare} is not routed: {body}"
            );
            assert_eq!(answers[0], answers[1], "{method} {bare} and {bare}/");
            asked += 1;
        }
    }
    assert!(asked >= 20, "only {asked} operations in the document");
}

async fn metrics_and_request_ids_are_exposed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get_unprefixed("/health").await;
    assert!(response.headers().contains_key("x-request-id"));
    let text = app.get_unprefixed("/metrics").await.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/health\""), "{text}");
    assert!(text.contains("nearbytix_db_pool_connections"), "{text}");
}
