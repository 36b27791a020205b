//! The work ledger: one `migration_history` row per migration and one `migration_work` row
//! per NOMIS entity. Every count the operators see is read from here.
//!
//! Written as portable SQL with `$N` placeholders: claiming and settling work are the hot
//! statements of a migration (DESIGN §4).

use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use sea_orm_migration::prelude::*;
use tandem_platform::db::{Db, DbError};

/// Where a migration is in its life (`STARTED → COMPLETED | CANCELLED_REQUESTED → CANCELLED`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MigrationStatus {
    Started,
    Completed,
    CancelledRequested,
    Cancelled,
}

impl MigrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Completed => "COMPLETED",
            Self::CancelledRequested => "CANCELLED_REQUESTED",
            Self::Cancelled => "CANCELLED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "STARTED" => Self::Started,
            "COMPLETED" => Self::Completed,
            "CANCELLED_REQUESTED" => Self::CancelledRequested,
            "CANCELLED" => Self::Cancelled,
            _ => return None,
        })
    }
    /// Still has work that may run.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Started | Self::CancelledRequested)
    }
}

/// The state of one entity in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum WorkState {
    Pending = 0,
    InFlight = 1,
    Done = 2,
    Failed = 3,
    /// Failed, then removed from the dead-letter list by an operator: still counted as failed.
    Discarded = 4,
}

#[derive(DeriveIden)]
enum MigrationHistory {
    Table,
    MigrationId,
    MigrationType,
    Status,
    Filter,
    EstimatedRecordCount,
    WhenStartedMs,
    WhenEndedMs,
    Cursor,
    EnumerationDone,
}

#[derive(DeriveIden)]
enum MigrationWork {
    Table,
    Id,
    MigrationId,
    EntityKey,
    State,
    Attempts,
    Records,
    LastError,
    NotBeforeMs,
    UpdatedMs,
}

struct CreateLedger;

impl MigrationName for CreateLedger {
    fn name(&self) -> &str {
        "m0001_migration_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLedger {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(MigrationHistory::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(MigrationHistory::MigrationId)
                        .string_len(40)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(MigrationHistory::MigrationType)
                        .string_len(40)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationHistory::Status)
                        .string_len(24)
                        .not_null(),
                )
                .col(ColumnDef::new(MigrationHistory::Filter).text().not_null())
                .col(
                    ColumnDef::new(MigrationHistory::EstimatedRecordCount)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationHistory::WhenStartedMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationHistory::WhenEndedMs)
                        .big_integer()
                        .null(),
                )
                .col(ColumnDef::new(MigrationHistory::Cursor).text().null())
                .col(
                    ColumnDef::new(MigrationHistory::EnumerationDone)
                        .boolean()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("migration_history_type_started")
                .table(MigrationHistory::Table)
                .col(MigrationHistory::MigrationType)
                .col(MigrationHistory::WhenStartedMs)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(MigrationWork::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(MigrationWork::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(MigrationWork::MigrationId)
                        .string_len(40)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationWork::EntityKey)
                        .string_len(200)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationWork::State)
                        .small_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(MigrationWork::Attempts).integer().not_null())
                .col(ColumnDef::new(MigrationWork::Records).integer().not_null())
                .col(ColumnDef::new(MigrationWork::LastError).text().null())
                .col(
                    ColumnDef::new(MigrationWork::NotBeforeMs)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(MigrationWork::UpdatedMs)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("migration_work_entity")
                .table(MigrationWork::Table)
                .col(MigrationWork::MigrationId)
                .col(MigrationWork::EntityKey)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("migration_work_claim")
                .table(MigrationWork::Table)
                .col(MigrationWork::MigrationId)
                .col(MigrationWork::State)
                .col(MigrationWork::Id)
                .to_owned(),
        )
        .await
    }
}

/// Replaces the index on `(migration_id, state, id)` with partial indexes, one per state
/// that work is looked up by (pending, in flight, failed), without the state column.
///
/// With the state in the key every change of state moved the row's entry within the
/// index (a delete and an insert), twice per entity; now a claim moves it from the
/// pending index to the in-flight one and a settlement only drops it, and done
/// entities, the bulk of a migration, are in no state index at all. Queries name the
/// state as a literal so that the planner can prove a partial index applies.
struct PartialStateIndexes;

