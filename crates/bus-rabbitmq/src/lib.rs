//! The RabbitMQ backend of the event bus (DESIGN §3, rust-stack §2.3): [`RabbitBus`]
//! implements [`tandem_bus::EventBus`] with the same semantics as the embedded `SqlBus`,
//! so services, the outbox relay, the consumer runtime and the queue-admin endpoints work
//! unchanged when `TANDEM_BROKER_URL=amqp://…` is set.
//!
//! Topology (every name carries the bus's prefix, empty in production):
//! - a durable **topic exchange** per topic (`domain-events`, `offender-events`); the
//!   routing key is the `eventType`;
//! - a **quorum queue** per consumer, bound with its filters, `x-delivery-limit`, and
//!   at-least-once dead-lettering through the default exchange into its DLQ (a quorum
//!   queue too);
//! - a quorum **wait queue** `<queue>.wait.<ms>` per back-off step: `x-message-ttl` = the
//!   delay, dead-lettered back into the queue. A nack republishes there, carrying an
//!   `x-attempt` header because a republish resets the broker's delivery count.
//!
//! Receiving is **push**: the first `receive` or `wait` on a queue starts a consumer
//! (`basic.consume`, prefetch [`PREFETCH`] per consumer) on the connection's `consume`
//! channel. Pushed messages are read off lapin's delivery stream without blocking, into the
//! queue's local state, where the lease machinery below hands them out; `wait` returns
//! when one is pushed (by any process's publish, a back-off queue's TTL running out, a
//! redrive), so there is no polling. Acks go to the `consume` channel: delivery tags are
//! per channel, and every message is tagged with the connection generation it came on, so
//! a receipt from before a reconnect settles as `LeaseLost` (the broker requeued the
//! message with the connection and pushes it again). Beside a consumer nothing is fetched
//! with `basic.get`: a quorum queue may answer a get with a later message while earlier
//! ones, already checked out to the consumer, are still on their way, which breaks order
//! per key. Instead:
//! - "publish, then receive at once": a confirm and the push of the same message race.
//!   Each queue remembers the ids this process published (or moved) to it whose push has
//!   not arrived; while there are any (and the prefetch leaves room for them), `receive`
//!   and `stats` wait for those pushes, at most `OWN_PUSH_WAIT`;
//! - more messages than the prefetch held back behind busy keys: the broker pushes no
//!   more until acks, so other keys wait until the held ones are handed out;
//! - no consumer (it could not be started): `receive` gets and `wait` polls queue depths.
//!
//! `purge` cancels the queue's consumer first (what was pushed is not on the queue for
//! `queue.purge`), settles what was pushed, and the next `receive` starts a new one.
//! Consumers and channels belong to the connection: dropping the last clone of the bus
//! cancels the consumers and closes the channels and the connection.
//!
//! What RabbitMQ does not do, and how this crate makes up for it (per process):
//! - **Filters.** An exact `eventType` is an exact binding key. A prefix filter
//!   `a.b.*` binds `a.b.#` (the words before the last `.` of the prefix, then `#`; `#`
//!   alone for a prefix without a `.`), and `receive` drops (acks) what the binding let
//!   through but the filter does not accept (e.g. `a.b` itself, or `abc` for `ab*`).
//! - **Visibility timeout.** The broker only redelivers an unacked (pushed or fetched)
//!   message when the channel closes. Leases are tracked here: an expired lease is
//!   republished to its queue with `x-attempt` + 1 (or dead-lettered after
//!   `max_receive_count`) the next time this process calls `receive`/`wait` on the
//!   queue. A crashed process's leases come back when its connection drops; the broker
//!   counts those returns (`x-delivery-count`) and dead-letters after `x-delivery-limit`.
//! - **Ordering per key.** Quorum queues deliver in order; `receive` holds back
//!   (keeps unacked, not handed out) a message whose ordering key is in flight or backing
//!   off in this process. Across competing consumers in *different* processes ordering
//!   per key is not guaranteed: run one consumer process per queue, or enable
//!   single-active-consumer on the queue, where per-key order matters. Pushes arrive in
//!   queue order and are read off the stream under one lock, so a process places them in
//!   that order.
//! - **De-duplication on event id.** RabbitMQ has none. `publish` skips an event id this
//!   process already published (a bounded recent-id set, [`DEDUP_CAPACITY`]), which
//!   covers the outbox relay's retry after a failed mark. Across restarts a duplicate can
//!   reach a queue: consumers are idempotent (DESIGN §3).
//! - **Subscriptions** (`subscription`, `list_queues`, the DLQ-name clash check, the
//!   back-off and visibility settings) are remembered by the process that declared
//!   them; every process declares its consumers at start-up.

mod names;

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::Stream;
use lapin::message::{BasicGetMessage, Delivery as AmqpDelivery};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tandem_bus::{BusError, Delivery, DlqMessage, EventBus, QueueStats, Settled, Subscription};
use tandem_platform::events::OutgoingEvent;
use tokio::sync::Notify;

pub use names::binding_key;

/// How many recently published event ids a process remembers to skip re-publishes.
pub const DEDUP_CAPACITY: usize = 100_000;
/// Messages held back (pushed or fetched, key busy) per queue before `receive` stops
/// taking more.
const HOLD_LIMIT: usize = 1_000;
/// Unacknowledged messages the broker pushes to one queue's consumer before it waits for
/// acks (`basic.qos`, per consumer). Held-back messages count: past this, messages of
/// other keys wait until the held ones are handed out and acked.
pub const PREFETCH: u16 = 256;
/// How long `receive` waits for the push of a message this process just sent to the
/// queue (pushes take milliseconds; longer means another process's consumer took it).
const OWN_PUSH_WAIT: Duration = Duration::from_secs(2);
/// How often `wait` polls the broker's queue depth when the queue has no push consumer
/// (it could not be started): the fallback for messages published by other processes.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// Ids of local publishes whose push has not arrived, tracked per queue; past this the
/// set is dropped (those messages still arrive, `receive` just does not wait for them).
const AWAITING_LIMIT: usize = 10_000;
/// Ids of recent pushes remembered per queue, so that a publish confirm arriving after
/// its own push does not leave the id awaiting.
const ARRIVED_CAPACITY: usize = 4_096;
/// How long a peek waits for the broker to count the peeked messages again.
const PEEK_SETTLE: Duration = Duration::from_secs(2);
/// `x-delivery-limit` of a DLQ: peeking returns messages, which counts as a delivery
/// (RabbitMQ 4 defaults the limit to 20 and drops messages past it when there is no DLX).
const DLQ_DELIVERY_LIMIT: i64 = 1_000_000;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// How long opening a connection and its channels may take. A broker that accepts TCP but
/// never answers (a wedged node or vhost) must fail start-up and calls with a message,
/// not hang them.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

const H_EVENT_TYPE: &str = "eventType";
const H_ORDERING_KEY: &str = "orderingKey";
const H_TRACE_ID: &str = "traceId";
const H_ATTEMPT: &str = "x-attempt";
const H_LAST_ERROR: &str = "x-last-error";
const H_PUBLISHED_AT: &str = "x-published-at-ms";
const H_DEAD_LETTERED_AT: &str = "x-dead-lettered-at-ms";
const H_DELIVERY_COUNT: &str = "x-delivery-count";

