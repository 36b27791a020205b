//! Integration tests through the router, on SQLite and PostgreSQL: one binary.

mod directory;
mod dps;
mod nomis;
mod schema;
mod support;
mod sync_adapter;
