//! A bulkhead for expensive reads (distance searches, listings): at most a fixed number run at
//! once, so a storm of them cannot take every database connection from reservations, event
//! reads and health checks. A read that cannot start within a short wait is refused as
//! overloaded (the client is told when to retry) instead of queueing without bound.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::ServiceError;

pub struct Bulkhead {
    permits: Semaphore,
    wait: Duration,
}

impl Bulkhead {
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            wait,
        }
    }

    /// A place among the running reads, held until the permit is dropped.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, ServiceError> {
        match tokio::time::timeout(self.wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("nearbytix_load_shed_total").increment(1);
                Err(ServiceError::Overloaded {
                    retry_after: Duration::from_secs(1),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_bulkhead_refuses_after_its_wait() {
        let bulkhead = Bulkhead::new(1, Duration::from_millis(20));
        let held = bulkhead.enter().await.unwrap();
        assert!(matches!(
            bulkhead.enter().await,
            Err(ServiceError::Overloaded { .. })
        ));
        drop(held);
        assert!(bulkhead.enter().await.is_ok());
    }
}