/// Errors talking to the broker, mapped onto [`BusError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("RabbitMQ unreachable at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "RabbitMQ at {url} accepted the connection but did not complete it within {after:?}: \
         check the broker (`rabbitmqctl status`) and its vhost"
    )]
    ConnectTimeout { url: String, after: Duration },
    #[error("RabbitMQ reconnecting after a failure; next attempt in {0:?}")]
    Reconnecting(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ refused to take message {0} (publisher confirm nack)")]
    Nacked(String),
    #[error("RabbitMQ had no queue to route message {0} to ('{1}')")]
    Unroutable(String, String),
}

impl From<RabbitError> for BusError {
    fn from(e: RabbitError) -> Self {
        match &e {
            RabbitError::Amqp(inner) => match inner.kind() {
                lapin::ErrorKind::ProtocolError(p) => match p.kind() {
                    AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
                        BusError::InvalidSubscription(format!(
                            "the broker refused the queue settings (a queue of that name exists \
                             with different arguments; delete it or keep its settings): {inner}"
                        ))
                    }
                    AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                        BusError::UnknownQueue(p.get_message().to_string())
                    }
                    _ => BusError::Backend(e.to_string()),
                },
                _ => BusError::Unavailable(e.to_string()),
            },
            RabbitError::Connect { .. }
            | RabbitError::ConnectTimeout { .. }
            | RabbitError::Reconnecting(_) => BusError::Unavailable(e.to_string()),
            RabbitError::Nacked(_) | RabbitError::Unroutable(..) => {
                BusError::Backend(e.to_string())
            }
        }
    }
}

impl From<RabbitError> for tandem_platform::ApiError {
    fn from(e: RabbitError) -> Self {
        BusError::from(e).into()
    }
}

/// The event bus on RabbitMQ. Cheap to clone; clones share the connection and the
/// per-process state (leases, held-back messages, subscriptions).
#[derive(Clone)]
pub struct RabbitBus {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    prefix: String,
    queue_expiry: Option<Duration>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    reconnect: Mutex<Reconnect>,
    generation: std::sync::atomic::AtomicU64,
    subs: Mutex<HashMap<String, Subscription>>,
    state: Mutex<HashMap<String, QueueState>>,
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    recent: Mutex<RecentIds>,
}

struct Reconnect {
    next_at: Option<Instant>,
    delay: Duration,
}

/// One connection and its channels. Delivery tags belong to `consume`, so a new `Conn`
/// invalidates every lease of the old one (the broker requeued them).
struct Conn {
    generation: u64,
    connection: Connection,
    /// The push consumers (one per queue this process receives from, prefetch
    /// [`PREFETCH`] each), `basic.get`, and the acks of both: delivery tags are per channel.
    consume: Channel,
    /// Publishes, in confirm mode.
    publish: Channel,
    /// Declarations and passive counts; an error closes it, so it is reopened on demand.
    admin: tokio::sync::Mutex<Channel>,
    exchanges: Mutex<HashSet<String>>,
}

impl Conn {
    fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.consume.status().connected()
            && self.publish.status().connected()
    }

    async fn admin(&self) -> Result<tokio::sync::MutexGuard<'_, Channel>, RabbitError> {
        let mut ch = self.admin.lock().await;
        if !ch.status().connected() {
            *ch = self.connection.create_channel().await?;
        }
        Ok(ch)
    }
}

#[derive(Default)]
struct QueueState {
    leases: HashMap<String, Lease>,
    /// Fetched or pushed, not handed out (key busy, or more than the caller asked for).
    held: VecDeque<Raw>,
    /// Ordering key → (event id backing off or re-queued after a lease expiry, until).
    reserved: HashMap<String, (String, Instant)>,
    /// The queue's push consumer on the current connection (`None` until the first
    /// `receive`/`wait`, after a reconnect or a purge).
    consumer: Option<Pushing>,
    /// The connection generation whose consume channel the queue's pushes come on (0:
    /// none); it outlives a consumer cancelled by `purge`.
    channel: u64,
    /// Pushed by the broker and read off the consumer, in arrival order, not yet placed.
    pushed: VecDeque<Raw>,
    /// Event ids this process published (or moved) to the queue whose push has not
    /// arrived: `receive` must not answer from local state alone while one is on its way.
    awaiting: HashSet<String>,
    /// Ids pushed lately ([`ARRIVED_CAPACITY`]): a push often overtakes its publish
    /// confirm, and must not leave its id awaiting.
    arrived: RecentIds,
    /// Wakes this queue's `wait`ers (a settle freed a key; a publish to a queue without
    /// a push consumer).
    wake: Arc<Notify>,
}

/// A queue's push consumer (`basic.consume` on the `consume` channel of `generation`).
struct Pushing {
    generation: u64,
    consumer: lapin::Consumer,
}

impl QueueState {
    fn pushing(&self, generation: u64) -> bool {
        self.consumer
            .as_ref()
            .is_some_and(|p| p.generation == generation)
    }

    /// Unsettled deliveries on the consume channel that count against the prefetch.
    fn unsettled(&self) -> usize {
        self.pushed.len() + self.held.len() + self.leases.len()
    }

    /// Takes one item read off the consumer `tag` of `generation`: `Ready(true)` when a
    /// message was added to `pushed`, `Ready(false)` when the consumer ended (cancelled
    /// by the broker or by `purge`, channel closed).
    fn take_push(
        &mut self,
        generation: u64,
        tag: &str,
        item: Poll<Option<lapin::Result<AmqpDelivery>>>,
    ) -> Poll<bool> {
        match item {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(d))) => {
                // From a connection that is gone: the broker requeued it.
                if generation != self.channel {
                    return Poll::Ready(false);
                }
                let raw = parse(generation, &d);
                self.awaiting.remove(&raw.event_id);
                self.arrived
                    .insert_bounded(raw.event_id.clone(), ARRIVED_CAPACITY);
                self.pushed.push_back(raw);
                Poll::Ready(true)
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(bus = "rabbitmq", error = %e, "push consumer failed");
                self.end_consumer(generation, tag);
                Poll::Ready(false)
            }
            Poll::Ready(None) => {
                tracing::debug!(bus = "rabbitmq", "push consumer cancelled");
                self.end_consumer(generation, tag);
                Poll::Ready(false)
            }
        }
    }

    /// Forgets the consumer `tag` once its stream ended (not a newer one that replaced it).
    fn end_consumer(&mut self, generation: u64, tag: &str) {
        if self
            .consumer
            .as_ref()
            .is_some_and(|p| p.generation == generation && p.consumer.tag().as_str() == tag)
        {
            self.consumer = None;
        }
    }

    /// Reads everything lapin already has for the consumer into `pushed`, without waiting.
    fn drain(&mut self, generation: u64) {
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let Some(p) = self
                .consumer
                .as_mut()
                .filter(|p| p.generation == generation)
            else {
                return;
            };
            let tag = p.consumer.tag();
            let item = Pin::new(&mut p.consumer).poll_next(&mut cx);
            if self.take_push(generation, tag.as_str(), item) != Poll::Ready(true) {
                return;
            }
        }
    }

    /// A message this process sent is on its way to the queue (unless it was pushed
    /// already). `again`: the id came here before (a move back to the queue).
    fn expect(&mut self, event_id: &str, again: bool) {
        if again {
            self.arrived.set.remove(event_id);
        } else if self.arrived.contains(event_id) {
            return;
        }
        if self.awaiting.len() >= AWAITING_LIMIT {
            // Too many to track: stop waiting for them (they arrive as pushes anyway).
            self.awaiting.clear();
        }
        self.awaiting.insert(event_id.to_string());
        if self.consumer.is_none() {
            self.wake.notify_waiters();
        }
    }

    fn key_busy(&self, key: &str, event_id: &str, now: Instant) -> bool {
        self.leases
            .values()
            .any(|l| l.raw.ordering_key.as_deref() == Some(key))
            || self
                .reserved
                .get(key)
                .is_some_and(|(id, until)| id != event_id && *until > now)
    }
}

