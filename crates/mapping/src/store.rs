//! The generic mapping store: create (atomic, idempotent, 409 on a clash), look-ups both
//! ways, paging by migration, latest migrated, deletes and key rewrites — written once for
//! every [`MappingKind`].
//!
//! Create is a single `INSERT … ON CONFLICT DO NOTHING` rather than check-then-insert, so
//! two racing creates can never both pass a check and one fail with a 500: the loser's
//! insert does nothing, and only then does it read the row that won to decide between
//! "identical, nothing to do" and "a different mapping holds the key" (409).

use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Asterisk, Cond, Condition, Expr, ExprTrait, Order, Query, SelectStatement,
};
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::{Map, Value};
use tandem_platform::db::{Db, is_unique_violation, multi_row_insert, power_of_two_chunks};

use crate::error::{Duplicate, MappingError};
use crate::kind::{
    ColType, Field, KeyValue, LABEL, LABEL_JSON, MAPPING_TYPE, MAPPING_TYPE_JSON, Mapping,
    MappingKind, MappingType, WHEN_CREATED, WHEN_CREATED_JSON,
};
use crate::page::{Page, PageRequest};

/// How many times a create retries when the row it clashed with vanished before it could
/// be read (a concurrent delete). Each retry needs another writer to interleave exactly;
/// three in a row means something is wrong.
const CREATE_ATTEMPTS: usize = 3;

/// One mapping of some kind, in its JSON form, validated and ready to store: what
/// [`MappingStore::create_all`] takes, so one call can store mappings of several kinds.
#[derive(Debug, Clone)]
pub struct Record {
    kind: &'static MappingKind,
    obj: Map<String, Value>,
    /// Every column but `when_created`, checked and converted once (in [`Record::of`]).
    columns: Vec<(&'static str, sea_orm::Value)>,
}

impl Record {
    pub fn kind(&self) -> &'static MappingKind {
        self.kind
    }

    /// The mapping as JSON, keyed by the DTO's field names.
    pub fn json(&self) -> &Map<String, Value> {
        &self.obj
    }

    /// Takes a DTO to its stored form, running the DTO's own checks and the table's limits.
    pub fn of<M: Mapping>(m: &M) -> Result<Self, MappingError> {
        m.validate().map_err(MappingError::Invalid)?;
        let obj = match serde_json::to_value(m) {
            Ok(Value::Object(obj)) => obj,
            Ok(other) => {
                return Err(MappingError::Corrupt(format!(
                    "{} mapping serialises to {other}, not an object",
                    M::KIND.name
                )));
            }
            Err(e) => return Err(MappingError::Corrupt(e.to_string())),
        };
        let columns = stored_columns(M::KIND, &obj)?;
        Ok(Self {
            kind: M::KIND,
            obj,
            columns,
        })
    }

    fn key(&self, fields: &[Field]) -> Result<Vec<KeyValue>, MappingError> {
        fields
            .iter()
            .map(|f| json_to_key(f, self.obj.get(f.json)))
            .collect()
    }

    fn dps_key(&self) -> Result<Vec<KeyValue>, MappingError> {
        self.key(self.kind.dps_key)
    }

    fn nomis_key(&self) -> Result<Vec<KeyValue>, MappingError> {
        self.key(self.kind.nomis_key)
    }

    /// Columns and values for an insert, with `when_created` as given.
    fn insert_values(&self, when_created: DateTime<Utc>) -> Vec<(&'static str, sea_orm::Value)> {
        let mut values = Vec::with_capacity(self.columns.len() + 1);
        values.extend(self.columns.iter().cloned());
        values.push((WHEN_CREATED, when_created.into()));
        values
    }

    /// The offered mapping as it appears in a 409: the same fields as the existing one,
    /// with `whenCreated` null (it was never stored).
    fn as_duplicate(&self) -> Map<String, Value> {
        let mut obj = self.obj.clone();
        obj.insert(WHEN_CREATED_JSON.into(), Value::Null);
        obj
    }
}

/// What a create did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Stored now, with this `when_created` (so a caller can answer without reading it back).
    Inserted { when_created: DateTime<Utc> },
    /// The same mapping (same DPS id, same NOMIS id) was already stored: nothing changed.
    AlreadyExisted,
}

