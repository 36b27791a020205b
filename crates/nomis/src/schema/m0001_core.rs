//! Offenders, their bookings, agency locations (prisons), reference codes and the id
//! sequences NOMIS draws its keys from.

use sea_orm_migration::{prelude::*, schema::*};

use super::{AuditCol, audit_columns};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_nomis_core"
    }
}

#[derive(DeriveIden)]
enum Offenders {
    Table,
    OffenderId,
    OffenderNo,
    FirstName,
    LastName,
    BirthDate,
}

#[derive(DeriveIden)]
enum AgencyLocations {
    Table,
    AgyLocId,
    Description,
    AgencyLocationType,
    ActiveFlag,
}

#[derive(DeriveIden)]
enum OffenderBookings {
    Table,
    OffenderBookId,
    OffenderId,
    BookingSeq,
    ActiveFlag,
    AgyLocId,
    BookingBeginDate,
    BookingEndDate,
    LivingUnitDescription,
}

#[derive(DeriveIden)]
enum ReferenceCodes {
    Table,
    Domain,
    Code,
    Description,
    ActiveFlag,
    ListSeq,
}

#[derive(DeriveIden)]
enum IdSequences {
    Table,
    Name,
    NextValue,
}

/// Prisons (type `INST`) and the two pseudo-agencies a released or moving prisoner's
/// booking points at.
const AGENCIES: &[(&str, &str, &str)] = &[
    ("MDI", "Moorland (HMP & YOI)", "INST"),
    ("LEI", "Leeds (HMP)", "INST"),
    ("BXI", "Brixton (HMP)", "INST"),
    ("WSI", "Wormwood Scrubs (HMP)", "INST"),
    ("BMI", "Birmingham (HMP)", "INST"),
    ("PVI", "Pentonville (HMP)", "INST"),
    ("OUT", "Outside", "OUT"),
    ("TRN", "Transfer", "TRN"),
];

/// Where the ids start: NOMIS ids are large, and realistic-looking ids make logs readable.
const SEQUENCES: &[(&str, i64)] = &[("OFFENDER_ID", 2_500_001), ("OFFENDER_BOOK_ID", 1_200_001)];

const MODULE: &str = "TANDEM_MIGRATION";
const USER: &str = "OMS_OWNER";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(Offenders::Table)
                        .col(big_integer(Offenders::OffenderId).primary_key())
                        .col(string_len_uniq(Offenders::OffenderNo, 10))
                        .col(string_len(Offenders::FirstName, 35))
                        .col(string_len(Offenders::LastName, 35))
                        .col(date(Offenders::BirthDate)),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(AgencyLocations::Table)
                        .col(string_len(AgencyLocations::AgyLocId, 6).primary_key())
                        .col(string_len(AgencyLocations::Description, 40))
                        .col(string_len(AgencyLocations::AgencyLocationType, 12))
                        .col(string_len(AgencyLocations::ActiveFlag, 1)),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(OffenderBookings::Table)
                        .col(big_integer(OffenderBookings::OffenderBookId).primary_key())
                        .col(big_integer(OffenderBookings::OffenderId))
                        .col(integer(OffenderBookings::BookingSeq))
                        .col(string_len(OffenderBookings::ActiveFlag, 1))
                        .col(string_len(OffenderBookings::AgyLocId, 6))
                        .col(date(OffenderBookings::BookingBeginDate))
                        .col(date_null(OffenderBookings::BookingEndDate))
                        .col(string_len_null(OffenderBookings::LivingUnitDescription, 40))
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_offender_bookings_offender")
                                .from(OffenderBookings::Table, OffenderBookings::OffenderId)
                                .to(Offenders::Table, Offenders::OffenderId),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_offender_bookings_agency")
                                .from(OffenderBookings::Table, OffenderBookings::AgyLocId)
                                .to(AgencyLocations::Table, AgencyLocations::AgyLocId),
                        ),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_offender_bookings_offender")
                    .table(OffenderBookings::Table)
                    .col(OffenderBookings::OffenderId)
                    .col(OffenderBookings::BookingSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_offender_bookings_agency")
                    .table(OffenderBookings::Table)
                    .col(OffenderBookings::AgyLocId)
                    .col(OffenderBookings::ActiveFlag)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(ReferenceCodes::Table)
                        .col(string_len(ReferenceCodes::Domain, 12))
                        .col(string_len(ReferenceCodes::Code, 12))
                        .col(string_len(ReferenceCodes::Description, 40))
                        .col(string_len(ReferenceCodes::ActiveFlag, 1))
                        .col(integer(ReferenceCodes::ListSeq))
                        .primary_key(
                            Index::create()
                                .col(ReferenceCodes::Domain)
                                .col(ReferenceCodes::Code),
                        ),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdSequences::Table)
                    .col(string_len(IdSequences::Name, 30).primary_key())
                    .col(big_integer(IdSequences::NextValue))
                    .to_owned(),
            )
            .await?;

        let now = chrono::Utc::now();
        let mut agencies = Query::insert();
        agencies.into_table(AgencyLocations::Table).columns([
            AgencyLocations::AgyLocId.into_iden(),
            AgencyLocations::Description.into_iden(),
            AgencyLocations::AgencyLocationType.into_iden(),
            AgencyLocations::ActiveFlag.into_iden(),
            AuditCol::CreateDatetime.into_iden(),
            AuditCol::CreateUserId.into_iden(),
            AuditCol::ModifyDatetime.into_iden(),
            AuditCol::ModifyUserId.into_iden(),
            AuditCol::AuditModuleName.into_iden(),
        ]);
        for (id, description, kind) in AGENCIES {
            agencies.values_panic([
                (*id).into(),
                (*description).into(),
                (*kind).into(),
                "Y".into(),
                now.into(),
                USER.into(),
                now.into(),
                USER.into(),
                MODULE.into(),
            ]);
        }
        manager.execute(agencies).await?;

        let mut sequences = Query::insert();
        sequences
            .into_table(IdSequences::Table)
            .columns([IdSequences::Name, IdSequences::NextValue]);
        for (name, start) in SEQUENCES {
            sequences.values_panic([(*name).into(), (*start).into()]);
        }
        manager.execute(sequences).await?;
        Ok(())
    }
}
