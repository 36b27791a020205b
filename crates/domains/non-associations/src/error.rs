//! What can go wrong, and the `ErrorResponse` each becomes (reference §1.2: NA's stable
//! `errorCode` numbers, which clients act on).

use http::StatusCode;
use tandem_platform::{ApiError, db::DbError};

use crate::prisoners::DirectoryError;

/// The `errorCode` values of the NA service's `ErrorResponse`.
pub mod codes {
    pub const NON_ASSOCIATION_ALREADY_CLOSED: i32 = 100;
    pub const OPEN_NON_ASSOCIATION_ALREADY_EXISTS: i32 = 101;
    pub const VALIDATION_FAILURE: i32 = 102;
    pub const NULL_PRISONER_LOCATIONS: i32 = 103;
    pub const NON_ASSOCIATION_ALREADY_OPEN: i32 = 104;
    pub const USER_IN_CONTEXT_MISSING: i32 = 401;
    pub const NON_ASSOCIATION_NOT_FOUND: i32 = 404;
}

#[derive(Debug, thiserror::Error)]
pub enum NaError {
    #[error("Non-association {0} not found")]
    NotFound(i64),
    #[error("Non-association {0} is already closed")]
    AlreadyClosed(i64),
    #[error(
        "Prisoners {first} and {second} already have an open non-association (id {existing}); close it first or amend it instead"
    )]
    OpenAlreadyExists {
        first: String,
        second: String,
        existing: i64,
    },
    /// The race loser of "one open per pair": the existing record's id is not known.
    #[error("Prisoners {first} and {second} already have an open non-association")]
    OpenAlreadyExistsRace { first: String, second: String },
    #[error(
        "Non-association {id} cannot be reopened: prisoners {first} and {second} already have an open non-association"
    )]
    AlreadyOpen {
        id: i64,
        first: String,
        second: String,
    },
    #[error("Validation failure: {0}")]
    Validation(String),
    #[error("Prisoner {0} is not in a prison, so a non-association cannot be recorded for them")]
    NotInPrison(String),
    #[error("Prisoner {0} not found")]
    PrisonerNotFound(String),
    #[error(
        "No user name in the token: this change must be made by a user (a token with user_name), or name the user in the request where it allows"
    )]
    UserMissing,
    /// The request contradicts what is stored (e.g. a sync naming a record of another pair).
    #[error("{0}")]
    Conflict(String),
    /// A NOMIS record (pair + type sequence) is already linked to another DPS record.
    #[error("{0}")]
    NomisKeyTaken(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("outbox write failed: {0}")]
    Outbox(#[from] tandem_bus::outbox::OutboxError),
}

impl NaError {
    pub fn validation(msg: impl Into<String>) -> Self {
        NaError::Validation(msg.into())
    }
}

impl From<sea_orm::DbErr> for NaError {
    fn from(e: sea_orm::DbErr) -> Self {
        NaError::Db(DbError::from(e))
    }
}

impl From<NaError> for ApiError {
    fn from(e: NaError) -> Self {
        use codes::*;
        let msg = e.to_string();
        match e {
            NaError::NotFound(_) => ApiError::not_found(msg).with_code(NON_ASSOCIATION_NOT_FOUND),
            NaError::AlreadyClosed(_) => {
                ApiError::conflict(msg).with_code(NON_ASSOCIATION_ALREADY_CLOSED)
            }
            NaError::OpenAlreadyExists { .. } | NaError::OpenAlreadyExistsRace { .. } => {
                ApiError::conflict(msg).with_code(OPEN_NON_ASSOCIATION_ALREADY_EXISTS)
            }
            NaError::AlreadyOpen { .. } => {
                ApiError::conflict(msg).with_code(NON_ASSOCIATION_ALREADY_OPEN)
            }
            NaError::Validation(_) => ApiError::bad_request(msg).with_code(VALIDATION_FAILURE),
            NaError::NotInPrison(_) => ApiError::conflict(msg).with_code(NULL_PRISONER_LOCATIONS),
            NaError::PrisonerNotFound(_) => ApiError::not_found(msg),
            NaError::UserMissing => {
                ApiError::new(StatusCode::UNAUTHORIZED, msg).with_code(USER_IN_CONTEXT_MISSING)
            }
            NaError::Conflict(_) | NaError::NomisKeyTaken(_) => ApiError::conflict(msg),
            NaError::Directory(d) => ApiError::unavailable(d),
            NaError::Db(d) => ApiError::from(d),
            NaError::Outbox(o) => ApiError::internal(o),
        }
    }
}

/// Adds `errorCode` 102 to the 400s the shared extractors produce, so every validation
/// failure of this service carries the same code, as the service it re-implements does.
pub(crate) fn validation_code(e: ApiError) -> ApiError {
    if e.status == StatusCode::BAD_REQUEST && e.error_code.is_none() {
        e.with_code(codes::VALIDATION_FAILURE)
    } else {
        e
    }
}
