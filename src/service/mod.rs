//! Domain services: one function per use case, between the handlers and the store.

pub mod accounts;
pub mod events;
pub mod tickets;
