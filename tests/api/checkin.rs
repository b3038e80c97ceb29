//! Check-in codes over HTTP: the keys, a paid ticket's code (decoded by the server's decoder
//! and by `nearbytix verify-code`), who may see it, and that a code is never a login token.

use std::process::Command;

use nearbytix::checkin::code::{self, CodeError};
use nearbytix::checkin::keys::{ListedKey, public_keys_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, error_locs, loc};

backend_tests!(
    events_have_check_in_lists_their_creator_manages,
    a_paid_ticket_has_a_signed_code_its_owner_alone_may_see,
    a_code_verifies_offline_with_the_published_keys,
    a_reissued_code_has_the_next_serial_within_a_daily_limit,
    concurrent_reissues_never_pass_the_daily_limit,
);

/// The keys `GET /checkin/keys` publishes, as the decoder takes them.
async fn published_keys(app: &TestApp) -> (Value, code::PublicKeys) {
    let (status, body) = app.get("/checkin/keys", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<ListedKey> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| ListedKey {
            key_id: key["key_id"].as_u64().unwrap() as u16,
            public_key: key["public_key"].as_str().unwrap().to_owned(),
            signing: key["signing"].as_bool().unwrap(),
        })
        .collect();
    (body, public_keys_of(&listed).expect("published keys"))
}

