//! The contract every [`EventBus`] backend passes, as plain async functions so each
//! backend's test binary runs the same checks (SqlBus on SQLite and PostgreSQL in
//! `tests/contract.rs`; RabbitMQ later).
//!
//! Each check makes its own uniquely named topic and queues, so checks can share a broker.
//! Durations are short (seconds) so a backend whose [`Fixture::advance`] really sleeps
//! still finishes quickly; with a manual clock they cost nothing.

use std::sync::Arc;
use std::time::Duration;

use sea_orm_migration::{MigrationTrait, MigratorTrait};
use serde_json::json;
use tandem_platform::db::Db;
use tandem_platform::events::OutgoingEvent;

use crate::bus::{BusError, Delivery, EventBus, Settled, Subscription};
use crate::outbox::{self, OutboxRelay};

/// A backend under test.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    fn bus(&self) -> Arc<dyn EventBus>;
    /// Moves the bus's time forward by `by` (a manual clock, or a real sleep).
    async fn advance(&self, by: Duration);
}

/// A migrator with only the outbox table, for tests that need a producer database.
pub struct OutboxMigrator;

impl MigratorTrait for OutboxMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![outbox::migration()]
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn event(topic: &str, event_type: &str, key: Option<&str>, n: u32) -> OutgoingEvent {
    OutgoingEvent::raw(
        topic,
        event_type,
        json!({ "eventType": event_type, "n": n }),
        key.map(str::to_string),
    )
}

fn n_of(d: &Delivery) -> u64 {
    serde_json::from_str::<serde_json::Value>(&d.body)
        .ok()
        .and_then(|v| v.get("n").and_then(serde_json::Value::as_u64))
        .unwrap_or(u64::MAX)
}

/// Declares a queue on `topic` with short, test-friendly timings.
async fn queue(bus: &dyn EventBus, topic: &str, filters: &[&str]) -> Subscription {
    let sub = Subscription::new(unique("q"), topic)
        .event_types(filters.iter().copied())
        .visibility_timeout(Duration::from_secs(5))
        .backoff(vec![Duration::from_secs(1), Duration::from_secs(3)]);
    bus.declare(&sub).await.expect("declare");
    sub
}

async fn receive_all(bus: &dyn EventBus, q: &str) -> Vec<Delivery> {
    bus.receive(q, 100).await.expect("receive")
}

async fn drain_ack(bus: &dyn EventBus, q: &str) -> Vec<Delivery> {
    let got = receive_all(bus, q).await;
    for d in &got {
        assert_eq!(bus.ack(d).await.expect("ack"), Settled::Acked);
    }
    got
}

/// Every queue subscribed to the topic gets its own copy; other topics' queues get none.
pub async fn fan_out_to_every_matching_queue(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let other_topic = unique("t");
    let all = queue(&*bus, &topic, &[]).await;
    let only_x = queue(&*bus, &topic, &["x.happened"]).await;
    let elsewhere = queue(&*bus, &other_topic, &[]).await;

    bus.publish(&event(&topic, "x.happened", None, 1))
        .await
        .expect("publish");
    bus.publish(&event(&topic, "y.happened", None, 2))
        .await
        .expect("publish");

    let mut got: Vec<u64> = drain_ack(&*bus, &all.queue)
        .await
        .iter()
        .map(n_of)
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![1, 2],
        "unfiltered queue gets every event of its topic"
    );
    let got: Vec<u64> = drain_ack(&*bus, &only_x.queue)
        .await
        .iter()
        .map(n_of)
        .collect();
    assert_eq!(got, vec![1], "filtered queue gets only its event type");
    assert!(
        receive_all(&*bus, &elsewhere.queue).await.is_empty(),
        "other topic untouched"
    );
}

