//! The bus contract suite against SqlBus on SQLite and PostgreSQL, plus the consumer
//! runtime and the queue admin endpoints. One binary, to save link time.

use std::sync::Arc;
use std::time::Duration;

use tandem_bus::contract::{self, Fixture};
use tandem_bus::{EventBus, ManualClock, SqlBus};
use tandem_platform::db::testing::{TestBackend, TestStorage};

/// SqlBus on a fresh `bus` database with a manual clock.
pub struct SqlFixture {
    pub bus: SqlBus,
    pub clock: Arc<ManualClock>,
    pub storage: TestStorage,
}

impl SqlFixture {
    pub async fn new(backend: TestBackend) -> Self {
        let storage = TestStorage::new(backend).await;
        let db = storage.db("bus").await;
        db.migrate::<tandem_bus::BusMigrator>()
            .await
            .expect("bus migration");
        let clock = Arc::new(ManualClock::new());
        let bus = SqlBus::with_clock(db, clock.clone());
        Self {
            bus,
            clock,
            storage,
        }
    }
}

#[async_trait::async_trait]
impl Fixture for SqlFixture {
    fn bus(&self) -> Arc<dyn EventBus> {
        Arc::new(self.bus.clone())
    }
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

mod sql_contract {
    use super::*;

    macro_rules! contract_tests {
        ($($name:ident),* $(,)?) => {
            $(
                async fn $name(backend: TestBackend) {
                    let f = SqlFixture::new(backend).await;
                    contract::$name(&f).await;
                }
            )*
            tandem_platform::both_backends!($($name),*);
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

    mod relay {
        use super::*;

        async fn relay_is_at_least_once_and_only_committed(backend: TestBackend) {
            let f = SqlFixture::new(backend).await;
            let producer = f.storage.db("producer").await;
            contract::relay_is_at_least_once_and_only_committed(&f, producer).await;
        }

        tandem_platform::both_backends!(relay_is_at_least_once_and_only_committed);
    }
}

#[path = "contract/admin.rs"]
mod admin;
#[path = "contract/consumer.rs"]
mod consumer;
