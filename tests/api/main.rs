//! Integration tests: the real app over HTTP, on SQLite and (with TEST_DATABASE_URL) on
//! PostgreSQL. One test binary keeps build times down.

mod helpers;

mod accounts;
mod availability;
mod checkin;
mod events;
mod hardening;
mod live_page;
mod migrations;
mod orders;
mod payments;
mod platform;
mod process_support;
mod processes;
mod scanning;
mod search;
mod store_conformance;
mod tickets;
mod waitlist;
