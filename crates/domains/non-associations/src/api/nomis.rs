//! The endpoints NOMIS-side services call: the legacy view read by the DPS → NOMIS sync,
//! and seed 002's sync and migrate contract (reference §3.5).

use axum::extract::State;
use http::StatusCode;
use tandem_auth::Authorised;
use tandem_platform::http::Json;
use tandem_platform::ids::PrisonerNumber;
use tandem_platform::{ApiError, ErrorResponse};

use super::dto::{LegacyNonAssociation, NonAssociationDto};
use super::{AppState, Body, NomisMigrate, NomisSync, NomisSyncOrMigrate, PathParams};
use crate::error::NaError;
use crate::events::Source;
use crate::sync::{NomisNonAssociationsRequest, SyncResult, first_repeat, to_sync_records};

const TAG: &str = "NOMIS";

/// A non-association in NOMIS terms: what the DPS → NOMIS sync writes to NOMIS.
#[utoipa::path(
    get, path = "/legacy/api/non-associations/{id}", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    responses(
        (status = 200, description = "The non-association, NOMIS-shaped", body = LegacyNonAssociation),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_SYNC", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn legacy(
    State(s): State<AppState>,
    _auth: Authorised<NomisSync>,
    PathParams(id): PathParams<i64>,
) -> Result<Json<LegacyNonAssociation>, ApiError> {
    let na = s.store.get(id).await?.ok_or(NaError::NotFound(id))?;
    Ok(Json(LegacyNonAssociation::from(&na)))
}

fn status_of(results: &[SyncResult]) -> StatusCode {
    if results.iter().any(|r| r.created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Applies changes made in NOMIS (seed 002 `POST /sync`).
///
/// Per item: with `id`, updates that record (404 if it does not exist; 409 errorCode 101 if
/// it would be open while another of the pair is open); without, updates the record synced
/// from the same NOMIS record (pair + `typeSequence`), else creates one. Open ⇔
/// effectiveDate ≤ today < expiryDate. Raises `non-associations.created`, `.amended` or
/// `.closed` with `source: NOMIS`; an item that changes nothing raises nothing. All items
/// are applied together or not at all.
#[utoipa::path(
    post, path = "/sync", tag = TAG,
    request_body = NomisNonAssociationsRequest,
    responses(
        (status = 200, description = "Applied; nothing was created", body = Vec<SyncResult>),
        (status = 201, description = "Applied; at least one record was created", body = Vec<SyncResult>),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_SYNC", body = ErrorResponse),
        (status = 404, description = "An item names an id that does not exist (errorCode 404)", body = ErrorResponse),
        (status = 409, description = "Another open non-association exists for the pair (errorCode 101), or the id names another pair", body = ErrorResponse),
    )
)]
pub async fn sync(
    State(s): State<AppState>,
    _auth: Authorised<NomisSync>,
    Body(req): Body<NomisNonAssociationsRequest>,
) -> Result<(StatusCode, Json<Vec<SyncResult>>), ApiError> {
    let records = to_sync_records(&req, tandem_platform::time::london_today())?;
    let results: Vec<SyncResult> = s
        .store
        .sync(records)
        .await?
        .into_iter()
        .map(SyncResult::from)
        .collect();
    Ok((status_of(&results), Json(results)))
}

/// Migrates NOMIS records (seed 002 `POST /migrate`). Raises no events.
///
/// Each item is inserted, except one already migrated (same pair and `typeSequence`),
/// which is returned with `created: false` — so a request whose response was lost can
/// be repeated safely. An open item is refused (409 errorCode 101) when the pair already
/// has an open record; closed items are always inserted. All or nothing.
#[utoipa::path(
    post, path = "/migrate", tag = TAG,
    request_body = NomisNonAssociationsRequest,
    responses(
        (status = 200, description = "Every item had already been migrated", body = Vec<SyncResult>),
        (status = 201, description = "Migrated", body = Vec<SyncResult>),
        (status = 400, description = "Invalid request (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_MIGRATE", body = ErrorResponse),
        (status = 409, description = "An open non-association exists for the pair (errorCode 101)", body = ErrorResponse),
    )
)]
pub async fn migrate(
    State(s): State<AppState>,
    _auth: Authorised<NomisMigrate>,
    Body(req): Body<NomisNonAssociationsRequest>,
) -> Result<(StatusCode, Json<Vec<SyncResult>>), ApiError> {
    let records = to_sync_records(&req, tandem_platform::time::london_today())?;
    let results: Vec<SyncResult> = s
        .store
        .migrate(records)
        .await?
        .into_iter()
        .map(SyncResult::from)
        .collect();
    Ok((status_of(&results), Json(results)))
}

