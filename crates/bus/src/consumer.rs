//! The consumer runtime: leases messages from one queue, runs a handler for each with
//! bounded concurrency, and settles them — ack on success, back-off and redelivery on a
//! transient failure, the DLQ for a poison message.
//!
//! Ordering per key needs nothing here: the bus never leases a second message for a key
//! while the first is unsettled.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tandem_platform::events::InboundEvent;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::{Delivery, EventBus, Settled, Subscription};

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Transient (a peer is down, a mapping has not landed yet): back off and redeliver.
    #[error("{0}")]
    Retry(String),
    /// Poison (the message can never succeed): straight to the DLQ.
    #[error("{0}")]
    Reject(String),
}

/// What a consumer does with each event. Must be idempotent: delivery is at least once.
#[async_trait::async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError>;
}

/// Runtime knobs that are not queue settings.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Longest sleep between lease attempts when no wake-up arrives (another process
    /// published, or a back-off ran out).
    pub poll_interval: Duration,
    /// How long a stopping consumer lets running handlers finish before abandoning them
    /// (their messages are then redelivered after the visibility timeout).
    pub shutdown_grace: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Declares `sub` and consumes its queue until `cancel`.
pub fn spawn_consumer(
    bus: Arc<dyn EventBus>,
    sub: Subscription,
    handler: Arc<dyn MessageHandler>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    spawn_consumer_with(bus, sub, handler, cancel, ConsumerOptions::default())
}

/// [`spawn_consumer`] with explicit options.
pub fn spawn_consumer_with(
    bus: Arc<dyn EventBus>,
    sub: Subscription,
    handler: Arc<dyn MessageHandler>,
    cancel: CancellationToken,
    options: ConsumerOptions,
) -> JoinHandle<()> {
    let span = tracing::info_span!("consumer", queue = %sub.queue);
    tokio::spawn(run(bus, Arc::new(sub), handler, cancel, options).instrument(span))
}

