//! The generic sync machinery, written once and driven by a small trait per domain:
//! the migration engine with its work ledger (`migration`), what every sync listener
//! shares (`listeners`: echo suppression, feature switches), and the two services that host
//! them (`services`: `prisoner-from-nomis`, `prisoner-to-nomis`).
//!
//! A domain plugs in by implementing [`migration::MigrationDomain`] and supplying
//! [`listeners::Listener`]s; it never copies the engine, the ledger, the history API, the
//! dead-letter handling or the echo rules.

pub mod listeners;
pub mod migration;
pub mod services;
