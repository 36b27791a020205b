//! The migration API of `/prisoner-from-nomis` (reference/migration-sync.md §2.1, §2.5–2.8):
//! start, history, progress, cancel, refresh and the per-type dead-letter list.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use tandem_auth::Authorised;
use tandem_platform::{
    ApiError,
    http::{Json, Path, Query, RawBody},
    time::now_ms,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::MigrationFilter;
use super::engine::MigrationEngine;
use super::ledger::{MigrationRow, MigrationStatus};

tandem_auth::role!(pub MigrationRw, ["ROLE_PRISONER_FROM_NOMIS__MIGRATION__RW"], write);
tandem_auth::role!(pub MigrationRead, ["ROLE_PRISONER_FROM_NOMIS__MIGRATION__RW"]);

type Engine = Arc<MigrationEngine>;

/// The answer to a start: the migration's context, as the real service returns it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationContext {
    pub migration_id: String,
    #[serde(rename = "type")]
    pub migration_type: String,
    pub estimated_count: i64,
    pub body: MigrationFilter,
}

/// One migration with exact figures from the work ledger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationHistory {
    pub migration_id: String,
    pub migration_type: String,
    pub status: MigrationStatus,
    /// ISO-8601 (UTC).
    pub when_started: String,
    pub when_ended: Option<String>,
    pub estimated_record_count: i64,
    /// DPS records written by this migration.
    pub records_migrated: i64,
    /// NOMIS entities that failed (on the dead-letter list, or discarded from it).
    pub records_failed: i64,
    /// NOMIS entities migrated (or found already migrated).
    pub entities_done: i64,
    /// Entities known and waiting.
    pub to_be_processed_count: i64,
    /// Entities being migrated now.
    pub being_processed_count: i64,
    /// True once every NOMIS key matching the filter has been read.
    pub all_keys_read: bool,
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

async fn history_of(
    engine: &MigrationEngine,
    row: MigrationRow,
) -> Result<MigrationHistory, ApiError> {
    let c = engine.ledger().counts(&row.migration_id).await?;
    Ok(MigrationHistory {
        migration_id: row.migration_id,
        migration_type: row.migration_type,
        status: row.status,
        when_started: iso(row.when_started_ms),
        when_ended: row.when_ended_ms.map(iso),
        estimated_record_count: row.estimated_record_count,
        records_migrated: c.records_migrated,
        records_failed: c.failed,
        entities_done: c.done,
        to_be_processed_count: c.pending,
        being_processed_count: c.in_flight,
        all_keys_read: row.enumeration_done,
        filter: serde_json::from_str(&row.filter).unwrap_or(serde_json::Value::Null),
    })
}

/// Starts a migration of one type (`non-associations`, …).
#[utoipa::path(post, path = "/migrate/{migrationType}", tag = "migration",
    params(("migrationType" = String, Path, description = "e.g. non-associations")),
    request_body = MigrationFilter,
    responses((status = 202, body = MigrationContext), (status = 409, description = "one of this type is in progress")))]
async fn start(
    _auth: Authorised<MigrationRw>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    // An empty body means "no filter", as the real endpoint allows.
    let filter: MigrationFilter = if body.iter().all(u8::is_ascii_whitespace) {
        MigrationFilter::default()
    } else {
        tandem_platform::http::parse_json(&body)?
    };
    let row = engine.start(&migration_type, filter.clone()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MigrationContext {
            migration_id: row.migration_id,
            migration_type: row.migration_type,
            estimated_count: row.estimated_record_count,
            body: filter,
        }),
    ))
}

#[utoipa::path(get, path = "/migrate/history/{migrationId}", tag = "migration",
    responses((status = 200, body = MigrationHistory), (status = 404)))]
async fn history(
    _auth: Authorised<MigrationRead>,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<MigrationHistory>, ApiError> {
    let row = engine
        .ledger()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Not found: migration {id}")))?;
    Ok(Json(history_of(&engine, row).await?))
}

/// Every migration of a type, newest first.
#[utoipa::path(get, path = "/migrate/history/all/{migrationType}", tag = "migration",
    responses((status = 200, body = Vec<MigrationHistory>)))]
async fn history_all(
    _auth: Authorised<MigrationRead>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
) -> Result<Json<Vec<MigrationHistory>>, ApiError> {
    engine.domain(&migration_type)?;
    let mut out = Vec::new();
    for row in engine.ledger().list(&migration_type).await? {
        out.push(history_of(&engine, row).await?);
    }
    Ok(Json(out))
}

/// The latest migration of a type, with live progress (404 when none has run).
#[utoipa::path(get, path = "/migrate/history/active/{migrationType}", tag = "migration",
    responses((status = 200, body = MigrationHistory), (status = 404)))]
