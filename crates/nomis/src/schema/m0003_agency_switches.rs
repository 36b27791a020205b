//! Per-prison switch-over (reference migration-sync §3.4, domain-apis §4.7): the services
//! DPS can take over (`external_services`) and the prisons where it has
//! (`service_agency_switches`; agency `*ALL*` means every prison). No foreign key to
//! `agency_locations`: `*ALL*` is not an agency row here.

use sea_orm_migration::{prelude::*, schema::*};

use super::{AuditCol, audit_columns};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_nomis_agency_switches"
    }
}

#[derive(DeriveIden)]
enum ExternalServices {
    Table,
    ServiceCode,
    Description,
}

#[derive(DeriveIden)]
enum ServiceAgencySwitches {
    Table,
    ServiceCode,
    AgyLocId,
}

const SERVICES: &[(&str, &str)] = &[
    ("NON_ASSOCIATIONS", "Non-associations"),
    ("INCIDENTS", "Incidents"),
    ("ADJUDICATIONS", "Adjudications"),
    ("VISITS", "Visits"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ExternalServices as E;
        use ServiceAgencySwitches as S;
        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(E::Table)
                        .col(string_len(E::ServiceCode, 40).primary_key())
                        .col(string_len(E::Description, 240)),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(S::Table)
                        .col(string_len(S::ServiceCode, 40))
                        .col(string_len(S::AgyLocId, 10))
                        .primary_key(Index::create().col(S::ServiceCode).col(S::AgyLocId))
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_service_agency_switches_service")
                                .from(S::Table, S::ServiceCode)
                                .to(E::Table, E::ServiceCode),
                        ),
                )
                .to_owned(),
            )
            .await?;

        let now = chrono::Utc::now();
        let mut services = Query::insert();
        services.into_table(E::Table).columns([
            E::ServiceCode.into_iden(),
            E::Description.into_iden(),
            AuditCol::CreateDatetime.into_iden(),
            AuditCol::CreateUserId.into_iden(),
            AuditCol::ModifyDatetime.into_iden(),
            AuditCol::ModifyUserId.into_iden(),
            AuditCol::AuditModuleName.into_iden(),
        ]);
        for (code, description) in SERVICES {
            services.values_panic([
                (*code).into(),
                (*description).into(),
                now.into(),
                "OMS_OWNER".into(),
                now.into(),
                "OMS_OWNER".into(),
                "TANDEM_MIGRATION".into(),
            ]);
        }
        manager.execute(services).await?;
        Ok(())
    }
}
