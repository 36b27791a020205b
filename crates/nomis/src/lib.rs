//! The legacy system of record: the NOMIS database and the NOMIS Prisoner API emulator.
//!
//! - [`schema`]: NOMIS tables as portable SeaORM migrations ([`Migrator`]) and entities.
//! - [`prisoners`]: offenders and bookings (`/prisoners…`).
//! - [`non_associations`]: the two-row reciprocal NA storage and its endpoints, raising
//!   `NON_ASSOCIATION_DETAIL-*` offender events through the outbox.
//! - [`agency_switches`]: per-prison switch-over (`/agency-switches…`): where DPS is master
//!   for a service, and the 409 that keeps NOMIS users' edits out of such prisons.
//! - [`audit`]: the audit module every write is stamped with (`X-Audit-Module`).
//! - [`seed`]: a deterministic synthetic estate written straight into the tables.
//!
//! Later domains (adjudications, incidents, movements) are sibling modules:
//! a migration file under `schema/`, a module with its store and routes, and a line in
//! [`service`].

pub mod agency_switches;
pub mod audit;
pub mod error;
pub mod keys;
pub mod non_associations;
pub mod prisoners;
pub mod reference;
pub mod schema;
pub mod seed;

use std::sync::Arc;

use tandem_platform::{
    db::Db,
    http::{DbHealth, Service},
};
use utoipa_axum::router::OpenApiRouter;

pub use error::NomisError;
pub use schema::Migrator;
pub use seed::{SeedOptions, SeedSummary, seed};

/// The service's URL prefix (without the slash).
pub const NAME: &str = tandem_platform::config::services::NOMIS_PRISONER_API;

/// The one role the NOMIS Prisoner API's sync endpoints require.
pub const SYNC_ROLE: &str = "ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW";

tandem_auth::role!(pub NomisSyncRead, ["ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW"]);
tandem_auth::role!(pub NomisSyncWrite, ["ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW"], write);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: Db,
}

/// The NOMIS Prisoner API, ready to mount at `/nomis-prisoner-api`. The database must
/// already be migrated (`db.migrate::<Migrator>()`).
pub fn service(db: Db) -> Service {
    let state = AppState { db: db.clone() };
    let router = OpenApiRouter::new()
        .merge(prisoners::routes())
        .merge(non_associations::routes())
        .merge(agency_switches::routes())
        .with_state(state);
    Service::new(NAME, "NOMIS Prisoner API (tandem emulator)", router)
        .with_health(Arc::new(DbHealth(db)))
}
