//! Live availability (AVAILABILITY.md): snapshots, and the streams that keep every open page
//! true.
//!
//! Each watched event has one [`Watch`] per process, whatever the number of its streams: a
//! task that reads the event at most once per interval and publishes what it read to every
//! stream. It is woken by
//! - this process's own writes ([`Availability::touched`], called before their response),
//! - the store's announcements from every process (PostgreSQL's `nearbytix_availability`),
//! - the change feed search follows ([`ReadModel::followed`]), which covers announcements
//!   lost with the listening connection and, on SQLite, every commit.
//!
//! A write's own process reads the event again at once (within the interval since the last
//! read), so a message sent after its response shows it, unless the write committed while the
//! read before was in flight (that read began before the commit and is sent as it is, rather
//! than hold every stream back while sales go on); the next message then shows it, within the
//! interval. A stream opens on a reading that began after every write of this process: a
//! deleted event is never streamed as existing. Streams hold no database connection; only a
//! watch's read does, for one statement.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::{Clock, Followed, ReadModel, Resource, ServiceError};
use crate::config::AvailabilitySettings;
use crate::domain::Snapshot;
use crate::store::{AvailabilityNews, DynStore};

/// How long opening a stream waits for its events' first reading before answering 503.
const FIRST_READING_WAIT: Duration = Duration::from_secs(5);
/// Longest pause between a watch's reads while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// `Retry-After` of a refused stream.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Availability {
    store: DynStore,
    settings: AvailabilitySettings,
    clock: Clock,
    watches: Mutex<HashMap<Uuid, Arc<Watch>>>,
    streams: Mutex<OpenStreams>,
    shutdown: watch::Sender<bool>,
}

/// Streams open in this process, in all and by client address (no entry at zero).
#[derive(Default)]
struct OpenStreams {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One event's reads, shared by all of its streams in this process.
pub struct Watch {
    event_id: Uuid,
    /// This process's writes to the event, counted.
    touched: AtomicU64,
    wake: Notify,
    /// A stream opens and the latest reading began before a write: read at once, whatever
    /// the interval (opening a stream may cost a read, as `GET …/availability` does).
    opening: Notify,
    latest: watch::Sender<Option<Arc<Reading>>>,
}

/// One read of a watched event.
#[derive(Debug)]
struct Reading {
    /// [`Watch::touched`] when the read began: it shows every write counted before.
    touched_before: u64,
    /// `None`: the event does not exist (any more).
    shown: Option<Arc<Shown>>,
}

impl Reading {
    fn snapshot(&self) -> Option<&Snapshot> {
        self.shown.as_ref().map(|shown| &shown.snapshot)
    }
}

/// Whether `latest` is a reading that began after the writes counted by `touched`.
fn is_current(latest: &Option<Arc<Reading>>, touched: u64) -> bool {
    latest
        .as_ref()
        .is_some_and(|reading| reading.touched_before >= touched)
}

/// How a stream frames a message: a single event's stream gives each message its event's
/// version as `id:`, a stream of several events does not.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    Single,
    Multiplexed,
}

/// What a reading shows of an existing event, as every stream of the watch sends it.
#[derive(Debug)]
pub struct Shown {
    pub snapshot: Snapshot,
    /// The message as the HTTP layer frames it (by [`Framing`]), made once for every stream
    /// that sends it.
    framed: [OnceLock<Bytes>; 2],
}

impl Shown {
    /// The message framed by `frame` for `framing`, once whatever the number of streams.
    pub fn framed(&self, framing: Framing, frame: impl FnOnce(&Snapshot) -> Bytes) -> Bytes {
        self.framed[framing as usize]
            .get_or_init(|| frame(&self.snapshot))
            .clone()
    }
}

/// What a stream sends next.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Availability(Arc<Shown>),
    /// The event does not exist (any more).
    Gone(Uuid),
    /// Nothing was sent for the keep-alive time.
    KeepAlive,
}

/// How opening a stream ended.
pub enum Opened {
    Stream(StreamSession),
    /// Every event named has started (and one exists): nothing to stream.
    Started,
}

impl Availability {
    pub fn new(store: DynStore, settings: AvailabilitySettings, clock: Clock) -> Self {
        Self {
            store,
            settings,
            clock,
            watches: Mutex::default(),
            streams: Mutex::default(),
            shutdown: watch::Sender::new(false),
        }
    }

    pub fn settings(&self) -> &AvailabilitySettings {
        &self.settings
    }

