//! Whether the database answers, and how the connection pool is used.

use std::time::Duration;

use crate::store::{Backend, DynStore, PoolStats};

/// A health check must answer promptly even when the database hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Health {
    store: DynStore,
}

impl Health {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.store.pool_stats()
    }

    /// Whether the database answers a real round trip, and whether it takes a write, each
    /// within [`PING_TIMEOUT`].
    pub async fn database(&self) -> DatabaseState {
        let answers = succeeds("read", self.store.ping()).await;
        let writable = answers && succeeds("write", self.store.probe_write()).await;
        DatabaseState { answers, writable }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseState {
    pub answers: bool,
    pub writable: bool,
}

async fn succeeds(
    what: &'static str,
    check: impl std::future::Future<Output = Result<(), crate::store::StoreError>>,
) -> bool {
    match tokio::time::timeout(PING_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(
                error = format!("{error:#}"),
                what,
                "health check: database error"
            );
            false
        }
        Err(_) => {
            tracing::warn!(what, "health check: database did not answer in time");
            false
        }
    }
}
