//! Store conformance: the same checks run against the `Store` interface itself (no HTTP) on
//! both backends, beside the HTTP suite. Whatever one backend promises (no oversell, pay versus
//! expiry, outcomes of refused changes, search geometry, idempotency keys), the other must too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use nearbytix::domain::paging::PageLimits;
use nearbytix::domain::{
    Change, Email, Event, EventDelete, EventDraft, EventFields, EventUpdate, GeoPoint, NewEvent,
    NewOrder, NewUser, OrderChange, OrderDetails, OrderFields, OrderOutcome, OrderRefusal,
    PageRequest, RadiusKm, Shortage, Ticket, TicketStatus, Tier, TierDraft, TierFields,
    VenueFields, Violations, WriteOutcome,
};
use nearbytix::service::ReadModel;
use nearbytix::store::{
    BuyerFilter, ClaimTerms, DynStore, HeldKey, IdempotencyClaim, KeyUse, NearbyQuery, NewKey,
    OrderAction, RequestKey, StoreError, StoreOptions, StoreResult, TierChange,
};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestDatabase, assert_invariants, assert_releases_recorded, scalar};

backend_tests!(
    reservations_never_oversell,
    pay_and_cancel_rules,
    expiry_releases_seats,
    pay_versus_expiry_race,
    event_update_and_delete_outcomes,
    nearby_geometry_matches_across_backends,
    the_read_model_follows_concurrent_writes_and_answers_as_the_database,
    idempotency_claims,
    orders_over_tiers_are_all_or_nothing,
    concurrent_orders_never_oversell_a_tier,
    concurrent_orders_over_many_events_sell_each_exactly,
    whole_orders_are_paid_cancelled_or_expired,
    every_path_that_gives_seats_back_goes_through_the_ledger,
    a_buyers_pages_count_their_history_from_counters,
);

const LONG_HOLD: Duration = Duration::from_secs(120);

/// A store on a fresh database; the store is dropped before the database it uses.
struct Fixture {
    backend: Backend,
    store: DynStore,
    database: TestDatabase,
}

impl Fixture {
    async fn open(backend: Backend) -> Fixture {
        let database = TestDatabase::create(backend).await;
        let options = StoreOptions {
            url: database.url.clone(),
            max_connections: 20,
            acquire_timeout: Duration::from_secs(5),
        };
        let store = nearbytix::store::connect(&options).await.expect("store");
        Fixture {
            backend,
            store,
            database,
        }
    }

    async fn user(&self) -> Uuid {
        let email = format!("u-{}@example.com", Uuid::new_v4().simple());
        let user = NewUser {
            id: Uuid::now_v7(),
            name: "Store Tester".into(),
            email: Email::parse(&email).unwrap(),
            password_hash: "x".into(),
            location: None,
        };
        self.store.insert_user(&user).await.expect("user").id
    }

    async fn event(&self, creator: Uuid, total: i64, at: GeoPoint) -> Event {
        let event = new_event(total, at, None);
        let inserted = self.store.insert_event(creator, &event).await;
        inserted.expect("event inserted").event
    }

    async fn reserve(&self, user: Uuid, event: Uuid, hold: Duration) -> OrderOutcome {
        reserve(self.store.clone(), user, event, hold).await
    }

    async fn pay(&self, ticket: Uuid, user: Uuid) -> OrderChange {
        change_ticket(&self.store, ticket, user, OrderAction::Pay).await
    }

    async fn cancel(&self, ticket: Uuid, user: Uuid) -> OrderChange {
        change_ticket(&self.store, ticket, user, OrderAction::Cancel).await
    }

    async fn ticket(&self, id: Uuid) -> Ticket {
        let details = self.store.find_ticket(id).await.expect("find_ticket");
        details.expect("ticket kept").ticket
    }

    async fn sold(&self, event: Uuid) -> i32 {
        let event = self.store.find_event(event).await.expect("find_event");
        event.expect("event exists").event.tickets_sold
    }

    async fn update(&self, event: Uuid, user: Uuid, total: i64) -> EventUpdate {
        let draft = draft(total, lagos());
        let update = self.store.update_event(event, user, &draft);
        update.await.expect("update_event")
    }

    async fn delete(&self, event: Uuid, user: Uuid) -> EventDelete {
        self.store.delete_event(event, user).await.expect("delete")
    }

    /// Seats the seat ledger recorded as given back for `cause`.
    async fn seats_back(&self, cause: &str) -> i64 {
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(seats), 0) AS BIGINT) FROM seat_returns WHERE cause = '{cause}'"
        );
        self.count(&sql).await
    }

    async fn count(&self, sql: &str) -> i64 {
        scalar(self.backend, &self.database.url, sql).await
    }

    async fn finish(self) {
        assert_invariants(self.backend, &self.database.url).await;
        assert_releases_recorded(self.backend, &self.database.url).await;
        self.store.close().await;
    }
}

/// Pays or cancels the order of `ticket`, as the ticket endpoints do.
async fn change_ticket(
    store: &DynStore,
    ticket: Uuid,
    user: Uuid,
    action: OrderAction,
) -> OrderChange {
    let Some(of) = store.ticket_order(ticket).await.expect("ticket_order") else {
        return Change::NotFound;
    };
    let change = store.change_order(of.order_id, user, action, None);
    change.await.expect("change_order")
}

async fn reserve(store: DynStore, user: Uuid, event: Uuid, hold: Duration) -> OrderOutcome {
    let order = NewOrder::one_ticket(user, event, None, hold);
    store.place_order(&order, None).await.expect("reserve")
}

fn reserved(outcome: OrderOutcome) -> Ticket {
    match outcome {
        OrderOutcome::Placed { order, .. } => order.tickets[0].ticket.clone(),
        other => panic!("expected a reservation, got {other:?}"),
    }
}

fn tier(name: &str, price_minor: i64, quantity: Option<i64>) -> TierFields {
    TierFields {
        name: name.into(),
        price_minor: Some(price_minor),
        quantity,
        ..TierFields::default()
    }
}

/// Places `items` (`(tier, quantity)`) for `user`.
async fn order(
    store: &DynStore,
    user: Uuid,
    event: Uuid,
    items: &[(&Tier, i64)],
    hold: Duration,
) -> OrderOutcome {
    let fields = OrderFields {
        event_id: event,
        items: items.iter().map(|(tier, n)| (tier.id, *n)).collect(),
    };
    let order = NewOrder::parse(fields, user, 10, hold).expect("well-formed order");
    store.place_order(&order, None).await.expect("place_order")
}

