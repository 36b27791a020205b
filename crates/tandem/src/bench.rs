//! `tandem bench SCENARIO` (DESIGN §7): numbers, not tests. Each scenario boots an estate in
//! a scratch directory, drives it through its APIs in-process and prints one JSON object on
//! stdout (logs go to stderr). The estate is embedded (SQLite files, the in-process bus)
//! unless `--database-url` / `--broker-url` put it on PostgreSQL / RabbitMQ ([`Backend`]).
//!
//! - `migration`: seeds NOMIS with N non-association pairs, migrates them through the
//!   migration API and compares the rate with a floor: the same number of DPS rows bulk
//!   inserted into a fresh copy of the DPS table, in the same database, in the same run.
//! - `sync`: a steady stream of edits alternately in DPS and in NOMIS, timing each from the
//!   writing call's return (its commit) to the change being readable on the other side.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use http::Method;
use sea_orm::{ConnectionTrait, Value as DbValue};
use serde_json::{Value, json};
use tandem_auth::{LocalTokenSource, TokenSpec, roles::ALL_ROLES};
use tandem_platform::{
    client::{LocalApp, PeerClient},
    config::services,
    db::Db,
};
use tandem_sync::migration::{EngineConfig, MigrationStatus};

use crate::{Estate, EstateOptions, estate::BrokerConfig};

/// Engine tuning the benchmark found fastest on the embedded backend (2 cores): bigger
/// batches amortise the per-batch calls (mapping look-up, DPS batch, mapping batch, ledger
/// settle); more workers than cores keep the pipeline full while one batch waits on SQLite.
pub fn tuned_engine() -> EngineConfig {
    EngineConfig {
        batch_size: 500,
        workers: 4,
        page_size: 2000,
        ..EngineConfig::default()
    }
}

/// Where a benchmark's estate keeps its data and carries its events (the `--database-url`
/// and `--broker-url` flags of both scenarios).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Backend {
    /// PostgreSQL instead of SQLite files: each service in a schema of this database, under
    /// a prefix fresh for the run (the schemas are dropped at the end).
    #[arg(long)]
    pub database_url: Option<String>,
    /// RabbitMQ instead of the embedded bus, every exchange and queue under the same fresh
    /// prefix (use a scratch vhost: the run's queues stay).
    #[arg(long)]
    pub broker_url: Option<String>,
}

impl Backend {
    fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            bail!(
                "--database-url must be a postgres:// URL (leave it out for SQLite), not '{url}'"
            );
        }
        if let Some(url) = &self.broker_url
            && !url.starts_with("amqp://")
            && !url.starts_with("amqps://")
        {
            bail!(
                "--broker-url must be an amqp:// URL (leave it out for the embedded bus), not '{url}'"
            );
        }
        Ok(())
    }

    /// The estate's options: every service, on this backend, names under `prefix`.
    fn options(&self, dir: &Path, prefix: &str) -> EstateOptions {
        let mut opts = EstateOptions::embedded(dir);
        if let Some(url) = &self.database_url {
            opts.storage.database_url = Some(url.clone());
            opts.storage.schema_prefix = prefix.to_string();
        }
        if let Some(url) = &self.broker_url {
            opts.broker = BrokerConfig::RabbitMq {
                url: url.clone(),
                prefix: prefix.to_string(),
            };
        }
        opts
    }

    fn describe(&self) -> Value {
        json!({
            "storage": if self.database_url.is_some() { "postgresql" } else { "sqlite" },
            "bus": if self.broker_url.is_some() { "rabbitmq" } else { "embedded" },
        })
    }

    /// Drops the run's PostgreSQL schemas (nothing to do for SQLite: the scratch directory goes).
    async fn clean_up(&self, prefix: &str) {
        let Some(url) = &self.database_url else {
            return;
        };
        let dropped = async {
            let conn = sea_orm::Database::connect(url.as_str()).await?;
            let schemas = conn
                .query_all_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
                    [prefix.into()],
                ))
                .await?;
            for row in schemas {
                let name: String = row.try_get("", "nspname")?;
                conn.execute_unprepared(&format!("DROP SCHEMA \"{name}\" CASCADE"))
                    .await?;
            }
            conn.close().await?;
            Ok::<_, sea_orm::DbErr>(())
        };
        if let Err(e) = dropped.await {
            eprintln!("bench: could not drop the run's schemas ({prefix}*): {e}");
        }
    }
}