    /// The event's snapshot read now from the database.
    pub async fn snapshot(&self, event_id: Uuid) -> Result<Snapshot, ServiceError> {
        let found = self.store.event_availability(event_id).await?;
        let found = found.ok_or(ServiceError::NotFound(Resource::Event, event_id))?;
        Ok(found.snapshot((self.clock)(), self.settings.few_left_percent))
    }

    /// This process committed a write to the event (called before the write's response): its
    /// watch reads it again, and a stream opened from now on starts from a later reading.
    pub fn touched(&self, event_id: Uuid) {
        if let Some(watch) = self.lock_watches().get(&event_id) {
            watch.touched.fetch_add(1, Ordering::SeqCst);
            watch.wake.notify_one();
        }
    }

    /// Ends every stream (cleanly, without a message): the server is shutting down.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Follows what the store announces and what `model` reads, waking the watches of the
    /// events named, until the returned task is aborted.
    pub fn follow(self: &Arc<Self>, model: &ReadModel) -> tokio::task::JoinHandle<()> {
        let mut news = self.store.availability_news();
        let mut followed = model.followed();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut news_open = true;
            loop {
                tokio::select! {
                    heard = news.recv(), if news_open => match heard {
                        Ok(AvailabilityNews::Changed(id)) => this.wake(id),
                        Ok(AvailabilityNews::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            this.wake_all();
                        }
                        // SQLite announces nothing.
                        Err(broadcast::error::RecvError::Closed) => news_open = false,
                    },
                    read = followed.recv() => match read {
                        Ok(Followed::Events(ids)) => this.wake_each(&ids),
                        Ok(Followed::Everything) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            this.wake_all();
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        })
    }

    /// Opens a stream for `client` on `event_ids` (distinct, in the client's order): refused
    /// past the caps; then each event's first reading decides (unknown → 404 unless another
    /// exists, all started → [`Opened::Started`]). `last_event_id`: a single-event stream whose
    /// client saw the current version skips the first message.
    pub async fn open(
        self: &Arc<Self>,
        client: IpAddr,
        event_ids: &[Uuid],
        last_event_id: Option<&str>,
    ) -> Result<Opened, ServiceError> {
        let permit = self.admit(client)?;
        let mut feeds = Vec::with_capacity(event_ids.len());
        for id in event_ids {
            feeds.push(self.subscribe(*id));
        }
        // Of each event, a reading that began after every write of this process so far: the
        // watches that have none are all asked first, so that they read side by side.
        let touched: Vec<u64> = feeds
            .iter()
            .map(|feed| {
                let touched = feed.watch.touched.load(Ordering::SeqCst);
                if !is_current(&feed.latest.borrow(), touched) {
                    feed.watch.opening.notify_one();
                }
                touched
            })
            .collect();
        let mut exists = false;
        let mut open = false;
        for (feed, touched) in feeds.iter_mut().zip(touched) {
            let current = |latest: &Option<Arc<Reading>>| is_current(latest, touched);
            let first = tokio::time::timeout(FIRST_READING_WAIT, feed.latest.wait_for(current));
            let reading = match first.await {
                Ok(Ok(reading)) => reading.clone(),
                _ => {
                    return Err(ServiceError::Overloaded {
                        retry_after: RETRY_AFTER,
                    });
                }
            };
            if let Some(snapshot) = reading.as_ref().and_then(|reading| reading.snapshot()) {
                exists = true;
                open |= !snapshot.is_closed();
            }
        }
        match (exists, open) {
            (false, _) => Err(ServiceError::NotFound(Resource::Event, event_ids[0])),
            (true, false) => Ok(Opened::Started),
            (true, true) => {
                if let ([feed], Some(seen)) = (feeds.as_mut_slice(), last_event_id) {
                    feed.skip_if_seen(seen);
                }
                let jitter = 0.9 + 0.2 * (Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1e6;
                let now = Instant::now();
                Ok(Opened::Stream(StreamSession {
                    feeds,
                    interval: self.settings.min_interval,
                    keepalive: self.settings.keepalive,
                    last_output: now,
                    ends_at: now + self.settings.max_lifetime.mul_f64(jitter),
                    shutdown: self.shutdown.subscribe(),
                    _permit: permit,
                }))
            }
        }
    }

    /// A place for a stream of `client` within the caps: 429 past the client's, 503 past the
    /// process's.
    fn admit(self: &Arc<Self>, client: IpAddr) -> Result<StreamPermit, ServiceError> {
        let refused = |reason: &'static str| {
            metrics::counter!("nearbytix_availability_rejected_total", "reason" => reason)
                .increment(1);
        };
        let mut streams = self.lock_streams();
        let of_client = streams.by_client.get(&client).copied().unwrap_or(0);
        if of_client >= self.settings.streams_per_client {
            refused("client_cap");
            return Err(ServiceError::RateLimited {
                retry_after: RETRY_AFTER,
            });
        }
        if streams.total >= self.settings.streams_max {
            refused("process_cap");
            return Err(ServiceError::Overloaded {
                retry_after: RETRY_AFTER,
            });
        }
        streams.total += 1;
        *streams.by_client.entry(client).or_default() += 1;
        metrics::gauge!("nearbytix_availability_streams").set(streams.total as f64);
        Ok(StreamPermit {
            availability: Arc::clone(self),
            client,
        })
    }

    /// A feed of the event's readings, its watch started if it had none.
    fn subscribe(self: &Arc<Self>, event_id: Uuid) -> EventFeed {
        let mut watches = self.lock_watches();
        let watch = watches.entry(event_id).or_insert_with(|| {
            let watch = Arc::new(Watch {
                event_id,
                touched: AtomicU64::new(0),
                wake: Notify::new(),
                opening: Notify::new(),
                latest: watch::Sender::new(None),
            });
            tokio::spawn(Arc::clone(self).run_watch(Arc::clone(&watch)));
            watch
        });
        let feed = EventFeed {
            latest: watch.latest.subscribe(),
            watch: Arc::clone(watch),
            last_version: None,
            last_sent: None,
            done: false,
        };
        metrics::gauge!("nearbytix_availability_watched_events").set(watches.len() as f64);
        feed
    }

    /// A watch's reads: one at once, then one after each wake, at most one per interval,
    /// until its last stream is gone.
    async fn run_watch(self: Arc<Self>, watch: Arc<Watch>) {
        let mut failures: u32 = 0;
        loop {
            let started = Instant::now();
            let touched_before = watch.touched.load(Ordering::SeqCst);
            metrics::counter!("nearbytix_availability_reads_total").increment(1);
            match self.store.event_availability(watch.event_id).await {
                Ok(found) => {
                    let now = (self.clock)();
                    let shown = found.map(|found| {
                        Arc::new(Shown {
                            snapshot: found.snapshot(now, self.settings.few_left_percent),
                            framed: Default::default(),
                        })
                    });
                    watch.latest.send_replace(Some(Arc::new(Reading {
                        touched_before,
                        shown,
                    })));
                    failures = 0;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(
                            event_id = %watch.event_id,
                            error = format!("{error:#}"),
                            "availability read failed"
                        );
                    }
                    failures = failures.saturating_add(1);
                }
            }
            let next = if failures == 0 {
                started + self.settings.min_interval
            } else {
                started + (self.settings.min_interval * failures).min(MAX_BACKOFF)
            };
            // Wait for a reason to read (none needed after a failure), then for the interval,
            // unless a stream opening asked.
            let mut opening = false;
            loop {
                tokio::select! {
                    () = watch.wake.notified(), if failures == 0 => break,
                    () = watch.opening.notified() => {
                        opening = true;
                        break;
                    }
                    () = tokio::time::sleep_until(next), if failures > 0 => break,
                    () = watch.latest.closed() => {
                        if self.retire(&watch) {
                            return;
                        }
                    }
                }
            }
            if opening {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                // A stream opening on a stale reading does not wait out the interval.
                () = watch.opening.notified() => {}
                () = watch.latest.closed() => {
                    if self.retire(&watch) {
                        return;
                    }
                }
            }
        }
    }

