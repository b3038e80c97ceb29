//! Payment providers: what the services need to take money through Stripe, kept apart from the
//! database (like [`crate::store`], used from the services).

pub mod signature;
pub mod stripe;
