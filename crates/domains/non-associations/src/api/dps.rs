//! The DPS endpoints (reference §3.3).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use http::StatusCode;
use sea_orm::Order;
use serde::{Deserialize, Serialize};
use tandem_auth::{Authorised, authorise};
use tandem_platform::http::Json;
use tandem_platform::ids::{PrisonId, PrisonerNumber};
use tandem_platform::{ApiError, ErrorResponse};
use utoipa::{IntoParams, ToSchema};

use super::dto::*;
use super::{AppState, Body, Delete, PathParams, QueryParams, Read, ReadOrSync, Reopen, Write};
use crate::error::NaError;
use crate::model::MAX_USER_LEN;
use crate::prisoners::Prisoner;
use crate::store::{
    Amendment, Closure, Inclusion, NewNonAssociation, NonAssociation, Reopening, SortField,
};
use crate::sync::{NomisNonAssociationsView, nomis_view};

const TAG: &str = "Non-associations";

fn not_blank(field: &str, value: &str) -> Result<(), NaError> {
    if value.trim().is_empty() {
        Err(NaError::validation(format!("{field}: must not be blank")))
    } else {
        Ok(())
    }
}

fn user_field(field: &str, value: &str) -> Result<(), NaError> {
    if value.trim().is_empty() || value.chars().count() > MAX_USER_LEN {
        Err(NaError::validation(format!(
            "{field}: must be 1 to {MAX_USER_LEN} characters"
        )))
    } else {
        Ok(())
    }
}

/// The user making a change: the token's user name, else 401 (errorCode 401).
fn token_user<R: tandem_auth::RoleRequirement>(auth: &Authorised<R>) -> Result<String, NaError> {
    auth.user_name()
        .map(str::to_string)
        .ok_or(NaError::UserMissing)
}

/// `includeOpen` / `includeClosed`, shared by the list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct InclusionQuery {
    /// Include open non-associations (default true).
    #[serde(default)]
    include_open: Option<bool>,
    /// Include closed non-associations (default false).
    #[serde(default)]
    include_closed: Option<bool>,
}

impl InclusionQuery {
    fn inclusion(&self) -> Result<Inclusion, NaError> {
        let inclusion = Inclusion {
            open: self.include_open.unwrap_or(true),
            closed: self.include_closed.unwrap_or(false),
        };
        if !inclusion.open && !inclusion.closed {
            return Err(NaError::validation(
                "includeOpen and includeClosed are both false: at least one must be true",
            ));
        }
        Ok(inclusion)
    }
}