/// Stops the estate, then deletes the run's RabbitMQ queues and exchanges: quorum queues
/// left behind each keep broker file handles, and a broker out of them stops accepting
/// connections.
async fn shut_down(estate: Estate) {
    let rabbit = estate.rabbit.clone();
    estate.shutdown().await;
    if let Some(bus) = rabbit
        && let Err(e) = bus.delete_declared().await
    {
        eprintln!("bench: could not delete the run's RabbitMQ queues: {e}");
    }
}

/// A name prefix no earlier run used (PostgreSQL schemas, RabbitMQ exchanges and queues).
fn run_prefix(scenario: &str) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "bench_{scenario}_{}_{}_",
        std::process::id(),
        nanos.rem_euclid(1_000_000_000)
    )
}

/// Logs to stderr (stdout carries the JSON), at warn unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A data directory: the caller's, kept; or a fresh scratch one, removed afterwards.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(given: Option<PathBuf>, scenario: &str) -> anyhow::Result<Self> {
        let (path, remove) = match given {
            Some(p) => (p, false),
            None => {
                let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
                let p = std::env::temp_dir().join(format!(
                    "tandem-bench-{scenario}-{}-{nanos}",
                    std::process::id()
                ));
                (p, true)
            }
        };
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the data directory {}", path.display()))?;
        Ok(Self { path, remove })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// In-process clients with every role and a user name (DPS writes need one).
struct Clients {
    nomis: PeerClient,
    dps: PeerClient,
    from_nomis: PeerClient,
}

fn clients(estate: &Estate) -> Clients {
    let app = LocalApp::new();
    app.set(estate.router.clone());
    let tokens = Arc::new(LocalTokenSource::with_spec(
        estate.issuer.clone(),
        TokenSpec::client(
            "tandem-bench",
            ALL_ROLES.iter().map(|r| r.to_string()).collect(),
        )
        .with_user("BENCH_USER"),
    ));
    Clients {
        nomis: PeerClient::in_process(services::NOMIS_PRISONER_API, app.clone(), tokens.clone()),
        dps: PeerClient::in_process(services::NON_ASSOCIATIONS_API, app.clone(), tokens.clone()),
        from_nomis: PeerClient::in_process(services::PRISONER_FROM_NOMIS, app, tokens),
    }
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    json!({
        "cores": cores,
        "os": format!("{} {}", std::env::consts::OS, kernel).trim().to_string(),
        "cpu": cpu,
    })
}

/// A field of `/proc/self/status` in MB (`VmHWM` is the peak resident set).
fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// The middle value (the lower middle of an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// migration
// ---------------------------------------------------------------------------------------

/// `tandem bench migration`.
#[derive(Debug, Clone)]
pub struct MigrationBench {
    pub domain: String,
    pub pairs: usize,
    /// Prisoners to seed (default twice the pairs).
    pub prisoners: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub backend: Backend,
    pub engine: EngineConfig,
    /// Rows per INSERT statement of the floor (default: as many as the backend binds).
    pub floor_rows_per_statement: Option<usize>,
}

/// Columns of the DPS `non_association` table the floor fills (all but the generated id).
const FLOOR_COLUMNS: &[&str] = &[
    "first_prisoner_number",
    "first_prisoner_role",
    "second_prisoner_number",
    "second_prisoner_role",
    "reason",
    "restriction_type",
    "comment",
    "authorised_by",
    "when_created",
    "when_updated",
    "updated_by",
    "is_closed",
    "closed_by",
    "closed_reason",
    "closed_at",
    "pair_low",
    "pair_high",
    "nomis_type_sequence",
];

/// SQLite's default limit of bound parameters per statement.
const SQLITE_MAX_PARAMS: usize = 32_766;
/// PostgreSQL's limit of bound parameters per statement (the wire protocol's u16).
const POSTGRES_MAX_PARAMS: usize = 65_535;

/// The most floor rows one statement can carry on `db`'s backend.
pub fn max_floor_rows_per_statement(db: &Db) -> usize {
    let params = if db.is_sqlite() {
        SQLITE_MAX_PARAMS
    } else {
        POSTGRES_MAX_PARAMS
    };
    params / FLOOR_COLUMNS.len()
}

const FLOOR_TABLE: &str = "bench_floor_non_association";

/// Times the floor is measured; the ratio uses the median. One run of about a second moved
/// by a quarter from run to run on the 2-core VM, more than the migration's own rate did.
const FLOOR_RUNS: usize = 3;