/// Filters match an exact event type, or a prefix when they end in `*`.
pub async fn event_type_filter_exact_and_wildcard(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &["a.created", "b.*"]).await;
    let types = [
        "a.created",
        "a.created.more",
        "a.updated",
        "b.x",
        "b.y.z",
        "bb.x",
        "c",
    ];
    for (i, t) in types.iter().enumerate() {
        bus.publish(&event(&topic, t, None, i as u32))
            .await
            .expect("publish");
    }
    let mut got: Vec<String> = drain_ack(&*bus, &q.queue)
        .await
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    got.sort();
    assert_eq!(got, vec!["a.created", "b.x", "b.y.z"]);
}

/// A message neither acked nor nacked comes back after the visibility timeout, with a
/// new receipt; the old receipt no longer settles it.
pub async fn visibility_timeout_expiry_redelivers(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    bus.publish(&event(&topic, "e", None, 1))
        .await
        .expect("publish");

    let first = receive_all(&*bus, &q.queue).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(
        receive_all(&*bus, &q.queue).await.is_empty(),
        "hidden while leased"
    );
    let stats = bus.stats(&q.queue).await.expect("stats");
    assert_eq!((stats.depth, stats.in_flight, stats.dlq_depth), (0, 1, 0));

    f.advance(q.visibility_timeout + Duration::from_millis(10))
        .await;
    let second = receive_all(&*bus, &q.queue).await;
    assert_eq!(second.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(second[0].event_id, first[0].event_id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);

    assert_eq!(
        bus.ack(&first[0]).await.expect("late ack"),
        Settled::LeaseLost
    );
    assert_eq!(bus.ack(&second[0]).await.expect("ack"), Settled::Acked);
    f.advance(q.visibility_timeout + Duration::from_millis(10))
        .await;
    assert!(
        receive_all(&*bus, &q.queue).await.is_empty(),
        "acked message is gone"
    );
}

/// A nacked message waits the queue's back-off for that attempt (the last entry repeats).
pub async fn nack_backoff_honoured(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await; // back-off 1 s, 3 s
    bus.publish(&event(&topic, "e", None, 1))
        .await
        .expect("publish");

    let d = receive_all(&*bus, &q.queue).await.remove(0);
    assert_eq!(
        bus.nack(&d, "try 1").await.expect("nack"),
        Settled::Retrying(Duration::from_secs(1))
    );
    assert!(receive_all(&*bus, &q.queue).await.is_empty(), "backing off");
    assert_eq!(
        bus.stats(&q.queue).await.expect("stats").depth,
        1,
        "a delayed message is on the queue"
    );
    f.advance(Duration::from_millis(1100)).await;
    let d = receive_all(&*bus, &q.queue).await.remove(0);
    assert_eq!(d.receive_count, 2);
    assert_eq!(
        bus.nack(&d, "try 2").await.expect("nack"),
        Settled::Retrying(Duration::from_secs(3))
    );
    f.advance(Duration::from_millis(1500)).await;
    assert!(
        receive_all(&*bus, &q.queue).await.is_empty(),
        "second back-off is longer"
    );
    f.advance(Duration::from_millis(1600)).await;
    let d = receive_all(&*bus, &q.queue).await.remove(0);
    assert_eq!(d.receive_count, 3);
    assert_eq!(
        bus.nack(&d, "try 3").await.expect("nack"),
        Settled::Retrying(Duration::from_secs(3))
    );
}

/// After `max_receive_count` receives the message goes to the DLQ with its last error,
/// whether the receives failed (nack) or simply timed out.
pub async fn dlq_after_max_receives(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let sub = Subscription::new(unique("q"), &topic)
        .max_receive_count(3)
        .visibility_timeout(Duration::from_secs(2))
        .backoff(vec![Duration::from_secs(1)]);
    bus.declare(&sub).await.expect("declare");
    bus.publish(&event(&topic, "e", None, 1))
        .await
        .expect("publish");

    for attempt in 1..=3u32 {
        let got = receive_all(&*bus, &sub.queue).await;
        assert_eq!(got.len(), 1, "attempt {attempt} delivered");
        assert_eq!(got[0].receive_count, attempt);
        let outcome = bus
            .nack(&got[0], &format!("boom {attempt}"))
            .await
            .expect("nack");
        if attempt < 3 {
            assert_eq!(outcome, Settled::Retrying(Duration::from_secs(1)));
            f.advance(Duration::from_millis(1100)).await;
        } else {
            assert_eq!(outcome, Settled::DeadLettered);
        }
    }
    f.advance(Duration::from_secs(5)).await;
    assert!(
        receive_all(&*bus, &sub.queue).await.is_empty(),
        "not delivered a 4th time"
    );
    let stats = bus.stats(&sub.queue).await.expect("stats");
    assert_eq!((stats.depth, stats.in_flight, stats.dlq_depth), (0, 0, 1));
    assert_eq!(stats.dlq, sub.dlq);
    let dead = bus.peek_dlq(&sub.queue, 10).await.expect("peek");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom 3"));
    assert_eq!(dead[0].receive_count, 3);
    assert_eq!(dead[0].event_type, "e");

    // Never acknowledged: the lease expires three times, then the DLQ.
    bus.publish(&event(&topic, "e", None, 2))
        .await
        .expect("publish");
    for _ in 0..3 {
        assert_eq!(receive_all(&*bus, &sub.queue).await.len(), 1);
        f.advance(Duration::from_millis(2100)).await;
    }
    assert!(
        receive_all(&*bus, &sub.queue).await.is_empty(),
        "expired too often: dead-lettered"
    );
    let dead = bus.peek_dlq(&sub.queue, 10).await.expect("peek");
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[1].receive_count, 3);
    assert!(
        dead[1]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("visibility timeout")),
        "{:?}",
        dead[1].last_error
    );
}

