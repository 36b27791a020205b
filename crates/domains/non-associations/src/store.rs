//! Storage of non-associations and the rules that need the database to enforce them.
//!
//! Every change is one write transaction that also writes its domain event to the outbox,
//! so a change and its event are published together or not at all. "At most one open
//! non-association per unordered pair" is checked inside that transaction (for a clear
//! error) and guaranteed by a partial unique index (for the race the check cannot see on
//! PostgreSQL); a violation of the index is reported as the same 409.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityName, EntityTrait, IdenStatic, IntoActiveModel, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use tandem_bus::outbox;
use tandem_platform::db::{Db, multi_row_insert, padded_in_list, power_of_two_chunks};

use crate::entity::non_association::{ActiveModel, Column, Entity, Model};
use crate::error::NaError;
use crate::events::{self, Change, Source};
use crate::model::{Reason, RestrictionType, Role};
use crate::nomis_codes::ordered_pair;

/// A non-association as the rest of the crate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonAssociation {
    pub id: i64,
    pub first_prisoner_number: String,
    pub first_prisoner_role: Role,
    pub second_prisoner_number: String,
    pub second_prisoner_role: Role,
    pub reason: Reason,
    pub restriction_type: RestrictionType,
    pub comment: String,
    /// Free text in NOMIS; the creating user for records created in DPS.
    pub authorised_by: Option<String>,
    pub when_created: DateTime<Utc>,
    pub when_updated: DateTime<Utc>,
    pub updated_by: String,
    pub is_closed: bool,
    pub closed_by: Option<String>,
    pub closed_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The NOMIS type sequence of the record this one was migrated or synced from.
    pub nomis_type_sequence: Option<i32>,
}

impl NonAssociation {
    pub fn is_open(&self) -> bool {
        !self.is_closed
    }

    /// The role of `prisoner_number` and the other party's number and role, when
    /// `prisoner_number` is one of the two.
    pub fn from_side_of(&self, prisoner_number: &str) -> Option<(Role, &str, Role)> {
        if self.first_prisoner_number == prisoner_number {
            Some((
                self.first_prisoner_role,
                &self.second_prisoner_number,
                self.second_prisoner_role,
            ))
        } else if self.second_prisoner_number == prisoner_number {
            Some((
                self.second_prisoner_role,
                &self.first_prisoner_number,
                self.first_prisoner_role,
            ))
        } else {
            None
        }
    }
}

fn corrupt(what: &str, value: &str, id: i64) -> NaError {
    NaError::from(DbErr::Type(format!(
        "non_association {id}: unknown {what} '{value}' in the database"
    )))
}

impl TryFrom<Model> for NonAssociation {
    type Error = NaError;
    fn try_from(m: Model) -> Result<Self, NaError> {
        let role = |v: &str| Role::parse(v).ok_or_else(|| corrupt("role", v, m.id));
        Ok(Self {
            id: m.id,
            first_prisoner_role: role(&m.first_prisoner_role)?,
            second_prisoner_role: role(&m.second_prisoner_role)?,
            reason: Reason::parse(&m.reason).ok_or_else(|| corrupt("reason", &m.reason, m.id))?,
            restriction_type: RestrictionType::parse(&m.restriction_type)
                .ok_or_else(|| corrupt("restriction type", &m.restriction_type, m.id))?,
            first_prisoner_number: m.first_prisoner_number,
            second_prisoner_number: m.second_prisoner_number,
            comment: m.comment,
            authorised_by: m.authorised_by,
            when_created: m.when_created,
            when_updated: m.when_updated,
            updated_by: m.updated_by,
            is_closed: m.is_closed,
            closed_by: m.closed_by,
            closed_reason: m.closed_reason,
            closed_at: m.closed_at,
            nomis_type_sequence: m.nomis_type_sequence,
        })
    }
}

/// A timestamp as stored: UTC, to the millisecond (both backends then give back exactly
/// what was written, and SQLite's text form sorts correctly).
pub fn stamp(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// A new non-association made through the DPS API.
#[derive(Debug, Clone)]
pub struct NewNonAssociation {
    pub first_prisoner_number: String,
    pub first_prisoner_role: Role,
    pub second_prisoner_number: String,
    pub second_prisoner_role: Role,
    pub reason: Reason,
    pub restriction_type: RestrictionType,
    pub comment: String,
    pub created_by: String,
}

/// A partial update (PATCH): only the `Some` fields change.
#[derive(Debug, Clone, Default)]
pub struct Amendment {
    pub first_prisoner_role: Option<Role>,
    pub second_prisoner_role: Option<Role>,
    pub reason: Option<Reason>,
    pub restriction_type: Option<RestrictionType>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Closure {
    pub reason: String,
    pub at: DateTime<Utc>,
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct Reopening {
    pub reason: String,
    pub at: DateTime<Utc>,
    pub by: String,
}

/// Which records a query returns by state. At least one must be true (checked at the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    pub open: bool,
    pub closed: bool,
}

impl Inclusion {
    fn condition(self) -> Condition {
        match (self.open, self.closed) {
            (true, false) => Condition::all().add(Column::IsClosed.eq(false)),
            (false, true) => Condition::all().add(Column::IsClosed.eq(true)),
            _ => Condition::all(),
        }
    }
}

/// A column the paged list can be sorted by (Spring `sort=property,direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Id,
    FirstPrisonerNumber,
    SecondPrisonerNumber,
    Reason,
    RestrictionType,
    WhenCreated,
    WhenUpdated,
    UpdatedBy,
    IsClosed,
    ClosedAt,
}

impl SortField {
    /// The JSON property names accepted in `sort`.
    pub const NAMES: &'static [(&'static str, SortField)] = &[
        ("id", SortField::Id),
        ("firstPrisonerNumber", SortField::FirstPrisonerNumber),
        ("secondPrisonerNumber", SortField::SecondPrisonerNumber),
        ("reason", SortField::Reason),
        ("restrictionType", SortField::RestrictionType),
        ("whenCreated", SortField::WhenCreated),
        ("whenUpdated", SortField::WhenUpdated),
        ("updatedBy", SortField::UpdatedBy),
        ("isClosed", SortField::IsClosed),
        ("closedAt", SortField::ClosedAt),
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("id")
    }

    fn column(self) -> Column {
        match self {
            SortField::Id => Column::Id,
            SortField::FirstPrisonerNumber => Column::FirstPrisonerNumber,
            SortField::SecondPrisonerNumber => Column::SecondPrisonerNumber,
            SortField::Reason => Column::Reason,
            SortField::RestrictionType => Column::RestrictionType,
            SortField::WhenCreated => Column::WhenCreated,
            SortField::WhenUpdated => Column::WhenUpdated,
            SortField::UpdatedBy => Column::UpdatedBy,
            SortField::IsClosed => Column::IsClosed,
            SortField::ClosedAt => Column::ClosedAt,
        }
    }
}

