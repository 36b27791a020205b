//! Every role string used in the estate, so services share one spelling (a typo in a
//! role is a silent 403 in production).

/// NOMIS Prisoner API: sync endpoints called by the DPS→NOMIS sync services.
pub const NOMIS_PRISONER_API_SYNCHRONISATION_RW: &str =
    "ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW";
/// NOMIS mapping API: reading and writing DPS↔NOMIS id mappings.
pub const NOMIS_MAPPING_API_SYNCHRONISATION_RW: &str =
    "ROLE_NOMIS_MAPPING_API__SYNCHRONISATION__RW";
/// Migration from NOMIS into DPS.
pub const PRISONER_FROM_NOMIS_MIGRATION_RW: &str = "ROLE_PRISONER_FROM_NOMIS__MIGRATION__RW";
/// Updating NOMIS from DPS.
pub const PRISONER_TO_NOMIS_UPDATE_RW: &str = "ROLE_PRISONER_TO_NOMIS__UPDATE__RW";
/// Queue administration (dead-letter retry/purge).
pub const SYSCON_QUEUE_ADMIN: &str = "ROLE_SYSCON__QUEUE_ADMIN";
/// Starting and managing migrations.
pub const MIGRATE_NOMIS_SYSCON: &str = "ROLE_MIGRATE_NOMIS_SYSCON";
/// Non-associations: read.
pub const READ_NON_ASSOCIATIONS: &str = "ROLE_READ_NON_ASSOCIATIONS";
/// Non-associations: create/update/close.
pub const WRITE_NON_ASSOCIATIONS: &str = "ROLE_WRITE_NON_ASSOCIATIONS";
/// Non-associations: reopen a closed one.
pub const REOPEN_NON_ASSOCIATIONS: &str = "ROLE_REOPEN_NON_ASSOCIATIONS";
/// Non-associations: delete.
pub const DELETE_NON_ASSOCIATIONS: &str = "ROLE_DELETE_NON_ASSOCIATIONS";
/// Non-associations: sync endpoints (NOMIS→DPS).
pub const NON_ASSOCIATIONS_SYNC: &str = "ROLE_NON_ASSOCIATIONS_SYNC";
/// Non-associations: migration endpoints.
pub const NON_ASSOCIATIONS_MIGRATE: &str = "ROLE_NON_ASSOCIATIONS_MIGRATE";

/// Every role above; the dev client is given them all.
pub const ALL_ROLES: &[&str] = &[
    NOMIS_PRISONER_API_SYNCHRONISATION_RW,
    NOMIS_MAPPING_API_SYNCHRONISATION_RW,
    PRISONER_FROM_NOMIS_MIGRATION_RW,
    PRISONER_TO_NOMIS_UPDATE_RW,
    SYSCON_QUEUE_ADMIN,
    MIGRATE_NOMIS_SYSCON,
    READ_NON_ASSOCIATIONS,
    WRITE_NON_ASSOCIATIONS,
    REOPEN_NON_ASSOCIATIONS,
    DELETE_NON_ASSOCIATIONS,
    NON_ASSOCIATIONS_SYNC,
    NON_ASSOCIATIONS_MIGRATE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_roles_are_prefixed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ALL_ROLES {
            assert!(r.starts_with("ROLE_"), "{r}");
            assert!(seen.insert(*r), "duplicate {r}");
        }
        assert_eq!(ALL_ROLES.len(), 12);
    }
}