    /// Forgets `watch` if no stream follows it any more (checked under the lock streams
    /// subscribe under); whether it did.
    fn retire(&self, watch: &Arc<Watch>) -> bool {
        let mut watches = self.lock_watches();
        if watch.latest.receiver_count() > 0 {
            return false;
        }
        if watches
            .get(&watch.event_id)
            .is_some_and(|current| Arc::ptr_eq(current, watch))
        {
            watches.remove(&watch.event_id);
        }
        metrics::gauge!("nearbytix_availability_watched_events").set(watches.len() as f64);
        true
    }

    fn wake(&self, event_id: Uuid) {
        self.wake_each(&[event_id]);
    }

    fn wake_each(&self, event_ids: &[Uuid]) {
        let watches = self.lock_watches();
        for watch in event_ids.iter().filter_map(|id| watches.get(id)) {
            watch.wake.notify_one();
        }
    }

    fn wake_all(&self) {
        for watch in self.lock_watches().values() {
            watch.wake.notify_one();
        }
    }

    fn lock_watches(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Watch>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, OpenStreams> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open stream's place in the caps, given back when the stream is dropped (its client
/// gone, its end reached).
struct StreamPermit {
    availability: Arc<Availability>,
    client: IpAddr,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self.availability.lock_streams();
        streams.total = streams.total.saturating_sub(1);
        if let Some(count) = streams.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                streams.by_client.remove(&self.client);
            }
        }
        metrics::gauge!("nearbytix_availability_streams").set(streams.total as f64);
    }
}