/// An event with one paid tier and a buyer's reserved ticket: (the organiser's token, the
/// buyer's token, the event, the ticket).
async fn reserved_ticket(app: &TestApp) -> (String, String, Value, Value) {
    let organiser = app.register_user(None).await;
    let buyer = app.register_user(None).await;
    let event = app
        .create_event(
            &organiser.token,
            json!({"tiers": [{"name": "Regular", "price_minor": 2500}]}),
        )
        .await;
    let (status, ticket) = app
        .post(
            "/tickets/",
            Some(&buyer.token),
            json!({"event_id": event["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    (organiser.token, buyer.token, event, ticket)
}

async fn a_paid_ticket_has_a_signed_code_its_owner_alone_may_see(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, buyer, event, ticket) = reserved_ticket(&app).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    let code_path = format!("/tickets/{ticket_id}/code");
    let (status, body) = app.get(&code_path, Some(&buyer)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["detail"], "Ticket is not paid");

    let (status, _) = app
        .post(
            &format!("/tickets/{ticket_id}/pay"),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = app
        .client
        .get(app.url(&code_path))
        .bearer_auth(&buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "private, no-store");
    let issued: Value = answer.json().await.unwrap();
    let text = issued["code"].as_str().unwrap();
    assert_eq!((text.len(), issued["format"].clone()), (184, json!("NTX1")));
    assert_eq!(issued["serial"], 1);
    let (_, keys) = published_keys(&app).await;
    let decoded = code::decode(text, &keys).expect("the server's code decodes");
    assert_eq!(decoded.ticket_id.to_string(), ticket_id);
    assert_eq!(decoded.event_id.to_string(), event["id"].as_str().unwrap());
    assert_eq!(
        decoded.tier_id.to_string(),
        ticket["tier"]["id"].as_str().unwrap()
    );
    assert_eq!(json!(decoded.key_id), issued["key_id"]);
    let (_, again) = app.get(&code_path, Some(&buyer)).await;
    assert_eq!(
        again["code"], issued["code"],
        "same ticket, serial and key: same code"
    );

    // The same code as a QR code, at the smallest version of each correction level.
    for (ecc, size) in [
        ("", 57),
        ("?ecc=L", 49),
        ("?ecc=M", 57),
        ("?ecc=Q", 61),
        ("?ecc=H", 69),
    ] {
        let answer = app
            .client
            .get(app.url(&format!("/tickets/{ticket_id}/qr.svg{ecc}")))
            .bearer_auth(&buyer)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{ecc}");
        assert_eq!(answer.headers()["content-type"], "image/svg+xml");
        assert_eq!(answer.headers()["cache-control"], "private, no-store");
        let svg = answer.text().await.unwrap();
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {size} {size}\"")),
            "{ecc}: {svg:.80}"
        );
    }
    let (status, body) = app
        .get(&format!("/tickets/{ticket_id}/qr.svg?ecc=X"), Some(&buyer))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Nobody else sees it, the event's creator neither.
    let stranger = app.register_user(None).await;
    for (who, token) in [
        ("the creator", organiser.as_str()),
        ("a stranger", &stranger.token),
    ] {
        let (status, _) = app.get(&code_path, Some(token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}");
        let qr = format!("/tickets/{ticket_id}/qr.svg");
        assert_eq!(
            app.get(&qr, Some(token)).await.0,
            StatusCode::FORBIDDEN,
            "{who}"
        );
    }
    let unknown = format!("/tickets/{}/code", uuid::Uuid::new_v4());
    assert_eq!(
        app.get(&unknown, Some(&buyer)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&code_path, None).await.0, StatusCode::UNAUTHORIZED);

    // A code is not a login token, nor a token a code.
    assert_eq!(
        app.get("/users/me", Some(text)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(code::decode(&buyer, &keys), Err(CodeError::NotNtx1));

    // Refunded, the ticket is no longer paid: no code.
    let (status, _) = app
        .post(
            &format!("/orders/{}/refund", ticket["order_id"].as_str().unwrap()),
            Some(&organiser),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&code_path, Some(&buyer)).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// `nearbytix verify-code` checks a code with the keys file alone (no server, no database),
/// with the decoder the server uses; a code changed by one character is invalid (exit 1).
async fn a_code_verifies_offline_with_the_published_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, buyer, _, ticket) = reserved_ticket(&app).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    app.post(
        &format!("/tickets/{ticket_id}/pay"),
        Some(&buyer),
        json!({}),
    )
    .await;
    let (_, issued) = app
        .get(&format!("/tickets/{ticket_id}/code"), Some(&buyer))
        .await;
    let text = issued["code"].as_str().unwrap();
    let (keys, _) = published_keys(&app).await;
    assert_eq!(keys["keys"][0]["alg"], "Ed25519");
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&keys_file, keys.to_string()).unwrap();
    let verify = |code: &str| {
        Command::new(env!("CARGO_BIN_EXE_nearbytix"))
            .args(["verify-code", code, "--keys"])
            .arg(&keys_file)
            .env_remove("DATABASE_URL")
            .output()
            .expect("nearbytix runs")
    };
    let valid = verify(text);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    let said: Value = serde_json::from_slice(&valid.stdout).unwrap();
    assert_eq!(said["ticket_id"], ticket_id);
    assert_eq!(said["serial"], 1);
    // One character of the signature changed, within the alphabet.
    let mut changed = text.to_owned();
    let last = changed.pop().unwrap();
    changed.push(if last == '0' { '1' } else { '0' });
    let invalid = verify(&changed);
    assert!(!invalid.status.success());
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("invalid"));
}

/// A reissue gives the ticket the next serial (the earlier codes are revoked: the ticket's code
/// names the new serial from then on), at most `CHECKIN_REISSUES_PER_DAY` times in 24 h; a
/// keyed reissue is done once and replayed; only the owner of a paid ticket may.
async fn a_reissued_code_has_the_next_serial_within_a_daily_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.checkin.reissues_per_day = 2;
    })
    .await;
    let (organiser, buyer, _, ticket) = reserved_ticket(&app).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    let reissue_path = format!("/tickets/{ticket_id}/code/reissue");
    let (status, _) = app.post(&reissue_path, Some(&buyer), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "not paid yet");
    app.post(
        &format!("/tickets/{ticket_id}/pay"),
        Some(&buyer),
        json!({}),
    )
    .await;
    let (_, first) = app
        .get(&format!("/tickets/{ticket_id}/code"), Some(&buyer))
        .await;
    let (status, _) = app.post(&reissue_path, Some(&organiser), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the creator may not");

    let keyed = || {
        app.client
            .post(app.url(&reissue_path))
            .bearer_auth(&buyer)
            .header("Idempotency-Key", "reissue-1")
            .send()
    };
    let answer = keyed().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "private, no-store");
    let body = answer.text().await.unwrap();
    let second: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(second["serial"], 2);
    assert_ne!(second["code"], first["code"]);
    let (_, keys) = published_keys(&app).await;
    let decoded = code::decode(second["code"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(decoded.serial, 2);
    let replay = keyed().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), body, "done once, replayed");
    let (_, current) = app
        .get(&format!("/tickets/{ticket_id}/code"), Some(&buyer))
        .await;
    assert_eq!(current["code"], second["code"], "the code now has serial 2");

    let (status, third) = app.post(&reissue_path, Some(&buyer), json!({})).await;
    assert_eq!(
        (status, third["serial"].clone()),
        (StatusCode::OK, json!(3))
    );
    let refused = app
        .client
        .post(app.url(&reissue_path))
        .bearer_auth(&buyer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "two a day");
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (86_000..=86_400).contains(&wait),
        "until the first reissue is a day old: {wait} s"
    );
    let unknown = format!("/tickets/{}/code/reissue", uuid::Uuid::new_v4());
    assert_eq!(
        app.post(&unknown, Some(&buyer), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Twelve reissues of one ticket at once with a limit of 3: exactly three pass, and the serial
/// counts exactly those.
async fn concurrent_reissues_never_pass_the_daily_limit(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.checkin.reissues_per_day = 3;
    })
    .await;
    let (_, buyer, _, ticket) = reserved_ticket(&app).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    app.post(
        &format!("/tickets/{ticket_id}/pay"),
        Some(&buyer),
        json!({}),
    )
    .await;
    let reissue_path = format!("/tickets/{ticket_id}/code/reissue");
    let attempts = (0..12).map(|_| app.post(&reissue_path, Some(&buyer), json!({})));
    let answers = futures::future::join_all(attempts).await;
    let passed = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((passed, refused), (3, 9), "{answers:?}");
    let (_, current) = app
        .get(&format!("/tickets/{ticket_id}/code"), Some(&buyer))
        .await;
    assert_eq!(current["serial"], 4);
}