/// A clock for `when_created` that never repeats or goes backwards within the process, at
/// the microsecond precision both backends store, so "latest migrated" has one answer
/// even for rows created in the same instant.
pub(crate) fn creation_time() -> DateTime<Utc> {
    static LAST_MICROS: AtomicI64 = AtomicI64::new(0);
    let now = tandem_platform::time::now().timestamp_micros();
    let previous = LAST_MICROS
        .fetch_update(AtomicOrdering::SeqCst, AtomicOrdering::SeqCst, |last| {
            Some(std::cmp::max(now, last + 1))
        })
        .unwrap_or(now);
    let micros = std::cmp::max(now, previous + 1);
    DateTime::from_timestamp_micros(micros).unwrap_or_else(tandem_platform::time::now)
}

fn json_to_key(f: &Field, v: Option<&Value>) -> Result<KeyValue, MappingError> {
    let missing = || MappingError::Invalid(format!("{}: required", f.json));
    let v = v.filter(|v| !v.is_null()).ok_or_else(missing)?;
    match f.ty {
        ColType::BigInt | ColType::Int => v
            .as_i64()
            .map(KeyValue::Int)
            .ok_or_else(|| MappingError::Invalid(format!("{}: must be a whole number", f.json))),
        ColType::Text(_) => v
            .as_str()
            .map(|s| KeyValue::Text(s.to_string()))
            .ok_or_else(|| MappingError::Invalid(format!("{}: must be a string", f.json))),
    }
}

/// A key component as the column stores it; wrong type or length is the caller's to fix.
fn to_db(f: &Field, v: &KeyValue) -> Result<sea_orm::Value, MappingError> {
    match (f.ty, v) {
        (ColType::BigInt, KeyValue::Int(i)) => Ok((*i).into()),
        (ColType::Int, KeyValue::Int(i)) => i32::try_from(*i)
            .map(Into::into)
            .map_err(|_| MappingError::Invalid(format!("{}: {i} is out of range", f.json))),
        (ColType::Text(n), KeyValue::Text(s)) => {
            if s.is_empty() || s.chars().count() > n as usize {
                Err(MappingError::Invalid(format!(
                    "{}: must be 1 to {n} characters",
                    f.json
                )))
            } else {
                Ok(s.clone().into())
            }
        }
        (ColType::Text(_), KeyValue::Int(_)) => Err(MappingError::Invalid(format!(
            "{}: must be a string",
            f.json
        ))),
        (_, KeyValue::Text(_)) => Err(MappingError::Invalid(format!(
            "{}: must be a whole number",
            f.json
        ))),
    }
}

fn key_condition(fields: &[Field], key: &[KeyValue]) -> Result<Condition, MappingError> {
    if fields.len() != key.len() {
        return Err(MappingError::Invalid(format!(
            "a key of {} parts was given where {} are needed",
            key.len(),
            fields.len()
        )));
    }
    let mut cond = Cond::all();
    for (f, v) in fields.iter().zip(key) {
        cond = cond.add(Expr::col(f.column).eq(to_db(f, v)?));
    }
    Ok(cond)
}

fn select_all(kind: &MappingKind) -> SelectStatement {
    let mut q = Query::select();
    q.columns(kind.key_fields().map(|f| f.column))
        .columns([LABEL, MAPPING_TYPE, WHEN_CREATED])
        .from(kind.table);
    q
}

fn corrupt(kind: &MappingKind, e: impl std::fmt::Display) -> MappingError {
    MappingError::Corrupt(format!("{}: {e}", kind.table))
}

