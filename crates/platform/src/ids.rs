//! Identifiers that arrive from outside, parsed once at the edge ("parse, don't validate").
//!
//! Each type deserializes only from a valid value, so a bad one is rejected by serde with the
//! field's path in the message, and code past the edge never checks again.

use serde::{Deserialize, Serialize};
use std::fmt;

fn is_prisoner_number(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[0].is_ascii_uppercase()
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5..7].iter().all(u8::is_ascii_uppercase)
}

/// A NOMIS prisoner number (offender number), `[A-Z][0-9]{4}[A-Z]{2}`, e.g. `A1234BC`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrisonerNumber(String);

impl PrisonerNumber {
    pub fn parse(s: &str) -> Result<Self, String> {
        if is_prisoner_number(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "invalid prisoner number '{s}': expected a letter, four digits and two letters, e.g. A1234BC"
            ))
        }
    }
    /// True when `s` has the shape of a prisoner number (used to tell a number from an id in a path).
    pub fn looks_like(s: &str) -> bool {
        is_prisoner_number(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PrisonerNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<PrisonerNumber> for String {
    fn from(p: PrisonerNumber) -> String {
        p.0
    }
}
impl fmt::Display for PrisonerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl utoipa::PartialSchema for PrisonerNumber {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Z][0-9]{4}[A-Z]{2}$"))
            .examples([serde_json::json!("A1234BC")])
            .into()
    }
}
impl utoipa::ToSchema for PrisonerNumber {}

/// A prison (agency location) id: 2–6 upper-case letters or digits, e.g. `MDI`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrisonId(String);

impl PrisonId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (2..=6).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "invalid prison id '{s}': expected 2 to 6 upper-case letters or digits, e.g. MDI"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for PrisonId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<PrisonId> for String {
    fn from(p: PrisonId) -> String {
        p.0
    }
}
impl fmt::Display for PrisonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl utoipa::PartialSchema for PrisonId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Z0-9]{2,6}$"))
            .examples([serde_json::json!("MDI")])
            .into()
    }
}
impl utoipa::ToSchema for PrisonId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisoner_numbers() {
        assert!(PrisonerNumber::parse("A1234BC").is_ok());
        for bad in [
            "a1234BC", "A123BC", "A1234B", "A1234BCD", "11234BC", "A12345C", "",
        ] {
            assert!(PrisonerNumber::parse(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<PrisonerNumber>("\"XX\"").unwrap_err();
        assert!(err.to_string().contains("invalid prisoner number"));
    }

    #[test]
    fn prison_ids() {
        assert!(PrisonId::parse("MDI").is_ok());
        assert!(PrisonId::parse("LEI1").is_ok());
        for bad in ["M", "mdi", "ABCDEFG", "MD-I"] {
            assert!(PrisonId::parse(bad).is_err(), "{bad}");
        }
    }
}
