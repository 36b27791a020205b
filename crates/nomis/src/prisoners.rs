//! Prisoners: offenders with their current booking, as the DPS services look them up
//! ("does this prisoner exist, and which prison are they in?"), and the emulator's way of
//! receiving a new prisoner.

use std::collections::HashMap;

use axum::{extract::State, http::StatusCode};
use chrono::{NaiveDate, NaiveDateTime};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use tandem_auth::Authorised;
use tandem_platform::{
    ApiError, ErrorResponse,
    events::{OFFENDER_EVENTS, OutgoingEvent},
    http::{Json, Path},
    ids::PrisonerNumber,
    time::london_today,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState, NomisError, NomisSyncRead, NomisSyncWrite,
    audit::{AuditModule, AuditStamp},
    error::conflict_on_unique,
    keys,
    schema::entities::{agency_locations, offender_bookings, offenders},
};

/// The most numbers one bulk lookup takes.
pub const MAX_SEARCH: usize = 1000;

/// A prisoner as the DPS services see them. The non-associations service relies on these
/// field names: do not rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrisonerDetails {
    #[schema(example = "A1234BC")]
    pub offender_no: String,
    pub offender_id: i64,
    /// The active booking, else the latest one.
    pub booking_id: Option<i64>,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    /// The prison of the active booking; null when released or in transfer.
    #[schema(example = "MDI")]
    pub prison_id: Option<String>,
    pub prison_name: Option<String>,
    /// The cell within the prison, e.g. `A-1-001`.
    pub cell_location: Option<String>,
    /// True when the prisoner has an active booking in a prison.
    pub active: bool,
    pub audit_module_name: String,
    /// When the offender record last changed, local (Europe/London) time.
    #[schema(value_type = String, example = "2024-02-08T13:56:40.123456")]
    pub modify_datetime: NaiveDateTime,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePrisonerRequest {
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    /// The prison receiving the prisoner, e.g. `MDI`.
    pub prison_id: String,
    /// An offender number to use instead of a generated one (for replaying recorded data).
    #[serde(default)]
    pub offender_no: Option<String>,
    /// The cell, e.g. `A-1-001`; one is chosen when absent.
    #[serde(default)]
    pub cell_location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePrisonerResponse {
    pub offender_no: String,
    pub offender_id: i64,
    pub booking_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    pub prison_id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrisonerSearchRequest {
    /// 1 to 1000 offender numbers.
    pub prisoner_numbers: Vec<String>,
}

/// Parses an offender number from `field`, accepting lower case as the DPS services do.
pub(crate) fn parse_offender_no(field: &str, value: &str) -> Result<String, NomisError> {
    PrisonerNumber::parse(&value.trim().to_ascii_uppercase())
        .map(String::from)
        .map_err(|_| {
            NomisError::field(
                field,
                format!("invalid prisoner number '{value}': expected a letter, four digits and two letters, e.g. A1234BC"),
            )
        })
}

/// The booking that describes where the prisoner is now: the active one, else the latest
/// (`booking_seq` 1 is the latest in NOMIS).
pub(crate) fn current_booking(
    bookings: &[offender_bookings::Model],
) -> Option<&offender_bookings::Model> {
    bookings.iter().min_by_key(|b| {
        (
            b.active_flag != "Y",
            b.booking_seq,
            std::cmp::Reverse(b.offender_book_id),
        )
    })
}

/// Offenders by number with their bookings (missing numbers are left out).
pub(crate) async fn load_offenders<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<(offenders::Model, Vec<offender_bookings::Model>)>, NomisError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let people = offenders::Entity::find()
        .filter(offenders::Column::OffenderNo.is_in(numbers.iter().cloned()))
        .all(conn)
        .await?;
    let ids: Vec<i64> = people.iter().map(|o| o.offender_id).collect();
    let mut by_offender: HashMap<i64, Vec<offender_bookings::Model>> = HashMap::new();
    if !ids.is_empty() {
        for b in offender_bookings::Entity::find()
            .filter(offender_bookings::Column::OffenderId.is_in(ids))
            .all(conn)
            .await?
        {
            by_offender.entry(b.offender_id).or_default().push(b);
        }
    }
    Ok(people
        .into_iter()
        .map(|o| {
            let bookings = by_offender.remove(&o.offender_id).unwrap_or_default();
            (o, bookings)
        })
        .collect())
}

/// Prisoner details for the given numbers, in the order asked (missing ones left out).
pub async fn find_prisoners<C: ConnectionTrait>(
    conn: &C,
    numbers: &[String],
) -> Result<Vec<PrisonerDetails>, NomisError> {
    let loaded = load_offenders(conn, numbers).await?;
    let agencies: HashMap<String, agency_locations::Model> = agency_locations::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.agy_loc_id.clone(), a))
        .collect();
    let mut by_no: HashMap<String, PrisonerDetails> = loaded
        .into_iter()
        .map(|(o, bookings)| {
            let details = to_details(o, &bookings, &agencies);
            (details.offender_no.clone(), details)
        })
        .collect();
    Ok(numbers.iter().filter_map(|n| by_no.remove(n)).collect())
}

