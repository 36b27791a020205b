//! The NOMIS Prisoner API through HTTP, on SQLite and PostgreSQL.

mod agency_switches;
mod auth;
mod non_associations;
mod prisoners;
mod seed;
mod support;