/// A rejected (poison) message goes straight to the DLQ; a new one with the same
/// ordering key is not held back by it.
pub async fn reject_goes_straight_to_dlq(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    bus.publish(&event(&topic, "e", Some("k"), 1))
        .await
        .expect("publish");
    bus.publish(&event(&topic, "e", Some("k"), 2))
        .await
        .expect("publish");
    let d = receive_all(&*bus, &q.queue).await;
    assert_eq!(d.iter().map(n_of).collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        bus.dead_letter(&d[0], "unreadable").await.expect("reject"),
        Settled::DeadLettered
    );
    let next = receive_all(&*bus, &q.queue).await;
    assert_eq!(
        next.iter().map(n_of).collect::<Vec<_>>(),
        vec![2],
        "key unblocked"
    );
    let dead = bus.peek_dlq(&q.queue, 10).await.expect("peek");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].receive_count, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("unreadable"));
    assert_eq!(
        bus.dead_letter(&d[0], "again").await.expect("stale"),
        Settled::LeaseLost
    );
}

/// Redrive puts a DLQ's messages back on its own queue only; other subscribers of the
/// same topic get nothing new.
pub async fn retry_dlq_redrives_to_its_own_queue_only(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let a = queue(&*bus, &topic, &[]).await;
    let b = queue(&*bus, &topic, &[]).await;
    bus.publish(&event(&topic, "e", None, 1))
        .await
        .expect("publish");
    let d = receive_all(&*bus, &a.queue).await.remove(0);
    bus.dead_letter(&d, "bad").await.expect("reject");
    assert_eq!(bus.stats(&a.queue).await.expect("stats").dlq_depth, 1);

    assert_eq!(bus.retry_dlq(&a.queue).await.expect("retry"), 1);
    let stats = bus.stats(&a.queue).await.expect("stats");
    assert_eq!((stats.depth, stats.dlq_depth), (1, 0));
    let again = receive_all(&*bus, &a.queue).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, d.event_id);
    assert_eq!(
        again[0].receive_count, 1,
        "a redriven message starts counting again"
    );
    bus.ack(&again[0]).await.expect("ack");

    let b_msgs = drain_ack(&*bus, &b.queue).await;
    assert_eq!(
        b_msgs.len(),
        1,
        "the other queue still has exactly its own copy"
    );
    assert_eq!(bus.stats(&b.queue).await.expect("stats").dlq_depth, 0);
    assert_eq!(bus.retry_dlq(&a.queue).await.expect("retry empty"), 0);
}

