//! The crate's errors and their one conversion to an HTTP `ErrorResponse`.

use tandem_platform::{ApiError, db::DbError};

#[derive(Debug, thiserror::Error)]
pub enum NomisError {
    /// The request cannot be applied as it stands (400); the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The record addressed by the path does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state (409), e.g. an offender number in use or
    /// a concurrent write to the same record.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Outbox(#[from] tandem_bus::outbox::OutboxError),
}

impl NomisError {
    /// A 400 in the HMPPS style: "Validation failure: <field>: <what is wrong>".
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Invalid(format!("Validation failure: {field}: {message}"))
    }
}

impl From<sea_orm::DbErr> for NomisError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Db(DbError::from(e))
    }
}

impl From<NomisError> for ApiError {
    fn from(e: NomisError) -> Self {
        match e {
            NomisError::Invalid(m) => ApiError::bad_request(m),
            NomisError::NotFound(m) => ApiError::not_found(m),
            NomisError::Conflict(m) => ApiError::conflict(m),
            NomisError::Db(e) => ApiError::from(e),
            NomisError::Outbox(e) => ApiError::internal(e),
        }
    }
}

/// Maps a unique-key violation (the loser of a race for the same key) to a 409 the caller
/// can retry, and anything else to a database error.
pub(crate) fn conflict_on_unique(e: sea_orm::DbErr, what: impl FnOnce() -> String) -> NomisError {
    if tandem_platform::db::is_unique_violation(&e) {
        NomisError::Conflict(what())
    } else {
        NomisError::from(e)
    }
}
