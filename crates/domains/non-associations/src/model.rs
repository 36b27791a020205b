//! The DPS vocabulary of a non-association (reference §3.1): the roles the two prisoners
//! play, the reason and the restriction. Each is stored and sent by its code; the
//! descriptions are what the UI shows and what `GET /constants` lists.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares a code enum with its descriptions, `ALL`, `code()`, `description()` and `parse()`.
// `$code` is a `tt`, not a `literal`: utoipa's derive did not read a `literal` fragment in
// `#[serde(rename = …)]` and documented the variant names instead of the codes.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident ($what:literal) { $($variant:ident = $code:tt : $desc:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
        pub enum $name {
            $(
                #[doc = $desc]
                #[serde(rename = $code)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in the order the reference lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// What the value is, in error messages.
            pub const WHAT: &'static str = $what;

            /// The stored and transmitted code.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The human-readable description.
            pub fn description(self) -> &'static str {
                match self { $($name::$variant => $desc),+ }
            }

            /// The value with this code, if any.
            pub fn parse(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        /// Read from a string only, so a wrong type (a number) is reported against its
        /// field rather than as malformed JSON, and an unknown code lists the known ones.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = String::deserialize(d)?;
                Self::parse(&code).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|v| v.code()).collect();
                    serde::de::Error::custom(format!(
                        "unknown {} '{code}': expected one of {}",
                        Self::WHAT,
                        known.join(", ")
                    ))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}
pub(crate) use code_enum;

code_enum! {
    /// The part a prisoner plays in a non-association.
    Role ("role") {
        Victim = "VICTIM": "Victim",
        Perpetrator = "PERPETRATOR": "Perpetrator",
        NotRelevant = "NOT_RELEVANT": "Not relevant",
        Unknown = "UNKNOWN": "Unknown",
    }
}

code_enum! {
    /// Why two prisoners must be kept apart.
    Reason ("reason") {
        Bullying = "BULLYING": "Bullying",
        GangRelated = "GANG_RELATED": "Gang related",
        OrganisedCrime = "ORGANISED_CRIME": "Organised crime",
        LegalRequest = "LEGAL_REQUEST": "Police or legal request",
        Threat = "THREAT": "Threat",
        Violence = "VIOLENCE": "Violence",
        Other = "OTHER": "Other",
    }
}

code_enum! {
    /// How far apart the two prisoners must be kept.
    RestrictionType ("restriction type") {
        Cell = "CELL": "Cell only",
        Landing = "LANDING": "Cell and landing",
        Wing = "WING": "Cell, landing and wing",
    }
}

/// Placeholders the historical sync used when NOMIS had no value (reference §3.5).
pub mod defaults {
    /// The comment of a record NOMIS sent without one.
    pub const NO_COMMENT: &str = "No comment provided";
    /// The closure reason of a record NOMIS sent already expired.
    pub const NO_CLOSURE_REASON: &str = "No closure reason provided";
    /// The user recorded when the caller names none.
    pub const SYSTEM_USER: &str = "NON_ASSOCIATIONS_API";
}

/// Longest user name the store accepts (`varchar(60)`).
pub const MAX_USER_LEN: usize = 60;

#[cfg(test)]
mod tests {
    use super::*;

    /// The API documentation lists what the API takes: the codes, not the variant names
    /// (they read "Victim" while the API refuses anything but "VICTIM").
    fn assert_documents<T: utoipa::PartialSchema>(codes: impl Iterator<Item = &'static str>) {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum in {schema}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(documented, codes.collect::<Vec<_>>(), "{schema}");
    }

    #[test]
    fn the_api_documentation_lists_the_codes() {
        use crate::nomis_codes::{LegacyReason, LegacyRestrictionType};
        assert_documents::<Role>(Role::ALL.iter().map(|v| v.code()));
        assert_documents::<Reason>(Reason::ALL.iter().map(|v| v.code()));
        assert_documents::<RestrictionType>(RestrictionType::ALL.iter().map(|v| v.code()));
        assert_documents::<LegacyReason>(LegacyReason::ALL.iter().map(|v| v.code()));
        assert_documents::<LegacyRestrictionType>(
            LegacyRestrictionType::ALL.iter().map(|v| v.code()),
        );
        assert_eq!(Role::Victim.code(), "VICTIM");
    }

    #[test]
    fn codes_round_trip_and_serialize_as_codes() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()), Some(*r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.code()), Some(*r));
        }
        for r in RestrictionType::ALL {
            assert_eq!(RestrictionType::parse(r.code()), Some(*r));
        }
        assert_eq!(
            Reason::LegalRequest.description(),
            "Police or legal request"
        );
        assert_eq!(
            RestrictionType::Wing.description(),
            "Cell, landing and wing"
        );
        assert_eq!(Role::parse("victim"), None);
        let e = serde_json::from_str::<Reason>("\"FIGHT\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown reason 'FIGHT': expected one of BULLYING,"),
            "{e}"
        );
        let e = serde_json::from_str::<Reason>("7").unwrap_err();
        assert!(
            !e.is_syntax(),
            "a number is a wrong type, not malformed JSON: {e}"
        );
        assert_eq!(Role::ALL.len(), 4);
        assert_eq!(Reason::ALL.len(), 7);
        assert_eq!(RestrictionType::ALL.len(), 3);
    }
}
