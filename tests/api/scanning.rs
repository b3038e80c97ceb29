//! The door over HTTP (CHECKIN.md): scanner tokens, redeem in the contract's order, nonces,
//! concurrency (one admission per ticket, in one process and across two), offline upload,
//! the offline bundle and list counts.

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, error_locs, loc};
use crate::process_support::{Api, Process};

backend_tests!(
    scanner_tokens_are_scoped_and_revoked_at_once,
    a_scan_is_judged_in_the_contracts_order,
    a_nonce_names_one_scan,
    concurrent_scans_of_one_ticket_admit_it_once,
    a_revoke_racing_scans_is_never_passed,
    offline_scans_upload_with_their_conflicts_recorded,
    the_offline_bundle_follows_revocations_by_cursor,
    list_status_counts_what_happened_at_the_door,
    a_list_created_with_a_key_is_created_once,
    a_paid_ticket_scans_as_paid_long_after_its_hold,
    a_list_deleted_while_it_scans_loses_no_check_in,
    a_scanner_is_held_to_its_rate_its_time_and_its_event,
);

/// An event with two tiers, and `buyers` paid tickets of the first: (the organiser's token,
/// the event, the tickets with their owners' tokens).
async fn paid_tickets(app: &TestApp, buyers: usize) -> (String, Value, Vec<(String, Value)>) {
    let organiser = app.register_user(None).await;
    let event = app
        .create_event(
            &organiser.token,
            json!({"tiers": [
                {"name": "Regular", "price_minor": 2500},
                {"name": "VIP", "price_minor": 9000}
            ]}),
        )
        .await;
    let mut tickets = Vec::new();
    for _ in 0..buyers {
        let buyer = app.register_user(None).await;
        let ticket = buy(app, &buyer.token, &event, 0).await;
        tickets.push((buyer.token, ticket));
    }
    (organiser.token, event, tickets)
}

