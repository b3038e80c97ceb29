//! The events search can return, in memory, in a spatial index.
//!
//! Points are kept as unit vectors on the sphere, so "within r km" is "within the chord of r
//! km" — one ball in three dimensions, whatever the antimeridian or the poles — and an R-tree
//! (`rstar`) finds the points in that ball. The chord grows with the great-circle distance, so
//! it orders results nearest first as well; distances in km are computed only for the page,
//! with the same formula the SQLite store uses.

use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rstar::primitives::GeomWithData;
use rstar::{AABB, ParentNode, RStarInsertionStrategy, RTree, RTreeNode, RTreeParams};
use uuid::Uuid;

use crate::domain::geo::EARTH_RADIUS_KM;
use crate::domain::{Event, GeoPoint, NearbyEvent};
use crate::store::{NearbyQuery, Page};

type Point = [f64; 3];
type Entry = GeomWithData<Point, Listed>;

/// Wider nodes than rstar's default (6): a search counts thousands of leaves, and leaves that
/// sit together in one node are read together from memory.
struct Wide;

impl RTreeParams for Wide {
    const MIN_SIZE: usize = 10;
    const MAX_SIZE: usize = 32;
    const REINSERTION_COUNT: usize = 8;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

/// An event in the tree. Two entries are the same entry only if they hold the same `Arc`, so
/// removing one event never removes another at the same place.
#[derive(Debug, Clone)]
struct Listed {
    start_micros: i64,
    /// When it stops being searchable by the clock alone: its start, or its tiers' windows
    /// closing (a search between then and the next [`SearchIndex::refresh`] skips it).
    until_micros: i64,
    event: Arc<Event>,
    /// Its description was too long to keep ([`KEPT_DESCRIPTION_BYTES`]).
    description_elided: bool,
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.event, &other.event)
    }
}

/// The index keeps every upcoming event that can be bought now (in the tree) or could be by the
/// clock alone, when a tier's sales window opens or closes (kept aside until then).
#[derive(Default)]
pub struct SearchIndex {
    tree: RTree<Entry, Wide>,
    by_id: HashMap<Uuid, Kept>,
    /// Start times, to drop events once they start.
    starts: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// When a tier's sales window opening or closing turns an event's "sold out", to look at
    /// it again then.
    reviews: BTreeSet<(DateTime<Utc>, Uuid)>,
}

struct Kept {
    event: Arc<Event>,
    description_elided: bool,
    /// Whether it is in the tree: searchable when last looked at.
    listed: bool,
    /// When the clock alone turns whether it is searchable.
    review_at: Option<DateTime<Utc>>,
}

/// Descriptions longer than this (up to 5,000 characters) are not kept: a page reads them by
/// id, so that a longer description costs the index no more memory.
pub const KEPT_DESCRIPTION_BYTES: usize = 256;

/// A page of a search, with the events whose descriptions it must read by id.
pub struct SearchPage {
    pub found: Page<NearbyEvent>,
    pub descriptions_to_read: Vec<Uuid>,
}

/// Whether search may return `event` at `now`: upcoming and not sold out.
fn searchable(event: &Event, now: DateTime<Utc>) -> bool {
    event.start_time > now && !event.is_sold_out(now)
}

fn unit_vector(point: GeoPoint) -> Point {
    let (latitude, longitude) = (
        point.latitude().to_radians(),
        point.longitude().to_radians(),
    );
    [
        latitude.cos() * longitude.cos(),
        latitude.cos() * longitude.sin(),
        latitude.sin(),
    ]
}

fn entry(kept: &Kept) -> Entry {
    let event = &kept.event;
    GeomWithData::new(
        unit_vector(event.venue.location()),
        Listed {
            start_micros: event.start_time.timestamp_micros(),
            until_micros: kept
                .review_at
                .map_or(event.start_time, |at| at.min(event.start_time))
                .timestamp_micros(),
            event: Arc::clone(event),
            description_elided: kept.description_elided,
        },
    )
}

/// The squared chord of a great-circle distance: what the tree measures.
fn squared_chord(km: f64) -> f64 {
    let chord = 2.0 * (km / (2.0 * EARTH_RADIUS_KM)).sin();
    chord * chord
}

