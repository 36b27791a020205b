//! `/mapping/non-associations`: thin handlers over the generic store and this domain's
//! rewrites. Paths, status codes and bodies follow the HMPPS mapping service
//! (`NonAssociationsMappingResource`); where it is silent or wrong, the OpenAPI
//! description says what this one does.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tandem_auth::Authorised;
use tandem_platform::ApiError;
use tandem_platform::ErrorResponse;
use tandem_platform::http::{Json, Path, Query};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{NonAssociationMapping, PairKey, UpdateList};
use crate::http::{MappingRead, MappingWrite, prisoner_number};
use crate::page::{Page, PageParams, PageRequest};
use crate::store::MappingStore;

const TAG: &str = "non-associations";

/// One entry of a booking-move list (documentation only; the body is parsed by
/// [`UpdateList::parse`] so errors name the entry).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum UpdateListEntry {
    /// Another prisoner's number.
    OffenderNo(tandem_platform::ids::PrisonerNumber),
    /// A DPS non-association id.
    NonAssociationId(i64),
}

pub fn router() -> OpenApiRouter<MappingStore> {
    OpenApiRouter::new()
        .routes(routes!(create, delete_all))
        .routes(routes!(get_by_nomis))
        .routes(routes!(get_by_id, delete_by_id))
        .routes(routes!(page_by_migration))
        .routes(routes!(latest_migrated))
        .routes(routes!(common_between))
        .routes(routes!(merge))
        .routes(routes!(update_list))
        .routes(routes!(set_sequence))
        .routes(routes!(of_pairs))
        .routes(routes!(create_batch))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct NomisKeyPath {
    /// The smaller prisoner number of the pair.
    #[param(example = "A1234BC")]
    first_offender_no: String,
    /// The larger prisoner number of the pair.
    #[param(example = "D5678EF")]
    second_offender_no: String,
    /// NOMIS type sequence.
    #[param(example = 1)]
    type_sequence: i32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct IdPath {
    /// DPS non-association id.
    #[param(example = 1234)]
    non_association_id: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct SequencePath {
    /// DPS non-association id.
    #[param(example = 1234)]
    non_association_id: i64,
    /// The NOMIS type sequence the mapping now points at (1 to 999).
    #[param(example = 2)]
    new_sequence: i32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct MigrationPath {
    /// The migration id (the `label` of the migrated mappings).
    #[param(example = "2024-03-01T10:15:30")]
    migration_id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
struct FromToPath {
    /// The prisoner number being replaced.
    #[param(example = "A3456KM")]
    old_offender_no: String,
    /// The prisoner number replacing it.
    #[param(example = "A3457LZ")]
    new_offender_no: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct DeleteAllParams {
    /// Only mappings written by a migration (`MIGRATED`); sync-created ones stay. Default false.
    only_migrated: Option<bool>,
}

/// Creates a non-association mapping
///
/// One atomic insert: re-sending a mapping already stored (same `nonAssociationId` and same
/// NOMIS key, whatever the label or type) succeeds with 201 and changes nothing. A clash with
/// a different mapping on either key is a 409 with `errorCode` 1409 and
/// `moreInfo: {existing, duplicate}` (both mapping objects), also when two creates race.
#[utoipa::path(
    post,
    path = "/mapping/non-associations",
    tag = TAG,
    operation_id = "createNonAssociationMapping",
    request_body = NonAssociationMapping,
    responses(
        (status = 201, description = "Mapping stored, or the identical mapping was already stored"),
        (status = 400, description = "Invalid mapping; the message names the field", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
        (status = 409, description = "A different mapping holds the DPS id or the NOMIS key (errorCode 1409, moreInfo.existing / moreInfo.duplicate)", body = ErrorResponse),
    )
)]
async fn create(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Json(body): Json<NonAssociationMapping>,
) -> Result<StatusCode, ApiError> {
    store.create(&body).await?;
    Ok(StatusCode::CREATED)
}

/// Deletes all non-association mappings, or only the migrated ones
#[utoipa::path(
    delete,
    path = "/mapping/non-associations",
    tag = TAG,
    operation_id = "deleteNonAssociationMappings",
    params(DeleteAllParams),
    responses(
        (status = 204, description = "Mappings deleted"),
        (status = 400, description = "Bad onlyMigrated value", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
    )
)]
async fn delete_all(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Query(params): Query<DeleteAllParams>,
) -> Result<StatusCode, ApiError> {
    store
        .delete_all(&super::KIND, params.only_migrated.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gets a mapping by its NOMIS key
#[utoipa::path(
    get,
    path = "/mapping/non-associations/first-offender-no/{firstOffenderNo}/second-offender-no/{secondOffenderNo}/type-sequence/{typeSequence}",
    tag = TAG,
    operation_id = "getNonAssociationMappingByNomisKey",
    params(NomisKeyPath),
    responses(
        (status = 200, description = "The mapping", body = NonAssociationMapping),
        (status = 400, description = "Malformed prisoner number or sequence", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
        (status = 404, description = "No mapping for that NOMIS key", body = ErrorResponse),
    )
)]
async fn get_by_nomis(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
    Path(p): Path<NomisKeyPath>,
) -> Result<Json<NonAssociationMapping>, ApiError> {
    let first = prisoner_number("firstOffenderNo", &p.first_offender_no)?;
    let second = prisoner_number("secondOffenderNo", &p.second_offender_no)?;
    let m = store
        .require_by_nomis(&[(&first).into(), (&second).into(), p.type_sequence.into()])
        .await?;
    Ok(Json(m))
}

/// Gets a mapping by DPS non-association id
#[utoipa::path(
    get,
    path = "/mapping/non-associations/non-association-id/{nonAssociationId}",
    tag = TAG,
    operation_id = "getNonAssociationMapping",
    params(IdPath),
    responses(
        (status = 200, description = "The mapping", body = NonAssociationMapping),
        (status = 400, description = "Malformed id", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
        (status = 404, description = "No mapping for that id", body = ErrorResponse),
    )
)]
async fn get_by_id(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
    Path(p): Path<IdPath>,
) -> Result<Json<NonAssociationMapping>, ApiError> {
    Ok(Json(
        store.require_by_dps(&[p.non_association_id.into()]).await?,
    ))
}

/// Deletes a mapping by DPS non-association id
///
/// Idempotent: 204 whether or not the mapping existed, so a retried delete succeeds.
#[utoipa::path(
    delete,
    path = "/mapping/non-associations/non-association-id/{nonAssociationId}",
    tag = TAG,
    operation_id = "deleteNonAssociationMapping",
    params(IdPath),
    responses(
        (status = 204, description = "Mapping deleted, or there was none"),
        (status = 400, description = "Malformed id", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
    )
)]
async fn delete_by_id(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    store
        .delete_by_dps(&super::KIND, &[p.non_association_id.into()])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pages the mappings of one migration
///
/// The `MIGRATED` mappings whose label is the migration id, in a Spring Data page;
/// `totalElements` is the migration's migrated count (ask for `size=1` to count cheaply).
#[utoipa::path(
    get,
    path = "/mapping/non-associations/migration-id/{migrationId}",
    tag = TAG,
    operation_id = "getNonAssociationMappingsByMigrationId",
    params(MigrationPath, PageParams),
    responses(
        (status = 200, description = "A page of mappings", body = Page<NonAssociationMapping>),
        (status = 400, description = "Bad page, size or sort", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
    )
)]
async fn page_by_migration(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
    Path(p): Path<MigrationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<NonAssociationMapping>>, ApiError> {
    let request = PageRequest::parse(&super::KIND, &params)?;
    Ok(Json(
        store.page_by_migration(&p.migration_id, &request).await?,
    ))
}

/// Gets the most recently created migrated mapping
#[utoipa::path(
    get,
    path = "/mapping/non-associations/migrated/latest",
    tag = TAG,
    operation_id = "getLatestMigratedNonAssociationMapping",
    responses(
        (status = 200, description = "The latest MIGRATED mapping", body = NonAssociationMapping),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
        (status = 404, description = "No migrated mapping at all", body = ErrorResponse),
    )
)]
async fn latest_migrated(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
) -> Result<Json<NonAssociationMapping>, ApiError> {
    store
        .latest_migrated()
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Not Found: no migrated non-association mapping found"))
}

/// Finds the mappings a merge of the two prisoners would collide on
///
/// The mappings of either prisoner with a third prisoner with whom the other also has a
/// mapping at the same type sequence: the ones to re-sequence before `PUT /merge`.
#[utoipa::path(
    get,
    path = "/mapping/non-associations/find/common-between/{oldOffenderNo}/and/{newOffenderNo}",
    tag = TAG,
    operation_id = "findNonAssociationMappingsCommonBetween",
    params(FromToPath),
    responses(
        (status = 200, description = "The colliding mappings (possibly none)", body = Vec<NonAssociationMapping>),
        (status = 400, description = "Malformed or identical prisoner numbers", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
    )
)]
async fn common_between(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
    Path(p): Path<FromToPath>,
) -> Result<Json<Vec<NonAssociationMapping>>, ApiError> {
    let old = prisoner_number("oldOffenderNo", &p.old_offender_no)?;
    let new = prisoner_number("newOffenderNo", &p.new_offender_no)?;
    Ok(Json(super::common_between(&store, &old, &new).await?))
}

/// Replaces a prisoner number in every mapping, after a prisoner merge
///
/// Either side of a pair; the pair is kept smaller number first. All or nothing. Returns
/// the rewritten mappings (none when the number is not in the table).
#[utoipa::path(
    put,
    path = "/mapping/non-associations/merge/from/{oldOffenderNo}/to/{newOffenderNo}",
    tag = TAG,
    operation_id = "mergeNonAssociationMappings",
    params(FromToPath),
    responses(
        (status = 200, description = "Mappings rewritten", body = Vec<NonAssociationMapping>),
        (status = 400, description = "Malformed or identical numbers, or a mapping would pair the new number with itself (needs manual intervention)", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
        (status = 409, description = "A rewritten mapping would collide with an existing one (errorCode 1409): re-sequence first", body = ErrorResponse),
    )
)]
async fn merge(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Path(p): Path<FromToPath>,
) -> Result<Json<Vec<NonAssociationMapping>>, ApiError> {
    let old = prisoner_number("oldOffenderNo", &p.old_offender_no)?;
    let new = prisoner_number("newOffenderNo", &p.new_offender_no)?;
    Ok(Json(super::merge(&store, &old, &new).await?))
}

