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

    /// Whether a real round trip to the database succeeds within [`PING_TIMEOUT`].
    pub async fn database_answers(&self) -> bool {
        match tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "health check: database error");
                false
            }
            Err(_) => {
                tracing::warn!("health check: database did not answer in time");
                false
            }
        }
    }
}
