//! The process's one listening connection: what other processes (and this one) announce
//! through PostgreSQL's NOTIFY reaches the in-memory views that follow the database.
//!
//! - [`sold_out::CHANNEL`] names an event whose sale changed in a way the sold-out memory
//!   cannot foresee (a seat given back, a rule changed): the memory forgets it.
//! - [`EVENTS_CHANNEL`] says that events changed in a way search can see: readers of the event
//!   change log are woken ([`crate::store::Infrastructure::change_announcements`]).
//!
//! - [`AVAILABILITY_CHANNEL`] names an event whose availability version went up: its
//!   availability streams re-read it ([`crate::store::Infrastructure::availability_news`]).
//!
//! A notification is only a prompt. The change log is complete without it, so a lost
//! connection costs promptness, not changes: readers are woken again once it is back, and poll
//! meanwhile.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};

use super::sold_out::{self, SoldOut};
use crate::store::AvailabilityNews;

/// Announces changes to events, named in migration `0006` too.
pub(super) const EVENTS_CHANNEL: &str = "nearbytix_events";
/// Announces a raised availability version, named in migration `0021` too.
const AVAILABILITY_CHANNEL: &str = "nearbytix_availability";
/// Availability announcements kept for a slow reader; one that falls further behind is told
/// that it missed some.
pub(super) const AVAILABILITY_NEWS_KEPT: usize = 4096;
/// Pause before listening again after the listener's connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Where notifications go.
#[derive(Clone)]
pub(super) struct Relay {
    pub sold_out: Arc<SoldOut>,
    pub events_changed: Arc<watch::Sender<()>>,
    pub availability_news: broadcast::Sender<AvailabilityNews>,
}

impl Relay {
    /// What was remembered may be untrue after notifications were missed.
    fn resubscribed(&self) {
        self.sold_out.set_listening(true);
        self.events_changed.send_replace(());
        // Nobody listening yet is no error.
        let _ = self.availability_news.send(AvailabilityNews::Missed);
    }
}

/// Listens through `pool` (a pool of its own: the connection is held for good) until the pool
/// is closed. The first connection is made before this returns, so sell-outs are remembered
/// from the first order on; after a failure it is made again.
pub(super) async fn listen(pool: PgPool, relay: Relay) -> tokio::task::JoinHandle<()> {
    let first = subscribe(&pool).await;
    tokio::spawn(async move {
        let mut subscribed = first;
        while !pool.is_closed() {
            if let Some(listener) = subscribed {
                forward(listener, &relay).await;
            }
            relay.sold_out.set_listening(false);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            subscribed = subscribe(&pool).await;
        }
    })
}

async fn subscribe(pool: &PgPool) -> Option<PgListener> {
    let subscribed = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([sold_out::CHANNEL, EVENTS_CHANNEL, AVAILABILITY_CHANNEL])
            .await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match subscribed.await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "could not listen for notifications");
            None
        }
    }
}

/// Relays each notification, until the connection fails for good.
async fn forward(mut listener: PgListener, relay: &Relay) {
    relay.resubscribed();
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == sold_out::CHANNEL => {
                // An id that does not parse forgets every event.
                relay.sold_out.forget(notification.payload().parse().ok());
            }
            Ok(Some(notification)) if notification.channel() == AVAILABILITY_CHANNEL => {
                let news = notification
                    .payload()
                    .parse()
                    .map_or(AvailabilityNews::Missed, AvailabilityNews::Changed);
                let _ = relay.availability_news.send(news);
            }
            Ok(Some(_)) => {
                relay.events_changed.send_replace(());
            }
            // The connection was lost (and is back): notifications were missed.
            Ok(None) => relay.resubscribed(),
            // The store is closing.
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::warn!(%error, "lost the notifications connection");
                return;
            }
        }
    }
}
