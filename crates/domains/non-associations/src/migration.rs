//! Schema migrations, written with sea-query's portable builder so the same steps run on
//! SQLite and PostgreSQL. The outbox table comes first: every change here writes events.

use sea_orm::sea_query::{Check, ColumnDef, Expr, Index, Table};
use sea_orm_migration::prelude::*;

use crate::entity::non_association::{Column as C, Entity as NonAssociationTable};

/// The service's migrator: the outbox, then the `non_association` table.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            tandem_bus::outbox::migration(),
            Box::new(CreateNonAssociation),
        ]
    }
}

/// Name of the unique index that allows one open record per unordered pair; a violation of
/// it is reported as "an open non-association already exists".
pub(crate) const OPEN_PAIR_INDEX: &str = "ux_non_association_open_pair";
/// Name of the unique index on the NOMIS key (pair + type sequence). The name contains the
/// column name so both backends' violation messages can be recognised by it.
pub(crate) const NOMIS_KEY_INDEX: &str = "ux_non_association_pair_nomis_type_sequence";

struct CreateNonAssociation;

impl MigrationName for CreateNonAssociation {
    fn name(&self) -> &str {
        "m0001_create_non_association"
    }
}

fn string(col: C, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNonAssociation {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let closed = Expr::col(C::IsClosed).eq(true);
        let open = Expr::col(C::IsClosed).eq(false);
        let closed_details_consistent = closed
            .and(Expr::col(C::ClosedBy).is_not_null())
            .and(Expr::col(C::ClosedReason).is_not_null())
            .and(Expr::col(C::ClosedAt).is_not_null())
            .or(open
                .clone()
                .and(Expr::col(C::ClosedBy).is_null())
                .and(Expr::col(C::ClosedReason).is_null())
                .and(Expr::col(C::ClosedAt).is_null()));
        let pair_consistent = Expr::col(C::PairLow)
            .eq(Expr::col(C::FirstPrisonerNumber))
            .and(Expr::col(C::PairHigh).eq(Expr::col(C::SecondPrisonerNumber)))
            .or(Expr::col(C::PairLow)
                .eq(Expr::col(C::SecondPrisonerNumber))
                .and(Expr::col(C::PairHigh).eq(Expr::col(C::FirstPrisonerNumber))));

        manager
            .create_table(
                Table::create()
                    .table(NonAssociationTable)
                    .col(
                        ColumnDef::new(C::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(string(C::FirstPrisonerNumber, 10))
                    .col(string(C::FirstPrisonerRole, 20))
                    .col(string(C::SecondPrisonerNumber, 10))
                    .col(string(C::SecondPrisonerRole, 20))
                    .col(string(C::Reason, 20))
                    .col(string(C::RestrictionType, 20))
                    .col(ColumnDef::new(C::Comment).text().not_null())
                    .col(ColumnDef::new(C::AuthorisedBy).string_len(60).null())
                    .col(
                        ColumnDef::new(C::WhenCreated)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(C::WhenUpdated)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(string(C::UpdatedBy, 60))
                    .col(ColumnDef::new(C::IsClosed).boolean().not_null())
                    .col(ColumnDef::new(C::ClosedBy).string_len(60).null())
                    .col(ColumnDef::new(C::ClosedReason).text().null())
                    .col(
                        ColumnDef::new(C::ClosedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(string(C::PairLow, 10))
                    .col(string(C::PairHigh, 10))
                    .col(ColumnDef::new(C::NomisTypeSequence).integer().null())
                    .check(Check::named(
                        "non_association_different_people",
                        Expr::col(C::FirstPrisonerNumber).ne(Expr::col(C::SecondPrisonerNumber)),
                    ))
                    .check(Check::named(
                        "non_association_closed_details",
                        closed_details_consistent,
                    ))
                    .check(Check::named("non_association_pair", pair_consistent))
                    .check(Check::named(
                        "non_association_comment_not_empty",
                        Expr::col(C::Comment).ne(""),
                    ))
                    .to_owned(),
            )
            .await?;

        for (name, cols) in [
            ("ix_non_association_first", &[C::FirstPrisonerNumber][..]),
            ("ix_non_association_second", &[C::SecondPrisonerNumber][..]),
            (
                "ix_non_association_first_second",
                &[C::FirstPrisonerNumber, C::SecondPrisonerNumber][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(NonAssociationTable);
            for c in cols {
                index.col(*c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        // At most one open record per unordered pair: a partial unique index, which both
        // backends support, so a racing second insert fails instead of slipping through.
        manager
            .create_index(
                Index::create()
                    .name(OPEN_PAIR_INDEX)
                    .table(NonAssociationTable)
                    .col(C::PairLow)
                    .col(C::PairHigh)
                    .unique()
                    .and_where(open)
                    .to_owned(),
            )
            .await?;
        // One DPS record per NOMIS record; NULLs (DPS-created records) never collide.
        manager
            .create_index(
                Index::create()
                    .name(NOMIS_KEY_INDEX)
                    .table(NonAssociationTable)
                    .col(C::PairLow)
                    .col(C::PairHigh)
                    .col(C::NomisTypeSequence)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NonAssociationTable).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