impl SearchIndex {
    /// The index of `events`, keeping those searchable at `now` (a bulk load: much faster than
    /// one insert after another).
    pub fn new(events: Vec<Event>, now: DateTime<Utc>) -> Self {
        let mut index = Self::default();
        let mut listed = Vec::new();
        for event in events {
            let (event, description_elided) = elide_description(event);
            if let Some(kept) = index.keep(Arc::new(event), description_elided, now) {
                if kept.listed {
                    listed.push(entry(&kept));
                }
                index.by_id.insert(kept.event.id, kept);
            }
        }
        index.tree = RTree::bulk_load_with_params(listed);
        index
    }

    /// The events searchable now.
    pub fn event_count(&self) -> usize {
        self.tree.size()
    }

    /// Takes `event` as it is now: in the tree if it is searchable at `now`, aside if it may
    /// become so when a sales window opens, out otherwise.
    pub fn put(&mut self, event: Event, now: DateTime<Utc>) {
        let (event, description_elided) = elide_description(event);
        self.put_shared(Arc::new(event), description_elided, now);
    }

    fn put_shared(&mut self, event: Arc<Event>, description_elided: bool, now: DateTime<Utc>) {
        self.remove(event.id);
        if let Some(kept) = self.keep(event, description_elided, now) {
            if kept.listed {
                self.tree.insert(entry(&kept));
            }
            self.by_id.insert(kept.event.id, kept);
        }
    }

    /// How `event` is kept at `now`, with its start and review times noted; `None` when no
    /// change of time alone can make it searchable.
    fn keep(
        &mut self,
        event: Arc<Event>,
        description_elided: bool,
        now: DateTime<Utc>,
    ) -> Option<Kept> {
        if event.start_time <= now || event.seats_left() == 0 {
            return None;
        }
        let listed = searchable(&event, now);
        let review_at = event.sold_out_turns_at(now);
        if !listed && review_at.is_none() {
            return None;
        }
        self.starts.insert((event.start_time, event.id));
        if let Some(at) = review_at {
            self.reviews.insert((at, event.id));
        }
        Some(Kept {
            event,
            description_elided,
            listed,
            review_at,
        })
    }

    pub fn remove(&mut self, id: Uuid) {
        if let Some(kept) = self.by_id.remove(&id) {
            if kept.listed {
                self.tree.remove(&entry(&kept));
            }
            self.starts.remove(&(kept.event.start_time, id));
            if let Some(at) = kept.review_at {
                self.reviews.remove(&(at, id));
            }
        }
    }

    /// Brings the index to `now`: drops the events that started, and looks again at those
    /// whose sales window opened or closed. A search counts the events under a node without
    /// looking at each ([`events_under`]), so it answers as of the last call.
    pub fn refresh(&mut self, now: DateTime<Utc>) {
        while let Some(&(start, id)) = self.starts.first()
            && start <= now
        {
            self.starts.pop_first();
            self.remove(id);
        }
        while let Some(&(at, id)) = self.reviews.first()
            && at <= now
        {
            self.reviews.pop_first();
            if let Some(kept) = self.by_id.get(&id) {
                let (event, elided) = (Arc::clone(&kept.event), kept.description_elided);
                self.put_shared(event, elided, now);
            }
        }
    }

    /// Upcoming, not sold-out events within the radius, nearest first, ties by start time
    /// then id — as the stores order them.
    pub fn search(&self, query: &NearbyQuery, now: DateTime<Utc>) -> SearchPage {
        let skip = usize::try_from(query.page.skip()).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.page.limit()).unwrap_or(0);
        let mut walk = Walk {
            center: unit_vector(query.center),
            within: squared_chord(query.radius.km()),
            now_micros: now.timestamp_micros(),
            keep: skip.saturating_add(limit),
            nearest: BinaryHeap::new(),
            total: 0,
        };
        walk.visit(self.tree.root());
        let mut descriptions_to_read = Vec::new();
        let items = walk
            .nearest
            .into_sorted_vec()
            .into_iter()
            .skip(skip)
            .map(|ranked| {
                let listed = ranked.listed;
                if listed.description_elided {
                    descriptions_to_read.push(listed.event.id);
                }
                NearbyEvent {
                    distance_km: query.center.distance_km(&listed.event.venue.location()),
                    event: Event::clone(&listed.event),
                }
            })
            .collect();
        SearchPage {
            found: Page {
                items,
                total: i64::try_from(walk.total).unwrap_or(i64::MAX),
            },
            descriptions_to_read,
        }
    }
}

