//! The HMPPS `ErrorResponse` shape and the one error type every handler returns.
//!
//! Library crates keep their own `thiserror` enums; each implements `From<ItsError> for
//! ApiError` so the conversion to a status code and a message a person can act on happens
//! once, at the HTTP edge.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response, as the HMPPS services return it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// The HTTP status code, repeated in the body.
    pub status: u16,
    /// A stable, service-specific number for errors a client may want to act on.
    pub error_code: Option<i32>,
    /// What went wrong, in words a person can act on.
    pub user_message: String,
    /// More detail for the developer calling the API.
    pub developer_message: String,
    /// Structured detail (for example the existing and duplicate mapping on a 409).
    #[schema(value_type = Object)]
    pub more_info: Option<serde_json::Value>,
}

/// An error that becomes an [`ErrorResponse`].
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: Option<i32>,
    pub user_message: String,
    pub developer_message: Option<String>,
    pub more_info: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, user_message: impl Into<String>) -> Self {
        Self {
            status,
            error_code: None,
            user_message: user_message.into(),
            developer_message: None,
            more_info: None,
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, msg)
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, msg)
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, msg)
    }
    /// A failure that is ours, not the caller's. The detail goes to the log, not the body.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unexpected error: the service could not complete the request; it has been logged",
        )
    }
    /// A dependency (database, peer service) is unavailable: worth retrying later.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Service unavailable: {detail}"),
        )
    }
    pub fn with_code(mut self, code: i32) -> Self {
        self.error_code = Some(code);
        self
    }
    pub fn with_developer_message(mut self, msg: impl Into<String>) -> Self {
        self.developer_message = Some(msg.into());
        self
    }
    pub fn with_more_info(mut self, info: serde_json::Value) -> Self {
        self.more_info = Some(info);
        self
    }

    pub fn to_body(&self) -> ErrorResponse {
        ErrorResponse {
            status: self.status.as_u16(),
            error_code: self.error_code,
            user_message: self.user_message.clone(),
            developer_message: self
                .developer_message
                .clone()
                .unwrap_or_else(|| self.user_message.clone()),
            more_info: self.more_info.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.user_message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.to_body())).into_response()
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Unavailable(_) => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError::from(crate::db::DbError::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn developer_message_defaults_to_user_message() {
        let body = ApiError::conflict("already closed")
            .with_code(100)
            .to_body();
        assert_eq!(body.status, 409);
        assert_eq!(body.error_code, Some(100));
        assert_eq!(body.developer_message, "already closed");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["userMessage"], "already closed");
        assert!(json.get("moreInfo").is_some());
    }
}