/// A row back to its JSON form (`whenCreated` as a Europe/London local date-time, as the
/// HMPPS mapping service returns it).
fn row_to_obj(kind: &MappingKind, row: &QueryResult) -> Result<Map<String, Value>, MappingError> {
    let mut obj = Map::new();
    for f in kind.key_fields() {
        let v = match f.ty {
            ColType::BigInt => Value::from(
                row.try_get::<i64>("", f.column)
                    .map_err(|e| corrupt(kind, e))?,
            ),
            ColType::Int => Value::from(
                row.try_get::<i32>("", f.column)
                    .map_err(|e| corrupt(kind, e))?,
            ),
            ColType::Text(_) => Value::from(
                row.try_get::<String>("", f.column)
                    .map_err(|e| corrupt(kind, e))?,
            ),
        };
        obj.insert(f.json.to_string(), v);
    }
    let label: Option<String> = row.try_get("", LABEL).map_err(|e| corrupt(kind, e))?;
    obj.insert(
        LABEL_JSON.into(),
        label.map(Value::from).unwrap_or(Value::Null),
    );
    let mapping_type: String = row
        .try_get("", MAPPING_TYPE)
        .map_err(|e| corrupt(kind, e))?;
    obj.insert(MAPPING_TYPE_JSON.into(), Value::from(mapping_type));
    let when: DateTime<Utc> = row
        .try_get("", WHEN_CREATED)
        .map_err(|e| corrupt(kind, e))?;
    let local = tandem_platform::time::london_local(when);
    obj.insert(
        WHEN_CREATED_JSON.into(),
        serde_json::to_value(local).map_err(|e| corrupt(kind, e))?,
    );
    Ok(obj)
}

/// The JSON form of a row into its DTO.
pub fn from_obj<M: Mapping>(obj: Map<String, Value>) -> Result<M, MappingError> {
    serde_json::from_value(Value::Object(obj)).map_err(|e| corrupt(M::KIND, e))
}

async fn query_objs<C: ConnectionTrait>(
    conn: &C,
    kind: &MappingKind,
    q: &SelectStatement,
) -> Result<Vec<Map<String, Value>>, MappingError> {
    conn.query_all(q)
        .await?
        .iter()
        .map(|row| row_to_obj(kind, row))
        .collect()
}

/// The rows of `kind` matching `cond`, in DPS-key order: the building block for a domain's
/// own look-ups, usable inside its transaction.
pub async fn select_where<C: ConnectionTrait>(
    conn: &C,
    kind: &MappingKind,
    cond: Condition,
) -> Result<Vec<Map<String, Value>>, MappingError> {
    let mut q = select_all(kind);
    q.cond_where(cond);
    for f in kind.dps_key {
        q.order_by(f.column, Order::Asc);
    }
    query_objs(conn, kind, &q).await
}

/// Typed [`select_where`].
pub async fn select<M: Mapping, C: ConnectionTrait>(
    conn: &C,
    cond: Condition,
) -> Result<Vec<M>, MappingError> {
    select_where(conn, M::KIND, cond)
        .await?
        .into_iter()
        .map(from_obj)
        .collect()
}

async fn first_by<C: ConnectionTrait>(
    conn: &C,
    kind: &MappingKind,
    fields: &[Field],
    key: &[KeyValue],
) -> Result<Option<Map<String, Value>>, MappingError> {
    let mut q = select_all(kind);
    q.cond_where(key_condition(fields, key)?);
    for f in kind.dps_key {
        q.order_by(f.column, Order::Asc);
    }
    q.limit(1);
    Ok(query_objs(conn, kind, &q).await?.into_iter().next())
}

/// The JSON form of a key read back from a row (for comparing keys).
fn key_of(fields: &[Field], obj: &Map<String, Value>) -> Vec<Value> {
    fields
        .iter()
        .map(|f| obj.get(f.json).cloned().unwrap_or(Value::Null))
        .collect()
}

fn key_json(key: &[KeyValue]) -> Vec<Value> {
    key.iter().map(KeyValue::to_json).collect()
}

fn duplicate(
    kind: &'static MappingKind,
    existing: Option<Map<String, Value>>,
    offered: &Record,
) -> MappingError {
    let duplicate = offered.as_duplicate();
    MappingError::Duplicate(Box::new(Duplicate {
        kind: kind.name,
        existing_text: existing
            .as_ref()
            .map(|e| kind.describe(e))
            .unwrap_or_else(|| "(removed by a concurrent change)".into()),
        duplicate_text: kind.describe(&duplicate),
        existing,
        duplicate,
    }))
}

