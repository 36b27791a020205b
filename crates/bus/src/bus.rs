//! The bus contract every backend implements: the embedded [`SqlBus`](crate::sql::SqlBus)
//! today, RabbitMQ later. Semantics follow SNS + SQS as the HMPPS services use them:
//! fan-out from a topic to one queue per consumer with an `eventType` filter, leases with
//! a visibility timeout, back-off on failure, a dead-letter queue after N receives, and
//! redrive of a DLQ to its own queue only.

use std::time::Duration;

use serde::Serialize;
use tandem_platform::ApiError;
use tandem_platform::events::OutgoingEvent;
use utoipa::ToSchema;

/// HMPPS defaults (`hmpps-spring-boot-sqs`): 5 receives, 30 s visibility, and the
/// `1, 10, 60, 600` s error back-off the sync services use.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_BACKOFF_SECS: [u64; 4] = [1, 10, 60, 600];
pub const DEFAULT_CONCURRENCY: usize = 8;

/// One consumer's queue: which topic feeds it, which event types it wants, and how
/// failures are retried and dead-lettered.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub queue: String,
    pub topic: String,
    /// `eventType` filters: an exact type, or a prefix ending in `*`. Empty = every event.
    pub event_types: Vec<String>,
    /// The dead-letter queue's name (default `<queue>-dlq`).
    pub dlq: String,
    /// Receives before a message moves to the DLQ (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// How long a received message stays hidden before it is redelivered unacknowledged.
    pub visibility_timeout: Duration,
    /// Delay before redelivery after the n-th failed receive (`backoff[n-1]`; the last
    /// entry repeats). The HMPPS `errorVisibilityTimeout`.
    pub backoff: Vec<Duration>,
    /// Messages a consumer handles at once (ordering per key is kept by the bus).
    pub concurrency: usize,
}

impl Subscription {
    /// A subscription to every event on `topic`, with the HMPPS defaults.
    pub fn new(queue: impl Into<String>, topic: impl Into<String>) -> Self {
        let queue = queue.into();
        Self {
            dlq: format!("{queue}-dlq"),
            queue,
            topic: topic.into(),
            event_types: Vec::new(),
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            backoff: DEFAULT_BACKOFF_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Adds `eventType` filters (exact, or a prefix ending in `*`).
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types.extend(types.into_iter().map(Into::into));
        self
    }

    pub fn dlq(mut self, name: impl Into<String>) -> Self {
        self.dlq = name.into();
        self
    }

    pub fn max_receive_count(mut self, n: u32) -> Self {
        self.max_receive_count = n;
        self
    }

    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility_timeout = d;
        self
    }

    pub fn backoff(mut self, delays: Vec<Duration>) -> Self {
        self.backoff = delays;
        self
    }

    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// True when an event of `event_type` passes this subscription's filter.
    pub fn accepts(&self, event_type: &str) -> bool {
        self.event_types.is_empty()
            || self
                .event_types
                .iter()
                .any(|f| filter_matches(f, event_type))
    }