/// A message pushed or fetched from a queue (unacked on the `consume` channel of
/// `generation`).
#[derive(Clone, Debug)]
struct Raw {
    generation: u64,
    tag: u64,
    event_id: String,
    event_type: String,
    ordering_key: Option<String>,
    trace_id: Option<String>,
    body: Vec<u8>,
    receive_count: u32,
    published_at_ms: i64,
}

struct Lease {
    raw: Raw,
    deadline: Instant,
}

#[derive(Default)]
struct RecentIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: String) {
        self.insert_bounded(id, DEDUP_CAPACITY);
    }
    fn insert_bounded(&mut self, id: String, capacity: usize) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `amqp://user:***@host…` for messages (never the password).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn now_ms() -> i64 {
    tandem_platform::time::now_ms()
}

impl RabbitBus {
    /// Connects to `amqp_url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`); fails when
    /// the broker is unreachable. Later connection losses are recovered on the next call,
    /// with exponential back-off between attempts.
    pub async fn connect(amqp_url: &str) -> Result<RabbitBus, BusError> {
        Self::connect_with_prefix(amqp_url, "").await
    }

    /// As [`RabbitBus::connect`], with every exchange and queue name prefixed (tests
    /// isolate themselves with a unique prefix on a shared broker).
    pub async fn connect_with_prefix(amqp_url: &str, prefix: &str) -> Result<RabbitBus, BusError> {
        Self::connect_with(amqp_url, prefix, None).await
    }

    /// As [`RabbitBus::connect_with_prefix`]; with `queue_expiry` every queue it declares
    /// also gets `x-expires` (deleted by the broker once unused that long), so test runs
    /// do not leave quorum queues behind. Production leaves it `None`.
    pub async fn connect_with(
        amqp_url: &str,
        prefix: &str,
        queue_expiry: Option<Duration>,
    ) -> Result<RabbitBus, BusError> {
        let bus = RabbitBus {
            inner: Arc::new(Inner {
                url: amqp_url.to_string(),
                prefix: prefix.to_string(),
                queue_expiry,
                conn: tokio::sync::Mutex::new(None),
                reconnect: Mutex::new(Reconnect {
                    next_at: None,
                    delay: RECONNECT_MIN,
                }),
                generation: std::sync::atomic::AtomicU64::new(0),
                subs: Mutex::new(HashMap::new()),
                state: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                recent: Mutex::new(RecentIds::default()),
            }),
        };
        bus.conn().await?;
        Ok(bus)
    }