/// The states with a partial index of their own, and the index names.
const STATE_INDEXES: [(WorkState, &str); 3] = [
    (WorkState::Pending, "migration_work_pending"),
    (WorkState::InFlight, "migration_work_in_flight"),
    (WorkState::Failed, "migration_work_failed"),
];

impl MigrationName for PartialStateIndexes {
    fn name(&self) -> &str {
        "m0002_migration_work_state_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PartialStateIndexes {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("migration_work_claim")
                .table(MigrationWork::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        for (state, name) in STATE_INDEXES {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(MigrationWork::Table)
                    .col(MigrationWork::MigrationId)
                    .col(MigrationWork::Id)
                    .and_where(Expr::col(MigrationWork::State).eq(state as i16))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// The ledger's schema, for the hosting service's migrator.
pub struct LedgerMigrator;

impl MigratorTrait for LedgerMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}

/// The ledger's migrations, to include in a hosting service's own migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateLedger), Box::new(PartialStateIndexes)]
}

/// Work ids per settling UPDATE (well inside every backend's parameter limit).
const SETTLE_IDS_PER_STATEMENT: usize = 1024;

/// One migration as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRow {
    pub migration_id: String,
    pub migration_type: String,
    pub status: MigrationStatus,
    pub filter: String,
    pub estimated_record_count: i64,
    pub when_started_ms: i64,
    pub when_ended_ms: Option<i64>,
    pub cursor: Option<String>,
    pub enumeration_done: bool,
}

/// Exact counts for one migration, read from its work rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkCounts {
    pub pending: i64,
    pub in_flight: i64,
    pub done: i64,
    pub failed: i64,
    /// DPS records written (an entity may write several, or none when already migrated).
    pub records_migrated: i64,
}

/// What [`Ledger::insert_unless_active`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Inserted,
    /// Another migration has the id (ids are timestamps): try the next one.
    IdTaken,
    /// A migration of the type (this id) is still active: nothing was recorded.
    TypeActive(String),
}

/// A claimed entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub work_id: i64,
    pub key: String,
    pub attempts: i32,
}

/// How a claimed entity ended this attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Done { records: u32 },
    RetryAfter { not_before_ms: i64, error: String },
    Failed { error: String },
}

/// A failed entity on the dead-letter list.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEntity {
    pub migration_id: String,
    pub key: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub failed_at_ms: i64,
}

const HISTORY_COLUMNS: &str = "migration_id, migration_type, status, filter, estimated_record_count, \
     when_started_ms, when_ended_ms, cursor, enumeration_done";

fn history_row(r: &QueryResult) -> Result<MigrationRow, DbErr> {
    let status: String = r.try_get("", "status")?;
    Ok(MigrationRow {
        migration_id: r.try_get("", "migration_id")?,
        migration_type: r.try_get("", "migration_type")?,
        status: MigrationStatus::parse(&status)
            .ok_or_else(|| DbErr::Custom(format!("unknown migration status {status}")))?,
        filter: r.try_get("", "filter")?,
        estimated_record_count: r.try_get("", "estimated_record_count")?,
        when_started_ms: r.try_get("", "when_started_ms")?,
        when_ended_ms: r.try_get("", "when_ended_ms")?,
        cursor: r.try_get("", "cursor")?,
        enumeration_done: r.try_get("", "enumeration_done")?,
    })
}

/// The ledger on a service's database.
#[derive(Clone, Debug)]
pub struct Ledger {
    db: Db,
}

