//! Runs migrations from the ledger: one enumerator walks the NOMIS key space into work
//! rows (bounded look-ahead), a few workers claim batches and hand them to the domain.
//!
//! Every process hosting the engine runs the same loops; the ledger's conditional updates
//! (cursor compare-and-set, `SKIP LOCKED` claims, leases) make replicas share a migration
//! without duplicates, and make a restarted process carry on where the last one stopped.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_platform::{
    db::{Db, DbError},
    time::now_ms,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ledger::{Inserted, Ledger, MigrationRow, MigrationStatus, Settlement, WorkState};
use super::{DomainError, EntityError, MigrationDomain, MigrationFilter};

/// Tuning of the engine; the defaults suit the embedded backend on a small machine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Entities handed to the domain at once.
    pub batch_size: usize,
    /// Concurrent batches per migration per process (bounds the load on NOMIS and DPS).
    pub workers: usize,
    /// Keys read from NOMIS per page.
    pub page_size: usize,
    /// Pending entities kept ahead of the workers.
    pub lookahead: usize,
    /// How long a claimed batch stays with its worker before others may take it over.
    pub lease: Duration,
    /// Attempts before an entity is dead-lettered.
    pub max_attempts: i32,
    /// Wait before attempt n+1 after attempt n failed (last entry repeats).
    pub backoff: Vec<Duration>,
    /// How often idle loops look again when nothing woke them.
    pub poll: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            workers: 4,
            page_size: 1000,
            lookahead: 20_000,
            lease: Duration::from_secs(30),
            max_attempts: 3,
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(10),
            ],
            poll: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("unknown migration type '{0}'")]
    UnknownType(String),
    #[error("a {0} migration is already in progress: wait for it to finish or cancel it first")]
    InProgress(String),
    #[error("migration {0} not found")]
    NotFound(String),
    #[error("migration {0} is {1}, so it cannot be {2}")]
    WrongStatus(String, &'static str, &'static str),
    #[error("Validation failure: {0}")]
    BadFilter(String),
    #[error("could not read NOMIS: {0}")]
    Source(#[from] DomainError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<MigrationError> for tandem_platform::ApiError {
    fn from(e: MigrationError) -> Self {
        use tandem_platform::ApiError;
        match &e {
            MigrationError::UnknownType(_) => ApiError::not_found(e.to_string()),
            MigrationError::NotFound(_) => ApiError::not_found(e.to_string()),
            MigrationError::InProgress(_) => ApiError::conflict(e.to_string()),
            MigrationError::WrongStatus(..) | MigrationError::BadFilter(_) => {
                ApiError::bad_request(e.to_string())
            }
            MigrationError::Source(_) => ApiError::unavailable(e.to_string()),
            MigrationError::Db(_) => ApiError::unavailable(e.to_string()),
        }
    }
}

