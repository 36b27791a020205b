//! The generic sync machinery, written once and driven by a small trait per domain:
//! the migration engine with its work ledger (`migration`), and the services that host it.
//!
//! A domain plugs in by implementing [`migration::MigrationDomain`]; it never copies the
//! engine, the ledger, the history API or the dead-letter handling.

pub mod migration;
