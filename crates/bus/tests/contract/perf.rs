//! Rough performance probes (ignored by default; run with
//! `cargo test -p tandem-bus --release --test contract perf -- --ignored --nocapture`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_bus::contract::OutboxMigrator;
use tandem_bus::{
    ConsumerOptions, EventBus, HandlerError, MessageHandler, OutboxRelay, SqlBus, Subscription,
    outbox, spawn_consumer_with,
};
use tandem_platform::db::testing::{TestBackend, TestStorage};
use tandem_platform::events::{InboundEvent, OutgoingEvent};
use tokio_util::sync::CancellationToken;

async fn real_bus(storage: &TestStorage) -> SqlBus {
    SqlBus::connect(&storage.config).await.unwrap()
}

/// Publish, lease and ack throughput with a backlog.
async fn throughput(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let bus = real_bus(&storage).await;
    let sub = Subscription::new("perf", "perf-topic");
    bus.declare(&sub).await.unwrap();
    bus.declare(&Subscription::new("perf-other", "perf-topic").event_types(["nothing"]))
        .await
        .unwrap();
    let n = 20_000;
    let events: Vec<OutgoingEvent> = (0..n)
        .map(|i| {
            OutgoingEvent::raw(
                "perf-topic",
                "e",
                json!({ "i": i }),
                Some(format!("k{}", i % 1000)),
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in events.chunks(256) {
        bus.publish_batch(chunk).await.unwrap();
    }
    let publish = started.elapsed();
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let got = bus.receive("perf", 64).await.unwrap();
        assert!(!got.is_empty());
        for d in &got {
            bus.ack(d).await.unwrap();
        }
        done += got.len();
    }
    let consume = started.elapsed();
    println!(
        "{backend:?}: publish {:.0}/s, lease+ack {:.0}/s",
        n as f64 / publish.as_secs_f64(),
        n as f64 / consume.as_secs_f64()
    );
}

const WARM_UP: u64 = 200;

struct Timer(Mutex<HashMap<u64, Instant>>, Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl MessageHandler for Timer {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        let i = event.body["i"].as_u64().unwrap_or(0);
        if let Some(t) = self.0.lock().unwrap().remove(&i) {
            // The first events pay for opening pool connections and preparing statements.
            if i >= WARM_UP {
                self.1.lock().unwrap().push(t.elapsed());
            }
        }
        Ok(())
    }
}

/// Commit → handler latency through outbox, relay, bus and consumer at 200 events/s.
async fn latency(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(real_bus(&storage).await);
    let producer = storage.db("producer").await;
    producer.migrate::<OutboxMigrator>().await.unwrap();
    let timer = Arc::new(Timer(Mutex::new(HashMap::new()), Mutex::new(Vec::new())));
    let cancel = CancellationToken::new();
    let sub = Subscription::new("lat", "lat-topic");
    bus.declare(&sub).await.unwrap();
    let consumer = spawn_consumer_with(
        bus.clone(),
        sub,
        timer.clone(),
        cancel.clone(),
        ConsumerOptions::default(),
    );
    let relay = OutboxRelay::new(producer.clone(), bus.clone()).spawn(cancel.clone());
    let n = 1000u64 + WARM_UP;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0..n {
        tick.tick().await;
        let txn = producer.begin_write().await.unwrap();
        let e = OutgoingEvent::raw(
            "lat-topic",
            "e",
            json!({ "i": i }),
            Some(format!("k{}", i % 50)),
        );
        outbox::enqueue(&txn, &e).await.unwrap();
        timer.0.lock().unwrap().insert(i, Instant::now());
        txn.commit().await.unwrap();
        outbox::committed();
    }
    let started = Instant::now();
    while timer.1.lock().unwrap().len() < (n - WARM_UP) as usize {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not all delivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    relay.await.unwrap();
    consumer.await.unwrap();
    let mut l = timer.1.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    println!(
        "{backend:?}: commit→handler p50 {:?} p99 {:?} max {:?}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

mod sqlite {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn throughput() {
        super::throughput(TestBackend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn latency() {
        super::latency(TestBackend::Sqlite).await
    }
}

mod postgres {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn throughput() {
        super::throughput(TestBackend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn latency() {
        super::latency(TestBackend::Postgres).await
    }
}
