//! Moves committed outbox rows to the bus, in insertion order, and marks them published.
//!
//! At least once: a crash after publishing and before marking republishes the batch on
//! restart, and the bus ignores an event id a queue already holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, Value};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait};
use serde_json::Value as Json;
use tandem_platform::db::Db;
use tandem_platform::events::OutgoingEvent;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Outbox;
use crate::bus::{BusError, EventBus};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows moved per round trip.
    pub batch_size: usize,
    /// Fallback poll when no `committed()` wake-up arrives (another process wrote).
    pub poll_interval: Duration,
    /// Published rows are kept this long (for inspection), then deleted.
    pub retention: Duration,
    pub cleanup_interval: Duration,
    /// How long a stopping relay keeps trying to drain before giving up.
    pub drain_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval: Duration::from_millis(200),
            retention: Duration::from_secs(3600),
            cleanup_interval: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox read or write failed: {0}")]
    Db(#[from] DbErr),
    #[error("publish failed: {0}")]
    Bus(#[from] BusError),
}

/// The relay of one service database. Run one per database per process; across
/// processes (PostgreSQL) an advisory lock lets only one relay at a time.
#[derive(Clone)]
pub struct OutboxRelay {
    service: String,
    db: Db,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
}

/// On PostgreSQL several processes may serve one service; only one relays at a time, so
/// events of one aggregate never overtake each other. Keyed by schema.
const PG_RELAY_LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.tandem_outbox_relay')) AS locked";

impl OutboxRelay {
    /// The relay of the producer database `db` (migrated with [`migration`](super::migration)).
    pub fn new(db: Db, bus: Arc<dyn EventBus>) -> Self {
        Self {
            service: "outbox".to_string(),
            db,
            bus,
            config: RelayConfig::default(),
        }
    }

    /// Names the relay (the service) in logs and the `outbox_relayed_total` metric.
    pub fn named(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    pub fn with_config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// Publishes one batch of committed, unpublished rows and marks them. Returns how many.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        match self.db.backend() {
            DbBackend::Postgres => {
                let txn = self.db.conn().begin().await?;
                let locked = txn
                    .query_one_raw(Statement::from_string(DbBackend::Postgres, PG_RELAY_LOCK))
                    .await?
                    .map(|r| r.try_get::<bool>("", "locked"))
                    .transpose()?
                    .unwrap_or(false);
                if !locked {
                    txn.rollback().await?;
                    return Ok(0); // another process is relaying this database
                }
                // The transaction holds only the advisory lock until the marks: no row
                // locks across the publish, so producers are never blocked by it.
                let n = self.batch(&txn).await?;
                txn.commit().await?;
                Ok(n)
            }
            _ => self.batch(self.db.conn()).await,
        }
    }

    async fn batch<C: ConnectionTrait>(&self, conn: &C) -> Result<usize, RelayError> {
        let select = Query::select()
            .columns([
                Outbox::Seq,
                Outbox::Id,
                Outbox::Topic,
                Outbox::EventType,
                Outbox::OrderingKey,
                Outbox::Body,
                Outbox::TraceId,
            ])
            .from(Outbox::Table)
            .and_where(Expr::col(Outbox::PublishedAtMs).is_null())
            .order_by(Outbox::Seq, Order::Asc)
            .limit(self.config.batch_size as u64)
            .to_owned();
        let rows = conn.query_all(&select).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("", "seq")?;
            let id: String = row.try_get("", "id")?;
            seqs.push(seq);
            let Ok(id) = Uuid::parse_str(&id) else {
                // Not written by `enqueue`; publishing it could never be de-duplicated.
                tracing::error!(service = %self.service, seq, id, "outbox row with an invalid id skipped");
                continue;
            };
            let body: String = row.try_get("", "body")?;
            events.push(OutgoingEvent {
                id,
                topic: row.try_get("", "topic")?,
                event_type: row.try_get("", "event_type")?,
                ordering_key: row.try_get("", "ordering_key")?,
                body: serde_json::from_str(&body).unwrap_or(Json::String(body)),
                trace_id: row.try_get("", "trace_id")?,
            });
        }
        self.bus.publish_batch(&events).await?;
        let mark = Query::update()
            .table(Outbox::Table)
            .value(
                Outbox::PublishedAtMs,
                Value::BigInt(Some(tandem_platform::time::now_ms())),
            )
            .and_where(Expr::col(Outbox::Seq).is_in(seqs.iter().copied()))
            .to_owned();
        conn.execute(&mark).await?;
        metrics::counter!("outbox_relayed_total", "service" => self.service.clone())
            .increment(events.len() as u64);
        Ok(seqs.len())
    }

    /// Relays until nothing committed is left. Returns how many rows moved.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let n = self.relay_once().await?;
            total += n;
            if n < self.config.batch_size {
                return Ok(total);
            }
        }
    }

    /// Deletes published rows older than the retention.
    pub async fn cleanup(&self) -> Result<u64, RelayError> {
        let cutoff = tandem_platform::time::now_ms() - crate::clock::ms(self.config.retention);
        let delete = Query::delete()
            .from_table(Outbox::Table)
            .and_where(Expr::col(Outbox::PublishedAtMs).lt(cutoff))
            .to_owned();
        Ok(self.db.conn().execute(&delete).await?.rows_affected())
    }

    /// Runs until `cancel`, woken by [`committed`](super::committed) with a poll fallback;
    /// on cancellation drains what is committed, then stops.
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(cancel).await })
    }

    /// The relay loop of [`spawn`](Self::spawn), for callers with their own task tracker.
    pub async fn run(self, cancel: CancellationToken) {
        let mut commits = super::commits();
        let mut last_cleanup = Instant::now();
        let mut failures: u32 = 0;
        tracing::debug!(service = %self.service, "outbox relay started");
        loop {
            match self.drain().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(service = %self.service, error = %e, failures, "outbox relay failed; will retry");
                }
            }
            if last_cleanup.elapsed() >= self.config.cleanup_interval {
                last_cleanup = Instant::now();
                if let Err(e) = self.cleanup().await {
                    tracing::warn!(service = %self.service, error = %e, "outbox cleanup failed");
                }
            }
            // Back off while the bus or the database is down, up to a few seconds.
            let pause = if failures == 0 {
                self.config.poll_interval
            } else {
                (self.config.poll_interval * Ord::min(failures, 25)).min(Duration::from_secs(5))
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = commits.changed(), if failures == 0 => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let deadline = Instant::now() + self.config.drain_timeout;
        loop {
            match self.drain().await {
                Ok(n) => {
                    tracing::debug!(service = %self.service, drained = n, "outbox relay stopped");
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(service = %self.service, error = %e, "outbox drain failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!(service = %self.service, error = %e, "outbox relay stopped with events undelivered; they go on the next start");
                    return;
                }
            }
        }
    }
}