/// Every event has its default list; its creator adds lists naming some tiers and a window,
/// reads and deletes them; the rules of a list are checked (its tiers the event's, named once,
/// a window that ends after it starts, at most `CHECKIN_LISTS_PER_EVENT`); anyone else is
/// refused; a deleted tier leaves the lists that named it.
async fn events_have_check_in_lists_their_creator_manages(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.checkin.lists_per_event = 3).await;
    let (organiser, stranger) = (app.register_user(None).await, app.register_user(None).await);
    let event = app
        .create_event(
            &organiser.token,
            json!({"tiers": [{"name": "VIP", "price_minor": 5000},
                             {"name": "Standard", "price_minor": 1000}]}),
        )
        .await;
    let event_id = event["id"].as_str().unwrap();
    let tier = |name: &str| {
        event["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|tier| tier["name"] == name)
            .unwrap()["id"]
            .clone()
    };
    let lists = format!("/events/{event_id}/checkin-lists");
    let token = Some(organiser.token.as_str());

    let (status, body) = app.get(&lists, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let default = &body["lists"][0];
    assert_eq!(body["lists"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            &default["name"],
            &default["tier_ids"],
            &default["allow_reentry"]
        ),
        (&json!("Main entrance"), &Value::Null, &json!(false))
    );
    assert_eq!(default["is_default"], true);
    assert_eq!(default["event_id"], event_id);

    let vip_door = json!({"name": "VIP door", "tier_ids": [tier("VIP")], "allow_reentry": true,
                          "activates_at": "2030-01-01T18:00:00Z",
                          "expires_at": "2030-01-02T02:00:00Z"});
    let (status, created) = app.post(&lists, token, vip_door).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tier_ids"], json!([tier("VIP")]));
    assert_eq!(created["is_default"], false);
    assert_eq!(created["activates_at"], "2030-01-01T18:00:00Z");
    let one = format!("{lists}/{}", created["id"].as_str().unwrap());
    let (status, read) = app.get(&one, token).await;
    assert_eq!((status, &read), (StatusCode::OK, &created));
    let (_, body) = app.get(&lists, token).await;
    let names: Vec<&str> = body["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|list| list["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Main entrance", "VIP door"]);

    let unknown = json!({"name": "x", "tier_ids": [tier("VIP"), uuid::Uuid::new_v4()]});
    let (status, body) = app.post(&lists, token, unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), [loc(&["body", "tier_ids", "1"])]);
    let twice = json!({"name": "x", "tier_ids": [tier("VIP"), tier("VIP")]});
    let (status, body) = app.post(&lists, token, twice).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let backwards = json!({"name": "x", "activates_at": "2030-01-02T00:00:00Z",
                           "expires_at": "2030-01-01T00:00:00Z"});
    let (status, _) = app.post(&lists, token, backwards).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.post(&lists, token, json!({"name": ""})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let theirs = Some(stranger.token.as_str());
    let (status, _) = app.post(&lists, theirs, json!({"name": "mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get(&lists, theirs).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.delete(&one, theirs).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let nowhere = format!("/events/{}/checkin-lists", uuid::Uuid::new_v4());
    let (status, _) = app.get(&nowhere, token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("{lists}/{}", uuid::Uuid::new_v4()), token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, third) = app.post(&lists, token, json!({"name": "Side door"})).await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    let (status, body) = app
        .post(&lists, token, json!({"name": "One too many"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let patch = json!({"name": "VIP and Standard", "tier_ids": [tier("VIP"), tier("Standard")],
                       "expires_at": null});
    let (status, changed) = app.put(&one, token, patch).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["name"], "VIP and Standard");
    assert_eq!(changed["tier_ids"], json!([tier("VIP"), tier("Standard")]));
    assert_eq!(
        (
            &changed["activates_at"],
            &changed["expires_at"],
            &changed["allow_reentry"]
        ),
        (&json!("2030-01-01T18:00:00Z"), &Value::Null, &json!(true)),
        "fields not given stay"
    );
    let (_, read) = app.get(&one, token).await;
    assert_eq!(read, changed);
    let (status, body) = app
        .put(&one, token, json!({"expires_at": "2029-01-01T00:00:00Z"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the merged list keeps the rules: {body}"
    );
    let (status, _) = app.put(&one, theirs, json!({"name": "mine"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .put(&one, token, json!({"tier_ids": [tier("Standard")]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(&one, token, json!({"tier_ids": [tier("VIP")]}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let vip = tier("VIP");
    let path = format!("/events/{event_id}/tiers/{}", vip.as_str().unwrap());
    let (status, _) = app.delete(&path, token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, read) = app.get(&one, token).await;
    assert_eq!(
        read["tier_ids"],
        json!([]),
        "a deleted tier leaves its lists"
    );

    let (status, _) = app.delete(&one, token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&one, token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&one, token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
