//! One database per service: a SQLite file (embedded default) or a PostgreSQL schema.
//!
//! One code path serves both through SeaORM's runtime-dispatched connection. SQLite is
//! tuned for one writer (WAL, `synchronous=NORMAL`, write transactions begun `IMMEDIATE`
//! so they never fail on upgrade). Its write transactions all go through one dedicated
//! connection: SQLite admits one writer at a time anyway, and waiting for that connection
//! in the pool's queue hands the lock over the moment it is free, where SQLite's busy
//! handler sleeps in steps of up to 100 ms; and as the only connection that changes the
//! file, the writer keeps its page cache between transactions (a connection's cache is
//! dropped whenever another one has written).

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqlErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::config::DbTarget;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(DbErr),
    #[error("schema migration failed: {0}")]
    Migration(String),
}

impl From<DbErr> for DbError {
    fn from(e: DbErr) -> Self {
        match e {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => DbError::Unavailable(e.to_string()),
            other => DbError::Query(other),
        }
    }
}

/// Batch statements with a list of values (`IN (…)`, multi-row `VALUES`) are only cheap
/// when their SQL repeats: sqlx caches prepared statements by SQL text, so a list of every
/// length would be re-prepared each time and fill each connection's cache with one large
/// statement per length. These two helpers keep the number of distinct shapes to a
/// handful (powers of two).
///
/// `values` padded to the next power of two by repeating its last element: the same
/// `IN (…)` answer with one statement shape per power of two.
pub fn padded_in_list<T: Clone>(mut values: Vec<T>) -> Vec<T> {
    if let Some(last) = values.last().cloned() {
        let target = values.len().next_power_of_two();
        values.resize(target, last);
    }
    values
}

/// A multi-row `INSERT` into `table` as SQL text with one plain parameter per value, for
/// the batch paths: built through sea-query (an expression per value, each value copied
/// into the statement and copied again out of it) it cost about as much as executing it.
/// `values` holds the rows one after another, each in `columns` order; `tail` follows
/// the VALUES list (`ON CONFLICT …`, `RETURNING …`). `None` when `values` is not a whole
/// number of rows.
pub fn multi_row_insert(
    backend: DbBackend,
    table: &str,
    columns: &[&str],
    values: Vec<sea_orm::Value>,
    tail: &str,
) -> Option<Statement> {
    if columns.is_empty() || values.is_empty() || !values.len().is_multiple_of(columns.len()) {
        return None;
    }
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut sql = format!("INSERT INTO \"{table}\" ({}) VALUES ", quoted.join(", "));
    for (i, _) in values.iter().enumerate() {
        let column = i % columns.len();
        if column == 0 {
            sql.push_str(if i == 0 { "(" } else { "), (" });
        } else {
            sql.push_str(", ");
        }
        match backend {
            DbBackend::Postgres => sql.push_str(&format!("${}", i + 1)),
            _ => sql.push('?'),
        }
    }
    sql.push(')');
    sql.push_str(tail);
    Some(Statement::from_sql_and_values(backend, sql, values))
}

/// Splits `items` into consecutive chunks whose lengths are powers of two, none longer
/// than `max` (rounded down to a power of two): rows for multi-row INSERTs that cannot be
/// padded. A batch of n rows takes at most `n / max + log2(max) + 1` statements.
pub fn power_of_two_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let max = if max.is_power_of_two() {
        max
    } else {
        max.next_power_of_two() / 2
    }
    .max(1);
    let mut chunks = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = if rest.len() >= max {
            max
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (head, tail) = rest.split_at(n);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// True when `e` is a unique-constraint violation: the loser of an insert race.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Rows sqlx may buffer per SQLite query ahead of the reading task.
const SQLITE_ROW_BUFFER: usize = 2048;

/// How long a SQLite write waits for the writer connection (and for the file's lock).
const SQLITE_WRITE_WAIT: Duration = Duration::from_secs(30);

/// WAL pages after which a committing SQLite connection checkpoints (see `connect`).
const SQLITE_AUTOCHECKPOINT_PAGES: &str = "10000";

/// A service's database connection (a pool).
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite only: the one connection [`Db::begin_write`] uses (see the module doc).
    writer: Option<DatabaseConnection>,
    backend: DbBackend,
}