/// Creates a non-association between two prisoners who are both in a prison.
#[utoipa::path(
    post, path = "/non-associations", tag = TAG,
    request_body = CreateNonAssociationRequest,
    responses(
        (status = 201, description = "Created", body = NonAssociationDto),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 401, description = "No token, or a token without a user name (errorCode 401)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_WRITE_NON_ASSOCIATIONS or the write scope", body = ErrorResponse),
        (status = 404, description = "A prisoner was not found", body = ErrorResponse),
        (status = 409, description = "An open non-association exists for the pair (101), or a prisoner is not in a prison (103)", body = ErrorResponse),
    )
)]
pub async fn create(
    State(s): State<AppState>,
    auth: Authorised<Write>,
    Body(req): Body<CreateNonAssociationRequest>,
) -> Result<(StatusCode, Json<NonAssociationDto>), ApiError> {
    let user = token_user(&auth)?;
    not_blank("comment", &req.comment)?;
    let (first, second) = (
        req.first_prisoner_number.to_string(),
        req.second_prisoner_number.to_string(),
    );
    crate::store::check_two_people(&first, &second)?;
    let found = s
        .prisoners
        .find_many(&[first.clone(), second.clone()])
        .await
        .map_err(NaError::from)?;
    for number in [&first, &second] {
        let prisoner = found
            .get(number)
            .ok_or_else(|| NaError::PrisonerNotFound(number.clone()))?;
        if prisoner.prison_id.is_none() {
            return Err(NaError::NotInPrison(number.clone()).into());
        }
    }
    let na = s
        .store
        .create(NewNonAssociation {
            first_prisoner_number: first,
            first_prisoner_role: req.first_prisoner_role,
            second_prisoner_number: second,
            second_prisoner_role: req.second_prisoner_role,
            reason: req.reason,
            restriction_type: req.restriction_type,
            comment: req.comment,
            created_by: user,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(NonAssociationDto::from(&na))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ListQuery {
    /// Include open non-associations (default true).
    #[serde(default)]
    include_open: Option<bool>,
    /// Include closed non-associations (default false).
    #[serde(default)]
    include_closed: Option<bool>,
    /// Page number, from 0.
    #[serde(default)]
    page: Option<u64>,
    /// Page size, 1 to 200 (default 20).
    #[serde(default)]
    size: Option<u64>,
    // `sort` may repeat, which a struct cannot take: it is read from the raw query.
}

const MAX_PAGE_SIZE: u64 = 200;

/// Reads every `sort` parameter of a query string, Spring style.
fn parse_sort(raw: Option<&str>) -> Result<Vec<(SortField, Order)>, NaError> {
    let mut sort = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if key != "sort" || value.trim().is_empty() {
            continue;
        }
        let mut parts: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let order = match parts.last().map(|p| p.to_ascii_lowercase()) {
            Some(d) if d == "asc" => Some(Order::Asc),
            Some(d) if d == "desc" => Some(Order::Desc),
            _ => None,
        };
        if order.is_some() {
            parts.pop();
        }
        for p in parts {
            let field = SortField::parse(p).ok_or_else(|| {
                let known: Vec<&str> = SortField::NAMES.iter().map(|(n, _)| *n).collect();
                NaError::validation(format!(
                    "sort: unknown property '{p}'; use one of {}",
                    known.join(", ")
                ))
            })?;
            sort.push((field, order.clone().unwrap_or(Order::Asc)));
        }
    }
    Ok(sort)
}

/// Every non-association, a page at a time.
#[utoipa::path(
    get, path = "/non-associations", tag = TAG,
    params(
        ListQuery,
        ("sort" = Option<Vec<String>>, Query, explode = true,
            description = "`property[,asc|desc]`, repeatable (default `id,asc`). Properties: id, firstPrisonerNumber, secondPrisonerNumber, reason, restrictionType, whenCreated, whenUpdated, updatedBy, isClosed, closedAt"),
    ),
    responses(
        (status = 200, description = "A page of non-associations", body = NonAssociationPage),
        (status = 400, description = "Invalid paging, sorting or inclusion (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_READ_NON_ASSOCIATIONS", body = ErrorResponse),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    _auth: Authorised<Read>,
    QueryParams(q): QueryParams<ListQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NonAssociationPage>, ApiError> {
    let inclusion = InclusionQuery {
        include_open: q.include_open,
        include_closed: q.include_closed,
    }
    .inclusion()?;
    let page = q.page.unwrap_or(0);
    let size = q.size.unwrap_or(20);
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(NaError::validation(format!("size: must be 1 to {MAX_PAGE_SIZE}")).into());
    }
    // The page's offset is a signed 64-bit number on both backends (and in the answer's
    // `pageable`), as the NOMIS and mapping APIs also check.
    if page.checked_mul(size).is_none_or(|o| o > i64::MAX as u64) {
        return Err(NaError::validation(format!("page: {page} is too large")).into());
    }
    let sort = parse_sort(raw.as_deref())?;
    let (rows, total) = s.store.list(inclusion, page, size, &sort).await?;
    let content = rows.iter().map(NonAssociationDto::from).collect();
    Ok(Json(NonAssociationPage::new(content, page, size, total)))
}

/// The body of `GET /non-associations/{id}`: a non-association for an
/// id, or the NOMIS-shaped list for a prisoner number.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IdOrPrisonerView {
    NonAssociation(Box<NonAssociationDto>),
    Prisoner(NomisNonAssociationsView),
}

/// One non-association by id (digits), or — seed 002's sync contract — one prisoner's
/// non-associations in NOMIS terms by prisoner number (e.g. `A1234BC`).
#[utoipa::path(
    get, path = "/non-associations/{id}", tag = TAG,
    params(("id" = String, Path,
        description = "A non-association id (digits; needs ROLE_READ_NON_ASSOCIATIONS) or a prisoner number (needs ROLE_READ_NON_ASSOCIATIONS or ROLE_NON_ASSOCIATIONS_SYNC)")),
    responses(
        (status = 200, description = "The non-association (id) or the NOMIS-shaped list (prisoner number)", body = IdOrPrisonerView),
        (status = 400, description = "Neither an id nor a prisoner number (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
        (status = 404, description = "No non-association with this id (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn get_by_id_or_prisoner(
    State(s): State<AppState>,
    auth: Authorised<ReadOrSync>,
    PathParams(key): PathParams<String>,
) -> Result<Json<IdOrPrisonerView>, ApiError> {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        authorise::<Read>(&auth.principal)?;
        let id: i64 = key.parse().map_err(|_| {
            NaError::validation(format!("id: {key} is too large to be a non-association id"))
        })?;
        let na = s.store.get(id).await?.ok_or(NaError::NotFound(id))?;
        return Ok(Json(IdOrPrisonerView::NonAssociation(Box::new(
            NonAssociationDto::from(&na),
        ))));
    }
    if PrisonerNumber::looks_like(&key) {
        let all = Inclusion {
            open: true,
            closed: true,
        };
        let records = s.store.involving(std::slice::from_ref(&key), all).await?;
        return Ok(Json(IdOrPrisonerView::Prisoner(nomis_view(&key, &records))));
    }
    Err(NaError::validation(format!(
        "'{key}' is neither a non-association id (digits, e.g. 123) nor a prisoner number (a letter, four digits and two letters, e.g. A1234BC)"
    ))
    .into())
}

fn id_path(id: i64) -> Result<i64, NaError> {
    if id < 1 {
        Err(NaError::NotFound(id))
    } else {
        Ok(id)
    }
}

/// Changes some of a non-association's details.
#[utoipa::path(
    patch, path = "/non-associations/{id}", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    request_body = PatchNonAssociationRequest,
    responses(
        (status = 200, description = "Updated", body = NonAssociationDto),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 401, description = "No token, or a token without a user name (errorCode 401)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_WRITE_NON_ASSOCIATIONS or the write scope", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn patch(
    State(s): State<AppState>,
    auth: Authorised<Write>,
    PathParams(id): PathParams<i64>,
    Body(req): Body<PatchNonAssociationRequest>,
) -> Result<Json<NonAssociationDto>, ApiError> {
    let user = token_user(&auth)?;
    if let Some(c) = &req.comment {
        not_blank("comment", c)?;
    }
    let amendment = Amendment {
        first_prisoner_role: req.first_prisoner_role,
        second_prisoner_role: req.second_prisoner_role,
        reason: req.reason,
        restriction_type: req.restriction_type,
        comment: req.comment,
    };
    let na = s.store.amend(id_path(id)?, amendment, &user).await?;
    Ok(Json(NonAssociationDto::from(&na)))
}

/// Closes an open non-association.
#[utoipa::path(
    put, path = "/non-associations/{id}/close", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    request_body = CloseNonAssociationRequest,
    responses(
        (status = 200, description = "Closed", body = NonAssociationDto),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 401, description = "No closedBy and no user name in the token (errorCode 401)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_WRITE_NON_ASSOCIATIONS or the write scope", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
        (status = 409, description = "Already closed (errorCode 100)", body = ErrorResponse),
    )
)]
pub async fn close(
    State(s): State<AppState>,
    auth: Authorised<Write>,
    PathParams(id): PathParams<i64>,
    Body(req): Body<CloseNonAssociationRequest>,
) -> Result<Json<NonAssociationDto>, ApiError> {
    not_blank("closedReason", &req.closed_reason)?;
    let by = match req.closed_by {
        Some(by) => {
            user_field("closedBy", &by)?;
            by
        }
        None => token_user(&auth)?,
    };
    let closure = Closure {
        reason: req.closed_reason,
        at: req
            .closed_at
            .map_or_else(tandem_platform::time::now, |t| t.0),
        by,
    };
    let na = s.store.close(id_path(id)?, closure).await?;
    Ok(Json(NonAssociationDto::from(&na)))
}

/// Reopens a closed non-association; its comment becomes the reopen reason.
#[utoipa::path(
    put, path = "/non-associations/{id}/reopen", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    request_body = ReopenNonAssociationRequest,
    responses(
        (status = 200, description = "Reopened", body = NonAssociationDto),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 401, description = "No reopenedBy and no user name in the token (errorCode 401)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_REOPEN_NON_ASSOCIATIONS or the write scope", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
        (status = 409, description = "This or another non-association of the pair is open (errorCode 104)", body = ErrorResponse),
    )
)]
pub async fn reopen(
    State(s): State<AppState>,
    auth: Authorised<Reopen>,
    PathParams(id): PathParams<i64>,
    Body(req): Body<ReopenNonAssociationRequest>,
) -> Result<Json<NonAssociationDto>, ApiError> {
    not_blank("reopenReason", &req.reopen_reason)?;
    let by = match req.reopened_by {
        Some(by) => {
            user_field("reopenedBy", &by)?;
            by
        }
        None => token_user(&auth)?,
    };
    let reopening = Reopening {
        reason: req.reopen_reason,
        at: req
            .reopened_at
            .map_or_else(tandem_platform::time::now, |t| t.0),
        by,
    };
    let na = s.store.reopen(id_path(id)?, reopening).await?;
    Ok(Json(NonAssociationDto::from(&na)))
}