/// Replaces a prisoner number in the listed mappings, after a booking move
///
/// The body is a JSON array of either the other prisoners' numbers (every mapping between
/// the old number and a listed prisoner moves, as in the HMPPS service) or DPS
/// non-association ids (each listed mapping naming the old number moves; unknown ids and
/// ids already naming the new number are skipped so a retry succeeds). All or nothing.
#[utoipa::path(
    put,
    path = "/mapping/non-associations/update-list/from/{oldOffenderNo}/to/{newOffenderNo}",
    tag = TAG,
    operation_id = "updateNonAssociationMappingsInList",
    params(FromToPath),
    request_body(content = Vec<UpdateListEntry>, description = "Prisoner numbers, e.g. [\"A1234BC\"], or non-association ids, e.g. [1234, 1235]"),
    responses(
        (status = 200, description = "Mappings rewritten", body = Vec<NonAssociationMapping>),
        (status = 400, description = "Malformed body or numbers; the old or new number in the list; an id naming neither number", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
        (status = 409, description = "A rewritten mapping would collide with an existing one (errorCode 1409)", body = ErrorResponse),
    )
)]
async fn update_list(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Path(p): Path<FromToPath>,
    Json(body): Json<Vec<Value>>,
) -> Result<Json<Vec<NonAssociationMapping>>, ApiError> {
    let old = prisoner_number("oldOffenderNo", &p.old_offender_no)?;
    let new = prisoner_number("newOffenderNo", &p.new_offender_no)?;
    let list = UpdateList::parse(&body)?;
    Ok(Json(super::update_list(&store, &old, &new, &list).await?))
}