fn to_details(
    o: offenders::Model,
    bookings: &[offender_bookings::Model],
    agencies: &HashMap<String, agency_locations::Model>,
) -> PrisonerDetails {
    let booking = current_booking(bookings);
    let prison = booking
        .filter(|b| b.active_flag == "Y")
        .and_then(|b| agencies.get(&b.agy_loc_id))
        .filter(|a| a.agency_location_type == "INST");
    let cell_location = prison.and_then(|p| {
        booking
            .and_then(|b| b.living_unit_description.as_deref())
            .map(|cell| {
                cell.strip_prefix(&format!("{}-", p.agy_loc_id))
                    .unwrap_or(cell)
                    .to_string()
            })
    });
    PrisonerDetails {
        offender_no: o.offender_no,
        offender_id: o.offender_id,
        booking_id: booking.map(|b| b.offender_book_id),
        first_name: o.first_name,
        last_name: o.last_name,
        date_of_birth: o.birth_date,
        prison_id: prison.map(|p| p.agy_loc_id.clone()),
        prison_name: prison.map(|p| p.description.clone()),
        cell_location,
        active: prison.is_some(),
        audit_module_name: o.audit_module_name,
        modify_datetime: tandem_platform::time::london_local(o.modify_datetime),
    }
}

/// Active prisons (`INST`), in id order.
pub(crate) async fn prisons<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<agency_locations::Model>, NomisError> {
    let mut all: Vec<_> = agency_locations::Entity::find()
        .filter(agency_locations::Column::AgencyLocationType.eq("INST"))
        .filter(agency_locations::Column::ActiveFlag.eq("Y"))
        .all(conn)
        .await?;
    all.sort_by(|a, b| a.agy_loc_id.cmp(&b.agy_loc_id));
    Ok(all)
}

fn check_name(field: &str, value: &str) -> Result<String, NomisError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(NomisError::field(field, "must not be blank"));
    }
    if v.chars().count() > 35 {
        return Err(NomisError::field(field, "must be at most 35 characters"));
    }
    Ok(v.to_string())
}

