//! NOMIS ⇄ DPS code mappings (reference §3.2), as pure functions.
//!
//! NOMIS records a reason per side of the pair (domain `NON_ASSO_RSN`) and a type (domain
//! `NON_ASSO_TYP`); DPS records a role per side, one reason and one restriction. The two
//! vocabularies do not map one to one, so a round trip is lossy by design: DPS → NOMIS →
//! DPS keeps the restriction and, for gang/bullying reasons, the reason; the roles survive
//! otherwise. The sync adapter and the NOMIS-shaped views use these functions and nothing
//! else, so the translation lives in one place.

use crate::model::code_enum;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Reason, RestrictionType, Role};

code_enum! {
    /// A NOMIS non-association reason (domain `NON_ASSO_RSN`), one per side of the pair.
    LegacyReason ("NOMIS reason") {
        Bul = "BUL": "Anti Bullying Strategy",
        Per = "PER": "Perpetrator",
        Riv = "RIV": "Rival Gang",
        Vic = "VIC": "Victim",
        NotRel = "NOT_REL": "Not relevant",
        Unknown = "UNKNOWN": "Unknown",
    }
}

code_enum! {
    /// A NOMIS non-association type (domain `NON_ASSO_TYP`). `NONEX` and `TNA` only ever
    /// arrive from NOMIS; DPS never writes them back.
    LegacyRestrictionType ("NOMIS type") {
        Cell = "CELL": "Do Not Locate in Same Cell",
        Land = "LAND": "Do Not Locate on Same Landing",
        Wing = "WING": "Do Not Locate on Same Wing",
        Nonex = "NONEX": "Do Not Exercise Together",
        Tna = "TNA": "Total Non Association",
    }
}

/// The DPS roles and reason of a NOMIS pair of reasons (`first` is the reason recorded on
/// the first prisoner's side, `second` on the other's).
///
/// Starts from roles UNKNOWN/UNKNOWN and reason OTHER and applies the first side, then the
/// second; so when both sides name a reason (`BUL` vs `RIV`) the second side's wins, as in
/// the service this re-implements.
pub fn to_dps_roles_and_reason(first: LegacyReason, second: LegacyReason) -> (Role, Role, Reason) {
    let mut reason = Reason::Other;
    let mut side = |legacy: LegacyReason| match legacy {
        LegacyReason::Bul => {
            reason = Reason::Bullying;
            Role::Unknown
        }
        LegacyReason::Riv => {
            reason = Reason::GangRelated;
            Role::NotRelevant
        }
        LegacyReason::Vic => Role::Victim,
        LegacyReason::Per => Role::Perpetrator,
        LegacyReason::NotRel => Role::NotRelevant,
        LegacyReason::Unknown => Role::Unknown,
    };
    let first_role = side(first);
    let second_role = side(second);
    (first_role, second_role, reason)
}

/// The NOMIS reasons (first side, second side) for a DPS record.
pub fn to_nomis_reasons(
    first_role: Role,
    second_role: Role,
    reason: Reason,
) -> (LegacyReason, LegacyReason) {
    match reason {
        Reason::GangRelated => (LegacyReason::Riv, LegacyReason::Riv),
        Reason::Bullying => (LegacyReason::Bul, LegacyReason::Bul),
        _ => (role_to_nomis(first_role), role_to_nomis(second_role)),
    }
}

fn role_to_nomis(role: Role) -> LegacyReason {
    match role {
        Role::Victim => LegacyReason::Vic,
        Role::Perpetrator => LegacyReason::Per,
        Role::NotRelevant => LegacyReason::NotRel,
        Role::Unknown => LegacyReason::Unknown,
    }
}

/// The DPS restriction of a NOMIS type; `NONEX` and `TNA` become `WING`, the strictest.
pub fn to_dps_restriction(legacy: LegacyRestrictionType) -> RestrictionType {
    match legacy {
        LegacyRestrictionType::Cell => RestrictionType::Cell,
        LegacyRestrictionType::Land => RestrictionType::Landing,
        LegacyRestrictionType::Wing | LegacyRestrictionType::Nonex | LegacyRestrictionType::Tna => {
            RestrictionType::Wing
        }
    }
}

/// The NOMIS type of a DPS restriction.
pub fn to_nomis_restriction(restriction: RestrictionType) -> LegacyRestrictionType {
    match restriction {
        RestrictionType::Cell => LegacyRestrictionType::Cell,
        RestrictionType::Landing => LegacyRestrictionType::Land,
        RestrictionType::Wing => LegacyRestrictionType::Wing,
    }
}

/// Whether a NOMIS record with these dates is open on `today`: it has started and has not
/// expired (`effective ≤ today < expiry`, no expiry = never expires).
pub fn is_open_on(effective: NaiveDate, expiry: Option<NaiveDate>, today: NaiveDate) -> bool {
    effective <= today && expiry.is_none_or(|e| e > today)
}

