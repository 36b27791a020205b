//! The push receive path of RabbitBus on a real broker (`TANDEM_TEST_AMQP_URL`, by
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`; required, never skipped): a queue
//! that is received from has a consumer on the broker, a publish by another process wakes
//! `wait` through it, the consumer goes with the bus, and more messages than the prefetch
//! behind one ordering key still come out in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tandem_bus::{EventBus, Settled, Subscription};
use tandem_bus_rabbitmq::{PREFETCH, RabbitBus};
use tandem_platform::events::OutgoingEvent;

mod support;

use support::{amqp_url, bus, fresh_prefix};

/// The broker's own count of consumers on `queue`, seen from a separate connection.
async fn consumers_on(queue: &str) -> u32 {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("inspection connection");
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare");
    let _ = conn.close(200, "inspected".into()).await;
    q.consumer_count()
}

fn n_of(body: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["n"].as_u64())
        .unwrap_or(u64::MAX)
}

/// Another process's publish wakes `wait` by a push to this process's consumer (no poll
/// of the queue depth); the consumer is the broker's, and it goes when the bus is dropped.
#[tokio::test]
async fn another_process_publish_is_pushed_to_wait() {
    let prefix = fresh_prefix();
    let receiver = bus(&prefix).await;
    let publisher = bus(&prefix).await; // a second connection, as another process has
    let sub = Subscription::new("q", "t");
    receiver.declare(&sub).await.expect("declare");
    let queue = format!("{prefix}q");
    assert_eq!(
        consumers_on(&queue).await,
        0,
        "declaring alone does not consume"
    );

    let waiter = {
        let bus: Arc<dyn EventBus> = Arc::new(receiver.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            bus.wait("q", Duration::from_secs(30)).await;
            started.elapsed()
        })
    };
    // The waiting bus consumes the queue: the broker pushes to it.
    let mut seen = 0;
    for _ in 0..50 {
        seen = consumers_on(&queue).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "one push consumer on the queue while waiting");

    let e = OutgoingEvent::raw("t", "e", serde_json::json!({"n": 1}), Some("k".into()));
    publisher.publish(&e).await.expect("publish");
    let waited = waiter.await.expect("waiter");
    assert!(
        waited < Duration::from_secs(10),
        "woken by the push, waited {waited:?}"
    );
    let got = receiver.receive("q", 10).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_id, e.id.to_string());
    assert_eq!(receiver.ack(&got[0]).await.expect("ack"), Settled::Acked);
    assert!(receiver.receive("q", 10).await.expect("receive").is_empty());

    // Dropping the last clone of the bus cancels its consumer (closes its connection).
    drop(receiver);
    let mut left = 1;
    for _ in 0..50 {
        left = consumers_on(&queue).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the consumer went with the bus");
}

/// More messages for one key than the broker pushes before acks: the rest are fetched,
/// and all come out one at a time, in publish order.
#[tokio::test]
async fn more_than_the_prefetch_behind_one_key_keeps_order() {
    let prefix = fresh_prefix();
    let bus = bus(&prefix).await;
    let sub = Subscription::new("q", "t");
    bus.declare(&sub).await.expect("declare");
    let total = u64::from(PREFETCH) + 40;
    let events: Vec<OutgoingEvent> = (0..total)
        .map(|n| OutgoingEvent::raw("t", "e", serde_json::json!({"n": n}), Some("k".into())))
        .collect();
    bus.publish_batch(&events).await.expect("publish");

    let mut order = Vec::new();
    for _ in 0..total * 2 {
        let got = bus.receive("q", 8).await.expect("receive");
        if got.is_empty() {
            break;
        }
        assert_eq!(got.len(), 1, "one at a time for one key");
        order.push(n_of(&got[0].body));
        assert_eq!(bus.ack(&got[0]).await.expect("ack"), Settled::Acked);
    }
    assert_eq!(order, (0..total).collect::<Vec<_>>());
    let stats = bus.stats("q").await.expect("stats");
    assert_eq!((stats.depth, stats.in_flight), (0, 0));
}

/// A run under its own prefix deletes what it declared (queue, DLQ, wait queues): quorum
/// queues left behind hold broker file handles until the broker stops accepting
/// connections. Without a prefix the names are shared and nothing is deleted.
#[tokio::test]
async fn delete_declared_removes_the_runs_queues() {
    let prefix = fresh_prefix();
    let bus = bus(&prefix).await;
    let sub =
        Subscription::new("q", "t").backoff(vec![Duration::from_secs(1), Duration::from_secs(3)]);
    bus.declare(&sub).await.expect("declare");
    assert!(bus.receive("q", 1).await.expect("receive").is_empty());
    assert_eq!(bus.delete_declared().await.expect("delete"), 4);
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("inspection connection");
    for q in ["q", "q-dlq", "q.wait.1000", "q.wait.3000"] {
        let ch = conn.create_channel().await.expect("channel");
        let gone = ch
            .queue_declare(
                format!("{prefix}{q}").as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_err();
        assert!(gone, "{q} deleted");
    }
    let _ = conn.close(200, "inspected".into()).await;
    assert!(bus.list_queues().await.expect("list").is_empty());

    let shared = RabbitBus::connect(&amqp_url()).await.expect("connect");
    assert!(
        shared.delete_declared().await.is_err(),
        "refused without a prefix"
    );
}
