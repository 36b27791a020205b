//! SeaORM entities over the NOMIS tables. Relations are left out on purpose: queries
//! here are explicit about their joins, and the entities stay a plain picture of a row.

/// `OFFENDERS`: one row per person (an alias would be another row; not modelled yet).
pub mod offenders {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "offenders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub offender_id: i64,
        #[sea_orm(unique)]
        pub offender_no: String,
        pub first_name: String,
        pub last_name: String,
        pub birth_date: Date,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `OFFENDER_BOOKINGS`: a period in custody. `booking_seq` 1 is the latest booking.
pub mod offender_bookings {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "offender_bookings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub offender_book_id: i64,
        pub offender_id: i64,
        pub booking_seq: i32,
        /// `Y` while the prisoner is in custody on this booking.
        pub active_flag: String,
        /// The prison, or `OUT` (released) / `TRN` (in transfer).
        pub agy_loc_id: String,
        pub booking_begin_date: Date,
        pub booking_end_date: Option<Date>,
        /// The cell, e.g. `MDI-A-1-001`.
        pub living_unit_description: Option<String>,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `AGENCY_LOCATIONS`: prisons (`INST`) and the pseudo-agencies `OUT` and `TRN`.
pub mod agency_locations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agency_locations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub agy_loc_id: String,
        pub description: String,
        pub agency_location_type: String,
        pub active_flag: String,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `REFERENCE_CODES`: the code lists (domains) NOMIS validates against.
pub mod reference_codes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reference_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub domain: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub description: String,
        pub active_flag: String,
        pub list_seq: i32,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `OFFENDER_NON_ASSOCIATIONS`: the header, one row per direction of a pair.
pub mod offender_non_associations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "offender_non_associations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub offender_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub ns_offender_id: i64,
        pub offender_book_id: Option<i64>,
        pub ns_offender_book_id: Option<i64>,
        pub ns_reason_code: String,
        pub recip_ns_reason_code: Option<String>,
        pub ns_level_code: Option<String>,
        pub internal_location_flag: String,
        pub transport_flag: String,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `OFFENDER_NA_DETAILS`: one row per direction and type sequence.
pub mod offender_na_details {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "offender_na_details")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub offender_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub ns_offender_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub type_seq: i32,
        pub offender_book_id: Option<i64>,
        pub ns_offender_book_id: Option<i64>,
        pub ns_reason_code: String,
        pub recip_ns_reason_code: Option<String>,
        pub ns_level_code: Option<String>,
        pub ns_type: String,
        pub ns_effective_date: Date,
        pub ns_expiry_date: Option<Date>,
        pub authorized_staff: Option<String>,
        pub comment_text: Option<String>,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `EXTERNAL_SERVICES`: the services DPS can take over from NOMIS, prison by prison.
pub mod external_services {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "external_services")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub service_code: String,
        pub description: String,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `SERVICE_AGENCY_SWITCHES`: a row means DPS is master for the service at the prison
/// (`*ALL*`: at every prison).
pub mod service_agency_switches {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_agency_switches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub service_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub agy_loc_id: String,
        pub create_datetime: DateTimeUtc,
        pub create_user_id: String,
        pub modify_datetime: DateTimeUtc,
        pub modify_user_id: String,
        pub audit_module_name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
