//! Use cases, between the HTTP handlers and the store. A service holds its dependencies
//! explicitly (the store, token keys, the clock, the hold length), speaks domain types and
//! answers with a [`ServiceError`]; it knows nothing of HTTP.

mod accounts;
mod availability;
mod bulkhead;
mod checkin;
mod error;
mod events;
mod health;
mod idempotency;
mod orders;
mod payments;
mod recent;
mod scanning;
mod search;
mod waitlist;

use chrono::{DateTime, Utc};

pub use accounts::Accounts;
pub use availability::{Availability, Framing, Opened, Shown, StreamItem, StreamSession};
pub use bulkhead::Bulkhead;
pub use checkin::{Checkin, IssuedCode};
pub use error::{Action, Resource, ServiceError};
pub use events::Events;
pub use health::Health;
pub use idempotency::{Idempotency, IdempotencyStart};
pub use orders::Orders;
pub use payments::{Payments, Reconciler, WebhookOutcome};
pub use scanning::{Bundle, SCANNER_TOKEN_PREFIX, Scanning, UploadOutcome, UploadedScan, cursor};
pub use search::{Followed, Following, ReadModel, Search, SearchResult};
pub use waitlist::Waitlist;

/// Where a service reads the time (tests may pin it).
pub type Clock = fn() -> DateTime<Utc>;