/// A paid ticket of the event's `tier`-th tier.
async fn buy(app: &TestApp, token: &str, event: &Value, tier: usize) -> Value {
    let tier_id = &event["tiers"][tier]["id"];
    let (status, ticket) = app
        .post(
            "/tickets/",
            Some(token),
            json!({"event_id": event["id"], "tier_id": tier_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().unwrap();
    let (status, paid) = app
        .post(&format!("/tickets/{id}/pay"), Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    paid
}

async fn code_of(app: &TestApp, token: &str, ticket: &Value) -> String {
    let id = ticket["id"].as_str().unwrap();
    let (status, body) = app.get(&format!("/tickets/{id}/code"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["code"].as_str().unwrap().to_owned()
}

/// The event's default list ("Main entrance").
async fn default_list(app: &TestApp, organiser: &str, event: &Value) -> String {
    let event_id = event["id"].as_str().unwrap();
    let path = format!("/events/{event_id}/checkin-lists");
    let (status, body) = app.get(&path, Some(organiser)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["lists"][0]["id"].as_str().unwrap().to_owned()
}

async fn add_list(app: &TestApp, organiser: &str, event: &Value, body: Value) -> String {
    let event_id = event["id"].as_str().unwrap();
    let path = format!("/events/{event_id}/checkin-lists");
    let (status, list) = app.post(&path, Some(organiser), body).await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    list["id"].as_str().unwrap().to_owned()
}

fn nonce() -> String {
    format!("n-{}", uuid::Uuid::new_v4().simple())
}

async fn redeem(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/checkin/redeem", Some(token), body).await
}

async fn scan(app: &TestApp, token: &str, list: &str, code: &str) -> (StatusCode, Value) {
    let body = json!({"list_id": list, "code": code, "nonce": nonce(), "gate": "A"});
    redeem(app, token, body).await
}

async fn scanner_token(app: &TestApp, organiser: &str, event: &Value, body: Value) -> Value {
    let event_id = event["id"].as_str().unwrap();
    let path = format!("/events/{event_id}/scanner-tokens");
    let (status, token) = app.post(&path, Some(organiser), body).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    token
}

async fn scanner_tokens_are_scoped_and_revoked_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.checkin.tokens_per_event = 2;
    })
    .await;
    let (organiser, event, tickets) = paid_tickets(&app, 1).await;
    let (buyer, ticket) = &tickets[0];
    let event_id = event["id"].as_str().unwrap();
    let main = default_list(&app, &organiser, &event).await;
    let vip = add_list(&app, &organiser, &event, json!({"name": "VIP door"})).await;

    let token = scanner_token(
        &app,
        &organiser,
        &event,
        json!({"label": "Gate 3", "list_ids": [vip]}),
    )
    .await;
    let text = token["token"].as_str().unwrap().to_owned();
    assert!(text.starts_with("ntxs_") && text.len() == 48, "{text}");
    assert_eq!(token["list_ids"], json!([vip]));
    let lists_path = format!("/events/{event_id}/checkin-lists");
    let (status, seen) = app.get(&lists_path, Some(&text)).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let seen: Vec<&str> = seen["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|list| list["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [vip.as_str()], "a token sees only its lists");
    let (status, _) = app.get(&format!("{lists_path}/{main}"), Some(&text)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let code = code_of(&app, buyer, ticket).await;
    let (status, body) = scan(&app, &text, &main, &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = scan(&app, &text, &vip, &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Not a credential anywhere else, and a login token of someone else is no scanner.
    let answer = app
        .client
        .get(app.url("/users/me"))
        .bearer_auth(&text)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers()["www-authenticate"], "Bearer");
    let (status, _) = scan(&app, buyer, &vip, &code).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The list a live token names cannot go; the token list shows no secret.
    let (status, body) = app
        .delete(&format!("{lists_path}/{vip}"), Some(&organiser))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let tokens_path = format!("/events/{event_id}/scanner-tokens");
    let (status, listed) = app.get(&tokens_path, Some(&organiser)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed["tokens"][0].get("token").is_none(), "{listed}");
    let (status, _) = app.get(&tokens_path, Some(&text)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "tokens are managed by logins"
    );

    // Limits and checks.
    scanner_token(&app, &organiser, &event, json!({"label": "All doors"})).await;
    let (status, _) = app
        .post(&tokens_path, Some(&organiser), json!({"label": "Third"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = app
        .post(
            &tokens_path,
            Some(&organiser),
            json!({"label": "", "list_ids": [main, main], "expires_in_hours": 73}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let locs = error_locs(&body);
    for expected in [
        loc(&["body", "label"]),
        loc(&["body", "list_ids", "1"]),
        loc(&["body", "expires_in_hours"]),
    ] {
        assert!(locs.contains(&expected), "{expected:?} in {body}");
    }
    let (status, _) = app.get(&tokens_path, Some(buyer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoked: refused at once, twice revoked is fine, and the list is free to go.
    let token_path = format!("{tokens_path}/{}", token["id"].as_str().unwrap());
    let (status, _) = app.delete(&token_path, Some(&organiser)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = scan(&app, &text, &vip, &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.delete(&token_path, Some(&organiser)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = app.get(&tokens_path, Some(&organiser)).await;
    assert!(listed["tokens"][0]["revoked_at"].is_string(), "{listed}");
    // Still refused to go: it has a check-in.
    let (status, _) = app
        .delete(&format!("{lists_path}/{vip}"), Some(&organiser))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let empty = add_list(&app, &organiser, &event, json!({"name": "Unused"})).await;
    let (status, _) = app
        .delete(&format!("{lists_path}/{empty}"), Some(&organiser))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.assert_invariants().await;
}

async fn a_scan_is_judged_in_the_contracts_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 2).await;
    let main = default_list(&app, &organiser, &event).await;
    let (buyer, ticket) = &tickets[0];
    let code = code_of(&app, buyer, ticket).await;

    let (status, first) = scan(&app, &organiser, &main, &code).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (&first["status"], &first["reason"], &first["forced"]),
        (&json!("ok"), &Value::Null, &json!(false))
    );
    assert_eq!(first["ticket"]["id"], ticket["id"]);
    assert_eq!(first["ticket"]["tier"]["name"], "Regular");
    assert_eq!(first["ticket"]["status"], "paid");
    assert!(first["ticket"]["holder"]["name"].is_string());
    assert_eq!(first["checkin"]["type"], "entry");
    assert_eq!(first["checkin"]["gate"], "A");
    assert_eq!(first["first_entry_at"], Value::Null);

    let (status, again) = scan(&app, &organiser, &main, &code).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["reason"], "already_redeemed");
    assert_eq!(again["checkin"], Value::Null);
    assert!(again["detail"].is_string());
    assert_eq!(again["first_entry_at"], first["checkin"]["scanned_at"]);

    // Forced: admitted, and the reason overridden said.
    let forced = json!({"list_id": main, "code": code, "nonce": nonce(), "force": true});
    let (status, body) = redeem(&app, &organiser, forced).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (&body["forced"], &body["reason"]),
        (&json!(true), &json!("already_redeemed"))
    );

    // Reissued: the old code is revoked, the new one and the ticket id work.
    let ticket_id = ticket["id"].as_str().unwrap();
    let reissue = format!("/tickets/{ticket_id}/code/reissue");
    let (status, reissued) = app.post(&reissue, Some(buyer), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reissued}");
    let exit =
        |code: &str| json!({"list_id": main, "code": code, "nonce": nonce(), "type": "exit"});
    let (status, body) = redeem(&app, &organiser, exit(&code)).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("revoked"))
    );
    let (status, body) = redeem(&app, &organiser, exit(reissued["code"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ticket"]["serial"], 2);

    // Invalid and wrong-event codes show no ticket; force cannot pass them.
    for bad in ["NTX1:garbage", "hello", &code.replace("NTX1:", "NTX1:0")] {
        let body = json!({"list_id": main, "code": bad, "nonce": nonce(), "force": true});
        let (status, body) = redeem(&app, &organiser, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(
            (&body["reason"], &body["ticket"]),
            (&json!("invalid"), &Value::Null)
        );
    }
    let (other_organiser, other_event, _) = paid_tickets(&app, 0).await;
    let elsewhere = default_list(&app, &other_organiser, &other_event).await;
    let body = json!({"list_id": elsewhere, "code": ticket_id, "nonce": nonce(), "force": true});
    let (status, body) = redeem(&app, &other_organiser, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        (&body["reason"], &body["ticket"]),
        (&json!("wrong_event"), &Value::Null)
    );

    // Tiers and windows: a VIP door refuses Regular; a closed door refuses entries, not exits.
    let vip = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "VIP", "tier_ids": [event["tiers"][1]["id"]]}),
    )
    .await;
    let (status, body) = scan(&app, &organiser, &vip, ticket_id).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("not_on_list"))
    );
    let closed = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "Yesterday", "allow_reentry": true,
               "activates_at": "2020-01-01T10:00:00Z", "expires_at": "2020-01-02T10:00:00+02:00"}),
    )
    .await;
    let (status, body) = scan(&app, &organiser, &closed, ticket_id).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("list_inactive"))
    );
    let at = json!({"list_id": closed, "code": ticket_id, "nonce": nonce(),
                    "scanned_at": "2020-01-01T12:00:00+01:00"});
    let (status, body) = redeem(&app, &organiser, at).await;
    assert_eq!(status, StatusCode::CREATED, "in the window: {body}");

    // Re-entry: in, out, in again; but not in twice.
    let (second_buyer, second) = &tickets[1];
    let second_code = code_of(&app, second_buyer, second).await;
    let reentry = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "Re-entry", "allow_reentry": true}),
    )
    .await;
    let step = |kind: &str| json!({"list_id": reentry, "code": second_code, "nonce": nonce(), "type": kind});
    for (kind, expected) in [
        ("entry", StatusCode::CREATED),
        ("entry", StatusCode::CONFLICT),
        ("exit", StatusCode::CREATED),
        ("entry", StatusCode::CREATED),
    ] {
        let (status, body) = redeem(&app, &organiser, step(kind)).await;
        assert_eq!(status, expected, "{kind}: {body}");
    }

    // A ticket on hold is unpaid; a cancelled one is cancelled.
    let holder = app.register_user(None).await;
    let (_, held) = app
        .post(
            "/tickets/",
            Some(&holder.token),
            json!({"event_id": event["id"]}),
        )
        .await;
    let held_id = held["id"].as_str().unwrap();
    let (status, body) = scan(&app, &organiser, &main, held_id).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("unpaid"))
    );
    let (status, _) = app
        .post(
            &format!("/tickets/{held_id}/cancel"),
            Some(&holder.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = scan(&app, &organiser, &main, held_id).await;
    assert_eq!(
        (status, &body["reason"]),
        (StatusCode::CONFLICT, &json!("cancelled"))
    );

    // What the door sends is checked first.
    let (status, body) = redeem(
        &app,
        &organiser,
        json!({"list_id": main, "code": "", "nonce": "short", "type": "sideways",
               "gate": "g".repeat(101)}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let future = json!({"list_id": main, "code": ticket_id, "nonce": nonce(),
                        "scanned_at": "2099-01-01T00:00:00Z"});
    let (status, body) = redeem(&app, &organiser, future).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error_locs(&body).contains(&loc(&["body", "scanned_at"])),
        "{body}"
    );
    let unknown = json!({"list_id": uuid::Uuid::new_v4(), "code": ticket_id, "nonce": nonce()});
    let (status, _) = redeem(&app, &organiser, unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = scan(&app, &other_organiser, &main, ticket_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = scan(&app, "not-a-token", &main, ticket_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.assert_invariants().await;
}

async fn a_nonce_names_one_scan(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.checkin.refusals_per_list = 2;
    })
    .await;
    let (organiser, event, tickets) = paid_tickets(&app, 2).await;
    let main = default_list(&app, &organiser, &event).await;
    let code = code_of(&app, &tickets[0].0, &tickets[0].1).await;
    let other = code_of(&app, &tickets[1].0, &tickets[1].1).await;
    let once = nonce();
    let body = json!({"list_id": main, "code": code, "nonce": once, "gate": "A"});
    let (status, first) = redeem(&app, &organiser, body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // Another gate and a later time change nothing: the first answer, byte for byte.
    let retry = json!({"list_id": main, "code": code, "nonce": once, "gate": "B", "type": "exit"});
    let (status, again) = redeem(&app, &organiser, retry).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &first));
    let taken = json!({"list_id": main, "code": other, "nonce": once});
    let (status, body) = redeem(&app, &organiser, taken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), [loc(&["body", "nonce"])]);

    // A refused nonce is judged again (the refused log keeps one row for it).
    let ticket_id = tickets[1].1["id"].as_str().unwrap();
    let refused = nonce();
    let vip = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "VIP", "tier_ids": [event["tiers"][1]["id"]]}),
    )
    .await;
    let body = json!({"list_id": vip, "code": ticket_id, "nonce": refused});
    let (status, _) = redeem(&app, &organiser, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = redeem(&app, &organiser, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let event_id = event["id"].as_str().unwrap();
    let status_path = format!("/events/{event_id}/checkin-lists/{vip}/status");
    let (_, counts) = app.get(&status_path, Some(&organiser)).await;
    assert_eq!(counts["scans_refused"], 1, "{counts}");
    let forced = json!({"list_id": vip, "code": ticket_id, "nonce": refused, "force": true});
    let (status, body) = redeem(&app, &organiser, forced).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, counts) = app.get(&status_path, Some(&organiser)).await;
    assert_eq!(
        (&counts["scans_refused"], &counts["scans_ok"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(
        app.scalar("SELECT count(*) FROM checkins").await,
        2,
        "a replay records nothing"
    );

    // The refused log is bounded: past CHECKIN_REFUSALS_PER_LIST a refusal is answered only.
    for _ in 0..3 {
        let (status, body) = scan(&app, &organiser, &vip, ticket_id).await;
        assert_eq!(
            (status, &body["reason"]),
            (StatusCode::CONFLICT, &json!("not_on_list"))
        );
    }
    let (_, counts) = app.get(&status_path, Some(&organiser)).await;
    assert_eq!(counts["scans_refused"], 2, "{counts}");
}

async fn concurrent_scans_of_one_ticket_admit_it_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 1).await;
    let main = default_list(&app, &organiser, &event).await;
    let code = code_of(&app, &tickets[0].0, &tickets[0].1).await;
    let gates = (0..50).map(|gate| {
        let body =
            json!({"list_id": main, "code": code, "nonce": nonce(), "gate": format!("G{gate}")});
        redeem(&app, &organiser, body)
    });
    let answers = join_all(gates).await;
    let admitted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(admitted, 1, "one admission through 50 gates");
    for (status, body) in &answers {
        if *status != StatusCode::CREATED {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["reason"], "already_redeemed");
        }
    }

    // One nonce sent 20 times at once: one check-in, twenty times the same answer.
    let reentry = add_list(&app, &organiser, &event, json!({"name": "Bar"})).await;
    let once = nonce();
    let retries = (0..20).map(|_| {
        let body = json!({"list_id": reentry, "code": code, "nonce": once});
        redeem(&app, &organiser, body)
    });
    assert_one_check_in(&app, &once, &join_all(retries).await).await;

    // Across two server processes on one PostgreSQL database.
    if let Backend::Postgres = backend {
        let env = [("CHECKIN_SCANS_PER_MINUTE", "100000")];
        let first = Process::start(&app.database.url, &["serve"], &env).await;
        let second = Process::start(&app.database.url, &["serve", "--no-sweeper"], &env).await;
        let api = Api::new();
        let other = app.register_user(None).await;
        let fresh = buy(&app, &other.token, &event, 0).await;
        let fresh_code = code_of(&app, &other.token, &fresh).await;
        // Scans sent by turns to the two processes.
        let redeem_at = |turn: usize, body: Value| {
            let base = [&first.base, &second.base][turn % 2];
            api.send(
                Method::POST,
                base,
                "/checkin/redeem",
                Some(&organiser),
                Some(body),
            )
        };
        let scans = (0..50).map(|gate| {
            redeem_at(
                gate,
                json!({"list_id": main, "code": fresh_code, "nonce": nonce()}),
            )
        });
        let answers = join_all(scans).await;
        let admitted = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::CREATED)
            .count();
        assert_eq!(
            admitted, 1,
            "one admission through two processes: {answers:?}"
        );

        // One nonce sent 20 times at once through both: one check-in, one answer.
        let once = nonce();
        let retries = (0..20).map(|retry| {
            redeem_at(
                retry,
                json!({"list_id": reentry, "code": fresh_code, "nonce": once}),
            )
        });
        assert_one_check_in(&app, &once, &join_all(retries).await).await;
    }
}