async fn history_active(
    _auth: Authorised<MigrationRead>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
) -> Result<Json<MigrationHistory>, ApiError> {
    engine.domain(&migration_type)?;
    let row = engine
        .ledger()
        .list(&migration_type)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found(format!("Not found: no {migration_type} migration has run"))
        })?;
    Ok(Json(history_of(&engine, row).await?))
}

/// Stops new work at once; in-flight batches finish, then the status is CANCELLED.
#[utoipa::path(post, path = "/migrate/cancel/{migrationId}", tag = "migration",
    responses((status = 202, body = MigrationHistory), (status = 404), (status = 400)))]
async fn cancel(
    _auth: Authorised<MigrationRw>,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let row = engine.cancel(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(history_of(&engine, row).await?)))
}

/// Re-reads a completed migration's figures (they are always exact; kept for compatibility).
#[utoipa::path(post, path = "/migrate/refresh/{migrationId}", tag = "migration",
    responses((status = 204), (status = 400, description = "not COMPLETED"), (status = 404)))]
async fn refresh(
    _auth: Authorised<MigrationRw>,
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.refresh(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
struct DlqParams {
    /// At most this many messages (default 100).
    max_messages: Option<usize>,
}

/// A failed entity, tagged with its migration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqMessage {
    pub message_id: String,
    pub migration_id: String,
    pub entity_key: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub failed_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetDlqResult {
    pub messages_found_count: i64,
    pub messages_returned_count: usize,
    pub messages: Vec<DlqMessage>,
}

/// The entities of this type that failed, with the migration id and the error.
#[utoipa::path(get, path = "/migrate/dead-letter-queue/{migrationType}", tag = "migration",
    params(DlqParams), responses((status = 200, body = GetDlqResult)))]
async fn dlq(
    _auth: Authorised<MigrationRead>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
    Query(params): Query<DlqParams>,
) -> Result<Json<GetDlqResult>, ApiError> {
    engine.domain(&migration_type)?;
    let max = params.max_messages.unwrap_or(100).clamp(1, 10_000);
    let failed = engine.ledger().failed(&migration_type, max).await?;
    let found = engine.ledger().failed_count(&migration_type).await?;
    let messages: Vec<DlqMessage> = failed
        .into_iter()
        .map(|f| DlqMessage {
            message_id: format!("{}:{}", f.migration_id, f.key),
            migration_id: f.migration_id,
            entity_key: f.key,
            attempts: f.attempts,
            error: f.error,
            failed_at: iso(f.failed_at_ms),
        })
        .collect();
    Ok(Json(GetDlqResult {
        messages_found_count: found,
        messages_returned_count: messages.len(),
        messages,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqCount {
    pub count: i64,
}

#[utoipa::path(get, path = "/migrate/dead-letter-queue/{migrationType}/count", tag = "migration",
    responses((status = 200, body = DlqCount)))]
async fn dlq_count(
    _auth: Authorised<MigrationRead>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
) -> Result<Json<DlqCount>, ApiError> {
    engine.domain(&migration_type)?;
    Ok(Json(DlqCount {
        count: engine.ledger().failed_count(&migration_type).await?,
    }))
}

/// Empties the list (the entities stay counted as failed in their migration's history).
#[utoipa::path(delete, path = "/migrate/dead-letter-queue/{migrationType}", tag = "migration",
    responses((status = 200, body = DlqCount)))]
async fn dlq_purge(
    _auth: Authorised<MigrationRw>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
) -> Result<Json<DlqCount>, ApiError> {
    engine.domain(&migration_type)?;
    let n = engine
        .ledger()
        .discard_failed(&migration_type, now_ms())
        .await?;
    Ok(Json(DlqCount { count: n as i64 }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryResult {
    /// Migrations that were re-opened to retry their failed entities.
    pub migrations_reopened: usize,
}

/// Puts the failed entities back to work in their own migrations, where those still run or
/// have completed; a cancelled migration's stay on the list (a new migration migrates them).
#[utoipa::path(put, path = "/migrate/dead-letter-queue/{migrationType}/retry", tag = "migration",
    responses((status = 200, body = RetryResult)))]
async fn dlq_retry(
    _auth: Authorised<MigrationRw>,
    State(engine): State<Engine>,
    Path(migration_type): Path<String>,
) -> Result<Json<RetryResult>, ApiError> {
    let n = engine.retry_failed(&migration_type).await?;
    Ok(Json(RetryResult {
        migrations_reopened: n,
    }))
}

/// The migration routes, for the hosting service's router.
pub fn routes(engine: Engine) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(history))
        .routes(routes!(history_all))
        .routes(routes!(history_active))
        .routes(routes!(cancel))
        .routes(routes!(refresh))
        .routes(routes!(dlq, dlq_purge))
        .routes(routes!(dlq_count))
        .routes(routes!(dlq_retry))
        .with_state(engine)
}
