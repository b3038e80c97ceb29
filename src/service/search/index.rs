//! The events search can return, in memory, in a spatial index.
//!
//! Points are kept as unit vectors on the sphere, so "within r km" is "within the chord of r
//! km" — one ball in three dimensions, whatever the antimeridian or the poles — and an R-tree
//! (`rstar`) finds the points in that ball. The chord grows with the great-circle distance, so
//! it orders results nearest first as well; distances in km are computed only for the page,
//! with the same formula the SQLite store uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use uuid::Uuid;

use crate::domain::geo::EARTH_RADIUS_KM;
use crate::domain::{Event, GeoPoint, NearbyEvent};
use crate::store::{NearbyQuery, Page};

type Point = [f64; 3];
type Entry = GeomWithData<Point, Listed>;

/// An event in the tree. Two entries are the same entry only if they hold the same `Arc`, so
/// removing one event never removes another at the same place.
#[derive(Debug, Clone)]
struct Listed {
    start_micros: i64,
    event: Arc<Event>,
}

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.event, &other.event)
    }
}

#[derive(Default)]
pub struct SearchIndex {
    tree: RTree<Entry>,
    by_id: HashMap<Uuid, Arc<Event>>,
    /// Start times, to drop events once they start.
    starts: BTreeSet<(DateTime<Utc>, Uuid)>,
}

/// Whether search may return `event` at `now`: upcoming and not sold out.
fn searchable(event: &Event, now: DateTime<Utc>) -> bool {
    event.start_time > now && !event.is_sold_out()
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

fn entry(event: &Arc<Event>) -> Entry {
    GeomWithData::new(
        unit_vector(event.venue.location()),
        Listed {
            start_micros: event.start_time.timestamp_micros(),
            event: Arc::clone(event),
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
        let events: Vec<Arc<Event>> = events
            .into_iter()
            .filter(|event| searchable(event, now))
            .map(Arc::new)
            .collect();
        let tree = RTree::bulk_load(events.iter().map(entry).collect());
        let starts = events
            .iter()
            .map(|event| (event.start_time, event.id))
            .collect();
        let by_id = events.into_iter().map(|event| (event.id, event)).collect();
        Self {
            tree,
            by_id,
            starts,
        }
    }

    pub fn event_count(&self) -> usize {
        self.by_id.len()
    }

    /// Takes `event` as it is now: in the index if it is searchable at `now`, out otherwise.
    pub fn put(&mut self, event: Event, now: DateTime<Utc>) {
        self.remove(event.id);
        if searchable(&event, now) {
            let event = Arc::new(event);
            self.tree.insert(entry(&event));
            self.starts.insert((event.start_time, event.id));
            self.by_id.insert(event.id, event);
        }
    }

    pub fn remove(&mut self, id: Uuid) {
        if let Some(event) = self.by_id.remove(&id) {
            self.tree.remove(&entry(&event));
            self.starts.remove(&(event.start_time, id));
        }
    }

    /// Drops the events that started by `now` (searches skip them anyway: this bounds the
    /// index to upcoming events).
    pub fn drop_started(&mut self, now: DateTime<Utc>) {
        while let Some(&(start, id)) = self.starts.first() {
            if start > now {
                break;
            }
            self.remove(id);
        }
    }

    /// Upcoming, not sold-out events within the radius, nearest first, ties by start time
    /// then id — as the stores order them.
    pub fn search(&self, query: &NearbyQuery, now: DateTime<Utc>) -> Page<NearbyEvent> {
        let now_micros = now.timestamp_micros();
        let center = unit_vector(query.center);
        let mut found: Vec<(f64, &Listed)> = self
            .tree
            .locate_within_distance(center, squared_chord(query.radius.km()))
            .filter(|hit| hit.data.start_micros > now_micros)
            .map(|hit| (squared_distance(hit.geom(), &center), &hit.data))
            .collect();
        let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
        let skip = usize::try_from(query.page.skip()).unwrap_or(usize::MAX);
        let limit = usize::try_from(query.page.limit()).unwrap_or(0);
        let end = skip.saturating_add(limit).min(found.len());
        let order = |a: &(f64, &Listed), b: &(f64, &Listed)| {
            a.0.total_cmp(&b.0)
                .then(a.1.start_micros.cmp(&b.1.start_micros))
                .then(a.1.event.id.cmp(&b.1.event.id))
        };
        if end < found.len() {
            found.select_nth_unstable_by(end, order);
            found.truncate(end);
        }
        found.sort_unstable_by(order);
        let items = found
            .into_iter()
            .skip(skip)
            .map(|(_, listed)| NearbyEvent {
                distance_km: query.center.distance_km(&listed.event.venue.location()),
                event: Event::clone(&listed.event),
            })
            .collect();
        Page { items, total }
    }
}

fn squared_distance(a: &Point, b: &Point) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum()
}
