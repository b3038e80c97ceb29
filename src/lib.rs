//! NearbyTix: find events near you and buy tickets without ever being oversold.
//!
//! Data flows one way: HTTP handler ([`api`]) → domain service ([`service`]) → [`store`] → SQL.
//! [`domain`] holds the types and rules and does no I/O.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod expiry;
pub mod healthcheck;
pub mod service;
pub mod store;
pub mod telemetry;