impl Db {
    /// Connects, creating the SQLite file or the PostgreSQL schema when absent.
    pub async fn connect(target: &DbTarget) -> Result<Self, DbError> {
        match target {
            DbTarget::Sqlite { path } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let options = |max: u32| {
                    let mut opts = ConnectOptions::new(url.clone());
                    opts.max_connections(max)
                        .min_connections(1)
                        // A SQLite connection is a file handle: there is no server to lose.
                        // sqlx would otherwise ping it on every checkout, a round trip to
                        // the connection's worker thread in front of every statement (and
                        // it pings on every return to the pool anyway).
                        .test_before_acquire(false)
                        .sqlx_logging(false)
                        .map_sqlx_sqlite_opts(|o| {
                            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                                .busy_timeout(SQLITE_WRITE_WAIT)
                                .foreign_keys(true)
                                // Each row crosses from sqlx's SQLite thread over a bounded
                                // channel; a deep buffer lets a batch read stream without a
                                // thread hand-off per row (the default, 50, ping-pongs).
                                .row_buffer_size(SQLITE_ROW_BUFFER)
                                // A multi-row INSERT keeps a statement journal (to undo
                                // itself alone on a constraint failure); in memory rather
                                // than a temporary file written through syscalls.
                                .pragma("temp_store", "memory")
                                // The estate checkpoints in the background (passive, every
                                // 100 ms); the commit that crosses this size checkpoints
                                // itself, inside the write lock. 1000 pages (the default)
                                // is crossed every few batches of a migration.
                                .pragma("wal_autocheckpoint", SQLITE_AUTOCHECKPOINT_PAGES)
                        });
                    opts
                };
                let conn = Database::connect(options(8)).await?;
                // Waiting writers queue here, in order, for as long as the busy timeout.
                let mut writer = options(1);
                writer.acquire_timeout(SQLITE_WRITE_WAIT);
                let writer = Database::connect(writer).await?;
                Ok(Self {
                    conn,
                    writer: Some(writer),
                    backend: DbBackend::Sqlite,
                })
            }
            DbTarget::Postgres { url, schema } => {
                check_schema_name(schema)?;
                {
                    let mut opts = ConnectOptions::new(url.clone());
                    opts.max_connections(1).sqlx_logging(false);
                    let admin = Database::connect(opts).await?;
                    let res = admin
                        .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                        .await;
                    // Two services starting at once may race to create the same schema.
                    if let Err(e) = res
                        && !e.to_string().contains("already exists")
                        && !is_unique_violation(&e)
                    {
                        return Err(e.into());
                    }
                    admin.close().await.ok();
                }
                let pool: u32 = std::env::var("TANDEM_DB_POOL_SIZE")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5);
                let mut opts = ConnectOptions::new(url.clone());
                opts.max_connections(pool)
                    .min_connections(0)
                    .idle_timeout(Duration::from_secs(10))
                    // sqlx pings a connection when it returns to the pool; a connection
                    // checked out again soon after needs no second ping (a network round
                    // trip per checkout). One idle for a while is still tested first.
                    .test_before_acquire_if_idle_for(Duration::from_secs(2))
                    .sqlx_logging(false)
                    .set_schema_search_path(schema.clone());
                let conn = Database::connect(opts).await?;
                Ok(Self {
                    conn,
                    writer: None,
                    backend: DbBackend::Postgres,
                })
            }
        }
    }

    /// Applies the service's schema migrations (idempotent; run at start-up). On
    /// PostgreSQL they run in one transaction under an advisory lock on the schema, so
    /// replicas starting at once apply them once, one after the other.
    pub async fn migrate<M: MigratorTrait>(&self) -> Result<(), DbError> {
        let failed = |e: DbErr| DbError::Migration(e.to_string());
        if self.backend != DbBackend::Postgres {
            return M::up(&self.conn, None).await.map_err(failed);
        }
        let txn = self.conn.begin().await?;
        txn.execute_unprepared(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tandem_migrate'))",
        )
        .await
        .map_err(failed)?;
        M::up(&txn, None).await.map_err(failed)?;
        txn.commit().await.map_err(failed)
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend == DbBackend::Sqlite
    }

    /// Begins a transaction that will write: `IMMEDIATE` on SQLite so it takes the write
    /// lock up front. Never hold one across a network call.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbError> {
        let opts = TransactionOptions {
            sqlite_transaction_mode: self.is_sqlite().then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let conn = self.writer.as_ref().unwrap_or(&self.conn);
        Ok(conn.begin_with_options(opts).await?)
    }

    /// A plain read transaction (a consistent snapshot for multi-statement reads).
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, DbError> {
        Ok(self.conn.begin().await?)
    }

    /// A statement with `$N` placeholders, for the few hot paths written as raw SQL; on
    /// SQLite they are bound as plain `?` (see [`positional`]).
    pub fn statement(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        if self.backend == DbBackend::Sqlite
            && let Some((sql, values)) = positional(sql, &values)
        {
            return Statement::from_sql_and_values(self.backend, sql, values);
        }
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// Closes the pool (at shutdown), so connections are returned to the server at once.
    pub async fn close(&self) {
        for conn in std::iter::once(&self.conn).chain(&self.writer) {
            if let Err(e) = conn.close_by_ref().await {
                tracing::debug!(error = %e, "closing a database pool");
            }
        }
    }

    /// `SELECT 1`, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.conn.ping().await.map_err(DbError::from)
    }
}

