//! The embedded bus's tables (in the bus's own database).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Subscription {
    Table,
    Queue,
    Topic,
    Dlq,
    MaxReceiveCount,
    VisibilityTimeoutMs,
    /// Comma-separated milliseconds, e.g. `1000,10000,60000,600000`.
    BackoffMs,
    Concurrency,
    UpdatedAtMs,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum SubscriptionFilter {
    Table,
    Queue,
    /// The filter as declared (`a.b` or `a.*`).
    EventType,
    /// For a wildcard filter, the part before the `*`; NULL for an exact filter.
    Prefix,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Message {
    Table,
    Id,
    Queue,
    EventId,
    EventType,
    OrderingKey,
    Body,
    TraceId,
    ReceiveCount,
    /// Leasable when `<= now`. Dead-lettered rows hold [`super::DEAD`], which keeps them
    /// out of the lease scan's index range.
    VisibleAtMs,
    Receipt,
    DeadLetteredAtMs,
    LastError,
    EnqueuedAtMs,
}

/// The bus database's migrator (the lead runs it on the `bus` database).
pub struct BusMigrator;

impl MigratorTrait for BusMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateQueues)]
    }
}

struct CreateQueues;

impl MigrationName for CreateQueues {
    fn name(&self) -> &str {
        "m0001_bus_queues"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateQueues {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscription::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Subscription::Queue)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Subscription::Topic).text().not_null())
                    .col(
                        ColumnDef::new(Subscription::Dlq)
                            .text()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Subscription::MaxReceiveCount)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Subscription::VisibilityTimeoutMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Subscription::BackoffMs).text().not_null())
                    .col(
                        ColumnDef::new(Subscription::Concurrency)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Subscription::UpdatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("subscription_topic")
                    .table(Subscription::Table)
                    .col(Subscription::Topic)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SubscriptionFilter::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SubscriptionFilter::Queue).text().not_null())
                    .col(
                        ColumnDef::new(SubscriptionFilter::EventType)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SubscriptionFilter::Prefix).text().null())
                    .primary_key(
                        Index::create()
                            .col(SubscriptionFilter::Queue)
                            .col(SubscriptionFilter::EventType),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Message::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Message::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Message::Queue).text().not_null())
                    .col(ColumnDef::new(Message::EventId).text().not_null())
                    .col(ColumnDef::new(Message::EventType).text().not_null())
                    .col(ColumnDef::new(Message::OrderingKey).text().null())
                    .col(ColumnDef::new(Message::Body).text().not_null())
                    .col(ColumnDef::new(Message::TraceId).text().null())
                    .col(ColumnDef::new(Message::ReceiveCount).integer().not_null())
                    .col(
                        ColumnDef::new(Message::VisibleAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Message::Receipt).text().null())
                    .col(
                        ColumnDef::new(Message::DeadLetteredAtMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Message::LastError).text().null())
                    .col(
                        ColumnDef::new(Message::EnqueuedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Fan-out is idempotent: a relay retry cannot put an event on a queue twice.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .unique()
                    .name("message_queue_event")
                    .table(Message::Table)
                    .col(Message::Queue)
                    .col(Message::EventId)
                    .to_owned(),
            )
            .await?;
        // The lease scan: due rows of one queue in visibility order, and the DLQ's range.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("message_queue_visible")
                    .table(Message::Table)
                    .col(Message::Queue)
                    .col(Message::VisibleAtMs)
                    .col(Message::Id)
                    .to_owned(),
            )
            .await?;
        // The ordering check: is an earlier message with this key still pending?
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("message_queue_ordering")
                    .table(Message::Table)
                    .col(Message::Queue)
                    .col(Message::OrderingKey)
                    .col(Message::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            Message::Table.into_iden(),
            SubscriptionFilter::Table.into_iden(),
            Subscription::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
