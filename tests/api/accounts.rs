//! Registration, login, tokens and the caller's profile.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, SECRET, TestApp, error_locs, loc};

backend_tests!(
    register_returns_user_and_working_token,
    duplicate_email_conflicts_whatever_the_case,
    registration_input_is_validated,
    login_accepts_the_right_password_only,
    bad_tokens_are_refused,
    location_can_be_set_and_is_validated,
    login_and_registration_are_rate_limited,
);

fn assert_no_secrets(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("$argon2"), "{text}");
}

async fn register_returns_user_and_working_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .register_with(json!({
            "name": "  Ada Obi ", "email": " Ada@Example.COM ", "password": "correct horse",
            "latitude": 6.5, "longitude": 3.4
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Ada Obi");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["latitude"], 6.5);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_no_secrets(&body);

    let token = body["access_token"].as_str().unwrap();
    let (status, me) = app.get("/users/me", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], body["id"]);
    assert_eq!(me["email"], "ada@example.com");
    assert_no_secrets(&me);

    // Without a location both coordinates are null.
    let (status, body) = app
        .register_with(json!({"name": "Bo", "email": "bo@example.com", "password": "12345678"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["latitude"], Value::Null);
    assert_eq!(body["longitude"], Value::Null);
}

async fn duplicate_email_conflicts_whatever_the_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"name": "Ada", "email": "ada@example.com", "password": "password1"});
    assert_eq!(app.register_with(body).await.0, StatusCode::CREATED);
    for email in ["ada@example.com", "ADA@Example.com", "  ada@EXAMPLE.com"] {
        let (status, body) = app
            .register_with(json!({"name": "Other", "email": email, "password": "password2"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{email}");
        assert_eq!(body, json!({"detail": "Email already registered"}));
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
}

async fn registration_input_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let valid = json!({"name": "Ada", "email": "ada@example.com", "password": "password1"});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"email": "not-an-email"}), vec!["body", "email"]),
        (json!({"email": "ada@nodot"}), vec!["body", "email"]),
        (json!({"email": ""}), vec!["body", "email"]),
        (json!({"password": "short"}), vec!["body", "password"]),
        (
            json!({"password": "x".repeat(129)}),
            vec!["body", "password"],
        ),
        (json!({"name": "   "}), vec!["body", "name"]),
        (json!({"name": "n".repeat(256)}), vec!["body", "name"]),
        (
            json!({"latitude": 91.0, "longitude": 0.0}),
            vec!["body", "latitude"],
        ),
        (
            json!({"latitude": 0.0, "longitude": -180.5}),
            vec!["body", "longitude"],
        ),
        (json!({"latitude": 10.0}), vec!["body", "longitude"]),
        (json!({"longitude": 10.0}), vec!["body", "latitude"]),
        (
            json!({"latitude": "north", "longitude": 1.0}),
            vec!["body", "latitude"],
        ),
        (json!({"name": null}), vec!["body", "name"]),
    ];
    for (overrides, expected) in cases {
        let mut body = valid.clone();
        for (key, value) in overrides.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = app.register_with(body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert!(
            error_locs(&answer).contains(&loc(&expected)),
            "{body} -> {answer}"
        );
    }
    // A missing field is reported at the field.
    let (status, answer) = app
        .register_with(json!({"name": "Ada", "password": "password1"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "email"]));
    assert_eq!(answer["detail"][0]["type"], "missing");
    // Nothing was stored half-way.
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 0);
}

async fn login_accepts_the_right_password_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let (status, body) = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email.to_uppercase(), "password": user.password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["user"]["id"], user.id.as_str());
    assert_no_secrets(&body);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/users/me", Some(token)).await.0, StatusCode::OK);

    // Wrong password and unknown account: same status, same body.
    let wrong = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": "wrong password"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.1, json!({"detail": "Invalid email or password"}));
}