/// The engine of one hosting service.
pub struct MigrationEngine {
    ledger: Ledger,
    domains: BTreeMap<&'static str, Arc<dyn MigrationDomain>>,
    config: EngineConfig,
    /// Migrations with loops running in this process.
    running: Mutex<HashSet<String>>,
    work_added: Notify,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl MigrationEngine {
    pub fn new(
        db: Db,
        domains: Vec<Arc<dyn MigrationDomain>>,
        config: EngineConfig,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            ledger: Ledger::new(db),
            domains: domains
                .into_iter()
                .map(|d| (d.migration_type(), d))
                .collect(),
            config,
            running: Mutex::new(HashSet::new()),
            work_added: Notify::new(),
            cancel,
            tasks,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn domain(
        &self,
        migration_type: &str,
    ) -> Result<&Arc<dyn MigrationDomain>, MigrationError> {
        self.domains
            .get(migration_type)
            .ok_or_else(|| MigrationError::UnknownType(migration_type.to_string()))
    }

    pub fn migration_types(&self) -> Vec<&'static str> {
        self.domains.keys().copied().collect()
    }

    /// Starts a migration: 409 while one of the same type is in progress.
    pub async fn start(
        self: &Arc<Self>,
        migration_type: &str,
        filter: MigrationFilter,
    ) -> Result<MigrationRow, MigrationError> {
        let domain = self.domain(migration_type)?.clone();
        if let Some(problem) = filter.problem() {
            return Err(MigrationError::BadFilter(problem));
        }
        if !filter.prison_ids.is_empty() && !domain.filters_by_prison() {
            return Err(MigrationError::BadFilter(format!(
                "prisonIds: a {migration_type} migration cannot be limited to prisons; leave prisonIds out to migrate them all"
            )));
        }
        if let Some(latest) = self.ledger.list(migration_type).await?.first()
            && latest.status.is_active()
        {
            return Err(MigrationError::InProgress(migration_type.to_string()));
        }
        let estimate = domain.estimate(&filter).await?;
        let filter_json = serde_json::to_string(&filter).unwrap_or_else(|_| "{}".into());
        // Ids read like the real service's (a local timestamp) but to the millisecond, and
        // are retried on the rare collision instead of failing the start.
        for _ in 0..20 {
            let now = tandem_platform::time::now();
            let row = MigrationRow {
                migration_id: tandem_platform::time::london_local(now)
                    .format("%Y-%m-%dT%H:%M:%S%.3f")
                    .to_string(),
                migration_type: migration_type.to_string(),
                status: MigrationStatus::Started,
                filter: filter_json.clone(),
                estimated_record_count: estimate as i64,
                when_started_ms: now.timestamp_millis(),
                when_ended_ms: None,
                cursor: None,
                enumeration_done: false,
            };
            match self.ledger.insert_unless_active(&row).await? {
                Inserted::Inserted => {
                    tracing::info!(migration_id = %row.migration_id, migration_type, estimate, "migration started");
                    self.spawn(row.clone());
                    return Ok(row);
                }
                // Started by another request while NOMIS counted for this one.
                Inserted::TypeActive(_) => {
                    return Err(MigrationError::InProgress(migration_type.to_string()));
                }
                Inserted::IdTaken => {}
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Err(MigrationError::Db(DbError::Unavailable(
            "could not allocate a migration id".into(),
        )))
    }

    /// Stops new work at once; the migration becomes CANCELLED when in-flight work settles.
    pub async fn cancel(&self, migration_id: &str) -> Result<MigrationRow, MigrationError> {
        let row = self
            .ledger
            .get(migration_id)
            .await?
            .ok_or_else(|| MigrationError::NotFound(migration_id.to_string()))?;
        if !row.status.is_active() {
            return Err(MigrationError::WrongStatus(
                migration_id.to_string(),
                row.status.as_str(),
                "cancelled",
            ));
        }
        self.ledger
            .transition(
                migration_id,
                &[MigrationStatus::Started],
                MigrationStatus::CancelledRequested,
                None,
            )
            .await?;
        self.work_added.notify_waiters();
        tracing::info!(migration_id, "migration cancel requested");
        Ok(self.ledger.get(migration_id).await?.unwrap_or(row))
    }

    /// Re-checks a migration's completion (and re-opens loops for retried work).
    pub async fn refresh(
        self: &Arc<Self>,
        migration_id: &str,
    ) -> Result<MigrationRow, MigrationError> {
        let row = self
            .ledger
            .get(migration_id)
            .await?
            .ok_or_else(|| MigrationError::NotFound(migration_id.to_string()))?;
        if row.status != MigrationStatus::Completed {
            return Err(MigrationError::WrongStatus(
                migration_id.to_string(),
                row.status.as_str(),
                "refreshed",
            ));
        }
        Ok(row)
    }

    /// Puts a type's failed entities back to work.
    pub async fn retry_failed(
        self: &Arc<Self>,
        migration_type: &str,
    ) -> Result<usize, MigrationError> {
        self.domain(migration_type)?;
        let reopened = self.ledger.retry_failed(migration_type, now_ms()).await?;
        for id in &reopened {
            if let Some(row) = self.ledger.get(id).await? {
                self.spawn(row);
            }
        }
        self.work_added.notify_waiters();
        Ok(reopened.len())
    }

    /// Picks up every migration that still has work: at start-up, and periodically so that
    /// replicas join migrations started elsewhere.
    pub fn watch(self: &Arc<Self>) {
        let engine = self.clone();
        self.tasks.spawn(async move {
            loop {
                match engine.ledger.active().await {
                    Ok(rows) => rows.into_iter().for_each(|r| engine.spawn(r)),
                    Err(e) => tracing::warn!(error = %e, "cannot read active migrations"),
                }
                tokio::select! {
                    _ = engine.cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
    }

    fn spawn(self: &Arc<Self>, row: MigrationRow) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(row.migration_id.clone()) {
                return;
            }
        }
        let Ok(domain) = self.domain(&row.migration_type).cloned() else {
            tracing::error!(migration_type = %row.migration_type, "no domain for migration type");
            return;
        };
        let engine = self.clone();
        self.tasks.spawn(async move {
            let id = row.migration_id.clone();
            engine.clone().run(row, domain).await;
            engine
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    async fn run(self: Arc<Self>, row: MigrationRow, domain: Arc<dyn MigrationDomain>) {
        let id = row.migration_id.clone();
        let filter: MigrationFilter = serde_json::from_str(&row.filter).unwrap_or_default();
        let stop = self.cancel.child_token();
        let mut handles = Vec::new();
        {
            let engine = self.clone();
            let (domain, filter, id, stop) =
                (domain.clone(), filter.clone(), id.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                engine.enumerate(&id, &*domain, &filter, stop).await
            }));
        }
        for _ in 0..self.config.workers.max(1) {
            let engine = self.clone();
            let (domain, id, stop) = (domain.clone(), id.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                engine.work(&id, &*domain, stop).await
            }));
        }
        for h in handles {
            let _ = h.await;
        }
        stop.cancel();
    }

    async fn idle(&self, stop: &CancellationToken) {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.work_added.notified() => {}
            _ = tokio::time::sleep(self.config.poll) => {}
        }
    }

    async fn status(&self, id: &str) -> Option<MigrationRow> {
        match self.ledger.get(id).await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(migration_id = id, error = %e, "cannot read migration");
                None
            }
        }
    }

    /// Walks the NOMIS keys into the ledger, keeping `lookahead` pending entities ahead.
    async fn enumerate(
        &self,
        id: &str,
        domain: &dyn MigrationDomain,
        filter: &MigrationFilter,
        stop: CancellationToken,
    ) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let Some(row) = self.status(id).await else {
                self.idle(&stop).await;
                continue;
            };
            if row.enumeration_done || row.status != MigrationStatus::Started {
                return;
            }
            match self.ledger.count_in_state(id, WorkState::Pending).await {
                Ok(n) if n as usize >= self.config.lookahead => {
                    self.idle(&stop).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(migration_id = id, error = %e, "cannot count pending work");
                    self.idle(&stop).await;
                    continue;
                }
            }
            let keys = match domain
                .next_keys(filter, row.cursor.as_deref(), self.config.page_size)
                .await
            {
                Ok(keys) => {
                    failures = 0;
                    keys
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(migration_id = id, error = %e, failures, "cannot read the next page of NOMIS keys; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))) => {}
                    }
                    continue;
                }
            };
            let exhausted = keys.len() < self.config.page_size;
            match self
                .ledger
                .enqueue_page(id, row.cursor.as_deref(), &keys, exhausted, now_ms())
                .await
            {
                Ok(true) => self.work_added.notify_waiters(),
                Ok(false) => {} // another replica moved the cursor: reload and go on
                Err(e) => {
                    tracing::warn!(migration_id = id, error = %e, "cannot record NOMIS keys; will retry");
                    self.idle(&stop).await;
                }
            }
            if exhausted {
                self.work_added.notify_waiters();
            }
        }
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let i = (attempts.max(1) - 1) as usize;
        self.config
            .backoff
            .get(i)
            .or(self.config.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Claims batches and migrates them until the migration is over.
    async fn work(&self, id: &str, domain: &dyn MigrationDomain, stop: CancellationToken) {
        let mut last_release = 0i64;
        while !stop.is_cancelled() {
            let Some(row) = self.status(id).await else {
                self.idle(&stop).await;
                continue;
            };
            let now = now_ms();
            match row.status {
                MigrationStatus::Started => {}
                MigrationStatus::CancelledRequested => {
                    // No new claims; the first worker to see nothing in flight ends it.
                    match self.ledger.count_in_state(id, WorkState::InFlight).await {
                        Ok(0) => {
                            if let Ok(true) = self
                                .ledger
                                .transition(
                                    id,
                                    &[MigrationStatus::CancelledRequested],
                                    MigrationStatus::Cancelled,
                                    Some(now),
                                )
                                .await
                            {
                                tracing::info!(migration_id = id, "migration cancelled");
                            }
                            return;
                        }
                        _ => {
                            let _ = self.ledger.release_expired(id, now).await;
                            self.idle(&stop).await;
                            continue;
                        }
                    }
                }
                MigrationStatus::Completed | MigrationStatus::Cancelled => return,
            }
            if now - last_release > 1000 {
                last_release = now;
                if let Err(e) = self.ledger.release_expired(id, now).await {
                    tracing::warn!(migration_id = id, error = %e, "cannot release expired leases");
                }
            }
            let lease_until = now + self.config.lease.as_millis() as i64;
            let claims = match self
                .ledger
                .claim(id, self.config.batch_size, now, lease_until)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(migration_id = id, error = %e, "cannot claim work");
                    self.idle(&stop).await;
                    continue;
                }
            };
            if claims.is_empty() {
                if row.enumeration_done {
                    match self.ledger.complete_if_finished(id, now_ms()).await {
                        Ok(true) => {
                            let counts = self.ledger.counts(id).await.unwrap_or_default();
                            tracing::info!(
                                migration_id = id,
                                migrated = counts.records_migrated,
                                failed = counts.failed,
                                "migration completed"
                            );
                            return;
                        }
                        // Work is still open (or came back through a retry), or the status
                        // moved on: the next round reads it again.
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(migration_id = id, error = %e, "cannot check for open work")
                        }
                    }
                }
                self.idle(&stop).await;
                continue;
            }
            let keys: Vec<String> = claims.iter().map(|c| c.key.clone()).collect();
            let outcomes = domain.migrate(id, &keys).await;
            let now = now_ms();
            let settlements: Vec<(i64, Settlement)> = claims
                .iter()
                .enumerate()
                .map(|(i, claim)| {
                    let outcome = outcomes
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| Err(EntityError::Retryable("the domain returned no outcome".into())));
                    let settlement = match outcome {
                        Ok(records) => Settlement::Done { records },
                        Err(EntityError::Retryable(error)) if claim.attempts < self.config.max_attempts => {
                            Settlement::RetryAfter {
                                not_before_ms: now + self.backoff(claim.attempts).as_millis() as i64,
                                error,
                            }
                        }
                        Err(e) => {
                            tracing::warn!(migration_id = id, key = %claim.key, error = e.message(), "entity failed");
                            metrics::counter!("migration_entities_failed_total").increment(1);
                            Settlement::Failed { error: e.message().to_string() }
                        }
                    };
                    (claim.work_id, settlement)
                })
                .collect();
            metrics::counter!("migration_entities_settled_total")
                .increment(settlements.len() as u64);
            if let Err(e) = self.ledger.settle(&settlements, now).await {
                // The leases expire and the entities are claimed again: the domain step is idempotent.
                tracing::warn!(migration_id = id, error = %e, "cannot record outcomes; the batch will be retried");
            }
        }
    }
}