fn placed_or_panic(outcome: StoreResult<OrderOutcome>) -> OrderDetails {
    placed(outcome.expect("place_order"))
}

fn placed(outcome: OrderOutcome) -> OrderDetails {
    match outcome {
        OrderOutcome::Placed { order, .. } => *order,
        other => panic!("expected an order, got {other:?}"),
    }
}

/// The refusal of an order for want of seats, with none left.
const SOLD_OUT: OrderOutcome = OrderOutcome::Refused(OrderRefusal::NotEnough {
    short: Shortage::Event,
    left: 0,
});

fn lagos() -> GeoPoint {
    GeoPoint::new(6.5244, 3.3792).unwrap()
}

/// A valid draft starting tomorrow, at `at`.
fn draft(total: i64, at: GeoPoint) -> EventDraft {
    EventDraft::new(fields(total, at), Utc::now()).expect("valid draft")
}

/// A new event starting tomorrow, at `at`, selling `tiers` (or the default tier).
fn new_event(total: i64, at: GeoPoint, tiers: Option<Vec<TierFields>>) -> NewEvent {
    let fields = EventFields {
        tiers,
        ..fields(total, at)
    };
    NewEvent::parse(fields, Utc::now()).expect("valid event")
}

fn fields(total: i64, at: GeoPoint) -> EventFields {
    let start = Utc::now() + chrono::Duration::days(1);
    EventFields {
        title: format!("Conformance {total}"),
        description: Some("Store suite".into()),
        start_time: start.to_rfc3339(),
        end_time: (start + chrono::Duration::hours(3)).to_rfc3339(),
        total_tickets: total,
        venue: VenueFields {
            latitude: at.latitude(),
            longitude: at.longitude(),
            venue_name: "Eko Hall".into(),
            address_line1: "1 Marina Road".into(),
            address_line2: None,
            city: "Lagos".into(),
            state: "Lagos".into(),
            country: "Nigeria".into(),
            postal_code: "101001".into(),
        },
        currency: None,
        max_tickets_per_user: None,
        waitlist_enabled: None,
        waitlist_offer_minutes: None,
        tiers: None,
    }
}

fn page(skip: i64, limit: i64) -> PageRequest {
    let limits = PageLimits {
        default: 20,
        max: 100,
    };
    PageRequest::parse(&mut Violations::new(), Some(skip), Some(limit), limits).expect("page")
}