/// The closure reason of a record closed by a merge.
pub const MERGE_CLOSURE_REASON: &str = "MERGE";

/// What a merge or booking move did to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeResult {
    /// Renumbered.
    Merged,
    /// Renumbered and closed: its new pair already had an open record.
    Closed,
    /// Deleted: it would have paired a prisoner with himself.
    Deleted,
}

/// One record of a NOMIS sync or migration, already translated to DPS terms.
#[derive(Debug, Clone)]
pub struct SyncRecord {
    /// The DPS id, when the caller knows it (from the mapping service).
    pub id: Option<i64>,
    pub type_sequence: i32,
    pub first_prisoner_number: String,
    pub first_prisoner_role: Role,
    pub second_prisoner_number: String,
    pub second_prisoner_role: Role,
    pub reason: Reason,
    pub restriction_type: RestrictionType,
    pub comment: String,
    pub authorised_by: Option<String>,
    /// Who changed it in NOMIS (or the system user).
    pub user: String,
    pub when_created: DateTime<Utc>,
    /// `Some` when the NOMIS record is closed (expired): when it closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl SyncRecord {
    fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// The record seen from the other side of the pair (NOMIS stores both directions).
    fn swapped(mut self) -> Self {
        std::mem::swap(
            &mut self.first_prisoner_number,
            &mut self.second_prisoner_number,
        );
        std::mem::swap(
            &mut self.first_prisoner_role,
            &mut self.second_prisoner_role,
        );
        self
    }
}

/// What a sync or migration did with one record: what the caller records as its mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    pub id: i64,
    pub type_sequence: i32,
    pub first_prisoner_number: String,
    pub second_prisoner_number: String,
    /// True when this request created the DPS record.
    pub created: bool,
}

impl SyncOutcome {
    fn of(na: &NonAssociation, type_sequence: i32, created: bool) -> Self {
        Self {
            id: na.id,
            type_sequence,
            first_prisoner_number: na.first_prisoner_number.clone(),
            second_prisoner_number: na.second_prisoner_number.clone(),
            created,
        }
    }
}

/// Checks the two numbers name two different people.
pub fn check_two_people(first: &str, second: &str) -> Result<(), NaError> {
    if first == second {
        Err(NaError::validation(format!(
            "secondPrisonerNumber: a prisoner cannot be non-associated with themself ({first})"
        )))
    } else {
        Ok(())
    }
}

/// How an insert or update that broke a unique index is reported.
enum Violation {
    OpenPair,
    NomisKey,
}

fn violation(e: &DbErr) -> Option<Violation> {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(msg)) => {
            Some(if msg.contains("nomis_type_sequence") {
                Violation::NomisKey
            } else {
                Violation::OpenPair
            })
        }
        _ => None,
    }
}

