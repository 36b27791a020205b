//! Reading and writing non-associations: every write touches both directions in one
//! transaction, with its events in the outbox of the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DerivePartialModel, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, Value,
    sea_query::{Alias, Expr},
};
use tandem_platform::{
    db::{Db, padded_in_list},
    time::london_today,
};

use super::{
    CreateNonAssociationRequest, CreateNonAssociationResponse, IdFilter, MAX_PAGE_SIZE,
    NonAssociationIdKeysetPage, NonAssociationIdPage, NonAssociationIdResponse,
    NonAssociationResponse, UpdateNonAssociationRequest,
    events::{Change, event},
};
use crate::{
    NomisError, agency_switches,
    audit::AuditStamp,
    error::conflict_on_unique,
    prisoners::{current_booking, load_offenders, parse_offender_no},
    reference::{self, NON_ASSO_RSN, NON_ASSO_TYP},
    schema::entities::{
        offender_na_details as details, offender_non_associations as headers, offenders,
    },
};

/// The longest comment NOMIS holds (`COMMENT_TEXT` V240).
pub const MAX_COMMENT: usize = 240;
/// The longest authoriser name NOMIS holds (`AUTHORIZED_STAFF` V60).
pub const MAX_AUTHORISED_BY: usize = 60;

/// Open ⇔ effective on or before today and no expiry, or an expiry after today.
pub fn is_open(effective: NaiveDate, expiry: Option<NaiveDate>, today: NaiveDate) -> bool {
    effective <= today && expiry.is_none_or(|e| e > today)
}

/// Where an offender number came from decides the status when it is unknown: a path
/// addresses a resource (404), a body field is bad input (400).
#[derive(Clone, Copy)]
enum Source {
    Path,
    Body(&'static str),
}

struct Offender {
    id: i64,
    no: String,
    booking_id: Option<i64>,
    /// The prison of the active booking (none when released).
    prison: Option<String>,
}

/// Both offenders of a non-association in one look-up (two statements, not four); an
/// unknown one is reported as a path (404) or body field (400) error, `a` first.
async fn find_offenders<C: ConnectionTrait>(
    conn: &C,
    (a, a_from): (&str, Source),
    (b, b_from): (&str, Source),
) -> Result<(Offender, Offender), NomisError> {
    let mut found = load_offenders(conn, &[a.to_string(), b.to_string()]).await?;
    let mut take = |no: &str, from: Source| {
        let Some(i) = found.iter().position(|(o, _)| o.offender_no == no) else {
            return Err(match from {
                Source::Path => {
                    NomisError::NotFound(format!("Offender with nomsId={no} not found"))
                }
                Source::Body(field) => {
                    NomisError::field(field, format!("Offender with nomsId={no} not found"))
                }
            });
        };
        let (o, bookings) = found.swap_remove(i);
        let current = current_booking(&bookings);
        Ok(Offender {
            id: o.offender_id,
            booking_id: current.map(|b| b.offender_book_id),
            prison: current
                .filter(|b| b.active_flag == "Y")
                .map(|b| b.agy_loc_id.clone()),
            no: o.offender_no,
        })
    };
    let a = take(a, a_from)?;
    let b = take(b, b_from)?;
    Ok((a, b))
}

/// Both offenders of a path, checked to be different people.
async fn path_pair<C: ConnectionTrait>(
    conn: &C,
    offender_no: &str,
    ns_offender_no: &str,
) -> Result<(Offender, Offender), NomisError> {
    let a = parse_offender_no("offenderNo", offender_no)?;
    let b = parse_offender_no("nsOffenderNo", ns_offender_no)?;
    if a == b {
        return Err(same_offender(&a));
    }
    find_offenders(conn, (&a, Source::Path), (&b, Source::Path)).await
}

fn same_offender(no: &str) -> NomisError {
    NomisError::Invalid(format!(
        "Offender and NS Offender cannot be the same: offenderNo and nsOffenderNo are both {no}"
    ))
}

/// Empty text is no text, as in Oracle (`''` is NULL).
fn optional_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, NomisError> {
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => Err(NomisError::field(
            field,
            format!(
                "is too long (max allowed {max} characters, {} given)",
                v.chars().count()
            ),
        )),
        other => Ok(other),
    }
}

fn check_effective(effective: NaiveDate, today: NaiveDate) -> Result<(), NomisError> {
    if effective > today {
        return Err(NomisError::field(
            "effectiveDate",
            format!(
                "Effective date must not be in the future ({effective} is after today, {today})"
            ),
        ));
    }
    Ok(())
}

struct Codes {
    reasons: Vec<String>,
    types: Vec<String>,
}

async fn codes<C: ConnectionTrait>(conn: &C) -> Result<Codes, NomisError> {
    let mut both = reference::active_codes_of(conn, &[NON_ASSO_RSN, NON_ASSO_TYP]).await?;
    let types = both.pop().unwrap_or_default();
    let reasons = both.pop().unwrap_or_default();
    Ok(Codes { reasons, types })
}

