//! The NOMIS schema: portable SeaORM migrations and the entities over them.
//!
//! Table and column names follow NOMIS (`OFFENDERS`, `OFFENDER_BOOKINGS.OFFENDER_BOOK_ID`,
//! `OFFENDER_NA_DETAILS`, …, lower-cased) so that the reference notes read straight onto
//! the code. Every row carries the NOMIS audit columns (`create_datetime`,
//! `create_user_id`, `modify_datetime`, `modify_user_id`, `audit_module_name`), written by
//! the application in UTC.
//!
//! A later domain (adjudications, incidents, movements) adds its own
//! migration file here and appends it to [`Migrator::migrations`]; migrations already
//! shipped are never edited.

use sea_orm_migration::{prelude::*, schema::*};

pub mod entities;
mod m0001_core;
mod m0002_non_associations;
mod m0003_agency_switches;

/// The NOMIS database's migrations, applied at start-up with `db.migrate::<Migrator>()`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            // The outbox comes first: every write in this service raises events through it.
            tandem_bus::outbox::migration(),
            Box::new(m0001_core::Migration),
            Box::new(m0002_non_associations::Migration),
            Box::new(m0003_agency_switches::Migration),
        ]
    }
}

/// The five audit columns every NOMIS table carries.
pub(crate) fn audit_columns(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(timestamp_with_time_zone(AuditCol::CreateDatetime))
        .col(string_len(AuditCol::CreateUserId, 40))
        .col(timestamp_with_time_zone(AuditCol::ModifyDatetime))
        .col(string_len(AuditCol::ModifyUserId, 40))
        .col(string_len(AuditCol::AuditModuleName, 30))
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum AuditCol {
    CreateDatetime,
    CreateUserId,
    ModifyDatetime,
    ModifyUserId,
    AuditModuleName,
}
