//! The bus contract suite (`tandem_bus::contract`, unchanged) against RabbitBus on a real
//! broker. RabbitMQ is required, never skipped: when it is unreachable every test fails
//! and says how to start it. The broker is `TANDEM_TEST_AMQP_URL`, by default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`. Each test isolates itself with a unique name
//! prefix, so tests run in parallel on one vhost.

use std::sync::Arc;
use std::time::Duration;

use tandem_bus::EventBus;
use tandem_bus::contract::{self, Fixture};
use tandem_bus_rabbitmq::RabbitBus;
use tandem_platform::db::testing::{TestBackend, TestStorage};

mod support;

/// The broker's clock cannot be moved: `advance` sleeps for real, plus a little slack for
/// the broker's TTL expiry and dead-lettering into the queue to land. Every absence the
/// suite asserts is at least a second away from a deadline, so the slack cannot mask one.
const BROKER_SLACK: Duration = Duration::from_millis(250);

struct RabbitFixture {
    bus: RabbitBus,
}

impl RabbitFixture {
    async fn new() -> Self {
        Self {
            bus: support::bus(&support::fresh_prefix()).await,
        }
    }
}

#[async_trait::async_trait]
impl Fixture for RabbitFixture {
    fn bus(&self) -> Arc<dyn EventBus> {
        Arc::new(self.bus.clone())
    }
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by + BROKER_SLACK).await;
    }
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let f = RabbitFixture::new().await;
                contract::$name(&f).await;
            }
        )*
    };
}

contract_tests!(
    fan_out_to_every_matching_queue,
    event_type_filter_exact_and_wildcard,
    visibility_timeout_expiry_redelivers,
    nack_backoff_honoured,
    dlq_after_max_receives,
    reject_goes_straight_to_dlq,
    retry_dlq_redrives_to_its_own_queue_only,
    purge_queue_and_dlq,
    peek_dlq_leaves_messages,
    ordering_per_key,
    publish_idempotent_on_event_id,
    declare_is_idempotent_and_validated,
    wait_wakes_on_publish,
);

/// The outbox relay over RabbitBus, with the producer's outbox on SQLite and PostgreSQL.
mod relay {
    use super::*;

    async fn relay_is_at_least_once_and_only_committed(backend: TestBackend) {
        let f = RabbitFixture::new().await;
        let storage = TestStorage::new(backend).await;
        let producer = storage.db("producer").await;
        contract::relay_is_at_least_once_and_only_committed(&f, producer).await;
    }

    tandem_platform::both_backends!(relay_is_at_least_once_and_only_committed);
}

/// A lost connection (a broker restart) loses nothing: the broker requeues the lease, the
/// old receipt no longer settles, and the next call reconnects and redelivers it.
#[tokio::test]
async fn reconnects_after_connection_loss_and_redelivers() {
    use tandem_bus::{Settled, Subscription};
    use tandem_platform::events::OutgoingEvent;

    let f = RabbitFixture::new().await;
    let bus = f.bus();
    let sub = Subscription::new("q", "t");
    bus.declare(&sub).await.expect("declare");
    let e = OutgoingEvent::raw("t", "e", serde_json::json!({"n": 1}), Some("k".into()));
    bus.publish(&e).await.expect("publish");
    let first = bus.receive("q", 10).await.expect("receive");
    assert_eq!(first.len(), 1);

    f.bus.close_connection().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut again = Vec::new();
    for _ in 0..50 {
        match bus.receive("q", 10).await {
            Ok(v) if !v.is_empty() => {
                again = v;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(again.len(), 1, "redelivered after reconnecting");
    assert_eq!(again[0].event_id, e.id.to_string());
    assert_eq!(again[0].receive_count, 2, "the broker counted the return");
    assert_eq!(
        bus.ack(&first[0]).await.expect("stale ack"),
        Settled::LeaseLost
    );
    assert_eq!(bus.ack(&again[0]).await.expect("ack"), Settled::Acked);
    bus.publish(&e)
        .await
        .expect("publish again after reconnect (deduplicated)");
    assert!(bus.receive("q", 10).await.expect("receive").is_empty());
}

/// A broker that takes the TCP connection and never answers (a wedged node or vhost)
/// fails the connect with a message saying so, instead of hanging the caller.
#[tokio::test]
async fn a_broker_that_never_answers_fails_the_connect_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never answered
        }
    });
    let url = format!("amqp://guest:secret@127.0.0.1:{port}/%2f");
    let limit = tandem_bus_rabbitmq::CONNECT_TIMEOUT + Duration::from_secs(5);
    let err = match tokio::time::timeout(limit, RabbitBus::connect(&url)).await {
        Err(_) => panic!("connect still waiting after {limit:?}"),
        Ok(Ok(_)) => panic!("connected to a silent listener"),
        Ok(Err(e)) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains("did not complete it"), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("secret"), "the password is not shown: {msg}");
    silent.abort();
}
