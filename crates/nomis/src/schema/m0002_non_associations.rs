//! Non-associations as NOMIS stores them (reference §5.1): a header per direction in
//! `offender_non_associations` and one detail row per direction and type sequence in
//! `offender_na_details`; the reference codes of domains `NON_ASSO_RSN` and `NON_ASSO_TYP`.

use sea_orm_migration::{prelude::*, schema::*};

use super::{AuditCol, audit_columns};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_nomis_non_associations"
    }
}

#[derive(DeriveIden)]
enum Offenders {
    Table,
    OffenderId,
}

#[derive(DeriveIden)]
enum OffenderNonAssociations {
    Table,
    OffenderId,
    NsOffenderId,
    OffenderBookId,
    NsOffenderBookId,
    NsReasonCode,
    RecipNsReasonCode,
    NsLevelCode,
    InternalLocationFlag,
    TransportFlag,
}

#[derive(DeriveIden)]
enum OffenderNaDetails {
    Table,
    OffenderId,
    NsOffenderId,
    TypeSeq,
    OffenderBookId,
    NsOffenderBookId,
    NsReasonCode,
    RecipNsReasonCode,
    NsLevelCode,
    NsType,
    NsEffectiveDate,
    NsExpiryDate,
    AuthorizedStaff,
    CommentText,
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

const CODES: &[(&str, &str, &str)] = &[
    ("NON_ASSO_RSN", "BUL", "Anti Bullying Strategy"),
    ("NON_ASSO_RSN", "PER", "Perpetrator"),
    ("NON_ASSO_RSN", "RIV", "Rival Gang"),
    ("NON_ASSO_RSN", "VIC", "Victim"),
    ("NON_ASSO_RSN", "NOT_REL", "Not relevant"),
    ("NON_ASSO_RSN", "UNKNOWN", "Unknown"),
    ("NON_ASSO_TYP", "CELL", "Do Not Locate in Same Cell"),
    ("NON_ASSO_TYP", "LAND", "Do Not Locate on Same Landing"),
    ("NON_ASSO_TYP", "WING", "Do Not Locate on Same Wing"),
    ("NON_ASSO_TYP", "NONEX", "Do Not Exercise Together"),
    ("NON_ASSO_TYP", "TNA", "Total Non Association"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use OffenderNaDetails as D;
        use OffenderNonAssociations as H;
        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(H::Table)
                        .col(big_integer(H::OffenderId))
                        .col(big_integer(H::NsOffenderId))
                        .col(big_integer_null(H::OffenderBookId))
                        .col(big_integer_null(H::NsOffenderBookId))
                        .col(string_len(H::NsReasonCode, 12))
                        .col(string_len_null(H::RecipNsReasonCode, 12))
                        .col(string_len_null(H::NsLevelCode, 12))
                        .col(string_len(H::InternalLocationFlag, 1))
                        .col(string_len(H::TransportFlag, 1))
                        .primary_key(Index::create().col(H::OffenderId).col(H::NsOffenderId))
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_ona_offender")
                                .from(H::Table, H::OffenderId)
                                .to(Offenders::Table, Offenders::OffenderId),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_ona_ns_offender")
                                .from(H::Table, H::NsOffenderId)
                                .to(Offenders::Table, Offenders::OffenderId),
                        ),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ona_ns_offender")
                    .table(H::Table)
                    .col(H::NsOffenderId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                audit_columns(
                    Table::create()
                        .table(D::Table)
                        .col(big_integer(D::OffenderId))
                        .col(big_integer(D::NsOffenderId))
                        .col(integer(D::TypeSeq))
                        .col(big_integer_null(D::OffenderBookId))
                        .col(big_integer_null(D::NsOffenderBookId))
                        .col(string_len(D::NsReasonCode, 12))
                        .col(string_len_null(D::RecipNsReasonCode, 12))
                        .col(string_len_null(D::NsLevelCode, 12))
                        .col(string_len(D::NsType, 12))
                        .col(date(D::NsEffectiveDate))
                        .col(date_null(D::NsExpiryDate))
                        .col(string_len_null(D::AuthorizedStaff, 60))
                        .col(string_len_null(D::CommentText, 240))
                        .primary_key(
                            Index::create()
                                .col(D::OffenderId)
                                .col(D::NsOffenderId)
                                .col(D::TypeSeq),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_onad_header")
                                .from_tbl(D::Table)
                                .from_col(D::OffenderId)
                                .from_col(D::NsOffenderId)
                                .to_tbl(H::Table)
                                .to_col(H::OffenderId)
                                .to_col(H::NsOffenderId),
                        ),
                )
                .to_owned(),
            )
            .await?;

        let now = chrono::Utc::now();
        let mut codes = Query::insert();
        codes.into_table(ReferenceCodes::Table).columns([
            ReferenceCodes::Domain.into_iden(),
            ReferenceCodes::Code.into_iden(),
            ReferenceCodes::Description.into_iden(),
            ReferenceCodes::ActiveFlag.into_iden(),
            ReferenceCodes::ListSeq.into_iden(),
            AuditCol::CreateDatetime.into_iden(),
            AuditCol::CreateUserId.into_iden(),
            AuditCol::ModifyDatetime.into_iden(),
            AuditCol::ModifyUserId.into_iden(),
            AuditCol::AuditModuleName.into_iden(),
        ]);
        for (seq, (domain, code, description)) in CODES.iter().enumerate() {
            codes.values_panic([
                (*domain).into(),
                (*code).into(),
                (*description).into(),
                "Y".into(),
                (seq as i32 + 1).into(),
                now.into(),
                "OMS_OWNER".into(),
                now.into(),
                "OMS_OWNER".into(),
                "TANDEM_MIGRATION".into(),
            ]);
        }
        manager.execute(codes).await?;
        Ok(())
    }
}
