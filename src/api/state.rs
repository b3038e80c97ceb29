//! What handlers receive: the services, each reachable on its own through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use super::rate_limit::{AuthRateLimits, UserRateLimits};
use crate::service::{
    Accounts, Availability, Checkin, Events, Health, Idempotency, Orders, Payments, Scanning,
    Search, Waitlist,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub accounts: Arc<Accounts>,
    pub availability: Arc<Availability>,
    pub events: Arc<Events>,
    pub orders: Arc<Orders>,
    pub payments: Arc<Payments>,
    pub checkin: Arc<Checkin>,
    pub scanning: Arc<Scanning>,
    pub waitlist: Arc<Waitlist>,
    pub search: Arc<Search>,
    pub idempotency: Arc<Idempotency>,
    pub health: Arc<Health>,
    pub auth_limits: Arc<AuthRateLimits>,
    pub user_limits: Arc<UserRateLimits>,
}
