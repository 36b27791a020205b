//! Per-prison switch-over (reference migration-sync §3.4, domain-apis §4.7; NPA
//! `ServiceAgencySwitchesResource`).
//!
//! During a roll-out DPS becomes the master of a domain one prison at a time. A row in
//! `service_agency_switches` says it has for that prison (`*ALL*`: for every prison). The
//! sync listeners ask `GET /agency-switches/{serviceCode}/agency/{agencyId}` (204 on, 404
//! off), and the NOMIS "screens" become read-only there: a write under a NOMIS screen's
//! audit module is refused with a 409 ([`refuse_nomis_edit`]) while the sync from DPS
//! (module `DPS_SYNCHRONISATION…`) still writes.

use axum::{extract::State, http::StatusCode};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use tandem_auth::Authorised;
use tandem_platform::{
    ApiError, ErrorResponse,
    db::Db,
    http::{Json, Path},
    ids::PrisonId,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState, NomisError, NomisSyncRead, NomisSyncWrite,
    audit::{AuditModule, AuditStamp, DEFAULT_AUDIT_MODULE},
    prisoners::{current_booking, load_offenders, parse_offender_no},
    schema::entities::{agency_locations, external_services, service_agency_switches as switches},
};

/// The agency id that switches a service on at every prison.
pub const ALL_AGENCIES: &str = "*ALL*";
/// The service code of non-associations.
pub const NON_ASSOCIATIONS: &str = "NON_ASSOCIATIONS";
/// The service code of incidents.
pub const INCIDENTS: &str = "INCIDENTS";
/// The service code of adjudications.
pub const ADJUDICATIONS: &str = "ADJUDICATIONS";
/// The service code of visits.
pub const VISITS: &str = "VISITS";

const TAG: &str = "agency-switches";

/// A prison a service is switched on for (NPA `PrisonDto`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrisonDto {
    /// The prison id, or `*ALL*` for every prison.
    #[schema(example = "MDI")]
    pub prison_id: String,
    #[schema(example = "Moorland (HMP & YOI)")]
    pub name: String,
}

/// Parses an agency id from a path: a prison id (`MDI`) or `*ALL*`; 400 otherwise.
pub fn parse_agency(value: &str) -> Result<String, NomisError> {
    let v = value.trim().to_ascii_uppercase();
    if v == ALL_AGENCIES {
        return Ok(v);
    }
    PrisonId::parse(&v).map(String::from).map_err(|_| {
        NomisError::field(
            "agencyId",
            format!(
                "invalid agency id '{value}': expected 2 to 6 upper-case letters or digits (e.g. MDI), or {ALL_AGENCIES} for every prison"
            ),
        )
    })
}

/// The service of `code`; 404 naming the valid codes when there is none.
pub async fn find_service<C: ConnectionTrait>(
    conn: &C,
    code: &str,
) -> Result<external_services::Model, NomisError> {
    let all = external_services::Entity::find()
        .order_by_asc(external_services::Column::ServiceCode)
        .all(conn)
        .await?;
    let valid: Vec<&str> = all.iter().map(|s| s.service_code.as_str()).collect();
    let valid = valid.join(", ");
    all.into_iter()
        .find(|s| s.service_code == code)
        .ok_or_else(|| {
            NomisError::NotFound(format!(
                "Service code {code} does not exist; valid service codes are {valid}"
            ))
        })
}

/// Which of `agencies` (plus `*ALL*`) the service is switched on for: the first of
/// `agencies` that is, else `*ALL*` when it is, else `None`.
pub async fn switched_on_for<C: ConnectionTrait>(
    conn: &C,
    service_code: &str,
    agencies: &[&str],
) -> Result<Option<String>, NomisError> {
    let wanted: Vec<String> = agencies
        .iter()
        .map(|a| a.to_string())
        .chain(std::iter::once(ALL_AGENCIES.to_string()))
        .collect();
    let on: Vec<String> = switches::Entity::find()
        .filter(switches::Column::ServiceCode.eq(service_code))
        .filter(switches::Column::AgyLocId.is_in(wanted.clone()))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.agy_loc_id)
        .collect();
    Ok(wanted.into_iter().find(|a| on.contains(a)))
}

