//! The generic machinery every tandem service stands on: storage, HTTP conventions,
//! the event envelope, identifiers and service-to-service calls.
//!
//! Nothing in here knows about a domain (non-associations, adjudications, …): a domain
//! crate that needs something here and finds it missing adds the generic piece, never a
//! special case.

pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod serve;
pub mod time;

pub use error::{ApiError, ErrorResponse};