/// `sql`'s `$N` parameters as plain `?`, with `values` in the order they are used (a
/// value used twice is bound twice); `None` when a `$N` names no value.
///
/// SQLite keeps `$N` (and `?N`) parameters in a list of names that binding searches
/// linearly, one search per parameter, so binding n of them costs n²: the ledger's
/// settle of a batch (hundreds of ids) spent most of its binding there. Plain `?`
/// parameters have no names to search.
fn positional(sql: &str, values: &[sea_orm::Value]) -> Option<(String, Vec<sea_orm::Value>)> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut used = Vec::with_capacity(values.len());
    let mut copied = 0;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    let n: usize = sql[i + 1..i + 1 + digits].parse().ok()?;
                    used.push(values.get(n.checked_sub(1)?)?.clone());
                    out.push_str(&sql[copied..i]);
                    out.push('?');
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    Some((out, used))
}

fn check_schema_name(s: &str) -> Result<(), DbError> {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        Ok(())
    } else {
        Err(DbError::Unavailable(format!("invalid schema name '{s}'")))
    }
}

#[cfg(test)]
mod list_shape_tests {
    use super::*;

    #[test]
    fn multi_row_inserts_have_one_parameter_per_value() {
        let values: Vec<sea_orm::Value> = vec![1i64.into(), "a".into(), 2i64.into(), "b".into()];
        let sqlite = multi_row_insert(
            DbBackend::Sqlite,
            "t",
            &["id", "name"],
            values.clone(),
            " RETURNING id",
        )
        .expect("two whole rows");
        assert_eq!(
            sqlite.sql,
            "INSERT INTO \"t\" (\"id\", \"name\") VALUES (?, ?), (?, ?) RETURNING id"
        );
        assert_eq!(sqlite.values.map(|v| v.0), Some(values.clone()));
        let postgres = multi_row_insert(
            DbBackend::Postgres,
            "t",
            &["id", "name"],
            values.clone(),
            "",
        )
        .expect("two whole rows");
        assert_eq!(
            postgres.sql,
            "INSERT INTO \"t\" (\"id\", \"name\") VALUES ($1, $2), ($3, $4)"
        );
        assert!(
            multi_row_insert(
                DbBackend::Sqlite,
                "t",
                &["id", "name"],
                values[..3].to_vec(),
                ""
            )
            .is_none()
        );
        assert!(multi_row_insert(DbBackend::Sqlite, "t", &[], vec![], "").is_none());
    }

    #[test]
    fn numbered_parameters_become_positional_in_the_order_used() {
        let values: Vec<sea_orm::Value> = vec![1i64.into(), "b".into(), 3i64.into()];
        let (sql, used) = positional(
            "UPDATE t SET a = $2, c = '$1' WHERE x = $1 AND y IN ($3, $1) AND \"$2\" = $10",
            &values,
        )
        .map_or((String::new(), vec![]), |r| r);
        assert!(sql.is_empty(), "$10 names no value: {sql}");
        assert!(used.is_empty());
        let (sql, used) = positional(
            "UPDATE t SET a = $2, c = '$1' WHERE x = $1 AND y IN ($3, $1) AND \"$2\" = 0",
            &values,
        )
        .expect("every parameter names a value");
        assert_eq!(
            sql,
            "UPDATE t SET a = ?, c = '$1' WHERE x = ? AND y IN (?, ?) AND \"$2\" = 0"
        );
        assert_eq!(
            used,
            vec![
                values[1].clone(),
                values[0].clone(),
                values[2].clone(),
                values[0].clone()
            ]
        );
    }