/// Whether the service is on at `agency` (directly or through `*ALL*`); 404 for an
/// unknown service, 400 for a malformed agency.
pub async fn is_on<C: ConnectionTrait>(
    conn: &C,
    service_code: &str,
    agency: &str,
) -> Result<bool, NomisError> {
    let agency = parse_agency(agency)?;
    find_service(conn, service_code).await?;
    Ok(switched_on_for(conn, service_code, &[&agency])
        .await?
        .is_some())
}

/// The prisons the service is switched on for, by id (`*ALL*` first when present).
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    service_code: &str,
) -> Result<Vec<PrisonDto>, NomisError> {
    find_service(conn, service_code).await?;
    let ids: Vec<String> = switches::Entity::find()
        .filter(switches::Column::ServiceCode.eq(service_code))
        .order_by_asc(switches::Column::AgyLocId)
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.agy_loc_id)
        .collect();
    let names = agency_locations::Entity::find()
        .filter(agency_locations::Column::AgyLocId.is_in(ids.clone()))
        .all(conn)
        .await?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let name = names
                .iter()
                .find(|a| a.agy_loc_id == id)
                .map(|a| a.description.clone())
                .unwrap_or_else(|| agency_name_fallback(&id));
            PrisonDto {
                prison_id: id,
                name,
            }
        })
        .collect())
}

fn agency_name_fallback(id: &str) -> String {
    if id == ALL_AGENCIES {
        "All prisons".to_string()
    } else {
        id.to_string()
    }
}

/// The prison a switch can name: `*ALL*` or an existing prison (`INST`); 404 for an
/// unknown agency, 400 for a pseudo-agency such as `OUT`.
async fn switchable_prison<C: ConnectionTrait>(
    conn: &C,
    agency: &str,
) -> Result<PrisonDto, NomisError> {
    if agency == ALL_AGENCIES {
        return Ok(PrisonDto {
            prison_id: agency.to_string(),
            name: agency_name_fallback(agency),
        });
    }
    let found = agency_locations::Entity::find_by_id(agency.to_string())
        .one(conn)
        .await?
        .ok_or_else(|| NomisError::NotFound(format!("Agency {agency} does not exist")))?;
    if found.agency_location_type != "INST" {
        return Err(NomisError::field(
            "agencyId",
            format!(
                "{agency} ({}) is not a prison; a switch names a prison or {ALL_AGENCIES}",
                found.description
            ),
        ));
    }
    Ok(PrisonDto {
        prison_id: found.agy_loc_id,
        name: found.description,
    })
}

/// Switches the service on at `agency`. Idempotent: `Ok((prison, false))` when it was
/// already on, `true` when this call turned it on.
pub async fn turn_on(
    db: &Db,
    service_code: &str,
    agency: &str,
    stamp: &AuditStamp,
) -> Result<(PrisonDto, bool), NomisError> {
    let agency = parse_agency(agency)?;
    let txn = db.begin_write().await?;
    find_service(&txn, service_code).await?;
    let prison = switchable_prison(&txn, &agency).await?;
    let existing = switches::Entity::find_by_id((service_code.to_string(), agency.clone()))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Ok((prison, false));
    }
    let inserted = switches::Entity::insert(switches::ActiveModel {
        service_code: Set(service_code.to_string()),
        agy_loc_id: Set(agency),
        create_datetime: Set(stamp.at),
        create_user_id: Set(stamp.user.clone()),
        modify_datetime: Set(stamp.at),
        modify_user_id: Set(stamp.user.clone()),
        audit_module_name: Set(stamp.module.to_string()),
    })
    .exec_without_returning(&txn)
    .await;
    match inserted {
        Ok(_) => {
            txn.commit().await?;
            Ok((prison, true))
        }
        // A concurrent request turned it on first: the outcome asked for holds.
        Err(e) if tandem_platform::db::is_unique_violation(&e) => Ok((prison, false)),
        Err(e) => Err(e.into()),
    }
}