/// The stored mapping `record` clashes with, if any, and whether it is the same mapping.
async fn find_clash<C: ConnectionTrait>(
    conn: &C,
    record: &Record,
) -> Result<Option<(Map<String, Value>, bool)>, MappingError> {
    let kind = record.kind;
    let nomis_key = record.nomis_key()?;
    if let Some(existing) = first_by(conn, kind, kind.dps_key, &record.dps_key()?).await? {
        let same = key_of(kind.nomis_key, &existing) == key_json(&nomis_key);
        return Ok(Some((existing, same)));
    }
    if kind.nomis_key_unique
        && let Some(existing) = first_by(conn, kind, kind.nomis_key, &nomis_key).await?
    {
        return Ok(Some((existing, false)));
    }
    Ok(None)
}

/// Inserts one record inside `txn`: `Ok(Inserted | AlreadyExisted)` or a `Duplicate`.
async fn insert_one<C: ConnectionTrait>(txn: &C, record: &Record) -> Result<Created, MappingError> {
    for _ in 0..CREATE_ATTEMPTS {
        let when_created = creation_time();
        let insert = insert_rows(
            txn.get_database_backend(),
            record.kind,
            vec![record.insert_values(when_created)],
        )?;
        if txn.execute_raw(insert).await?.rows_affected() == 1 {
            return Ok(Created::Inserted { when_created });
        }
        match find_clash(txn, record).await? {
            Some((_, true)) => return Ok(Created::AlreadyExisted),
            Some((existing, false)) => return Err(duplicate(record.kind, Some(existing), record)),
            // The row that blocked the insert was deleted before we could read it: try again.
            None => continue,
        }
    }
    Err(MappingError::Corrupt(format!(
        "{} mapping could not be inserted after {CREATE_ATTEMPTS} attempts: the clashing row kept disappearing",
        record.kind.name
    )))
}

/// Rows per multi-row INSERT (inside SQLite's and PostgreSQL's parameter limits for any
/// kind's handful of columns).
const ROWS_PER_INSERT: usize = 256;

/// A mapping's stored columns but `when_created`: its key fields, label and type, each
/// checked against the table's limits.
fn stored_columns(
    kind: &'static MappingKind,
    obj: &Map<String, Value>,
) -> Result<Vec<(&'static str, sea_orm::Value)>, MappingError> {
    let mut values = Vec::new();
    for f in kind.key_fields() {
        values.push((f.column, to_db(f, &json_to_key(f, obj.get(f.json))?)?));
    }
    let label = match obj.get(LABEL_JSON) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= kind.label_len as usize => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(MappingError::Invalid(format!(
                "label: must be at most {} characters",
                kind.label_len
            )));
        }
        Some(_) => return Err(MappingError::Invalid("label: must be a string".into())),
    };
    values.push((LABEL, label.into()));
    let mapping_type = obj
        .get(MAPPING_TYPE_JSON)
        .and_then(Value::as_str)
        .and_then(MappingType::parse)
        .ok_or_else(|| {
            MappingError::Invalid(
                "mappingType: required, one of MIGRATED, NOMIS_CREATED, DPS_CREATED".into(),
            )
        })?;
    values.push((MAPPING_TYPE, mapping_type.as_str().into()));
    Ok(values)
}

/// `INSERT … ON CONFLICT DO NOTHING` of `rows` (each from [`Record::insert_values`]) into
/// `kind`'s table: the one statement both the single and the batch create run.
fn insert_rows(
    backend: sea_orm::DbBackend,
    kind: &MappingKind,
    rows: Vec<Vec<(&'static str, sea_orm::Value)>>,
) -> Result<sea_orm::Statement, MappingError> {
    let columns: Vec<&str> = rows
        .first()
        .map(|row| row.iter().map(|(c, _)| *c).collect())
        .unwrap_or_default();
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for row in rows {
        if row.len() != columns.len() {
            return Err(MappingError::Corrupt(format!(
                "{} mappings of one batch have different columns",
                kind.name
            )));
        }
        values.extend(row.into_iter().map(|(_, v)| v));
    }
    multi_row_insert(
        backend,
        kind.table,
        &columns,
        values,
        " ON CONFLICT DO NOTHING",
    )
    .ok_or_else(|| MappingError::Corrupt(format!("an empty {} mapping insert", kind.name)))
}

/// Inserts every record with multi-row INSERTs (`ON CONFLICT DO NOTHING`); each row's
/// creation time when every row went in, `None` as soon as one did not (the caller then
/// rolls back).
async fn insert_all_new<C: ConnectionTrait>(
    txn: &C,
    records: &[Record],
) -> Result<Option<Vec<DateTime<Utc>>>, MappingError> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let kind = records[start].kind;
        let end = records[start..]
            .iter()
            .position(|r| !std::ptr::eq(r.kind, kind))
            .map_or(records.len(), |n| start + n);
        runs.extend(power_of_two_chunks(&records[start..end], ROWS_PER_INSERT));
        start = end;
    }
    let mut stamps = Vec::with_capacity(records.len());
    for run in runs {
        let rows = run
            .iter()
            .map(|record| {
                // One creation time per row, strictly increasing, as single creates stamp them.
                let when_created = creation_time();
                stamps.push(when_created);
                record.insert_values(when_created)
            })
            .collect();
        let insert = insert_rows(txn.get_database_backend(), run[0].kind, rows)?;
        if txn.execute_raw(insert).await?.rows_affected() != run.len() as u64 {
            return Ok(None);
        }
    }
    Ok(Some(stamps))
}