    /// The delay before redelivery after the `receive_count`-th receive failed.
    pub fn backoff_for(&self, receive_count: u32) -> Duration {
        let i = (receive_count.max(1) - 1) as usize;
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// Checks the settings a backend relies on, so a mistake fails at declare time.
    pub fn validate(&self) -> Result<(), BusError> {
        let bad = |m: String| Err(BusError::InvalidSubscription(m));
        if !valid_name(&self.queue) {
            return bad(format!(
                "queue name '{}' must be 1-200 letters, digits, '-', '_' or '.'",
                self.queue
            ));
        }
        if !valid_name(&self.dlq) || self.dlq == self.queue {
            return bad(format!(
                "dead-letter queue name '{}' must be a valid name different from the queue's",
                self.dlq
            ));
        }
        if self.topic.is_empty() {
            return bad(format!("queue '{}' has no topic", self.queue));
        }
        if self.max_receive_count == 0 {
            return bad(format!(
                "queue '{}': max_receive_count must be at least 1",
                self.queue
            ));
        }
        if self.visibility_timeout.is_zero() {
            return bad(format!(
                "queue '{}': visibility_timeout must be positive",
                self.queue
            ));
        }
        if let Some(f) = self
            .event_types
            .iter()
            .find(|f| f.is_empty() || f.find('*').is_some_and(|i| i + 1 != f.len()))
        {
            return bad(format!(
                "queue '{}': event type filter '{f}' must be an exact type or a prefix ending in '*'",
                self.queue
            ));
        }
        Ok(())
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// An `eventType` filter: exact, or a prefix when it ends in `*` (`*` alone matches all).
pub fn filter_matches(filter: &str, event_type: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => filter == event_type,
    }
}

/// A leased message. Settle it with [`EventBus::ack`], [`EventBus::nack`] or
/// [`EventBus::dead_letter`] before the visibility timeout runs out.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub queue: String,
    /// The backend's id for this message (opaque).
    pub message_id: String,
    /// The producer's event id (the outbox row's uuid).
    pub event_id: String,
    /// The `eventType` message attribute.
    pub event_type: String,
    pub ordering_key: Option<String>,
    /// The body as published (JSON text).
    pub body: String,
    pub trace_id: Option<String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// Proof of this lease (opaque); settling with a stale receipt does nothing.
    pub receipt: String,
}

/// What settling a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Removed from the queue.
    Acked,
    /// Will be redelivered after this delay.
    Retrying(Duration),
    /// Moved to the dead-letter queue.
    DeadLettered,
    /// The lease had already expired and the message was received again (or purged):
    /// nothing changed. Harmless; the other receiver settles it.
    LeaseLost,
}

/// Counts for one queue, as the admin endpoints and `/health` show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: String,
    pub dlq: String,
    /// Messages waiting (visible now or delayed by a back-off).
    pub depth: u64,
    /// Messages received and not yet settled.
    pub in_flight: u64,
    pub dlq_depth: u64,
}

/// A message on a dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqMessage {
    pub message_id: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub receive_count: u32,
    pub last_error: Option<String>,
    /// Epoch milliseconds.
    pub dead_lettered_at_ms: Option<i64>,
    pub enqueued_at_ms: i64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("no queue or dead-letter queue named '{0}'")]
    UnknownQueue(String),
    #[error("invalid subscription: {0}")]
    InvalidSubscription(String),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus error: {0}")]
    Backend(String),
}

impl From<sea_orm::DbErr> for BusError {
    fn from(e: sea_orm::DbErr) -> Self {
        match tandem_platform::db::DbError::from(e) {
            tandem_platform::db::DbError::Unavailable(m) => BusError::Unavailable(m),
            other => BusError::Backend(other.to_string()),
        }
    }
}

impl From<tandem_platform::db::DbError> for BusError {
    fn from(e: tandem_platform::db::DbError) -> Self {
        match e {
            tandem_platform::db::DbError::Unavailable(m) => BusError::Unavailable(m),
            other => BusError::Backend(other.to_string()),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::UnknownQueue(_) => ApiError::not_found(e.to_string()),
            BusError::InvalidSubscription(_) => ApiError::bad_request(e.to_string()),
            BusError::Unavailable(_) => ApiError::unavailable(e),
            BusError::Backend(_) => ApiError::internal(e),
        }
    }
}