/// Receives a new prisoner into a prison: an offender with one active booking.
pub async fn create_prisoner(
    db: &tandem_platform::db::Db,
    req: CreatePrisonerRequest,
    stamp: &AuditStamp,
) -> Result<CreatePrisonerResponse, NomisError> {
    let first_name = check_name("firstName", &req.first_name)?;
    let last_name = check_name("lastName", &req.last_name)?;
    let today = london_today();
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
    if req.date_of_birth > today || req.date_of_birth < earliest {
        return Err(NomisError::field(
            "dateOfBirth",
            format!(
                "{} is not a plausible date of birth (1900-01-01 to today)",
                req.date_of_birth
            ),
        ));
    }
    let wanted_no = req
        .offender_no
        .as_deref()
        .map(|n| parse_offender_no("offenderNo", n))
        .transpose()?;
    let cell = match req.cell_location.as_deref().map(str::trim) {
        Some(c) if c.is_empty() || c.len() > 30 => {
            return Err(NomisError::field(
                "cellLocation",
                "must be 1 to 30 characters, e.g. A-1-001",
            ));
        }
        other => other.map(str::to_string),
    };

    let txn = db.begin_write().await?;
    let prisons = prisons(&txn).await?;
    let prison_id = req.prison_id.trim().to_ascii_uppercase();
    if !prisons.iter().any(|p| p.agy_loc_id == prison_id) {
        let known: Vec<&str> = prisons.iter().map(|p| p.agy_loc_id.as_str()).collect();
        return Err(NomisError::field(
            "prisonId",
            format!(
                "'{}' is not a prison; known prisons are {}",
                req.prison_id,
                known.join(", ")
            ),
        ));
    }

    let offender_id = keys::allocate(&txn, keys::OFFENDER_ID, 1).await?;
    let offender_no = match wanted_no {
        Some(no) => {
            let taken = offenders::Entity::find()
                .filter(offenders::Column::OffenderNo.eq(no.clone()))
                .one(&txn)
                .await?
                .is_some();
            if taken {
                return Err(NomisError::Conflict(format!(
                    "Validation failure: offenderNo: {no} is already in use"
                )));
            }
            no
        }
        None => {
            // Generated numbers never collide with each other; only a number chosen by a
            // caller can be in the way, so step past it.
            let mut id = offender_id;
            loop {
                let no = keys::offender_no_for(id);
                let taken = offenders::Entity::find()
                    .filter(offenders::Column::OffenderNo.eq(no.clone()))
                    .one(&txn)
                    .await?
                    .is_some();
                if !taken {
                    break no;
                }
                id = keys::allocate(&txn, keys::OFFENDER_ID, 1).await?;
            }
        }
    };
    let booking_id = keys::allocate(&txn, keys::OFFENDER_BOOK_ID, 1).await?;
    let cell = cell.unwrap_or_else(|| default_cell(booking_id));

    offenders::Entity::insert(offenders::ActiveModel {
        offender_id: Set(offender_id),
        offender_no: Set(offender_no.clone()),
        first_name: Set(first_name.clone()),
        last_name: Set(last_name.clone()),
        birth_date: Set(req.date_of_birth),
        create_datetime: Set(stamp.at),
        create_user_id: Set(stamp.user.clone()),
        modify_datetime: Set(stamp.at),
        modify_user_id: Set(stamp.user.clone()),
        audit_module_name: Set(stamp.module.to_string()),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(|e| {
        conflict_on_unique(e, || {
            format!("offender number {offender_no} was taken concurrently; retry")
        })
    })?;
    offender_bookings::Entity::insert(offender_bookings::ActiveModel {
        offender_book_id: Set(booking_id),
        offender_id: Set(offender_id),
        booking_seq: Set(1),
        active_flag: Set("Y".into()),
        agy_loc_id: Set(prison_id.clone()),
        booking_begin_date: Set(today),
        booking_end_date: Set(None),
        living_unit_description: Set(Some(format!("{prison_id}-{cell}"))),
        create_datetime: Set(stamp.at),
        create_user_id: Set(stamp.user.clone()),
        modify_datetime: Set(stamp.at),
        modify_user_id: Set(stamp.user.clone()),
        audit_module_name: Set(stamp.module.to_string()),
    })
    .exec_without_returning(&txn)
    .await?;

    let event = OutgoingEvent::raw(
        OFFENDER_EVENTS,
        "OFFENDER-INSERTED",
        serde_json::json!({
            "eventType": "OFFENDER-INSERTED",
            "eventDatetime": crate::audit::nomis_local_string(stamp.at),
            "offenderId": offender_id,
            "offenderIdDisplay": offender_no,
            "bookingId": booking_id,
            "nomisEventType": "OFFENDER-INSERTED",
            "auditModuleName": stamp.module.as_str(),
        }),
        Some(offender_no.clone()),
    );
    tandem_bus::outbox::enqueue(&txn, &event).await?;
    txn.commit().await?;
    tandem_bus::outbox::committed();

    Ok(CreatePrisonerResponse {
        offender_no,
        offender_id,
        booking_id,
        first_name,
        last_name,
        date_of_birth: req.date_of_birth,
        prison_id,
    })
}

/// A cell for a prisoner received without one: wings A–D, landings 1–3, cells 001–040.
pub(crate) fn default_cell(n: i64) -> String {
    let n = n.rem_euclid(4 * 3 * 40);
    let wing = (b'A' + (n / 120) as u8) as char;
    let landing = (n / 40) % 3 + 1;
    let cell = n % 40 + 1;
    format!("{wing}-{landing}-{cell:03}")
}

#[utoipa::path(
    post,
    path = "/prisoners",
    tag = "prisoners",
    summary = "Receive a new prisoner (emulator only)",
    description = "Creates an offender with an active booking in the given prison. Requires role NOMIS_PRISONER_API__SYNCHRONISATION__RW and the write scope. The X-Audit-Module header names the NOMIS module the change is stamped with (default DPS_SYNCHRONISATION).",
    request_body = CreatePrisonerRequest,
    params(("X-Audit-Module" = Option<String>, Header, description = "NOMIS audit module, e.g. OIDADMIS")),
    responses(
        (status = 201, body = CreatePrisonerResponse),
        (status = 400, description = "Invalid request, e.g. unknown prison", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 409, description = "The requested offender number is in use", body = ErrorResponse),
    )
)]
async fn post_prisoner(
    State(state): State<AppState>,
    auth: Authorised<NomisSyncWrite>,
    module: AuditModule,
    Json(body): Json<CreatePrisonerRequest>,
) -> Result<(StatusCode, Json<CreatePrisonerResponse>), ApiError> {
    let stamp = AuditStamp::now(auth.username(), module);
    let created = create_prisoner(&state.db, body, &stamp).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    get,
    path = "/prisoners/{offenderNo}",
    tag = "prisoners",
    summary = "A prisoner and where they are",
    params(("offenderNo" = String, Path, description = "Offender number", example = "A1234BC")),
    responses(
        (status = 200, body = PrisonerDetails),
        (status = 400, description = "Malformed offender number", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    )
)]
async fn get_prisoner(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Path(offender_no): Path<String>,
) -> Result<Json<PrisonerDetails>, ApiError> {
    let no = parse_offender_no("offenderNo", &offender_no)?;
    let found = find_prisoners(state.db.conn(), std::slice::from_ref(&no)).await?;
    found
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Prisoner with offender number {no} not found")))
}

