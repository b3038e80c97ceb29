//! Abuse limits for login and registration: a token bucket per client address and one per
//! email. The buckets live in this process, so N processes allow up to N times the quota.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// Forget idle buckets every this many checks, so the maps cannot grow without bound.
const CLEANUP_EVERY: u64 = 4096;

pub struct AuthRateLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_email: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl AuthRateLimits {
    /// `per_address` and `per_email` attempts per minute, each also the burst size.
    pub fn new(per_address: NonZeroU32, per_email: NonZeroU32) -> Self {
        Self {
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            by_email: RateLimiter::keyed(Quota::per_minute(per_email)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one attempt from both buckets, or answers 429 with the wait in `Retry-After`.
    pub fn check(&self, address: IpAddr, email: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.by_address.retain_recent();
            self.by_email.retain_recent();
        }
        let now = DefaultClock::default().now();
        let address_wait = self
            .by_address
            .check_key(&address)
            .err()
            .map(|not_until| not_until.wait_time_from(now));
        let email_wait = self
            .by_email
            .check_key(&email.trim().to_lowercase())
            .err()
            .map(|not_until| not_until.wait_time_from(now));
        match address_wait.max(email_wait) {
            None => Ok(()),
            Some(wait) => {
                tracing::warn!(%address, "authentication rate limit reached");
                Err(ApiError::TooManyRequests {
                    retry_after: wait.max(Duration::from_secs(1)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32, per_email: u32) -> AuthRateLimits {
        AuthRateLimits::new(
            NonZeroU32::new(per_address).unwrap(),
            NonZeroU32::new(per_email).unwrap(),
        )
    }

    #[test]
    fn email_bucket_is_per_email_and_ignores_case() {
        let limits = limits(100, 2);
        let address = IpAddr::from([10, 0, 0, 1]);
        assert!(limits.check(address, "a@example.com").is_ok());
        assert!(limits.check(address, "A@Example.com ").is_ok());
        assert!(matches!(
            limits.check(address, "a@example.com"),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(limits.check(address, "b@example.com").is_ok());
    }

    #[test]
    fn address_bucket_is_per_address() {
        let limits = limits(2, 100);
        let first = IpAddr::from([10, 0, 0, 1]);
        assert!(limits.check(first, "a@example.com").is_ok());
        assert!(limits.check(first, "b@example.com").is_ok());
        assert!(limits.check(first, "c@example.com").is_err());
        assert!(
            limits
                .check(IpAddr::from([10, 0, 0, 2]), "d@example.com")
                .is_ok()
        );
    }
}