/// Deletes a non-association for good (for ones recorded in error).
#[utoipa::path(
    post, path = "/non-associations/{id}/delete", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    request_body = DeleteNonAssociationRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_DELETE_NON_ASSOCIATIONS or the write scope", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    auth: Authorised<Delete>,
    PathParams(id): PathParams<i64>,
    Body(req): Body<DeleteNonAssociationRequest>,
) -> Result<StatusCode, ApiError> {
    not_blank("deletionReason", &req.deletion_reason)?;
    user_field(
        "staffUserNameRequestingDeletion",
        &req.staff_user_name_requesting_deletion,
    )?;
    let na = s
        .store
        .delete(id_path(id)?, crate::events::Source::Dps)
        .await?;
    tracing::info!(
        id = na.id,
        requested_by = %req.staff_user_name_requesting_deletion,
        deleted_by = %auth.username(),
        reason = %req.deletion_reason,
        "non-association deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct LookupQuery {
    /// Include open non-associations (default true).
    #[serde(default)]
    include_open: Option<bool>,
    /// Include closed non-associations (default false).
    #[serde(default)]
    include_closed: Option<bool>,
    /// Only non-associations whose two prisoners are both in this prison.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    prison_id: Option<PrisonId>,
}

impl LookupQuery {
    fn inclusion(&self) -> Result<Inclusion, NaError> {
        InclusionQuery {
            include_open: self.include_open,
            include_closed: self.include_closed,
        }
        .inclusion()
    }
}

/// Keeps the records whose two prisoners are both in `prison_id` (when given).
async fn in_prison(
    s: &AppState,
    records: Vec<NonAssociation>,
    prison_id: Option<&PrisonId>,
) -> Result<Vec<NonAssociation>, NaError> {
    let Some(prison_id) = prison_id else {
        return Ok(records);
    };
    let numbers: BTreeSet<String> = records
        .iter()
        .flat_map(|na| {
            [
                na.first_prisoner_number.clone(),
                na.second_prisoner_number.clone(),
            ]
        })
        .collect();
    let numbers: Vec<String> = numbers.into_iter().collect();
    let found = s.prisoners.find_many(&numbers).await?;
    let here =
        |n: &str| found.get(n).and_then(|p| p.prison_id.as_deref()) == Some(prison_id.as_str());
    Ok(records
        .into_iter()
        .filter(|na| here(&na.first_prisoner_number) && here(&na.second_prisoner_number))
        .collect())
}

/// The most prisoner numbers one lookup takes: each is a bound parameter, and the
/// backends limit those (SQLite to 32766 per statement).
const MAX_LOOKUP_NUMBERS: usize = 1000;

fn distinct(numbers: Vec<PrisonerNumber>) -> Result<Vec<String>, NaError> {
    let set: BTreeSet<String> = numbers.into_iter().map(String::from).collect();
    if set.len() > MAX_LOOKUP_NUMBERS {
        return Err(NaError::validation(format!(
            "body: at most {MAX_LOOKUP_NUMBERS} prisoner numbers at a time; split the request"
        )));
    }
    Ok(set.into_iter().collect())
}

/// The non-associations between any two of the given prisoners.
#[utoipa::path(
    post, path = "/non-associations/between", tag = TAG,
    params(LookupQuery),
    request_body(content = Vec<String>, description = "At least two distinct prisoner numbers"),
    responses(
        (status = 200, description = "Non-associations whose two prisoners are both in the list", body = Vec<NonAssociationDto>),
        (status = 400, description = "Fewer than two distinct prisoner numbers, or a malformed one (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_READ_NON_ASSOCIATIONS", body = ErrorResponse),
    )
)]
pub async fn between(
    State(s): State<AppState>,
    _auth: Authorised<Read>,
    QueryParams(q): QueryParams<LookupQuery>,
    Body(numbers): Body<Vec<PrisonerNumber>>,
) -> Result<Json<Vec<NonAssociationDto>>, ApiError> {
    let inclusion = q.inclusion()?;
    let numbers = distinct(numbers)?;
    if numbers.len() < 2 {
        return Err(NaError::validation(
            "body: at least two distinct prisoner numbers are required",
        )
        .into());
    }
    let records = s.store.between(&numbers, inclusion).await?;
    let records = in_prison(&s, records, q.prison_id.as_ref()).await?;
    Ok(Json(records.iter().map(NonAssociationDto::from).collect()))
}