/// The storage of the non-associations service.
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---- reads ----

    pub async fn get(&self, id: i64) -> Result<Option<NonAssociation>, NaError> {
        Entity::find_by_id(id)
            .one(self.db.conn())
            .await?
            .map(NonAssociation::try_from)
            .transpose()
    }

    /// A page of every non-association, and the total matching.
    pub async fn list(
        &self,
        inclusion: Inclusion,
        page: u64,
        size: u64,
        sort: &[(SortField, Order)],
    ) -> Result<(Vec<NonAssociation>, u64), NaError> {
        let conn = self.db.conn();
        let total = Entity::find()
            .filter(inclusion.condition())
            .count(conn)
            .await?;
        let mut query = Entity::find().filter(inclusion.condition());
        for (field, order) in sort {
            query = query.order_by(field.column(), order.clone());
        }
        if !sort.iter().any(|(f, _)| *f == SortField::Id) {
            query = query.order_by_asc(Column::Id);
        }
        // Both backends take a signed 64-bit offset; past that there is nothing anyway.
        let offset = page.saturating_mul(size).min(i64::MAX as u64);
        let rows = query.offset(offset).limit(size).all(conn).await?;
        Ok((to_domain(rows)?, total))
    }

    /// Records where both prisoners are among `numbers`.
    pub async fn between(
        &self,
        numbers: &[String],
        inclusion: Inclusion,
    ) -> Result<Vec<NonAssociation>, NaError> {
        let condition = Condition::all()
            .add(Column::FirstPrisonerNumber.is_in(numbers.iter().cloned()))
            .add(Column::SecondPrisonerNumber.is_in(numbers.iter().cloned()))
            .add(inclusion.condition());
        self.find_where(condition).await
    }

    /// Records where either prisoner is among `numbers`.
    pub async fn involving(
        &self,
        numbers: &[String],
        inclusion: Inclusion,
    ) -> Result<Vec<NonAssociation>, NaError> {
        let either = Condition::any()
            .add(Column::FirstPrisonerNumber.is_in(numbers.iter().cloned()))
            .add(Column::SecondPrisonerNumber.is_in(numbers.iter().cloned()));
        self.find_where(Condition::all().add(either).add(inclusion.condition()))
            .await
    }

    /// The record migrated or synced from the NOMIS record (pair, type sequence).
    pub async fn find_by_nomis_key(
        &self,
        a: &str,
        b: &str,
        type_sequence: i32,
    ) -> Result<Option<NonAssociation>, NaError> {
        Ok(
            find_by_nomis_key(self.db.conn(), a, b, type_sequence, false)
                .await?
                .map(|found| found.na),
        )
    }

    async fn find_where(&self, condition: Condition) -> Result<Vec<NonAssociation>, NaError> {
        let rows = Entity::find()
            .filter(condition)
            .order_by_asc(Column::Id)
            .all(self.db.conn())
            .await?;
        to_domain(rows)
    }

    // ---- DPS changes ----

    /// Creates a non-association (the caller has checked both prisoners are in a prison).
    pub async fn create(&self, new: NewNonAssociation) -> Result<NonAssociation, NaError> {
        check_two_people(&new.first_prisoner_number, &new.second_prisoner_number)?;
        let (low, high) = ordered_pair(&new.first_prisoner_number, &new.second_prisoner_number);
        let txn = self.db.begin_write().await?;
        if let Some(open) = find_open(&txn, low, high, None).await? {
            return Err(open_exists(
                &new.first_prisoner_number,
                &new.second_prisoner_number,
                open.id,
            ));
        }
        let now = stamp(tandem_platform::time::now());
        let model = ActiveModel {
            id: NotSet,
            first_prisoner_number: Set(new.first_prisoner_number.clone()),
            first_prisoner_role: Set(new.first_prisoner_role.code().into()),
            second_prisoner_number: Set(new.second_prisoner_number.clone()),
            second_prisoner_role: Set(new.second_prisoner_role.code().into()),
            reason: Set(new.reason.code().into()),
            restriction_type: Set(new.restriction_type.code().into()),
            comment: Set(new.comment.clone()),
            authorised_by: Set(Some(new.created_by.clone())),
            when_created: Set(now),
            when_updated: Set(now),
            updated_by: Set(new.created_by.clone()),
            is_closed: Set(false),
            closed_by: Set(None),
            closed_reason: Set(None),
            closed_at: Set(None),
            pair_low: Set(low.to_string()),
            pair_high: Set(high.to_string()),
            nomis_type_sequence: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(|e| write_error(e, &new.first_prisoner_number, &new.second_prisoner_number))?;
        let na = NonAssociation::try_from(model)?;
        publish(&txn, Change::Created, &na, Source::Dps).await?;
        commit(txn).await?;
        Ok(na)
    }

    /// Applies a PATCH.
    pub async fn amend(
        &self,
        id: i64,
        amendment: Amendment,
        by: &str,
    ) -> Result<NonAssociation, NaError> {
        let txn = self.db.begin_write().await?;
        let existing = lock(&txn, id).await?;
        let mut am = existing.into_active_model();
        if let Some(r) = amendment.first_prisoner_role {
            am.first_prisoner_role = Set(r.code().into());
        }
        if let Some(r) = amendment.second_prisoner_role {
            am.second_prisoner_role = Set(r.code().into());
        }
        if let Some(r) = amendment.reason {
            am.reason = Set(r.code().into());
        }
        if let Some(r) = amendment.restriction_type {
            am.restriction_type = Set(r.code().into());
        }
        if let Some(c) = amendment.comment {
            am.comment = Set(c);
        }
        am.updated_by = Set(by.to_string());
        am.when_updated = Set(stamp(tandem_platform::time::now()));
        let na = NonAssociation::try_from(am.update(&txn).await?)?;
        publish(&txn, Change::Amended, &na, Source::Dps).await?;
        commit(txn).await?;
        Ok(na)
    }

    pub async fn close(&self, id: i64, closure: Closure) -> Result<NonAssociation, NaError> {
        let txn = self.db.begin_write().await?;
        let existing = lock(&txn, id).await?;
        if existing.is_closed {
            return Err(NaError::AlreadyClosed(id));
        }
        let at = stamp(closure.at);
        let mut am = existing.into_active_model();
        am.is_closed = Set(true);
        am.closed_by = Set(Some(closure.by.clone()));
        am.closed_reason = Set(Some(closure.reason));
        am.closed_at = Set(Some(at));
        am.updated_by = Set(closure.by);
        am.when_updated = Set(at);
        let na = NonAssociation::try_from(am.update(&txn).await?)?;
        publish(&txn, Change::Closed, &na, Source::Dps).await?;
        commit(txn).await?;
        Ok(na)
    }

    /// Reopens a closed record; its comment becomes the reopen reason.
    pub async fn reopen(&self, id: i64, reopening: Reopening) -> Result<NonAssociation, NaError> {
        let txn = self.db.begin_write().await?;
        let existing = lock(&txn, id).await?;
        let already_open = |m: &Model| NaError::AlreadyOpen {
            id,
            first: m.first_prisoner_number.clone(),
            second: m.second_prisoner_number.clone(),
        };
        if !existing.is_closed
            || find_open(&txn, &existing.pair_low, &existing.pair_high, None)
                .await?
                .is_some()
        {
            return Err(already_open(&existing));
        }
        let conflict = already_open(&existing);
        let mut am = existing.into_active_model();
        am.is_closed = Set(false);
        am.closed_by = Set(None);
        am.closed_reason = Set(None);
        am.closed_at = Set(None);
        am.comment = Set(reopening.reason);
        am.updated_by = Set(reopening.by);
        am.when_updated = Set(stamp(reopening.at));
        let model = am.update(&txn).await.map_err(|e| match violation(&e) {
            Some(Violation::OpenPair) => conflict,
            _ => NaError::from(e),
        })?;
        let na = NonAssociation::try_from(model)?;
        publish(&txn, Change::Reopened, &na, Source::Dps).await?;
        commit(txn).await?;
        Ok(na)
    }

    /// Hard-deletes a record; `source` says whether DPS or a NOMIS sync asked.
    pub async fn delete(&self, id: i64, source: Source) -> Result<NonAssociation, NaError> {
        let txn = self.db.begin_write().await?;
        let na = NonAssociation::try_from(lock(&txn, id).await?)?;
        Entity::delete_by_id(id).exec(&txn).await?;
        publish(&txn, Change::Deleted, &na, source).await?;
        commit(txn).await?;
        Ok(na)
    }

    // ---- NOMIS sync and migration ----

    /// Migrates NOMIS records: inserts, publishes nothing. A record already migrated
    /// (same pair and type sequence) is returned as it is, so a repeat is harmless; an
    /// open record is refused when the pair already has an open one. All or nothing.
    pub async fn migrate(&self, records: Vec<SyncRecord>) -> Result<Vec<SyncOutcome>, NaError> {
        self.retrying_key_races(|| self.migrate_once(records.clone()))
            .await
    }

    async fn migrate_once(&self, records: Vec<SyncRecord>) -> Result<Vec<SyncOutcome>, NaError> {
        let txn = self.db.begin_write().await?;
        let outcomes = migrate_in(&txn, records).await?;
        commit(txn).await?;
        Ok(outcomes)
    }

    /// Migrates several requests' records in one transaction (the migration's batch of
    /// pairs): as [`Self::migrate`] for each, all or nothing. One outcome list per request.
    pub async fn migrate_batch(
        &self,
        batches: Vec<Vec<SyncRecord>>,
    ) -> Result<Vec<Vec<SyncOutcome>>, NaError> {
        let attempt = || async {
            let txn = self.db.begin_write().await?;
            let all = migrate_many(&txn, &batches).await?;
            commit(txn).await?;
            Ok::<_, NaError>(all)
        };
        match attempt().await {
            Err(NaError::NomisKeyTaken(_)) => attempt().await.map_err(|e| match e {
                NaError::NomisKeyTaken(msg) => NaError::Conflict(msg),
                other => other,
            }),
            other => other,
        }
    }

    /// Applies NOMIS changes: each record updates the DPS record it names (`id`) or the one
    /// synced from the same NOMIS record, else is created. Events carry `source: NOMIS`; a
    /// record that would not change is left alone and raises no event. All or nothing.
    pub async fn sync(&self, records: Vec<SyncRecord>) -> Result<Vec<SyncOutcome>, NaError> {
        self.retrying_key_races(|| self.sync_once(records.clone()))
            .await
    }

    async fn sync_once(&self, records: Vec<SyncRecord>) -> Result<Vec<SyncOutcome>, NaError> {
        let txn = self.db.begin_write().await?;
        let mut outcomes = Vec::with_capacity(records.len());
        for r in records {
            check_two_people(&r.first_prisoner_number, &r.second_prisoner_number)?;
            let (low, high) = ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
            let (low, high) = (low.to_string(), high.to_string());
            let target = match r.id {
                Some(id) => {
                    let m = lock(&txn, id).await?;
                    if m.pair_low != low || m.pair_high != high {
                        return Err(NaError::Conflict(format!(
                            "Non-association {id} is between {} and {}, not {} and {}: the mapping used is out of date",
                            m.first_prisoner_number,
                            m.second_prisoner_number,
                            r.first_prisoner_number,
                            r.second_prisoner_number
                        )));
                    }
                    Some(m)
                }
                None => find_by_nomis_key(&txn, &low, &high, r.type_sequence, true)
                    .await?
                    .map(|na| na.model),
            };
            let Some(existing) = target else {
                if r.is_open() {
                    no_other_open(&txn, &r, None).await?;
                }
                let na = insert_synced(&txn, &r).await?;
                publish(&txn, Change::Created, &na, Source::Nomis).await?;
                outcomes.push(SyncOutcome::of(&na, r.type_sequence, true));
                continue;
            };
            if r.is_open() {
                no_other_open(&txn, &r, Some(existing.id)).await?;
            }
            // Keep the stored orientation of the pair: NOMIS may send either direction.
            let r = if existing.first_prisoner_number == r.first_prisoner_number {
                r
            } else {
                r.swapped()
            };
            let was_closed = existing.is_closed;
            let Some(am) = synced_changes(&existing, &r) else {
                let na = NonAssociation::try_from(existing)?;
                outcomes.push(SyncOutcome::of(&na, r.type_sequence, false));
                continue;
            };
            let model = am
                .update(&txn)
                .await
                .map_err(|e| write_error(e, &r.first_prisoner_number, &r.second_prisoner_number))?;
            let na = NonAssociation::try_from(model)?;
            let change = if !was_closed && na.is_closed {
                Change::Closed
            } else {
                Change::Amended
            };
            publish(&txn, change, &na, Source::Nomis).await?;
            outcomes.push(SyncOutcome::of(&na, r.type_sequence, false));
        }
        commit(txn).await?;
        Ok(outcomes)
    }

    /// After a prisoner merge or a booking move (reference domain-apis §3.6): every record
    /// naming `from` (created within `window`, for a booking move) names `to` instead.
    /// A record that would pair `to` with himself is deleted; an open one that would
    /// duplicate an open record of its new pair is closed (by `NON_ASSOCIATIONS_API`,
    /// reason `MERGE`); a NOMIS key that would collide is cleared (the mapping service keeps
    /// the link). No events, as the real service. Repeating it finds nothing to do.
    pub async fn renumber(
        &self,
        from: &str,
        to: &str,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<Vec<(i64, MergeResult)>, NaError> {
        let txn = self.db.begin_write().await?;
        let mut q = Entity::find()
            .filter(
                Condition::any()
                    .add(Column::FirstPrisonerNumber.eq(from))
                    .add(Column::SecondPrisonerNumber.eq(from)),
            )
            .order_by_asc(Column::Id);
        if let Some((start, end)) = window {
            q = q
                .filter(Column::WhenCreated.gte(start))
                .filter(Column::WhenCreated.lte(end));
        }
        let rows = q.lock_exclusive().all(&txn).await?;
        let now = stamp(tandem_platform::time::now());
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            let swap = |p: &str| {
                if p == from {
                    to.to_string()
                } else {
                    p.to_string()
                }
            };
            let first = swap(&row.first_prisoner_number);
            let second = swap(&row.second_prisoner_number);
            if first == second {
                Entity::delete_by_id(row.id).exec(&txn).await?;
                results.push((row.id, MergeResult::Deleted));
                continue;
            }
            let (low, high) = ordered_pair(&first, &second);
            let (low, high) = (low.to_string(), high.to_string());
            let close =
                !row.is_closed && find_open(&txn, &low, &high, Some(row.id)).await?.is_some();
            let mut sequence = row.nomis_type_sequence;
            if let Some(seq) = sequence
                && find_by_nomis_key(&txn, &low, &high, seq, false)
                    .await?
                    .is_some_and(|other| other.id != row.id)
            {
                sequence = None;
            }
            let id = row.id;
            let mut am = row.into_active_model();
            am.first_prisoner_number = Set(first);
            am.second_prisoner_number = Set(second);
            am.pair_low = Set(low);
            am.pair_high = Set(high);
            am.nomis_type_sequence = Set(sequence);
            if close {
                am.is_closed = Set(true);
                am.closed_by = Set(Some(crate::model::defaults::SYSTEM_USER.to_string()));
                am.closed_reason = Set(Some(MERGE_CLOSURE_REASON.to_string()));
                am.closed_at = Set(Some(now));
                am.when_updated = Set(now);
                am.updated_by = Set(crate::model::defaults::SYSTEM_USER.to_string());
            }
            am.update(&txn).await?;
            results.push((
                id,
                if close {
                    MergeResult::Closed
                } else {
                    MergeResult::Merged
                },
            ));
        }
        txn.commit().await?;
        Ok(results)
    }

    /// Two requests for the same NOMIS record racing on PostgreSQL: the loser's insert
    /// breaks the NOMIS-key index. Running it once more finds the winner's record.
    async fn retrying_key_races<F, Fut>(&self, attempt: F) -> Result<Vec<SyncOutcome>, NaError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<SyncOutcome>, NaError>>,
    {
        match attempt().await {
            Err(NaError::NomisKeyTaken(_)) => attempt().await.map_err(|e| match e {
                NaError::NomisKeyTaken(msg) => NaError::Conflict(msg),
                other => other,
            }),
            other => other,
        }
    }
}