/// One event as one stream follows it.
struct EventFeed {
    watch: Arc<Watch>,
    latest: watch::Receiver<Option<Arc<Reading>>>,
    /// The version of the last snapshot sent.
    last_version: Option<i64>,
    last_sent: Option<Instant>,
    /// Gone or closed, and said so: the stream drops it.
    done: bool,
}

impl EventFeed {
    /// The client already has the current version: the first message is skipped.
    fn skip_if_seen(&mut self, seen: &str) {
        let current = self
            .latest
            .borrow()
            .as_ref()
            .and_then(|reading| reading.snapshot().map(|snapshot| snapshot.version));
        if current.is_some() && seen.trim().parse::<i64>().ok() == current {
            self.last_version = current;
        }
    }

    /// Whether this feed has sent (or skipped) its first message.
    fn started(&self) -> bool {
        self.done || self.last_version.is_some()
    }

    /// What to send now, or when to look again (`None`: when the watch publishes).
    fn due(&mut self, now: Instant, interval: Duration) -> Result<StreamItem, Option<Instant>> {
        let Some(reading) = self.latest.borrow_and_update().clone() else {
            return Err(None);
        };
        let Some(shown) = reading.shown.clone() else {
            self.done = true;
            return Ok(StreamItem::Gone(self.watch.event_id));
        };
        let snapshot = &shown.snapshot;
        if self
            .last_version
            .is_some_and(|sent| snapshot.version <= sent)
        {
            return Err(None);
        }
        if let Some(at) = self.last_sent.map(|sent| sent + interval)
            && at > now
        {
            return Err(Some(at));
        }
        self.last_version = Some(snapshot.version);
        self.last_sent = Some(now);
        self.done = snapshot.is_closed();
        Ok(StreamItem::Availability(shown))
    }
}

/// An open stream: what it sends, when. Dropping it closes it.
pub struct StreamSession {
    feeds: Vec<EventFeed>,
    interval: Duration,
    keepalive: Duration,
    last_output: Instant,
    ends_at: Instant,
    shutdown: watch::Receiver<bool>,
    _permit: StreamPermit,
}

impl StreamSession {
    /// The next thing to send; `None` once the stream is over (every event gone or closed,
    /// its lifetime reached, or the server shutting down).
    pub async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let now = Instant::now();
            if now >= self.ends_at || self.feeds.iter().all(|feed| feed.done) {
                return None;
            }
            let mut wake_at = (self.last_output + self.keepalive).min(self.ends_at);
            for feed in self.feeds.iter_mut().filter(|feed| !feed.done) {
                let first = !feed.started();
                match feed.due(now, self.interval) {
                    Ok(item) => {
                        self.last_output = now;
                        let event = match item {
                            StreamItem::Gone(_) => "gone",
                            _ => "availability",
                        };
                        metrics::counter!("nearbytix_availability_messages_total", "event" => event)
                            .increment(1);
                        return Some(item);
                    }
                    Err(Some(at)) => wake_at = wake_at.min(at),
                    // The first messages go in the order the events were listed.
                    Err(None) if first => break,
                    Err(None) => {}
                }
            }
            if now >= self.last_output + self.keepalive {
                self.last_output = now;
                return Some(StreamItem::KeepAlive);
            }
            let published = select_all(
                self.feeds
                    .iter_mut()
                    .filter(|feed| !feed.done)
                    .map(|feed| Box::pin(feed.latest.changed()) as Pin<Box<_>>),
            );
            tokio::select! {
                _ = published => {}
                () = tokio::time::sleep_until(wake_at) => {}
                _ = self.shutdown.changed() => {}
            }
        }
    }
}