/// The non-associations involving any of the given prisoners.
#[utoipa::path(
    post, path = "/non-associations/involving", tag = TAG,
    params(LookupQuery),
    request_body(content = Vec<String>, description = "At least one prisoner number"),
    responses(
        (status = 200, description = "Non-associations with either prisoner in the list", body = Vec<NonAssociationDto>),
        (status = 400, description = "No prisoner numbers, or a malformed one (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_READ_NON_ASSOCIATIONS", body = ErrorResponse),
    )
)]
pub async fn involving(
    State(s): State<AppState>,
    _auth: Authorised<Read>,
    QueryParams(q): QueryParams<LookupQuery>,
    Body(numbers): Body<Vec<PrisonerNumber>>,
) -> Result<Json<Vec<NonAssociationDto>>, ApiError> {
    let inclusion = q.inclusion()?;
    let numbers = distinct(numbers)?;
    if numbers.is_empty() {
        return Err(NaError::validation("body: at least one prisoner number is required").into());
    }
    let records = s.store.involving(&numbers, inclusion).await?;
    let records = in_prison(&s, records, q.prison_id.as_ref()).await?;
    Ok(Json(records.iter().map(NonAssociationDto::from).collect()))
}

/// How the prisoner view is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrisonerSortBy {
    WhenCreated,
    WhenUpdated,
    WhenClosed,
    LastName,
    FirstName,
    PrisonerNumber,
    PrisonId,
    PrisonName,
    CellLocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct PrisonerViewQuery {
    /// Include open non-associations (default true).
    #[serde(default)]
    include_open: Option<bool>,
    /// Include closed non-associations (default false).
    #[serde(default)]
    include_closed: Option<bool>,
    /// Include those whose other prisoner is in another prison (default false).
    #[serde(default)]
    include_other_prisons: Option<bool>,
    /// Default WHEN_CREATED; names and places are the other prisoner's.
    #[serde(default)]
    sort_by: Option<PrisonerSortBy>,
    /// Default DESC.
    #[serde(default)]
    sort_direction: Option<SortDirection>,
}