/// Purge empties a queue (pending and in flight) or, by its name, a DLQ — not both.
pub async fn purge_queue_and_dlq(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    for n in 0..4 {
        bus.publish(&event(&topic, "e", None, n))
            .await
            .expect("publish");
    }
    let leased = bus.receive(&q.queue, 2).await.expect("receive");
    bus.dead_letter(&leased[0], "bad").await.expect("reject");
    let stats = bus.stats(&q.queue).await.expect("stats");
    assert_eq!((stats.depth, stats.in_flight, stats.dlq_depth), (2, 1, 1));

    assert_eq!(bus.purge(&q.queue).await.expect("purge"), 3);
    let stats = bus.stats(&q.queue).await.expect("stats");
    assert_eq!(
        (stats.depth, stats.in_flight, stats.dlq_depth),
        (0, 0, 1),
        "the DLQ is kept"
    );
    assert_eq!(
        bus.ack(&leased[1]).await.expect("ack purged"),
        Settled::LeaseLost
    );

    assert_eq!(bus.purge(&q.dlq).await.expect("purge dlq"), 1);
    assert_eq!(bus.stats(&q.queue).await.expect("stats").dlq_depth, 0);
    assert!(matches!(
        bus.purge(&unique("nope")).await,
        Err(BusError::UnknownQueue(_))
    ));
}

/// Peek shows DLQ messages oldest first, at most `max`, without removing them.
pub async fn peek_dlq_leaves_messages(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    for n in 0..3 {
        bus.publish(&event(&topic, "e", None, n))
            .await
            .expect("publish");
    }
    for d in receive_all(&*bus, &q.queue).await {
        bus.dead_letter(&d, &format!("bad {}", n_of(&d)))
            .await
            .expect("reject");
    }
    let two = bus.peek_dlq(&q.queue, 2).await.expect("peek");
    assert_eq!(two.len(), 2);
    let bodies: Vec<u64> = two
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(&m.body)
                .ok()
                .and_then(|v| v["n"].as_u64())
                .unwrap_or(99)
        })
        .collect();
    assert_eq!(bodies, vec![0, 1]);
    assert_eq!(two[0].last_error.as_deref(), Some("bad 0"));
    assert!(two[0].dead_lettered_at_ms.is_some());
    assert_eq!(bus.peek_dlq(&q.queue, 100).await.expect("peek").len(), 3);
    assert_eq!(
        bus.stats(&q.queue).await.expect("stats").dlq_depth,
        3,
        "peek removes nothing"
    );
    assert!(matches!(
        bus.peek_dlq(&unique("nope"), 1).await,
        Err(BusError::UnknownQueue(_))
    ));
}

/// A second message for an ordering key waits while the first is in flight or backing
/// off; other keys (and unkeyed messages) flow.
pub async fn ordering_per_key(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    bus.publish_batch(&[
        event(&topic, "e", Some("k1"), 1),
        event(&topic, "e", Some("k1"), 2),
        event(&topic, "e", Some("k2"), 3),
        event(&topic, "e", None, 4),
        event(&topic, "e", Some("k1"), 5),
    ])
    .await
    .expect("publish");

    let first = receive_all(&*bus, &q.queue).await;
    let mut ns: Vec<u64> = first.iter().map(n_of).collect();
    ns.sort();
    assert_eq!(ns, vec![1, 3, 4], "k1's later messages wait for the first");
    let m1 = first.iter().find(|d| n_of(d) == 1).cloned().expect("m1");
    assert!(receive_all(&*bus, &q.queue).await.is_empty());

    // Backing off still holds the key.
    bus.nack(&m1, "later").await.expect("nack");
    assert!(
        receive_all(&*bus, &q.queue).await.is_empty(),
        "k1 held while m1 backs off"
    );
    f.advance(Duration::from_millis(1100)).await;
    let again = receive_all(&*bus, &q.queue).await;
    assert_eq!(again.iter().map(n_of).collect::<Vec<_>>(), vec![1]);
    bus.ack(&again[0]).await.expect("ack");

    let next = receive_all(&*bus, &q.queue).await;
    assert_eq!(
        next.iter().map(n_of).collect::<Vec<_>>(),
        vec![2],
        "then the second, alone"
    );
    bus.ack(&next[0]).await.expect("ack");
    let last = receive_all(&*bus, &q.queue).await;
    assert_eq!(last.iter().map(n_of).collect::<Vec<_>>(), vec![5]);
}

