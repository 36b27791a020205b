//! What every mapping kind's routes share: the roles and path-parameter parsing.

use tandem_auth::roles::NOMIS_MAPPING_API_SYNCHRONISATION_RW;
use tandem_platform::ApiError;
use tandem_platform::ids::PrisonerNumber;

tandem_auth::role!(pub MappingRead, [NOMIS_MAPPING_API_SYNCHRONISATION_RW]);
tandem_auth::role!(pub MappingWrite, [NOMIS_MAPPING_API_SYNCHRONISATION_RW], write);

/// A prisoner number from the path; a malformed one is a 400 naming the parameter.
pub fn prisoner_number(name: &str, value: &str) -> Result<PrisonerNumber, ApiError> {
    PrisonerNumber::parse(value)
        .map_err(|e| ApiError::bad_request(format!("Invalid path parameter {name}: {e}")))
}