/// The key NOMIS and the mapping service identify a non-association by: the two prisoner
/// numbers in lexicographic order and the NOMIS type sequence.
pub fn ordered_pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LegacyReason::*;

    #[test]
    fn inbound_reasons_per_side() {
        assert_eq!(
            to_dps_roles_and_reason(Vic, Per),
            (Role::Victim, Role::Perpetrator, Reason::Other)
        );
        assert_eq!(
            to_dps_roles_and_reason(Per, Vic),
            (Role::Perpetrator, Role::Victim, Reason::Other)
        );
        assert_eq!(
            to_dps_roles_and_reason(NotRel, Unknown),
            (Role::NotRelevant, Role::Unknown, Reason::Other)
        );
        assert_eq!(
            to_dps_roles_and_reason(Unknown, Unknown),
            (Role::Unknown, Role::Unknown, Reason::Other)
        );
    }

    #[test]
    fn inbound_bullying_and_gangs_set_the_reason() {
        assert_eq!(
            to_dps_roles_and_reason(Bul, Bul),
            (Role::Unknown, Role::Unknown, Reason::Bullying)
        );
        assert_eq!(
            to_dps_roles_and_reason(Riv, Riv),
            (Role::NotRelevant, Role::NotRelevant, Reason::GangRelated)
        );
        assert_eq!(
            to_dps_roles_and_reason(Bul, Vic),
            (Role::Unknown, Role::Victim, Reason::Bullying)
        );
        assert_eq!(
            to_dps_roles_and_reason(Per, Riv),
            (Role::Perpetrator, Role::NotRelevant, Reason::GangRelated)
        );
        // Both sides name a reason: the second side's wins.
        assert_eq!(
            to_dps_roles_and_reason(Bul, Riv),
            (Role::Unknown, Role::NotRelevant, Reason::GangRelated)
        );
        assert_eq!(
            to_dps_roles_and_reason(Riv, Bul),
            (Role::NotRelevant, Role::Unknown, Reason::Bullying)
        );
    }

    #[test]
    fn outbound_reasons() {
        assert_eq!(
            to_nomis_reasons(Role::Victim, Role::Perpetrator, Reason::Violence),
            (Vic, Per)
        );
        assert_eq!(
            to_nomis_reasons(Role::NotRelevant, Role::Unknown, Reason::Threat),
            (NotRel, Unknown)
        );
        assert_eq!(
            to_nomis_reasons(Role::Victim, Role::Perpetrator, Reason::GangRelated),
            (Riv, Riv)
        );
        assert_eq!(
            to_nomis_reasons(Role::Victim, Role::Perpetrator, Reason::Bullying),
            (Bul, Bul)
        );
        for r in [Reason::OrganisedCrime, Reason::LegalRequest, Reason::Other] {
            assert_eq!(
                to_nomis_reasons(Role::Perpetrator, Role::Victim, r),
                (Per, Vic)
            );
        }
    }

    #[test]
    fn restrictions_both_ways() {
        assert_eq!(
            to_dps_restriction(LegacyRestrictionType::Cell),
            RestrictionType::Cell
        );
        assert_eq!(
            to_dps_restriction(LegacyRestrictionType::Land),
            RestrictionType::Landing
        );
        assert_eq!(
            to_dps_restriction(LegacyRestrictionType::Wing),
            RestrictionType::Wing
        );
        assert_eq!(
            to_dps_restriction(LegacyRestrictionType::Nonex),
            RestrictionType::Wing
        );
        assert_eq!(
            to_dps_restriction(LegacyRestrictionType::Tna),
            RestrictionType::Wing
        );
        assert_eq!(
            to_nomis_restriction(RestrictionType::Cell),
            LegacyRestrictionType::Cell
        );
        assert_eq!(
            to_nomis_restriction(RestrictionType::Landing),
            LegacyRestrictionType::Land
        );
        assert_eq!(
            to_nomis_restriction(RestrictionType::Wing),
            LegacyRestrictionType::Wing
        );
        for r in RestrictionType::ALL {
            assert_eq!(to_dps_restriction(to_nomis_restriction(*r)), *r);
        }
    }

    #[test]
    fn roles_survive_a_round_trip_unless_the_reason_is_gang_or_bullying() {
        for first in Role::ALL {
            for second in Role::ALL {
                let (a, b) = to_nomis_reasons(*first, *second, Reason::Threat);
                assert_eq!(
                    to_dps_roles_and_reason(a, b),
                    (*first, *second, Reason::Other)
                );
            }
        }
    }

    #[test]
    fn codes_and_descriptions() {
        assert_eq!(LegacyReason::parse("NOT_REL"), Some(NotRel));
        assert_eq!(LegacyReason::parse("XYZ"), None);
        assert_eq!(Riv.description(), "Rival Gang");
        assert_eq!(
            LegacyRestrictionType::parse("TNA"),
            Some(LegacyRestrictionType::Tna)
        );
        assert_eq!(
            LegacyRestrictionType::Land.description(),
            "Do Not Locate on Same Landing"
        );
        assert_eq!(serde_json::to_value(NotRel).unwrap(), "NOT_REL");
    }

    #[test]
    fn open_by_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2024-06-10");
        assert!(is_open_on(d("2024-06-10"), None, today));
        assert!(is_open_on(d("2020-01-01"), Some(d("2024-06-11")), today));
        assert!(
            !is_open_on(d("2020-01-01"), Some(d("2024-06-10")), today),
            "expires today = closed"
        );
        assert!(!is_open_on(d("2020-01-01"), Some(d("2021-01-01")), today));
        assert!(
            !is_open_on(d("2024-06-11"), None, today),
            "not yet effective"
        );
    }

    #[test]
    fn pair_order() {
        assert_eq!(ordered_pair("B1234BB", "A1234AA"), ("A1234AA", "B1234BB"));
        assert_eq!(ordered_pair("A1234AA", "B1234BB"), ("A1234AA", "B1234BB"));
    }
}
