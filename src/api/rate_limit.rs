//! Abuse limits: token buckets kept in this process (N processes allow up to N times the
//! quota). Login and registration count per client address, per e-mail *and* address, and per
//! e-mail across addresses (a higher cap), so failures from someone else's address cannot lock
//! an account's owner out. A user's reservations count the tickets they ask for, and a user's
//! event writes (creations, changes, tier changes) count per request.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::error::ApiError;
use crate::service::ServiceError;

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
        self.take_n(key, NonZeroU32::MIN)
    }

    /// Takes `n` tokens for `key` at once; `Some(wait)` when there are not as many (a minute
    /// when `n` exceeds what a minute ever holds).
    fn take_n(&self, key: &K, n: NonZeroU32) -> Option<Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let now = DefaultClock::default().now();
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => None,
            Ok(Err(not_until)) => Some(not_until.wait_time_from(now)),
            Err(_) => Some(Duration::from_secs(60)),
        }
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

/// What one user may do per minute: tickets reserved, event writes.
pub struct UserRateLimits {
    tickets: Buckets<Uuid>,
    event_writes: Buckets<Uuid>,
    payments: Buckets<Uuid>,
    scans: Buckets<Uuid>,
}

/// Per-minute quotas of [`UserRateLimits`].
#[derive(Debug, Clone, Copy)]
pub struct UserQuotas {
    pub tickets: NonZeroU32,
    pub event_writes: NonZeroU32,
    pub payments: NonZeroU32,
    /// Redeem and upload requests per credential (a user or a scanner token).
    pub scans: NonZeroU32,
}

impl UserRateLimits {
    pub fn new(quotas: UserQuotas) -> Self {
        Self {
            tickets: Buckets::per_minute(quotas.tickets),
            event_writes: Buckets::per_minute(quotas.event_writes),
            payments: Buckets::per_minute(quotas.payments),
            scans: Buckets::per_minute(quotas.scans),
        }
    }

    /// Takes `tickets` (at least one: a request that asks for none still costs one) of the
    /// user's reservation quota, or answers 429. Counting tickets, not requests, bounds what one
    /// account can take of a sale without a per-person cap.
    pub fn reserve(&self, user_id: Uuid, tickets: u32) -> Result<(), ApiError> {
        let tickets = NonZeroU32::new(tickets).unwrap_or(NonZeroU32::MIN);
        too_many(self.tickets.take_n(&user_id, tickets))
    }

    /// Takes one event write (a creation, a change, a tier change), or answers 429.
    pub fn write_event(&self, user_id: Uuid) -> Result<(), ApiError> {
        too_many(self.event_writes.take(&user_id))
    }

    /// Takes one scan request (a redeem or an upload) of a credential, or answers 429.
    pub fn scan(&self, credential: Uuid) -> Result<(), ApiError> {
        too_many(self.scans.take(&credential))
    }

    /// Takes one pay (of an order or a ticket), or refuses it as rate-limited (429): each may
    /// call the payment provider. Taken inside the write, so a replay costs nothing.
    pub fn pay(&self, user_id: Uuid) -> Result<(), ServiceError> {
        match self.payments.take(&user_id) {
            None => Ok(()),
            Some(wait) => Err(ServiceError::RateLimited {
                retry_after: wait.max(Duration::from_secs(1)),
            }),
        }
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
    fn users_have_their_own_buckets_and_reservations_count_tickets() {
        let quota = |n| NonZeroU32::new(n).unwrap();
        let limits = UserRateLimits::new(UserQuotas {
            tickets: quota(10),
            event_writes: quota(1),
            payments: quota(1),
            scans: quota(1),
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(limits.reserve(a, 8).is_ok());
        assert!(limits.reserve(a, 3).is_err(), "2 tickets left");
        assert!(limits.reserve(a, 2).is_ok());
        assert!(limits.reserve(b, 10).is_ok());
        assert!(limits.reserve(b, 11).is_err(), "more than a minute holds");
        assert!(limits.write_event(a).is_ok());
        assert!(limits.write_event(a).is_err());
        assert!(limits.write_event(b).is_ok());
        assert!(limits.pay(a).is_ok());
        assert!(limits.pay(a).is_err());
        assert!(limits.pay(b).is_ok());
    }
}