/// The body of a migration inside `txn`: see [`Store::migrate`].
async fn migrate_in<C: ConnectionTrait>(
    txn: &C,
    records: Vec<SyncRecord>,
) -> Result<Vec<SyncOutcome>, NaError> {
    let mut outcomes = Vec::with_capacity(records.len());
    for r in records {
        check_two_people(&r.first_prisoner_number, &r.second_prisoner_number)?;
        let (low, high) = ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
        if let Some(existing) = find_by_nomis_key(txn, low, high, r.type_sequence, false).await? {
            outcomes.push(SyncOutcome::of(&existing, r.type_sequence, false));
            continue;
        }
        if r.is_open() {
            no_other_open(txn, &r, None).await?;
        }
        let na = insert_synced(txn, &r).await?;
        outcomes.push(SyncOutcome::of(&na, r.type_sequence, true));
    }
    Ok(outcomes)
}

fn to_domain(rows: Vec<Model>) -> Result<Vec<NonAssociation>, NaError> {
    rows.into_iter().map(NonAssociation::try_from).collect()
}

fn open_exists(first: &str, second: &str, existing: i64) -> NaError {
    NaError::OpenAlreadyExists {
        first: first.to_string(),
        second: second.to_string(),
        existing,
    }
}

fn write_error(e: DbErr, first: &str, second: &str) -> NaError {
    match violation(&e) {
        Some(Violation::OpenPair) => NaError::OpenAlreadyExistsRace {
            first: first.into(),
            second: second.into(),
        },
        Some(Violation::NomisKey) => NaError::NomisKeyTaken(format!(
            "Another non-association between {first} and {second} already has this NOMIS type sequence"
        )),
        None => e.into(),
    }
}