/// A service's mappings: one database, any number of kinds.
#[derive(Clone, Debug)]
pub struct MappingStore {
    db: Db,
}

impl MappingStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates one mapping. Identical re-creates succeed without change; a clash on the DPS
    /// id or (for a unique NOMIS key) the NOMIS id is a [`MappingError::Duplicate`].
    pub async fn create<M: Mapping>(&self, m: &M) -> Result<Created, MappingError> {
        let record = Record::of(m)?;
        self.create_all(std::slice::from_ref(&record))
            .await?
            .first()
            .copied()
            .ok_or_else(|| MappingError::Corrupt("a create reported no outcome".into()))
    }

    /// Creates several mappings, of any kinds, all or none (an aggregate such as a charge
    /// with its hearings and punishments). Each record behaves as in [`Self::create`];
    /// the first duplicate rolls the whole set back.
    pub async fn create_all(&self, records: &[Record]) -> Result<Vec<Created>, MappingError> {
        for _ in 0..CREATE_ATTEMPTS {
            match self.try_create_all(records).await {
                // Not expected with ON CONFLICT DO NOTHING, but if a backend reports an insert
                // race as a violation it is still a 409 (or, when the winner is the same
                // mapping, a retry that finds it), never a 500.
                Err(MappingError::Db(tandem_platform::db::DbError::Query(e)))
                    if is_unique_violation(&e) =>
                {
                    if let Some(clash) = self.differing_clash(records).await? {
                        return Err(clash);
                    }
                }
                other => return other,
            }
        }
        match records.first() {
            Some(record) => Err(duplicate(record.kind, None, record)),
            None => Ok(Vec::new()),
        }
    }

    async fn try_create_all(&self, records: &[Record]) -> Result<Vec<Created>, MappingError> {
        // The common case, a set of new mappings, costs one multi-row INSERT per run of one
        // kind; only when a row did not go in is the set redone record by record, to tell
        // an identical re-create from a clash.
        if records.len() > 1 {
            let txn = self.db.begin_write().await?;
            if let Some(stamps) = insert_all_new(&txn, records).await? {
                txn.commit().await?;
                return Ok(stamps
                    .into_iter()
                    .map(|when_created| Created::Inserted { when_created })
                    .collect());
            }
            // Dropping the transaction rolls the partial set back.
        }
        let txn = self.db.begin_write().await?;
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            outcomes.push(insert_one(&txn, record).await?);
        }
        txn.commit().await?;
        Ok(outcomes)
    }

    /// After a failed insert: the first record a different committed mapping clashes with.
    async fn differing_clash(
        &self,
        records: &[Record],
    ) -> Result<Option<MappingError>, MappingError> {
        for record in records {
            if let Some((existing, false)) = find_clash(self.db.conn(), record).await? {
                return Ok(Some(duplicate(record.kind, Some(existing), record)));
            }
        }
        Ok(None)
    }

    /// The mapping with this DPS id.
    pub async fn get_by_dps<M: Mapping>(
        &self,
        key: &[KeyValue],
    ) -> Result<Option<M>, MappingError> {
        first_by(self.db.conn(), M::KIND, M::KIND.dps_key, key)
            .await?
            .map(from_obj)
            .transpose()
    }

    /// The mapping with this NOMIS id (the first by DPS id where the key is not unique).
    pub async fn get_by_nomis<M: Mapping>(
        &self,
        key: &[KeyValue],
    ) -> Result<Option<M>, MappingError> {
        first_by(self.db.conn(), M::KIND, M::KIND.nomis_key, key)
            .await?
            .map(from_obj)
            .transpose()
    }

    /// Like [`Self::get_by_dps`], but absent is a `NotFound` naming the key.
    pub async fn require_by_dps<M: Mapping>(&self, key: &[KeyValue]) -> Result<M, MappingError> {
        self.get_by_dps(key).await?.ok_or_else(|| {
            MappingError::NotFound(format!(
                "{} mapping with {} not found",
                M::KIND.name,
                M::KIND.describe_key(M::KIND.dps_key, key)
            ))
        })
    }

    /// Like [`Self::get_by_nomis`], but absent is a `NotFound` naming the key.
    pub async fn require_by_nomis<M: Mapping>(&self, key: &[KeyValue]) -> Result<M, MappingError> {
        self.get_by_nomis(key).await?.ok_or_else(|| {
            MappingError::NotFound(format!(
                "{} mapping with {} not found",
                M::KIND.name,
                M::KIND.describe_key(M::KIND.nomis_key, key)
            ))
        })
    }

    /// A page of the `MIGRATED` mappings labelled with `migration_id`; `totalElements` is
    /// what a migration reports as its migrated count.
    pub async fn page_by_migration<M: Mapping>(
        &self,
        migration_id: &str,
        request: &PageRequest,
    ) -> Result<Page<M>, MappingError> {
        let kind = M::KIND;
        let cond = Cond::all()
            .add(Expr::col(LABEL).eq(migration_id))
            .add(Expr::col(MAPPING_TYPE).eq(MappingType::Migrated.as_str()));
        // Count and page from one snapshot so the numbers agree with the content.
        let txn = self.db.begin_read().await?;
        let mut count = Query::select();
        count
            .expr_as(Expr::col(Asterisk).count(), "n")
            .from(kind.table)
            .cond_where(cond.clone());
        let total: i64 = match txn.query_one(&count).await? {
            Some(row) => row.try_get("", "n").map_err(|e| corrupt(kind, e))?,
            None => 0,
        };
        let mut q = select_all(kind);
        q.cond_where(cond);
        if let Some((column, order)) = &request.sort {
            q.order_by(*column, order.clone());
        }
        for f in kind.dps_key {
            q.order_by(f.column, Order::Asc);
        }
        q.limit(request.size).offset(request.offset());
        let content = query_objs(&txn, kind, &q)
            .await?
            .into_iter()
            .map(from_obj)
            .collect::<Result<Vec<M>, _>>()?;
        txn.commit().await?;
        Ok(Page::new(
            content,
            request,
            u64::try_from(total).unwrap_or(0),
        ))
    }

    /// The most recently created `MIGRATED` mapping: where an interrupted migration got to.
    pub async fn latest_migrated<M: Mapping>(&self) -> Result<Option<M>, MappingError> {
        let kind = M::KIND;
        let mut q = select_all(kind);
        q.and_where(Expr::col(MAPPING_TYPE).eq(MappingType::Migrated.as_str()))
            .order_by(WHEN_CREATED, Order::Desc);
        for f in kind.dps_key {
            q.order_by(f.column, Order::Desc);
        }
        q.limit(1);
        query_objs(self.db.conn(), kind, &q)
            .await?
            .into_iter()
            .next()
            .map(from_obj)
            .transpose()
    }

    /// Deletes the mapping with this DPS id; true when there was one.
    pub async fn delete_by_dps(
        &self,
        kind: &MappingKind,
        key: &[KeyValue],
    ) -> Result<bool, MappingError> {
        let mut q = Query::delete();
        q.from_table(kind.table)
            .cond_where(key_condition(kind.dps_key, key)?);
        Ok(self.db.conn().execute(&q).await?.rows_affected() > 0)
    }

    /// Deletes every mapping of `kind`, or only the migrated ones (leaving sync-created
    /// mappings in place so a migration can be re-run during two-way sync).
    pub async fn delete_all(
        &self,
        kind: &MappingKind,
        only_migrated: bool,
    ) -> Result<u64, MappingError> {
        let mut q = Query::delete();
        q.from_table(kind.table);
        if only_migrated {
            q.and_where(Expr::col(MAPPING_TYPE).eq(MappingType::Migrated.as_str()));
        }
        Ok(self.db.conn().execute(&q).await?.rows_affected())
    }
}

