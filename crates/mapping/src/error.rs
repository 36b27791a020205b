//! The mapping service's errors and their HTTP form.

use serde_json::{Map, Value, json};
use tandem_platform::{ApiError, db::DbError};

/// The `errorCode` of a duplicate-mapping 409, as the HMPPS mapping service sends it; sync
/// and migration clients treat it as "terminal: report the duplicate, don't retry".
pub const DUPLICATE_MAPPING: i32 = 1409;

/// The two sides of a duplicate: what is stored and what was offered.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    /// "Non-association", from the kind.
    pub kind: &'static str,
    /// The stored mapping that clashes; `None` only when a concurrent writer removed it
    /// before it could be read back.
    pub existing: Option<Map<String, Value>>,
    pub duplicate: Map<String, Value>,
    pub existing_text: String,
    pub duplicate_text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{0}")]
    NotFound(String),
    #[error("{kind} mapping already exists", kind = .0.kind)]
    Duplicate(Box<Duplicate>),
    /// Input the caller must correct; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// A row in the table that cannot be turned back into its DTO: our bug, not the caller's.
    #[error("corrupt mapping row: {0}")]
    Corrupt(String),
}

impl From<sea_orm::DbErr> for MappingError {
    fn from(e: sea_orm::DbErr) -> Self {
        MappingError::Db(DbError::from(e))
    }
}

impl From<MappingError> for ApiError {
    fn from(e: MappingError) -> Self {
        match e {
            MappingError::NotFound(msg) => ApiError::not_found(format!("Not Found: {msg}")),
            MappingError::Invalid(msg) => {
                ApiError::bad_request(format!("Validation failure: {msg}"))
            }
            MappingError::Duplicate(d) => {
                let user = format!(
                    "Conflict: {} mapping already exists.\nExisting mapping: {}\nDuplicate mapping: {}",
                    d.kind, d.existing_text, d.duplicate_text
                );
                ApiError::conflict(user)
                    .with_code(DUPLICATE_MAPPING)
                    .with_developer_message(format!(
                        "{} mapping already exists: the offered mapping clashes with a stored one on its DPS id or its NOMIS id",
                        d.kind
                    ))
                    .with_more_info(json!({
                        "existing": d.existing.map(Value::Object).unwrap_or(Value::Null),
                        "duplicate": Value::Object(d.duplicate),
                    }))
            }
            MappingError::Db(e) => ApiError::from(e),
            MappingError::Corrupt(detail) => ApiError::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_becomes_a_1409_with_both_mappings() {
        let existing = json!({"id": 1, "nomisId": 2}).as_object().cloned();
        let duplicate = json!({"id": 3, "nomisId": 2}).as_object().cloned().unwrap();
        let e = MappingError::Duplicate(Box::new(Duplicate {
            kind: "Thing",
            existing,
            duplicate,
            existing_text: "id=1, nomisId=2".into(),
            duplicate_text: "id=3, nomisId=2".into(),
        }));
        let body = ApiError::from(e).to_body();
        assert_eq!(body.status, 409);
        assert_eq!(body.error_code, Some(1409));
        assert!(
            body.user_message
                .contains("Existing mapping: id=1, nomisId=2")
        );
        assert!(
            body.user_message
                .contains("Duplicate mapping: id=3, nomisId=2")
        );
        let more = body.more_info.unwrap();
        assert_eq!(more["existing"]["id"], 1);
        assert_eq!(more["duplicate"]["id"], 3);
    }

    #[test]
    fn not_found_and_invalid_are_client_errors() {
        let nf = ApiError::from(MappingError::NotFound("nonAssociationId=5".into()));
        assert_eq!(nf.status.as_u16(), 404);
        assert_eq!(nf.user_message, "Not Found: nonAssociationId=5");
        let bad = ApiError::from(MappingError::Invalid("size: must be at least 1".into()));
        assert_eq!(bad.status.as_u16(), 400);
    }
}