/// Reads a record for update (a row lock on PostgreSQL; SQLite's write transaction
/// already excludes other writers). Missing → 404.
async fn lock<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Model, NaError> {
    Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or(NaError::NotFound(id))
}

/// The open record of the pair (`low`, `high`), other than `except`.
async fn find_open<C: ConnectionTrait>(
    conn: &C,
    low: &str,
    high: &str,
    except: Option<i64>,
) -> Result<Option<Model>, NaError> {
    let mut q = Entity::find()
        .filter(Column::PairLow.eq(low))
        .filter(Column::PairHigh.eq(high))
        .filter(Column::IsClosed.eq(false));
    if let Some(id) = except {
        q = q.filter(Column::Id.ne(id));
    }
    Ok(q.one(conn).await?)
}

async fn find_by_nomis_key<C: ConnectionTrait>(
    conn: &C,
    a: &str,
    b: &str,
    type_sequence: i32,
    for_update: bool,
) -> Result<Option<FoundOrDomain>, NaError> {
    let (low, high) = ordered_pair(a, b);
    let mut q = Entity::find()
        .filter(Column::PairLow.eq(low))
        .filter(Column::PairHigh.eq(high))
        .filter(Column::NomisTypeSequence.eq(type_sequence));
    if for_update {
        q = q.lock_exclusive();
    }
    q.one(conn).await?.map(FoundOrDomain::new).transpose()
}

