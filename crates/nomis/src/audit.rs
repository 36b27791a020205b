//! NOMIS audit stamping.
//!
//! Every write in NOMIS runs under an audit module: the screen (`OIDSENAD`, `OIDINCRS`, …)
//! or, for the API, `DPS_SYNCHRONISATION`. The module travels on the offender events as
//! `auditModuleName`, which is how the sync listeners tell NOMIS users' changes from the
//! echoes of their own writes. Callers choose it with the `X-Audit-Module` header (tests
//! and the demo use it to act as a NOMIS user on a screen).

use axum::{extract::FromRequestParts, http::request::Parts};
use chrono::{DateTime, SubsecRound, Utc};
use tandem_platform::ApiError;

/// The header that names the module a write is made under.
pub const AUDIT_MODULE_HEADER: &str = "x-audit-module";

/// The module the real API stamps its writes with.
pub const DEFAULT_AUDIT_MODULE: &str = "DPS_SYNCHRONISATION";

/// A validated audit module name: 1 to 30 of `A-Z`, `0-9`, `_` (the NOMIS column is 30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditModule(String);

impl AuditModule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=30).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "invalid audit module '{s}': expected 1 to 30 upper-case letters, digits or underscores, e.g. OIDSENAD"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for AuditModule {
    fn default() -> Self {
        Self(DEFAULT_AUDIT_MODULE.to_string())
    }
}

impl std::fmt::Display for AuditModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditModule {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(AUDIT_MODULE_HEADER) {
            None => Ok(Self::default()),
            Some(v) => {
                let s = v.to_str().map_err(|_| {
                    ApiError::bad_request("Invalid X-Audit-Module header: it must be plain ASCII")
                })?;
                Self::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("Invalid X-Audit-Module header: {e}"))
                })
            }
        }
    }
}

/// Who wrote, when and under which module: the values of the five audit columns.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditStamp {
    /// UTC, truncated to microseconds so both backends store and return the same value.
    pub at: DateTime<Utc>,
    /// The NOMIS user id (the token's user name, else its client id).
    pub user: String,
    pub module: AuditModule,
}

impl AuditStamp {
    pub fn now(user: &str, module: AuditModule) -> Self {
        Self::at(tandem_platform::time::now(), user, module)
    }

    pub fn at(at: DateTime<Utc>, user: &str, module: AuditModule) -> Self {
        // NOMIS user ids are short upper-case names; the column holds 40.
        let user: String = user.chars().take(40).collect();
        Self {
            at: at.trunc_subsecs(6),
            user,
            module,
        }
    }

    /// The local (Europe/London) date-time NOMIS-shaped payloads carry.
    pub fn local(&self) -> chrono::NaiveDateTime {
        tandem_platform::time::london_local(self.at)
    }
}

/// Formats a stored UTC time as NOMIS shows it: local London time, to the second.
pub fn nomis_local_string(t: DateTime<Utc>) -> String {
    tandem_platform::time::london_local(t)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    async fn extract(header: Option<&str>) -> Result<AuditModule, ApiError> {
        let mut req = Request::builder().uri("/");
        if let Some(h) = header {
            req = req.header(AUDIT_MODULE_HEADER, h);
        }
        let (mut parts, _) = req.body(()).unwrap().into_parts();
        AuditModule::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn header_defaults_and_validates() {
        assert_eq!(extract(None).await.unwrap().as_str(), "DPS_SYNCHRONISATION");
        assert_eq!(
            extract(Some("OIDSENAD")).await.unwrap().as_str(),
            "OIDSENAD"
        );
        for bad in [
            "",
            "oidsenad",
            "OIDS ENAD",
            "A234567890123456789012345678901",
        ] {
            let e = extract(Some(bad)).await.unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert!(
                e.user_message.contains("X-Audit-Module"),
                "{}",
                e.user_message
            );
        }
    }

    #[test]
    fn stamps_are_truncated_to_micros_and_shown_in_london_time() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2024, 7, 1, 12, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let s = AuditStamp::at(
            t,
            "A_VERY_LONG_USER_NAME_THAT_GOES_ON_AND_ON_AND_ON",
            AuditModule::default(),
        );
        assert_eq!(s.at.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(s.user.len(), 40);
        assert_eq!(nomis_local_string(s.at), "2024-07-01T13:00:00");
    }
}