/// Publishing an event id twice (alone or in a batch) puts it on each queue once.
pub async fn publish_idempotent_on_event_id(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let a = queue(&*bus, &topic, &[]).await;
    let b = queue(&*bus, &topic, &[]).await;
    let e = event(&topic, "e", None, 1);
    bus.publish(&e).await.expect("publish");
    bus.publish(&e).await.expect("publish again");
    bus.publish_batch(&[e.clone(), e.clone()])
        .await
        .expect("batch");
    for q in [&a, &b] {
        let got = receive_all(&*bus, &q.queue).await;
        assert_eq!(got.len(), 1, "one copy on {}", q.queue);
        assert_eq!(got[0].event_id, e.id.to_string());
        assert_eq!(got[0].trace_id, e.trace_id);
    }
}

/// Settings survive a redeclare and are readable back; bad ones are refused.
pub async fn declare_is_idempotent_and_validated(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let sub = Subscription::new(unique("q"), &topic)
        .event_types(["a.*", "b"])
        .max_receive_count(3)
        .visibility_timeout(Duration::from_secs(120))
        .backoff(vec![Duration::from_secs(1), Duration::from_secs(10)]);
    bus.declare(&sub).await.expect("declare");
    bus.declare(&sub).await.expect("declare again");
    let back = bus.subscription(&sub.queue).await.expect("read back");
    assert_eq!(back.topic, topic);
    assert_eq!(back.dlq, sub.dlq);
    assert_eq!(back.max_receive_count, 3);
    assert_eq!(back.visibility_timeout, Duration::from_secs(120));
    assert_eq!(back.backoff, sub.backoff);
    let mut filters = back.event_types.clone();
    filters.sort();
    assert_eq!(filters, vec!["a.*", "b"]);
    assert!(bus.list_queues().await.expect("list").contains(&sub.queue));

    let mut narrowed = sub.clone();
    narrowed.event_types = vec!["c".into()];
    bus.declare(&narrowed)
        .await
        .expect("redeclare with new filter");
    bus.publish(&event(&topic, "a.x", None, 1))
        .await
        .expect("publish");
    bus.publish(&event(&topic, "c", None, 2))
        .await
        .expect("publish");
    let got: Vec<u64> = receive_all(&*bus, &sub.queue)
        .await
        .iter()
        .map(n_of)
        .collect();
    assert_eq!(got, vec![2], "the new filter replaced the old one");

    let clash = Subscription::new(unique("q"), &topic).dlq(sub.dlq.clone());
    assert!(matches!(
        bus.declare(&clash).await,
        Err(BusError::InvalidSubscription(_))
    ));
    let bad = Subscription::new("has space", &topic);
    assert!(matches!(
        bus.declare(&bad).await,
        Err(BusError::InvalidSubscription(_))
    ));
    assert!(matches!(
        bus.receive(&unique("nope"), 1).await,
        Err(BusError::UnknownQueue(_))
    ));
    assert!(matches!(
        bus.stats(&unique("nope")).await,
        Err(BusError::UnknownQueue(_))
    ));
}

