//! The migration engine against an in-memory domain, on both storage backends: exact counts,
//! retries, dead-lettering, cancellation, and a crash mid-run resumed by a new engine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_platform::db::testing::{TestBackend, TestStorage};
use tandem_sync::migration::{
    DomainError, EngineConfig, EntityError, EntityOutcome, MigrationDomain, MigrationEngine,
    MigrationFilter, MigrationStatus, ledger::LedgerMigrator,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Keys `k00000…`; each migrates as `records_per_key` records. Writes are idempotent per key
/// (like DPS migrate on its NOMIS key), and every call is counted to catch duplicates.
struct FakeDomain {
    keys: Vec<String>,
    calls: Mutex<BTreeMap<String, u32>>,
    written: Mutex<BTreeMap<String, u32>>,
    /// Keys that fail permanently.
    poison: Vec<String>,
    /// Keys that fail (retryably) this many times first.
    flaky: Mutex<BTreeMap<String, u32>>,
    delay: Duration,
    /// How long counting takes (NOMIS counts for seconds on a large estate).
    estimate_delay: Duration,
    /// While set, batches wait before migrating (a migration that cannot finish yet).
    paused: AtomicBool,
}

impl FakeDomain {
    fn new(n: usize) -> Self {
        Self {
            keys: (0..n).map(|i| format!("k{i:06}")).collect(),
            calls: Mutex::default(),
            written: Mutex::default(),
            poison: Vec::new(),
            flaky: Mutex::default(),
            delay: Duration::ZERO,
            estimate_delay: Duration::ZERO,
            paused: AtomicBool::new(false),
        }
    }
}

#[async_trait::async_trait]
impl MigrationDomain for FakeDomain {
    fn migration_type(&self) -> &'static str {
        "fakes"
    }
    async fn estimate(&self, _f: &MigrationFilter) -> Result<u64, DomainError> {
        tokio::time::sleep(self.estimate_delay).await;
        Ok(self.keys.len() as u64)
    }
    async fn next_keys(
        &self,
        _f: &MigrationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        Ok(self
            .keys
            .iter()
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn migrate(&self, _id: &str, keys: &[String]) -> Vec<EntityOutcome> {
        while self.paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        keys.iter()
            .map(|k| {
                *self.calls.lock().unwrap().entry(k.clone()).or_default() += 1;
                if self.poison.contains(k) {
                    return Err(EntityError::Permanent(format!("{k} is poison")));
                }
                if let Some(n) = self.flaky.lock().unwrap().get_mut(k)
                    && *n > 0
                {
                    *n -= 1;
                    return Err(EntityError::Retryable("NOMIS timed out".into()));
                }
                let mut w = self.written.lock().unwrap();
                if w.contains_key(k) {
                    return Ok(0);
                }
                w.insert(k.clone(), 1);
                Ok(1)
            })
            .collect()
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        batch_size: 25,
        workers: 3,
        page_size: 100,
        lookahead: 300,
        lease: Duration::from_millis(800),
        max_attempts: 3,
        backoff: vec![Duration::from_millis(20)],
        poll: Duration::from_millis(20),
    }
}

async fn wait_status(engine: &MigrationEngine, id: &str, want: MigrationStatus) {
    for _ in 0..1500 {
        if engine.ledger().get(id).await.unwrap().unwrap().status == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "migration {id} never became {want:?}: {:?}",
        engine.ledger().get(id).await.unwrap()
    );
}

fn engine(
    db: tandem_platform::db::Db,
    domain: Arc<FakeDomain>,
) -> (Arc<MigrationEngine>, CancellationToken, TaskTracker) {
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let e = MigrationEngine::new(db, vec![domain], config(), cancel.clone(), tasks.clone());
    e.watch();
    (e, cancel, tasks)
}

/// Starts a migration of `domain` and, once it has written `written` records, stops every
/// engine loop at once, as a crashed process would (batches in flight are abandoned).
async fn start_and_crash_after(
    db: &tandem_platform::db::Db,
    domain: &Arc<FakeDomain>,
    written: usize,
) -> (Arc<MigrationEngine>, String) {
    let (e, cancel, tasks) = engine(db.clone(), domain.clone());
    let row = e.start("fakes", MigrationFilter::default()).await.unwrap();
    for _ in 0..3000 {
        if domain.written.lock().unwrap().len() >= written {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reached = domain.written.lock().unwrap().len();
    assert!(
        reached >= written,
        "only {reached} of {written} records written"
    );
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    (e, row.migration_id)
}

async fn full_migration_counts_are_exact(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let mut d = FakeDomain::new(1234);
    d.poison = vec!["k000007".into(), "k000900".into()];
    d.flaky.lock().unwrap().insert("k000010".into(), 2);
    let d = Arc::new(d);
    let (e, cancel, tasks) = engine(db.clone(), d.clone());

    let row = e.start("fakes", MigrationFilter::default()).await.unwrap();
    assert_eq!(row.estimated_record_count, 1234);
    // A second start of the same type while it runs is refused.
    assert!(matches!(
        e.start("fakes", MigrationFilter::default()).await,
        Err(tandem_sync::migration::engine::MigrationError::InProgress(
            _
        ))
    ));
    wait_status(&e, &row.migration_id, MigrationStatus::Completed).await;

    let c = e.ledger().counts(&row.migration_id).await.unwrap();
    assert_eq!((c.done, c.failed, c.pending, c.in_flight), (1232, 2, 0, 0));
    assert_eq!(c.records_migrated, 1232);
    assert_eq!(d.written.lock().unwrap().len(), 1232);
    // The flaky key took three attempts; poison ones max_attempts (permanent → no retry).
    assert_eq!(d.calls.lock().unwrap()["k000010"], 3);
    assert_eq!(d.calls.lock().unwrap()["k000007"], 1);
    let failed = e.ledger().failed("fakes", 10).await.unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f.migration_id == row.migration_id));
    assert_eq!(failed[0].error.as_deref(), Some("k000007 is poison"));

    // A second migration finds everything migrated and writes nothing new.
    let second = e.start("fakes", MigrationFilter::default()).await.unwrap();
    wait_status(&e, &second.migration_id, MigrationStatus::Completed).await;
    let c2 = e.ledger().counts(&second.migration_id).await.unwrap();
    assert_eq!((c2.records_migrated, c2.failed), (0, 2));

    // Retrying the dead letters after "fixing the data" re-opens their migrations.
    d.written.lock().unwrap().clear();
    let mut fixed = FakeDomain::new(0);
    fixed.keys = d.keys.clone();
    assert_eq!(e.retry_failed("fakes").await.unwrap(), 2);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Two starts of one type at once, while NOMIS counts (a double-click, a retried CLI call,
/// two replicas behind one address): one starts, the other is refused with "in progress",
/// whether both reach one engine or two engines on the same ledger.
async fn concurrent_starts_start_one_migration(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let mut d = FakeDomain::new(50);
    d.estimate_delay = Duration::from_millis(150);
    let d = Arc::new(d);
    let (e1, cancel1, tasks1) = engine(db.clone(), d.clone());
    let (e2, cancel2, tasks2) = engine(db.clone(), d.clone());
    for (first, second) in [(&e1, &e1), (&e1, &e2)] {
        // The winner's migration cannot complete before the loser checks.
        d.paused.store(true, Ordering::SeqCst);
        let (a, b) = tokio::join!(
            first.start("fakes", MigrationFilter::default()),
            second.start("fakes", MigrationFilter::default())
        );
        let started: Vec<_> = [&a, &b]
            .into_iter()
            .filter_map(|r| r.as_ref().ok())
            .collect();
        assert_eq!(started.len(), 1, "both starts answered {a:?} / {b:?}");
        assert!(
            [&a, &b].into_iter().any(|r| matches!(
                r,
                Err(tandem_sync::migration::engine::MigrationError::InProgress(
                    _
                ))
            )),
            "the loser was not refused as in progress: {a:?} / {b:?}"
        );
        let id = started[0].migration_id.clone();
        d.paused.store(false, Ordering::SeqCst);
        wait_status(&e1, &id, MigrationStatus::Completed).await;
        let active: Vec<_> = e1.ledger().active().await.unwrap();
        assert!(active.is_empty(), "still active: {active:?}");
        assert_eq!(e1.ledger().list("fakes").await.unwrap()[0].migration_id, id);
    }
    assert_eq!(e1.ledger().list("fakes").await.unwrap().len(), 2);
    for (cancel, tasks) in [(cancel1, tasks1), (cancel2, tasks2)] {
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
    }
}

async fn cancel_stops_new_work(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let mut d = FakeDomain::new(5000);
    d.delay = Duration::from_millis(30);
    let d = Arc::new(d);
    let (e, cancel, tasks) = engine(db.clone(), d.clone());
    let row = e.start("fakes", MigrationFilter::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    e.cancel(&row.migration_id).await.unwrap();
    wait_status(&e, &row.migration_id, MigrationStatus::Cancelled).await;
    let calls_at_cancel = d.calls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        d.calls.lock().unwrap().len(),
        calls_at_cancel,
        "work continued after cancel"
    );
    assert!(calls_at_cancel < 5000);
    let c = e.ledger().counts(&row.migration_id).await.unwrap();
    assert_eq!(c.in_flight, 0);
    assert_eq!(c.records_migrated as usize, d.written.lock().unwrap().len());
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Retrying the dead letters never strands them: a cancelled migration runs no more work,
/// so its failed entities stay on the dead-letter list (a new migration picks them up)
/// rather than turning pending in a migration nothing will run; a completed one re-opens.
async fn retrying_dead_letters_of_a_cancelled_migration_keeps_them(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let mut d = FakeDomain::new(3000);
    d.poison = vec!["k000001".into()];
    d.delay = Duration::from_millis(20);
    let d = Arc::new(d);
    let (e, cancel, tasks) = engine(db.clone(), d.clone());
    let row = e.start("fakes", MigrationFilter::default()).await.unwrap();
    for _ in 0..1500 {
        if e.ledger().failed_count("fakes").await.unwrap() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    e.cancel(&row.migration_id).await.unwrap();
    wait_status(&e, &row.migration_id, MigrationStatus::Cancelled).await;
    let before = e.ledger().counts(&row.migration_id).await.unwrap();
    assert_eq!(before.failed, 1);
    assert!(before.pending > 0, "cancelled too late to test: {before:?}");

    assert_eq!(e.retry_failed("fakes").await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(e.ledger().failed_count("fakes").await.unwrap(), 1);
    assert_eq!(
        e.ledger().failed("fakes", 10).await.unwrap()[0].key,
        "k000001"
    );
    assert_eq!(e.ledger().counts(&row.migration_id).await.unwrap(), before);
    assert_eq!(
        e.ledger()
            .get(&row.migration_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        MigrationStatus::Cancelled
    );

    // A new migration takes the cancelled one's work, the poison key included.
    let second = e.start("fakes", MigrationFilter::default()).await.unwrap();
    wait_status(&e, &second.migration_id, MigrationStatus::Completed).await;
    assert_eq!(d.written.lock().unwrap().len(), 2999);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

/// The ledger completes a migration only while it has no pending or in-flight work, as one
/// step: work a dead-letter retry puts back keeps it open until that work settles.
async fn completion_waits_for_retried_work(backend: TestBackend) {
    use tandem_sync::migration::ledger::{Inserted, Ledger, MigrationRow, Settlement};
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let ledger = Ledger::new(db.clone());
    let row = MigrationRow {
        migration_id: "2026-12-06T10:00:00.000".into(),
        migration_type: "fakes".into(),
        status: MigrationStatus::Started,
        filter: "{}".into(),
        estimated_record_count: 2,
        when_started_ms: 1,
        when_ended_ms: None,
        cursor: None,
        enumeration_done: false,
    };
    let id = row.migration_id.as_str();
    assert_eq!(
        ledger.insert_unless_active(&row).await.unwrap(),
        Inserted::Inserted
    );
    let keys = vec!["k1".to_string(), "k2".to_string()];
    assert!(ledger.enqueue_page(id, None, &keys, true, 2).await.unwrap());
    assert!(
        !ledger.complete_if_finished(id, 3).await.unwrap(),
        "completed with pending work"
    );

    let claims = ledger.claim(id, 10, 4, 100_000).await.unwrap();
    assert_eq!(claims.len(), 2);
    assert!(
        !ledger.complete_if_finished(id, 5).await.unwrap(),
        "completed with work in flight"
    );
    let settled: Vec<_> = claims
        .iter()
        .map(|c| {
            let s = if c.key == "k1" {
                Settlement::Done { records: 1 }
            } else {
                Settlement::Failed {
                    error: "bad".into(),
                }
            };
            (c.work_id, s)
        })
        .collect();
    ledger.settle(&settled, 6).await.unwrap();

    // A retry re-pends the failed entity before the migration is marked complete.
    assert_eq!(
        ledger.retry_failed("fakes", 7).await.unwrap(),
        vec![id.to_string()]
    );
    assert!(
        !ledger.complete_if_finished(id, 8).await.unwrap(),
        "completed over retried work"
    );
    let again = ledger.claim(id, 10, 9, 100_000).await.unwrap();
    assert_eq!(again.len(), 1);
    ledger
        .settle(&[(again[0].work_id, Settlement::Done { records: 1 })], 10)
        .await
        .unwrap();
    assert!(ledger.complete_if_finished(id, 11).await.unwrap());
    assert!(
        !ledger.complete_if_finished(id, 12).await.unwrap(),
        "completed twice"
    );
    let done = ledger.get(id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.when_ended_ms),
        (MigrationStatus::Completed, Some(11))
    );
    let c = ledger.counts(id).await.unwrap();
    assert_eq!(
        (c.done, c.failed, c.pending, c.in_flight, c.records_migrated),
        (2, 0, 0, 0, 2)
    );
}

async fn crash_mid_run_resumes_exactly(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    let mut d = FakeDomain::new(3000);
    d.delay = Duration::from_millis(5);
    let d = Arc::new(d);
    let (e, id) = start_and_crash_after(&db, &d, 500).await;
    let mid = e.ledger().counts(&id).await.unwrap();
    assert!(mid.done < 3000, "{mid:?}");

    // A new process: same database, same domain (DPS keeps what was written).
    let (e2, cancel2, tasks2) = engine(db.clone(), d.clone());
    wait_status(&e2, &id, MigrationStatus::Completed).await;
    let c = e2.ledger().counts(&id).await.unwrap();
    assert_eq!((c.done, c.failed, c.pending, c.in_flight), (3000, 0, 0, 0));
    assert_eq!(d.written.lock().unwrap().len(), 3000);
    assert_eq!(c.records_migrated, 3000, "each record counted exactly once");
    cancel2.cancel();
    tasks2.close();
    tasks2.wait().await;
}

/// The work table's index names, sorted.
async fn work_indexes(db: &tandem_platform::db::Db) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let sql = if db.is_sqlite() {
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'migration_work' \
         AND sql IS NOT NULL ORDER BY name"
    } else {
        "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'migration_work' \
         AND schemaname = current_schema() AND indexname <> 'migration_work_pkey' ORDER BY indexname"
    };
    db.conn()
        .query_all_raw(db.statement(sql, vec![]))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

/// A ledger made before the partial state indexes, stopped part-way through a migration:
/// the upgrade swaps the indexes and the migration then ends exact.
async fn a_ledger_from_before_the_state_indexes_upgrades_and_resumes(backend: TestBackend) {
    use sea_orm::ConnectionTrait;
    let storage = TestStorage::new(backend).await;
    let db = storage.db("prisoner-from-nomis").await;
    db.migrate::<LedgerMigrator>().await.unwrap();
    // Back to the first schema: its one state index, and no record of the second migration.
    for sql in [
        "DROP INDEX migration_work_pending",
        "DROP INDEX migration_work_in_flight",
        "DROP INDEX migration_work_failed",
        "CREATE INDEX migration_work_claim ON migration_work (migration_id, state, id)",
        "DELETE FROM seaql_migrations WHERE version = 'm0002_migration_work_state_indexes'",
    ] {
        db.conn().execute_unprepared(sql).await.unwrap();
    }
    assert_eq!(
        work_indexes(&db).await,
        ["migration_work_claim", "migration_work_entity"]
    );

    let mut d = FakeDomain::new(1500);
    d.delay = Duration::from_millis(5);
    d.poison = vec!["k000042".into()];
    let d = Arc::new(d);
    let (_, id) = start_and_crash_after(&db, &d, 300).await;

    // The next start-up upgrades the ledger under the unfinished migration.
    db.migrate::<LedgerMigrator>().await.unwrap();
    assert_eq!(
        work_indexes(&db).await,
        [
            "migration_work_entity",
            "migration_work_failed",
            "migration_work_in_flight",
            "migration_work_pending"
        ]
    );
    let (e2, cancel2, tasks2) = engine(db.clone(), d.clone());
    wait_status(&e2, &id, MigrationStatus::Completed).await;
    let c = e2.ledger().counts(&id).await.unwrap();
    assert_eq!((c.done, c.failed, c.pending, c.in_flight), (1499, 1, 0, 0));
    assert_eq!(c.records_migrated, 1499);
    assert_eq!(d.written.lock().unwrap().len(), 1499);
    assert_eq!(e2.ledger().failed_count("fakes").await.unwrap(), 1);
    cancel2.cancel();
    tasks2.close();
    tasks2.wait().await;
}

tandem_platform::both_backends!(
    full_migration_counts_are_exact,
    concurrent_starts_start_one_migration,
    cancel_stops_new_work,
    retrying_dead_letters_of_a_cancelled_migration_keeps_them,
    completion_waits_for_retried_work,
    crash_mid_run_resumes_exactly,
    a_ledger_from_before_the_state_indexes_upgrades_and_resumes
);