impl Ledger {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn query<C: ConnectionTrait>(
        c: &C,
        db: &Db,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, DbError> {
        Ok(c.query_all_raw(db.statement(sql, values)).await?)
    }

    async fn exec<C: ConnectionTrait>(
        c: &C,
        db: &Db,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, DbError> {
        Ok(c.execute_raw(db.statement(sql, values))
            .await?
            .rows_affected())
    }

    /// Records a new migration unless one of its type is still active, as one step: the
    /// check and the insert run in one write transaction, which SQLite's write lock and,
    /// on PostgreSQL, an advisory lock per type make one-at-a-time across every process
    /// on the ledger. Checked apart, two starts at once (a double-click while NOMIS
    /// counts for seconds) both found none active and both started.
    pub async fn insert_unless_active(&self, row: &MigrationRow) -> Result<Inserted, DbError> {
        let txn = self.db.begin_write().await?;
        if !self.db.is_sqlite() {
            Self::exec(
                &txn,
                &self.db,
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                vec![format!("tandem.migration_start.{}", row.migration_type).into()],
            )
            .await?;
        }
        let active = Self::query(
            &txn,
            &self.db,
            "SELECT migration_id FROM migration_history WHERE migration_type = $1 \
             AND status IN ('STARTED', 'CANCELLED_REQUESTED') LIMIT 1",
            vec![row.migration_type.clone().into()],
        )
        .await?;
        if let Some(r) = active.first() {
            return Ok(Inserted::TypeActive(r.try_get("", "migration_id")?));
        }
        let res = Self::exec(
            &txn,
            &self.db,
            &format!("INSERT INTO migration_history ({HISTORY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            vec![
                row.migration_id.clone().into(),
                row.migration_type.clone().into(),
                row.status.as_str().into(),
                row.filter.clone().into(),
                row.estimated_record_count.into(),
                row.when_started_ms.into(),
                row.when_ended_ms.into(),
                row.cursor.clone().into(),
                row.enumeration_done.into(),
            ],
        )
        .await;
        match res {
            Ok(_) => {
                txn.commit().await?;
                Ok(Inserted::Inserted)
            }
            Err(DbError::Query(e)) if tandem_platform::db::is_unique_violation(&e) => {
                Ok(Inserted::IdTaken)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, migration_id: &str) -> Result<Option<MigrationRow>, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            &format!("SELECT {HISTORY_COLUMNS} FROM migration_history WHERE migration_id = $1"),
            vec![migration_id.into()],
        )
        .await?;
        rows.first()
            .map(history_row)
            .transpose()
            .map_err(DbError::from)
    }

    /// Every migration of a type, newest first.
    pub async fn list(&self, migration_type: &str) -> Result<Vec<MigrationRow>, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            &format!(
                "SELECT {HISTORY_COLUMNS} FROM migration_history WHERE migration_type = $1 \
                 ORDER BY when_started_ms DESC, migration_id DESC"
            ),
            vec![migration_type.into()],
        )
        .await?;
        rows.iter()
            .map(history_row)
            .collect::<Result<_, _>>()
            .map_err(DbError::from)
    }

