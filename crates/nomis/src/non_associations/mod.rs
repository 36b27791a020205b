//! Non-associations, NOMIS side (reference domain-apis §5.1): two prisoners who must be
//! kept apart.
//!
//! NOMIS stores each non-association twice, once per direction (A→B and B→A), as a header
//! in `offender_non_associations` and a detail per type sequence in `offender_na_details`;
//! both directions carry the same `type_seq`. Every write changes both directions in one
//! transaction and raises one offender event per direction through the outbox
//! (`NON_ASSOCIATION_DETAIL-UPSERTED` / `-DELETED`, reference migration-sync §3.1).

mod api;
mod events;
mod store;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) use api::routes;
pub use events::{DELETED, UPSERTED};
pub use store::*;

/// The most ids one page returns.
pub const MAX_PAGE_SIZE: u64 = 10_000;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateNonAssociationRequest {
    #[schema(example = "A1234BC")]
    pub offender_no: String,
    #[schema(example = "B5678CD")]
    pub ns_offender_no: String,
    /// The first prisoner's reason, domain NON_ASSO_RSN (e.g. VIC).
    pub reason: String,
    /// The other prisoner's reason, domain NON_ASSO_RSN (e.g. PER).
    pub recip_reason: String,
    /// Domain NON_ASSO_TYP (CELL, LAND, WING, NONEX, TNA).
    #[serde(rename = "type")]
    pub na_type: String,
    #[serde(default)]
    pub authorised_by: Option<String>,
    /// Not in the future.
    pub effective_date: NaiveDate,
    /// At most 240 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateNonAssociationResponse {
    pub type_sequence: i32,
}

/// A full replacement of one detail (both directions): absent optional fields are cleared.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateNonAssociationRequest {
    pub reason: String,
    pub recip_reason: String,
    #[serde(rename = "type")]
    pub na_type: String,
    #[serde(default)]
    pub authorised_by: Option<String>,
    pub effective_date: NaiveDate,
    #[serde(default)]
    pub expiry_date: Option<NaiveDate>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One detail record, seen from `offenderNo`'s side.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationResponse {
    pub offender_no: String,
    pub ns_offender_no: String,
    pub type_sequence: i32,
    /// `offenderNo`'s reason (NON_ASSO_RSN).
    pub reason: String,
    /// `nsOffenderNo`'s reason (NON_ASSO_RSN).
    pub recip_reason: String,
    #[serde(rename = "type")]
    pub na_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorised_by: Option<String>,
    /// The NOMIS user who last changed the record.
    pub updated_by: String,
    pub effective_date: NaiveDate,
    /// Open while null or after today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub audit_module_name: String,
    /// Local (Europe/London) date-time of the last change.
    #[schema(value_type = String, example = "2024-02-08T13:56:40.123456")]
    pub modify_datetime: NaiveDateTime,
}

/// A pair, primary direction (`offenderNo1 < offenderNo2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationIdResponse {
    pub offender_no1: String,
    pub offender_no2: String,
}

/// A Spring `Page` of pairs, as the real API returns it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationIdPage {
    pub content: Vec<NonAssociationIdResponse>,
    pub total_elements: u64,
    pub total_pages: u64,
    /// The page number, from 0.
    pub number: u64,
    pub size: u64,
    pub first: bool,
    pub last: bool,
    pub number_of_elements: u64,
    pub empty: bool,
}

/// A keyset page: pairs strictly after the `after` pair, in pair order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationIdKeysetPage {
    pub content: Vec<NonAssociationIdResponse>,
    pub size: u64,
    /// The `after` value for the next page (`A1234BC/B5678CD`); null when there is no more.
    pub next: Option<String>,
}

/// Which pairs an id listing covers: those with a detail effective within the dates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdFilter {
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
}
