//! The composition root: opens the store, builds the services and the HTTP state from the
//! settings, and runs the server or the worker with the expiry sweeper beside them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api::rate_limit::{AuthQuotas, AuthRateLimits, UserQuotas, UserRateLimits};
use crate::api::{self, AppState};
use crate::auth::password::Hasher;
use crate::auth::{TokenKeys, resolve_jwt_secret};
use crate::checkin::keys::TicketKeys;
use crate::config::Settings;
use crate::expiry::Sweeper;
use crate::listener::{LimitedListener, connections_that_fit};
use crate::service::{
    Accounts, Availability, Bulkhead, Checkin, Events, Health, Idempotency, Orders, Payments,
    ReadModel, Reconciler, Scanning, Search, Waitlist,
};
use crate::store::{self, DynStore, StoreOptions};
use crate::telemetry;

/// Pooled connections of a `nearbytix worker` (the sweeper needs one, plus one spare).
const WORKER_CONNECTIONS: u32 = 2;

/// Everything a server process runs, wired together.
pub struct App {
    pub settings: Arc<Settings>,
    pub store: DynStore,
    pub tokens: Arc<TokenKeys>,
    pub state: AppState,
    pub search_model: Arc<ReadModel>,
}

impl App {
    /// Opens (and migrates) the database and resolves the token secret.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let store = open_store(&settings, settings.database_max_connections).await?;
        Self::with_store(settings, store)
    }

    pub fn with_store(settings: Settings, store: DynStore) -> anyhow::Result<Self> {
        telemetry::init_metrics();
        let secret = resolve_jwt_secret(settings.jwt_secret_key.as_ref(), store.database_file())?;
        let tokens = Arc::new(TokenKeys::new(&secret, settings.token_lifetime_minutes)?);
        let ticket_keys = Arc::new(TicketKeys::resolve(
            settings.ticket_signing_keys.as_ref(),
            store.database_file(),
        )?);
        let hasher = Hasher::new(settings.password_hash_workers, settings.password_hash_queue);
        let expensive_reads = Arc::new(Bulkhead::new(
            settings.expensive_reads_max,
            settings.expensive_read_wait,
        ));
        let search_model = Arc::new(ReadModel::default());
        let payments = Arc::new(Payments::new(store.clone(), settings.payments.clone())?);
        let availability = Arc::new(Availability::new(
            store.clone(),
            settings.availability,
            chrono::Utc::now,
        ));
        let state = AppState {
            accounts: Arc::new(Accounts::new(store.clone(), tokens.clone(), hasher)),
            availability: availability.clone(),
            events: Arc::new(Events::new(
                store.clone(),
                chrono::Utc::now,
                expensive_reads.clone(),
                search_model.clone(),
                availability.clone(),
            )),
            orders: Arc::new(Orders::new(
                store.clone(),
                search_model.clone(),
                availability.clone(),
                payments.clone(),
                settings.ticket_hold,
                settings.max_tickets_per_order,
                expensive_reads.clone(),
            )),
            checkin: Arc::new(Checkin::new(
                store.clone(),
                ticket_keys.clone(),
                settings.checkin.reissues_per_day,
                settings.checkin.lists_per_event,
            )),
            scanning: Arc::new(Scanning::new(store.clone(), ticket_keys, settings.checkin)),
            waitlist: Arc::new(Waitlist::new(
                store.clone(),
                search_model.clone(),
                availability,
                settings.waitlist,
                settings.max_tickets_per_order,
            )),
            search: Arc::new(Search::new(
                store.clone(),
                search_model.clone(),
                settings.default_search_radius,
                expensive_reads,
            )),
            idempotency: Arc::new(Idempotency::new(
                store.clone(),
                settings.idempotency_keys_per_user,
                settings.request_timeout,
            )),
            payments,
            health: Arc::new(Health::new(store.clone())),
            auth_limits: Arc::new(AuthRateLimits::new(AuthQuotas {
                per_address: settings.auth_rate_limit_per_ip,
                per_email_and_address: settings.auth_rate_limit_per_email,
                per_email: settings.auth_rate_limit_per_email_total,
            })),
            user_limits: Arc::new(UserRateLimits::new(UserQuotas {
                tickets: settings.reservation_rate_limit_per_user,
                event_writes: settings.event_write_rate_limit_per_user,
                payments: settings.payment_rate_limit_per_user,
                scans: settings.checkin_scans_per_minute,
            })),
        };
        Ok(Self {
            settings: Arc::new(settings),
            store,
            tokens,
            state,
            search_model,
        })
    }

    pub fn router(&self) -> Router {
        api::router(self.state.clone(), &self.settings)
    }

    /// Serves HTTP on `listener` until `shutdown` resolves: then it stops accepting, finishes
    /// in-flight requests, stops the sweeper between batches and closes the pools.
    pub async fn serve(
        self,
        listener: TcpListener,
        run_sweeper: bool,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics = match self.settings.metrics_addr {
            Some(address) => Some(self.serve_metrics(address).await?),
            None => None,
        };
        // Searches are answered from memory from the first request on.
        let following = self.search_model.follow(self.store.clone());
        let availability = self.state.availability.clone();
        let availability_following = availability.follow(&self.search_model);
        self.search_model.first_load().await;
        let sweeper = run_sweeper.then(|| self.start_sweeper());
        let reconciler = run_sweeper
            .then(|| Reconciler::start(self.state.payments.clone()))
            .flatten();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let listener = LimitedListener::new(
            listener,
            connections_that_fit(self.settings.max_connections),
            self.settings.idle_connection_timeout,
        )
        .tap_io(|io| {
            // Small JSON answers: send them at once rather than wait to coalesce.
            let _ = io.tcp().set_nodelay(true);
        });
        // Open streams end at once: the server would otherwise wait for them.
        let shutdown = async move {
            shutdown.await;
            availability.shut_down();
        };
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed");
        if let Some(sweeper) = sweeper {
            sweeper.stop().await;
        }
        if let Some(reconciler) = reconciler {
            reconciler.stop().await;
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        drop(following);
        availability_following.abort();
        self.store.close().await;
        result
    }

    /// Serves `/metrics` on `address` until the returned task is aborted.
    async fn serve_metrics(
        &self,
        address: SocketAddr,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on METRICS_ADDR {address}"))?;
        tracing::info!("metrics on http://{address}/metrics");
        let router = api::metrics_router(self.state.clone());
        Ok(tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "metrics server failed");
            }
        }))
    }

    fn start_sweeper(&self) -> Sweeper {
        start_sweeper(&self.settings, self.store.clone())
    }
}

async fn open_store(settings: &Settings, max_connections: u32) -> anyhow::Result<DynStore> {
    let options = StoreOptions {
        url: settings.database_url.clone(),
        max_connections,
        acquire_timeout: settings.database_acquire_timeout,
    };
    store::connect(&options).await
}

fn start_sweeper(settings: &Settings, store: DynStore) -> Sweeper {
    Sweeper::start(store, settings.sweep_interval, settings.sweep_batch_size)
}

/// `nearbytix migrate`: applies the migrations and returns.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings, 1).await?;
    store.close().await;
    tracing::info!(backend = store.backend().as_str(), "migrations applied");
    Ok(())
}

/// `nearbytix worker`: only the expiry sweeper and the payment reconciler, until `shutdown`
/// resolves.
pub async fn work(
    settings: &Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = open_store(settings, WORKER_CONNECTIONS).await?;
    let sweeper = start_sweeper(settings, store.clone());
    let payments = Arc::new(Payments::new(store.clone(), settings.payments.clone())?);
    let reconciler = Reconciler::start(payments);
    shutdown.await;
    sweeper.stop().await;
    if let Some(reconciler) = reconciler {
        reconciler.stop().await;
    }
    store.close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}
