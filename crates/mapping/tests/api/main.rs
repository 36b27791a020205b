//! The mapping service through its HTTP API, on SQLite and PostgreSQL.

mod non_associations;
mod service;
mod store;
mod support;