/// Every answer to `nonce`'s retries is the same 201, and it has one check-in.
async fn assert_one_check_in(app: &TestApp, nonce: &str, answers: &[(StatusCode, Value)]) {
    let bodies: HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body.to_string()
        })
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let sql = format!("SELECT count(*) FROM checkins WHERE nonce = '{nonce}'");
    assert_eq!(app.scalar(&sql).await, 1);
}

async fn a_revoke_racing_scans_is_never_passed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 1).await;
    let (buyer, ticket) = &tickets[0];
    let code = code_of(&app, buyer, ticket).await;
    let reentry = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "Re-entry", "allow_reentry": true}),
    )
    .await;
    let ticket_id = ticket["id"].as_str().unwrap();
    let reissue = format!("/tickets/{ticket_id}/code/reissue");
    // Scans in and out with the first code while the owner reissues it.
    let scans = (0..30).map(|index| {
        let kind = if index % 2 == 0 { "entry" } else { "exit" };
        let body = json!({"list_id": reentry, "code": code, "nonce": nonce(), "type": kind});
        redeem(&app, &organiser, body)
    });
    let (answers, (status, _)) =
        tokio::join!(join_all(scans), app.post(&reissue, Some(buyer), json!({})));
    assert_eq!(status, StatusCode::OK);
    // Every admission was recorded before the reissue; none after.
    let (status, after) = scan(&app, &organiser, &reentry, &code).await;
    assert_eq!(
        (status, &after["reason"]),
        (StatusCode::CONFLICT, &json!("revoked"))
    );
    let admitted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    for body in &admitted {
        assert_eq!(
            body["ticket"]["serial"], 1,
            "admitted with the old code only at serial 1"
        );
    }
    let late = app
        .scalar(&format!(
            "SELECT count(*) FROM checkins c JOIN ticket_code_changes r
             ON r.ticket_id = c.ticket_id WHERE c.ticket_serial <> 1 AND c.code = '{code}'"
        ))
        .await;
    assert_eq!(
        late, 0,
        "no scan of the old code recorded at the new serial"
    );
}

