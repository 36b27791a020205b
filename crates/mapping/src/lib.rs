//! The NOMIS mapping service (`/nomis-mapping-api`): for each domain, which DPS record is
//! which NOMIS record, how the mapping came about (`MIGRATED`, `NOMIS_CREATED`,
//! `DPS_CREATED`) and, for migrated ones, which migration wrote it.
//!
//! The machinery is generic and lives once: a [`MappingKind`] describes a table (DPS key,
//! NOMIS key, JSON names), [`MappingStore`] implements create/look-up/page/latest/delete
//! and the duplicate semantics for any kind, and [`schema::CreateMappingTable`] builds its
//! migration. A domain adds a DTO implementing [`Mapping`], its `MappingKind`, thin routes,
//! and only the operations peculiar to it (non-associations: merge and booking-move
//! rewrites, re-sequencing).
//!
//! The HTTP API is the contract: the migration engine and the sync services call it
//! through `PeerClient`. [`MappingStore`] is public for in-process use and tests.

pub mod error;
pub mod http;
pub mod kind;
pub mod non_associations;
pub mod page;
pub mod schema;
pub mod store;

use std::sync::Arc;

use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tandem_platform::db::Db;
use tandem_platform::http::{DbHealth, Service};
use utoipa_axum::router::OpenApiRouter;

pub use error::{DUPLICATE_MAPPING, MappingError};
pub use kind::{ColType, Field, KeyValue, Mapping, MappingKind, MappingType};
pub use non_associations::NonAssociationMapping;
pub use page::{Page, PageParams, PageRequest};
pub use store::{Created, MappingStore, Record};

/// The service's URL prefix and database name.
pub const NAME: &str = tandem_platform::config::services::NOMIS_MAPPING_API;
pub const TITLE: &str = "NOMIS mapping API";

/// The mapping service's schema: one table per kind. The service raises no events, so it
/// has no outbox.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(schema::CreateMappingTable {
            name: "m0001_non_association_mapping",
            kind: &non_associations::KIND,
        })]
    }
}

/// The routes of every kind, sharing one store.
pub fn router() -> OpenApiRouter<MappingStore> {
    OpenApiRouter::new().merge(non_associations::routes::router())
}

/// The service, ready to mount at `/nomis-mapping-api`. `db` must be migrated with
/// [`Migrator`] first (`db.migrate::<Migrator>()`); the token validator comes from the
/// composition (`tandem_auth::validator_layer`).
pub fn service(db: Db) -> Service {
    let store = MappingStore::new(db.clone());
    Service::new(NAME, TITLE, router().with_state(store)).with_health(Arc::new(DbHealth(db)))
}
