//! Bulk migration NOMIS → DPS, driven by a work ledger in the database.
//!
//! The NOMIS key space is walked with keyset paging (never OFFSET) into `migration_work`
//! rows; workers claim bounded batches, hand them to the domain, and record each entity's
//! outcome. Progress, completion and failure counts are read from the ledger, so they are
//! exact; a crash anywhere resumes from the ledger without duplicates, because the domain's
//! per-entity step is idempotent (skip if mapped; DPS migrate is idempotent on the NOMIS key;
//! mapping create is idempotent).

pub mod api;
pub mod engine;
pub mod ledger;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use engine::{EngineConfig, MigrationEngine};
pub use ledger::{LedgerMigrator, MigrationStatus};

/// The filter an operator starts a migration with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationFilter {
    /// Records created on or after this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<chrono::NaiveDate>,
    /// Records created on or before this date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_date: Option<chrono::NaiveDate>,
    /// Only these prisons (domains that support it; the others refuse a non-empty list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prison_ids: Vec<tandem_platform::ids::PrisonId>,
}

impl MigrationFilter {
    /// What is wrong with the filter whatever the domain, for a 400.
    pub fn problem(&self) -> Option<String> {
        tandem_platform::time::date_range_problem(self.from_date, self.to_date)
    }
}

/// Why one entity did not migrate.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityError {
    /// Worth trying again (a peer was unavailable, a lock, a timeout).
    Retryable(String),
    /// Will not succeed without someone changing the data: straight to the dead-letter list.
    Permanent(String),
}

impl EntityError {
    pub fn message(&self) -> &str {
        match self {
            EntityError::Retryable(m) | EntityError::Permanent(m) => m,
        }
    }
}

/// The outcome of migrating one entity: how many DPS records it wrote (0 when it was
/// already migrated), or why it failed.
pub type EntityOutcome = Result<u32, EntityError>;

/// A failure of the domain's NOMIS reads (counting, paging).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

/// What the engine needs from a domain. Keys are the domain's NOMIS entity keys as strings
/// that sort in NOMIS key order (e.g. `A1234BC/B5678CD` for a non-association pair).
#[async_trait::async_trait]
pub trait MigrationDomain: Send + Sync + 'static {
    /// The migration type in URLs and history, e.g. `non-associations`.
    fn migration_type(&self) -> &'static str;

    /// Whether the domain's NOMIS reads can be limited to prisons (`prisonIds`). A domain
    /// that cannot refuses such a filter rather than migrate every prison under it.
    fn filters_by_prison(&self) -> bool {
        false
    }

    /// How many entities match the filter (shown as the estimate).
    async fn estimate(&self, filter: &MigrationFilter) -> Result<u64, DomainError>;

    /// Up to `limit` entity keys strictly after `after`, in key order.
    async fn next_keys(
        &self,
        filter: &MigrationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, DomainError>;

    /// Migrates a batch of entities; returns one outcome per key, in the same order.
    /// Must be idempotent per entity: the engine may hand the same key over again after a crash.
    async fn migrate(&self, migration_id: &str, keys: &[String]) -> Vec<EntityOutcome>;
}