async fn reservations_never_oversell(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let users = join_all((0..10).map(|_| fx.user())).await;
    let event = fx.event(users[0], 20, lagos()).await;
    let attempts = (0..100).map(|i| {
        let reservation = reserve(fx.store.clone(), users[i % 10], event.id, LONG_HOLD);
        tokio::spawn(reservation)
    });
    let (mut won, mut sold_out) = (0, 0);
    for outcome in join_all(attempts).await {
        match outcome.expect("task ran") {
            OrderOutcome::Placed { .. } => won += 1,
            outcome if outcome == SOLD_OUT => sold_out += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((won, sold_out), (20, 80), "20 seats, 100 attempts");
    assert_eq!(fx.sold(event.id).await, 20);
    assert_eq!(fx.count("SELECT COUNT(*) FROM tickets").await, 20);
    fx.finish().await;
}

async fn pay_and_cancel_rules(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let (buyer, other) = (fx.user().await, fx.user().await);
    let event = fx.event(other, 5, lagos()).await;
    let first = reserved(fx.reserve(buyer, event.id, LONG_HOLD).await);

    assert_eq!(fx.pay(first.id, other).await, Change::NotOwner);
    let paid = match fx.pay(first.id, buyer).await {
        Change::Done(details) => details.tickets[0].ticket.clone(),
        refused => panic!("the owner pays a live hold: {refused:?}"),
    };
    assert_eq!(paid.status, TicketStatus::Paid);
    assert!(paid.paid_at.is_some(), "a paid ticket has paid_at");
    let is_paid = Change::NotReserved(TicketStatus::Paid);
    assert_eq!(fx.pay(first.id, buyer).await, is_paid, "pay twice");
    assert_eq!(fx.cancel(first.id, buyer).await, is_paid, "cancel paid");

    let second = reserved(fx.reserve(buyer, event.id, LONG_HOLD).await);
    assert_eq!(fx.sold(event.id).await, 2);
    assert_eq!(fx.cancel(second.id, other).await, Change::NotOwner);
    let cancelled = fx.cancel(second.id, buyer).await;
    assert!(
        matches!(&cancelled, Change::Done(d) if d.order.status == TicketStatus::Cancelled),
        "the owner cancels a live hold: {cancelled:?}"
    );
    assert_eq!(fx.sold(event.id).await, 1, "cancelling gives the seat back");
    let again = fx.cancel(second.id, buyer).await;
    assert_eq!(again, Change::NotReserved(TicketStatus::Cancelled));

    let unknown = Uuid::now_v7();
    assert_eq!(fx.pay(unknown, buyer).await, Change::NotFound);
    assert_eq!(fx.cancel(unknown, buyer).await, Change::NotFound);
    fx.finish().await;
}

async fn expiry_releases_seats(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let (early, late) = (fx.user().await, fx.user().await);
    let event = fx.event(early, 1, lagos()).await;
    let hold = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let first = reserved(fx.reserve(early, event.id, hold).await);
    match fx.reserve(late, event.id, LONG_HOLD).await {
        outcome if outcome == SOLD_OUT => {}
        // Only on a machine so slow that the hold (begun after `started`) had passed.
        OrderOutcome::Placed { order: slow, .. } if started.elapsed() >= hold => {
            let freed = fx.cancel(slow.tickets[0].ticket.id, late).await;
            assert!(matches!(freed, Change::Done(_)), "{freed:?}");
        }
        other => panic!("the only seat is held: {other:?}"),
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = fx.reserve(late, event.id, LONG_HOLD).await;
    assert!(
        matches!(again, OrderOutcome::Placed { .. }),
        "the reservation path reclaims due holds before answering sold out: {again:?}"
    );
    assert_eq!(fx.pay(first.id, early).await, Change::Expired);
    assert_eq!(fx.cancel(first.id, early).await, Change::Expired);
    let stored = fx.ticket(first.id).await.status;
    assert_eq!(stored, TicketStatus::Expired, "stored as expired");
    let swept = fx.store.expire_due_tickets(100).await.expect("sweep");
    assert_eq!(swept, 0, "the reservation reclaimed it already");
    assert_eq!(fx.sold(event.id).await, 1);
    fx.finish().await;
}

async fn pay_versus_expiry_race(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let users = join_all((0..10).map(|_| fx.user())).await;
    let event = fx.event(users[0], 30, lagos()).await;
    let hold = Duration::from_millis(200);
    let begun = tokio::time::Instant::now();
    let reservations = (0..30).map(|i| fx.reserve(users[i % 10], event.id, hold));
    let outcomes = join_all(reservations).await;
    let tickets: Vec<Ticket> = outcomes.into_iter().map(reserved).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (fx.store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut expired = 0;
                while !stop.load(Ordering::Relaxed) {
                    expired += store.expire_due_tickets(4).await.expect("sweep");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                expired
            })
        })
        .collect();
    // Each payment lands within ±40 ms of the 200 ms deadline, in 10 ms steps.
    let payments = tickets.iter().enumerate().map(|(i, ticket)| {
        let (store, id, owner) = (fx.store.clone(), ticket.id, ticket.user_id);
        let at = begun + hold + Duration::from_millis(10 * (i % 9) as u64);
        tokio::spawn(async move {
            tokio::time::sleep_until(at - Duration::from_millis(40)).await;
            change_ticket(&store, id, owner, OrderAction::Pay).await
        })
    });
    let joined = join_all(payments).await;
    let outcomes: Vec<_> = joined.into_iter().map(Result::unwrap).collect();
    stop.store(true, Ordering::Relaxed);
    let sweeps = join_all(sweepers).await;
    let mut swept: u64 = sweeps.into_iter().map(Result::unwrap).sum();
    let last = fx.store.expire_due_tickets(1000).await;
    swept += last.expect("final sweep");

    let mut paid = 0;
    for (ticket, outcome) in tickets.iter().zip(&outcomes) {
        let now = fx.ticket(ticket.id).await;
        match outcome {
            Change::Done(_) => {
                paid += 1;
                assert_eq!(now.status, TicketStatus::Paid, "a won payment sticks");
                let paid_at = now.paid_at.expect("paid_at");
                assert!(paid_at < now.expires_at, "paid late: {paid_at}");
            }
            Change::Expired => {
                assert_eq!(now.status, TicketStatus::Expired, "stored by the sweeps");
                assert_eq!(now.paid_at, None, "an expired ticket was never paid");
            }
            other => panic!("a payment at the deadline wins or expires: {other:?}"),
        }
    }
    let paid_rows = fx.count("SELECT COUNT(*) FROM tickets WHERE status = 'paid'");
    assert_eq!(paid_rows.await, paid, "every paid row answered Done");
    let expired = fx.count("SELECT COUNT(*) FROM tickets WHERE status = 'expired'");
    let expired = expired.await;
    assert_eq!(expired, 30 - paid, "paid or expired, never both");
    assert_eq!(swept as i64, expired, "one sweep per expiry");
    assert_eq!(i64::from(fx.sold(event.id).await), paid);
    fx.finish().await;
}

async fn event_update_and_delete_outcomes(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let (creator, buyer) = (fx.user().await, fx.user().await);
    let event = fx.event(creator, 5, lagos()).await.id;
    let first = reserved(fx.reserve(buyer, event, LONG_HOLD).await);
    let second = reserved(fx.reserve(buyer, event, LONG_HOLD).await);

    assert_eq!(fx.update(event, buyer, 5).await, EventUpdate::NotCreator);
    let unknown = Uuid::now_v7();
    assert_eq!(fx.update(unknown, creator, 5).await, EventUpdate::NotFound);
    let below = fx.update(event, creator, 1).await;
    assert_eq!(below, EventUpdate::BelowSold, "2 sold, total 1");
    let exact = fx.update(event, creator, 2).await;
    assert!(
        matches!(&exact, EventUpdate::Done(e) if (e.event.total_tickets, e.event.tickets_sold) == (2, 2)),
        "a total equal to the tickets sold is allowed: {exact:?}"
    );

    assert_eq!(fx.delete(event, buyer).await, EventDelete::NotCreator);
    assert_eq!(fx.delete(event, creator).await, EventDelete::HasTickets);
    for ticket in [first.id, second.id] {
        let cancelled = fx.cancel(ticket, buyer).await;
        assert!(matches!(cancelled, Change::Done(_)), "{cancelled:?}");
    }
    assert_eq!(fx.delete(event, creator).await, EventDelete::Deleted);
    assert_eq!(fx.store.find_event(event).await.expect("find_event"), None);
    assert_eq!(fx.delete(event, creator).await, EventDelete::NotFound);

    // A due hold does not keep an event alive: deleting releases it first.
    let held = fx.event(creator, 1, lagos()).await.id;
    reserved(fx.reserve(buyer, held, Duration::from_millis(100)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fx.delete(held, creator).await, EventDelete::Deleted);
    fx.finish().await;
}

async fn nearby_geometry_matches_across_backends(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let creator = fx.user().await;
    let origin = lagos();
    let mut intended: HashMap<Uuid, f64> = HashMap::new();
    let inside = [(20.0, 135.0), (1.0, 45.0), (49.9, 330.0)];
    let outside = [(80.0, 10.0), (50.1, 250.0)];
    for (km, bearing) in outside.into_iter().chain(inside) {
        let event = fx.event(creator, 10, origin.destination(km, bearing)).await;
        intended.insert(event.id, km);
    }
    let east = GeoPoint::new(0.0, 179.95).unwrap();
    let across = fx.event(creator, 10, east).await.id;
    let search = |center: GeoPoint, skip: i64, limit: i64| {
        let radius = RadiusKm::new(50.0).unwrap();
        let (store, slice) = (fx.store.clone(), page(skip, limit));
        async move {
            let query = NearbyQuery {
                center,
                radius,
                page: slice,
            };
            store.nearby_events(&query).await.expect("nearby_events")
        }
    };
    let assert_close = |actual: f64, expected: f64| {
        let tolerance = (expected * 0.005).max(0.002);
        let off = (actual - expected).abs();
        assert!(off <= tolerance, "{actual} km vs intended {expected} km");
    };

    let found = search(origin, 0, 20).await;
    assert_eq!(found.total, 3, "only 1, 20 and 49.9 km lie within 50 km");
    let kms: Vec<f64> = found.items.iter().map(|n| intended[&n.event.id]).collect();
    assert_eq!(kms, [1.0, 20.0, 49.9], "nearest first");
    for nearby in &found.items {
        assert_close(nearby.distance_km, intended[&nearby.event.id]);
    }

    let second = search(origin, 1, 1).await;
    assert_eq!(second.total, 3, "total counts every match, not the page");
    assert_eq!(second.items.len(), 1);
    assert_eq!(intended[&second.items[0].event.id], 20.0, "skip=1 limit=1");

    let west = GeoPoint::new(0.0, -179.95).unwrap();
    let wrapped = search(west, 0, 20).await;
    assert_eq!(wrapped.total, 1, "the event across the antimeridian");
    assert_eq!(wrapped.items[0].event.id, across);
    assert_close(wrapped.items[0].distance_km, west.distance_km(&east));
    assert!(wrapped.items[0].distance_km < 12.0, "about 11.1 km away");
    fx.finish().await;
}

/// A small deterministic random source (splitmix64): the data sets below are random but
/// reproducible from the seed printed on failure.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Where the data sets cluster: a city, across the antimeridian, around each pole.
fn clusters() -> [GeoPoint; 4] {
    [
        lagos(),
        GeoPoint::new(0.0, 179.9).unwrap(),
        GeoPoint::new(89.7, 30.0).unwrap(),
        GeoPoint::new(-89.8, -120.0).unwrap(),
    ]
}

fn all_events() -> nearbytix::store::EventFilter {
    nearbytix::store::EventFilter {
        upcoming_only: false,
        text: None,
        starts_after: None,
        starts_before: None,
    }
}

fn random_point(random: &mut Random) -> GeoPoint {
    let centre = clusters()[random.below(4)];
    centre.destination(random.between(0.0, 400.0), random.between(0.0, 360.0))
}

/// The read model, following the store while writers create, sell out, release, move and
/// delete events concurrently, then answers every query exactly as the database does: same
/// ids in the same order, same totals, distances within 1 m.
async fn the_read_model_follows_concurrent_writes_and_answers_as_the_database(backend: Backend) {
    let seed = Utc::now().timestamp_micros() as u64;
    let fx = Fixture::open(backend).await;
    let creator = fx.user().await;
    let mut random = Random(seed);
    // Loaded at start: random events, and a group at one place and one start time, which
    // only their ids order.
    for _ in 0..80 {
        let total = 1 + random.below(3) as i64;
        fx.event(creator, total, random_point(&mut random)).await;
    }
    let start = (Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let same_place = random_point(&mut random);
    for _ in 0..5 {
        let tied = EventFields {
            start_time: start.clone(),
            end_time: (Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
            ..fields(10, same_place)
        };
        let event = NewEvent::parse(tied, Utc::now()).expect("valid event");
        fx.store.insert_event(creator, &event).await.expect("event");
    }
    let model = Arc::new(ReadModel::default());
    let following = model.follow(fx.store.clone());
    model.first_load().await;

    // Writers commit in whatever order their transactions end: a change read late must not
    // be skipped. Errors (a deadlock answered 503, a refused delete) are part of the mix.
    let events: Arc<std::sync::Mutex<Vec<Uuid>>> = Arc::new(std::sync::Mutex::new(
        fx.store
            .list_events(&all_events(), page(0, 100))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|event| event.id)
            .collect(),
    ));
    let writers = (0..8u64).map(|writer| {
        let (store, events) = (fx.store.clone(), events.clone());
        async move {
            let mut random = Random(seed ^ (writer + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
            let buyer = {
                let email = format!("w-{}@example.com", Uuid::new_v4().simple());
                let user = NewUser {
                    id: Uuid::now_v7(),
                    name: "Writer".into(),
                    email: Email::parse(&email).unwrap(),
                    password_hash: "x".into(),
                    location: None,
                };
                store.insert_user(&user).await.expect("user").id
            };
            let mut tickets = Vec::new();
            for _ in 0..30 {
                let pick = {
                    let events = events.lock().unwrap();
                    events[random.below(events.len())]
                };
                match random.below(5) {
                    0 => {
                        let total = 1 + random.below(2) as i64;
                        let event = new_event(total, random_point(&mut random), None);
                        if let Ok(event) = store.insert_event(creator, &event).await {
                            events.lock().unwrap().push(event.event.id);
                        }
                    }
                    1 | 2 => {
                        let order = NewOrder::one_ticket(buyer, pick, None, LONG_HOLD);
                        if let Ok(OrderOutcome::Placed { order, .. }) =
                            store.place_order(&order, None).await
                        {
                            tickets.push(order.tickets[0].ticket.id);
                        }
                    }
                    3 => {
                        if let Some(ticket) = tickets.pop() {
                            change_ticket(&store, ticket, buyer, OrderAction::Cancel).await;
                        }
                    }
                    _ => {
                        let moved = EventDraft::new(
                            fields(1 + random.below(3) as i64, random_point(&mut random)),
                            Utc::now(),
                        )
                        .expect("valid draft");
                        if random.below(2) == 0 {
                            let _ = store.update_event(pick, creator, &moved).await;
                        } else {
                            let _ = store.delete_event(pick, creator).await;
                        }
                    }
                }
            }
        }
    });
    join_all(writers).await;
    assert!(model.catch_up().await, "the model read every change");

    for _ in 0..300 {
        let query = NearbyQuery {
            center: random_point(&mut random),
            radius: RadiusKm::new(random.between(1.0, 500.0)).unwrap(),
            page: page(random.below(4) as i64, 1 + random.below(40) as i64),
        };
        // A busy machine may leave the model's last read older than it answers from.
        let memory = match model.search(&query, Utc::now()) {
            Some(found) => found.found,
            None => {
                assert!(model.catch_up().await, "the model read again");
                model
                    .search(&query, Utc::now())
                    .expect("the model is fresh")
                    .found
            }
        };
        let database = fx.store.nearby_events(&query).await.expect("nearby");
        let ids = |found: &[nearbytix::domain::NearbyEvent]| {
            found.iter().map(|n| n.event.id).collect::<Vec<_>>()
        };
        assert_eq!(memory.total, database.total, "seed {seed}: {query:?}");
        assert_eq!(
            ids(&memory.items),
            ids(&database.items),
            "seed {seed}: {query:?}"
        );
        for (memory, database) in memory.items.iter().zip(&database.items) {
            assert!(
                (memory.distance_km - database.distance_km).abs() < 0.001,
                "seed {seed}: {} km vs {} km",
                memory.distance_km,
                database.distance_km
            );
            assert_eq!(
                memory.event, database.event,
                "seed {seed}: the item as stored"
            );
        }
    }
    drop(following);
    fx.finish().await;
}

async fn idempotency_claims(backend: Backend) {
    use IdempotencyClaim::{Claimed, InProgress, Mismatch, QuotaExceeded};
    let fx = Fixture::open(backend).await;
    let (user, other) = (fx.user().await, fx.user().await);
    let event = fx.event(user, 10, lagos()).await.id;
    let store = &fx.store;
    let at = |user_id: Uuid, key: &'static str| RequestKey { user_id, key };
    let claim_for = |user: Uuid, key: &'static str, hash: &'static str, lease, quota| async move {
        let terms = ClaimTerms {
            claim: Uuid::new_v4(),
            lease,
            quota,
        };
        let held = HeldKey {
            user_id: user,
            key: key.to_owned(),
            claim: terms.claim,
        };
        let claim = store.claim_key(at(user, key), hash, terms).await.unwrap();
        (claim, held)
    };
    let minute = Duration::from_secs(60);
    let claim = |user, key, hash| async move { claim_for(user, key, hash, minute, 1000).await.0 };
    let keyed_reserve = |held: HeldKey| async move {
        let order = NewOrder::one_ticket(held.user_id, event, None, LONG_HOLD);
        store.place_order(&order, Some(&KeyUse::Held(held))).await
    };

    // A claimed key answers "in progress" until its write records the answer with the work.
    let (claimed, held) = claim_for(user, "k1", "h1", minute, 1000).await;
    assert_eq!(claimed, Claimed);
    assert_eq!(claim(user, "k1", "h1").await, InProgress);
    assert_eq!(claim(other, "k1", "h1").await, Claimed, "keys are per user");
    let outcome = keyed_reserve(held.clone()).await.expect("keyed reserve");
    let OrderOutcome::Placed { order: placed, .. } = outcome else {
        panic!("reserved: {outcome:?}");
    };
    let completed = IdempotencyClaim::Completed(WriteOutcome::Order(placed));
    assert_eq!(claim(user, "k1", "h1").await, completed);
    assert_eq!(claim(user, "k1", "h2").await, Mismatch);
    store.release_key(&held).await.unwrap();
    assert_eq!(claim(user, "k1", "h1").await, completed, "still completed");
    assert_eq!(fx.sold(event).await, 1);

    // A claim whose lease passed unanswered is taken over; the old holder's write then rolls
    // back instead of recording a second answer.
    let (claimed, abandoned) = claim_for(user, "k2", "h1", Duration::ZERO, 1000).await;
    assert_eq!(claimed, Claimed);
    assert_eq!(store.peek_key(at(user, "k2"), "h1").await.unwrap(), None);
    let (claimed, taker) = claim_for(user, "k2", "h1", minute, 1000).await;
    assert_eq!(claimed, Claimed, "taken over");
    let lost = keyed_reserve(abandoned).await;
    assert!(matches!(lost, Err(StoreError::ClaimLost)), "{lost:?}");
    assert_eq!(fx.sold(event).await, 1, "the lost write took no seat");
    reserved(keyed_reserve(taker).await.expect("the new holder reserves"));
    assert_eq!(fx.sold(event).await, 2);

    // A released claim may be claimed again at once.
    let (claimed, released) = claim_for(user, "k3", "h1", minute, 1000).await;
    assert_eq!(claimed, Claimed);
    store.release_key(&released).await.unwrap();
    assert_eq!(claim(user, "k3", "h3").await, Claimed, "released");
    assert_eq!(claim(user, "k3", "h3").await, InProgress);

    // Reads say what holds a key without taking it; a user's keys are bounded.
    let peek = store.peek_key(at(user, "k1"), "h1").await.unwrap();
    assert_eq!(peek, Some(completed));
    assert_eq!(store.peek_key(at(user, "k9"), "h1").await.unwrap(), None);
    let quota = |key, lease| async move { claim_for(other, key, "h", lease, 2).await.0 };
    assert_eq!(
        quota("q1", Duration::ZERO).await,
        Claimed,
        "the second of two"
    );
    assert_eq!(quota("q2", minute).await, QuotaExceeded);
    assert_eq!(
        quota("k1", minute).await,
        Mismatch,
        "held keys still answer"
    );
    assert_eq!(quota("q1", minute).await, Claimed, "its own abandoned key");
    // At its quota, a user still takes over a key of its own whose holder died.
    let (claimed, _) = claim_for(other, "q3", "h", Duration::ZERO, 10).await;
    assert_eq!(claimed, Claimed);
    let (taken, _) = claim_for(other, "q3", "h", minute, 1).await;
    assert_eq!(taken, Claimed, "the quota counts new keys only");

    // A new key is claimed by the order itself: placed, it replays; in use, the order does
    // nothing; refused, the key stays free; past the quota, the order does nothing.
    let new_key = |key: &str, quota| {
        KeyUse::New(NewKey {
            held: HeldKey {
                user_id: user,
                key: key.to_owned(),
                claim: Uuid::new_v4(),
            },
            request_hash: "h-new".into(),
            lease: minute,
            quota,
        })
    };
    let place_new = |key: KeyUse, event| async move {
        let order = NewOrder::one_ticket(user, event, None, LONG_HOLD);
        store.place_order(&order, Some(&key)).await
    };
    let sold_before = fx.sold(event).await;
    let placed = place_new(new_key("n1", 1000), event).await.expect("placed");
    let OrderOutcome::Placed { order: placed, .. } = placed else {
        panic!("a new key's order is placed: {placed:?}");
    };
    let replay = IdempotencyClaim::Completed(WriteOutcome::Order(placed));
    assert_eq!(claim(user, "n1", "h-new").await, replay);
    let again = place_new(new_key("n1", 1000), event).await;
    assert!(matches!(again, Err(StoreError::KeyInUse)), "{again:?}");
    assert_eq!(
        fx.sold(event).await,
        sold_before + 1,
        "the key in use took no seat"
    );
    let full = fx.event(user, 1, lagos()).await.id;
    placed_or_panic(place_new(new_key("n2", 1000), full).await);
    let refused = place_new(new_key("n3", 1000), full).await.expect("refused");
    assert_eq!(refused, SOLD_OUT);
    assert_eq!(
        store.peek_key(at(user, "n3"), "h-new").await.unwrap(),
        None,
        "left free"
    );
    let over = place_new(new_key("n4", 1), event).await;
    assert!(
        matches!(over, Err(StoreError::KeyInUse)),
        "past the quota: {over:?}"
    );

    // Refused orders store no key, so any number of them leaves the quota whole (on
    // PostgreSQL they raise the user's bound, which then gives way to a count of the keys).
    let buyer = fx.user().await;
    let one_seat = fx.event(user, 1, lagos()).await.id;
    let buyer_key = |key: &str| {
        KeyUse::New(NewKey {
            held: HeldKey {
                user_id: buyer,
                key: key.to_owned(),
                claim: Uuid::new_v4(),
            },
            request_hash: "h-new".into(),
            lease: minute,
            quota: 2,
        })
    };
    let buy = |event, quantity, key| {
        let mut order = NewOrder::one_ticket(buyer, event, None, LONG_HOLD);
        order.lines[0].quantity = quantity;
        let key = buyer_key(key);
        async move { store.place_order(&order, Some(&key)).await }
    };
    for key in ["r1", "r2", "r3"] {
        let refused = buy(one_seat, 2, key).await.expect("judged");
        assert!(
            matches!(refused, OrderOutcome::Refused(_)),
            "two of one seat: {refused:?}"
        );
    }
    placed_or_panic(buy(event, 1, "p1").await);
    placed_or_panic(buy(event, 1, "p2").await);
    let over = buy(event, 1, "p3").await;
    assert!(
        matches!(over, Err(StoreError::KeyInUse)),
        "the third placed key is past the quota: {over:?}"
    );
    fx.finish().await;
}

/// An event selling Early (1500, 3 seats), VIP (5000, 2 seats) and Regular (2500, no quota).
async fn tiered_event(fx: &Fixture, creator: Uuid, total: i64) -> (Event, Vec<Tier>) {
    let tiers = vec![
        tier("Early", 1500, Some(3)),
        tier("VIP", 5000, Some(2)),
        tier("Regular", 2500, None),
    ];
    let event = fx
        .store
        .insert_event(creator, &new_event(total, lagos(), Some(tiers)))
        .await
        .expect("event");
    (event.event, event.tiers)
}

async fn orders_over_tiers_are_all_or_nothing(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let buyer = fx.user().await;
    let (event, tiers) = tiered_event(&fx, buyer, 10).await;
    let (early, vip, regular) = (&tiers[0], &tiers[1], &tiers[2]);
    assert_eq!(
        tiers.iter().map(|t| t.position).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    let first = placed(
        order(
            &fx.store,
            buyer,
            event.id,
            &[(early, 2), (vip, 1)],
            LONG_HOLD,
        )
        .await,
    );
    assert_eq!(first.order.total_minor, 2 * 1500 + 5000);
    assert_eq!(first.tickets.len(), 3);
    assert!(
        first
            .tickets
            .iter()
            .all(|t| t.ticket.order_id == first.order.id)
    );

    // Early has one seat left: the whole order is refused and nothing moves.
    let short = order(
        &fx.store,
        buyer,
        event.id,
        &[(regular, 1), (early, 2)],
        LONG_HOLD,
    )
    .await;
    let early_left = OrderRefusal::NotEnough {
        short: Shortage::Tier("Early".into()),
        left: 1,
    };
    assert_eq!(short, OrderOutcome::Refused(early_left));
    assert_eq!(fx.sold(event.id).await, 3);
    let after = fx.store.find_event(event.id).await.unwrap().unwrap().tiers;
    assert_eq!(after.iter().map(|t| t.sold).collect::<Vec<_>>(), [2, 1, 0]);

    // Regular has no quota of its own: the event's 7 seats limit it.
    let event_left = OrderRefusal::NotEnough {
        short: Shortage::Event,
        left: 7,
    };
    let too_many = order(&fx.store, buyer, event.id, &[(regular, 8)], LONG_HOLD).await;
    assert_eq!(too_many, OrderOutcome::Refused(event_left));
    placed(order(&fx.store, buyer, event.id, &[(regular, 7)], LONG_HOLD).await);
    assert_eq!(fx.sold(event.id).await, 10);
    fx.finish().await;
}

async fn concurrent_orders_never_oversell_a_tier(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let users = join_all((0..10).map(|_| fx.user())).await;
    let (event, tiers) = tiered_event(&fx, users[0], 40).await;
    let tiers = Arc::new(tiers);
    // 300 orders of 1–4 tickets over the three tiers: far more demand than 40 seats.
    let attempts = (0..300).map(|i| {
        let (store, tiers, user) = (fx.store.clone(), tiers.clone(), users[i % 10]);
        tokio::spawn(async move {
            let lines: Vec<(&Tier, i64)> = match i % 3 {
                0 => vec![(&tiers[0], 1), (&tiers[2], (i % 4) as i64 + 1)],
                1 => vec![(&tiers[1], 1)],
                _ => vec![(&tiers[2], (i % 4) as i64 + 1)],
            };
            order(&store, user, event.id, &lines, LONG_HOLD).await
        })
    });
    let mut tickets = 0;
    for outcome in join_all(attempts).await {
        match outcome.expect("task ran") {
            OrderOutcome::Placed { order, .. } => tickets += order.tickets.len() as i32,
            OrderOutcome::Refused(OrderRefusal::NotEnough { .. }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(
        fx.sold(event.id).await,
        tickets,
        "every granted ticket counted"
    );
    assert_eq!(
        tickets, 40,
        "demand exceeds the capacity: all of it is sold"
    );
    let rows = fx.count("SELECT COUNT(*) FROM tickets").await;
    assert_eq!(rows, i64::from(tickets), "refused orders left no ticket");
    // Tier quotas held and every counter matches its rows (checked by `finish`).
    let after = fx.store.find_event(event.id).await.unwrap().unwrap().tiers;
    assert!(after[0].sold <= 3 && after[1].sold <= 2, "{after:?}");
    fx.finish().await;
}

/// Orders for many events at once (on PostgreSQL several events share a batch) sell each
/// event exactly out, and hold the per-person cap per event.
async fn concurrent_orders_over_many_events_sell_each_exactly(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let users = join_all((0..12).map(|_| fx.user())).await;
    let mut events = Vec::new();
    for _ in 0..8 {
        let capped = EventFields {
            max_tickets_per_user: Some(2),
            ..fields(15, lagos())
        };
        let event = NewEvent::parse(capped, Utc::now()).expect("valid event");
        events.push(
            fx.store
                .insert_event(users[0], &event)
                .await
                .expect("event")
                .event,
        );
    }
    // Each of 12 buyers tries 3 tickets of each event: 24 allowed per event, 15 seats.
    let attempts = (0..12 * 8 * 3).map(|i| {
        let (store, user, event) = (fx.store.clone(), users[i % 12], events[i / 12 % 8].id);
        tokio::spawn(async move { reserve(store, user, event, LONG_HOLD).await })
    });
    let mut granted = 0;
    for outcome in join_all(attempts).await {
        match outcome.expect("task ran") {
            OrderOutcome::Placed { .. } => granted += 1,
            OrderOutcome::Refused(
                OrderRefusal::NotEnough { .. } | OrderRefusal::PerPersonLimit { limit: 2 },
            ) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(granted, 8 * 15, "every event sold out, no more");
    for event in &events {
        assert_eq!(fx.sold(event.id).await, 15);
    }
    let most = fx
        .count(
            "SELECT CAST(MAX(n) AS BIGINT) FROM
             (SELECT COUNT(*) AS n FROM tickets GROUP BY user_id, event_id) AS per_buyer",
        )
        .await;
    assert!(most <= 2, "a buyer holds {most} tickets of one event");
    fx.finish().await;
}

async fn whole_orders_are_paid_cancelled_or_expired(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let (buyer, stranger) = (fx.user().await, fx.user().await);
    let (event, tiers) = tiered_event(&fx, buyer, 20).await;
    let lines = [(&tiers[2], 3), (&tiers[0], 1)];
    let store = &fx.store;

    let paid = placed(order(store, buyer, event.id, &lines, LONG_HOLD).await);
    let change = |id, user, action| store.change_order(id, user, action, None);
    assert_eq!(
        change(paid.order.id, stranger, OrderAction::Pay)
            .await
            .unwrap(),
        Change::NotOwner
    );
    let Change::Done(done) = change(paid.order.id, buyer, OrderAction::Pay)
        .await
        .unwrap()
    else {
        panic!("the owner pays");
    };
    assert_eq!(done.order.status, TicketStatus::Paid);
    assert!(
        done.tickets
            .iter()
            .all(|t| t.ticket.status == TicketStatus::Paid)
    );
    let again = change(paid.order.id, buyer, OrderAction::Cancel)
        .await
        .unwrap();
    assert_eq!(again, Change::NotReserved(TicketStatus::Paid));
    // One ticket of a larger order names it, and how many tickets it holds.
    let one = paid.tickets[0].ticket.id;
    let of = store.ticket_order(one).await.unwrap().unwrap();
    assert_eq!(
        (of.order_id, of.user_id, of.tickets),
        (paid.order.id, buyer, 4)
    );

    let cancelled = placed(order(store, buyer, event.id, &lines, LONG_HOLD).await);
    assert_eq!(fx.sold(event.id).await, 8);
    let outcome = change(cancelled.order.id, buyer, OrderAction::Cancel)
        .await
        .unwrap();
    assert!(matches!(outcome, Change::Done(_)), "{outcome:?}");
    assert_eq!(fx.sold(event.id).await, 4, "all four seats back at once");

    // A short hold: paying races the sweeper, and exactly one wins for the whole order.
    let hold = Duration::from_millis(200);
    let racing = placed(order(store, buyer, event.id, &lines, hold).await);
    let sweeper = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                store.expire_due_tickets(100).await.expect("sweep");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(190)).await;
    let paying = change(racing.order.id, buyer, OrderAction::Pay)
        .await
        .unwrap();
    sweeper.await.unwrap();
    let found = store.find_order(racing.order.id).await.unwrap().unwrap();
    match paying {
        Change::Done(_) => assert_eq!(found.order.status, TicketStatus::Paid),
        Change::Expired => assert_eq!(found.order.status, TicketStatus::Expired),
        other => panic!("pay or expire, got {other:?}"),
    }
    let statuses: Vec<_> = found.tickets.iter().map(|t| t.ticket.status).collect();
    assert!(
        statuses.iter().all(|s| *s == found.order.status),
        "{statuses:?}"
    );
    fx.finish().await;
}

/// Every way seats come back — a cancellation, an expiry by the sweeper, by an order short of
/// seats, before a tier change or an event's deletion, a raised total, a raised tier, a new
/// tier — reaches the seat ledger once per seat: its record shows each path's seats under its
/// cause, a lowered capacity records nothing, and the counters match the rows throughout.
async fn every_path_that_gives_seats_back_goes_through_the_ledger(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let buyer = fx.user().await;
    let (event, tiers) = tiered_event(&fx, buyer, 10).await;
    let (early, vip, regular) = (&tiers[0], &tiers[1], &tiers[2]);
    let store = &fx.store;
    let short = Duration::from_millis(100);
    let lapse = || tokio::time::sleep(Duration::from_millis(250));

    let cancelled = placed(order(store, buyer, event.id, &[(early, 2), (vip, 1)], LONG_HOLD).await);
    let cancel = store.change_order(cancelled.order.id, buyer, OrderAction::Cancel, None);
    assert!(matches!(cancel.await.unwrap(), Change::Done(_)));
    assert_eq!(fx.seats_back("cancelled").await, 3);
    let rows =
        "SELECT COUNT(*) FROM seat_returns WHERE cause = 'cancelled' AND tier_id IS NOT NULL";
    assert_eq!(fx.count(rows).await, 2, "one entry per tier");

    // The buyer is the event's creator here: the one who may refund it.
    let refunded = placed(order(store, buyer, event.id, &[(vip, 2)], LONG_HOLD).await);
    let pay = store.change_order(refunded.order.id, buyer, OrderAction::Pay, None);
    assert!(matches!(pay.await.unwrap(), Change::Done(_)));
    let refund = store.change_order(refunded.order.id, buyer, OrderAction::Refund, None);
    assert!(matches!(refund.await.unwrap(), Change::Done(_)));
    assert_eq!(fx.seats_back("refunded").await, 2, "a refund");

    placed(order(store, buyer, event.id, &[(regular, 2)], short).await);
    lapse().await;
    assert_eq!(store.expire_due_tickets(100).await.unwrap(), 2);
    assert_eq!(fx.seats_back("expired").await, 2, "the sweeper");

    placed(order(store, buyer, event.id, &[(regular, 10)], short).await);
    lapse().await;
    placed(order(store, buyer, event.id, &[(regular, 1)], LONG_HOLD).await);
    assert_eq!(
        fx.seats_back("expired").await,
        12,
        "an order short of seats"
    );

    placed(order(store, buyer, event.id, &[(regular, 1)], short).await);
    lapse().await;
    let same_vip = TierDraft::parse(tier("VIP", 5000, Some(2)), 10).unwrap();
    let change = store.change_tier(event.id, buyer, TierChange::Update(vip.id, &same_vip));
    change.await.unwrap();
    assert_eq!(fx.seats_back("expired").await, 13, "a tier change");
    assert_eq!(
        fx.seats_back("tier_raised").await,
        0,
        "an unchanged tier gives nothing back"
    );

    assert!(matches!(
        fx.update(event.id, buyer, 14).await,
        EventUpdate::Done(_)
    ));
    assert_eq!(fx.seats_back("capacity_raised").await, 4);
    assert!(matches!(
        fx.update(event.id, buyer, 12).await,
        EventUpdate::Done(_)
    ));
    assert_eq!(
        fx.seats_back("capacity_raised").await,
        4,
        "a lower total gives nothing back"
    );

    let more_early = TierDraft::parse(tier("Early", 1500, Some(5)), 12).unwrap();
    let change = store.change_tier(event.id, buyer, TierChange::Update(early.id, &more_early));
    change.await.unwrap();
    assert_eq!(fx.seats_back("tier_raised").await, 2);
    let late = TierDraft::parse(tier("Late", 3000, Some(3)), 12).unwrap();
    store
        .change_tier(event.id, buyer, TierChange::Add(&late))
        .await
        .unwrap();
    assert_eq!(fx.seats_back("tier_added").await, 3);

    let doomed = fx.event(buyer, 5, lagos()).await;
    placed(reserve(store.clone(), buyer, doomed.id, short).await);
    lapse().await;
    assert_eq!(fx.delete(doomed.id, buyer).await, EventDelete::Deleted);
    assert_eq!(fx.seats_back("expired").await, 14, "a deletion");
    fx.finish().await;
}

/// A buyer's pages of tickets and orders tell the right total in every status, their
/// cancelled and expired history read from `buyer_history` (kept by triggers, folded by the
/// sweeper into one row per buyer) rather than counted row by row.
async fn a_buyers_pages_count_their_history_from_counters(backend: Backend) {
    let fx = Fixture::open(backend).await;
    let (creator, buyer, other) = (fx.user().await, fx.user().await, fx.user().await);
    let event = fx.event(creator, 100, lagos()).await.id;
    let short = Duration::from_millis(200);
    let mut placed = Vec::new();
    for (user, hold) in [
        (buyer, LONG_HOLD),
        (buyer, LONG_HOLD),
        (buyer, LONG_HOLD),
        (buyer, LONG_HOLD),
        (buyer, LONG_HOLD),
        (buyer, short),
        (buyer, short),
        (buyer, short),
        (other, LONG_HOLD),
    ] {
        match fx.reserve(user, event, hold).await {
            OrderOutcome::Placed { order, .. } => placed.push(order.tickets[0].ticket.id),
            refused => panic!("{refused:?}"),
        }
    }
    assert!(matches!(fx.pay(placed[0], buyer).await, Change::Done(_)));
    for ticket in [placed[1], placed[2], placed[8]] {
        let owner = if ticket == placed[8] { other } else { buyer };
        assert!(matches!(fx.cancel(ticket, owner).await, Change::Done(_)));
    }
    tokio::time::sleep(short * 2).await;
    // Two of the three lapsed holds are swept; the third is expired only in effect.
    assert_eq!(fx.store.expire_due_tickets(2).await.expect("sweep"), 2);
    let expected = [
        (None, 8),
        (Some(TicketStatus::Reserved), 2),
        (Some(TicketStatus::Paid), 1),
        (Some(TicketStatus::Cancelled), 2),
        (Some(TicketStatus::Expired), 3),
    ];
    let check = |when: &'static str| {
        let store = fx.store.clone();
        async move {
            for (status, total) in expected {
                let filter = BuyerFilter {
                    user_id: buyer,
                    status,
                    page: page(0, 100),
                };
                let tickets = store.user_tickets(&filter).await.expect("tickets");
                let orders = store.user_orders(&filter).await.expect("orders");
                assert_eq!(
                    (tickets.total, tickets.items.len() as i64),
                    (total, total),
                    "tickets {status:?} {when}"
                );
                assert_eq!(
                    (orders.total, orders.items.len() as i64),
                    (total, total),
                    "orders {status:?} {when}"
                );
                // A short page still tells the whole total.
                let filter = BuyerFilter {
                    page: page(0, 1),
                    ..filter
                };
                let first = store.user_tickets(&filter).await.expect("tickets");
                assert_eq!(
                    first.total, total,
                    "tickets {status:?} {when}, one per page"
                );
            }
        }
    };
    check("before the fold").await;
    assert!(fx.count("SELECT COUNT(*) FROM buyer_history").await > 2);
    assert_eq!(fx.store.fold_buyer_history(1_000).await.expect("fold"), 2);
    assert_eq!(fx.count("SELECT COUNT(*) FROM buyer_history").await, 2);
    assert_eq!(fx.store.fold_buyer_history(1_000).await.expect("fold"), 0);
    check("after the fold").await;
    // Rows added after a fold count with the folded one, and fold into it next time.
    assert!(matches!(fx.cancel(placed[3], buyer).await, Change::Done(_)));
    let filter = BuyerFilter {
        user_id: buyer,
        status: Some(TicketStatus::Cancelled),
        page: page(0, 1),
    };
    assert_eq!(
        fx.store.user_orders(&filter).await.expect("orders").total,
        3
    );
    assert_eq!(fx.store.fold_buyer_history(1_000).await.expect("fold"), 1);
    assert_eq!(
        fx.store.user_orders(&filter).await.expect("orders").total,
        3
    );
    fx.finish().await;
}