fn forge(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = engine.encode(header.to_string());
    let body = engine.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = engine.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

async fn bad_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let now = chrono::Utc::now().timestamp();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});

    // A token we forge with the right secret works: the forging below is faithful.
    let good = forge(
        &hs256,
        &json!({"sub": user.id, "iat": now, "exp": now + 600}),
        SECRET,
    );
    assert_eq!(app.get("/users/me", Some(&good)).await.0, StatusCode::OK);

    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        engine.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        engine.encode(json!({"sub": user.id, "iat": now, "exp": now + 600}).to_string())
    );
    let mut tampered = user.token.clone();
    let flipped = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(flipped);
    let cases = [
        ("garbage", "not-a-jwt".to_owned()),
        ("tampered", tampered),
        ("alg none", unsigned),
        (
            "expired",
            forge(
                &hs256,
                &json!({"sub": user.id, "iat": now - 7200, "exp": now - 3600}),
                SECRET,
            ),
        ),
        (
            "other key",
            forge(
                &hs256,
                &json!({"sub": user.id, "iat": now, "exp": now + 600}),
                "another-secret-another-secret-123456",
            ),
        ),
        (
            "unknown user",
            forge(
                &hs256,
                &json!({"sub": uuid::Uuid::new_v4(), "iat": now, "exp": now + 600}),
                SECRET,
            ),
        ),
        (
            "no exp",
            forge(&hs256, &json!({"sub": user.id, "iat": now}), SECRET),
        ),
    ];
    for (name, token) in cases {
        let response = app
            .client
            .get(app.url("/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"detail": "Invalid authentication credentials"}),
            "{name}"
        );
    }

    let response = app.client.get(app.url("/users/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Not authenticated"})
    );

    let response = app
        .client
        .get(app.url("/users/me"))
        .header("authorization", format!("Basic {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn location_can_be_set_and_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register_user(None).await;
    let token = Some(user.token.as_str());
    let (status, body) = app
        .put(
            "/users/me/location",
            token,
            json!({"latitude": -33.9, "longitude": 151.2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["latitude"], -33.9);
    assert_eq!(body["longitude"], 151.2);
    assert_no_secrets(&body);
    assert_eq!(app.get("/users/me", token).await.1["longitude"], 151.2);

    for (body, field) in [
        (json!({"latitude": 90.5, "longitude": 0}), "latitude"),
        (json!({"latitude": 0, "longitude": 181}), "longitude"),
        (json!({"latitude": 10}), "longitude"),
        (json!({"longitude": 10}), "latitude"),
        (json!({"latitude": "x", "longitude": 10}), "latitude"),
    ] {
        let (status, answer) = app.put("/users/me/location", token, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            error_locs(&answer).contains(&loc(&["body", field])),
            "{body} -> {answer}"
        );
    }
    assert_eq!(app.get("/users/me", token).await.1["latitude"], -33.9);
    let (status, _) = app
        .put(
            "/users/me/location",
            None,
            json!({"latitude": 1, "longitude": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn login_and_registration_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.auth_rate_limit_per_ip = std::num::NonZeroU32::new(6).unwrap();
        settings.auth_rate_limit_per_email = std::num::NonZeroU32::new(3).unwrap();
    })
    .await;
    let from = |address: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .build()
            .unwrap()
    };
    let login = |client: reqwest::Client, email: &str| {
        let url = app.url("/auth/login");
        let body = json!({"email": email, "password": "wrong password"});
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let first = from([127, 0, 0, 1]);
    for _ in 0..3 {
        assert_eq!(
            login(first.clone(), "victim@example.com").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The email's bucket is empty: 429 in the contract shape, with Retry-After.
    let limited = login(first.clone(), "victim@example.com").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(limited.json::<Value>().await.unwrap()["detail"].is_string());
    // Another email from the same address still gets through, until the address's bucket empties.
    assert_eq!(
        login(first.clone(), "other@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(first.clone(), "third@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .register_with(json!({"name": "N", "email": "new@example.com", "password": "password1"}))
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "registration shares the address bucket"
    );
    // Another address is not affected by the first address's buckets: failures for the
    // victim's email from one address do not lock the owner out elsewhere.
    let second = from([127, 0, 0, 2]);
    assert_eq!(
        login(second.clone(), "fourth@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(second, "victim@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