/// Rewrites the stored mapping whose DPS id is `dps_key` to `new`'s keys, inside the
/// caller's transaction (label, type and creation time are kept). A clash with another
/// mapping is a `Duplicate` naming it; the caller rolls back.
pub async fn rewrite<M: Mapping, C: ConnectionTrait>(
    conn: &C,
    dps_key: &[KeyValue],
    new: &M,
) -> Result<(), MappingError> {
    let kind = M::KIND;
    let record = Record::of(new)?;
    let new_dps = record.dps_key()?;
    let new_nomis = record.nomis_key()?;
    let own = key_json(dps_key);
    if key_json(&new_dps) != own
        && let Some(existing) = first_by(conn, kind, kind.dps_key, &new_dps).await?
    {
        return Err(duplicate(kind, Some(existing), &record));
    }
    if kind.nomis_key_unique
        && let Some(existing) = first_by(conn, kind, kind.nomis_key, &new_nomis).await?
        && key_of(kind.dps_key, &existing) != own
    {
        return Err(duplicate(kind, Some(existing), &record));
    }
    let mut q = Query::update();
    q.table(kind.table);
    for f in kind.key_fields() {
        let v = json_to_key(f, record.obj.get(f.json))?;
        q.value(f.column, to_db(f, &v)?);
    }
    q.cond_where(key_condition(kind.dps_key, dps_key)?);
    match conn.execute(&q).await {
        Ok(res) if res.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(MappingError::NotFound(format!(
            "{} mapping with {} not found",
            kind.name,
            kind.describe_key(kind.dps_key, dps_key)
        ))),
        // A concurrent writer took the key between the check and the update.
        Err(e) if is_unique_violation(&e) => Err(duplicate(kind, None, &record)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_strictly_increase() {
        let mut last = creation_time();
        for _ in 0..10_000 {
            let next = creation_time();
            assert!(next > last, "{next} after {last}");
            assert_eq!(
                next.timestamp_subsec_nanos() % 1000,
                0,
                "microsecond precision"
            );
            last = next;
        }
    }

    #[test]
    fn insert_does_nothing_on_any_conflict() {
        let kind = &crate::non_associations::KIND;
        let row = || vec![("non_association_id", sea_orm::Value::from(1i64))];
        // No conflict target: every unique constraint (DPS key and NOMIS key) is covered.
        for backend in [sea_orm::DbBackend::Postgres, sea_orm::DbBackend::Sqlite] {
            let insert = insert_rows(backend, kind, vec![row(), row()]).expect("two rows");
            let sql = insert.sql.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(sql.ends_with(") ON CONFLICT DO NOTHING"), "{sql}");
        }
        // Rows of different shapes are refused, not misaligned.
        let mut longer = row();
        longer.push(("label", sea_orm::Value::from("x")));
        assert!(matches!(
            insert_rows(sea_orm::DbBackend::Sqlite, kind, vec![row(), longer]),
            Err(MappingError::Corrupt(_))
        ));
    }

    #[test]
    fn keys_are_checked_against_the_column_types() {
        let text = Field::new("c", "c", ColType::Text(3));
        assert!(to_db(&text, &KeyValue::Text("abcd".into())).is_err());
        assert!(to_db(&text, &KeyValue::Text(String::new())).is_err());
        assert!(to_db(&text, &KeyValue::Int(1)).is_err());
        let int = Field::new("i", "i", ColType::Int);
        assert!(to_db(&int, &KeyValue::Int(i64::from(i32::MAX) + 1)).is_err());
        assert!(to_db(&int, &KeyValue::Int(5)).is_ok());
        assert!(matches!(
            json_to_key(&int, Some(&Value::from("5"))),
            Err(MappingError::Invalid(_))
        ));
        assert!(
            matches!(json_to_key(&int, None), Err(MappingError::Invalid(m)) if m == "i: required")
        );
    }
}
