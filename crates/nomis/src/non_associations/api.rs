//! The NOMIS Prisoner API's non-association endpoints (NPA `NonAssociationResource`).

use axum::{extract::State, http::StatusCode};
use chrono::NaiveDate;
use serde::Deserialize;
use tandem_auth::Authorised;
use tandem_platform::{
    ApiError, ErrorResponse,
    http::{Json, Path, Query},
};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    CreateNonAssociationRequest, CreateNonAssociationResponse, IdFilter,
    NonAssociationIdKeysetPage, NonAssociationIdPage, NonAssociationIdResponse,
    NonAssociationResponse, UpdateNonAssociationRequest, store,
};
use crate::{
    AppState, NomisSyncRead, NomisSyncWrite,
    audit::{AuditModule, AuditStamp},
};

const TAG: &str = "non-associations";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct OpenQuery {
    /// Get this detail record instead of the open one.
    type_sequence: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct IdsQuery {
    /// Only pairs with a detail effective on or after this date.
    from_date: Option<NaiveDate>,
    /// Only pairs with a detail effective on or before this date.
    to_date: Option<NaiveDate>,
    /// Page number, from 0.
    page: Option<u64>,
    /// Page size (default 20, at most 10000).
    size: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct KeysetQuery {
    /// The last pair of the previous page, `A1234BC/B5678CD`; absent for the first page.
    after: Option<String>,
    /// Only pairs with a detail effective on or after this date.
    from_date: Option<NaiveDate>,
    /// Only pairs with a detail effective on or before this date.
    to_date: Option<NaiveDate>,
    /// Page size (default 1000, at most 10000).
    size: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/non-associations",
    tag = TAG,
    summary = "Create a non-association",
    description = "Creates the non-association in both directions with the next free type sequence of the pair and raises NON_ASSOCIATION_DETAIL-UPSERTED for each direction. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW and the write scope.",
    request_body = CreateNonAssociationRequest,
    params(("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module, e.g. OIDSENAD (default DPS_SYNCHRONISATION)")),
    responses(
        (status = 201, body = CreateNonAssociationResponse),
        (status = 400, description = "Invalid data, e.g. unknown code or prisoner, or an open non-association exists", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 409, description = "DPS is master for non-associations at either prisoner's prison (a write under a NOMIS screen's audit module), or a concurrent change to the same pair (retry)", body = ErrorResponse),
    )
)]
async fn create(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Json(body): Json<CreateNonAssociationRequest>,
) -> Result<(StatusCode, Json<CreateNonAssociationResponse>), ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    let created = store::create(&state.db, body, &stamp).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}",
    tag = TAG,
    summary = "The open non-association of a pair",
    params(
        ("offenderNo" = String, Path, example = "A1234BC"),
        ("nsOffenderNo" = String, Path, example = "B5678CD"),
        OpenQuery,
    ),
    responses(
        (status = 200, body = NonAssociationResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "No open non-association, or an unknown prisoner", body = ErrorResponse),
    )
)]
async fn get_open(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path((offender_no, ns_offender_no)): Path<(String, String)>,
    Query(q): Query<OpenQuery>,
) -> Result<Json<NonAssociationResponse>, ApiError> {
    Ok(Json(
        store::get_open(
            state.db.conn(),
            &offender_no,
            &ns_offender_no,
            q.type_sequence,
        )
        .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}/all",
    tag = TAG,
    summary = "Every non-association detail of a pair, open and closed, by type sequence",
    params(("offenderNo" = String, Path), ("nsOffenderNo" = String, Path)),
    responses(
        (status = 200, body = Vec<NonAssociationResponse>),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    )
)]
async fn get_all(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path((offender_no, ns_offender_no)): Path<(String, String)>,
) -> Result<Json<Vec<NonAssociationResponse>>, ApiError> {
    Ok(Json(
        store::get_all(state.db.conn(), &offender_no, &ns_offender_no).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}/sequence/{typeSequence}",
    tag = TAG,
    summary = "One non-association detail",
    params(("offenderNo" = String, Path), ("nsOffenderNo" = String, Path), ("typeSequence" = i32, Path)),
    responses(
        (status = 200, body = NonAssociationResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path((offender_no, ns_offender_no, seq)): Path<(String, String, i32)>,
) -> Result<Json<NonAssociationResponse>, ApiError> {
    Ok(Json(
        store::get_one(state.db.conn(), &offender_no, &ns_offender_no, seq).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}/sequence/{typeSequence}",
    tag = TAG,
    summary = "Replace a non-association detail",
    description = "Replaces the detail's values in both directions (optional fields absent are cleared) and raises NON_ASSOCIATION_DETAIL-UPSERTED for each direction.",
    request_body = UpdateNonAssociationRequest,
    params(
        ("offenderNo" = String, Path), ("nsOffenderNo" = String, Path), ("typeSequence" = i32, Path),
        ("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module"),
    ),
    responses(
        (status = 200, body = NonAssociationResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "DPS is master for non-associations at either prisoner's prison; edit in DPS", body = ErrorResponse),
    )
)]
async fn update(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Path((offender_no, ns_offender_no, seq)): Path<(String, String, i32)>,
    Json(body): Json<UpdateNonAssociationRequest>,
) -> Result<Json<NonAssociationResponse>, ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    Ok(Json(
        store::update(&state.db, &offender_no, &ns_offender_no, seq, body, &stamp).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}/sequence/{typeSequence}",
    tag = TAG,
    summary = "Delete a non-association detail",
    description = "Deletes the detail in both directions (and the pair's headers when no detail remains) and raises NON_ASSOCIATION_DETAIL-DELETED for each direction.",
    params(
        ("offenderNo" = String, Path), ("nsOffenderNo" = String, Path), ("typeSequence" = i32, Path),
        ("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "DPS is master for non-associations at either prisoner's prison; edit in DPS", body = ErrorResponse),
    )
)]
async fn delete(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Path((offender_no, ns_offender_no, seq)): Path<(String, String, i32)>,
) -> Result<StatusCode, ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    store::delete(&state.db, &offender_no, &ns_offender_no, seq, &stamp).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/non-associations/offender/{offenderNo}/ns-offender/{nsOffenderNo}/sequence/{typeSequence}/close",
    tag = TAG,
    summary = "Close a non-association detail as of today",
    params(
        ("offenderNo" = String, Path), ("nsOffenderNo" = String, Path), ("typeSequence" = i32, Path),
        ("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module"),
    ),
    responses(
        (status = 200, body = NonAssociationResponse),
        (status = 400, description = "Already closed", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "DPS is master for non-associations at either prisoner's prison; edit in DPS", body = ErrorResponse),
    )
)]
async fn close(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Path((offender_no, ns_offender_no, seq)): Path<(String, String, i32)>,
) -> Result<Json<NonAssociationResponse>, ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    Ok(Json(
        store::close(&state.db, &offender_no, &ns_offender_no, seq, &stamp).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/non-associations/ids",
    tag = TAG,
    summary = "A page of non-association pairs",
    description = "Distinct pairs in the primary direction (offenderNo1 < offenderNo2), ordered by pair, optionally only those with a detail effective between the dates. OFFSET paging as the real API; walk large estates with /non-associations/ids/keyset.",
    params(IdsQuery),
    responses(
        (status = 200, body = NonAssociationIdPage),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn ids(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Query(q): Query<IdsQuery>,
) -> Result<Json<NonAssociationIdPage>, ApiError> {
    let filter = IdFilter {
        from_date: q.from_date,
        to_date: q.to_date,
    };
    let page = store::ids_page(
        state.db.conn(),
        &filter,
        q.page.unwrap_or(0),
        q.size.unwrap_or(20),
    )
    .await?;
    Ok(Json(page))
}

#[utoipa::path(
    get,
    path = "/non-associations/ids/keyset",
    tag = TAG,
    summary = "Non-association pairs after a given pair",
    description = "The pairs strictly after `after` in pair order; `next` is the `after` of the following page, null at the end. Constant cost per page however deep the walk.",
    params(KeysetQuery),
    responses(
        (status = 200, body = NonAssociationIdKeysetPage),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn ids_keyset(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Query(q): Query<KeysetQuery>,
) -> Result<Json<NonAssociationIdKeysetPage>, ApiError> {
    let filter = IdFilter {
        from_date: q.from_date,
        to_date: q.to_date,
    };
    let after = q
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(store::parse_after)
        .transpose()?;
    let page = store::ids_after(state.db.conn(), &filter, after, q.size.unwrap_or(1000)).await?;
    Ok(Json(page))
}

#[utoipa::path(
    post,
    path = "/non-associations/pairs/details",
    tag = TAG,
    summary = "Every detail of many pairs at once",
    description = "For each pair given (at most 1000), every detail from offenderNo1's side, in the order of the pairs given, then by type sequence. Pairs that do not exist (or whose prisoners do not) contribute nothing. The migration reads a whole batch of pairs with one call instead of one /all call per pair. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW.",
    request_body = Vec<NonAssociationIdResponse>,
    responses(
        (status = 200, body = Vec<NonAssociationResponse>),
        (status = 400, description = "A malformed prisoner number (the message names the entry), a pair of one prisoner, or more than 1000 pairs", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn details_of_pairs(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Json(pairs): Json<Vec<NonAssociationIdResponse>>,
) -> Result<Json<Vec<NonAssociationResponse>>, ApiError> {
    Ok(Json(
        store::details_of_pairs(state.db.conn(), &pairs).await?,
    ))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(ids))
        .routes(routes!(ids_keyset))
        .routes(routes!(details_of_pairs))
        .routes(routes!(get_open))
        .routes(routes!(get_all))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(close))
}