    /// The bus named by `TANDEM_BROKER_URL` when it is an `amqp://` or `amqps://` URL;
    /// `None` means "use the embedded SqlBus".
    pub async fn from_env() -> Option<Result<RabbitBus, BusError>> {
        let url = std::env::var("TANDEM_BROKER_URL").ok()?;
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return None;
        }
        Some(Self::connect(&url).await)
    }

    /// Closes the current connection as a broker restart would (for recovery tests): the
    /// broker requeues every unacked message, and the next call reconnects.
    #[doc(hidden)]
    pub async fn close_connection(&self) {
        if let Some(c) = self.inner.conn.lock().await.as_ref() {
            let _ = c.connection.close(320, "closed for a test".into()).await;
        }
    }

    /// Deletes every queue (with its DLQ and wait queues) and exchange this bus declared:
    /// a benchmark or test run under its own prefix cleaning up after itself. Quorum
    /// queues are not free to keep: each holds a few handles of the broker's file-handle
    /// cache (about 900 with the default `ulimit -n` of 1024), and a broker out of them
    /// stops accepting connections. Refused without a prefix (production names are
    /// shared). Returns how many queues were deleted.
    pub async fn delete_declared(&self) -> Result<u64, BusError> {
        if self.inner.prefix.is_empty() {
            return Err(BusError::Backend(
                "refusing to delete the unprefixed (shared) queues and exchanges".into(),
            ));
        }
        let subs: Vec<Subscription> = lock(&self.inner.subs).values().cloned().collect();
        let conn = self.conn().await?;
        match self.delete_inner(&conn, &subs).await {
            Ok(n) => {
                lock(&self.inner.subs).clear();
                lock(&self.inner.state).clear();
                Ok(n)
            }
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn delete_inner(&self, conn: &Conn, subs: &[Subscription]) -> Result<u64, RabbitError> {
        let mut queues = HashSet::new();
        let mut topics = HashSet::new();
        for sub in subs {
            queues.insert(sub.queue.clone());
            queues.insert(sub.dlq.clone());
            for delay in sub.backoff.iter().filter(|d| !d.is_zero()) {
                queues.insert(names::wait_queue(&sub.queue, *delay));
            }
            topics.insert(sub.topic.clone());
        }
        let ch = conn.admin().await?;
        for q in &queues {
            ch.queue_delete(self.name(q).into(), QueueDeleteOptions::default())
                .await?;
        }
        for t in &topics {
            ch.exchange_delete(self.name(t).into(), ExchangeDeleteOptions::default())
                .await?;
        }
        lock(&conn.exchanges).clear();
        Ok(queues.len() as u64)
    }

    fn name(&self, n: &str) -> String {
        format!("{}{n}", self.inner.prefix)
    }

    fn gate(&self, queue: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.gates)
            .entry(queue.to_string())
            .or_default()
            .clone()
    }

    fn sub(&self, queue: &str) -> Result<Subscription, BusError> {
        lock(&self.inner.subs)
            .get(queue)
            .cloned()
            .ok_or_else(|| BusError::UnknownQueue(queue.to_string()))
    }

    /// The live connection, reconnecting (rate-limited by the back-off) when it is gone.
    async fn conn(&self) -> Result<Arc<Conn>, RabbitError> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.healthy() {
                return Ok(c.clone());
            }
            tracing::warn!(bus = "rabbitmq", "connection lost; reconnecting");
            *slot = None;
            self.forget_leases();
        }
        {
            let r = lock(&self.inner.reconnect);
            if let Some(at) = r.next_at {
                let now = Instant::now();
                if at > now {
                    return Err(RabbitError::Reconnecting(at - now));
                }
            }
        }
        match self.open().await {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                let mut r = lock(&self.inner.reconnect);
                r.next_at = None;
                r.delay = RECONNECT_MIN;
                Ok(c)
            }
            Err(e) => {
                let mut r = lock(&self.inner.reconnect);
                r.next_at = Some(Instant::now() + r.delay);
                r.delay = (r.delay * 2).min(RECONNECT_MAX);
                Err(e)
            }
        }
    }

    async fn open(&self) -> Result<Conn, RabbitError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open_unbounded())
            .await
            .unwrap_or_else(|_| {
                Err(RabbitError::ConnectTimeout {
                    url: redact(&self.inner.url),
                    after: CONNECT_TIMEOUT,
                })
            })
    }

    async fn open_unbounded(&self) -> Result<Conn, RabbitError> {
        let connect_err = |source| RabbitError::Connect {
            url: redact(&self.inner.url),
            source,
        };
        let props = ConnectionProperties::default().with_connection_name("tandem-bus".into());
        let connection = Connection::connect(&self.inner.url, props)
            .await
            .map_err(connect_err)?;
        let consume = connection.create_channel().await?;
        consume
            .basic_qos(PREFETCH, BasicQosOptions { global: false })
            .await?;
        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let admin = connection.create_channel().await?;
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        Ok(Conn {
            generation,
            connection,
            consume,
            publish,
            admin: tokio::sync::Mutex::new(admin),
            exchanges: Mutex::new(HashSet::new()),
        })
    }

    /// After a connection loss the broker has requeued every unacked message: drop the
    /// local leases, held-back and pushed messages (their receipts now settle as
    /// `LeaseLost`) and the consumers (the next `receive` or `wait` starts new ones).
    fn forget_leases(&self) {
        for st in lock(&self.inner.state).values_mut() {
            st.leases.clear();
            st.held.clear();
            st.pushed.clear();
            st.awaiting.clear();
            st.consumer = None;
            st.channel = 0;
        }
    }

    /// Marks the connection broken when an operation failed on it, so the next call
    /// reconnects.
    async fn failed(&self, conn: &Conn, e: RabbitError) -> BusError {
        if !conn.healthy() {
            let mut slot = self.inner.conn.lock().await;
            if slot
                .as_ref()
                .is_some_and(|c| c.generation == conn.generation)
            {
                *slot = None;
                drop(slot);
                self.forget_leases();
            }
        }
        e.into()
    }

    async fn ensure_exchange(&self, conn: &Conn, topic: &str) -> Result<String, RabbitError> {
        let name = self.name(topic);
        if lock(&conn.exchanges).contains(&name) {
            return Ok(name);
        }
        let ch = conn.admin().await?;
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                // With expiring (test) queues, the exchange goes with its last binding.
                auto_delete: self.inner.queue_expiry.is_some(),
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
        lock(&conn.exchanges).insert(name.clone());
        Ok(name)
    }

    /// Message count of a queue that must exist (passive declare).
    async fn count(&self, conn: &Conn, queue: &str) -> Result<u64, RabbitError> {
        let ch = conn.admin().await?;
        let q = ch
            .queue_declare(
                self.name(queue).into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(u64::from(q.message_count()))
    }

    /// Publishes an internal move through the default exchange with confirm, mandatory
    /// so that a missing target queue is an error, not a silent drop.
    async fn send(
        &self,
        conn: &Conn,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
        id: &str,
    ) -> Result<(), RabbitError> {
        let confirm = conn
            .publish
            .basic_publish(
                "".into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await?
            .await?;
        check_confirm(confirm, id, routing_key)
    }

    /// Re-publishes a fetched message to one of this bus's queues (by its unprefixed
    /// name) through the default exchange.
    async fn move_to(
        &self,
        conn: &Conn,
        raw: &Raw,
        target: &str,
        attempt: u32,
        error: Option<&str>,
        dead_lettered: bool,
    ) -> Result<(), RabbitError> {
        let mut h = FieldTable::default();
        h.insert(H_EVENT_TYPE.into(), long_string(&raw.event_type));
        if let Some(k) = &raw.ordering_key {
            h.insert(H_ORDERING_KEY.into(), long_string(k));
        }
        if let Some(t) = &raw.trace_id {
            h.insert(H_TRACE_ID.into(), long_string(t));
        }
        h.insert(H_ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt)));
        h.insert(
            H_PUBLISHED_AT.into(),
            AMQPValue::LongLongInt(raw.published_at_ms),
        );
        if let Some(e) = error {
            h.insert(H_LAST_ERROR.into(), long_string(e));
        }
        if dead_lettered {
            h.insert(H_DEAD_LETTERED_AT.into(), AMQPValue::LongLongInt(now_ms()));
        }
        let props = base_props(&raw.event_id).with_headers(h);
        self.send(conn, &self.name(target), &raw.body, props, &raw.event_id)
            .await?;
        if lock(&self.inner.subs).contains_key(target) {
            self.expect(target, &raw.event_id, true);
        }
        Ok(())
    }

    /// `event_id`, sent by this process, is on its way to the (consumed) `queue`.
    fn expect(&self, queue: &str, event_id: &str, again: bool) {
        lock(&self.inner.state)
            .entry(queue.to_string())
            .or_default()
            .expect(event_id, again);
    }

    /// Wakes the `wait`ers of `queue` when a held-back message may now be free.
    fn wake_held(&self, queue: &str) {
        if let Some(st) = lock(&self.inner.state).get(queue)
            && !st.held.is_empty()
        {
            st.wake.notify_waiters();
        }
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        lock(&self.inner.state)
            .entry(queue.to_string())
            .or_default()
            .wake
            .clone()
    }

    /// The queue's push consumer on the connection of `generation`, if one runs.
    fn current_consumer(&self, queue: &str, generation: u64) -> Option<lapin::Consumer> {
        lock(&self.inner.state)
            .get(queue)
            .and_then(|st| st.consumer.as_ref())
            .filter(|p| p.generation == generation)
            .map(|p| p.consumer.clone())
    }

    /// The queue's push consumer on `conn`, started when it has none (call with the
    /// queue's gate held, so two callers never start two).
    async fn ensure_consumer(
        &self,
        conn: &Conn,
        sub: &Subscription,
    ) -> Result<lapin::Consumer, RabbitError> {
        if let Some(c) = self.current_consumer(&sub.queue, conn.generation) {
            return Ok(c);
        }
        let consumer = conn
            .consume
            .basic_consume(
                self.name(&sub.queue).into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut state = lock(&self.inner.state);
        let st = state.entry(sub.queue.clone()).or_default();
        // What was pushed to a previous consumer of this connection was drained or
        // settled by whoever ended it; what this one gets first may still be in flight.
        st.consumer = Some(Pushing {
            generation: conn.generation,
            consumer: consumer.clone(),
        });
        st.channel = conn.generation;
        Ok(consumer)
    }

    /// The push consumer for `wait`: `None` when it cannot be started (then `wait` polls).
    async fn wait_consumer(&self, conn: &Conn, sub: &Subscription) -> Option<lapin::Consumer> {
        if let Some(c) = self.current_consumer(&sub.queue, conn.generation) {
            return Some(c);
        }
        let gate = self.gate(&sub.queue);
        let _g = gate.lock().await;
        match self.ensure_consumer(conn, sub).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(bus = "rabbitmq", queue = %sub.queue, error = %e, "cannot start the push consumer; polling");
                None
            }
        }
    }

    /// Waits for the next push to `queue` (through this `consumer` clone, whose own
    /// waker registration does not disturb other readers) and keeps it in `pushed`.
    /// Reads happen under the state lock, so `pushed` keeps the broker's order.
    async fn next_push(&self, queue: &str, generation: u64, mut consumer: lapin::Consumer) {
        let tag = consumer.tag();
        std::future::poll_fn(|cx| {
            let mut state = lock(&self.inner.state);
            let st = state.entry(queue.to_string()).or_default();
            let item = Pin::new(&mut consumer).poll_next(cx);
            st.take_push(generation, tag.as_str(), item).map(|_| ())
        })
        .await;
    }

    /// Reads what was pushed, without waiting; true when something is there to place.
    fn drain_pushed(&self, queue: &str, generation: u64) -> bool {
        let mut state = lock(&self.inner.state);
        let st = state.entry(queue.to_string()).or_default();
        st.drain(generation);
        !st.pushed.is_empty()
    }

    fn next_lease_deadline(&self, queue: &str) -> Option<Instant> {
        lock(&self.inner.state)
            .get(queue)
            .and_then(|st| st.leases.values().map(|l| l.deadline).min())
    }

    async fn ack_tag(&self, conn: &Conn, raw: &Raw) -> Result<(), RabbitError> {
        conn.consume
            .basic_ack(raw.tag, BasicAckOptions::default())
            .await?;
        Ok(())
    }

    /// Takes the lease behind `d` out of the local table; `None` when the receipt is stale.
    fn take_lease(&self, d: &Delivery, generation: u64) -> Option<Lease> {
        let mut state = lock(&self.inner.state);
        let st = state.get_mut(&d.queue)?;
        let lease = st.leases.remove(&d.receipt)?;
        (lease.raw.generation == generation).then_some(lease)
    }

    fn reserve(&self, queue: &str, raw: &Raw, delay: Duration, sub: &Subscription) {
        if let Some(k) = &raw.ordering_key {
            let until =
                Instant::now() + delay + sub.visibility_timeout * 2 + Duration::from_secs(5);
            lock(&self.inner.state)
                .entry(queue.to_string())
                .or_default()
                .reserved
                .insert(k.clone(), (raw.event_id.clone(), until));
        }
    }

    /// Republishes (or dead-letters) the leases of `queue` whose visibility timeout ran out.
    async fn expire_leases(&self, conn: &Conn, sub: &Subscription) -> Result<(), RabbitError> {
        let now = Instant::now();
        let expired: Vec<Lease> = {
            let mut state = lock(&self.inner.state);
            let Some(st) = state.get_mut(&sub.queue) else {
                return Ok(());
            };
            let receipts: Vec<String> = st
                .leases
                .iter()
                .filter(|(_, l)| l.deadline <= now)
                .map(|(r, _)| r.clone())
                .collect();
            receipts
                .iter()
                .filter_map(|r| st.leases.remove(r))
                .collect()
        };
        for lease in expired {
            let raw = &lease.raw;
            if raw.generation != conn.generation {
                continue;
            }
            let error = format!(
                "visibility timeout of {:?} expired (receive {})",
                sub.visibility_timeout, raw.receive_count
            );
            if raw.receive_count >= sub.max_receive_count {
                self.move_to(conn, raw, &sub.dlq, raw.receive_count, Some(&error), true)
                    .await?;
            } else {
                self.move_to(
                    conn,
                    raw,
                    &sub.queue,
                    raw.receive_count,
                    Some(&error),
                    false,
                )
                .await?;
                self.reserve(&sub.queue, raw, Duration::ZERO, sub);
            }
            self.ack_tag(conn, raw).await?;
        }
        Ok(())
    }

    fn has_expired_lease(&self, queue: &str) -> bool {
        let now = Instant::now();
        lock(&self.inner.state)
            .get(queue)
            .is_some_and(|st| st.leases.values().any(|l| l.deadline <= now))
    }

    /// Hands out held-back messages whose key is free, in arrival order.
    fn release_held(&self, sub: &Subscription, max: usize, out: &mut Vec<Delivery>) {
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        let st = state.entry(sub.queue.clone()).or_default();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut keep = VecDeque::new();
        while let Some(raw) = st.held.pop_front() {
            let free = match &raw.ordering_key {
                None => true,
                Some(k) => !blocked.contains(k) && !st.key_busy(k, &raw.event_id, now),
            };
            if free && out.len() < max {
                out.push(lease(st, sub, raw, now));
            } else {
                if let Some(k) = &raw.ordering_key {
                    blocked.insert(k.clone());
                }
                keep.push_back(raw);
            }
        }
        st.held = keep;
    }

    /// Places pushed messages (read off the consumer now, in arrival order): handed out
    /// up to `max`, held back otherwise; messages the filter does not accept are acked.
    async fn place_pushed(
        &self,
        conn: &Conn,
        sub: &Subscription,
        max: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<(), RabbitError> {
        let mut dropped = Vec::new();
        {
            let now = Instant::now();
            let mut state = lock(&self.inner.state);
            let st = state.entry(sub.queue.clone()).or_default();
            st.drain(conn.generation);
            while let Some(raw) = st.pushed.pop_front() {
                if raw.generation != conn.generation {
                    continue;
                }
                if sub.accepts(&raw.event_type) {
                    place(st, sub, raw, max, out, now);
                } else {
                    dropped.push(raw);
                }
            }
        }
        for raw in dropped {
            self.ack_tag(conn, &raw).await?;
        }
        Ok(())
    }

    /// Whether `receive` must ask the broker (`basic.get`): only when no push consumer
    /// runs. Beside a consumer a get is no barrier: a quorum queue may answer it with a
    /// later message while earlier ones, already checked out to the consumer, are still
    /// on their way (seen: message 256 of one key handed out before 0–255), so with a
    /// consumer every message comes by push, in queue order.
    fn must_fetch(&self, conn: &Conn, sub: &Subscription) -> bool {
        lock(&self.inner.state)
            .get(&sub.queue)
            .is_none_or(|st| !st.pushing(conn.generation))
    }

    /// True while a message this process sent to the queue has not been pushed back and
    /// the broker may still push it (the prefetch is not used up).
    fn own_push_due(&self, conn: &Conn, sub: &Subscription) -> bool {
        lock(&self.inner.state).get(&sub.queue).is_some_and(|st| {
            st.pushing(conn.generation)
                && !st.awaiting.is_empty()
                && st.unsettled() < usize::from(PREFETCH)
        })
    }

    /// Waits (at most [`OWN_PUSH_WAIT`]) for the pushes of messages this process sent to
    /// the queue, placing them as they come, so that a receive right after a publish sees
    /// it. Gives up on them after the wait (another process's consumer may have taken
    /// them).
    async fn await_own_pushes(
        &self,
        conn: &Conn,
        sub: &Subscription,
        max: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<(), RabbitError> {
        let deadline = tokio::time::Instant::now() + OWN_PUSH_WAIT;
        while (max == 0 || out.len() < max) && self.own_push_due(conn, sub) {
            let Some(consumer) = self.current_consumer(&sub.queue, conn.generation) else {
                break;
            };
            let next = self.next_push(&sub.queue, conn.generation, consumer);
            if tokio::time::timeout_at(deadline, next).await.is_err() {
                if let Some(st) = lock(&self.inner.state).get_mut(&sub.queue) {
                    st.awaiting.clear();
                }
                break;
            }
            self.place_pushed(conn, sub, max, out).await?;
        }
        Ok(())
    }

    /// `basic.get` on the consume channel until `max` are handed out or the queue is
    /// empty (at least once): how a queue without a push consumer is read.
    async fn fetch(
        &self,
        conn: &Conn,
        sub: &Subscription,
        max: usize,
        out: &mut Vec<Delivery>,
    ) -> Result<(), RabbitError> {
        // Nothing is waited for without a consumer; keep the set from growing.
        lock(&self.inner.state)
            .entry(sub.queue.clone())
            .or_default()
            .awaiting
            .clear();
        let qname = self.name(&sub.queue);
        loop {
            let Some(msg) = conn
                .consume
                .basic_get(qname.as_str().into(), BasicGetOptions::default())
                .await?
            else {
                return Ok(());
            };
            let raw = parse(conn.generation, &msg.delivery);
            if sub.accepts(&raw.event_type) {
                let now = Instant::now();
                let mut state = lock(&self.inner.state);
                let st = state.entry(sub.queue.clone()).or_default();
                place(st, sub, raw, max, out, now);
            } else {
                // Let through by a coarser binding key (see `binding_key`): not ours.
                self.ack_tag(conn, &raw).await?;
            }
            if out.len() >= max || self.held_len(&sub.queue) >= HOLD_LIMIT {
                return Ok(());
            }
        }
    }

    fn held_len(&self, queue: &str) -> usize {
        lock(&self.inner.state)
            .get(queue)
            .map_or(0, |st| st.held.len())
    }

    async fn receive_inner(
        &self,
        conn: &Conn,
        sub: &Subscription,
        max: usize,
    ) -> Result<Vec<Delivery>, RabbitError> {
        self.expire_leases(conn, sub).await?;
        self.ensure_consumer(conn, sub).await?;
        let mut out = Vec::new();
        self.release_held(sub, max, &mut out);
        self.place_pushed(conn, sub, max, &mut out).await?;
        if out.len() < max && self.held_len(&sub.queue) < HOLD_LIMIT {
            self.await_own_pushes(conn, sub, max, &mut out).await?;
        }
        if out.len() < max && self.held_len(&sub.queue) < HOLD_LIMIT && self.must_fetch(conn, sub) {
            self.fetch(conn, sub, max, &mut out).await?;
        }
        Ok(out)
    }

    async fn settle_elsewhere(
        &self,
        d: &Delivery,
        error: &str,
        force_dlq: bool,
    ) -> Result<Settled, BusError> {
        let sub = self.sub(&d.queue)?;
        let conn = self.conn().await?;
        let Some(lease) = self.take_lease(d, conn.generation) else {
            return Ok(Settled::LeaseLost);
        };
        let raw = &lease.raw;
        let outcome = if force_dlq || raw.receive_count >= sub.max_receive_count {
            match self
                .move_to(&conn, raw, &sub.dlq, raw.receive_count, Some(error), true)
                .await
            {
                Ok(()) => Settled::DeadLettered,
                Err(e) => return Err(self.requeue_after(&conn, lease, e).await),
            }
        } else {
            let delay = sub.backoff_for(raw.receive_count);
            let target = if delay.is_zero() {
                sub.queue.clone()
            } else {
                names::wait_queue(&sub.queue, delay)
            };
            if let Err(e) = self
                .move_to(&conn, raw, &target, raw.receive_count, Some(error), false)
                .await
            {
                return Err(self.requeue_after(&conn, lease, e).await);
            }
            self.reserve(&sub.queue, raw, delay, &sub);
            Settled::Retrying(delay)
        };
        if let Err(e) = self.ack_tag(&conn, raw).await {
            return Err(self.failed(&conn, e).await);
        }
        self.wake_held(&sub.queue);
        Ok(outcome)
    }

    /// The move failed: hand the message back to the broker (it counts a delivery) so it
    /// is not stuck unacked here.
    async fn requeue_after(&self, conn: &Conn, lease: Lease, e: RabbitError) -> BusError {
        let _ = conn
            .consume
            .basic_nack(
                lease.raw.tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await;
        self.failed(conn, e).await
    }

    async fn declare_inner(
        &self,
        conn: &Conn,
        sub: &Subscription,
        old: Option<&Subscription>,
    ) -> Result<(), RabbitError> {
        let exchange = self.ensure_exchange(conn, &sub.topic).await?;
        let ch = conn.admin().await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut dlq_args = quorum_args(self.inner.queue_expiry);
        dlq_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DLQ_DELIVERY_LIMIT),
        );
        ch.queue_declare(self.name(&sub.dlq).into(), durable, dlq_args)
            .await?;
        let mut args = quorum_args(self.inner.queue_expiry);
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(sub.max_receive_count.saturating_sub(1))),
        );
        dead_letter_to(&mut args, &self.name(&sub.dlq));
        ch.queue_declare(self.name(&sub.queue).into(), durable, args)
            .await?;
        for delay in sub.backoff.iter().filter(|d| !d.is_zero()) {
            let mut args = quorum_args(self.inner.queue_expiry);
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(millis(*delay)),
            );
            dead_letter_to(&mut args, &self.name(&sub.queue));
            ch.queue_declare(
                self.name(&names::wait_queue(&sub.queue, *delay)).into(),
                durable,
                args,
            )
            .await?;
        }
        let keys = names::binding_keys(&sub.event_types);
        for key in &keys {
            ch.queue_bind(
                self.name(&sub.queue).into(),
                exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        if let Some(old) = old {
            let old_exchange = self.name(&old.topic);
            for key in names::binding_keys(&old.event_types) {
                if old_exchange != exchange || !keys.contains(&key) {
                    ch.queue_unbind(
                        self.name(&sub.queue).into(),
                        old_exchange.as_str().into(),
                        key.as_str().into(),
                        FieldTable::default(),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Fetches up to `max` messages of `queue` on a throwaway channel, then returns them.
    async fn peek(
        &self,
        conn: &Conn,
        queue: &str,
        max: usize,
    ) -> Result<Vec<BasicGetMessage>, RabbitError> {
        let ch = conn.connection.create_channel().await?;
        let mut got = Vec::new();
        while got.len() < max {
            match ch
                .basic_get(self.name(queue).into(), BasicGetOptions::default())
                .await?
            {
                Some(m) => got.push(m),
                None => break,
            }
        }
        if let Some(last) = got.last() {
            ch.basic_nack(
                last.delivery.delivery_tag,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await?;
        }
        let _ = ch.close(200, "peeked".into()).await;
        // A quorum queue takes the returns back asynchronously (a log entry each, after
        // the nack and the close have been answered): until then its count misses them.
        // Wait, boundedly, until it shows at least what was there when the peek began.
        if let Some(first) = got.first() {
            let before = u64::from(first.message_count) + 1;
            let until = Instant::now() + PEEK_SETTLE;
            while self.count(conn, queue).await? < before && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(got)
    }

    async fn redrive(&self, conn: &Conn, sub: &Subscription) -> Result<u64, RabbitError> {
        let ch = conn.connection.create_channel().await?;
        let mut moved = 0u64;
        let result: Result<(), RabbitError> = async {
            let mut budget: Option<u64> = None;
            loop {
                if budget == Some(0) {
                    break;
                }
                let Some(m) = ch
                    .basic_get(self.name(&sub.dlq).into(), BasicGetOptions::default())
                    .await?
                else {
                    break;
                };
                // Only what was there at the start (a concurrent dead-letter waits).
                let left = *budget.get_or_insert(u64::from(m.message_count) + 1);
                budget = Some(left - 1);
                let mut raw = parse(conn.generation, &m.delivery);
                raw.receive_count = 0;
                self.move_to(conn, &raw, &sub.queue, 0, None, false).await?;
                ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default())
                    .await?;
                moved += 1;
            }
            Ok(())
        }
        .await;
        let _ = ch.close(200, "redriven".into()).await;
        result.map(|()| moved)
    }

    async fn purge_queue(&self, conn: &Conn, sub: &Subscription) -> Result<u64, RabbitError> {
        // Stop the pushes first: what the broker handed to the consumer is not on the
        // queue for `queue.purge`. It arrives before the cancel-ok; settle it here.
        if let Some(consumer) = self.current_consumer(&sub.queue, conn.generation) {
            conn.consume
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await?;
        }
        let (leases, held, pushed) = {
            let mut state = lock(&self.inner.state);
            let st = state.entry(sub.queue.clone()).or_default();
            st.drain(conn.generation);
            st.consumer = None;
            st.reserved.clear();
            st.awaiting.clear();
            (
                std::mem::take(&mut st.leases),
                std::mem::take(&mut st.held),
                std::mem::take(&mut st.pushed),
            )
        };
        let mut n = 0u64;
        for raw in leases
            .into_values()
            .map(|l| l.raw)
            .chain(held)
            .chain(pushed)
        {
            if raw.generation == conn.generation {
                self.ack_tag(conn, &raw).await?;
                n += 1;
            }
        }
        let ch = conn.admin().await?;
        n += u64::from(
            ch.queue_purge(self.name(&sub.queue).into(), QueuePurgeOptions::default())
                .await?,
        );
        for delay in sub.backoff.iter().filter(|d| !d.is_zero()) {
            n += u64::from(
                ch.queue_purge(
                    self.name(&names::wait_queue(&sub.queue, *delay)).into(),
                    QueuePurgeOptions::default(),
                )
                .await?,
            );
        }
        Ok(n)
    }

    async fn stats_inner(
        &self,
        conn: &Conn,
        sub: &Subscription,
    ) -> Result<QueueStats, RabbitError> {
        {
            // What the broker pushed (or is pushing) here is not in its message count:
            // read it into `held`, after waiting for the pushes of ours on their way.
            let gate = self.gate(&sub.queue);
            let _g = gate.lock().await;
            let mut none = Vec::new();
            self.place_pushed(conn, sub, 0, &mut none).await?;
            self.await_own_pushes(conn, sub, 0, &mut none).await?;
        }
        let mut depth = self.count(conn, &sub.queue).await?;
        let mut seen = HashSet::new();
        for delay in sub.backoff.iter().filter(|d| !d.is_zero()) {
            if seen.insert(*delay) {
                depth += self
                    .count(conn, &names::wait_queue(&sub.queue, *delay))
                    .await?;
            }
        }
        let (held, in_flight) = lock(&self.inner.state)
            .get(&sub.queue)
            .map_or((0, 0), |st| (st.held.len() as u64, st.leases.len() as u64));
        let dlq_depth = self.count(conn, &sub.dlq).await?;
        Ok(QueueStats {
            queue: sub.queue.clone(),
            dlq: sub.dlq.clone(),
            depth: depth + held,
            in_flight,
            dlq_depth,
        })
    }

    async fn publish_inner(
        &self,
        conn: &Conn,
        events: &[OutgoingEvent],
    ) -> Result<(), RabbitError> {
        let mut pending = Vec::new();
        let mut this_batch = HashSet::new();
        for e in events {
            let id = e.id.to_string();
            if lock(&self.inner.recent).contains(&id) || !this_batch.insert(id.clone()) {
                continue;
            }
            let exchange = self.ensure_exchange(conn, &e.topic).await?;
            let mut h = FieldTable::default();
            h.insert(H_EVENT_TYPE.into(), long_string(&e.event_type));
            if let Some(k) = &e.ordering_key {
                h.insert(H_ORDERING_KEY.into(), long_string(k));
            }
            if let Some(t) = &e.trace_id {
                h.insert(H_TRACE_ID.into(), long_string(t));
            }
            h.insert(H_PUBLISHED_AT.into(), AMQPValue::LongLongInt(now_ms()));
            let body = serde_json::to_vec(&e.body).unwrap_or_default();
            let confirm = conn
                .publish
                .basic_publish(
                    exchange.as_str().into(),
                    e.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    base_props(&id).with_headers(h),
                )
                .await?;
            pending.push((id, e, confirm));
        }
        if pending.is_empty() {
            return Ok(());
        }
        // Confirms are awaited together: one round of fsyncs for the whole batch.
        let subs: Vec<Subscription> = lock(&self.inner.subs).values().cloned().collect();
        for (id, e, confirm) in pending {
            check_confirm(confirm.await?, &id, &e.event_type)?;
            for sub in subs
                .iter()
                .filter(|s| s.topic == e.topic && s.accepts(&e.event_type))
            {
                self.expect(&sub.queue, &id, false);
            }
            lock(&self.inner.recent).insert(id);
        }
        Ok(())
    }
}

fn check_confirm(c: Confirmation, id: &str, routing_key: &str) -> Result<(), RabbitError> {
    match c {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(RabbitError::Unroutable(
            id.to_string(),
            routing_key.to_string(),
        )),
        Confirmation::Nack(_) => Err(RabbitError::Nacked(id.to_string())),
    }
}

fn lease(st: &mut QueueState, sub: &Subscription, raw: Raw, now: Instant) -> Delivery {
    if let Some(k) = &raw.ordering_key
        && st
            .reserved
            .get(k)
            .is_some_and(|(id, _)| *id == raw.event_id)
    {
        st.reserved.remove(k);
    }
    let receipt = format!(
        "{}.{}.{}",
        raw.generation,
        raw.tag,
        uuid::Uuid::new_v4().simple()
    );
    let d = Delivery {
        queue: sub.queue.clone(),
        message_id: raw.event_id.clone(),
        event_id: raw.event_id.clone(),
        event_type: raw.event_type.clone(),
        ordering_key: raw.ordering_key.clone(),
        body: String::from_utf8_lossy(&raw.body).into_owned(),
        trace_id: raw.trace_id.clone(),
        receive_count: raw.receive_count,
        receipt: receipt.clone(),
    };
    st.leases.insert(
        receipt,
        Lease {
            raw,
            deadline: now + sub.visibility_timeout,
        },
    );
    d
}

/// Places a newly pushed or fetched message: handed out (when its key is free and `out`
/// has room for `max`), or held back behind its key.
fn place(
    st: &mut QueueState,
    sub: &Subscription,
    raw: Raw,
    max: usize,
    out: &mut Vec<Delivery>,
    now: Instant,
) {
    let deliver = out.len() < max
        && match &raw.ordering_key {
            None => true,
            Some(k) => {
                let reserved_for_me = st
                    .reserved
                    .get(k)
                    .is_some_and(|(id, _)| *id == raw.event_id);
                reserved_for_me
                    || (!st.key_busy(k, &raw.event_id, now)
                        && !st.held.iter().any(|h| h.ordering_key.as_ref() == Some(k)))
            }
        };
    if deliver {
        out.push(lease(st, sub, raw, now));
    } else {
        st.held.push_back(raw);
    }
}

fn base_props(id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(id.into())
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_timestamp(u64::try_from(now_ms() / 1000).unwrap_or(0))
}

fn quorum_args(expiry: Option<Duration>) -> FieldTable {
    let mut a = FieldTable::default();
    a.insert("x-queue-type".into(), long_string("quorum"));
    if let Some(e) = expiry {
        a.insert("x-expires".into(), AMQPValue::LongLongInt(millis(e).max(1)));
    }
    a
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// At-least-once dead-lettering through the default exchange into `target`.
fn dead_letter_to(args: &mut FieldTable, target: &str) {
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert("x-dead-letter-routing-key".into(), long_string(target));
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn header_str(h: Option<&FieldTable>, k: &str) -> Option<String> {
    match h?.inner().get(k)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn header_int(h: Option<&FieldTable>, k: &str) -> Option<i64> {
    match h?.inner().get(k)? {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Reads a pushed or fetched message; tolerant of messages published by other tools
/// (missing headers fall back to the routing key and the AMQP properties).
fn parse(generation: u64, d: &AmqpDelivery) -> Raw {
    let h = d.properties.headers().as_ref();
    let attempt = header_int(h, H_ATTEMPT).map_or(0, to_u32);
    // Returns counted by the broker since the last (re)publish (channel closes, peeks).
    let returns = header_int(h, H_DELIVERY_COUNT)
        .map(to_u32)
        .unwrap_or(u32::from(d.redelivered));
    Raw {
        generation,
        tag: d.delivery_tag,
        event_id: d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        event_type: header_str(h, H_EVENT_TYPE)
            .unwrap_or_else(|| d.routing_key.as_str().to_string()),
        ordering_key: header_str(h, H_ORDERING_KEY),
        trace_id: header_str(h, H_TRACE_ID),
        body: d.data.clone(),
        receive_count: attempt.saturating_add(returns).saturating_add(1),
        published_at_ms: header_int(h, H_PUBLISHED_AT)
            .or_else(|| {
                d.properties
                    .timestamp()
                    .and_then(|t| i64::try_from(t).ok())
                    .map(|s| s * 1000)
            })
            .unwrap_or(0),
    }
}

fn dlq_message(m: &BasicGetMessage) -> DlqMessage {
    let h = m.delivery.properties.headers().as_ref();
    let raw = parse(0, &m.delivery);
    // A message the broker dead-lettered (delivery limit after crashed consumers) has
    // no x-last-error; its x-death entry says why.
    let last_error = header_str(h, H_LAST_ERROR).or_else(|| {
        h.and_then(|h| h.inner().get("x-death"))
            .map(|_| "dead-lettered by the broker (delivery limit)".to_string())
    });
    DlqMessage {
        message_id: raw.event_id.clone(),
        event_id: raw.event_id,
        event_type: raw.event_type,
        body: String::from_utf8_lossy(&raw.body).into_owned(),
        receive_count: header_int(h, H_ATTEMPT).map_or(raw.receive_count, to_u32),
        last_error,
        dead_lettered_at_ms: header_int(h, H_DEAD_LETTERED_AT),
        enqueued_at_ms: raw.published_at_ms,
    }
}

#[async_trait::async_trait]
impl EventBus for RabbitBus {
    async fn declare(&self, sub: &Subscription) -> Result<(), BusError> {
        sub.validate()?;
        let old = {
            let subs = lock(&self.inner.subs);
            if let Some(other) = subs.values().find(|s| {
                s.queue != sub.queue
                    && (s.dlq == sub.dlq || s.queue == sub.dlq || s.dlq == sub.queue)
            }) {
                return Err(BusError::InvalidSubscription(format!(
                    "queue '{}': dead-letter queue '{}' clashes with queue '{}' (DLQ '{}')",
                    sub.queue, sub.dlq, other.queue, other.dlq
                )));
            }
            subs.get(&sub.queue).cloned()
        };
        if let Some(old) = &old
            && old.dlq != sub.dlq
        {
            return Err(BusError::InvalidSubscription(format!(
                "queue '{}' already dead-letters into '{}'; its DLQ cannot change to '{}'",
                sub.queue, old.dlq, sub.dlq
            )));
        }
        let conn = self.conn().await?;
        if let Err(e) = self.declare_inner(&conn, sub, old.as_ref()).await {
            return Err(self.failed(&conn, e).await);
        }
        lock(&self.inner.subs).insert(sub.queue.clone(), sub.clone());
        Ok(())
    }

    async fn subscription(&self, queue: &str) -> Result<Subscription, BusError> {
        self.sub(queue)
    }

    async fn publish_batch(&self, events: &[OutgoingEvent]) -> Result<(), BusError> {
        if let Some(e) = events
            .iter()
            .find(|e| e.event_type.len() > 255 || e.event_type.is_empty())
        {
            return Err(BusError::Backend(format!(
                "event {}: eventType must be 1-255 bytes to be a routing key",
                e.id
            )));
        }
        let conn = self.conn().await?;
        match self.publish_inner(&conn, events).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn receive(&self, queue: &str, max: usize) -> Result<Vec<Delivery>, BusError> {
        let sub = self.sub(queue)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let gate = self.gate(queue);
        let _g = gate.lock().await;
        let conn = self.conn().await?;
        match self.receive_inner(&conn, &sub, max).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn wait(&self, queue: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let wake = self.waker(queue);
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_expired_lease(queue) {
                return;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return;
            }
            let (sub, conn) = match (self.sub(queue), self.conn().await) {
                (Ok(sub), Ok(conn)) => (sub, conn),
                _ => {
                    // Unknown queue, or the broker is away: look again in a while.
                    tokio::select! {
                        _ = &mut notified => return,
                        _ = tokio::time::sleep((deadline - now).min(WAIT_POLL)) => {}
                    }
                    continue;
                }
            };
            let Some(consumer) = self.wait_consumer(&conn, &sub).await else {
                // No push consumer: poll the broker for messages from other processes.
                if self.held_len(queue) < HOLD_LIMIT
                    && self.count(&conn, &sub.queue).await.is_ok_and(|n| n > 0)
                {
                    return;
                }
                tokio::select! {
                    _ = &mut notified => return,
                    _ = tokio::time::sleep((deadline - now).min(WAIT_POLL)) => {}
                }
                continue;
            };
            if self.drain_pushed(queue, conn.generation) {
                return;
            }
            // Woken by a push (from any process), a local settle or publish, a lease
            // running out, or the deadline.
            let until = self.next_lease_deadline(queue).map_or(deadline, |d| {
                deadline.min(tokio::time::Instant::from_std(d))
            });
            tokio::select! {
                _ = &mut notified => return,
                _ = self.next_push(queue, conn.generation, consumer) => return,
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn ack(&self, d: &Delivery) -> Result<Settled, BusError> {
        let conn = self.conn().await?;
        let Some(lease) = self.take_lease(d, conn.generation) else {
            return Ok(Settled::LeaseLost);
        };
        if let Err(e) = self.ack_tag(&conn, &lease.raw).await {
            return Err(self.failed(&conn, e).await);
        }
        self.wake_held(&d.queue);
        Ok(Settled::Acked)
    }

    async fn nack(&self, d: &Delivery, error: &str) -> Result<Settled, BusError> {
        self.settle_elsewhere(d, error, false).await
    }

    async fn dead_letter(&self, d: &Delivery, error: &str) -> Result<Settled, BusError> {
        self.settle_elsewhere(d, error, true).await
    }

    async fn list_queues(&self) -> Result<Vec<String>, BusError> {
        let mut v: Vec<String> = lock(&self.inner.subs).keys().cloned().collect();
        v.sort();
        Ok(v)
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats, BusError> {
        let sub = self.sub(queue)?;
        let conn = self.conn().await?;
        match self.stats_inner(&conn, &sub).await {
            Ok(s) => Ok(s),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn peek_dlq(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, BusError> {
        let sub = self.sub(queue)?;
        let conn = self.conn().await?;
        match self.peek(&conn, &sub.dlq, max).await {
            Ok(v) => Ok(v.iter().map(dlq_message).collect()),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn retry_dlq(&self, queue: &str) -> Result<u64, BusError> {
        let sub = self.sub(queue)?;
        let conn = self.conn().await?;
        match self.redrive(&conn, &sub).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }

    async fn purge(&self, name: &str) -> Result<u64, BusError> {
        let (sub, is_dlq) = {
            let subs = lock(&self.inner.subs);
            match subs.get(name) {
                Some(s) => (s.clone(), false),
                None => match subs.values().find(|s| s.dlq == name) {
                    Some(s) => (s.clone(), true),
                    None => return Err(BusError::UnknownQueue(name.to_string())),
                },
            }
        };
        let conn = self.conn().await?;
        let result = if is_dlq {
            match conn.admin().await {
                Ok(ch) => ch
                    .queue_purge(self.name(&sub.dlq).into(), QueuePurgeOptions::default())
                    .await
                    .map(u64::from)
                    .map_err(RabbitError::from),
                Err(e) => Err(e),
            }
        } else {
            let gate = self.gate(&sub.queue);
            let _g = gate.lock().await;
            self.purge_queue(&conn, &sub).await
        };
        match result {
            Ok(n) => Ok(n),
            Err(e) => Err(self.failed(&conn, e).await),
        }
    }
}
