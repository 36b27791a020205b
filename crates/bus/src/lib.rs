//! The event bus (DESIGN §3): the transactional outbox and its relay, the [`EventBus`]
//! contract, the embedded SQL-backed bus, the consumer runtime, queue admin endpoints and
//! the contract test suite every backend must pass.
//!
//! Composition, per process:
//! 1. open the bus ([`SqlBus::connect`] or [`SqlBus::new`] on the `bus` database);
//! 2. declare every consumer's [`Subscription`] (events published to a topic before a
//!    queue exists are not delivered to it, as with SNS);
//! 3. spawn an [`OutboxRelay`] per producing service database and a consumer
//!    ([`spawn_consumer`]) per queue, all with one `CancellationToken`;
//! 4. on shutdown cancel, then await the handles: relays drain what is committed.

pub mod admin;
pub mod bus;
pub mod clock;
pub mod consumer;
pub mod contract;
pub mod outbox;
pub mod sql;

pub use admin::{QueueHealth, admin_routes};
pub use bus::{BusError, Delivery, DlqMessage, EventBus, QueueStats, Settled, Subscription};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{
    ConsumerOptions, HandlerError, MessageHandler, spawn_consumer, spawn_consumer_with,
};
pub use outbox::{OutboxRelay, RelayConfig};
pub use sql::{BusMigrator, SqlBus};