/// 409 (errorCode 101) when the pair of `r` has an open record other than `except`.
async fn no_other_open<C: ConnectionTrait>(
    conn: &C,
    r: &SyncRecord,
    except: Option<i64>,
) -> Result<(), NaError> {
    let (low, high) = ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
    match find_open(conn, low, high, except).await? {
        Some(open) => Err(open_exists(
            &r.first_prisoner_number,
            &r.second_prisoner_number,
            open.id,
        )),
        None => Ok(()),
    }
}

/// A record found by its NOMIS key: the stored row and its domain form.
struct FoundOrDomain {
    model: Model,
    na: NonAssociation,
}

impl FoundOrDomain {
    fn new(model: Model) -> Result<Self, NaError> {
        let na = NonAssociation::try_from(model.clone())?;
        Ok(Self { model, na })
    }
}

impl std::ops::Deref for FoundOrDomain {
    type Target = NonAssociation;
    fn deref(&self) -> &NonAssociation {
        &self.na
    }
}

async fn insert_synced<C: ConnectionTrait>(
    conn: &C,
    r: &SyncRecord,
) -> Result<NonAssociation, NaError> {
    let model = synced_model(r)?
        .insert(conn)
        .await
        .map_err(|e| write_error(e, &r.first_prisoner_number, &r.second_prisoner_number))?;
    NonAssociation::try_from(model)
}

/// The row a NOMIS record becomes when it is created in DPS: every column but the
/// generated id, in [`SYNCED_COLUMNS`] order.
fn synced_row(r: &SyncRecord) -> [sea_orm::Value; SYNCED_COLUMNS.len()] {
    let (low, high) = ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
    let when_created = stamp(r.when_created);
    let closed_at = r.closed_at.map(stamp);
    [
        r.first_prisoner_number.clone().into(),
        r.first_prisoner_role.code().into(),
        r.second_prisoner_number.clone().into(),
        r.second_prisoner_role.code().into(),
        r.reason.code().into(),
        r.restriction_type.code().into(),
        r.comment.clone().into(),
        r.authorised_by.clone().into(),
        when_created.into(),
        closed_at.unwrap_or(when_created).into(),
        r.user.clone().into(),
        closed_at.is_some().into(),
        closed_at.map(|_| r.user.clone()).into(),
        closed_at
            .map(|_| crate::model::defaults::NO_CLOSURE_REASON.to_string())
            .into(),
        closed_at.into(),
        low.to_string().into(),
        high.to_string().into(),
        Some(r.type_sequence).into(),
    ]
}

/// The columns [`synced_row`] fills.
const SYNCED_COLUMNS: [Column; 18] = [
    Column::FirstPrisonerNumber,
    Column::FirstPrisonerRole,
    Column::SecondPrisonerNumber,
    Column::SecondPrisonerRole,
    Column::Reason,
    Column::RestrictionType,
    Column::Comment,
    Column::AuthorisedBy,
    Column::WhenCreated,
    Column::WhenUpdated,
    Column::UpdatedBy,
    Column::IsClosed,
    Column::ClosedBy,
    Column::ClosedReason,
    Column::ClosedAt,
    Column::PairLow,
    Column::PairHigh,
    Column::NomisTypeSequence,
];

/// [`synced_row`] as an active model, for the single-record paths.
fn synced_model(r: &SyncRecord) -> Result<ActiveModel, NaError> {
    let mut model = <ActiveModel as ActiveModelTrait>::default();
    for (column, value) in SYNCED_COLUMNS.into_iter().zip(synced_row(r)) {
        model.try_set(column, value)?;
    }
    Ok(model)
}

/// Rows per multi-row INSERT of a migration batch (well inside SQLite's parameter limit).
const MIGRATE_ROWS_PER_INSERT: usize = 512;

