//! The NOMIS-shaped contract of seed 002: the body `POST /sync` and `POST /migrate` take,
//! the view `GET /non-associations/{prisonerNumber}` returns, and the translation between
//! them and DPS records (reference §3.5).
//!
//! The seed's body names one prisoner and, per item, the other prisoner with each side's
//! NOMIS reason. tandem adds to each item `typeSequence` (which NOMIS record it is) and an
//! optional `id` (the DPS record, when the caller knows it from the mapping service), so a
//! record is identified without guessing.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::London;
use serde::{Deserialize, Serialize};
use tandem_platform::ids::PrisonerNumber;
use utoipa::ToSchema;

use crate::error::NaError;
use crate::model::{MAX_USER_LEN, defaults};
use crate::nomis_codes::{
    LegacyReason, LegacyRestrictionType, is_open_on, to_dps_restriction, to_dps_roles_and_reason,
    to_nomis_reasons, to_nomis_restriction,
};
use crate::store::{NonAssociation, SyncOutcome, SyncRecord, check_two_people};

/// A NOMIS date: `2021-07-05`, or a local date-time (`2021-07-05T10:35:17`) whose time is
/// ignored, since NOMIS keeps dates only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NomisDate(pub NaiveDate);

impl TryFrom<String> for NomisDate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        // `FromStr` is YYYY-MM-DD without parsing a format string per date.
        s.parse::<NaiveDate>()
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.date())
            })
            .map(NomisDate)
            .map_err(|_| format!("invalid date '{s}': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"))
    }
}

impl utoipa::PartialSchema for NomisDate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A date (YYYY-MM-DD) or a local date-time whose time is ignored",
            ))
            .examples([serde_json::json!("2021-07-05")])
            .into()
    }
}
impl ToSchema for NomisDate {}

/// The body of `POST /sync` and `POST /migrate`: one prisoner's non-associations as NOMIS
/// holds them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomisNonAssociationsRequest {
    /// The prisoner whose non-associations these are (the first prisoner of each).
    pub prisoner_number: PrisonerNumber,
    pub non_associations: Vec<NomisNonAssociationItem>,
    /// tandem addition: who made the change in NOMIS, for every item that does not name
    /// its own (1–60 characters; default `NON_ASSOCIATIONS_API`).
    #[serde(default)]
    pub last_modified_by_username: Option<String>,
}

/// One NOMIS non-association (one `OFFENDER_NA_DETAILS` row).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomisNonAssociationItem {
    /// tandem addition: the DPS id, when the caller knows it from the mapping service.
    /// With it, `/sync` updates exactly that record (404 when it does not exist).
    #[serde(default)]
    pub id: Option<i64>,
    /// tandem addition: the NOMIS type sequence (`TYPE_SEQ`), which with the pair of
    /// prisoner numbers identifies the NOMIS record. Required, 1 or more.
    pub type_sequence: i32,
    /// The first prisoner's NOMIS reason (domain `NON_ASSO_RSN`).
    pub reason_code: LegacyReason,
    /// The NOMIS type (domain `NON_ASSO_TYP`); `NONEX` and `TNA` are recorded as `WING`.
    pub type_code: LegacyRestrictionType,
    /// Open from this date; a future date counts as today.
    pub effective_date: NomisDate,
    /// Closed from this date; absent or after today = still open.
    #[serde(default)]
    pub expiry_date: Option<NomisDate>,
    /// Free text, up to 60 characters.
    #[serde(default)]
    pub authorised_by: Option<String>,
    /// Default `No comment provided`.
    #[serde(default)]
    pub comments: Option<String>,
    pub prisoner_non_association: NomisOtherPrisoner,
    /// tandem addition: who made this change in NOMIS (1–60 characters).
    #[serde(default)]
    pub last_modified_by_username: Option<String>,
}

/// The other prisoner of a NOMIS non-association and the reason on their side.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NomisOtherPrisoner {
    pub prisoner_number: PrisonerNumber,
    pub reason_code: LegacyReason,
}

/// What `/sync` and `/migrate` did with each item, in request order: what the caller
/// records in the mapping service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The DPS id.
    pub id: i64,
    pub type_sequence: i32,
    pub first_prisoner_number: String,
    pub second_prisoner_number: String,
    /// True when this request created the DPS record.
    pub created: bool,
}

impl From<SyncOutcome> for SyncResult {
    fn from(o: SyncOutcome) -> Self {
        Self {
            id: o.id,
            type_sequence: o.type_sequence,
            first_prisoner_number: o.first_prisoner_number,
            second_prisoner_number: o.second_prisoner_number,
            created: o.created,
        }
    }
}

