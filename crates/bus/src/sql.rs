//! The embedded bus: queues as rows in a database of its own (a `bus` SQLite file or a
//! `bus` PostgreSQL schema), leased with a visibility timeout like SQS.
//!
//! - publish fans out at publish time (SNS → SQS): one `INSERT … SELECT` per event writes a
//!   row for every subscription of the topic whose filter matches; `UNIQUE(queue, event_id)`
//!   makes a republish a no-op.
//! - receive is one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …` that leases due
//!   rows in visibility order, skipping a row while an earlier row with its ordering key is
//!   still pending, in flight or backing off. A leased row past its receive limit (its
//!   lease expired too often) moves to the DLQ instead of being delivered.
//! - the DLQ is the same table: dead-lettered rows keep their queue, carry
//!   `dead_lettered_at_ms`, and park `visible_at_ms` at [`DEAD`] so the lease scan never
//!   walks them. Redrive therefore goes back to the row's own queue and nowhere else.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Value};
use tandem_platform::db::Db;
use tandem_platform::events::OutgoingEvent;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::bus::{BusError, Delivery, DlqMessage, EventBus, QueueStats, Settled, Subscription};
use crate::clock::{Clock, SystemClock, ms};

mod schema;

pub use schema::BusMigrator;
use schema::{Message as M, Subscription as S, SubscriptionFilter as F};

/// `visible_at_ms` of a dead-lettered row: never due.
pub const DEAD: i64 = i64::MAX;

const FAN_OUT: &str = "\
INSERT INTO message (queue, event_id, event_type, ordering_key, body, trace_id, receive_count, visible_at_ms, enqueued_at_ms) \
SELECT s.queue, $1, $2, $3, $4, $5, 0, $6, $6 FROM subscription s \
WHERE s.topic = $7 AND (\
 NOT EXISTS (SELECT 1 FROM subscription_filter f WHERE f.queue = s.queue) \
 OR EXISTS (SELECT 1 FROM subscription_filter f WHERE f.queue = s.queue \
   AND (f.event_type = $2 OR (f.prefix IS NOT NULL AND substr($2, 1, length(f.prefix)) = f.prefix)))) \
ON CONFLICT (queue, event_id) DO NOTHING \
RETURNING queue";

/// `{lock}` is `FOR UPDATE OF m SKIP LOCKED` on PostgreSQL (concurrent leasers skip each
/// other's rows) and empty on SQLite (one writer at a time).
const LEASE: &str = "\
UPDATE message SET visible_at_ms = $3, receive_count = receive_count + 1, receipt = $4 \
WHERE id IN (SELECT m.id FROM message m \
 WHERE m.queue = $1 AND m.visible_at_ms <= $2 \
 AND (m.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM message p \
   WHERE p.queue = m.queue AND p.ordering_key = m.ordering_key AND p.id < m.id \
   AND p.dead_lettered_at_ms IS NULL)) \
 ORDER BY m.visible_at_ms, m.id LIMIT $5{lock}) \
RETURNING id, event_id, event_type, ordering_key, body, trace_id, receive_count";

const DELAY: &str = "UPDATE message SET visible_at_ms = $3, receipt = NULL, last_error = $4 \
WHERE id = $1 AND receipt = $2 AND dead_lettered_at_ms IS NULL";

const DEAD_LETTER: &str = "UPDATE message SET visible_at_ms = $3, dead_lettered_at_ms = $4, receipt = NULL, last_error = $5 \
WHERE id = $1 AND receipt = $2 AND dead_lettered_at_ms IS NULL";

const STATS: &str = "SELECT \
 COALESCE(SUM(CASE WHEN dead_lettered_at_ms IS NULL AND NOT (receipt IS NOT NULL AND visible_at_ms > $2) THEN 1 ELSE 0 END), 0) AS depth, \
 COALESCE(SUM(CASE WHEN dead_lettered_at_ms IS NULL AND receipt IS NOT NULL AND visible_at_ms > $2 THEN 1 ELSE 0 END), 0) AS in_flight, \
 COALESCE(SUM(CASE WHEN dead_lettered_at_ms IS NOT NULL THEN 1 ELSE 0 END), 0) AS dlq_depth \
FROM message WHERE queue = $1";

