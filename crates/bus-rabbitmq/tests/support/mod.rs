//! What the RabbitMQ test binaries share: the broker they use and a bus under a prefix of
//! the test's own. RabbitMQ is required, never skipped: unreachable, the test fails and
//! says how to start it.

use std::time::Duration;

use tandem_bus_rabbitmq::RabbitBus;

/// Test queues are deleted by the broker after this long unused.
pub const QUEUE_EXPIRY: Duration = Duration::from_secs(600);

/// `TANDEM_TEST_AMQP_URL`, by default the local broker's default vhost.
pub fn amqp_url() -> String {
    std::env::var("TANDEM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A name prefix no other test uses, so tests run in parallel on one vhost.
pub fn fresh_prefix() -> String {
    format!("test-{}.", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A bus under `prefix` whose queues expire after [`QUEUE_EXPIRY`] unused.
pub async fn bus(prefix: &str) -> RabbitBus {
    let url = amqp_url();
    RabbitBus::connect_with(&url, prefix, Some(QUEUE_EXPIRY))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is required by the test suite and is not reachable at {url}: {e}. \
                 Start it (`rabbitmq-server -detached && rabbitmqctl await_startup`) or run \
                 the suite through `scripts/test`, which does."
            )
        })
}