fn other(x: &PrisonerNonAssociation) -> &OtherPrisonerDetails {
    &x.other_prisoner_details
}

fn compare(a: &PrisonerNonAssociation, b: &PrisonerNonAssociation, by: PrisonerSortBy) -> Ordering {
    let o = other;
    match by {
        // Local date-times in one fixed format sort as text.
        PrisonerSortBy::WhenCreated => a.when_created.cmp(&b.when_created),
        PrisonerSortBy::WhenUpdated => a.when_updated.cmp(&b.when_updated),
        PrisonerSortBy::WhenClosed => a.closed_at.cmp(&b.closed_at),
        PrisonerSortBy::LastName => o(a).last_name.cmp(&o(b).last_name),
        PrisonerSortBy::FirstName => o(a).first_name.cmp(&o(b).first_name),
        PrisonerSortBy::PrisonerNumber => o(a).prisoner_number.cmp(&o(b).prisoner_number),
        PrisonerSortBy::PrisonId => o(a).prison_id.cmp(&o(b).prison_id),
        PrisonerSortBy::PrisonName => o(a).prison_name.cmp(&o(b).prison_name),
        PrisonerSortBy::CellLocation => o(a).cell_location.cmp(&o(b).cell_location),
    }
    .then(a.id.cmp(&b.id))
}

