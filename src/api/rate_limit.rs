//! Abuse limits: token buckets kept in this process (N processes allow up to N times the
//! quota). Login and registration count per client address, per e-mail *and* address, and per
//! e-mail across addresses (a higher cap), so failures from someone else's address cannot lock
//! an account's owner out. Reservation attempts count per user.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::error::ApiError;

/// Forget idle buckets every this many checks, so the maps cannot grow without bound.
const CLEANUP_EVERY: u64 = 4096;

/// One bucket per key, refilled to `per_minute` each minute (also the burst size).
struct Buckets<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token for `key`; `Some(wait)` when there is none.
    fn take(&self, key: &K) -> Option<Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let now = DefaultClock::default().now();
        self.limiter
            .check_key(key)
            .err()
            .map(|not_until| not_until.wait_time_from(now))
    }
}

fn too_many(wait: Option<Duration>) -> Result<(), ApiError> {
    match wait {
        None => Ok(()),
        Some(wait) => Err(ApiError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        }),
    }
}

pub struct AuthRateLimits {
    by_address: Buckets<IpAddr>,
    by_email_and_address: Buckets<(String, IpAddr)>,
    by_email: Buckets<String>,
}

/// Attempts per minute allowed by [`AuthRateLimits`].
#[derive(Debug, Clone, Copy)]
pub struct AuthQuotas {
    pub per_address: NonZeroU32,
    pub per_email_and_address: NonZeroU32,
    pub per_email: NonZeroU32,
}

impl AuthRateLimits {
    pub fn new(quotas: AuthQuotas) -> Self {
        Self {
            by_address: Buckets::per_minute(quotas.per_address),
            by_email_and_address: Buckets::per_minute(quotas.per_email_and_address),
            by_email: Buckets::per_minute(quotas.per_email),
        }
    }

    /// Takes one attempt from every bucket it touches, or answers 429 with the longest wait.
    pub fn check(&self, address: IpAddr, email: &str) -> Result<(), ApiError> {
        let email = email.trim().to_lowercase();
        let wait = [
            self.by_address.take(&address),
            self.by_email_and_address.take(&(email.clone(), address)),
            self.by_email.take(&email),
        ]
        .into_iter()
        .flatten()
        .max();
        if wait.is_some() {
            tracing::warn!(%address, "authentication rate limit reached");
        }
        too_many(wait)
    }
}

/// Reservation attempts per user.
pub struct UserRateLimit {
    by_user: Buckets<Uuid>,
}

impl UserRateLimit {
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            by_user: Buckets::per_minute(per_minute),
        }
    }

    pub fn check(&self, user_id: Uuid) -> Result<(), ApiError> {
        too_many(self.by_user.take(&user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32, per_email_and_address: u32, per_email: u32) -> AuthRateLimits {
        let quota = |n| NonZeroU32::new(n).unwrap();
        AuthRateLimits::new(AuthQuotas {
            per_address: quota(per_address),
            per_email_and_address: quota(per_email_and_address),
            per_email: quota(per_email),
        })
    }

    #[test]
    fn attempts_from_another_address_do_not_lock_the_owner_out() {
        let limits = limits(100, 2, 100);
        let (owner, attacker) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 9]));
        assert!(limits.check(attacker, "a@example.com").is_ok());
        assert!(limits.check(attacker, "A@Example.com ").is_ok());
        assert!(matches!(
            limits.check(attacker, "a@example.com"),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(limits.check(owner, "a@example.com").is_ok());
        assert!(limits.check(attacker, "b@example.com").is_ok());
    }

    #[test]
    fn one_email_has_a_cap_across_addresses() {
        let limits = limits(100, 100, 3);
        for last in 1..=3u8 {
            assert!(
                limits
                    .check(IpAddr::from([10, 0, 0, last]), "a@example.com")
                    .is_ok()
            );
        }
        assert!(
            limits
                .check(IpAddr::from([10, 0, 0, 4]), "a@example.com")
                .is_err()
        );
    }

    #[test]
    fn address_bucket_is_per_address() {
        let limits = limits(2, 100, 100);
        let first = IpAddr::from([10, 0, 0, 1]);
        assert!(limits.check(first, "a@example.com").is_ok());
        assert!(limits.check(first, "b@example.com").is_ok());
        assert!(limits.check(first, "c@example.com").is_err());
        let second = IpAddr::from([10, 0, 0, 2]);
        assert!(limits.check(second, "d@example.com").is_ok());
    }

    #[test]
    fn users_have_their_own_reservation_buckets() {
        let limit = UserRateLimit::new(NonZeroU32::new(1).unwrap());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(limit.check(a).is_ok());
        assert!(limit.check(a).is_err());
        assert!(limit.check(b).is_ok());
    }
}