/// Midnight of `date` in London, in UTC: what a NOMIS date means as a timestamp.
pub fn london_midnight(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(chrono::NaiveTime::MIN);
    London
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

fn check_user(field: &str, value: &Option<String>) -> Result<(), NaError> {
    match value {
        Some(v) if v.trim().is_empty() || v.chars().count() > MAX_USER_LEN => Err(
            NaError::validation(format!("{field}: must be 1 to {MAX_USER_LEN} characters")),
        ),
        _ => Ok(()),
    }
}

/// The first NOMIS record that `records` name twice, as the positions of both (in the
/// order given). A NOMIS record is its pair of prisoners (either way round) and type
/// sequence; named twice in one call, the second silently replaced or was dropped after
/// the first, and a DPS id named twice would be written twice.
pub fn first_repeat<'a>(
    records: impl IntoIterator<Item = &'a SyncRecord>,
) -> Option<(usize, usize)> {
    let mut keys = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for (i, r) in records.into_iter().enumerate() {
        let (a, b) = (
            r.first_prisoner_number.as_str(),
            r.second_prisoner_number.as_str(),
        );
        let key = (a.min(b), a.max(b), r.type_sequence);
        if let Some(j) = keys.insert(key, i) {
            return Some((j, i));
        }
        if let Some(id) = r.id
            && let Some(j) = ids.insert(id, i)
        {
            return Some((j, i));
        }
    }
    None
}

/// Translates a request into DPS records as of `today`, validating what serde cannot.
///
/// Open ⇔ `effectiveDate ≤ today < expiryDate`; dates after today count as today;
/// `whenCreated` is the effective date at midnight and a closed record's `closedAt` the
/// expiry date at midnight (London).
pub fn to_sync_records(
    req: &NomisNonAssociationsRequest,
    today: NaiveDate,
) -> Result<Vec<SyncRecord>, NaError> {
    check_user("lastModifiedByUsername", &req.last_modified_by_username)?;
    let records = item_records(req, today)?;
    if let Some((j, i)) = first_repeat(&records) {
        return Err(NaError::validation(format!(
            "nonAssociations[{i}]: the same NOMIS record (or DPS id) as nonAssociations[{j}]; name each once"
        )));
    }
    Ok(records)
}

fn item_records(
    req: &NomisNonAssociationsRequest,
    today: NaiveDate,
) -> Result<Vec<SyncRecord>, NaError> {
    let first = req.prisoner_number.as_str();
    req.non_associations
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |field: &str| format!("nonAssociations[{i}].{field}");
            let second = item.prisoner_non_association.prisoner_number.as_str();
            if first == second {
                return Err(NaError::validation(format!(
                    "{}: a prisoner cannot be non-associated with themself ({first})",
                    at("prisonerNonAssociation.prisonerNumber")
                )));
            }
            check_two_people(first, second)?;
            if item.type_sequence < 1 {
                return Err(NaError::validation(format!(
                    "{}: must be 1 or more",
                    at("typeSequence")
                )));
            }
            if item.id.is_some_and(|id| id < 1) {
                return Err(NaError::validation(format!(
                    "{}: must be 1 or more",
                    at("id")
                )));
            }
            check_user(
                &at("lastModifiedByUsername"),
                &item.last_modified_by_username,
            )?;
            if item
                .authorised_by
                .as_ref()
                .is_some_and(|a| a.chars().count() > MAX_USER_LEN)
            {
                return Err(NaError::validation(format!(
                    "{}: must be at most {MAX_USER_LEN} characters",
                    at("authorisedBy")
                )));
            }
            let (first_role, second_role, reason) = to_dps_roles_and_reason(
                item.reason_code,
                item.prisoner_non_association.reason_code,
            );
            let effective = item.effective_date.0;
            let expiry = item.expiry_date.map(|d| d.0);
            let open = is_open_on(effective, expiry, today);
            let closed_on = expiry.unwrap_or(today).min(today);
            Ok(SyncRecord {
                id: item.id,
                type_sequence: item.type_sequence,
                first_prisoner_number: first.to_string(),
                first_prisoner_role: first_role,
                second_prisoner_number: second.to_string(),
                second_prisoner_role: second_role,
                reason,
                restriction_type: to_dps_restriction(item.type_code),
                comment: item
                    .comments
                    .as_deref()
                    .filter(|c| !c.trim().is_empty())
                    .unwrap_or(defaults::NO_COMMENT)
                    .to_string(),
                authorised_by: item.authorised_by.clone().filter(|a| !a.trim().is_empty()),
                user: item
                    .last_modified_by_username
                    .clone()
                    .or_else(|| req.last_modified_by_username.clone())
                    .unwrap_or_else(|| defaults::SYSTEM_USER.to_string()),
                when_created: london_midnight(effective.min(today)),
                closed_at: (!open).then(|| london_midnight(closed_on)),
            })
        })
        .collect()
}

