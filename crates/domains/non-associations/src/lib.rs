//! The non-associations domain: the DPS service (hmpps-non-associations-api's counterpart,
//! mounted at `/non-associations-api`), its NOMIS ⇄ DPS code mappings, and the NOMIS
//! sync/migrate contract of seed 002.
//!
//! A non-association records that two prisoners must be kept apart. At most one is open
//! per unordered pair; closed ones are kept as history. Every change publishes a domain
//! event through the outbox in the same transaction.
//!
//! Composition:
//! ```text
//! let db = storage.db(NAME).await?;
//! db.migrate::<Migrator>().await?;
//! let nomis = peers.client(services::NOMIS_PRISONER_API, tokens)?;
//! let svc = service(db, Arc::new(NomisPrisonerDirectory::new(nomis)));
//! ```

pub mod api;
pub mod entity;
pub mod error;
pub mod events;
pub mod migration;
pub mod model;
pub mod nomis_codes;
pub mod prisoners;
pub mod store;
pub mod sync;
pub mod sync_adapter;

use std::sync::Arc;

use tandem_platform::db::Db;
use tandem_platform::http::{DbHealth, Service};

pub use error::NaError;
pub use migration::Migrator;
pub use prisoners::{InMemoryPrisoners, NomisPrisonerDirectory, Prisoner, PrisonerDirectory};
pub use store::Store;

/// The service's URL prefix (without the slash) and database name.
pub const NAME: &str = tandem_platform::config::services::NON_ASSOCIATIONS_API;

/// The service, ready to mount. `db` must have been migrated with [`Migrator`].
pub fn service(db: Db, prisoners: Arc<dyn PrisonerDirectory>) -> Service {
    let state = api::AppState {
        store: Store::new(db.clone()),
        prisoners,
    };
    Service::new(NAME, "Non-associations API", api::router(state))
        .with_health(Arc::new(DbHealth(db)))
}