/// Migrates several prisoners' NOMIS records in one transaction: the migration's batch of
/// pairs in one call. Each request behaves as in `POST /migrate`; all or nothing (a
/// refused item fails the whole batch, naming it, and the caller retries pair by pair).
#[utoipa::path(
    post, path = "/migrate/batch", tag = TAG,
    request_body = Vec<NomisNonAssociationsRequest>,
    responses(
        (status = 200, description = "One result list per request, in order", body = Vec<Vec<SyncResult>>),
        (status = 400, description = "Invalid request (errorCode 102); the message names the request index", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_MIGRATE", body = ErrorResponse),
        (status = 409, description = "An open non-association exists for a pair (errorCode 101)", body = ErrorResponse),
    )
)]
pub async fn migrate_batch(
    State(s): State<AppState>,
    _auth: Authorised<NomisMigrate>,
    Body(reqs): Body<Vec<NomisNonAssociationsRequest>>,
) -> Result<Json<Vec<Vec<SyncResult>>>, ApiError> {
    let today = tandem_platform::time::london_today();
    let batches = reqs
        .iter()
        .enumerate()
        .map(|(i, req)| {
            to_sync_records(req, today).map_err(|e| match e {
                NaError::Validation(m) => NaError::Validation(format!("[{i}].{m}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((j, i)) = first_repeat(batches.iter().flatten()) {
        // From a position in the flattened batch to (request, item).
        let at = |mut n: usize| {
            let mut r = 0;
            while r < batches.len() && n >= batches[r].len() {
                n -= batches[r].len();
                r += 1;
            }
            (r, n)
        };
        let ((ri, ki), (rj, kj)) = (at(i), at(j));
        return Err(NaError::Validation(format!(
            "[{ri}].nonAssociations[{ki}]: the same NOMIS record (or DPS id) as [{rj}].nonAssociations[{kj}]; name each once"
        ))
        .into());
    }
    let results = s
        .store
        .migrate_batch(batches)
        .await?
        .into_iter()
        .map(|outcomes| outcomes.into_iter().map(SyncResult::from).collect())
        .collect();
    Ok(Json(results))
}

/// Deletes a record because it was deleted in NOMIS; raises `non-associations.deleted`
/// with `source: NOMIS`.
#[utoipa::path(
    delete, path = "/sync/{id}", tag = TAG,
    params(("id" = i64, Path, description = "The non-association id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_SYNC", body = ErrorResponse),
        (status = 404, description = "Not found (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn delete_synced(
    State(s): State<AppState>,
    _auth: Authorised<NomisSync>,
    PathParams(id): PathParams<i64>,
) -> Result<StatusCode, ApiError> {
    s.store.delete(id, Source::Nomis).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The DPS record migrated or synced from a NOMIS record: lets a migration whose
/// response was lost find what it created. The pair may be given in either order.
#[utoipa::path(
    get, path = "/sync/id/{firstPrisonerNumber}/{secondPrisonerNumber}/{typeSequence}", tag = TAG,
    params(
        ("firstPrisonerNumber" = String, Path, description = "One prisoner of the pair"),
        ("secondPrisonerNumber" = String, Path, description = "The other prisoner"),
        ("typeSequence" = i32, Path, description = "The NOMIS type sequence"),
    ),
    responses(
        (status = 200, description = "The DPS record", body = NonAssociationDto),
        (status = 400, description = "Malformed prisoner number or sequence (errorCode 102)", body = ErrorResponse),
        (status = 403, description = "Missing ROLE_NON_ASSOCIATIONS_SYNC or ROLE_NON_ASSOCIATIONS_MIGRATE", body = ErrorResponse),
        (status = 404, description = "No record for this NOMIS key (errorCode 404)", body = ErrorResponse),
    )
)]
pub async fn find_by_nomis_key(
    State(s): State<AppState>,
    _auth: Authorised<NomisSyncOrMigrate>,
    PathParams((first, second, type_sequence)): PathParams<(PrisonerNumber, PrisonerNumber, i32)>,
) -> Result<Json<NonAssociationDto>, ApiError> {
    let na = s
        .store
        .find_by_nomis_key(first.as_str(), second.as_str(), type_sequence)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No non-association was migrated or synced from NOMIS record {first}/{second}/{type_sequence}"
            ))
            .with_code(crate::error::codes::NON_ASSOCIATION_NOT_FOUND)
        })?;
    Ok(Json(NonAssociationDto::from(&na)))
}
