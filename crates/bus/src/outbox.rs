//! The transactional outbox: a producer writes its events in the same transaction as the
//! change, so an event is published if and only if the change committed. A relay
//! ([`OutboxRelay`]) moves committed rows to the bus.

use std::sync::LazyLock;

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, Query};
use sea_orm_migration::prelude::*;
use tandem_platform::events::OutgoingEvent;
use tokio::sync::watch;

mod relay;

pub use relay::{OutboxRelay, RelayConfig, RelayError};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox write failed: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The outbox table's columns.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Outbox {
    Table,
    /// Insertion order: the relay publishes in this order, so events for one aggregate
    /// (written in serialised transactions) reach the bus in the order they were written.
    Seq,
    /// The event's uuid as text; the bus de-duplicates on it.
    Id,
    Topic,
    EventType,
    OrderingKey,
    /// The JSON body, as text.
    Body,
    TraceId,
    CreatedAtMs,
    PublishedAtMs,
}

/// Writes `event` into the outbox on `conn` (pass the open transaction of the change).
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    event: &OutgoingEvent,
) -> Result<(), OutboxError> {
    let stmt = Query::insert()
        .into_table(Outbox::Table)
        .columns([
            Outbox::Id,
            Outbox::Topic,
            Outbox::EventType,
            Outbox::OrderingKey,
            Outbox::Body,
            Outbox::TraceId,
            Outbox::CreatedAtMs,
        ])
        .values_panic([
            Expr::value(event.id.to_string()),
            Expr::value(event.topic.clone()),
            Expr::value(event.event_type.clone()),
            Expr::value(event.ordering_key.clone()),
            Expr::value(event.body.to_string()),
            Expr::value(event.trace_id.clone()),
            Expr::value(tandem_platform::time::now_ms()),
        ])
        .to_owned();
    conn.execute(&stmt).await?;
    Ok(())
}

/// Bumped by [`committed`]; every relay in the process watches it.
static COMMITS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells relays in this process that rows were committed (call after commit; cheap).
pub fn committed() {
    COMMITS.send_modify(|n| *n = n.wrapping_add(1));
}

/// A receiver that changes whenever [`committed`] is called.
pub(crate) fn commits() -> watch::Receiver<u64> {
    COMMITS.subscribe()
}

/// The outbox table's migration; every producing service includes it in its migrator.
pub fn migration() -> Box<dyn MigrationTrait> {
    Box::new(CreateOutbox)
}

struct CreateOutbox;

impl MigrationName for CreateOutbox {
    /// Stable forever: services record it in their `seaql_migrations` table.
    fn name(&self) -> &str {
        "m0000_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Outbox::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Outbox::Id).text().not_null().unique_key())
                    .col(ColumnDef::new(Outbox::Topic).text().not_null())
                    .col(ColumnDef::new(Outbox::EventType).text().not_null())
                    .col(ColumnDef::new(Outbox::OrderingKey).text().null())
                    .col(ColumnDef::new(Outbox::Body).text().not_null())
                    .col(ColumnDef::new(Outbox::TraceId).text().null())
                    .col(ColumnDef::new(Outbox::CreatedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(Outbox::PublishedAtMs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("outbox_published_seq")
                    .table(Outbox::Table)
                    .col(Outbox::PublishedAtMs)
                    .col(Outbox::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).if_exists().to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_name_never_changes() {
        // Services record it in `seaql_migrations`; renaming it would re-run the migration.
        assert_eq!(migration().name(), "m0000_outbox");
    }
}