/// `event` without its description when that is too long to keep, and whether it was.
fn elide_description(mut event: Event) -> (Event, bool) {
    let elided = event
        .description
        .as_ref()
        .is_some_and(|text| text.len() > KEPT_DESCRIPTION_BYTES);
    if elided {
        event.description = None;
    }
    (event, elided)
}

/// A search's pass over the tree: counts every match and keeps the `keep` nearest.
struct Walk<'a> {
    center: Point,
    /// The squared chord of the radius.
    within: f64,
    now_micros: i64,
    keep: usize,
    /// The nearest matches so far, the farthest on top.
    nearest: BinaryHeap<Ranked<'a>>,
    total: usize,
}

impl<'a> Walk<'a> {
    /// Visits nodes nearest first, so the nearest matches are found early; once no node left
    /// can hold one of them, the rest are only counted.
    fn visit(&mut self, root: &'a ParentNode<Entry>) {
        let mut queue = BinaryHeap::new();
        queue.push(Node {
            nearest: root.envelope().distance_2(&self.center),
            node: root,
        });
        while let Some(Node { nearest, node }) = queue.pop() {
            if self.cannot_rank(nearest) {
                self.count(node);
                for Node { node, .. } in queue.drain() {
                    self.count(node);
                }
                return;
            }
            for child in node.children() {
                match child {
                    RTreeNode::Leaf(entry) => {
                        if let Some(distance) = self.matches(entry) {
                            self.total += 1;
                            self.rank(Ranked {
                                distance,
                                listed: &entry.data,
                            });
                        }
                    }
                    RTreeNode::Parent(parent) => {
                        let envelope = parent.envelope();
                        let nearest = envelope.distance_2(&self.center);
                        if nearest > self.within {
                            continue;
                        }
                        queue.push(Node {
                            nearest,
                            node: parent,
                        });
                    }
                }
            }
        }
    }

    /// Counts the matches under `node` without ranking them.
    fn count(&mut self, node: &'a ParentNode<Entry>) {
        let envelope = node.envelope();
        if envelope.distance_2(&self.center) > self.within {
            return;
        }
        if farthest_corner(&envelope, &self.center) <= self.within {
            self.total += events_under(node);
            return;
        }
        for child in node.children() {
            match child {
                RTreeNode::Leaf(entry) => {
                    self.total += usize::from(self.matches(entry).is_some());
                }
                RTreeNode::Parent(parent) => self.count(parent),
            }
        }
    }

    /// The squared chord to `entry` when it matches (within the radius, still on sale).
    fn matches(&self, entry: &Entry) -> Option<f64> {
        let distance = squared_distance(entry.geom(), &self.center);
        (distance <= self.within && entry.data.until_micros > self.now_micros).then_some(distance)
    }

    fn cannot_rank(&self, distance: f64) -> bool {
        self.nearest.len() >= self.keep
            && self
                .nearest
                .peek()
                .is_some_and(|farthest| distance > farthest.distance)
    }

    fn rank(&mut self, candidate: Ranked<'a>) {
        if self.nearest.len() < self.keep {
            self.nearest.push(candidate);
        } else if let Some(mut farthest) = self.nearest.peek_mut()
            && candidate < *farthest
        {
            *farthest = candidate;
        }
    }
}

/// A node waiting to be visited; the queue pops the nearest first.
struct Node<'a> {
    nearest: f64,
    node: &'a ParentNode<Entry>,
}

impl Ord for Node<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.nearest.total_cmp(&self.nearest)
    }
}

impl PartialOrd for Node<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Node<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Node<'_> {}

/// The events under `node`, counted by node rather than one by one (a node's children are all
/// leaves or all nodes). Events that started, or stopped selling by the clock, are in until the
/// next [`SearchIndex::refresh`] — within one read of the change log, inside search's
/// freshness bound.
fn events_under(node: &ParentNode<Entry>) -> usize {
    match node.children().first() {
        Some(RTreeNode::Parent(_)) => node
            .children()
            .iter()
            .map(|child| match child {
                RTreeNode::Parent(parent) => events_under(parent),
                RTreeNode::Leaf(_) => 1,
            })
            .sum(),
        _ => node.children().len(),
    }
}

