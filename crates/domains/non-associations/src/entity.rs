//! The `non_association` table (reference §3.1) as a SeaORM entity. Only the store uses it;
//! everything outside sees [`crate::store::NonAssociation`].

pub mod non_association {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "non_association")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub first_prisoner_number: String,
        pub first_prisoner_role: String,
        pub second_prisoner_number: String,
        pub second_prisoner_role: String,
        pub reason: String,
        pub restriction_type: String,
        #[sea_orm(column_type = "Text")]
        pub comment: String,
        pub authorised_by: Option<String>,
        pub when_created: DateTimeUtc,
        pub when_updated: DateTimeUtc,
        pub updated_by: String,
        pub is_closed: bool,
        pub closed_by: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub closed_reason: Option<String>,
        pub closed_at: Option<DateTimeUtc>,
        /// The smaller of the two prisoner numbers: with `pair_high`, the unordered pair,
        /// so "one open per pair" is a plain unique index.
        pub pair_low: String,
        pub pair_high: String,
        /// The NOMIS `TYPE_SEQ` of the record this one was migrated or synced from.
        pub nomis_type_sequence: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