const PEEK_DLQ: &str = "SELECT id, event_id, event_type, body, receive_count, last_error, dead_lettered_at_ms, enqueued_at_ms \
FROM message WHERE queue = $1 AND visible_at_ms = $2 AND dead_lettered_at_ms IS NOT NULL ORDER BY id LIMIT $3";

const REDRIVE: &str = "UPDATE message SET visible_at_ms = $2, dead_lettered_at_ms = NULL, receive_count = 0, receipt = NULL \
WHERE queue = $1 AND visible_at_ms = $3 AND dead_lettered_at_ms IS NOT NULL";

const PURGE_QUEUE: &str = "DELETE FROM message WHERE queue = $1 AND dead_lettered_at_ms IS NULL";
const PURGE_DLQ: &str = "DELETE FROM message WHERE queue = $1 AND dead_lettered_at_ms IS NOT NULL";

/// Why a message that was never acknowledged went to the DLQ.
const EXPIRED: &str = "not acknowledged within the visibility timeout";

/// The embedded [`EventBus`]. Cheap to clone (one shared pool, caches and wake-ups).
///
/// Queue settings are cached per process when first read or declared; a queue
/// redeclared with new settings by another process is seen here after a restart.
#[derive(Clone)]
pub struct SqlBus {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: Arc<dyn Clock>,
    lease_sql: String,
    subscriptions: RwLock<HashMap<String, Arc<Subscription>>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// SQLite has one writer: writers in this process queue here, in order, instead of
    /// colliding in SQLite's busy handler (which sleeps in steps of milliseconds).
    writer: tokio::sync::Mutex<()>,
    /// Acks waiting for the next group delete, and the lock of whoever is deleting.
    acks: Mutex<Vec<PendingAck>>,
    ack_flush: tokio::sync::Mutex<()>,
    /// Writes since start, so the checkpointer idles when the bus does.
    writes: AtomicU64,
}

/// How often the SQLite write-ahead log is folded back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Keeps the bus's SQLite WAL short with passive checkpoints off the hot path. Every
/// message is an insert, an update and a delete across four indexes, so without this the
/// WAL reaches SQLite's auto-checkpoint size every ~100 messages and the unlucky commit
/// pays for the checkpoint's copy and fsync (15-20 ms stalls, seen here) while holding
/// the write lock. A passive checkpoint never blocks writers. Ends with the bus.
async fn checkpoints(inner: std::sync::Weak<Inner>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(CHECKPOINT_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        let writes = inner.writes.load(Ordering::Relaxed);
        if writes == seen {
            continue;
        }
        seen = writes;
        if let Err(e) = inner
            .db
            .conn()
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(error = %e, "bus checkpoint failed");
        }
    }
}

/// An ack queued for a group delete: one statement and one commit for every ack that
/// arrived while the previous delete ran.
struct PendingAck {
    id: i64,
    receipt: String,
    queue: String,
    keyed: bool,
    done: oneshot::Sender<Result<bool, BusError>>,
}

/// Acks per delete statement (two bound values each).
const ACK_CHUNK: usize = 200;

impl std::fmt::Debug for SqlBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBus")
            .field("backend", &self.inner.db.backend())
            .finish()
    }
}

impl SqlBus {
    /// Connects to the bus's own database (service name `bus`: `bus.db` beside the
    /// services' files, or a `bus` schema on PostgreSQL), applies its schema and opens it.
    pub async fn connect(
        storage: &tandem_platform::config::StorageConfig,
    ) -> Result<Self, BusError> {
        let target = storage.target_for(tandem_platform::config::services::BUS);
        Self::new(Db::connect(&target).await?).await
    }

