//! The consumer runtime and the relay task, end to end on SqlBus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_bus::contract::OutboxMigrator;
use tandem_bus::{
    ConsumerOptions, EventBus, HandlerError, MessageHandler, OutboxRelay, RelayConfig,
    Subscription, outbox, spawn_consumer_with,
};
use tandem_platform::db::testing::TestBackend;
use tandem_platform::events::{InboundEvent, OutgoingEvent};
use tokio_util::sync::CancellationToken;

use super::SqlFixture;

/// What a test handler saw, and how it should answer.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(InboundEvent, Option<String>)>>,
    /// eventType → answers for successive calls (Ok once exhausted).
    script: Mutex<HashMap<String, Vec<Result<(), HandlerError>>>>,
    /// Per ordering key: how many handlers are running now (must never exceed 1).
    running: Mutex<HashMap<String, u32>>,
    overlap: Mutex<bool>,
    delay: Duration,
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        let key = event
            .body
            .get("key")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(k) = &key {
            let mut running = self.running.lock().unwrap();
            let n = running.entry(k.clone()).or_default();
            *n += 1;
            if *n > 1 {
                *self.overlap.lock().unwrap() = true;
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(k) = &key {
            *self.running.lock().unwrap().get_mut(k).unwrap() -= 1;
        }
        self.seen
            .lock()
            .unwrap()
            .push((event.clone(), tandem_platform::http::current_trace_id()));
        let mut script = self.script.lock().unwrap();
        match script.get_mut(&event.event_type) {
            Some(answers) if !answers.is_empty() => answers.remove(0),
            _ => Ok(()),
        }
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn fast() -> ConsumerOptions {
    ConsumerOptions {
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
    }
}

fn sub(topic: &str) -> Subscription {
    Subscription::new(
        format!("q-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        topic,
    )
    .max_receive_count(3)
    .visibility_timeout(Duration::from_secs(30))
    .backoff(vec![Duration::from_secs(1)])
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn event(event_type: &str, key: Option<&str>, n: u32) -> OutgoingEvent {
    let mut e = OutgoingEvent::raw(
        "domain-events",
        event_type,
        json!({ "eventType": event_type, "n": n, "key": key }),
        key.map(str::to_string),
    );
    e.trace_id = Some(format!("trace-{n}"));
    e
}

/// Handled once each, under the producer's trace id, then acked.
async fn processes_and_acks_under_the_trace_id(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let s = sub("domain-events").event_types(["x.*"]);
    let rec = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let handle = spawn_consumer_with(bus.clone(), s.clone(), rec.clone(), cancel.clone(), fast());
    until_async("declared", || async {
        bus.subscription(&s.queue).await.is_ok()
    })
    .await;

    bus.publish_batch(&[
        event("x.a", None, 1),
        event("x.b", None, 2),
        event("y", None, 3),
    ])
    .await
    .unwrap();
    until("two handled", || rec.count() == 2).await;
    until_async("acked", || async {
        let st = bus.stats(&s.queue).await.unwrap();
        st.depth + st.in_flight == 0
    })
    .await;
    let mut seen: Vec<(String, Option<String>)> = rec
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(e, t)| (e.event_type.clone(), t.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("x.a".into(), Some("trace-1".into())),
            ("x.b".into(), Some("trace-2".into()))
        ]
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

/// Retry backs off (time moves on the bus clock), then succeeds; Reject and an
/// unreadable body go straight to the DLQ with the reason.
async fn retry_backs_off_and_reject_dead_letters(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let s = sub("domain-events");
    let rec = Arc::new(Recorder::default());
    rec.script.lock().unwrap().insert(
        "flaky".into(),
        vec![Err(HandlerError::Retry("peer down".into()))],
    );
    rec.script.lock().unwrap().insert(
        "poison".into(),
        vec![Err(HandlerError::Reject("never valid".into()))],
    );
    let cancel = CancellationToken::new();
    let handle = spawn_consumer_with(bus.clone(), s.clone(), rec.clone(), cancel.clone(), fast());
    until_async("declared", || async {
        bus.subscription(&s.queue).await.is_ok()
    })
    .await;

    let unreadable = OutgoingEvent::raw(
        "domain-events",
        "wrapped",
        json!({ "Type": "Notification" }),
        None,
    );
    bus.publish_batch(&[
        event("flaky", None, 1),
        event("poison", None, 2),
        unreadable,
    ])
    .await
    .unwrap();
    until("first attempts", || rec.count() == 2).await;
    until_async("settled", || async {
        bus.stats(&s.queue).await.unwrap().in_flight == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rec.count(), 2, "the retry waits for its back-off");

    f.clock.advance(Duration::from_millis(1100));
    until("the retry", || rec.count() == 3).await;
    until_async("acked", || async {
        bus.stats(&s.queue).await.unwrap().depth == 0
    })
    .await;

    let dead = bus.peek_dlq(&s.queue, 10).await.unwrap();
    let mut errors: Vec<String> = dead.iter().filter_map(|m| m.last_error.clone()).collect();
    errors.sort();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0], "never valid");
    assert!(errors[1].starts_with("unreadable message"), "{}", errors[1]);
    cancel.cancel();
    handle.await.unwrap();
}

/// SNS-in-SQS wrapped messages are unwrapped for the handler.
async fn sns_wrapped_bodies_are_unwrapped(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let s = sub("domain-events");
    let rec = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let handle = spawn_consumer_with(bus.clone(), s.clone(), rec.clone(), cancel.clone(), fast());
    until_async("declared", || async {
        bus.subscription(&s.queue).await.is_ok()
    })
    .await;
    let wrapped = json!({
        "Type": "Notification",
        "Message": "{\"eventType\":\"prison-offender-events.prisoner.merged\",\"additionalInformation\":{\"nomsNumber\":\"A1234BC\"}}",
        "MessageAttributes": { "eventType": { "Type": "String", "Value": "prison-offender-events.prisoner.merged" } }
    });
    bus.publish(&OutgoingEvent::raw(
        "domain-events",
        "prison-offender-events.prisoner.merged",
        wrapped,
        None,
    ))
    .await
    .unwrap();
    until("handled", || rec.count() == 1).await;
    let (e, _) = rec.seen.lock().unwrap()[0].clone();
    assert_eq!(e.event_type, "prison-offender-events.prisoner.merged");
    assert_eq!(e.info_str("nomsNumber"), Some("A1234BC"));
    cancel.cancel();
    handle.await.unwrap();
}

/// With concurrency 8, messages for one key never overlap and keep their order; other
/// keys run alongside.
async fn concurrency_keeps_order_per_key(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let s = sub("domain-events").concurrency(8);
    let rec = Arc::new(Recorder {
        delay: Duration::from_millis(15),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let handle = spawn_consumer_with(bus.clone(), s.clone(), rec.clone(), cancel.clone(), fast());
    until_async("declared", || async {
        bus.subscription(&s.queue).await.is_ok()
    })
    .await;

    let keys = ["a", "b", "c", "d"];
    let events: Vec<OutgoingEvent> = (0..40)
        .map(|n| event("e", Some(keys[n % 4]), n as u32))
        .collect();
    let started = Instant::now();
    bus.publish_batch(&events).await.unwrap();
    until("all handled", || rec.count() == 40).await;
    let elapsed = started.elapsed();
    assert!(
        !*rec.overlap.lock().unwrap(),
        "two messages of one key ran at once"
    );
    let seen = rec.seen.lock().unwrap().clone();
    for k in keys {
        let ns: Vec<u64> = seen
            .iter()
            .filter(|(e, _)| e.body["key"] == k)
            .map(|(e, _)| e.body["n"].as_u64().unwrap())
            .collect();
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, sorted, "key {k} out of order");
        assert_eq!(ns.len(), 10);
    }
    // 40 × 15 ms one at a time would be 600 ms; four keys in parallel take about a quarter.
    assert!(elapsed < Duration::from_millis(3000), "took {elapsed:?}");
    cancel.cancel();
    handle.await.unwrap();
}

/// A running relay publishes on `committed()` promptly, and drains on cancellation.
async fn relay_task_wakes_on_commit_and_drains_on_stop(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let producer = f.storage.db("producer").await;
    producer.migrate::<OutboxMigrator>().await.unwrap();
    let s = sub("domain-events");
    bus.declare(&s).await.unwrap();
    let cancel = CancellationToken::new();
    // A long poll: only the wake-up can make this fast.
    let config = RelayConfig {
        poll_interval: Duration::from_secs(30),
        ..Default::default()
    };
    let handle = OutboxRelay::new(producer.clone(), bus.clone())
        .with_config(config)
        .spawn(cancel.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let txn = producer.begin_write().await.unwrap();
    outbox::enqueue(&txn, &event("e", None, 1)).await.unwrap();
    txn.commit().await.unwrap();
    let started = Instant::now();
    outbox::committed();
    until_async("relayed", || async {
        bus.stats(&s.queue).await.unwrap().depth == 1
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));

    // Committed without a wake-up, then stop: the relay drains it before ending.
    let txn = producer.begin_write().await.unwrap();
    outbox::enqueue(&txn, &event("e", None, 2)).await.unwrap();
    txn.commit().await.unwrap();
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bus.stats(&s.queue).await.unwrap().depth, 2);
}

/// A cancelled consumer stops promptly, letting a running handler finish and settle.
async fn cancel_lets_running_handlers_finish(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let s = sub("domain-events");
    let rec = Arc::new(Recorder {
        delay: Duration::from_millis(300),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let handle = spawn_consumer_with(bus.clone(), s.clone(), rec.clone(), cancel.clone(), fast());
    until_async("declared", || async {
        bus.subscription(&s.queue).await.is_ok()
    })
    .await;
    bus.publish(&event("e", None, 1)).await.unwrap();
    until_async("leased", || async {
        bus.stats(&s.queue).await.unwrap().in_flight == 1
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.count(), 1);
    let st = bus.stats(&s.queue).await.unwrap();
    assert_eq!(
        (st.depth, st.in_flight),
        (0, 0),
        "the finished handler's message was acked"
    );
}

/// Two buses on one database (two processes): every message handled exactly once, and
/// never two of one key at once, with both consumers competing for the queue.
async fn competing_processes_share_a_queue(backend: TestBackend) {
    let f = SqlFixture::new(backend).await;
    let first: Arc<dyn EventBus> = Arc::new(
        tandem_bus::SqlBus::new(f.storage.db("bus").await)
            .await
            .unwrap(),
    );
    let second: Arc<dyn EventBus> = Arc::new(
        tandem_bus::SqlBus::new(f.storage.db("bus").await)
            .await
            .unwrap(),
    );
    let s = sub("domain-events").concurrency(4);
    first.declare(&s).await.unwrap();
    let rec = Arc::new(Recorder {
        delay: Duration::from_millis(2),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let a = spawn_consumer_with(
        first.clone(),
        s.clone(),
        rec.clone(),
        cancel.clone(),
        fast(),
    );
    let b = spawn_consumer_with(
        second.clone(),
        s.clone(),
        rec.clone(),
        cancel.clone(),
        fast(),
    );
    let keys = ["a", "b", "c", "d", "e"];
    let events: Vec<OutgoingEvent> = (0..100)
        .map(|n| event("e", Some(keys[n % 5]), n as u32))
        .collect();
    for chunk in events.chunks(10) {
        first.publish_batch(chunk).await.unwrap();
    }
    until("all handled", || rec.count() >= 100).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    a.await.unwrap();
    b.await.unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    let mut ns: Vec<u64> = seen
        .iter()
        .map(|(e, _)| e.body["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(
        ns,
        (0..100).collect::<Vec<u64>>(),
        "each message exactly once"
    );
    assert!(
        !*rec.overlap.lock().unwrap(),
        "two messages of one key ran at once"
    );
    for k in keys {
        let order: Vec<u64> = seen
            .iter()
            .filter(|(e, _)| e.body["key"] == k)
            .map(|(e, _)| e.body["n"].as_u64().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "key {k} out of order: {order:?}"
        );
    }
}

tandem_platform::both_backends!(
    competing_processes_share_a_queue,
    processes_and_acks_under_the_trace_id,
    retry_backs_off_and_reject_dead_letters,
    sns_wrapped_bodies_are_unwrapped,
    concurrency_keeps_order_per_key,
    relay_task_wakes_on_commit_and_drains_on_stop,
    cancel_lets_running_handlers_finish,
);
