//! The JSON shapes of the DPS API (reference §3.3), with the field names of the service
//! this re-implements.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::London;
use serde::{Deserialize, Serialize};
use tandem_platform::ids::PrisonerNumber;
use utoipa::ToSchema;

use crate::model::{Reason, RestrictionType, Role};
use crate::nomis_codes::{
    LegacyReason, LegacyRestrictionType, to_nomis_reasons, to_nomis_restriction,
};
use crate::prisoners::Prisoner;
use crate::store::NonAssociation;
use crate::sync::local_date_time;

/// A date-time sent by a client: with an offset (`2024-01-02T10:00:00Z`), or local to
/// London (`2024-01-02T10:00:00`) as the HMPPS services send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClientDateTime(pub DateTime<Utc>);

impl TryFrom<String> for ClientDateTime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
            return Ok(Self(t.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .and_then(|local| London.from_local_datetime(&local).earliest())
            .map(|t| Self(t.with_timezone(&Utc)))
            .ok_or_else(|| {
                format!("invalid date-time '{s}': expected e.g. 2024-01-02T10:00:00 (London) or 2024-01-02T10:00:00Z")
            })
    }
}

impl utoipa::PartialSchema for ClientDateTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Local date-time (Europe/London), or ISO-8601 with an offset",
            ))
            .examples([serde_json::json!("2024-01-02T10:00:00")])
            .into()
    }
}
impl ToSchema for ClientDateTime {}

/// A non-association (`NonAssociation` in the reference). Times are local (London).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationDto {
    pub id: i64,
    pub first_prisoner_number: String,
    pub first_prisoner_role: Role,
    pub first_prisoner_role_description: String,
    pub second_prisoner_number: String,
    pub second_prisoner_role: Role,
    pub second_prisoner_role_description: String,
    pub reason: Reason,
    pub reason_description: String,
    pub restriction_type: RestrictionType,
    pub restriction_type_description: String,
    pub comment: String,
    #[schema(example = "2024-01-02T10:00:00")]
    pub when_created: String,
    pub when_updated: String,
    pub updated_by: String,
    pub is_closed: bool,
    pub closed_by: Option<String>,
    pub closed_reason: Option<String>,
    pub closed_at: Option<String>,
    pub is_open: bool,
}

impl From<&NonAssociation> for NonAssociationDto {
    fn from(na: &NonAssociation) -> Self {
        Self {
            id: na.id,
            first_prisoner_number: na.first_prisoner_number.clone(),
            first_prisoner_role: na.first_prisoner_role,
            first_prisoner_role_description: na.first_prisoner_role.description().into(),
            second_prisoner_number: na.second_prisoner_number.clone(),
            second_prisoner_role: na.second_prisoner_role,
            second_prisoner_role_description: na.second_prisoner_role.description().into(),
            reason: na.reason,
            reason_description: na.reason.description().into(),
            restriction_type: na.restriction_type,
            restriction_type_description: na.restriction_type.description().into(),
            comment: na.comment.clone(),
            when_created: local_date_time(na.when_created),
            when_updated: local_date_time(na.when_updated),
            updated_by: na.updated_by.clone(),
            is_closed: na.is_closed,
            closed_by: na.closed_by.clone(),
            closed_reason: na.closed_reason.clone(),
            closed_at: na.closed_at.map(local_date_time),
            is_open: na.is_open(),
        }
    }
}

/// `POST /non-associations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateNonAssociationRequest {
    pub first_prisoner_number: PrisonerNumber,
    pub first_prisoner_role: Role,
    pub second_prisoner_number: PrisonerNumber,
    pub second_prisoner_role: Role,
    pub reason: Reason,
    pub restriction_type: RestrictionType,
    /// At least one character.
    pub comment: String,
}

/// `PATCH /non-associations/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchNonAssociationRequest {
    #[serde(default)]
    pub first_prisoner_role: Option<Role>,
    #[serde(default)]
    pub second_prisoner_role: Option<Role>,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub restriction_type: Option<RestrictionType>,
    /// At least one character when present.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `PUT /non-associations/{id}/close`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseNonAssociationRequest {
    /// At least one character.
    pub closed_reason: String,
    /// Default now.
    #[serde(default)]
    pub closed_at: Option<ClientDateTime>,
    /// 1–60 characters; default the user of the token.
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// `PUT /non-associations/{id}/reopen`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReopenNonAssociationRequest {
    /// At least one character; becomes the comment.
    pub reopen_reason: String,
    /// Default now.
    #[serde(default)]
    pub reopened_at: Option<ClientDateTime>,
    /// 1–60 characters; default the user of the token.
    #[serde(default)]
    pub reopened_by: Option<String>,
}