/// [`migrate_in`] for many requests with a fixed number of statements: one read of every
/// stored record of the batch's pairs, then multi-row INSERTs. The same decisions per
/// record (already migrated → returned as it is; a second open record of a pair → 409),
/// made in memory against what is stored plus what the batch itself adds.
async fn migrate_many<C: ConnectionTrait>(
    txn: &C,
    batches: &[Vec<SyncRecord>],
) -> Result<Vec<Vec<SyncOutcome>>, NaError> {
    for r in batches.iter().flatten() {
        check_two_people(&r.first_prisoner_number, &r.second_prisoner_number)?;
    }
    let mut lows: Vec<String> = batches
        .iter()
        .flatten()
        .map(|r| {
            ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number)
                .0
                .to_string()
        })
        .collect();
    lows.sort_unstable();
    lows.dedup();
    type PairKey = (String, String);
    let mut by_key: HashMap<(String, String, i32), Model> = HashMap::new();
    let mut open: HashMap<PairKey, Option<i64>> = HashMap::new();
    for chunk in lows.chunks(MIGRATE_ROWS_PER_INSERT) {
        for m in Entity::find()
            .filter(Column::PairLow.is_in(padded_in_list(chunk.to_vec())))
            .all(txn)
            .await?
        {
            if !m.is_closed {
                open.insert((m.pair_low.clone(), m.pair_high.clone()), Some(m.id));
            }
            if let Some(seq) = m.nomis_type_sequence {
                by_key.insert((m.pair_low.clone(), m.pair_high.clone(), seq), m);
            }
        }
    }
    // Decide every record; `None` = to insert.
    let mut decided: Vec<Vec<(&SyncRecord, Option<Model>)>> = Vec::with_capacity(batches.len());
    let mut to_insert: Vec<[sea_orm::Value; SYNCED_COLUMNS.len()]> = Vec::new();
    for records in batches {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let (low, high) = ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
            let key = (low.to_string(), high.to_string(), r.type_sequence);
            if let Some(existing) = by_key.get(&key) {
                out.push((r, Some(existing.clone())));
                continue;
            }
            let pair = (key.0.clone(), key.1.clone());
            if r.is_open() {
                match open.get(&pair) {
                    Some(Some(existing)) => {
                        return Err(open_exists(
                            &r.first_prisoner_number,
                            &r.second_prisoner_number,
                            *existing,
                        ));
                    }
                    // Opened earlier in this batch: no id to name yet.
                    Some(None) => {
                        return Err(NaError::OpenAlreadyExistsRace {
                            first: r.first_prisoner_number.clone(),
                            second: r.second_prisoner_number.clone(),
                        });
                    }
                    None => {}
                }
                open.insert(pair, None);
            }
            to_insert.push(synced_row(r));
            out.push((r, None));
        }
        decided.push(out);
    }
    // Only the generated id comes back, keyed by the NOMIS key: decoding whole rows (19
    // columns, timestamps parsed) was a quarter of the inserts' time, inside the write lock.
    let mut inserted: HashMap<(String, String, i32), i64> = HashMap::new();
    let lengths: Vec<usize> = power_of_two_chunks(&to_insert, MIGRATE_ROWS_PER_INSERT)
        .iter()
        .map(|c| c.len())
        .collect();
    let mut rows = to_insert.into_iter();
    let columns: Vec<&str> = SYNCED_COLUMNS.iter().map(|c| c.as_str()).collect();
    for length in lengths {
        let values: Vec<sea_orm::Value> = rows.by_ref().take(length).flatten().collect();
        let insert = multi_row_insert(
            txn.get_database_backend(),
            Entity.table_name(),
            &columns,
            values,
            " RETURNING id, pair_low, pair_high, nomis_type_sequence",
        )
        .ok_or_else(|| NaError::from(DbErr::Custom("an empty migration insert".into())))?;
        let stored = txn
            .query_all_raw(insert)
            .await
            .map_err(|e| write_error(e, "the batch's first prisoner", "second prisoner"))?;
        for row in stored {
            let id: i64 = row.try_get_by_index(0)?;
            let low: String = row.try_get_by_index(1)?;
            let high: String = row.try_get_by_index(2)?;
            let seq: Option<i32> = row.try_get_by_index(3)?;
            if let Some(seq) = seq {
                inserted.insert((low, high, seq), id);
            }
        }
    }
    decided
        .into_iter()
        .map(|records| {
            records
                .into_iter()
                .map(|(r, existing)| match existing {
                    Some(m) => {
                        let na = NonAssociation::try_from(m)?;
                        Ok(SyncOutcome::of(&na, r.type_sequence, false))
                    }
                    None => {
                        let (low, high) =
                            ordered_pair(&r.first_prisoner_number, &r.second_prisoner_number);
                        let id = inserted
                            .remove(&(low.to_string(), high.to_string(), r.type_sequence))
                            .ok_or_else(|| {
                                NaError::Db(tandem_platform::db::DbError::Query(DbErr::Custom(format!(
                                    "the batch insert did not return the record of {low}/{high} type sequence {}",
                                    r.type_sequence
                                ))))
                            })?;
                        Ok(SyncOutcome {
                            id,
                            type_sequence: r.type_sequence,
                            first_prisoner_number: r.first_prisoner_number.clone(),
                            second_prisoner_number: r.second_prisoner_number.clone(),
                            created: true,
                        })
                    }
                })
                .collect()
        })
        .collect()
}