fn check_codes(
    codes: &Codes,
    reason: &str,
    recip_reason: &str,
    na_type: &str,
) -> Result<(), NomisError> {
    reference::check("reason", NON_ASSO_RSN, reason, &codes.reasons)?;
    reference::check("recipReason", NON_ASSO_RSN, recip_reason, &codes.reasons)?;
    reference::check("type", NON_ASSO_TYP, na_type, &codes.types)
}

fn to_response(
    offender_no: &str,
    ns_offender_no: &str,
    d: details::Model,
    header: Option<&headers::Model>,
) -> NonAssociationResponse {
    let header_recip = header.and_then(|h| h.recip_ns_reason_code.clone());
    response_of(offender_no, ns_offender_no, d.into(), header_recip)
}

/// The columns of a detail that its answer shows: the bulk read selects only these,
/// since decoding whole rows (bookings, level, creation audit) was a good part of its cost.
/// The select list is derived from the fields.
#[derive(Debug, DerivePartialModel)]
#[sea_orm(entity = "details::Entity")]
struct DetailView {
    offender_id: i64,
    ns_offender_id: i64,
    type_seq: i32,
    ns_reason_code: String,
    recip_ns_reason_code: Option<String>,
    ns_type: String,
    ns_effective_date: NaiveDate,
    ns_expiry_date: Option<NaiveDate>,
    authorized_staff: Option<String>,
    comment_text: Option<String>,
    modify_datetime: DateTime<Utc>,
    modify_user_id: String,
    audit_module_name: String,
}

impl From<details::Model> for DetailView {
    fn from(d: details::Model) -> Self {
        DetailView {
            offender_id: d.offender_id,
            ns_offender_id: d.ns_offender_id,
            type_seq: d.type_seq,
            ns_reason_code: d.ns_reason_code,
            recip_ns_reason_code: d.recip_ns_reason_code,
            ns_type: d.ns_type,
            ns_effective_date: d.ns_effective_date,
            ns_expiry_date: d.ns_expiry_date,
            authorized_staff: d.authorized_staff,
            comment_text: d.comment_text,
            modify_datetime: d.modify_datetime,
            modify_user_id: d.modify_user_id,
            audit_module_name: d.audit_module_name,
        }
    }
}

/// A detail as the API answers it; the header's reciprocal reason stands in for a detail
/// without one.
fn response_of(
    offender_no: &str,
    ns_offender_no: &str,
    d: DetailView,
    header_recip: Option<String>,
) -> NonAssociationResponse {
    let recip_reason = d.recip_ns_reason_code.or(header_recip).unwrap_or_default();
    NonAssociationResponse {
        offender_no: offender_no.to_string(),
        ns_offender_no: ns_offender_no.to_string(),
        type_sequence: d.type_seq,
        reason: d.ns_reason_code,
        recip_reason,
        na_type: d.ns_type,
        authorised_by: d.authorized_staff,
        updated_by: d.modify_user_id,
        effective_date: d.ns_effective_date,
        expiry_date: d.ns_expiry_date,
        comment: d.comment_text,
        audit_module_name: d.audit_module_name,
        modify_datetime: tandem_platform::time::london_local(d.modify_datetime),
    }
}

async fn header<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
) -> Result<Option<headers::Model>, NomisError> {
    Ok(headers::Entity::find_by_id((a, b)).one(conn).await?)
}

async fn detail<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
    seq: i32,
) -> Result<Option<details::Model>, NomisError> {
    Ok(details::Entity::find_by_id((a, b, seq)).one(conn).await?)
}

/// The details of one direction, in type-sequence order.
async fn direction_details<C: ConnectionTrait>(
    conn: &C,
    a: i64,
    b: i64,
) -> Result<Vec<details::Model>, NomisError> {
    Ok(details::Entity::find()
        .filter(details::Column::OffenderId.eq(a))
        .filter(details::Column::NsOffenderId.eq(b))
        .order_by_asc(details::Column::TypeSeq)
        .all(conn)
        .await?)
}

fn audit_update(stamp: &AuditStamp) -> [(details::Column, Expr); 3] {
    [
        (details::Column::ModifyDatetime, Expr::value(stamp.at)),
        (
            details::Column::ModifyUserId,
            Expr::value(stamp.user.clone()),
        ),
        (
            details::Column::AuditModuleName,
            Expr::value(stamp.module.to_string()),
        ),
    ]
}