    /// Migrations that may still have work to run (any type).
    pub async fn active(&self) -> Result<Vec<MigrationRow>, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            &format!(
                "SELECT {HISTORY_COLUMNS} FROM migration_history WHERE status IN ('STARTED', 'CANCELLED_REQUESTED') \
                 ORDER BY when_started_ms"
            ),
            vec![],
        )
        .await?;
        rows.iter()
            .map(history_row)
            .collect::<Result<_, _>>()
            .map_err(DbError::from)
    }

    /// Moves a migration from one status to another; `false` if it was not in `from`.
    pub async fn transition(
        &self,
        migration_id: &str,
        from: &[MigrationStatus],
        to: MigrationStatus,
        ended_ms: Option<i64>,
    ) -> Result<bool, DbError> {
        let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let n = Self::exec(
            self.db.conn(),
            &self.db,
            &format!(
                "UPDATE migration_history SET status = $1, when_ended_ms = $2 \
                 WHERE migration_id = $3 AND status IN ({})",
                list.join(", ")
            ),
            vec![to.as_str().into(), ended_ms.into(), migration_id.into()],
        )
        .await?;
        Ok(n == 1)
    }

    /// Marks a started migration COMPLETED if it has no pending or in-flight work, checking
    /// and marking as one step. Checked apart, a dead-letter retry landing between the two
    /// (it re-pends work in a migration it sees STARTED) left that work pending in a
    /// COMPLETED migration, which nothing runs, and off the dead-letter list. On
    /// PostgreSQL the history row is locked first, as the retry updates it first.
    pub async fn complete_if_finished(
        &self,
        migration_id: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        // Idle workers ask this while retries wait out their back-off: a read answers
        // them without taking the write lock.
        if Self::open_work_in(self.db.conn(), &self.db, migration_id).await? {
            return Ok(false);
        }
        let txn = self.db.begin_write().await?;
        let lock = if self.db.is_sqlite() {
            ""
        } else {
            " FOR UPDATE"
        };
        let status = Self::query(
            &txn,
            &self.db,
            &format!("SELECT status FROM migration_history WHERE migration_id = $1{lock}"),
            vec![migration_id.into()],
        )
        .await?;
        let started = match status.first() {
            Some(r) => r.try_get::<String>("", "status")? == MigrationStatus::Started.as_str(),
            None => false,
        };
        if !started || Self::open_work_in(&txn, &self.db, migration_id).await? {
            return Ok(false);
        }
        let n = Self::exec(
            &txn,
            &self.db,
            "UPDATE migration_history SET status = 'COMPLETED', when_ended_ms = $1 \
             WHERE migration_id = $2 AND status = 'STARTED'",
            vec![now_ms.into(), migration_id.into()],
        )
        .await?;
        txn.commit().await?;
        Ok(n == 1)
    }

    /// Adds the next page of keys and moves the cursor, only if nobody else moved it first
    /// (replicas may enumerate the same migration). `Ok(false)`: lost the race; reload.
    pub async fn enqueue_page(
        &self,
        migration_id: &str,
        expected_cursor: Option<&str>,
        keys: &[String],
        exhausted: bool,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let txn = self.db.begin_write().await?;
        let new_cursor = keys.last().map(String::as_str).or(expected_cursor);
        let moved = Self::exec(
            &txn,
            &self.db,
            "UPDATE migration_history SET cursor = $1, enumeration_done = $2 \
             WHERE migration_id = $3 AND COALESCE(cursor, '') = $4 AND enumeration_done = $5",
            vec![
                new_cursor.map(str::to_string).into(),
                exhausted.into(),
                migration_id.into(),
                expected_cursor.unwrap_or("").into(),
                false.into(),
            ],
        )
        .await?;
        if moved != 1 {
            txn.rollback().await.map_err(DbError::from)?;
            return Ok(false);
        }
        for chunk in tandem_platform::db::power_of_two_chunks(keys, 256) {
            let mut sql = String::from(
                "INSERT INTO migration_work (migration_id, entity_key, state, attempts, records, last_error, not_before_ms, updated_ms) VALUES ",
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2 + 1);
            values.push(migration_id.into());
            values.push(now_ms.into());
            for (i, key) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("($1, ${}, 0, 0, 0, NULL, 0, $2)", i + 3));
                values.push(key.clone().into());
            }
            sql.push_str(" ON CONFLICT (migration_id, entity_key) DO NOTHING");
            Self::exec(&txn, &self.db, &sql, values).await?;
        }
        txn.commit().await.map_err(DbError::from)?;
        Ok(true)
    }

    /// Claims up to `limit` pending entities whose back-off has passed, leasing them until `lease_until_ms`.
    pub async fn claim(
        &self,
        migration_id: &str,
        limit: usize,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<Claim>, DbError> {
        let lock = if self.db.is_sqlite() {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        let sql = format!(
            "UPDATE migration_work SET state = 1, attempts = attempts + 1, not_before_ms = $1, updated_ms = $2 \
             WHERE id IN (SELECT id FROM migration_work WHERE migration_id = $3 AND state = 0 AND not_before_ms <= $2 \
             ORDER BY id LIMIT $4{lock}) \
             RETURNING id, entity_key, attempts"
        );
        let txn = self.db.begin_write().await?;
        let rows = Self::query(
            &txn,
            &self.db,
            &sql,
            vec![
                lease_until_ms.into(),
                now_ms.into(),
                migration_id.into(),
                (limit as i64).into(),
            ],
        )
        .await?;
        txn.commit().await.map_err(DbError::from)?;
        let mut claims = rows
            .iter()
            .map(|r| {
                Ok(Claim {
                    work_id: r.try_get("", "id")?,
                    key: r.try_get("", "entity_key")?,
                    attempts: r.try_get("", "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        claims.sort_by_key(|c| c.work_id);
        Ok(claims)
    }

    /// Records how each claimed entity ended, in one transaction. Only rows still leased
    /// (in flight) are touched, so a settlement after the lease was taken over is dropped.
    pub async fn settle(&self, outcomes: &[(i64, Settlement)], now_ms: i64) -> Result<(), DbError> {
        let txn = self.db.begin_write().await?;
        // Done entities, the bulk of every batch, settle in one statement per record count
        // (a pair migrates one or two records, so a batch needs one or two statements).
        let mut done: std::collections::BTreeMap<u32, Vec<i64>> = Default::default();
        for (work_id, s) in outcomes {
            if let Settlement::Done { records } = s {
                done.entry(*records).or_default().push(*work_id);
            }
        }
        for (records, ids) in done {
            for chunk in ids.chunks(SETTLE_IDS_PER_STATEMENT) {
                let chunk = tandem_platform::db::padded_in_list(chunk.to_vec());
                let placeholders: Vec<String> =
                    (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "UPDATE migration_work SET state = 2, records = $1, last_error = NULL, updated_ms = $2 \
                     WHERE state = 1 AND id IN ({})",
                    placeholders.join(", ")
                );
                let mut values: Vec<Value> = vec![(records as i32).into(), now_ms.into()];
                values.extend(chunk.iter().map(|id| Value::from(*id)));
                Self::exec(&txn, &self.db, &sql, values).await?;
            }
        }
        for (work_id, s) in outcomes {
            let (sql, values): (&str, Vec<Value>) = match s {
                Settlement::Done { .. } => continue,
                Settlement::RetryAfter {
                    not_before_ms,
                    error,
                } => (
                    "UPDATE migration_work SET state = 0, not_before_ms = $1, last_error = $2, updated_ms = $3 WHERE id = $4 AND state = 1",
                    vec![
                        (*not_before_ms).into(),
                        error.clone().into(),
                        now_ms.into(),
                        (*work_id).into(),
                    ],
                ),
                Settlement::Failed { error } => (
                    "UPDATE migration_work SET state = 3, last_error = $1, updated_ms = $2 WHERE id = $3 AND state = 1",
                    vec![error.clone().into(), now_ms.into(), (*work_id).into()],
                ),
            };
            Self::exec(&txn, &self.db, sql, values).await?;
        }
        txn.commit().await.map_err(DbError::from)
    }

    /// Returns entities whose lease expired (their worker died) to pending.
    pub async fn release_expired(&self, migration_id: &str, now_ms: i64) -> Result<u64, DbError> {
        Self::exec(
            self.db.conn(),
            &self.db,
            "UPDATE migration_work SET state = 0, not_before_ms = 0, updated_ms = $1 \
             WHERE migration_id = $2 AND state = 1 AND not_before_ms < $1",
            vec![now_ms.into(), migration_id.into()],
        )
        .await
    }

    /// Whether `migration_id` has pending or in-flight work, read through `c`.
    async fn open_work_in<C: ConnectionTrait>(
        c: &C,
        db: &Db,
        migration_id: &str,
    ) -> Result<bool, DbError> {
        for state in [WorkState::Pending, WorkState::InFlight] {
            let rows = Self::query(
                c,
                db,
                &format!(
                    "SELECT id FROM migration_work WHERE migration_id = $1 AND state = {} LIMIT 1",
                    state as i16
                ),
                vec![migration_id.into()],
            )
            .await?;
            if !rows.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn count_in_state(
        &self,
        migration_id: &str,
        state: WorkState,
    ) -> Result<i64, DbError> {
        // The state as a literal: a partial index applies only to a constant.
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            &format!(
                "SELECT COUNT(*) AS n FROM migration_work WHERE migration_id = $1 AND state = {}",
                state as i16
            ),
            vec![migration_id.into()],
        )
        .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Exact counts, from the work rows.
    pub async fn counts(&self, migration_id: &str) -> Result<WorkCounts, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            "SELECT state, COUNT(*) AS n, COALESCE(SUM(records), 0) AS r FROM migration_work \
             WHERE migration_id = $1 GROUP BY state",
            vec![migration_id.into()],
        )
        .await?;
        let mut c = WorkCounts::default();
        for r in rows {
            let state: i16 = r.try_get("", "state")?;
            let n: i64 = r.try_get("", "n")?;
            let records: i64 = r.try_get("", "r")?;
            match state {
                0 => c.pending = n,
                1 => c.in_flight = n,
                2 => {
                    c.done = n;
                    c.records_migrated = records;
                }
                _ => c.failed += n,
            }
        }
        Ok(c)
    }

    /// Failed entities of a migration type (the migration's dead-letter list), oldest first.
    pub async fn failed(
        &self,
        migration_type: &str,
        limit: usize,
    ) -> Result<Vec<FailedEntity>, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            "SELECT w.migration_id, w.entity_key, w.attempts, w.last_error, w.updated_ms FROM migration_work w \
             JOIN migration_history h ON h.migration_id = w.migration_id \
             WHERE h.migration_type = $1 AND w.state = 3 ORDER BY w.id LIMIT $2",
            vec![migration_type.into(), (limit as i64).into()],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedEntity {
                    migration_id: r.try_get("", "migration_id")?,
                    key: r.try_get("", "entity_key")?,
                    attempts: r.try_get("", "attempts")?,
                    error: r.try_get("", "last_error")?,
                    failed_at_ms: r.try_get("", "updated_ms")?,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(DbError::from)
    }

    pub async fn failed_count(&self, migration_type: &str) -> Result<i64, DbError> {
        let rows = Self::query(
            self.db.conn(),
            &self.db,
            "SELECT COUNT(*) AS n FROM migration_work w JOIN migration_history h ON h.migration_id = w.migration_id \
             WHERE h.migration_type = $1 AND w.state = 3",
            vec![migration_type.into()],
        )
        .await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Takes failed entities off the dead-letter list (they stay counted as failed).
    pub async fn discard_failed(&self, migration_type: &str, now_ms: i64) -> Result<u64, DbError> {
        Self::exec(
            self.db.conn(),
            &self.db,
            "UPDATE migration_work SET state = 4, updated_ms = $1 WHERE state = 3 AND migration_id IN \
             (SELECT migration_id FROM migration_history WHERE migration_type = $2)",
            vec![now_ms.into(), migration_type.into()],
        )
        .await
    }

    /// Puts failed entities back to pending with fresh attempts and re-opens their migrations
    /// (running or completed ones only). Returns the migrations re-opened.
    pub async fn retry_failed(
        &self,
        migration_type: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, DbError> {
        let txn = self.db.begin_write().await?;
        let rows = Self::query(
            &txn,
            &self.db,
            "SELECT DISTINCT w.migration_id FROM migration_work w JOIN migration_history h ON h.migration_id = w.migration_id \
             WHERE h.migration_type = $1 AND w.state = 3",
            vec![migration_type.into()],
        )
        .await?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<String>("", "migration_id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut reopened = Vec::with_capacity(ids.len());
        for id in ids {
            // Only a migration that runs work can take its dead letters back: a cancelled
            // one (or one being cancelled) would leave them pending where nothing runs
            // them, off the dead-letter list. Its dead letters stay listed; a new
            // migration migrates them. The update locks the history row, so a cancel
            // lands either before (nothing re-opened) or after (as for any pending work).
            let running = Self::exec(
                &txn,
                &self.db,
                "UPDATE migration_history SET status = 'STARTED', when_ended_ms = NULL \
                 WHERE migration_id = $1 AND status IN ('STARTED', 'COMPLETED')",
                vec![id.clone().into()],
            )
            .await?;
            if running == 0 {
                continue;
            }
            Self::exec(
                &txn,
                &self.db,
                "UPDATE migration_work SET state = 0, attempts = 0, not_before_ms = 0, updated_ms = $1 \
                 WHERE migration_id = $2 AND state = 3",
                vec![now_ms.into(), id.clone().into()],
            )
            .await?;
            reopened.push(id);
        }
        txn.commit().await.map_err(DbError::from)?;
        Ok(reopened)
    }
}