    #[tokio::test]
    async fn a_sqlite_statement_binds_repeated_numbered_parameters() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&DbTarget::Sqlite {
            path: dir.path().join("t.db"),
        })
        .await
        .expect("connect");
        let row = db
            .conn()
            .query_one_raw(db.statement(
                "SELECT $2 || '-$1-' || $1 || $2 AS s",
                vec!["a".into(), "b".into()],
            ))
            .await
            .expect("query")
            .expect("a row");
        assert_eq!(row.try_get::<String>("", "s").expect("s"), "b-$1-ab");
    }

    #[test]
    fn in_lists_pad_to_powers_of_two_with_the_same_members() {
        assert_eq!(padded_in_list::<i32>(vec![]), Vec::<i32>::new());
        assert_eq!(padded_in_list(vec![1]), vec![1]);
        assert_eq!(padded_in_list(vec![1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(padded_in_list((0..5).collect()).len(), 8);
        assert_eq!(padded_in_list((0..8).collect::<Vec<_>>()).len(), 8);
    }

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything_in_order() {
        let items: Vec<usize> = (0..1363).collect();
        let chunks = power_of_two_chunks(&items, 500);
        assert!(
            chunks
                .iter()
                .all(|c| c.len().is_power_of_two() && c.len() <= 256)
        );
        let joined: Vec<usize> = chunks.concat();
        assert_eq!(joined, items);
        let lens: Vec<usize> = power_of_two_chunks(&items[..363], 512)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(lens, vec![256, 64, 32, 8, 2, 1]);
        assert!(power_of_two_chunks::<u8>(&[], 64).is_empty());
    }
}

/// Test support: the same test body runs on SQLite and on PostgreSQL.
///
/// PostgreSQL is required, never skipped: when it cannot be reached the test fails and
/// says how to start it. The server is `TANDEM_TEST_DATABASE_URL`, by default
/// `postgres://postgres@127.0.0.1:5432/tandem_test` (created when absent).
pub mod testing {
    use super::*;
    use crate::config::StorageConfig;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TestBackend {
        Sqlite,
        Postgres,
    }

    /// Storage for one test: a fresh temporary directory (SQLite) or fresh schemas (PostgreSQL).
    pub struct TestStorage {
        pub config: StorageConfig,
        pub backend: TestBackend,
        _dir: tempfile::TempDir,
    }

    pub fn test_database_url() -> String {
        std::env::var("TANDEM_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tandem_test".to_string())
    }

    async fn ensure_database(url: &str) {
        let (base, name) = url
            .rsplit_once('/')
            .expect("database url has a database name");
        let name = name.split('?').next().unwrap_or(name).to_string();
        let admin_url = format!("{base}/postgres");
        let mut opts = ConnectOptions::new(admin_url.clone());
        opts.max_connections(1).sqlx_logging(false);
        let admin = Database::connect(opts).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required by the test suite and is not reachable at {admin_url}: {e}. \
                 Start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) \
                 or run the suite through `scripts/test`, which does."
            )
        });
        let exists = admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ))
            .await
            .expect("query pg_database")
            .is_some();
        if !exists {
            // Parallel test processes may race here; losing the race is fine.
            let _ = admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await;
        }
        admin.close().await.ok();
    }

    impl TestStorage {
        pub async fn new(backend: TestBackend) -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = StorageConfig::embedded(dir.path());
            if backend == TestBackend::Postgres {
                let url = test_database_url();
                ensure_database(&url).await;
                config.database_url = Some(url);
                config.schema_prefix =
                    format!("t{}_", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            }
            Self {
                config,
                backend,
                _dir: dir,
            }
        }

        /// A connected, unmigrated database for `service`.
        pub async fn db(&self, service: &str) -> Db {
            Db::connect(&self.config.target_for(service))
                .await
                .unwrap_or_else(|e| panic!("connect test database for {service}: {e}"))
        }
    }

    /// Generates one `#[tokio::test]` per backend for each listed async fn taking a `TestBackend`:
    /// `both_backends!(creates_a_record, rejects_duplicates);` makes `sqlite::creates_a_record`,
    /// `postgres::creates_a_record`, …
    #[macro_export]
    macro_rules! both_backends {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name($crate::db::testing::TestBackend::Sqlite).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name($crate::db::testing::TestBackend::Postgres).await
                    }
                )*
            }
        };
    }
}