/// Switches the service off at `agency` (a no-op when it was off). Turning off a prison
/// while `*ALL*` is on leaves it on through `*ALL*`.
pub async fn turn_off(db: &Db, service_code: &str, agency: &str) -> Result<(), NomisError> {
    let agency = parse_agency(agency)?;
    let txn = db.begin_write().await?;
    find_service(&txn, service_code).await?;
    switches::Entity::delete_many()
        .filter(switches::Column::ServiceCode.eq(service_code))
        .filter(switches::Column::AgyLocId.eq(agency))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Whether a write stamped with `module` comes from the sync from DPS (which always writes).
pub fn is_dps_sync(module: &AuditModule) -> bool {
    module.as_str().starts_with(DEFAULT_AUDIT_MODULE)
}

/// Refuses (409) a NOMIS user's edit of `service_code` data touching `prisons` when DPS is
/// master at any of them (or at every prison). Writes from the sync from DPS pass. Call it
/// inside the write transaction, before writing anything, so the check and the write see
/// the same switches.
pub async fn refuse_nomis_edit<C: ConnectionTrait>(
    conn: &C,
    stamp: &AuditStamp,
    service_code: &str,
    prisons: &[&str],
) -> Result<(), NomisError> {
    if is_dps_sync(&stamp.module) {
        return Ok(());
    }
    let Some(on) = switched_on_for(conn, service_code, prisons).await? else {
        return Ok(());
    };
    let what = external_services::Entity::find_by_id(service_code.to_string())
        .one(conn)
        .await?
        .map(|s| s.description)
        .unwrap_or_else(|| service_code.to_string());
    let place = if on == ALL_AGENCIES {
        "all prisons".to_string()
    } else {
        on
    };
    Err(NomisError::Conflict(format!(
        "{what} at {place} are mastered in DPS: edit them in DPS (this change under audit module {} was not saved)",
        stamp.module
    )))
}

/// Whether the service is on at the prison of the prisoner's active booking (or at every
/// prison); 404 for an unknown prisoner.
pub async fn is_on_for_prisoner<C: ConnectionTrait>(
    conn: &C,
    service_code: &str,
    prison_number: &str,
) -> Result<bool, NomisError> {
    let no = parse_offender_no("prisonNumber", prison_number)?;
    find_service(conn, service_code).await?;
    let (_, bookings) = load_offenders(conn, std::slice::from_ref(&no))
        .await?
        .pop()
        .ok_or_else(|| NomisError::NotFound(format!("Prisoner {no} not found")))?;
    let prison = current_booking(&bookings)
        .filter(|b| b.active_flag == "Y")
        .map(|b| b.agy_loc_id.as_str());
    let prisons: Vec<&str> = prison.into_iter().collect();
    Ok(switched_on_for(conn, service_code, &prisons)
        .await?
        .is_some())
}

fn off(service_code: &str, agency: &str) -> ApiError {
    ApiError::not_found(format!(
        "Service {service_code} not turned on for agency {agency}"
    ))
}

#[utoipa::path(
    get,
    path = "/agency-switches/{serviceCode}",
    tag = TAG,
    summary = "The prisons a service is switched on for",
    description = "Prisons where DPS is master for the service; *ALL* means every prison. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW.",
    params(("serviceCode" = String, Path, example = "NON_ASSOCIATIONS")),
    responses(
        (status = 200, body = Vec<PrisonDto>),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown service code", body = ErrorResponse),
    )
)]
async fn get_list(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path(service_code): Path<String>,
) -> Result<Json<Vec<PrisonDto>>, ApiError> {
    Ok(Json(list(state.db.conn(), &service_code).await?))
}

#[utoipa::path(
    get,
    path = "/agency-switches/{serviceCode}/agency/{agencyId}",
    tag = TAG,
    summary = "Whether a service is switched on at a prison",
    description = "204 when DPS is master for the service at the prison (a switch for the prison or for *ALL*), 404 when not. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW.",
    params(
        ("serviceCode" = String, Path, example = "NON_ASSOCIATIONS"),
        ("agencyId" = String, Path, example = "MDI"),
    ),
    responses(
        (status = 204, description = "Switched on"),
        (status = 400, description = "Malformed agency id", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "Switched off, or an unknown service code", body = ErrorResponse),
    )
)]
async fn check(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path((service_code, agency)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if is_on(state.db.conn(), &service_code, &agency).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(off(&service_code, &agency))
    }
}

