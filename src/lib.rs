//! NearbyTix: find events near you and buy tickets without ever being oversold.
//!
//! Dependencies point one way: [`app`] (the composition root) → [`api`] (HTTP) → [`service`]
//! (use cases) → [`store`] (SQL) → [`domain`] (types and rules, no I/O). [`auth`] (passwords,
//! tokens), [`config`] and [`telemetry`] are used from above and import nothing from store or
//! service; [`expiry`] (the sweeper) runs beside the server over the store.

pub mod api;
pub mod app;
pub mod auth;
pub mod checkin;
pub mod cli;
pub mod config;
pub mod domain;
pub mod expiry;
pub mod healthcheck;
pub mod listener;
pub mod payments;
pub mod service;
pub mod store;
pub mod telemetry;