async fn offline_scans_upload_with_their_conflicts_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| settings.checkin.upload_max = 5).await;
    let (organiser, event, tickets) = paid_tickets(&app, 2).await;
    let main = default_list(&app, &organiser, &event).await;
    let code = code_of(&app, &tickets[0].0, &tickets[0].1).await;
    let other = code_of(&app, &tickets[1].0, &tickets[1].1).await;
    let device_a = nonce();
    let device_b = nonce();
    let refused = nonce();
    let scans = json!({"scans": [
        // Sent in this order, judged by scanned_at: B's admission comes later than A's.
        {"list_id": main, "code": code, "nonce": device_b, "scanned_at": "2026-01-01T20:05:00Z",
         "offline_result": "ok", "gate": "B"},
        {"list_id": main, "code": code, "nonce": device_a, "scanned_at": "2026-01-01T20:00:00Z",
         "offline_result": "ok", "gate": "A"},
        {"list_id": main, "code": other, "nonce": refused, "scanned_at": "2026-01-01T20:01:00Z",
         "offline_result": "refused", "offline_reason": "revoked"}
    ]});
    let (status, body) = app
        .post("/checkin/upload", Some(&organiser), scans.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["nonce"], json!(device_b));
    assert_eq!(
        (
            &results[0]["status"],
            &results[0]["forced"],
            &results[0]["reason"]
        ),
        (&json!("ok"), &json!(true), &json!("already_redeemed"))
    );
    assert_eq!(
        (
            &results[1]["status"],
            &results[1]["forced"],
            &results[1]["reason"]
        ),
        (&json!("ok"), &json!(false), &Value::Null)
    );
    assert_eq!(
        (
            &results[2]["status"],
            &results[2]["reason"],
            &results[2]["checkin_id"]
        ),
        (&json!("refused"), &json!("revoked"), &Value::Null)
    );
    assert!(results.iter().all(|r| r["replayed"] == json!(false)));

    // The same upload again: every result stored, replayed.
    let (status, again) = app.post("/checkin/upload", Some(&organiser), scans).await;
    assert_eq!(status, StatusCode::OK);
    for (first, second) in results.iter().zip(again["results"].as_array().unwrap()) {
        assert_eq!(second["replayed"], true);
        assert_eq!(first["checkin_id"], second["checkin_id"]);
        assert_eq!(first["reason"], second["reason"]);
    }
    let recorded = app.scalar("SELECT count(*) FROM checkins").await;
    assert_eq!(recorded, 2);

    // One refused scan sent twice in one upload: the second is the first's, replayed, even
    // when the device says otherwise.
    let twice = nonce();
    let refused_item = json!({"list_id": main, "code": other, "nonce": twice,
        "scanned_at": "2026-01-01T20:02:00Z", "offline_result": "refused",
        "offline_reason": "unpaid"});
    let admitted_item = json!({"list_id": main, "code": other, "nonce": twice,
        "scanned_at": "2026-01-01T20:03:00Z", "offline_result": "ok"});
    let (status, body) = app
        .post(
            "/checkin/upload",
            Some(&organiser),
            json!({"scans": [refused_item, admitted_item]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = &body["results"];
    assert_eq!(
        (&results[0]["reason"], &results[0]["replayed"]),
        (&json!("unpaid"), &json!(false))
    );
    assert_eq!(
        (
            &results[1]["status"],
            &results[1]["reason"],
            &results[1]["replayed"]
        ),
        (&json!("refused"), &json!("unpaid"), &json!(true)),
        "{body}"
    );
    let recorded = app.scalar("SELECT count(*) FROM checkins").await;
    assert_eq!(recorded, 2, "the repeat admitted nothing");

    // Any fault records nothing.
    let bad = json!({"scans": [
        {"list_id": main, "code": other, "nonce": nonce(), "scanned_at": "2026-01-01T20:00:00Z",
         "offline_result": "ok"},
        {"list_id": main, "code": other, "nonce": device_a, "scanned_at": "2026-01-01T20:00:00Z",
         "offline_result": "ok"},
        {"list_id": main, "code": other, "nonce": nonce(), "scanned_at": "2026-01-01T20:00:00Z",
         "offline_result": "refused"}
    ]});
    let (status, body) = app.post("/checkin/upload", Some(&organiser), bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        error_locs(&body).contains(&loc(&["body", "scans", "2", "offline_reason"])),
        "{body}"
    );
    let taken = json!({"scans": [
        {"list_id": main, "code": other, "nonce": device_a, "scanned_at": "2026-01-01T20:00:00Z",
         "offline_result": "ok"}
    ]});
    let (status, body) = app.post("/checkin/upload", Some(&organiser), taken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), [loc(&["body", "scans", "0", "nonce"])]);
    let item = json!({"list_id": main, "code": other, "nonce": nonce(),
                      "scanned_at": "2026-01-01T20:00:00Z", "offline_result": "ok"});
    let (status, body) = app
        .post(
            "/checkin/upload",
            Some(&organiser),
            json!({"scans": vec![item; 6]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_locs(&body), [loc(&["body", "scans"])]);
    let unknown = json!({"scans": [{"list_id": uuid::Uuid::new_v4(), "code": other,
        "nonce": nonce(), "scanned_at": "2026-01-01T20:00:00Z", "offline_result": "ok"}]});
    let (status, _) = app.post("/checkin/upload", Some(&organiser), unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let recorded = app.scalar("SELECT count(*) FROM checkins").await;
    assert_eq!(recorded, 2, "nothing recorded by refused uploads");

    let huge = "x".repeat(1024 * 1024 + 1);
    let answer = app
        .client
        .post(app.url("/checkin/upload"))
        .bearer_auth(&organiser)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn the_offline_bundle_follows_revocations_by_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 3).await;
    let event_id = event["id"].as_str().unwrap();
    let bundle_path = format!("/events/{event_id}/checkin/offline");
    let (status, first) = app.get(&bundle_path, Some(&organiser)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["event"]["id"], event["id"]);
    assert_eq!(first["keys"][0]["alg"], "Ed25519");
    assert_eq!(first["lists"][0]["name"], "Main entrance");
    assert_eq!(first["tiers"][1]["name"], "VIP");
    assert_eq!(first["revocations"], json!([]));
    assert!(first.get("tickets").is_none());
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    // One ticket reissued, one refunded: both are revoked, the rest is not.
    let (buyer, reissued) = &tickets[0];
    let reissued_id = reissued["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/tickets/{reissued_id}/code/reissue"),
            Some(buyer),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refunded = &tickets[1].1;
    let order = refunded["order_id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/orders/{order}/refund"),
            Some(&organiser),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, since) = app
        .get(&format!("{bundle_path}?since={cursor}"), Some(&organiser))
        .await;
    assert_eq!(status, StatusCode::OK, "{since}");
    let mut revoked: Vec<(String, Value)> = since["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ticket_id"].as_str().unwrap().to_owned(),
                r["valid_serial"].clone(),
            )
        })
        .collect();
    revoked.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (reissued_id.to_owned(), json!(2)),
        (refunded["id"].as_str().unwrap().to_owned(), Value::Null),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(revoked, expected);
    let next = since["cursor"].as_str().unwrap();
    let (_, nothing) = app
        .get(&format!("{bundle_path}?since={next}"), Some(&organiser))
        .await;
    assert_eq!(nothing["revocations"], json!([]), "none twice");
    let (_, all) = app.get(&bundle_path, Some(&organiser)).await;
    assert_eq!(all["revocations"].as_array().unwrap().len(), 2);

    // Tickets, paged; a scanner token sees its lists only; a cursor of nothing is refused.
    let (status, page) = app
        .get(
            &format!("{bundle_path}?include=tickets&limit=1&skip=1"),
            Some(&organiser),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["tickets_total"], 2);
    assert_eq!(page["tickets"].as_array().unwrap().len(), 1);
    assert!(page["tickets"][0]["holder_name"].is_string());
    let vip = add_list(&app, &organiser, &event, json!({"name": "VIP"})).await;
    let token = scanner_token(
        &app,
        &organiser,
        &event,
        json!({"label": "VIP", "list_ids": [vip]}),
    )
    .await;
    let (status, scoped) = app
        .get(&bundle_path, Some(token["token"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scoped["lists"].as_array().unwrap().len(), 1);
    for bad in [
        "?since=nonsense",
        "?since=999.x",
        "?limit=0",
        "?include=everything",
    ] {
        let (status, body) = app
            .get(&format!("{bundle_path}{bad}"), Some(&organiser))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, _) = app.get(&bundle_path, Some(&tickets[2].0)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn list_status_counts_what_happened_at_the_door(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 3).await;
    let vip_buyer = app.register_user(None).await;
    buy(&app, &vip_buyer.token, &event, 1).await;
    let event_id = event["id"].as_str().unwrap();
    let main = default_list(&app, &organiser, &event).await;
    let regular_only = add_list(
        &app,
        &organiser,
        &event,
        json!({"name": "Regular", "tier_ids": [event["tiers"][0]["id"]], "allow_reentry": true}),
    )
    .await;
    let ids: Vec<&str> = tickets
        .iter()
        .map(|(_, t)| t["id"].as_str().unwrap())
        .collect();
    // Main: two in. Regular: one in and out, one in, one refused, one forced.
    for id in &ids[..2] {
        assert_eq!(
            scan(&app, &organiser, &main, id).await.0,
            StatusCode::CREATED
        );
    }
    let step = |id: &str, kind: &str| json!({"list_id": regular_only, "code": id, "nonce": nonce(), "type": kind});
    assert_eq!(
        redeem(&app, &organiser, step(ids[0], "entry")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        redeem(&app, &organiser, step(ids[0], "exit")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        redeem(&app, &organiser, step(ids[2], "entry")).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        redeem(&app, &organiser, step(ids[2], "entry")).await.0,
        StatusCode::CONFLICT
    );
    let forced = json!({"list_id": regular_only, "code": ids[2], "nonce": nonce(), "force": true});
    assert_eq!(
        redeem(&app, &organiser, forced).await.0,
        StatusCode::CREATED
    );

    let status_of = |list: &str| format!("/events/{event_id}/checkin-lists/{list}/status");
    let (status, counts) = app.get(&status_of(&regular_only), Some(&organiser)).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["expected"], 3);
    assert_eq!(counts["admitted"], 2);
    assert_eq!(counts["inside"], 1);
    assert_eq!(counts["scans_ok"], 4);
    assert_eq!(counts["forced"], 1);
    assert_eq!(counts["scans_refused"], 1);
    assert_eq!(counts["event_admitted_distinct"], 3);
    assert_eq!(
        counts["by_tier"],
        json!([{"tier_id": event["tiers"][0]["id"], "expected": 3, "admitted": 2}])
    );
    let (_, counts) = app.get(&status_of(&main), Some(&organiser)).await;
    assert_eq!(
        (&counts["expected"], &counts["admitted"], &counts["inside"]),
        (&json!(4), &json!(2), &json!(2))
    );
    assert_eq!(counts["by_tier"].as_array().unwrap().len(), 2);
    let (status, _) = app.get(&status_of(&main), Some(&vip_buyer.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(
            &status_of(&uuid::Uuid::new_v4().to_string()),
            Some(&organiser),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_list_created_with_a_key_is_created_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, _) = paid_tickets(&app, 0).await;
    let event_id = event["id"].as_str().unwrap();
    let path = app.url(&format!("/events/{event_id}/checkin-lists"));
    let create = |name: &str| {
        app.client
            .post(&path)
            .bearer_auth(&organiser)
            .header("Idempotency-Key", "list-key-1")
            .json(&json!({"name": name}))
            .send()
    };
    let first = create("Side door").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = create("Side door").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = create("Back door").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, lists) = app
        .get(
            &format!("/events/{event_id}/checkin-lists"),
            Some(&organiser),
        )
        .await;
    assert_eq!(lists["lists"].as_array().unwrap().len(), 2, "{lists}");
}

async fn a_paid_ticket_scans_as_paid_long_after_its_hold(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.ticket_hold = std::time::Duration::from_secs(1);
    })
    .await;
    let (organiser, event, tickets) = paid_tickets(&app, 1).await;
    let main = default_list(&app, &organiser, &event).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (buyer, ticket) = &tickets[0];
    let code = code_of(&app, buyer, ticket).await;
    let (status, body) = scan(&app, &organiser, &main, &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ticket"]["status"], "paid");
}

async fn a_list_deleted_while_it_scans_loses_no_check_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (organiser, event, tickets) = paid_tickets(&app, 20).await;
    let event_id = event["id"].as_str().unwrap();
    for round in 0..3 {
        let door = add_list(
            &app,
            &organiser,
            &event,
            json!({"name": format!("Door {round}")}),
        )
        .await;
        let scans = tickets.iter().map(|(_, ticket)| {
            let body = json!({"list_id": door, "code": ticket["id"], "nonce": nonce()});
            redeem(&app, &organiser, body)
        });
        let path = format!("/events/{event_id}/checkin-lists/{door}");
        let (answers, (deleted, _)) =
            tokio::join!(join_all(scans), app.delete(&path, Some(&organiser)));
        let admitted = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::CREATED)
            .count();
        for (status, body) in &answers {
            assert!(
                [StatusCode::CREATED, StatusCode::NOT_FOUND].contains(status),
                "{status}: {body}"
            );
        }
        let recorded = app
            .scalar(&format!(
                "SELECT count(*) FROM checkins c JOIN checkin_lists l ON l.id = c.list_id
                 WHERE l.name = 'Door {round}'"
            ))
            .await;
        match deleted {
            StatusCode::NO_CONTENT => assert_eq!(admitted, 0, "a deleted list admitted nobody"),
            StatusCode::CONFLICT => assert_eq!(recorded, admitted as i64, "every admission kept"),
            other => panic!("delete answered {other}"),
        }
    }

    // A list a scan has just read (and may remember), then deleted: scans and uploads naming it
    // are 404, and record nothing.
    let door = add_list(&app, &organiser, &event, json!({"name": "Short-lived"})).await;
    let (status, _) = scan(&app, &organiser, &door, "not a code").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let path = format!("/events/{event_id}/checkin-lists/{door}");
    assert_eq!(
        app.delete(&path, Some(&organiser)).await.0,
        StatusCode::NO_CONTENT
    );
    let ticket = tickets[0].1["id"].as_str().unwrap();
    let (status, body) = scan(&app, &organiser, &door, ticket).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let upload = json!({"scans": [{"list_id": door, "code": ticket, "nonce": nonce(),
        "scanned_at": "2026-01-01T20:00:00Z", "offline_result": "ok"}]});
    let (status, body) = app.post("/checkin/upload", Some(&organiser), upload).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn a_scanner_is_held_to_its_rate_its_time_and_its_event(backend: Backend) {
    let app = TestApp::spawn_with(backend, |settings| {
        settings.checkin_scans_per_minute = std::num::NonZeroU32::new(3).unwrap();
    })
    .await;
    let (organiser, event, tickets) = paid_tickets(&app, 1).await;
    let main = default_list(&app, &organiser, &event).await;
    let code = code_of(&app, &tickets[0].0, &tickets[0].1).await;
    let token = scanner_token(&app, &organiser, &event, json!({"label": "Gate 1"})).await;
    let text = token["token"].as_str().unwrap();

    // CHECKIN_SCANS_PER_MINUTE per credential: the fourth scan in a minute is 429, and
    // another credential still scans.
    for expected in [
        StatusCode::CREATED,
        StatusCode::CONFLICT,
        StatusCode::CONFLICT,
    ] {
        let (status, body) = scan(&app, text, &main, &code).await;
        assert_eq!(status, expected, "{body}");
    }
    let body = json!({"list_id": main, "code": code, "nonce": nonce()});
    let answer = app
        .client
        .post(app.url("/checkin/redeem"))
        .bearer_auth(text)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers().contains_key("retry-after"));
    let (status, body) = scan(&app, &organiser, &main, &code).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let before = app.scalar("SELECT count(*) FROM checkin_refusals").await;
    assert_eq!(before, 3, "a scan refused for its rate records nothing");

    // A token past its time is refused as unknown.
    let expiring = scanner_token(&app, &organiser, &event, json!({"label": "Expiring"})).await;
    let expiring = expiring["token"].as_str().unwrap();
    let (status, body) = scan(&app, expiring, &main, &code).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let expired = app
        .scalar(
            "UPDATE scanner_tokens SET expires_at = created_at WHERE label = 'Expiring' \
             RETURNING CAST(1 AS BIGINT)",
        )
        .await;
    assert_eq!(expired, 1);
    let answer = app
        .client
        .post(app.url("/checkin/redeem"))
        .bearer_auth(expiring)
        .json(&json!({"list_id": main, "code": code, "nonce": nonce()}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers()["www-authenticate"], "Bearer");

    // A token of another event is not found under this one, nor revoked through it.
    let other = app.create_event(&organiser, json!({})).await;
    let other_id = other["id"].as_str().unwrap();
    let token_id = token["id"].as_str().unwrap();
    let (status, _) = app
        .delete(
            &format!("/events/{other_id}/scanner-tokens/{token_id}"),
            Some(&organiser),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let revoked = app
        .scalar("SELECT count(*) FROM scanner_tokens WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(revoked, 0);
    let stranger = app.register_user(None).await;
    let event_id = event["id"].as_str().unwrap();
    let (status, _) = app
        .delete(
            &format!("/events/{event_id}/scanner-tokens/{token_id}"),
            Some(&stranger.token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