/// Sets both header rows' reason codes as NPA does: `ns_reason_code` = the reciprocal
/// reason on both; `recip_ns_reason_code` = the reciprocal reason on A→B and the reason on
/// B→A.
async fn update_headers(
    txn: &DatabaseTransaction,
    a: i64,
    b: i64,
    reason: &str,
    recip_reason: &str,
    stamp: &AuditStamp,
) -> Result<(), NomisError> {
    for (from, to, recip) in [(a, b, recip_reason), (b, a, reason)] {
        headers::Entity::update_many()
            .col_expr(headers::Column::NsReasonCode, Expr::value(recip_reason))
            .col_expr(headers::Column::RecipNsReasonCode, Expr::value(recip))
            .col_expr(headers::Column::ModifyDatetime, Expr::value(stamp.at))
            .col_expr(
                headers::Column::ModifyUserId,
                Expr::value(stamp.user.clone()),
            )
            .col_expr(
                headers::Column::AuditModuleName,
                Expr::value(stamp.module.to_string()),
            )
            .filter(headers::Column::OffenderId.eq(from))
            .filter(headers::Column::NsOffenderId.eq(to))
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn enqueue_both(
    txn: &DatabaseTransaction,
    change: Change,
    a: &Offender,
    b: &Offender,
    forward: &details::Model,
    reverse: &details::Model,
    stamp: &AuditStamp,
) -> Result<(), NomisError> {
    tandem_bus::outbox::enqueue(txn, &event(change, &a.no, &b.no, forward, stamp)).await?;
    tandem_bus::outbox::enqueue(txn, &event(change, &b.no, &a.no, reverse, stamp)).await?;
    Ok(())
}

/// Refuses (409) a NOMIS user's edit where DPS masters non-associations at either
/// prisoner's prison; called in the write transaction before anything is written.
async fn check_master(
    txn: &DatabaseTransaction,
    a: &Offender,
    b: &Offender,
    stamp: &AuditStamp,
) -> Result<(), NomisError> {
    let prisons: Vec<&str> = [&a.prison, &b.prison]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    agency_switches::refuse_nomis_edit(txn, stamp, agency_switches::NON_ASSOCIATIONS, &prisons)
        .await
}

async fn commit(txn: DatabaseTransaction) -> Result<(), NomisError> {
    txn.commit().await?;
    tandem_bus::outbox::committed();
    Ok(())
}

/// Creates a non-association (both directions) with the next free type sequence of the pair.
pub async fn create(
    db: &Db,
    req: CreateNonAssociationRequest,
    stamp: &AuditStamp,
) -> Result<CreateNonAssociationResponse, NomisError> {
    let today = london_today();
    let a_no = parse_offender_no("offenderNo", &req.offender_no)?;
    let b_no = parse_offender_no("nsOffenderNo", &req.ns_offender_no)?;
    if a_no == b_no {
        return Err(same_offender(&a_no));
    }
    let comment = optional_text("comment", req.comment, MAX_COMMENT)?;
    let authorised_by = optional_text("authorisedBy", req.authorised_by, MAX_AUTHORISED_BY)?;
    check_effective(req.effective_date, today)?;

    let txn = db.begin_write().await?;
    let (a, b) = find_offenders(
        &txn,
        (&a_no, Source::Body("offenderNo")),
        (&b_no, Source::Body("nsOffenderNo")),
    )
    .await?;
    check_master(&txn, &a, &b, stamp).await?;
    check_codes(
        &codes(&txn).await?,
        &req.reason,
        &req.recip_reason,
        &req.na_type,
    )?;

    let forward_header = header(&txn, a.id, b.id).await?;
    let reverse_header = header(&txn, b.id, a.id).await?;
    let forward = direction_details(&txn, a.id, b.id).await?;
    let reverse = direction_details(&txn, b.id, a.id).await?;
    for (x, y, rows) in [(&a, &b, &forward), (&b, &a, &reverse)] {
        if rows
            .iter()
            .any(|d| is_open(d.ns_effective_date, d.ns_expiry_date, today))
        {
            return Err(NomisError::Invalid(format!(
                "Non-association already exists for offender={} and nsOffender={}",
                x.no, y.no
            )));
        }
    }
    let type_seq = forward
        .iter()
        .chain(reverse.iter())
        .map(|d| d.type_seq)
        .max()
        .unwrap_or(0)
        + 1;

    // Details carry the booking ids of their header (set when the pair was first linked).
    let forward_books = forward_header
        .as_ref()
        .map(|h| (h.offender_book_id, h.ns_offender_book_id))
        .unwrap_or((a.booking_id, b.booking_id));
    let reverse_books = reverse_header
        .as_ref()
        .map(|h| (h.offender_book_id, h.ns_offender_book_id))
        .unwrap_or((b.booking_id, a.booking_id));

    let conflict = || {
        format!(
            "Non-association between {} and {} was changed at the same time by another request; retry",
            a.no, b.no
        )
    };
    for (x, y, existing, books, recip) in [
        (
            &a,
            &b,
            &forward_header,
            forward_books,
            req.recip_reason.as_str(),
        ),
        (&b, &a, &reverse_header, reverse_books, req.reason.as_str()),
    ] {
        if existing.is_none() {
            headers::Entity::insert(headers::ActiveModel {
                offender_id: Set(x.id),
                ns_offender_id: Set(y.id),
                offender_book_id: Set(books.0),
                ns_offender_book_id: Set(books.1),
                ns_reason_code: Set(req.recip_reason.clone()),
                recip_ns_reason_code: Set(Some(recip.to_string())),
                ns_level_code: Set(None),
                internal_location_flag: Set("N".into()),
                transport_flag: Set("N".into()),
                create_datetime: Set(stamp.at),
                create_user_id: Set(stamp.user.clone()),
                modify_datetime: Set(stamp.at),
                modify_user_id: Set(stamp.user.clone()),
                audit_module_name: Set(stamp.module.to_string()),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(|e| conflict_on_unique(e, conflict))?;
        }
    }
    if forward_header.is_some() || reverse_header.is_some() {
        // Existing headers take the new reasons, as NPA sets them on every create.
        update_headers(&txn, a.id, b.id, &req.reason, &req.recip_reason, stamp).await?;
    }

    let new_detail = |x: &Offender,
                      y: &Offender,
                      books: (Option<i64>, Option<i64>),
                      reason: &str,
                      recip: &str| {
        details::Model {
            offender_id: x.id,
            ns_offender_id: y.id,
            type_seq,
            offender_book_id: books.0,
            ns_offender_book_id: books.1,
            ns_reason_code: reason.to_string(),
            recip_ns_reason_code: Some(recip.to_string()),
            ns_level_code: None,
            ns_type: req.na_type.clone(),
            ns_effective_date: req.effective_date,
            ns_expiry_date: None,
            authorized_staff: authorised_by.clone(),
            comment_text: comment.clone(),
            create_datetime: stamp.at,
            create_user_id: stamp.user.clone(),
            modify_datetime: stamp.at,
            modify_user_id: stamp.user.clone(),
            audit_module_name: stamp.module.to_string(),
        }
    };
    let forward_detail = new_detail(&a, &b, forward_books, &req.reason, &req.recip_reason);
    let reverse_detail = new_detail(&b, &a, reverse_books, &req.recip_reason, &req.reason);
    details::Entity::insert_many([
        details::ActiveModel::from(forward_detail.clone()),
        details::ActiveModel::from(reverse_detail.clone()),
    ])
    .exec_without_returning(&txn)
    .await
    .map_err(|e| conflict_on_unique(e, conflict))?;

    enqueue_both(
        &txn,
        Change::Inserted,
        &a,
        &b,
        &forward_detail,
        &reverse_detail,
        stamp,
    )
    .await?;
    commit(txn).await?;
    Ok(CreateNonAssociationResponse {
        type_sequence: type_seq,
    })
}

/// Both directions' details of one type sequence: 404 when the addressed one is missing.
async fn both_details(
    txn: &DatabaseTransaction,
    a: &Offender,
    b: &Offender,
    seq: i32,
) -> Result<(details::Model, details::Model), NomisError> {
    let forward = detail(txn, a.id, b.id, seq).await?.ok_or_else(|| {
        NomisError::NotFound(format!(
            "Non-association detail not found for offender={}, nsOffender={}, typeSequence={seq}",
            a.no, b.no
        ))
    })?;
    let reverse = detail(txn, b.id, a.id, seq).await?.ok_or_else(|| {
        NomisError::NotFound(format!(
            "Opposite non-association detail not found for offender={}, nsOffender={}, typeSequence={seq}",
            b.no, a.no
        ))
    })?;
    Ok((forward, reverse))
}

/// Replaces one detail's values (both directions) and returns it from `offender_no`'s side.
pub async fn update(
    db: &Db,
    offender_no: &str,
    ns_offender_no: &str,
    type_sequence: i32,
    req: UpdateNonAssociationRequest,
    stamp: &AuditStamp,
) -> Result<NonAssociationResponse, NomisError> {
    let today = london_today();
    let comment = optional_text("comment", req.comment, MAX_COMMENT)?;
    let authorised_by = optional_text("authorisedBy", req.authorised_by, MAX_AUTHORISED_BY)?;
    check_effective(req.effective_date, today)?;

    let txn = db.begin_write().await?;
    let (a, b) = path_pair(&txn, offender_no, ns_offender_no).await?;
    check_master(&txn, &a, &b, stamp).await?;
    let (mut forward, mut reverse) = both_details(&txn, &a, &b, type_sequence).await?;
    check_codes(
        &codes(&txn).await?,
        &req.reason,
        &req.recip_reason,
        &req.na_type,
    )?;

    update_headers(&txn, a.id, b.id, &req.reason, &req.recip_reason, stamp).await?;
    for (row, reason, recip) in [
        (&mut forward, &req.reason, &req.recip_reason),
        (&mut reverse, &req.recip_reason, &req.reason),
    ] {
        row.ns_reason_code = reason.clone();
        row.recip_ns_reason_code = Some(recip.clone());
        row.ns_type = req.na_type.clone();
        row.ns_effective_date = req.effective_date;
        row.ns_expiry_date = req.expiry_date;
        row.authorized_staff = authorised_by.clone();
        row.comment_text = comment.clone();
        row.modify_datetime = stamp.at;
        row.modify_user_id = stamp.user.clone();
        row.audit_module_name = stamp.module.to_string();
        let mut update = details::Entity::update_many()
            .col_expr(
                details::Column::NsReasonCode,
                Expr::value(row.ns_reason_code.clone()),
            )
            .col_expr(
                details::Column::RecipNsReasonCode,
                Expr::value(row.recip_ns_reason_code.clone()),
            )
            .col_expr(details::Column::NsType, Expr::value(row.ns_type.clone()))
            .col_expr(
                details::Column::NsEffectiveDate,
                Expr::value(row.ns_effective_date),
            )
            .col_expr(
                details::Column::NsExpiryDate,
                Expr::value(row.ns_expiry_date),
            )
            .col_expr(
                details::Column::AuthorizedStaff,
                Expr::value(row.authorized_staff.clone()),
            )
            .col_expr(
                details::Column::CommentText,
                Expr::value(row.comment_text.clone()),
            );
        for (col, value) in audit_update(stamp) {
            update = update.col_expr(col, value);
        }
        update
            .filter(details::Column::OffenderId.eq(row.offender_id))
            .filter(details::Column::NsOffenderId.eq(row.ns_offender_id))
            .filter(details::Column::TypeSeq.eq(type_sequence))
            .exec(&txn)
            .await?;
    }
    enqueue_both(&txn, Change::Updated, &a, &b, &forward, &reverse, stamp).await?;
    let response = to_response(&a.no, &b.no, forward, None);
    commit(txn).await?;
    Ok(response)
}

/// Closes one detail (both directions) as of today; 400 when it is already closed.
pub async fn close(
    db: &Db,
    offender_no: &str,
    ns_offender_no: &str,
    type_sequence: i32,
    stamp: &AuditStamp,
) -> Result<NonAssociationResponse, NomisError> {
    let today = london_today();
    let txn = db.begin_write().await?;
    let (a, b) = path_pair(&txn, offender_no, ns_offender_no).await?;
    check_master(&txn, &a, &b, stamp).await?;
    let (mut forward, mut reverse) = both_details(&txn, &a, &b, type_sequence).await?;
    for row in [&forward, &reverse] {
        if row.ns_expiry_date.is_some_and(|e| e <= today) {
            return Err(NomisError::Invalid(format!(
                "Non-association already closed for offender={}, nsOffender={}, typeSequence={type_sequence}",
                a.no, b.no
            )));
        }
    }
    for row in [&mut forward, &mut reverse] {
        row.ns_expiry_date = Some(today);
        row.modify_datetime = stamp.at;
        row.modify_user_id = stamp.user.clone();
        row.audit_module_name = stamp.module.to_string();
        let mut update = details::Entity::update_many()
            .col_expr(details::Column::NsExpiryDate, Expr::value(Some(today)));
        for (col, value) in audit_update(stamp) {
            update = update.col_expr(col, value);
        }
        update
            .filter(details::Column::OffenderId.eq(row.offender_id))
            .filter(details::Column::NsOffenderId.eq(row.ns_offender_id))
            .filter(details::Column::TypeSeq.eq(type_sequence))
            .exec(&txn)
            .await?;
    }
    enqueue_both(&txn, Change::Updated, &a, &b, &forward, &reverse, stamp).await?;
    let response = to_response(&a.no, &b.no, forward, None);
    commit(txn).await?;
    Ok(response)
}

/// Deletes one detail (both directions), and the headers when no detail remains.
pub async fn delete(
    db: &Db,
    offender_no: &str,
    ns_offender_no: &str,
    type_sequence: i32,
    stamp: &AuditStamp,
) -> Result<(), NomisError> {
    let txn = db.begin_write().await?;
    let (a, b) = path_pair(&txn, offender_no, ns_offender_no).await?;
    check_master(&txn, &a, &b, stamp).await?;
    let (forward, reverse) = both_details(&txn, &a, &b, type_sequence).await?;
    for (x, y) in [(a.id, b.id), (b.id, a.id)] {
        details::Entity::delete_many()
            .filter(details::Column::OffenderId.eq(x))
            .filter(details::Column::NsOffenderId.eq(y))
            .filter(details::Column::TypeSeq.eq(type_sequence))
            .exec(&txn)
            .await?;
    }
    let remaining = details::Entity::find()
        .filter(details::Column::OffenderId.is_in([a.id, b.id]))
        .filter(details::Column::NsOffenderId.is_in([a.id, b.id]))
        .one(&txn)
        .await?;
    if remaining.is_none() {
        for (x, y) in [(a.id, b.id), (b.id, a.id)] {
            headers::Entity::delete_by_id((x, y)).exec(&txn).await?;
        }
    }
    enqueue_both(&txn, Change::Deleted, &a, &b, &forward, &reverse, stamp).await?;
    commit(txn).await
}

/// The open detail of the pair from `offender_no`'s side (the latest if dirty data has
/// several), or the detail `type_sequence` when given.
pub async fn get_open<C: ConnectionTrait>(
    conn: &C,
    offender_no: &str,
    ns_offender_no: &str,
    type_sequence: Option<i32>,
) -> Result<NonAssociationResponse, NomisError> {
    if let Some(seq) = type_sequence {
        return get_one(conn, offender_no, ns_offender_no, seq).await;
    }
    let (a, b) = path_pair(conn, offender_no, ns_offender_no).await?;
    let today = london_today();
    let h = header(conn, a.id, b.id).await?;
    direction_details(conn, a.id, b.id)
        .await?
        .into_iter()
        .rfind(|d| is_open(d.ns_effective_date, d.ns_expiry_date, today))
        .map(|d| to_response(&a.no, &b.no, d, h.as_ref()))
        .ok_or_else(|| {
            NomisError::NotFound(format!(
                "No open non-association exists for offender={} and nsOffender={}",
                a.no, b.no
            ))
        })
}

/// Every detail of the pair from `offender_no`'s side, by type sequence; 404 when none.
pub async fn get_all<C: ConnectionTrait>(
    conn: &C,
    offender_no: &str,
    ns_offender_no: &str,
) -> Result<Vec<NonAssociationResponse>, NomisError> {
    let (a, b) = path_pair(conn, offender_no, ns_offender_no).await?;
    let h = header(conn, a.id, b.id).await?;
    let rows = direction_details(conn, a.id, b.id).await?;
    if rows.is_empty() {
        return Err(NomisError::NotFound(format!(
            "Non-association not found for offender={} and nsOffender={}",
            a.no, b.no
        )));
    }
    Ok(rows
        .into_iter()
        .map(|d| to_response(&a.no, &b.no, d, h.as_ref()))
        .collect())
}

/// One detail from `offender_no`'s side.
pub async fn get_one<C: ConnectionTrait>(
    conn: &C,
    offender_no: &str,
    ns_offender_no: &str,
    type_sequence: i32,
) -> Result<NonAssociationResponse, NomisError> {
    let (a, b) = path_pair(conn, offender_no, ns_offender_no).await?;
    let h = header(conn, a.id, b.id).await?;
    detail(conn, a.id, b.id, type_sequence)
        .await?
        .map(|d| to_response(&a.no, &b.no, d, h.as_ref()))
        .ok_or_else(|| {
            NomisError::NotFound(format!(
                "Non-association with sequence {type_sequence} not found for offender={} and nsOffender={}",
                a.no, b.no
            ))
        })
}

/// The most pairs one bulk read takes.
pub const MAX_PAIRS_PER_READ: usize = 1000;

/// Every detail of each pair, from the first number's side, in pair order then type
/// sequence; unknown prisoners and pairs without details contribute nothing. Two
/// statements however many pairs (three when a detail lacks its reciprocal reason): what
/// the migration reads per batch instead of one `/all` call per pair.
pub async fn details_of_pairs<C: ConnectionTrait>(
    conn: &C,
    pairs: &[NonAssociationIdResponse],
) -> Result<Vec<NonAssociationResponse>, NomisError> {
    if pairs.len() > MAX_PAIRS_PER_READ {
        return Err(NomisError::Invalid(format!(
            "at most {MAX_PAIRS_PER_READ} pairs can be read at once, {} given",
            pairs.len()
        )));
    }
    let mut wanted = Vec::with_capacity(pairs.len());
    for (i, p) in pairs.iter().enumerate() {
        let a = parse_offender_no(&format!("[{i}].offenderNo1"), &p.offender_no1)?;
        let b = parse_offender_no(&format!("[{i}].offenderNo2"), &p.offender_no2)?;
        if a == b {
            return Err(same_offender(&a));
        }
        wanted.push((a, b));
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut numbers: Vec<String> = wanted
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    // Only the columns the answer needs: decoding whole rows was most of the read's cost.
    let people: Vec<(i64, String)> = offenders::Entity::find()
        .select_only()
        .columns([offenders::Column::OffenderId, offenders::Column::OffenderNo])
        .filter(offenders::Column::OffenderNo.is_in(padded_in_list(numbers)))
        .into_tuple()
        .all(conn)
        .await?;
    let id_of: HashMap<&str, i64> = people.iter().map(|(id, no)| (no.as_str(), *id)).collect();
    let ids: Vec<(i64, i64, usize)> = wanted
        .iter()
        .enumerate()
        .filter_map(|(i, (a, b))| Some((*id_of.get(a.as_str())?, *id_of.get(b.as_str())?, i)))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let index: HashMap<(i64, i64), usize> = ids.iter().map(|(a, b, i)| ((*a, *b), *i)).collect();
    // The pairs join the details as a VALUES list: exactly their rows, where a list of
    // first offenders also read each one's details with every other partner.
    let mut keys: Vec<(i64, i64)> = index.keys().copied().collect();
    keys.sort_unstable();
    let pair = Alias::new("pair");
    let mut select = details::Entity::find();
    QueryTrait::query(&mut select).from_values(padded_in_list(keys), pair.clone());
    let mut rows: Vec<(usize, DetailView)> = select
        .filter(sea_orm::ExprTrait::equals(
            Expr::col((details::Entity, details::Column::OffenderId)),
            (pair.clone(), Alias::new("column1")),
        ))
        .filter(sea_orm::ExprTrait::equals(
            Expr::col((details::Entity, details::Column::NsOffenderId)),
            (pair, Alias::new("column2")),
        ))
        .into_partial_model::<DetailView>()
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|d| Some((*index.get(&(d.offender_id, d.ns_offender_id))?, d)))
        .collect();
    // The header matters only for the reciprocal reason a detail may lack: read only the
    // headers of pairs with such a detail (usually none).
    let mut lacking: Vec<i64> = rows
        .iter()
        .filter(|(_, d)| d.recip_ns_reason_code.is_none())
        .map(|(_, d)| d.offender_id)
        .collect();
    lacking.sort_unstable();
    lacking.dedup();
    let header_reasons: HashMap<(i64, i64), Option<String>> = if lacking.is_empty() {
        HashMap::new()
    } else {
        headers::Entity::find()
            .select_only()
            .columns([
                headers::Column::OffenderId,
                headers::Column::NsOffenderId,
                headers::Column::RecipNsReasonCode,
            ])
            .filter(headers::Column::OffenderId.is_in(padded_in_list(lacking)))
            .into_tuple::<(i64, i64, Option<String>)>()
            .all(conn)
            .await?
            .into_iter()
            .filter(|(a, b, _)| index.contains_key(&(*a, *b)))
            .map(|(a, b, reason)| ((a, b), reason))
            .collect()
    };
    rows.sort_by_key(|(i, d)| (*i, d.type_seq));
    // The padding repeats the last pair, and with it its details.
    rows.dedup_by_key(|(i, d)| (*i, d.type_seq));
    Ok(rows
        .into_iter()
        .map(|(i, d)| {
            let (a, b) = &wanted[i];
            let recip = header_reasons
                .get(&(d.offender_id, d.ns_offender_id))
                .cloned()
                .flatten();
            response_of(a, b, d, recip)
        })
        .collect())
}

/// The table SQLite reads first when it lists pairs. CROSS JOIN keeps SQLite's join
/// order; PostgreSQL plans it as an inner join whatever the order.
#[derive(Clone, Copy)]
enum PairsFirst {
    /// Offenders by number: a page is an index range scan that stops at its LIMIT.
    ByNumber,
    /// The headers in key order: a count reads every pair, and in this order each first
    /// offender's row is read once, in id order, instead of one random seek per header
    /// (about half the time of the number-first count at 1M pairs; BENCHMARKS.md).
    Headers,
}

/// The FROM/WHERE shared by the id listings: primary-direction headers (offender number 1
/// sorts before 2), optionally only pairs with a detail effective within the dates.
fn pairs_from(filter: &IdFilter, first: PairsFirst, values: &mut Vec<Value>) -> String {
    let tables = match first {
        PairsFirst::ByNumber => {
            " FROM offenders o1 CROSS JOIN offender_non_associations h CROSS JOIN offenders o2"
        }
        PairsFirst::Headers => {
            " FROM offender_non_associations h CROSS JOIN offenders o1 CROSS JOIN offenders o2"
        }
    };
    let mut sql = format!(
        "{tables} WHERE h.offender_id = o1.offender_id AND o2.offender_id = h.ns_offender_id \
         AND o1.offender_no < o2.offender_no"
    );
    if filter.from_date.is_some() || filter.to_date.is_some() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM offender_na_details d \
             WHERE d.offender_id = h.offender_id AND d.ns_offender_id = h.ns_offender_id",
        );
        if let Some(from) = filter.from_date {
            values.push(from.into());
            sql.push_str(&format!(" AND d.ns_effective_date >= ${}", values.len()));
        }
        if let Some(to) = filter.to_date {
            values.push(to.into());
            sql.push_str(&format!(" AND d.ns_effective_date <= ${}", values.len()));
        }
        sql.push(')');
    }
    sql
}

fn check_filter(filter: &IdFilter) -> Result<(), NomisError> {
    match tandem_platform::time::date_range_problem(filter.from_date, filter.to_date) {
        Some(problem) => Err(NomisError::Invalid(format!(
            "Validation failure: {problem}"
        ))),
        None => Ok(()),
    }
}

fn check_size(size: u64) -> Result<(), NomisError> {
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(NomisError::field(
            "size",
            format!("must be between 1 and {MAX_PAGE_SIZE}, {size} given"),
        ));
    }
    Ok(())
}

fn read_pairs(
    rows: Vec<sea_orm::QueryResult>,
) -> Result<Vec<NonAssociationIdResponse>, NomisError> {
    rows.into_iter()
        .map(|r| {
            Ok(NonAssociationIdResponse {
                offender_no1: r.try_get("", "offender_no1")?,
                offender_no2: r.try_get("", "offender_no2")?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(NomisError::from)
}

/// The number of distinct pairs the filter covers.
pub async fn count_pairs<C: ConnectionTrait>(
    conn: &C,
    filter: &IdFilter,
) -> Result<u64, NomisError> {
    check_filter(filter)?;
    let mut values = Vec::new();
    let sql = format!(
        "SELECT COUNT(*) AS n{}",
        pairs_from(filter, PairsFirst::Headers, &mut values)
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    };
    Ok(n.max(0) as u64)
}

/// A Spring-style page of pairs in pair order (OFFSET paging, as the real API offers).
pub async fn ids_page<C: ConnectionTrait>(
    conn: &C,
    filter: &IdFilter,
    page: u64,
    size: u64,
) -> Result<NonAssociationIdPage, NomisError> {
    check_size(size)?;
    let offset = page
        .checked_mul(size)
        .filter(|o| *o <= i64::MAX as u64)
        .ok_or_else(|| NomisError::field("page", format!("{page} is too large")))?;
    let total = count_pairs(conn, filter).await?;
    let mut values = Vec::new();
    let from = pairs_from(filter, PairsFirst::ByNumber, &mut values);
    values.push((size as i64).into());
    let limit = values.len();
    values.push((offset as i64).into());
    let sql = format!(
        "SELECT o1.offender_no AS offender_no1, o2.offender_no AS offender_no2{from} \
         ORDER BY o1.offender_no, o2.offender_no LIMIT ${limit} OFFSET ${}",
        values.len()
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    let content = read_pairs(rows)?;
    let total_pages = total.div_ceil(size);
    let n = content.len() as u64;
    Ok(NonAssociationIdPage {
        content,
        total_elements: total,
        total_pages,
        number: page,
        size,
        first: page == 0,
        last: page + 1 >= total_pages,
        number_of_elements: n,
        empty: n == 0,
    })
}

/// Parses a keyset position `A1234BC/B5678CD`.
pub fn parse_after(after: &str) -> Result<(String, String), NomisError> {
    let bad = || {
        NomisError::field(
            "after",
            format!(
                "'{after}' is not a pair: expected two offender numbers separated by '/', e.g. A1234BC/B5678CD"
            ),
        )
    };
    let (a, b) = after.split_once('/').ok_or_else(bad)?;
    let a = parse_offender_no("after", a).map_err(|_| bad())?;
    let b = parse_offender_no("after", b).map_err(|_| bad())?;
    Ok((a, b))
}

/// Pairs strictly after `after` in pair order: the walk the migration engine takes over
/// the key space without deep OFFSET scans.
pub async fn ids_after<C: ConnectionTrait>(
    conn: &C,
    filter: &IdFilter,
    after: Option<(String, String)>,
    size: u64,
) -> Result<NonAssociationIdKeysetPage, NomisError> {
    check_size(size)?;
    check_filter(filter)?;
    let mut values = Vec::new();
    let mut sql = format!(
        "SELECT o1.offender_no AS offender_no1, o2.offender_no AS offender_no2{}",
        pairs_from(filter, PairsFirst::ByNumber, &mut values)
    );
    if let Some((a, b)) = after {
        values.push(a.into());
        let a_idx = values.len();
        values.push(b.into());
        sql.push_str(&format!(
            " AND o1.offender_no >= ${a_idx} AND (o1.offender_no > ${a_idx} OR o2.offender_no > ${})",
            values.len()
        ));
    }
    // One extra row tells whether another page follows.
    values.push((size as i64 + 1).into());
    sql.push_str(&format!(
        " ORDER BY o1.offender_no, o2.offender_no LIMIT ${}",
        values.len()
    ));
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    let mut content = read_pairs(rows)?;
    let more = content.len() as u64 > size;
    content.truncate(size as usize);
    let next = if more {
        content
            .last()
            .map(|p| format!("{}/{}", p.offender_no1, p.offender_no2))
    } else {
        None
    };
    Ok(NonAssociationIdKeysetPage {
        content,
        size,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openness_follows_the_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2024-06-01");
        assert!(is_open(d("2024-01-01"), None, today));
        assert!(is_open(d("2024-06-01"), Some(d("2024-06-02")), today));
        assert!(!is_open(d("2024-01-01"), Some(d("2024-06-01")), today));
        assert!(!is_open(d("2024-06-02"), None, today));
    }

    #[test]
    fn keyset_positions() {
        assert_eq!(
            parse_after("A1234BC/b5678cd").unwrap(),
            ("A1234BC".into(), "B5678CD".into())
        );
        for bad in ["A1234BC", "A1234BC/", "/B5678CD", "A1234BC/X"] {
            let e = parse_after(bad).unwrap_err().to_string();
            assert!(e.contains("after"), "{e}");
        }
    }

    #[test]
    fn a_count_reads_the_headers_first_and_a_page_the_numbers() {
        let filter = IdFilter::default();
        let from = |first| pairs_from(&filter, first, &mut Vec::new());
        assert!(
            from(PairsFirst::Headers).starts_with(" FROM offender_non_associations h CROSS JOIN"),
            "{}",
            from(PairsFirst::Headers)
        );
        assert!(
            from(PairsFirst::ByNumber).starts_with(" FROM offenders o1 CROSS JOIN"),
            "{}",
            from(PairsFirst::ByNumber)
        );
    }

    #[test]
    fn long_text_is_refused_and_empty_text_is_null() {
        assert_eq!(
            optional_text("comment", Some(String::new()), 240).unwrap(),
            None
        );
        let e = optional_text("comment", Some("x".repeat(241)), 240)
            .unwrap_err()
            .to_string();
        assert!(e.contains("comment") && e.contains("240"), "{e}");
    }
}