/// Points a mapping at another NOMIS type sequence
///
/// Used in merges where both prisoners had non-associations with the same third prisoner.
#[utoipa::path(
    put,
    path = "/mapping/non-associations/non-association-id/{nonAssociationId}/sequence/{newSequence}",
    tag = TAG,
    operation_id = "setNonAssociationMappingSequence",
    params(SequencePath),
    responses(
        (status = 200, description = "The updated mapping (unchanged if it already had that sequence)", body = NonAssociationMapping),
        (status = 400, description = "Malformed id or sequence", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
        (status = 404, description = "No mapping for that id", body = ErrorResponse),
        (status = 409, description = "Another mapping of the pair holds that sequence (errorCode 1409)", body = ErrorResponse),
    )
)]
async fn set_sequence(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Path(p): Path<SequencePath>,
) -> Result<Json<NonAssociationMapping>, ApiError> {
    Ok(Json(
        super::set_sequence(&store, p.non_association_id, p.new_sequence).await?,
    ))
}

/// Gets every mapping of the given pairs
///
/// One look-up for a batch of pairs (at most 1000; either order within a pair): what the
/// migration calls instead of one look-up per record.
#[utoipa::path(
    post,
    path = "/mapping/non-associations/pairs",
    tag = TAG,
    operation_id = "getNonAssociationMappingsOfPairs",
    request_body = Vec<PairKey>,
    responses(
        (status = 200, description = "The mappings of those pairs, in DPS id order", body = Vec<NonAssociationMapping>),
        (status = 400, description = "Malformed body (the message names the entry) or more than 1000 pairs", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role", body = ErrorResponse),
    )
)]
async fn of_pairs(
    _auth: Authorised<MappingRead>,
    State(store): State<MappingStore>,
    Json(body): Json<Vec<PairKey>>,
) -> Result<Json<Vec<NonAssociationMapping>>, ApiError> {
    Ok(Json(super::of_pairs(&store, &body).await?))
}

/// Creates many non-association mappings at once
///
/// One transaction: each mapping behaves as in `POST /mapping/non-associations` (an
/// identical one already stored is a no-op), and the first clash rolls the whole batch
/// back with the same 409. Answers the mappings as stored (an already-stored one keeps
/// its own label). At most 1000.
#[utoipa::path(
    post,
    path = "/mapping/non-associations/batch",
    tag = TAG,
    operation_id = "createNonAssociationMappings",
    request_body = Vec<NonAssociationMapping>,
    responses(
        (status = 201, description = "Stored; the mappings as stored", body = Vec<NonAssociationMapping>),
        (status = 400, description = "An invalid mapping (the message names its index) or more than 1000", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Missing role or write scope", body = ErrorResponse),
        (status = 409, description = "A mapping clashes with a different stored one (errorCode 1409, moreInfo.existing / moreInfo.duplicate); nothing was stored", body = ErrorResponse),
    )
)]
async fn create_batch(
    _auth: Authorised<MappingWrite>,
    State(store): State<MappingStore>,
    Json(body): Json<Vec<NonAssociationMapping>>,
) -> Result<(StatusCode, Json<Vec<NonAssociationMapping>>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(super::create_batch(&store, &body).await?),
    ))
}