/// The update a NOMIS record makes to the stored one, or `None` when nothing would change.
///
/// Dates carry no time in NOMIS, so a stored time is kept when the date is the same
/// (a record created in DPS keeps its real creation time). A record that was already
/// closed keeps who closed it and why; NOMIS knows neither.
fn synced_changes(existing: &Model, r: &SyncRecord) -> Option<ActiveModel> {
    let same_day = |a: DateTime<Utc>, b: DateTime<Utc>| {
        tandem_platform::time::london_local(a).date()
            == tandem_platform::time::london_local(b).date()
    };
    let when_created = if same_day(existing.when_created, r.when_created) {
        existing.when_created
    } else {
        stamp(r.when_created)
    };
    let (closed_by, closed_reason, closed_at) = match (r.closed_at, existing.is_closed) {
        (None, _) => (None, None, None),
        (Some(at), true) => (
            existing.closed_by.clone(),
            existing.closed_reason.clone(),
            existing
                .closed_at
                .filter(|e| same_day(*e, at))
                .or(Some(stamp(at))),
        ),
        (Some(at), false) => (
            Some(r.user.clone()),
            Some(crate::model::defaults::NO_CLOSURE_REASON.to_string()),
            Some(stamp(at)),
        ),
    };
    let wanted = Model {
        id: existing.id,
        first_prisoner_number: r.first_prisoner_number.clone(),
        first_prisoner_role: r.first_prisoner_role.code().into(),
        second_prisoner_number: r.second_prisoner_number.clone(),
        second_prisoner_role: r.second_prisoner_role.code().into(),
        reason: r.reason.code().into(),
        restriction_type: r.restriction_type.code().into(),
        comment: r.comment.clone(),
        authorised_by: r.authorised_by.clone(),
        when_created,
        when_updated: existing.when_updated,
        updated_by: existing.updated_by.clone(),
        is_closed: closed_at.is_some(),
        closed_by,
        closed_reason,
        closed_at,
        pair_low: existing.pair_low.clone(),
        pair_high: existing.pair_high.clone(),
        nomis_type_sequence: Some(r.type_sequence),
    };
    if &wanted == existing {
        return None;
    }
    let when_updated = match (wanted.closed_at, existing.is_closed) {
        (Some(at), false) => at,
        _ => stamp(tandem_platform::time::now()),
    };
    // Every column is written: the row is locked, and this is the state NOMIS has.
    Some(
        Model {
            updated_by: r.user.clone(),
            when_updated,
            ..wanted
        }
        .into_active_model()
        .reset_all(),
    )
}

async fn publish<C: ConnectionTrait>(
    conn: &C,
    change: Change,
    na: &NonAssociation,
    source: Source,
) -> Result<(), NaError> {
    let event = events::event(
        change,
        na.id,
        &na.first_prisoner_number,
        &na.second_prisoner_number,
        source,
    );
    outbox::enqueue(conn, &event).await?;
    Ok(())
}

async fn commit(txn: sea_orm::DatabaseTransaction) -> Result<(), NaError> {
    txn.commit().await?;
    outbox::committed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(closed: bool) -> SyncRecord {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc));
        SyncRecord {
            id: None,
            type_sequence: 3,
            first_prisoner_number: "B1234CD".into(),
            first_prisoner_role: Role::ALL[0],
            second_prisoner_number: "A1234BC".into(),
            second_prisoner_role: Role::ALL[1],
            reason: Reason::ALL[0],
            restriction_type: RestrictionType::ALL[0],
            comment: "Keep apart".into(),
            authorised_by: Some("SMITH J".into()),
            user: "NOMIS_USER".into(),
            when_created: t("2024-01-02T10:11:12.345678Z").expect("a time"),
            closed_at: closed.then(|| t("2024-03-04T05:06:07Z").expect("a time")),
        }
    }

    /// The batch insert's row and the single insert's model come from one description:
    /// every column is set, each to its own value.
    #[test]
    fn a_synced_row_fills_each_column_with_its_value() {
        let open = synced_model(&record(false)).expect("an open record's model");
        let created = stamp(record(false).when_created);
        assert!(open.id.is_not_set());
        assert_eq!(open.first_prisoner_number.clone().unwrap(), "B1234CD");
        assert_eq!(open.second_prisoner_number.clone().unwrap(), "A1234BC");
        assert_eq!(
            (
                open.pair_low.clone().unwrap(),
                open.pair_high.clone().unwrap()
            ),
            ("A1234BC".to_string(), "B1234CD".to_string())
        );
        assert_eq!(
            open.first_prisoner_role.clone().unwrap(),
            Role::ALL[0].code()
        );
        assert_eq!(
            open.second_prisoner_role.clone().unwrap(),
            Role::ALL[1].code()
        );
        assert_eq!(open.reason.clone().unwrap(), Reason::ALL[0].code());
        assert_eq!(
            open.restriction_type.clone().unwrap(),
            RestrictionType::ALL[0].code()
        );
        assert_eq!(open.comment.clone().unwrap(), "Keep apart");
        assert_eq!(
            open.authorised_by.clone().unwrap().as_deref(),
            Some("SMITH J")
        );
        assert_eq!(open.updated_by.clone().unwrap(), "NOMIS_USER");
        assert_eq!(open.when_created.clone().unwrap(), created);
        assert_eq!(open.when_updated.clone().unwrap(), created);
        assert!(!open.is_closed.clone().unwrap());
        assert_eq!(open.closed_by.clone().unwrap(), None);
        assert_eq!(open.closed_reason.clone().unwrap(), None);
        assert_eq!(open.closed_at.clone().unwrap(), None);
        assert_eq!(open.nomis_type_sequence.clone().unwrap(), Some(3));

        let closed = synced_model(&record(true)).expect("a closed record's model");
        let closed_at = record(true).closed_at;
        assert!(closed.is_closed.clone().unwrap());
        assert_eq!(closed.closed_at.clone().unwrap(), closed_at);
        assert_eq!(
            closed.when_updated.clone().unwrap(),
            closed_at.expect("closed")
        );
        assert_eq!(
            closed.closed_by.clone().unwrap().as_deref(),
            Some("NOMIS_USER")
        );
        assert_eq!(
            closed.closed_reason.clone().unwrap().as_deref(),
            Some(crate::model::defaults::NO_CLOSURE_REASON)
        );
    }
}