/// `POST /non-associations/{id}/delete`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteNonAssociationRequest {
    /// At least one character.
    pub deletion_reason: String,
    /// 1–60 characters.
    pub staff_user_name_requesting_deletion: String,
}

/// Spring's `sort` object inside a page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SortInfo {
    pub empty: bool,
    pub sorted: bool,
    pub unsorted: bool,
}

impl SortInfo {
    pub fn new(sorted: bool) -> Self {
        Self {
            empty: !sorted,
            sorted,
            unsorted: !sorted,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageableInfo {
    pub page_number: u64,
    pub page_size: u64,
    pub offset: u64,
    pub sort: SortInfo,
    pub paged: bool,
    pub unpaged: bool,
}

/// A page of non-associations, shaped as Spring Data's `Page` JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationPage {
    pub content: Vec<NonAssociationDto>,
    pub pageable: PageableInfo,
    pub total_elements: u64,
    pub total_pages: u64,
    pub last: bool,
    pub first: bool,
    pub size: u64,
    pub number: u64,
    pub sort: SortInfo,
    pub number_of_elements: u64,
    pub empty: bool,
}

impl NonAssociationPage {
    pub fn new(content: Vec<NonAssociationDto>, page: u64, size: u64, total: u64) -> Self {
        let total_pages = total.div_ceil(size.max(1));
        let n = content.len() as u64;
        let sort = SortInfo::new(true);
        Self {
            pageable: PageableInfo {
                page_number: page,
                page_size: size,
                offset: page.saturating_mul(size),
                sort: sort.clone(),
                paged: true,
                unpaged: false,
            },
            total_elements: total,
            total_pages,
            last: page.saturating_add(1) >= total_pages,
            first: page == 0,
            size,
            number: page,
            sort,
            number_of_elements: n,
            empty: n == 0,
            content,
        }
    }
}

/// The other prisoner in `GET /prisoner/{prisonerNumber}/non-associations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtherPrisonerDetails {
    pub prisoner_number: String,
    pub role: Role,
    pub role_description: String,
    pub first_name: String,
    pub last_name: String,
    pub prison_id: Option<String>,
    pub prison_name: Option<String>,
    pub cell_location: Option<String>,
}

/// One non-association seen from one prisoner's side.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrisonerNonAssociation {
    pub id: i64,
    /// This prisoner's role.
    pub role: Role,
    pub role_description: String,
    pub reason: Reason,
    pub reason_description: String,
    pub restriction_type: RestrictionType,
    pub restriction_type_description: String,
    pub comment: String,
    pub authorised_by: Option<String>,
    pub when_created: String,
    pub when_updated: String,
    pub updated_by: String,
    pub is_closed: bool,
    pub closed_by: Option<String>,
    pub closed_reason: Option<String>,
    pub closed_at: Option<String>,
    pub is_open: bool,
    pub other_prisoner_details: OtherPrisonerDetails,
}

/// `GET /prisoner/{prisonerNumber}/non-associations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrisonerNonAssociations {
    pub prisoner_number: String,
    pub first_name: String,
    pub last_name: String,
    pub prison_id: Option<String>,
    pub prison_name: Option<String>,
    pub cell_location: Option<String>,
    pub open_count: u64,
    pub closed_count: u64,
    pub non_associations: Vec<PrisonerNonAssociation>,
}

impl PrisonerNonAssociation {
    /// `na` from `me`'s side; `other` is what the directory knows of the other prisoner.
    pub fn new(na: &NonAssociation, me: &str, other: Option<&Prisoner>) -> Option<Self> {
        let (role, other_number, other_role) = na.from_side_of(me)?;
        // A prisoner the directory does not know (e.g. since merged away) is still listed,
        // so no non-association disappears from view.
        let unknown = "UNKNOWN".to_string();
        Some(Self {
            id: na.id,
            role,
            role_description: role.description().into(),
            reason: na.reason,
            reason_description: na.reason.description().into(),
            restriction_type: na.restriction_type,
            restriction_type_description: na.restriction_type.description().into(),
            comment: na.comment.clone(),
            authorised_by: na.authorised_by.clone(),
            when_created: local_date_time(na.when_created),
            when_updated: local_date_time(na.when_updated),
            updated_by: na.updated_by.clone(),
            is_closed: na.is_closed,
            closed_by: na.closed_by.clone(),
            closed_reason: na.closed_reason.clone(),
            closed_at: na.closed_at.map(local_date_time),
            is_open: na.is_open(),
            other_prisoner_details: OtherPrisonerDetails {
                prisoner_number: other_number.to_string(),
                role: other_role,
                role_description: other_role.description().into(),
                first_name: other.map_or_else(|| unknown.clone(), |p| p.first_name.clone()),
                last_name: other.map_or(unknown, |p| p.last_name.clone()),
                prison_id: other.and_then(|p| p.prison_id.clone()),
                prison_name: other.and_then(|p| p.prison_name.clone()),
                cell_location: other.and_then(|p| p.cell_location.clone()),
            },
        })
    }
}