pub async fn migration(args: MigrationBench) -> anyhow::Result<Value> {
    if args.domain != "non-associations" {
        bail!(
            "unknown domain '{}': the migration benchmark knows non-associations",
            args.domain
        );
    }
    args.backend.check()?;
    let dir = Scratch::new(args.data_dir.clone(), "migration")?;
    let prefix = run_prefix("migration");
    let result = seed_and_migrate(&args, &dir, &prefix).await;
    args.backend.clean_up(&prefix).await;
    result
}

/// Seeds NOMIS, migrates it and measures the floor, on a fresh estate named by `prefix`.
async fn seed_and_migrate(
    args: &MigrationBench,
    dir: &Scratch,
    prefix: &str,
) -> anyhow::Result<Value> {
    let prisoners = args.prisoners.unwrap_or(args.pairs * 2).max(4);
    // Seeding runs in a child process so that this process's peak memory is the estate's
    // and the migration's, not the seeder's.
    let seed_started = Instant::now();
    let seeded = seed_in_child(&dir.path, &args.backend, prefix, prisoners, args.pairs)?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    eprintln!(
        "bench: seeded {prisoners} prisoners, {} pairs in {seed_seconds:.1}s",
        seeded["nonAssociationPairs"]
    );

    let mut opts = args.backend.options(&dir.path, prefix);
    opts.engine = args.engine.clone();
    let estate = Estate::start(opts).await?;
    let c = clients(&estate);

    let started = Instant::now();
    let answer = c
        .from_nomis
        .request(Method::POST, format!("/migrate/{}", args.domain))
        .json(&json!({}))
        .send()
        .await?
        .ok()?;
    // The start answers once NOMIS has counted the pairs (the estimate): part of the
    // migration's time, and reported on its own.
    let start_seconds = started.elapsed().as_secs_f64();
    let context: Value = answer.json()?;
    let id = context["migrationId"]
        .as_str()
        .context("the migration start answered without a migrationId")?
        .to_string();
    eprintln!(
        "bench: migration {id} started, estimated {}",
        context["estimatedCount"]
    );

    // The status is read straight from the ledger (a primary-key read) so that waiting does
    // not load the estate; the history (which counts the work rows) is read once at the end.
    let mut last_report = Instant::now();
    let seconds = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let row = estate
            .engine()?
            .ledger()
            .get(&id)
            .await?
            .context("the migration disappeared from the ledger")?;
        match row.status {
            MigrationStatus::Completed => break started.elapsed().as_secs_f64(),
            MigrationStatus::Cancelled | MigrationStatus::CancelledRequested => {
                bail!("the migration was cancelled")
            }
            MigrationStatus::Started => {}
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "bench: {:.0}s, still migrating",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let history: Value = c
        .from_nomis
        .get_json(format!("/migrate/history/{id}"))
        .await?;
    let records = history["recordsMigrated"].as_i64().unwrap_or(0);
    let failed = history["recordsFailed"].as_i64().unwrap_or(0);
    let entities = history["entitiesDone"].as_i64().unwrap_or(0);
    let peak_after_migration = proc_status_mb("VmHWM:");
    eprintln!(
        "bench: migrated {records} records ({entities} pairs, {failed} failed) in {seconds:.1}s"
    );

    let na_db = estate
        .db(services::NON_ASSOCIATIONS_API)
        .context("the non-associations database")?
        .clone();
    let dps_rows = count(
        na_db.conn(),
        &na_db,
        "SELECT COUNT(*) AS n FROM non_association",
    )
    .await?;
    let floor_rows = records.max(0) as usize;
    let most = max_floor_rows_per_statement(&na_db);
    let per_statement = args.floor_rows_per_statement.unwrap_or(most).clamp(1, most);
    let mut floor_runs = Vec::with_capacity(FLOOR_RUNS);
    for _ in 0..FLOOR_RUNS {
        floor_runs.push(floor(&na_db, floor_rows, per_statement).await?);
    }
    let floor_seconds = median(&floor_runs);
    let floor_per_second = floor_rows as f64 / floor_seconds.max(1e-9);
    eprintln!(
        "bench: floor: {floor_rows} rows in {floor_seconds:.2}s (median of {})",
        floor_runs
            .iter()
            .map(|s| format!("{s:.2}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let per_second = records as f64 / seconds.max(1e-9);
    let peak = proc_status_mb("VmHWM:");
    shut_down(estate).await;

    Ok(json!({
        "scenario": "migration",
        "domain": args.domain,
        "pairs": args.pairs,
        "backend": args.backend.describe(),
        "prisoners": prisoners,
        "records": records,
        "entities": entities,
        "dps_rows": dps_rows,
        "seconds": round(seconds, 2),
        "start_seconds": round(start_seconds, 3),
        "per_second": round(per_second, 0),
        "peak_rss_mb": peak,
        "peak_rss_mb_after_migration": peak_after_migration,
        "floor_rows": floor_rows,
        "floor_seconds": round(floor_seconds, 3),
        "floor_runs_seconds": floor_runs.iter().map(|s| round(*s, 3)).collect::<Vec<_>>(),
        "floor_per_second": round(floor_per_second, 0),
        "floor_method": format!(
            "the median of {FLOOR_RUNS} runs, each one transaction of multi-row INSERTs, {per_statement} rows ({} bound parameters) per statement (the backend's parameter limit forbids one statement for all rows), into a fresh copy of non_association (same columns, checks and indexes) in the non-associations-api {} database",
            per_statement * FLOOR_COLUMNS.len(),
            if na_db.is_sqlite() { "SQLite" } else { "PostgreSQL" },
        ),
        "ratio_to_floor": round(per_second / floor_per_second.max(1e-9), 3),
        "failed": failed,
        "seed_seconds": round(seed_seconds, 1),
        "engine": {
            "workers": args.engine.workers,
            "batch_size": args.engine.batch_size,
            "page_size": args.engine.page_size,
            "lookahead": args.engine.lookahead,
        },
        "machine": machine(),
    }))
}

/// Runs `tandem seed` (this executable) into `dir` or the run's NOMIS schema; returns its
/// summary.
fn seed_in_child(
    dir: &Path,
    backend: &Backend,
    prefix: &str,
    prisoners: usize,
    pairs: usize,
) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("finding the tandem executable")?;
    let mut seed = std::process::Command::new(exe);
    // The seed must write the database the estate below reads, and no other.
    seed.env_remove("TANDEM_DATABASE_URL")
        .env_remove("TANDEM_NOMIS_PRISONER_API_DATABASE_URL")
        .env_remove("TANDEM_SCHEMA_PREFIX");
    if let Some(url) = &backend.database_url {
        seed.env("TANDEM_DATABASE_URL", url)
            .env("TANDEM_SCHEMA_PREFIX", prefix);
    }
    let out = seed
        .arg("seed")
        .arg("--data-dir")
        .arg(dir)
        .arg("--prisoners")
        .arg(prisoners.to_string())
        .arg("--pairs")
        .arg(pairs.to_string())
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running tandem seed")?;
    if !out.status.success() {
        bail!("tandem seed failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("tandem seed printed no summary")?;
    Ok(serde_json::from_str(last)?)
}

/// The `n` that `sql` selects, read through `conn` (the pool, or a transaction of `db`).
async fn count(conn: &impl ConnectionTrait, db: &Db, sql: &str) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(db.statement(sql, vec![]))
        .await?
        .context("a count returned no row")?;
    Ok(row.try_get("", "n")?)
}

/// A valid prisoner number for index `i` (letter, four digits, two letters).
fn prisoner_number(prefix: char, i: usize) -> String {
    let digits = i % 10_000;
    let rest = i / 10_000;
    let a = (b'A' + (rest / 26 % 26) as u8) as char;
    let b = (b'A' + (rest % 26) as u8) as char;
    format!("{prefix}{digits:04}{a}{b}")
}

/// One floor row, shaped like a migrated record (about a third still open).
fn floor_row(i: usize, now: chrono::DateTime<Utc>) -> Vec<DbValue> {
    let first = prisoner_number('A', i);
    let second = prisoner_number('B', i);
    let closed = !i.is_multiple_of(3);
    vec![
        first.clone().into(),
        "VICTIM".into(),
        second.clone().into(),
        "PERPETRATOR".into(),
        "BULLYING".into(),
        "CELL".into(),
        "Keep apart on the wing and in education".into(),
        Some("SMITH J").into(),
        now.into(),
        now.into(),
        "NOMIS_MIGRATION".into(),
        closed.into(),
        closed.then(|| "NOMIS_MIGRATION".to_string()).into(),
        closed.then(|| "Expired in NOMIS".to_string()).into(),
        closed.then_some(now).into(),
        first.into(),
        second.into(),
        Some(1i32).into(),
    ]
}

/// Creates a fresh copy of `non_association` (its own DDL, renamed), inserts `rows` rows in
/// one transaction of multi-row INSERTs, drops it; returns the insert's seconds.
///
/// Every statement goes through write transactions, so on SQLite one connection (the
/// writer) makes and drops the copy. A pooled connection that last read the file before
/// an earlier run dropped the copy still holds that schema in memory, and SQLite checks a
/// CREATE's name against it before noticing the change: "index … already exists".
async fn floor(db: &Db, rows: usize, per_statement: usize) -> anyhow::Result<f64> {
    let txn = db.begin_write().await?;
    txn.execute_unprepared(&format!("DROP TABLE IF EXISTS \"{FLOOR_TABLE}\""))
        .await?;
    if db.is_sqlite() {
        let ddl = txn
            .query_all_raw(db.statement(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'non_association' \
                 AND sql IS NOT NULL ORDER BY type DESC",
                vec![],
            ))
            .await?;
        if ddl.is_empty() {
            bail!("no non_association table to copy");
        }
        for row in ddl {
            let sql: String = row.try_get("", "sql")?;
            let sql = sql
                .replace("\"non_association\"", &format!("\"{FLOOR_TABLE}\""))
                .replace("INDEX \"", &format!("INDEX \"{FLOOR_TABLE}_"));
            txn.execute_unprepared(&sql).await?;
        }
    } else {
        // Columns with their defaults and checks, and every index (the id keeps drawing
        // from the original's sequence, which costs the same).
        txn.execute_unprepared(&format!(
            "CREATE TABLE \"{FLOOR_TABLE}\" (LIKE non_association INCLUDING ALL)"
        ))
        .await?;
    }
    txn.commit().await?;

    let now = Utc::now();
    let started = Instant::now();
    let txn = db.begin_write().await?;
    let mut i = 0;
    while i < rows {
        let end = (i + per_statement).min(rows);
        // Written as the migration writes its batches (one plain parameter per value).
        let values: Vec<DbValue> = (i..end).flat_map(|k| floor_row(k, now)).collect();
        let insert = tandem_platform::db::multi_row_insert(
            txn.get_database_backend(),
            FLOOR_TABLE,
            FLOOR_COLUMNS,
            values,
            "",
        )
        .context("a floor statement without rows")?;
        txn.execute_raw(insert).await?;
        i = end;
    }
    txn.commit().await?;
    let seconds = started.elapsed().as_secs_f64();

    let txn = db.begin_write().await?;
    let inserted = count(
        &txn,
        db,
        &format!("SELECT COUNT(*) AS n FROM \"{FLOOR_TABLE}\""),
    )
    .await?;
    if inserted as usize != rows {
        bail!("the floor inserted {inserted} rows, expected {rows}");
    }
    txn.execute_unprepared(&format!("DROP TABLE \"{FLOOR_TABLE}\""))
        .await?;
    txn.commit().await?;
    Ok(seconds)
}

// ---------------------------------------------------------------------------------------
// sync
// ---------------------------------------------------------------------------------------

/// `tandem bench sync`.
#[derive(Debug, Clone)]
pub struct SyncBench {
    /// Changes per second (alternately DPS and NOMIS).
    pub rate: u32,
    pub seconds: u64,
    pub data_dir: Option<PathBuf>,
    pub backend: Backend,
    /// Non-associations edited (half in DPS, half in NOMIS).
    pub records: usize,
}

/// A change not seen on the other side within this is lost.
const LOST_AFTER: Duration = Duration::from_secs(10);
/// How often a change's watcher looks at the other side.
const WATCH_EVERY: Duration = Duration::from_millis(2);
/// Writes in flight at once.
const IN_FLIGHT: usize = 512;

/// One non-association known on both sides.
#[derive(Debug, Clone)]
struct Target {
    dps_id: i64,
    first: String,
    second: String,
    type_sequence: i32,
    /// NOMIS offender ids of `first` and `second`.
    offender_ids: (i64, i64),
    /// The NOMIS record as read, to send back whole with a new comment.
    nomis: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    DpsToNomis,
    NomisToDps,
}

enum Outcome {
    Seen(Direction, Duration),
    Lost(Direction),
    WriteFailed(Direction, String),
}

pub async fn sync(args: SyncBench) -> anyhow::Result<Value> {
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be at least 1");
    }
    args.backend.check()?;
    let dir = Scratch::new(args.data_dir.clone(), "sync")?;
    let prefix = run_prefix("sync");
    let result = sync_on(&args, &dir, &prefix).await;
    args.backend.clean_up(&prefix).await;
    result
}

/// The sync benchmark on a fresh estate whose names start with `prefix`.
async fn sync_on(args: &SyncBench, dir: &Scratch, prefix: &str) -> anyhow::Result<Value> {
    let mut opts = args.backend.options(&dir.path, prefix);
    opts.engine = tuned_engine();
    let estate = Arc::new(Estate::start(opts).await?);
    let c = Arc::new(clients(&estate));
    let nomis_db = estate
        .db(services::NOMIS_PRISONER_API)
        .context("the NOMIS database")?
        .clone();
    let na_db = estate
        .db(services::NON_ASSOCIATIONS_API)
        .context("the non-associations database")?
        .clone();

    // Both sides in step: seed NOMIS and migrate it, then edit open records that exist in both.
    let pairs = (args.records * 3).max(100);
    tandem_nomis::seed(
        &nomis_db,
        &tandem_nomis::SeedOptions {
            prisoners: pairs * 2,
            prisons: vec!["MDI".into(), "LEI".into(), "BXI".into(), "WSI".into()],
            seed: 1,
            non_association_pairs: Some(pairs),
        },
    )
    .await?;
    migrate_and_wait(&estate, &c).await?;
    let targets = targets(&c, &na_db, &nomis_db, args.records).await?;
    if targets.len() < 2 {
        bail!("too few open non-associations to edit ({})", targets.len());
    }
    let (dps_targets, nomis_targets): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let dps_targets: Arc<Vec<Target>> = Arc::new(dps_targets.into_iter().map(|t| t.1).collect());
    let nomis_targets: Arc<Vec<Target>> =
        Arc::new(nomis_targets.into_iter().map(|t| t.1).collect());
    eprintln!(
        "bench: editing {} records in DPS and {} in NOMIS at {}/s for {}s",
        dps_targets.len(),
        nomis_targets.len(),
        args.rate,
        args.seconds
    );

    let (to_nomis_tx, to_nomis_rx) = tokio::sync::mpsc::unbounded_channel();
    let (to_dps_tx, to_dps_rx) = tokio::sync::mpsc::unbounded_channel();
    let watchers = [
        tokio::spawn(watcher(
            Direction::DpsToNomis,
            nomis_db.clone(),
            to_nomis_rx,
        )),
        tokio::spawn(watcher(Direction::NomisToDps, na_db.clone(), to_dps_rx)),
    ];
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let total = args.rate as u64 * args.seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    let started = Instant::now();
    for n in 0..total {
        tick.tick().await;
        let permit = permits.clone().acquire_owned().await?;
        let c = c.clone();
        let comment = format!("Bench change {n}");
        let i = (n / 2) as usize;
        if n.is_multiple_of(2) {
            let t = dps_targets[i % dps_targets.len()].clone();
            let tx = to_nomis_tx.clone();
            tasks.spawn(async move {
                let out = dps_change(&c, &t, comment, &tx).await;
                drop(permit);
                out
            });
        } else {
            let t = nomis_targets[i % nomis_targets.len()].clone();
            let tx = to_dps_tx.clone();
            tasks.spawn(async move {
                let out = nomis_change(&c, &t, comment, &tx).await;
                drop(permit);
                out
            });
        }
    }
    let offered_seconds = started.elapsed().as_secs_f64();
    drop((to_nomis_tx, to_dps_tx));
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.extend(done?);
    }
    for w in watchers {
        outcomes.extend(w.await?);
    }
    let mut latencies: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut lost = [0u64; 2];
    let mut failed = [0u64; 2];
    let mut first_error = None;
    for o in outcomes {
        match o {
            Outcome::Seen(d, l) => latencies[d as usize].push(l),
            Outcome::Lost(d) => lost[d as usize] += 1,
            Outcome::WriteFailed(d, e) => {
                failed[d as usize] += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("bench: first failed write: {e}");
    }
    let dlq = dead_letters(&estate).await;
    match Arc::try_unwrap(estate) {
        Ok(estate) => shut_down(estate).await,
        Err(_) => tracing::warn!("estate still referenced at the end of the benchmark"),
    }

    let summary = |d: Direction| {
        let mut v = latencies[d as usize].clone();
        v.sort();
        json!({
            "changes": v.len() as u64 + lost[d as usize] + failed[d as usize],
            "seen": v.len(),
            "p50_ms": percentile_ms(&v, 50.0),
            "p90_ms": percentile_ms(&v, 90.0),
            "p99_ms": percentile_ms(&v, 99.0),
            "max_ms": v.last().map(|d| round(d.as_secs_f64() * 1000.0, 1)),
            "lost": lost[d as usize],
            "write_failed": failed[d as usize],
        })
    };
    Ok(json!({
        "scenario": "sync",
        "backend": args.backend.describe(),
        "rate": args.rate,
        "seconds": args.seconds,
        "offered_seconds": round(offered_seconds, 2),
        "changes": total,
        "records_edited": dps_targets.len() + nomis_targets.len(),
        "dps_to_nomis": summary(Direction::DpsToNomis),
        "nomis_to_dps": summary(Direction::NomisToDps),
        "lost": lost[0] + lost[1],
        "write_failed": failed[0] + failed[1],
        "dead_letters": dlq,
        "method": "latency from the writing API call's return (its commit) to the new comment being readable in the other side's database (one watcher per direction reads every pending change's row in one query every 2 ms)",
        "machine": machine(),
    }))
}

/// Nearest-rank percentile of sorted latencies, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let d = sorted[rank.clamp(1, sorted.len()) - 1];
    Some(round(d.as_secs_f64() * 1000.0, 1))
}

async fn dead_letters(estate: &Estate) -> u64 {
    let mut n = 0;
    if let Ok(queues) = estate.bus.list_queues().await {
        for q in queues {
            if let Ok(s) = estate.bus.stats(&q).await {
                n += s.dlq_depth;
            }
        }
    }
    n
}

async fn migrate_and_wait(estate: &Estate, c: &Clients) -> anyhow::Result<()> {
    let context: Value = c
        .from_nomis
        .request(Method::POST, "/migrate/non-associations")
        .json(&json!({}))
        .send()
        .await?
        .ok()?
        .json()?;
    let id = context["migrationId"]
        .as_str()
        .context("the migration start answered without a migrationId")?
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let row = estate.engine()?.ledger().get(&id).await?;
        if row.is_some_and(|r| r.status == MigrationStatus::Completed) {
            return Ok(());
        }
    }
    bail!("the set-up migration did not complete in 10 minutes")
}

/// Open DPS records with their NOMIS counterparts.
async fn offender_id(nomis_db: &Db, offender_no: &str) -> anyhow::Result<i64> {
    let row = nomis_db
        .conn()
        .query_one_raw(nomis_db.statement(
            "SELECT offender_id FROM offenders WHERE offender_no = $1",
            vec![offender_no.into()],
        ))
        .await?
        .with_context(|| format!("no NOMIS offender {offender_no}"))?;
    Ok(row.try_get("", "offender_id")?)
}

async fn targets(
    c: &Clients,
    na_db: &Db,
    nomis_db: &Db,
    wanted: usize,
) -> anyhow::Result<Vec<Target>> {
    let rows = na_db
        .conn()
        .query_all_raw(na_db.statement(
            "SELECT id, first_prisoner_number, second_prisoner_number, nomis_type_sequence \
             FROM non_association WHERE is_closed = $1 AND nomis_type_sequence IS NOT NULL \
             ORDER BY id LIMIT $2",
            vec![false.into(), (wanted as i64).into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let first: String = r.try_get("", "first_prisoner_number")?;
        let second: String = r.try_get("", "second_prisoner_number")?;
        let type_sequence: i32 = r.try_get("", "nomis_type_sequence")?;
        let nomis: Option<Value> = c
            .nomis
            .find_json(format!(
                "/non-associations/offender/{first}/ns-offender/{second}/sequence/{type_sequence}"
            ))
            .await?;
        let Some(nomis) = nomis else { continue };
        let offender_ids = (
            offender_id(nomis_db, &first).await?,
            offender_id(nomis_db, &second).await?,
        );
        out.push(Target {
            dps_id: r.try_get("", "id")?,
            first,
            second,
            type_sequence,
            offender_ids,
            nomis,
        });
    }
    Ok(out)
}

/// A change written and not yet seen on the other side.
struct Watch {
    /// The other side's row: DPS id, or NOMIS (offender id, ns offender id, type sequence).
    key: (i64, i64, i32),
    comment: String,
    since: Instant,
}

/// Watches every pending change of one direction with one query per round (every 2 ms), so
/// that watching costs the estate little however many changes are in flight.
async fn watcher(
    direction: Direction,
    db: Db,
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Watch>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut pending: Vec<Watch> = Vec::new();
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open {
                return outcomes;
            }
            match incoming.recv().await {
                Some(w) => pending.push(w),
                None => return outcomes,
            }
        }
        loop {
            match incoming.try_recv() {
                Ok(w) => pending.push(w),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let current = read_comments(direction, &db, &pending).await;
        let now = Instant::now();
        pending.retain(|w| {
            if current.get(&w.key).map(String::as_str) == Some(w.comment.as_str()) {
                outcomes.push(Outcome::Seen(direction, now - w.since));
                false
            } else if now - w.since > LOST_AFTER {
                outcomes.push(Outcome::Lost(direction));
                false
            } else {
                true
            }
        });
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The other side's current comments of the pending changes' rows.
async fn read_comments(
    direction: Direction,
    db: &Db,
    pending: &[Watch],
) -> std::collections::HashMap<(i64, i64, i32), String> {
    let mut ids: Vec<i64> = pending.iter().map(|w| w.key.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let marks = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = match direction {
        Direction::DpsToNomis => format!(
            "SELECT offender_id AS a, ns_offender_id AS b, type_seq AS s, comment_text AS c \
             FROM offender_na_details WHERE offender_id IN ({marks})"
        ),
        Direction::NomisToDps => {
            format!(
                "SELECT id AS a, CAST(0 AS BIGINT) AS b, CAST(0 AS INTEGER) AS s, comment AS c \
                 FROM non_association WHERE id IN ({marks})"
            )
        }
    };
    let values = ids.into_iter().map(DbValue::from).collect();
    let rows = match db.conn().query_all_raw(db.statement(&sql, values)).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "bench: cannot read the other side");
            return Default::default();
        }
    };
    rows.into_iter()
        .filter_map(|r| {
            let key = (
                r.try_get::<i64>("", "a").ok()?,
                r.try_get::<i64>("", "b").ok()?,
                r.try_get::<i32>("", "s").ok()?,
            );
            Some((key, r.try_get::<Option<String>>("", "c").ok()??))
        })
        .collect()
}

/// A DPS user edits the comment; then it is watched for in NOMIS.
async fn dps_change(
    c: &Clients,
    t: &Target,
    comment: String,
    watch: &tokio::sync::mpsc::UnboundedSender<Watch>,
) -> Option<Outcome> {
    let written = c
        .dps
        .request(Method::PATCH, format!("/non-associations/{}", t.dps_id))
        .json(&json!({ "comment": comment }))
        .send()
        .await
        .and_then(|r| r.ok());
    if let Err(e) = written {
        return Some(Outcome::WriteFailed(Direction::DpsToNomis, e.to_string()));
    }
    let _ = watch.send(Watch {
        key: (t.offender_ids.0, t.offender_ids.1, t.type_sequence),
        comment,
        since: Instant::now(),
    });
    None
}

/// A NOMIS user edits the comment on the NOMIS screen; then it is watched for in DPS.
async fn nomis_change(
    c: &Clients,
    t: &Target,
    comment: String,
    watch: &tokio::sync::mpsc::UnboundedSender<Watch>,
) -> Option<Outcome> {
    let r = &t.nomis;
    let body = json!({
        "reason": r["reason"], "recipReason": r["recipReason"], "type": r["type"],
        "authorisedBy": r["authorisedBy"], "effectiveDate": r["effectiveDate"],
        "expiryDate": r["expiryDate"], "comment": comment,
    });
    let written = c
        .nomis
        .request(
            Method::PUT,
            format!(
                "/non-associations/offender/{}/ns-offender/{}/sequence/{}",
                t.first, t.second, t.type_sequence
            ),
        )
        .header("x-audit-module", "OIDSENAD")
        .json(&body)
        .send()
        .await
        .and_then(|r| r.ok());
    if let Err(e) = written {
        return Some(Outcome::WriteFailed(Direction::NomisToDps, e.to_string()));
    }
    let _ = watch.send(Watch {
        key: (t.dps_id, 0, 0),
        comment,
        since: Instant::now(),
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisoner_numbers_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for i in [0, 1, 9_999, 10_000, 675 * 10_000 + 9_999, 1_500_000] {
            let n = prisoner_number('A', i);
            assert!(
                tandem_platform::ids::PrisonerNumber::parse(&n).is_ok(),
                "{n} is not a prisoner number"
            );
            assert!(seen.insert(n));
        }
    }

    #[test]
    fn floor_rows_fit_the_statement() {
        let row = floor_row(7, Utc::now());
        assert_eq!(row.len(), FLOOR_COLUMNS.len());
    }

    #[test]
    fn the_floor_is_the_middle_run() {
        assert_eq!(median(&[1.4, 0.9, 1.1]), 1.1);
        assert_eq!(median(&[2.0, 1.0]), 1.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&v[..1], 99.0), Some(1.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }
}