    /// Applies the bus schema to `db` (idempotent) and opens the bus on it.
    pub async fn new(db: Db) -> Result<Self, BusError> {
        db.migrate::<BusMigrator>().await?;
        Ok(Self::with_clock(db, Arc::new(SystemClock)))
    }

    /// A bus on an already migrated database, reading time from `clock` (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        let lock = match db.backend() {
            DbBackend::Postgres => " FOR UPDATE OF m SKIP LOCKED",
            _ => "",
        };
        let bus = Self {
            inner: Arc::new(Inner {
                lease_sql: LEASE.replace("{lock}", lock),
                db,
                clock,
                subscriptions: RwLock::new(HashMap::new()),
                wakers: Mutex::new(HashMap::new()),
                writer: tokio::sync::Mutex::new(()),
                acks: Mutex::new(Vec::new()),
                ack_flush: tokio::sync::Mutex::new(()),
                writes: AtomicU64::new(0),
            }),
        };
        if bus.inner.db.is_sqlite()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(checkpoints(Arc::downgrade(&bus.inner)));
        }
        bus
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Held around every write on SQLite; nothing on PostgreSQL (row locks suffice).
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.inner.db.is_sqlite() {
            self.inner.writes.fetch_add(1, Ordering::Relaxed);
            Some(self.inner.writer.lock().await)
        } else {
            None
        }
    }

    /// Deletes a group of acked messages; returns the ids that were still leased.
    async fn delete_acked(&self, batch: &[PendingAck]) -> Result<HashSet<i64>, BusError> {
        let mut deleted = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(ACK_CHUNK) {
            let mut any = Condition::any();
            for p in chunk {
                any = any.add(
                    Condition::all()
                        .add(Expr::col(M::Id).eq(p.id))
                        .add(Expr::col(M::Receipt).eq(p.receipt.as_str())),
                );
            }
            let delete = Query::delete()
                .from_table(M::Table)
                .cond_where(any)
                .and_where(Expr::col(M::DeadLetteredAtMs).is_null())
                .returning_col(M::Id)
                .to_owned();
            for row in self.db().conn().query_all(&delete).await? {
                deleted.insert(row.try_get::<i64>("", "id")?);
            }
        }
        Ok(deleted)
    }

    /// Runs the group delete for whatever acks are queued, if nobody else is.
    async fn flush_acks(&self) {
        let _flushing = self.inner.ack_flush.lock().await;
        let batch = std::mem::take(&mut *self.inner.acks.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return; // an earlier flusher took ours
        }
        let result = {
            let _w = self.write_lock().await;
            self.delete_acked(&batch).await
        };
        let mut woken: Vec<&str> = Vec::new();
        for p in &batch {
            if p.keyed
                && !woken.contains(&p.queue.as_str())
                && result.as_ref().is_ok_and(|d| d.contains(&p.id))
            {
                woken.push(&p.queue);
            }
        }
        for q in woken {
            // The next message with this key may go now.
            self.wake(q);
        }
        for p in batch {
            let _ = p.done.send(
                result
                    .as_ref()
                    .map(|d| d.contains(&p.id))
                    .map_err(Clone::clone),
            );
        }
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.to_string()).or_default().clone()
    }

    fn wake(&self, queue: &str) {
        self.waker(queue).notify_one();
    }

    fn cached(&self, queue: &str) -> Option<Arc<Subscription>> {
        let map = self
            .inner
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner());
        map.get(queue).cloned()
    }

    fn cache(&self, sub: Subscription) -> Arc<Subscription> {
        let sub = Arc::new(sub);
        let mut map = self
            .inner
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        map.insert(sub.queue.clone(), sub.clone());
        sub
    }

    /// The subscription of `queue`, from memory or (declared by another process) the table.
    async fn settings(&self, queue: &str) -> Result<Arc<Subscription>, BusError> {
        if let Some(s) = self.cached(queue) {
            return Ok(s);
        }
        let select = Query::select()
            .columns([
                S::Queue,
                S::Topic,
                S::Dlq,
                S::MaxReceiveCount,
                S::VisibilityTimeoutMs,
                S::BackoffMs,
                S::Concurrency,
            ])
            .from(S::Table)
            .and_where(Expr::col(S::Queue).eq(queue))
            .to_owned();
        let row = self
            .db()
            .conn()
            .query_one(&select)
            .await?
            .ok_or_else(|| BusError::UnknownQueue(queue.to_string()))?;
        let filters = Query::select()
            .column(F::EventType)
            .from(F::Table)
            .and_where(Expr::col(F::Queue).eq(queue))
            .to_owned();
        let mut event_types = Vec::new();
        for r in self.db().conn().query_all(&filters).await? {
            event_types.push(r.try_get::<String>("", "event_type")?);
        }
        event_types.sort();
        let backoff: String = row.try_get("", "backoff_ms")?;
        let sub = Subscription {
            queue: row.try_get("", "queue")?,
            topic: row.try_get("", "topic")?,
            event_types,
            dlq: row.try_get("", "dlq")?,
            max_receive_count: Ord::max(row.try_get::<i32>("", "max_receive_count")?, 1) as u32,
            visibility_timeout: Duration::from_millis(Ord::max(
                row.try_get::<i64>("", "visibility_timeout_ms")?,
                1,
            ) as u64),
            backoff: backoff
                .split(',')
                .filter_map(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
                .collect(),
            concurrency: Ord::max(row.try_get::<i32>("", "concurrency")?, 1) as usize,
        };
        Ok(self.cache(sub))
    }

    /// Resolves a queue or DLQ name: `(queue, is_dlq)`.
    async fn resolve(&self, name: &str) -> Result<(String, bool), BusError> {
        let select = Query::select()
            .columns([S::Queue, S::Dlq])
            .from(S::Table)
            .and_where(Expr::col(S::Queue).eq(name).or(Expr::col(S::Dlq).eq(name)))
            .to_owned();
        let row = self
            .db()
            .conn()
            .query_one(&select)
            .await?
            .ok_or_else(|| BusError::UnknownQueue(name.to_string()))?;
        let queue: String = row.try_get("", "queue")?;
        let is_dlq = queue != name;
        Ok((queue, is_dlq))
    }

    /// Runs one write statement.
    async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, BusError> {
        let db = self.db();
        let _w = self.write_lock().await;
        Ok(db
            .conn()
            .execute_raw(db.statement(sql, values))
            .await?
            .rows_affected())
    }

    fn message_id(delivery: &Delivery) -> Option<i64> {
        delivery.message_id.parse().ok()
    }

    async fn to_dlq(&self, delivery: &Delivery, id: i64, error: &str) -> Result<Settled, BusError> {
        let now = self.now();
        let n = self
            .exec(
                DEAD_LETTER,
                vec![
                    id.into(),
                    delivery.receipt.clone().into(),
                    DEAD.into(),
                    now.into(),
                    error.to_string().into(),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(Settled::LeaseLost);
        }
        // Unblocks the next message with this ordering key.
        self.wake(&delivery.queue);
        Ok(Settled::DeadLettered)
    }

    /// Moves leased rows whose lease expired once too often to the DLQ.
    async fn expire(&self, queue: &str, ids: Vec<i64>, receipt: &str) -> Result<(), BusError> {
        let now = self.now();
        let update = Query::update()
            .table(M::Table)
            .value(M::VisibleAtMs, DEAD)
            .value(M::DeadLetteredAtMs, now)
            .value(M::Receipt, Option::<String>::None)
            .value(M::ReceiveCount, Expr::col(M::ReceiveCount).sub(1))
            .value(
                M::LastError,
                Func::coalesce([Expr::col(M::LastError), Expr::value(EXPIRED)]),
            )
            .and_where(Expr::col(M::Id).is_in(ids.iter().copied()))
            .and_where(Expr::col(M::Receipt).eq(receipt))
            .to_owned();
        let n = {
            let _w = self.write_lock().await;
            self.db().conn().execute(&update).await?.rows_affected()
        };
        tracing::warn!(
            queue,
            count = n,
            "messages moved to the dead-letter queue: {EXPIRED}"
        );
        metrics::counter!("messages_dead_lettered_total", "queue" => queue.to_string())
            .increment(n);
        self.wake(queue);
        Ok(())
    }
}

fn delivery(queue: &str, receipt: &str, row: &QueryResult) -> Result<(i64, Delivery), BusError> {
    let id: i64 = row.try_get("", "id")?;
    let receive_count: i32 = row.try_get("", "receive_count")?;
    Ok((
        id,
        Delivery {
            queue: queue.to_string(),
            message_id: id.to_string(),
            event_id: row.try_get("", "event_id")?,
            event_type: row.try_get("", "event_type")?,
            ordering_key: row.try_get("", "ordering_key")?,
            body: row.try_get("", "body")?,
            trace_id: row.try_get("", "trace_id")?,
            receive_count: u32::try_from(receive_count).unwrap_or(0),
            receipt: receipt.to_string(),
        },
    ))
}

#[async_trait::async_trait]
impl EventBus for SqlBus {
    async fn declare(&self, sub: &Subscription) -> Result<(), BusError> {
        sub.validate()?;
        let now = self.now();
        let _w = self.write_lock().await;
        let txn = self.db().begin_write().await?;
        // A DLQ name must not collide with another queue or another queue's DLQ.
        let clash = Query::select()
            .column(S::Queue)
            .from(S::Table)
            .and_where(Expr::col(S::Queue).ne(sub.queue.as_str()))
            .and_where(
                Expr::col(S::Queue)
                    .eq(sub.dlq.as_str())
                    .or(Expr::col(S::Dlq).eq(sub.dlq.as_str()))
                    .or(Expr::col(S::Dlq).eq(sub.queue.as_str())),
            )
            .to_owned();
        if let Some(row) = txn.query_one(&clash).await? {
            let other: String = row.try_get("", "queue")?;
            return Err(BusError::InvalidSubscription(format!(
                "queue '{}' with dead-letter queue '{}' clashes with queue '{other}'",
                sub.queue, sub.dlq
            )));
        }
        let backoff = sub
            .backoff
            .iter()
            .map(|d| ms(*d).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let upsert = Query::insert()
            .into_table(S::Table)
            .columns([
                S::Queue,
                S::Topic,
                S::Dlq,
                S::MaxReceiveCount,
                S::VisibilityTimeoutMs,
                S::BackoffMs,
                S::Concurrency,
                S::UpdatedAtMs,
            ])
            .values_panic([
                Expr::value(sub.queue.clone()),
                Expr::value(sub.topic.clone()),
                Expr::value(sub.dlq.clone()),
                Expr::value(i32::try_from(sub.max_receive_count).unwrap_or(i32::MAX)),
                Expr::value(ms(sub.visibility_timeout)),
                Expr::value(backoff),
                Expr::value(i32::try_from(sub.concurrency).unwrap_or(i32::MAX)),
                Expr::value(now),
            ])
            .on_conflict(
                OnConflict::column(S::Queue)
                    .update_columns([
                        S::Topic,
                        S::Dlq,
                        S::MaxReceiveCount,
                        S::VisibilityTimeoutMs,
                        S::BackoffMs,
                        S::Concurrency,
                        S::UpdatedAtMs,
                    ])
                    .to_owned(),
            )
            .to_owned();
        txn.execute(&upsert).await?;
        let clear = Query::delete()
            .from_table(F::Table)
            .and_where(Expr::col(F::Queue).eq(sub.queue.as_str()))
            .to_owned();
        txn.execute(&clear).await?;
        let mut filters: Vec<&String> = sub.event_types.iter().collect();
        filters.sort();
        filters.dedup();
        if !filters.is_empty() {
            let mut insert = Query::insert()
                .into_table(F::Table)
                .columns([F::Queue, F::EventType, F::Prefix])
                // Two processes declaring the same queue at once both insert the filters.
                .on_conflict(
                    OnConflict::columns([F::Queue, F::EventType])
                        .do_nothing()
                        .to_owned(),
                )
                .to_owned();
            for f in filters {
                insert.values_panic([
                    Expr::value(sub.queue.clone()),
                    Expr::value(f.clone()),
                    Expr::value(f.strip_suffix('*').map(str::to_string)),
                ]);
            }
            txn.execute(&insert).await?;
        }
        txn.commit().await?;
        let mut cached = sub.clone();
        cached.event_types.sort();
        cached.event_types.dedup();
        self.cache(cached);
        tracing::debug!(queue = %sub.queue, topic = %sub.topic, "queue declared");
        Ok(())
    }

    async fn subscription(&self, queue: &str) -> Result<Subscription, BusError> {
        Ok(self.settings(queue).await?.as_ref().clone())
    }

    async fn publish_batch(&self, events: &[OutgoingEvent]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let db = self.db();
        let w = self.write_lock().await;
        let txn = db.begin_write().await?;
        let mut queues: Vec<String> = Vec::new();
        for e in events {
            let rows = txn
                .query_all_raw(db.statement(
                    FAN_OUT,
                    vec![
                        e.id.to_string().into(),
                        e.event_type.clone().into(),
                        e.ordering_key.clone().into(),
                        e.body.to_string().into(),
                        e.trace_id.clone().into(),
                        now.into(),
                        e.topic.clone().into(),
                    ],
                ))
                .await?;
            for r in rows {
                let q: String = r.try_get("", "queue")?;
                if !queues.contains(&q) {
                    queues.push(q);
                }
            }
        }
        txn.commit().await?;
        drop(w);
        for q in &queues {
            self.wake(q);
        }
        Ok(())
    }

    async fn receive(&self, queue: &str, max: usize) -> Result<Vec<Delivery>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let sub = self.settings(queue).await?;
        let now = self.now();
        let receipt = Uuid::new_v4().simple().to_string();
        let db = self.db();
        let w = self.write_lock().await;
        let rows = db
            .conn()
            .query_all_raw(db.statement(
                &self.inner.lease_sql,
                vec![
                    queue.into(),
                    now.into(),
                    now.saturating_add(ms(sub.visibility_timeout)).into(),
                    receipt.clone().into(),
                    i64::try_from(max).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        drop(w);
        let mut out = Vec::with_capacity(rows.len());
        let mut expired = Vec::new();
        for row in &rows {
            let (id, d) = delivery(queue, &receipt, row)?;
            if d.receive_count > sub.max_receive_count {
                expired.push(id);
            } else {
                out.push((id, d));
            }
        }
        if !expired.is_empty() {
            self.expire(queue, expired, &receipt).await?;
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    async fn wait(&self, queue: &str, timeout: Duration) {
        let waker = self.waker(queue);
        let _ = tokio::time::timeout(timeout, waker.notified()).await;
    }

    async fn ack(&self, delivery: &Delivery) -> Result<Settled, BusError> {
        let Some(id) = Self::message_id(delivery) else {
            return Ok(Settled::LeaseLost);
        };
        let (done, result) = oneshot::channel();
        self.inner
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PendingAck {
                id,
                receipt: delivery.receipt.clone(),
                queue: delivery.queue.clone(),
                keyed: delivery.ordering_key.is_some(),
                done,
            });
        self.flush_acks().await;
        match result.await {
            Ok(Ok(true)) => Ok(Settled::Acked),
            Ok(Ok(false)) => Ok(Settled::LeaseLost),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(BusError::Backend(
                "the ack was abandoned; the message will be redelivered".into(),
            )),
        }
    }

    async fn nack(&self, delivery: &Delivery, error: &str) -> Result<Settled, BusError> {
        let Some(id) = Self::message_id(delivery) else {
            return Ok(Settled::LeaseLost);
        };
        let sub = self.settings(&delivery.queue).await?;
        if delivery.receive_count >= sub.max_receive_count {
            return self.to_dlq(delivery, id, error).await;
        }
        let delay = sub.backoff_for(delivery.receive_count);
        let at = self.now().saturating_add(ms(delay));
        let n = self
            .exec(
                DELAY,
                vec![
                    id.into(),
                    delivery.receipt.clone().into(),
                    at.into(),
                    error.to_string().into(),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(Settled::LeaseLost);
        }
        if delay.is_zero() {
            self.wake(&delivery.queue);
        }
        Ok(Settled::Retrying(delay))
    }

    async fn dead_letter(&self, delivery: &Delivery, error: &str) -> Result<Settled, BusError> {
        let Some(id) = Self::message_id(delivery) else {
            return Ok(Settled::LeaseLost);
        };
        self.to_dlq(delivery, id, error).await
    }

    async fn list_queues(&self) -> Result<Vec<String>, BusError> {
        let select = Query::select()
            .column(S::Queue)
            .from(S::Table)
            .order_by(S::Queue, sea_orm::sea_query::Order::Asc)
            .to_owned();
        let mut out = Vec::new();
        for r in self.db().conn().query_all(&select).await? {
            out.push(r.try_get("", "queue")?);
        }
        Ok(out)
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats, BusError> {
        let sub = self.settings(queue).await?;
        let db = self.db();
        let row = db
            .conn()
            .query_one_raw(db.statement(STATS, vec![queue.into(), self.now().into()]))
            .await?;
        let count = |col: &str| -> Result<u64, BusError> {
            Ok(match &row {
                Some(r) => u64::try_from(r.try_get::<i64>("", col)?).unwrap_or(0),
                None => 0,
            })
        };
        Ok(QueueStats {
            queue: sub.queue.clone(),
            dlq: sub.dlq.clone(),
            depth: count("depth")?,
            in_flight: count("in_flight")?,
            dlq_depth: count("dlq_depth")?,
        })
    }

    async fn peek_dlq(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, BusError> {
        self.settings(queue).await?;
        let db = self.db();
        let rows = db
            .conn()
            .query_all_raw(db.statement(
                PEEK_DLQ,
                vec![
                    queue.into(),
                    DEAD.into(),
                    i64::try_from(max).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("", "id")?;
            out.push(DlqMessage {
                message_id: id.to_string(),
                event_id: r.try_get("", "event_id")?,
                event_type: r.try_get("", "event_type")?,
                body: r.try_get("", "body")?,
                receive_count: u32::try_from(r.try_get::<i32>("", "receive_count")?).unwrap_or(0),
                last_error: r.try_get("", "last_error")?,
                dead_lettered_at_ms: r.try_get("", "dead_lettered_at_ms")?,
                enqueued_at_ms: r.try_get("", "enqueued_at_ms")?,
            });
        }
        Ok(out)
    }

    async fn retry_dlq(&self, queue: &str) -> Result<u64, BusError> {
        self.settings(queue).await?;
        let n = self
            .exec(REDRIVE, vec![queue.into(), self.now().into(), DEAD.into()])
            .await?;
        if n > 0 {
            tracing::info!(queue, count = n, "dead-letter queue redriven");
            self.wake(queue);
        }
        Ok(n)
    }

    async fn purge(&self, name: &str) -> Result<u64, BusError> {
        let (queue, is_dlq) = self.resolve(name).await?;
        let sql = if is_dlq { PURGE_DLQ } else { PURGE_QUEUE };
        let n = self.exec(sql, vec![queue.into()]).await?;
        tracing::info!(queue = name, count = n, "queue purged");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_locks_only_on_postgres() {
        assert!(LEASE.contains("{lock}"));
        assert!(!LEASE.replace("{lock}", "").contains("FOR UPDATE"));
    }
}