/// `GET /non-associations/{prisonerNumber}`: one prisoner's non-associations as NOMIS
/// would show them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NomisNonAssociationsView {
    pub prisoner_number: String,
    pub non_associations: Vec<NomisNonAssociationView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NomisNonAssociationView {
    /// tandem addition: the DPS id.
    pub id: i64,
    /// tandem addition: the NOMIS type sequence, when the record came from NOMIS.
    pub type_sequence: Option<i32>,
    /// This prisoner's NOMIS reason.
    pub reason_code: LegacyReason,
    pub type_code: LegacyRestrictionType,
    /// When it was created (local date-time, London).
    pub effective_date: String,
    /// When it was closed (local date-time, London); null while open.
    pub expiry_date: Option<String>,
    pub authorised_by: Option<String>,
    pub comments: String,
    pub prisoner_non_association: NomisOtherPrisonerView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NomisOtherPrisonerView {
    pub prisoner_number: String,
    /// The other prisoner's NOMIS reason.
    pub reason_code: LegacyReason,
}

/// A local (London) date-time as NOMIS-shaped payloads carry it.
pub fn local_date_time(t: DateTime<Utc>) -> String {
    tandem_platform::time::london_local(t)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// The NOMIS view of `records` from `prisoner_number`'s side.
pub fn nomis_view(prisoner_number: &str, records: &[NonAssociation]) -> NomisNonAssociationsView {
    let non_associations = records
        .iter()
        .filter_map(|na| {
            let (first_reason, second_reason) =
                to_nomis_reasons(na.first_prisoner_role, na.second_prisoner_role, na.reason);
            let (mine, other, other_reason) = if na.first_prisoner_number == prisoner_number {
                (first_reason, &na.second_prisoner_number, second_reason)
            } else if na.second_prisoner_number == prisoner_number {
                (second_reason, &na.first_prisoner_number, first_reason)
            } else {
                return None;
            };
            Some(NomisNonAssociationView {
                id: na.id,
                type_sequence: na.nomis_type_sequence,
                reason_code: mine,
                type_code: to_nomis_restriction(na.restriction_type),
                effective_date: local_date_time(na.when_created),
                expiry_date: na.closed_at.map(local_date_time),
                authorised_by: na.authorised_by.clone(),
                comments: na.comment.clone(),
                prisoner_non_association: NomisOtherPrisonerView {
                    prisoner_number: other.clone(),
                    reason_code: other_reason,
                },
            })
        })
        .collect();
    NomisNonAssociationsView {
        prisoner_number: prisoner_number.to_string(),
        non_associations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Reason, RestrictionType, Role};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn request(items: serde_json::Value) -> NomisNonAssociationsRequest {
        serde_json::from_value(
            serde_json::json!({"prisonerNumber": "A9109UD", "nonAssociations": items}),
        )
        .unwrap()
    }

    #[test]
    fn nomis_dates_are_dates_or_date_times() {
        let date = |s: &str| NomisDate::try_from(s.to_string()).map(|n| n.0);
        assert_eq!(date("2021-07-05"), Ok(d("2021-07-05")));
        assert_eq!(date("2021-07-05T10:11:12.123"), Ok(d("2021-07-05")));
        for bad in ["2021-13-01", "05/07/2021", "2021-07-05Z", ""] {
            let e = date(bad).unwrap_err();
            assert!(e.contains("expected YYYY-MM-DD"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_seed_body_with_a_type_sequence_translates() {
        let req = request(serde_json::json!([{
            "typeSequence": 1,
            "reasonCode": "VIC", "typeCode": "WING",
            "effectiveDate": "2021-07-05T10:35:17", "expiryDate": "2021-07-05T10:35:17",
            "authorisedBy": "Staff Name", "comments": "Do not location near",
            "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "PER"}
        }]));
        let r = &to_sync_records(&req, d("2024-01-10")).unwrap()[0];
        assert_eq!(r.first_prisoner_number, "A9109UD");
        assert_eq!(r.second_prisoner_number, "A0135GA");
        assert_eq!(
            (r.first_prisoner_role, r.second_prisoner_role),
            (Role::Victim, Role::Perpetrator)
        );
        assert_eq!(r.reason, Reason::Other);
        assert_eq!(r.restriction_type, RestrictionType::Wing);
        assert_eq!(r.comment, "Do not location near");
        assert_eq!(r.authorised_by.as_deref(), Some("Staff Name"));
        assert_eq!(r.user, "NON_ASSOCIATIONS_API");
        // Summer: midnight in London is 23:00 UTC the day before.
        assert_eq!(r.when_created.to_rfc3339(), "2021-07-04T23:00:00+00:00");
        assert_eq!(
            r.closed_at,
            Some(r.when_created),
            "expired the day it started"
        );
    }

    #[test]
    fn open_closed_defaults_and_clamping() {
        let req = request(serde_json::json!([
            {"typeSequence": 1, "reasonCode": "BUL", "typeCode": "TNA", "effectiveDate": "2030-01-01",
             "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "BUL"}},
            {"typeSequence": 2, "reasonCode": "RIV", "typeCode": "LAND", "effectiveDate": "2020-01-01",
             "expiryDate": "2030-01-01", "comments": "  ", "lastModifiedByUsername": "NOMIS_USER",
             "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "RIV"}},
            {"typeSequence": 3, "reasonCode": "NOT_REL", "typeCode": "CELL", "effectiveDate": "2020-01-01",
             "expiryDate": "2023-02-01",
             "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "UNKNOWN"}}
        ]));
        let today = d("2024-01-10");
        let rs = to_sync_records(&req, today).unwrap();
        // Not yet effective: closed, dates clamped to today.
        assert_eq!(rs[0].when_created, london_midnight(today));
        assert_eq!(rs[0].closed_at, Some(london_midnight(today)));
        assert_eq!(rs[0].reason, Reason::Bullying);
        assert_eq!(rs[0].restriction_type, RestrictionType::Wing);
        assert_eq!(rs[0].comment, "No comment provided");
        // Expires in the future: open.
        assert_eq!(rs[1].closed_at, None);
        assert_eq!(rs[1].reason, Reason::GangRelated);
        assert_eq!(rs[1].restriction_type, RestrictionType::Landing);
        assert_eq!(rs[1].comment, "No comment provided");
        assert_eq!(rs[1].user, "NOMIS_USER");
        assert_eq!(rs[1].when_created.to_rfc3339(), "2020-01-01T00:00:00+00:00");
        // Expired: closed at the expiry date.
        assert_eq!(rs[2].closed_at, Some(london_midnight(d("2023-02-01"))));
        assert_eq!(
            (rs[2].first_prisoner_role, rs[2].second_prisoner_role),
            (Role::NotRelevant, Role::Unknown)
        );
    }

    #[test]
    fn rejects_what_serde_cannot_see() {
        let item = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"typeSequence": 1, "reasonCode": "VIC", "typeCode": "WING",
                "effectiveDate": "2020-01-01",
                "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "PER"}});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            request(serde_json::json!([v]))
        };
        let today = d("2024-01-10");
        let err =
            |r: NomisNonAssociationsRequest| to_sync_records(&r, today).unwrap_err().to_string();
        assert!(
            err(item(serde_json::json!({"typeSequence": 0})))
                .contains("nonAssociations[0].typeSequence")
        );
        assert!(
            err(item(serde_json::json!({"authorisedBy": "x".repeat(61)}))).contains("authorisedBy")
        );
        assert!(
            err(item(serde_json::json!({"lastModifiedByUsername": ""})))
                .contains("lastModifiedByUsername")
        );
        let same = item(
            serde_json::json!({"prisonerNonAssociation": {"prisonerNumber": "A9109UD", "reasonCode": "PER"}}),
        );
        assert!(err(same).contains("themself"));
        assert!(serde_json::from_value::<NomisNonAssociationItem>(serde_json::json!({
            "typeSequence": 1, "reasonCode": "XXX", "typeCode": "WING", "effectiveDate": "2020-01-01",
            "prisonerNonAssociation": {"prisonerNumber": "A0135GA", "reasonCode": "PER"}}))
        .is_err());
        assert!(NomisDate::try_from("05/07/2021".to_string()).is_err());
    }

    #[test]
    fn view_from_either_side() {
        let t = london_midnight(d("2021-07-05"));
        let na = NonAssociation {
            id: 9,
            first_prisoner_number: "A9109UD".into(),
            first_prisoner_role: Role::Victim,
            second_prisoner_number: "A0135GA".into(),
            second_prisoner_role: Role::Perpetrator,
            reason: Reason::Violence,
            restriction_type: RestrictionType::Landing,
            comment: "c".into(),
            authorised_by: Some("Staff Name".into()),
            when_created: t,
            when_updated: t,
            updated_by: "U".into(),
            is_closed: false,
            closed_by: None,
            closed_reason: None,
            closed_at: None,
            nomis_type_sequence: Some(2),
        };
        let v = nomis_view("A0135GA", std::slice::from_ref(&na));
        let item = &v.non_associations[0];
        assert_eq!(item.reason_code, LegacyReason::Per);
        assert_eq!(item.prisoner_non_association.prisoner_number, "A9109UD");
        assert_eq!(item.prisoner_non_association.reason_code, LegacyReason::Vic);
        assert_eq!(item.type_code, LegacyRestrictionType::Land);
        assert_eq!(item.effective_date, "2021-07-05T00:00:00");
        assert_eq!(item.expiry_date, None);
        assert_eq!(item.type_sequence, Some(2));
        assert!(nomis_view("B1111BB", &[na]).non_associations.is_empty());
    }
}