/// An event bus backend. Object-safe: services hold an `Arc<dyn EventBus>`.
///
/// Delivery is at least once; consumers are idempotent. Messages with the same ordering
/// key are delivered to a queue one at a time, in publish order.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Creates or updates a consumer's queue, its filter and its DLQ (idempotent). Events
    /// published before a queue is declared are not delivered to it, as with SNS.
    async fn declare(&self, sub: &Subscription) -> Result<(), BusError>;

    /// The declared subscription of `queue`.
    async fn subscription(&self, queue: &str) -> Result<Subscription, BusError>;

    /// Publishes to every queue subscribed to the event's topic whose filter matches.
    /// Idempotent on the event id: publishing it again adds nothing to a queue that holds it.
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), BusError> {
        self.publish_batch(std::slice::from_ref(event)).await
    }

    /// Publishes several events in order (one round trip where the backend allows).
    async fn publish_batch(&self, events: &[OutgoingEvent]) -> Result<(), BusError>;

    /// Leases up to `max` visible messages of `queue`, oldest first, skipping any whose
    /// ordering key has an earlier message still pending or in flight. Returns at once;
    /// use [`EventBus::wait`] to sleep until there may be more. Not cancel-safe: a
    /// dropped call may leave messages leased until their visibility timeout.
    async fn receive(&self, queue: &str, max: usize) -> Result<Vec<Delivery>, BusError>;

    /// Sleeps until messages may be available on `queue` (a publish, a settle) or
    /// `timeout` passes. Cancel-safe; spurious wake-ups are allowed.
    async fn wait(&self, queue: &str, timeout: Duration);

    /// Removes the message (when the receipt is still current).
    async fn ack(&self, delivery: &Delivery) -> Result<Settled, BusError>;

    /// A transient failure: redeliver after the queue's back-off for this attempt, or
    /// dead-letter if this was the last allowed receive. Records `error`.
    async fn nack(&self, delivery: &Delivery, error: &str) -> Result<Settled, BusError>;

    /// A poison message: straight to the DLQ, recording `error`.
    async fn dead_letter(&self, delivery: &Delivery, error: &str) -> Result<Settled, BusError>;

    /// Every declared queue (not the DLQs), by name.
    async fn list_queues(&self) -> Result<Vec<String>, BusError>;

    async fn stats(&self, queue: &str) -> Result<QueueStats, BusError>;

    /// Up to `max` messages on `queue`'s DLQ, oldest first, without removing them.
    async fn peek_dlq(&self, queue: &str, max: usize) -> Result<Vec<DlqMessage>, BusError>;

    /// Moves every message on `queue`'s DLQ back to `queue` (and nowhere else), with a
    /// fresh receive count. Returns how many moved.
    async fn retry_dlq(&self, queue: &str) -> Result<u64, BusError>;

    /// Deletes every message on `name`, a queue or a DLQ. Returns how many.
    async fn purge(&self, name: &str) -> Result<u64, BusError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(filter_matches("a.b", "a.b"));
        assert!(!filter_matches("a.b", "a.bc"));
        assert!(filter_matches("a.*", "a.bc"));
        assert!(!filter_matches("a.*", "b.a"));
        assert!(filter_matches("*", "anything"));
        let s = Subscription::new("q", "t");
        assert!(s.accepts("x"));
        let s = s.event_types(["x", "y.*"]);
        assert!(s.accepts("x") && s.accepts("y.z") && !s.accepts("z"));
    }

    #[test]
    fn backoff_repeats_the_last_entry() {
        let s = Subscription::new("q", "t")
            .backoff(vec![Duration::from_secs(1), Duration::from_secs(10)]);
        assert_eq!(s.backoff_for(1), Duration::from_secs(1));
        assert_eq!(s.backoff_for(2), Duration::from_secs(10));
        assert_eq!(s.backoff_for(7), Duration::from_secs(10));
        assert_eq!(s.backoff(vec![]).backoff_for(1), Duration::ZERO);
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(Subscription::new("q", "t").validate().is_ok());
        let e = Subscription::new("q q", "t").validate().unwrap_err();
        assert!(e.to_string().contains("'q q'"), "{e}");
        let e = Subscription::new("q", "t").dlq("q").validate().unwrap_err();
        assert!(e.to_string().contains("dead-letter"), "{e}");
        let e = Subscription::new("q", "t")
            .max_receive_count(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("max_receive_count"), "{e}");
        let e = Subscription::new("q", "t")
            .event_types(["a*b"])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("'a*b'"), "{e}");
        assert_eq!(Subscription::new("q", "t").dlq, "q-dlq");
    }
}