/// One prisoner's non-associations, with the other prisoners' details.
#[utoipa::path(
    get, path = "/prisoner/{prisonerNumber}/non-associations", tag = TAG,
    params(("prisonerNumber" = String, Path, description = "e.g. A1234BC"), PrisonerViewQuery),
    responses(
        (status = 200, description = "The prisoner and their non-associations", body = PrisonerNonAssociations),
        (status = 400, description = "Invalid prisoner number or query (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_READ_NON_ASSOCIATIONS", body = ErrorResponse),
        (status = 404, description = "Prisoner not found", body = ErrorResponse),
    )
)]
pub async fn prisoner_view(
    State(s): State<AppState>,
    _auth: Authorised<Read>,
    PathParams(number): PathParams<PrisonerNumber>,
    QueryParams(q): QueryParams<PrisonerViewQuery>,
) -> Result<Json<PrisonerNonAssociations>, ApiError> {
    let inclusion = InclusionQuery {
        include_open: q.include_open,
        include_closed: q.include_closed,
    }
    .inclusion()?;
    let number = number.to_string();
    let prisoner = s
        .prisoners
        .find(&number)
        .await
        .map_err(NaError::from)?
        .ok_or_else(|| NaError::PrisonerNotFound(number.clone()))?;
    let records = s
        .store
        .involving(std::slice::from_ref(&number), inclusion)
        .await?;
    let others: Vec<String> = records
        .iter()
        .filter_map(|na| {
            na.from_side_of(&number)
                .map(|(_, other, _)| other.to_string())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found: BTreeMap<String, Prisoner> = s
        .prisoners
        .find_many(&others)
        .await
        .map_err(NaError::from)?;
    let mut list: Vec<PrisonerNonAssociation> = records
        .iter()
        .filter_map(|na| {
            let other = na.from_side_of(&number)?.1;
            PrisonerNonAssociation::new(na, &number, found.get(other))
        })
        .filter(|v| {
            q.include_other_prisons.unwrap_or(false)
                || v.other_prisoner_details.prison_id == prisoner.prison_id
        })
        .collect();
    let by = q.sort_by.unwrap_or(PrisonerSortBy::WhenCreated);
    let direction = q.sort_direction.unwrap_or(SortDirection::Desc);
    list.sort_by(|a, b| {
        let o = compare(a, b, by);
        if direction == SortDirection::Desc {
            o.reverse()
        } else {
            o
        }
    });
    Ok(Json(PrisonerNonAssociations {
        open_count: list.iter().filter(|v| v.is_open).count() as u64,
        closed_count: list.iter().filter(|v| v.is_closed).count() as u64,
        prisoner_number: prisoner.prisoner_number,
        first_name: prisoner.first_name,
        last_name: prisoner.last_name,
        prison_id: prisoner.prison_id,
        prison_name: prisoner.prison_name,
        cell_location: prisoner.cell_location,
        non_associations: list,
    }))
}

/// The codes and descriptions of roles, reasons and restriction types (no token needed).
#[utoipa::path(
    get, path = "/constants", tag = TAG, security(()),
    responses((status = 200, description = "Roles, reasons and restriction types", body = Constants))
)]
pub async fn constants() -> Json<Constants> {
    Json(Constants::get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spring_sort_parameters() {
        assert_eq!(parse_sort(None).unwrap(), vec![]);
        assert_eq!(
            parse_sort(Some("sort=whenCreated,DESC&sort=id")).unwrap(),
            vec![
                (SortField::WhenCreated, Order::Desc),
                (SortField::Id, Order::Asc)
            ]
        );
        assert_eq!(
            parse_sort(Some("page=1&sort=reason,restrictionType,desc")).unwrap(),
            vec![
                (SortField::Reason, Order::Desc),
                (SortField::RestrictionType, Order::Desc)
            ]
        );
        let e = parse_sort(Some("sort=colour,asc")).unwrap_err().to_string();
        assert!(e.contains("sort: unknown property 'colour'"), "{e}");
    }
}