/// The squared distance from `point` to the farthest corner of `envelope`.
fn farthest_corner(envelope: &AABB<Point>, point: &Point) -> f64 {
    let (lower, upper) = (envelope.lower(), envelope.upper());
    (0..3)
        .map(|axis| {
            let far = (point[axis] - lower[axis])
                .abs()
                .max((upper[axis] - point[axis]).abs());
            far * far
        })
        .sum()
}

/// A match, ordered as results are: nearest first, then by start time, then by id.
struct Ranked<'a> {
    distance: f64,
    listed: &'a Listed,
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.listed.start_micros.cmp(&other.listed.start_micros))
            .then(self.listed.event.id.cmp(&other.listed.event.id))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked<'_> {}

fn squared_distance(a: &Point, b: &Point) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::WaitlistSettings;
    use crate::domain::event::tests::venue_fields;
    use crate::domain::paging::PageLimits;
    use crate::domain::{PageRequest, RadiusKm, TierSale, Venue, VenueFields, Violations};

    /// splitmix64: random but reproducible.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn between(&mut self, low: f64, high: f64) -> f64 {
            low + (high - low) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Near a city, the antimeridian or a pole.
        fn point(&mut self) -> GeoPoint {
            let centres = [(6.5, 3.4), (0.0, 179.9), (89.8, 10.0), (-89.7, -100.0)];
            let (latitude, longitude) = centres[(self.next() % 4) as usize];
            GeoPoint::new(latitude, longitude)
                .unwrap()
                .destination(self.between(0.0, 600.0), self.between(0.0, 360.0))
        }
    }

    fn event(random: &mut Random, now: DateTime<Utc>) -> Event {
        let at = random.point();
        let venue = Venue::parse(VenueFields {
            latitude: at.latitude(),
            longitude: at.longitude(),
            ..venue_fields()
        })
        .unwrap();
        // Few distinct start times, so that ties on distance and start occur (same place).
        let start = now + Duration::hours(1 + (random.next() % 3) as i64);
        let total_tickets = 1 + (random.next() % 3) as i32;
        // Windows that open or close before, between and after the searches (now, now + 90
        // minutes), and quotas that may be all sold.
        let instant = |random: &mut Random, choices: &[Option<i64>]| {
            choices[(random.next() % choices.len() as u64) as usize]
                .map(|minutes| now + Duration::minutes(minutes))
        };
        let sales = (0..1 + random.next() % 2)
            .map(|_| {
                let quantity = (random.next() % 3) as i32;
                TierSale {
                    quantity: (quantity > 0).then_some(quantity),
                    sold: (random.next() % 2) as i32,
                    sales_start: instant(random, &[None, None, Some(-60), Some(30), Some(120)]),
                    sales_end: instant(random, &[None, None, Some(45), Some(180)]),
                }
            })
            .collect();
        Event {
            id: Uuid::from_u128(u128::from(random.next())),
            creator_id: Uuid::nil(),
            title: "Gig".into(),
            description: None,
            start_time: start,
            end_time: start + Duration::hours(2),
            total_tickets,
            tickets_sold: (random.next() % 4) as i32 % (total_tickets + 1),
            venue,
            currency: "USD".into(),
            max_tickets_per_user: None,
            waitlist: WaitlistSettings::default(),
            created_at: now,
            updated_at: now,
            sales,
        }
    }

    /// What the stores answer, by brute force over every event.
    fn brute_force(
        events: &HashMap<Uuid, Event>,
        query: &NearbyQuery,
        now: DateTime<Utc>,
    ) -> (i64, Vec<Uuid>) {
        let mut found: Vec<(f64, &Event)> = events
            .values()
            .filter(|event| searchable(event, now))
            .map(|event| (query.center.distance_km(&event.venue.location()), event))
            .filter(|(km, _)| *km <= query.radius.km())
            .collect();
        found.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.start_time.cmp(&b.1.start_time))
                .then(a.1.id.cmp(&b.1.id))
        });
        let ids = found
            .iter()
            .skip(query.page.skip() as usize)
            .take(query.page.limit() as usize)
            .map(|(_, event)| event.id)
            .collect();
        (found.len() as i64, ids)
    }

    #[test]
    fn long_descriptions_are_not_kept_but_named_for_reading() {
        let now = Utc::now();
        let mut random = Random(11);
        let mut short = event(&mut random, now);
        short.description = Some("x".repeat(KEPT_DESCRIPTION_BYTES));
        let mut long = event(&mut random, now);
        long.description = Some("x".repeat(KEPT_DESCRIPTION_BYTES + 1));
        long.venue = short.venue.clone();
        let mut index = SearchIndex::default();
        for event in [&short, &long] {
            let mut on_sale = event.clone();
            on_sale.tickets_sold = 0;
            on_sale.sales = Vec::new();
            on_sale.sales.push(TierSale {
                quantity: None,
                sold: 0,
                sales_start: None,
                sales_end: None,
            });
            index.put(on_sale, now);
        }
        for kept in index.by_id.values() {
            let text = kept.event.description.as_deref().unwrap_or_default();
            assert!(text.len() <= KEPT_DESCRIPTION_BYTES);
            assert_eq!(kept.description_elided, kept.event.id == long.id);
        }
        let query = NearbyQuery {
            center: short.venue.location(),
            radius: RadiusKm::new(1.0).unwrap(),
            page: PageRequest::parse(
                &mut Violations::new(),
                None,
                None,
                PageLimits {
                    default: 20,
                    max: 100,
                },
            )
            .unwrap(),
        };
        let page = index.search(&query, now);
        assert_eq!(page.found.items.len(), 2);
        assert_eq!(page.descriptions_to_read, [long.id]);
    }

    #[test]
    fn answers_as_a_scan_of_every_event_does() {
        let now = Utc::now();
        let mut random = Random(7);
        let mut events: HashMap<Uuid, Event> = HashMap::new();
        for _ in 0..20_000 {
            let event = event(&mut random, now);
            events.insert(event.id, event);
        }
        // Some events share a place (ties broken by start time, then id).
        let shared = events.values().next().unwrap().venue.clone();
        for _ in 0..30 {
            let mut twin = event(&mut random, now);
            twin.venue = shared.clone();
            events.insert(twin.id, twin);
        }
        let mut index = SearchIndex::new(events.values().cloned().collect(), now);
        // Changes after the load: moves, sell-outs, deletes.
        let ids: Vec<Uuid> = events.keys().copied().collect();
        for id in ids.iter().step_by(7) {
            let mut changed = event(&mut random, now);
            changed.id = *id;
            index.put(changed.clone(), now);
            events.insert(*id, changed);
        }
        for id in ids.iter().skip(3).step_by(11) {
            index.remove(*id);
            events.remove(id);
        }
        let mut later = SearchIndex::new(events.values().cloned().collect(), now);
        later.refresh(now + Duration::minutes(90));
        let limits = PageLimits {
            default: 20,
            max: 100,
        };
        for _ in 0..400 {
            let skip = (random.next() % 5) as i64;
            let limit = 1 + (random.next() % 60) as i64;
            let query = NearbyQuery {
                center: random.point(),
                radius: RadiusKm::new(random.between(1.0, 500.0)).unwrap(),
                page: PageRequest::parse(&mut Violations::new(), Some(skip), Some(limit), limits)
                    .unwrap(),
            };
            // Half the searches after the earliest events started (and were dropped).
            let at = now + Duration::minutes(90 * (random.next() % 2) as i64);
            let found = if at > now { &later } else { &index }
                .search(&query, at)
                .found;
            let ids: Vec<Uuid> = found.items.iter().map(|n| n.event.id).collect();
            assert_eq!(
                (found.total, ids),
                brute_force(&events, &query, at),
                "{query:?}"
            );
        }
        // Once the earliest events start, they are gone.
        let later = now + Duration::minutes(90);
        index.refresh(later);
        assert!(index.starts.iter().all(|(start, _)| *start > later));
        assert!(index.reviews.iter().all(|(at, _)| *at > later));
        assert_eq!(index.by_id.len(), index.starts.len());
        let listed = index.by_id.values().filter(|kept| kept.listed).count();
        assert_eq!(index.tree.size(), listed);
    }
}
