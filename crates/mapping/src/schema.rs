//! The schema of a mapping table, generated from its [`MappingKind`] with sea-query's
//! portable builder so it runs unchanged on SQLite and PostgreSQL.
//!
//! A migration is history: once released, a kind's key columns must not change in place —
//! a schema change is a new migration, never an edit to a `MappingKind` an old migration
//! reads.

use sea_orm_migration::prelude::*;

use crate::kind::{ColType, Field, LABEL, MAPPING_TYPE, MappingKind, WHEN_CREATED};

/// Longest mapping type name stored (`NOMIS_CREATED` and friends, with room for more).
pub const MAPPING_TYPE_LEN: u32 = 30;

fn column(f: &Field) -> ColumnDef {
    let mut c = ColumnDef::new(f.column);
    match f.ty {
        ColType::BigInt => c.big_integer(),
        ColType::Int => c.integer(),
        ColType::Text(n) => c.string_len(n),
    };
    c.not_null();
    c
}

/// `CREATE TABLE` for a kind: PK on the DPS key, the common columns.
pub fn create_table(kind: &MappingKind) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(kind.table).if_not_exists();
    for f in kind.key_fields() {
        t.col(column(f));
    }
    t.col(ColumnDef::new(LABEL).string_len(kind.label_len).null())
        .col(
            ColumnDef::new(MAPPING_TYPE)
                .string_len(MAPPING_TYPE_LEN)
                .not_null(),
        )
        .col(
            ColumnDef::new(WHEN_CREATED)
                .timestamp_with_time_zone()
                .not_null(),
        );
    let mut pk = Index::create();
    pk.name(format!("{}_pk", kind.table));
    for f in kind.dps_key {
        pk.col(f.column);
    }
    t.primary_key(&mut pk);
    t.to_owned()
}

/// The indexes of a kind: the NOMIS key (unique unless the kind says otherwise), `label`
/// (count by migration) and `when_created` (latest migrated).
pub fn create_indexes(kind: &MappingKind) -> Vec<IndexCreateStatement> {
    let mut nomis = Index::create();
    nomis
        .name(format!("{}_nomis_key", kind.table))
        .table(kind.table)
        .if_not_exists();
    for f in kind.nomis_key {
        nomis.col(f.column);
    }
    if kind.nomis_key_unique {
        nomis.unique();
    }
    let label = Index::create()
        .name(format!("{}_label", kind.table))
        .table(kind.table)
        .col(LABEL)
        .if_not_exists()
        .to_owned();
    let when = Index::create()
        .name(format!("{}_when_created", kind.table))
        .table(kind.table)
        .col(WHEN_CREATED)
        .if_not_exists()
        .to_owned();
    vec![nomis.to_owned(), label, when]
}

/// The migration that creates one kind's table and indexes.
pub struct CreateMappingTable {
    pub name: &'static str,
    pub kind: &'static MappingKind,
}

impl MigrationName for CreateMappingTable {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateMappingTable {
    /// SQLite runs DDL transactionally too; without this a failed migration there would
    /// leave half a schema.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(create_table(self.kind)).await?;
        for index in create_indexes(self.kind) {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(self.kind.table).if_exists().to_owned())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::non_associations::KIND;

    #[test]
    fn non_association_table_matches_the_reference() {
        let sql = create_table(&KIND).to_string(PostgresQueryBuilder);
        for part in [
            r#""non_association_id" bigint NOT NULL"#,
            r#""first_offender_no" varchar(10) NOT NULL"#,
            r#""nomis_type_sequence" integer NOT NULL"#,
            r#""label" varchar(40) NULL"#,
            r#""mapping_type" varchar(30) NOT NULL"#,
            r#""when_created" timestamp with time zone NOT NULL"#,
            r#"PRIMARY KEY ("non_association_id")"#,
        ] {
            assert!(sql.contains(part), "{part} missing from {sql}");
        }
        let indexes: Vec<String> = create_indexes(&KIND)
            .iter()
            .map(|i| i.to_string(PostgresQueryBuilder))
            .collect();
        assert!(
            indexes[0].starts_with("CREATE UNIQUE INDEX"),
            "{}",
            indexes[0]
        );
        assert!(
            indexes[0]
                .contains(r#"("first_offender_no", "second_offender_no", "nomis_type_sequence")"#),
            "{}",
            indexes[0]
        );
        assert!(!indexes[1].contains("UNIQUE"));
    }
}