#[utoipa::path(
    post,
    path = "/prisoners/search",
    tag = "prisoners",
    summary = "Look up many prisoners at once",
    description = "Returns the prisoners found among 1 to 1000 offender numbers, in the order asked; numbers not found are left out.",
    request_body = PrisonerSearchRequest,
    responses(
        (status = 200, body = Vec<PrisonerDetails>),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn search_prisoners(
    State(state): State<AppState>,
    _auth: Authorised<NomisSyncRead>,
    Json(body): Json<PrisonerSearchRequest>,
) -> Result<Json<Vec<PrisonerDetails>>, ApiError> {
    let n = body.prisoner_numbers.len();
    if n == 0 || n > MAX_SEARCH {
        return Err(NomisError::field(
            "prisonerNumbers",
            format!("between 1 and {MAX_SEARCH} offender numbers are required, {n} were given"),
        )
        .into());
    }
    let mut numbers = Vec::with_capacity(n);
    for (i, raw) in body.prisoner_numbers.iter().enumerate() {
        let no = parse_offender_no(&format!("prisonerNumbers[{i}]"), raw)?;
        if !numbers.contains(&no) {
            numbers.push(no);
        }
    }
    Ok(Json(find_prisoners(state.db.conn(), &numbers).await?))
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_prisoner))
        .routes(routes!(search_prisoners))
        .routes(routes!(get_prisoner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: i64, seq: i32, active: bool) -> offender_bookings::Model {
        let now = chrono::Utc::now();
        offender_bookings::Model {
            offender_book_id: id,
            offender_id: 1,
            booking_seq: seq,
            active_flag: if active { "Y" } else { "N" }.into(),
            agy_loc_id: "MDI".into(),
            booking_begin_date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            booking_end_date: None,
            living_unit_description: None,
            create_datetime: now,
            create_user_id: "U".into(),
            modify_datetime: now,
            modify_user_id: "U".into(),
            audit_module_name: "M".into(),
        }
    }

    #[test]
    fn the_active_booking_wins_else_the_latest() {
        let b = [booking(10, 2, false), booking(11, 1, false)];
        assert_eq!(current_booking(&b).map(|b| b.offender_book_id), Some(11));
        let b = [booking(10, 2, true), booking(11, 1, false)];
        assert_eq!(current_booking(&b).map(|b| b.offender_book_id), Some(10));
        assert!(current_booking(&[]).is_none());
    }

    #[test]
    fn offender_numbers_are_normalised() {
        assert_eq!(parse_offender_no("x", " a1234bc ").unwrap(), "A1234BC");
        let e = parse_offender_no("offenderNo", "A12")
            .unwrap_err()
            .to_string();
        assert!(e.contains("offenderNo"), "{e}");
    }

    #[test]
    fn default_cells_look_like_cells() {
        assert_eq!(default_cell(0), "A-1-001");
        assert_eq!(default_cell(479), "D-3-040");
    }
}