/// `wait` returns soon after a publish to the queue (no poll-interval latency).
pub async fn wait_wakes_on_publish(f: &dyn Fixture) {
    let bus = f.bus();
    let topic = unique("t");
    let q = queue(&*bus, &topic, &[]).await;
    let waiter = {
        let bus = bus.clone();
        let queue = q.queue.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            bus.wait(&queue, Duration::from_secs(10)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.publish(&event(&topic, "e", None, 1))
        .await
        .expect("publish");
    let waited = waiter.await.expect("waiter");
    assert!(
        waited < Duration::from_secs(5),
        "woken by the publish, waited {waited:?}"
    );
    assert_eq!(receive_all(&*bus, &q.queue).await.len(), 1);
}

/// The outbox: rolled-back events are never published, committed ones exactly once per
/// matching queue, and a relay that crashed after publishing (before marking) republishes
/// harmlessly.
pub async fn relay_is_at_least_once_and_only_committed(f: &dyn Fixture, producer: Db) {
    let bus = f.bus();
    producer
        .migrate::<OutboxMigrator>()
        .await
        .expect("outbox migration");
    let topic = unique("t");
    let a = queue(&*bus, &topic, &[]).await;
    let b = queue(&*bus, &topic, &["kept.*"]).await;

    let rolled_back = event(&topic, "kept.rolled-back", None, 0);
    let txn = producer.begin_write().await.expect("begin");
    outbox::enqueue(&txn, &rolled_back).await.expect("enqueue");
    txn.rollback().await.expect("rollback");

    let e1 = event(&topic, "kept.one", Some("k"), 1);
    let e2 = event(&topic, "dropped.two", Some("k"), 2);
    let txn = producer.begin_write().await.expect("begin");
    outbox::enqueue(&txn, &e1).await.expect("enqueue");
    outbox::enqueue(&txn, &e2).await.expect("enqueue");
    txn.commit().await.expect("commit");
    outbox::committed();

    // The crash: e1 reached the bus but the relay died before marking it published.
    bus.publish(&e1).await.expect("publish");

    let relay = OutboxRelay::new(producer.clone(), bus.clone()).named("contract");
    assert_eq!(relay.drain().await.expect("relay"), 2);
    assert_eq!(
        relay.drain().await.expect("relay again"),
        0,
        "marked published"
    );

    let got: Vec<u64> = drain_ack(&*bus, &a.queue).await.iter().map(n_of).collect();
    assert_eq!(got, vec![1], "one copy of e1 (e2 waits behind it on key k)");
    let got: Vec<u64> = drain_ack(&*bus, &a.queue).await.iter().map(n_of).collect();
    assert_eq!(got, vec![2]);
    let got: Vec<u64> = drain_ack(&*bus, &b.queue).await.iter().map(n_of).collect();
    assert_eq!(got, vec![1], "the filtered queue gets e1 only");
    assert!(
        receive_all(&*bus, &a.queue).await.is_empty(),
        "rolled-back event never published"
    );
    assert!(receive_all(&*bus, &b.queue).await.is_empty());
}

/// Every check, in order (for a backend's test binary that wants one test).
pub async fn all(f: &dyn Fixture, producer: Db) {
    fan_out_to_every_matching_queue(f).await;
    event_type_filter_exact_and_wildcard(f).await;
    visibility_timeout_expiry_redelivers(f).await;
    nack_backoff_honoured(f).await;
    dlq_after_max_receives(f).await;
    reject_goes_straight_to_dlq(f).await;
    retry_dlq_redrives_to_its_own_queue_only(f).await;
    purge_queue_and_dlq(f).await;
    peek_dlq_leaves_messages(f).await;
    ordering_per_key(f).await;
    publish_idempotent_on_event_id(f).await;
    declare_is_idempotent_and_validated(f).await;
    wait_wakes_on_publish(f).await;
    relay_is_at_least_once_and_only_committed(f, producer).await;
}