async fn run(
    bus: Arc<dyn EventBus>,
    sub: Arc<Subscription>,
    handler: Arc<dyn MessageHandler>,
    cancel: CancellationToken,
    options: ConsumerOptions,
) {
    if !declare(&*bus, &sub, &cancel).await {
        return;
    }
    tracing::debug!(topic = %sub.topic, concurrency = sub.concurrency, "consumer started");
    let permits = Arc::new(Semaphore::new(sub.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut failures: u32 = 0;
    // Whether a lease attempt may find something: at the start, after a full batch (more
    // may be waiting), after every wake-up or poll, and after a message with an ordering
    // key was settled (the next one with its key may go now). A message without a key
    // finishing is not by itself a reason to ask: nothing waited for it, and a publish
    // while we were busy is a wake-up the next wait returns at once. Without this every
    // finished handler cost a lease round trip, nearly always empty.
    let mut may_have_more = true;
    while !cancel.is_cancelled() {
        while let Some(done) = tasks.try_join_next() {
            may_have_more |= done.unwrap_or(true);
        }
        let free = permits.available_permits();
        if free > 0 && may_have_more {
            match bus.receive(&sub.queue, free).await {
                Ok(batch) => {
                    failures = 0;
                    let full = batch.len() == free;
                    may_have_more = full;
                    for delivery in batch {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            break; // cannot happen: we leased no more than the free permits
                        };
                        let (bus, sub, handler) = (bus.clone(), sub.clone(), handler.clone());
                        tasks.spawn(async move {
                            let keyed = delivery.ordering_key.is_some();
                            process(&*bus, &sub, &*handler, delivery).await;
                            drop(permit);
                            keyed
                        });
                    }
                    if full {
                        continue; // probably more waiting
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "receive failed; backing off");
                    let pause =
                        (options.poll_interval * failures.min(20)).min(Duration::from_secs(5));
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = bus.wait(&sub.queue, options.poll_interval), if permits.available_permits() > 0 => {
                may_have_more = true;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                may_have_more |= done.unwrap_or(true);
            }
        }
    }
    let running = tasks.len();
    if running > 0 {
        tracing::debug!(running, "consumer stopping; letting handlers finish");
        let finish = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(options.shutdown_grace, finish)
            .await
            .is_err()
        {
            tracing::warn!(
                "handlers still running at shutdown; their messages will be redelivered"
            );
            tasks.abort_all();
        }
    }
    tracing::debug!("consumer stopped");
}

/// Declares the queue, retrying while the bus is unreachable. False when cancelled first.
async fn declare(bus: &dyn EventBus, sub: &Subscription, cancel: &CancellationToken) -> bool {
    let mut pause = Duration::from_millis(200);
    loop {
        match bus.declare(sub).await {
            Ok(()) => return true,
            Err(e @ crate::BusError::InvalidSubscription(_)) => {
                tracing::error!(error = %e, "consumer not started");
                return false;
            }
            Err(e) => tracing::warn!(error = %e, "cannot declare queue yet; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The outcome of running the handler, before settling.
enum Verdict {
    Done,
    Retry(String),
    Reject(String),
}

/// Handles one delivery and settles it.
pub(crate) async fn process(
    bus: &dyn EventBus,
    sub: &Subscription,
    handler: &dyn MessageHandler,
    d: Delivery,
) {
    let trace_id = d
        .trace_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "message",
        queue = %d.queue,
        event_type = %d.event_type,
        event_id = %d.event_id,
        trace_id = %trace_id,
        attempt = d.receive_count,
    );
    async {
        let started = Instant::now();
        let verdict = match InboundEvent::parse(d.body.as_bytes(), Some(&d.event_type)) {
            Err(e) => Verdict::Reject(format!("unreadable message: {e}")),
            Ok(event) => {
                // Stop before the lease runs out, so a slow handler is retried rather than
                // run twice at once.
                let limit = sub.visibility_timeout - sub.visibility_timeout / 10;
                let run = AssertUnwindSafe(handler.handle(&event)).catch_unwind();
                match tokio::time::timeout(limit, tandem_platform::http::with_trace_id(trace_id.clone(), run)).await {
                    Err(_) => Verdict::Retry(format!("handler timed out after {} ms", limit.as_millis())),
                    Ok(Err(_panic)) => Verdict::Retry("handler panicked".to_string()),
                    Ok(Ok(Ok(()))) => Verdict::Done,
                    Ok(Ok(Err(HandlerError::Retry(m)))) => Verdict::Retry(m),
                    Ok(Ok(Err(HandlerError::Reject(m)))) => Verdict::Reject(m),
                }
            }
        };
        metrics::histogram!("message_handling_seconds", "queue" => d.queue.clone())
            .record(started.elapsed().as_secs_f64());
        let settled = match &verdict {
            Verdict::Done => bus.ack(&d).await,
            Verdict::Retry(m) => bus.nack(&d, m).await,
            Verdict::Reject(m) => bus.dead_letter(&d, m).await,
        };
        let queue = d.queue.clone();
        match (settled, verdict) {
            (Ok(Settled::Acked), _) => {
                tracing::debug!("message processed");
                metrics::counter!("messages_processed_total", "queue" => queue, "outcome" => "success")
                    .increment(1);
            }
            (Ok(Settled::Retrying(delay)), Verdict::Retry(m)) | (Ok(Settled::Retrying(delay)), Verdict::Reject(m)) => {
                tracing::warn!(error = %m, retry_in_ms = delay.as_millis() as u64, "message failed; will retry");
                metrics::counter!("messages_processed_total", "queue" => queue, "outcome" => "retry")
                    .increment(1);
            }
            (Ok(Settled::DeadLettered), verdict) => {
                let error = match verdict {
                    Verdict::Retry(m) | Verdict::Reject(m) => m,
                    Verdict::Done => String::new(),
                };
                tracing::error!(error = %error, "message moved to the dead-letter queue");
                metrics::counter!("messages_processed_total", "queue" => queue.clone(), "outcome" => "dead_letter")
                    .increment(1);
                metrics::counter!("messages_dead_lettered_total", "queue" => queue).increment(1);
            }
            (Ok(Settled::LeaseLost), _) => {
                tracing::warn!("lease lost before the message was settled; it will be delivered again");
            }
            (Ok(Settled::Retrying(_)), Verdict::Done) => {}
            (Err(e), _) => {
                tracing::warn!(error = %e, "could not settle the message; it will be delivered again");
            }
        }
    }
    .instrument(span)
    .await
}