/// The other prisoner of a [`LegacyNonAssociation`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LegacyOtherPrisoner {
    pub offender_no: String,
    pub reason_code: LegacyReason,
    pub reason_description: String,
}

/// `GET /legacy/api/non-associations/{id}`: the NOMIS-shaped view the DPS → NOMIS sync
/// reads.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LegacyNonAssociation {
    pub id: i64,
    /// The first prisoner.
    pub offender_no: String,
    pub reason_code: LegacyReason,
    pub reason_description: String,
    pub type_code: LegacyRestrictionType,
    pub type_description: String,
    /// The date it was created.
    #[schema(example = "2024-01-02")]
    pub effective_date: String,
    /// The date it was closed; null while open.
    pub expiry_date: Option<String>,
    pub authorised_by: Option<String>,
    pub comments: String,
    pub offender_non_association: LegacyOtherPrisoner,
}

fn london_date(t: DateTime<Utc>) -> String {
    tandem_platform::time::london_local(t)
        .date()
        .format("%Y-%m-%d")
        .to_string()
}

impl From<&NonAssociation> for LegacyNonAssociation {
    fn from(na: &NonAssociation) -> Self {
        let (first, second) =
            to_nomis_reasons(na.first_prisoner_role, na.second_prisoner_role, na.reason);
        let type_code = to_nomis_restriction(na.restriction_type);
        Self {
            id: na.id,
            offender_no: na.first_prisoner_number.clone(),
            reason_code: first,
            reason_description: first.description().into(),
            type_code,
            type_description: type_code.description().into(),
            effective_date: london_date(na.when_created),
            expiry_date: na.closed_at.map(london_date),
            authorised_by: na.authorised_by.clone(),
            comments: na.comment.clone(),
            offender_non_association: LegacyOtherPrisoner {
                offender_no: na.second_prisoner_number.clone(),
                reason_code: second,
                reason_description: second.description().into(),
            },
        }
    }
}

/// One code and its description.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CodeDescription {
    pub code: String,
    pub description: String,
}

/// `GET /constants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Constants {
    pub roles: Vec<CodeDescription>,
    pub reasons: Vec<CodeDescription>,
    pub restriction_types: Vec<CodeDescription>,
}

impl Constants {
    pub fn get() -> Self {
        fn list<T: Copy>(
            all: &[T],
            code: fn(T) -> &'static str,
            desc: fn(T) -> &'static str,
        ) -> Vec<CodeDescription> {
            all.iter()
                .map(|v| CodeDescription {
                    code: code(*v).into(),
                    description: desc(*v).into(),
                })
                .collect()
        }
        Self {
            roles: list(Role::ALL, Role::code, Role::description),
            reasons: list(Reason::ALL, Reason::code, Reason::description),
            restriction_types: list(
                RestrictionType::ALL,
                RestrictionType::code,
                RestrictionType::description,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_date_times() {
        let local = ClientDateTime::try_from("2024-07-01T10:00:00".to_string()).unwrap();
        assert_eq!(local.0.to_rfc3339(), "2024-07-01T09:00:00+00:00");
        let z = ClientDateTime::try_from("2024-07-01T10:00:00Z".to_string()).unwrap();
        assert_eq!(z.0.to_rfc3339(), "2024-07-01T10:00:00+00:00");
        assert!(ClientDateTime::try_from("yesterday".to_string()).is_err());
    }

    #[test]
    fn page_arithmetic() {
        let p = NonAssociationPage::new(vec![], 2, 20, 41);
        assert_eq!(p.total_pages, 3);
        assert!(p.last);
        assert!(!p.first);
        assert_eq!(p.pageable.offset, 40);
        let p = NonAssociationPage::new(vec![], 0, 20, 0);
        assert!(p.last && p.first && p.empty);
    }
}