#[utoipa::path(
    post,
    path = "/agency-switches/{serviceCode}/agency/{agencyId}",
    tag = TAG,
    summary = "Switch a service on at a prison",
    description = "Makes DPS the master of the service at the prison (*ALL*: every prison). Idempotent: 201 when this call switched it on, 200 when it already was. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW and the write scope.",
    params(
        ("serviceCode" = String, Path, example = "NON_ASSOCIATIONS"),
        ("agencyId" = String, Path, example = "MDI"),
        ("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module (default DPS_SYNCHRONISATION)"),
    ),
    responses(
        (status = 201, description = "Switched on", body = PrisonDto),
        (status = 200, description = "Already on", body = PrisonDto),
        (status = 400, description = "Malformed agency id, or not a prison", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown service code or agency", body = ErrorResponse),
    )
)]
async fn switch_on(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Path((service_code, agency)): Path<(String, String)>,
) -> Result<(StatusCode, Json<PrisonDto>), ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    let (prison, created) = turn_on(&state.db, &service_code, &agency, &stamp).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(prison)))
}

#[utoipa::path(
    delete,
    path = "/agency-switches/{serviceCode}/agency/{agencyId}",
    tag = TAG,
    summary = "Switch a service off at a prison",
    description = "NOMIS is master again at the prison (unless *ALL* is on). 204 also when it was already off. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW and the write scope.",
    params(
        ("serviceCode" = String, Path, example = "NON_ASSOCIATIONS"),
        ("agencyId" = String, Path, example = "MDI"),
    ),
    responses(
        (status = 204, description = "Switched off"),
        (status = 400, description = "Malformed agency id", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "Unknown service code", body = ErrorResponse),
    )
)]
async fn switch_off(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncWrite>,
    Path((service_code, agency)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    turn_off(&state.db, &service_code, &agency).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/agency-switches/{serviceCode}/prisoner/{prisonNumber}",
    tag = TAG,
    summary = "Whether a service is switched on at the prisoner's prison",
    description = "204 when the service is on at the prison of the prisoner's active booking (or at every prison), 404 when not or when the prisoner is unknown. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW.",
    params(
        ("serviceCode" = String, Path, example = "NON_ASSOCIATIONS"),
        ("prisonNumber" = String, Path, example = "A1234BC"),
    ),
    responses(
        (status = 204, description = "Switched on"),
        (status = 400, description = "Malformed prisoner number", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "Switched off, or an unknown service code or prisoner", body = ErrorResponse),
    )
)]
async fn check_prisoner(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path((service_code, prison_number)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if is_on_for_prisoner(state.db.conn(), &service_code, &prison_number).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "Service {service_code} not turned on for the prison of prisoner {prison_number}"
        )))
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_list))
        .routes(routes!(check, switch_on, switch_off))
        .routes(routes!(check_prisoner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids() {
        assert_eq!(parse_agency("MDI").unwrap(), "MDI");
        assert_eq!(parse_agency("mdi").unwrap(), "MDI");
        assert_eq!(parse_agency("*ALL*").unwrap(), "*ALL*");
        for bad in ["", "M", "M!I", "TOOLONGX", "*ALL"] {
            let e = parse_agency(bad).unwrap_err().to_string();
            assert!(e.contains("agencyId") && e.contains("*ALL*"), "{e}");
        }
    }

    #[test]
    fn only_dps_synchronisation_modules_are_the_sync() {
        let m = |s: &str| AuditModule::parse(s).unwrap();
        assert!(is_dps_sync(&m("DPS_SYNCHRONISATION")));
        assert!(is_dps_sync(&m("DPS_SYNCHRONISATION_NA")));
        assert!(!is_dps_sync(&m("OIDSENAD")));
        assert!(!is_dps_sync(&m("DPS_SYNC")));
    }
}
