//! Queue admin endpoints (the `hmpps-spring-boot-sqs` `/queue-admin/*` resource) and the
//! queue component of `/health`. Each consuming service mounts them for its own queues.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tandem_auth::Authorised;
use tandem_platform::http::{ComponentHealth, HealthCheck, Json, Path, Query};
use tandem_platform::{ApiError, ErrorResponse};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::bus::{BusError, DlqMessage, EventBus, QueueStats, Subscription};

tandem_auth::role!(pub QueueAdminRead, ["ROLE_SYSCON__QUEUE_ADMIN"]);
tandem_auth::role!(pub QueueAdminWrite, ["ROLE_SYSCON__QUEUE_ADMIN"], write);

const TAG: &str = "queue-admin";
const DEFAULT_MAX_MESSAGES: u32 = 100;
const MAX_MESSAGES_LIMIT: u32 = 1000;

#[derive(Clone)]
struct AdminState {
    bus: Arc<dyn EventBus>,
    queues: Arc<Vec<String>>,
}

/// A queue or DLQ named in a request, resolved against this service's queues.
enum Target {
    Queue(Subscription),
    Dlq(Subscription),
}

impl AdminState {
    async fn subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
        let mut out = Vec::with_capacity(self.queues.len());
        for q in self.queues.iter() {
            match self.bus.subscription(q).await {
                Ok(s) => out.push(s),
                // Configured but not declared yet (its consumer has not started): no messages.
                Err(BusError::UnknownQueue(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    async fn resolve(&self, name: &str) -> Result<Target, ApiError> {
        for s in self.subscriptions().await? {
            if s.queue == name {
                return Ok(Target::Queue(s));
            }
            if s.dlq == name {
                return Ok(Target::Dlq(s));
            }
        }
        Err(ApiError::not_found(format!(
            "No queue or dead-letter queue named '{name}' on this service; its queues are: {}",
            self.queues.join(", ")
        )))
    }

    async fn dlq(&self, name: &str) -> Result<Subscription, ApiError> {
        match self.resolve(name).await? {
            Target::Dlq(s) => Ok(s),
            Target::Queue(s) => Err(ApiError::not_found(format!(
                "'{name}' is a queue, not a dead-letter queue; its dead-letter queue is '{}'",
                s.dlq
            ))),
        }
    }
}

/// One DLQ message, as an operator reads it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqMessageDto {
    pub message_id: String,
    /// The producer's event id.
    pub event_id: String,
    pub event_type: String,
    /// The message body: the JSON document when it is one, else the raw text.
    #[schema(value_type = Object)]
    pub body: Value,
    /// Receives before it was dead-lettered.
    pub receive_count: u32,
    /// The last failure recorded (handler error, or why it was dead-lettered).
    pub last_error: Option<String>,
    /// When it was dead-lettered (ISO-8601, Europe/London offset).
    pub dead_lettered_at: Option<String>,
    /// When it was first put on the queue (ISO-8601, Europe/London offset).
    pub enqueued_at: Option<String>,
}

impl From<DlqMessage> for DlqMessageDto {
    fn from(m: DlqMessage) -> Self {
        let iso = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms).map(tandem_platform::time::london_iso)
        };
        Self {
            body: serde_json::from_str(&m.body).unwrap_or(Value::String(m.body)),
            message_id: m.message_id,
            event_id: m.event_id,
            event_type: m.event_type,
            receive_count: m.receive_count,
            last_error: m.last_error,
            dead_lettered_at: m.dead_lettered_at_ms.and_then(iso),
            enqueued_at: iso(m.enqueued_at_ms),
        }
    }
}

/// `GetDlqResult` of the HMPPS library.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetDlqResult {
    /// Messages on the DLQ.
    pub messages_found_count: u64,
    pub messages_returned_count: u64,
    pub messages: Vec<DlqMessageDto>,
}

/// `RetryDlqResult` of the HMPPS library.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryDlqResult {
    pub dlq_name: String,
    /// Messages moved back to the queue.
    pub messages_found_count: u64,
}

/// `PurgeQueueResult` of the HMPPS library.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeQueueResult {
    pub queue_name: String,
    /// Messages deleted.
    pub messages_found_count: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct DlqQuery {
    /// How many messages to return (default 100, at most 1000).
    max_messages: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/queue-admin/queues",
    tag = TAG,
    summary = "This service's queues with their depth, in-flight and DLQ counts",
    description = "Requires role SYSCON__QUEUE_ADMIN.",
    responses(
        (status = 200, body = Vec<QueueStats>),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn list_queues(
    State(st): State<AdminState>,
    _auth: Authorised<QueueAdminRead>,
) -> Result<Json<Vec<QueueStats>>, ApiError> {
    let mut out = Vec::new();
    for s in st.subscriptions().await? {
        out.push(st.bus.stats(&s.queue).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(
    get,
    path = "/queue-admin/get-dlq-messages/{dlqName}",
    tag = TAG,
    summary = "Read messages on a dead-letter queue without removing them",
    description = "Oldest first. Requires role SYSCON__QUEUE_ADMIN.",
    params(("dlqName" = String, Path, description = "The dead-letter queue's name"), DlqQuery),
    responses(
        (status = 200, body = GetDlqResult),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "No such dead-letter queue on this service", body = ErrorResponse),
    )
)]
async fn get_dlq_messages(
    State(st): State<AdminState>,
    _auth: Authorised<QueueAdminRead>,
    Path(dlq_name): Path<String>,
    Query(q): Query<DlqQuery>,
) -> Result<Json<GetDlqResult>, ApiError> {
    let max = q.max_messages.unwrap_or(DEFAULT_MAX_MESSAGES);
    if !(1..=MAX_MESSAGES_LIMIT).contains(&max) {
        return Err(ApiError::bad_request(format!(
            "Invalid query parameter maxMessages: must be between 1 and {MAX_MESSAGES_LIMIT}, was {max}"
        )));
    }
    let sub = st.dlq(&dlq_name).await?;
    let found = st.bus.stats(&sub.queue).await?.dlq_depth;
    let messages: Vec<DlqMessageDto> = st
        .bus
        .peek_dlq(&sub.queue, max as usize)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(GetDlqResult {
        messages_found_count: found,
        messages_returned_count: messages.len() as u64,
        messages,
    }))
}

#[utoipa::path(
    put,
    path = "/queue-admin/retry-dlq/{dlqName}",
    tag = TAG,
    summary = "Move every message on a dead-letter queue back to its own queue",
    description = "Only the queue the DLQ belongs to receives them again. Requires role SYSCON__QUEUE_ADMIN and the write scope.",
    params(("dlqName" = String, Path, description = "The dead-letter queue's name")),
    responses(
        (status = 200, body = RetryDlqResult),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "No such dead-letter queue on this service", body = ErrorResponse),
    )
)]
async fn retry_dlq(
    State(st): State<AdminState>,
    auth: Authorised<QueueAdminWrite>,
    Path(dlq_name): Path<String>,
) -> Result<Json<RetryDlqResult>, ApiError> {
    let sub = st.dlq(&dlq_name).await?;
    let n = st.bus.retry_dlq(&sub.queue).await?;
    tracing::info!(dlq = %sub.dlq, moved = n, by = auth.username(), "dead-letter queue retried");
    Ok(Json(RetryDlqResult {
        dlq_name: sub.dlq,
        messages_found_count: n,
    }))
}

#[utoipa::path(
    put,
    path = "/queue-admin/retry-all-dlqs",
    tag = TAG,
    summary = "Retry every dead-letter queue of this service",
    description = "Requires role SYSCON__QUEUE_ADMIN and the write scope.",
    responses(
        (status = 200, body = Vec<RetryDlqResult>),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
    )
)]
async fn retry_all_dlqs(
    State(st): State<AdminState>,
    auth: Authorised<QueueAdminWrite>,
) -> Result<Json<Vec<RetryDlqResult>>, ApiError> {
    let mut out = Vec::new();
    for sub in st.subscriptions().await? {
        let n = st.bus.retry_dlq(&sub.queue).await?;
        out.push(RetryDlqResult {
            dlq_name: sub.dlq,
            messages_found_count: n,
        });
    }
    tracing::info!(by = auth.username(), "all dead-letter queues retried");
    Ok(Json(out))
}

#[utoipa::path(
    put,
    path = "/queue-admin/purge-queue/{queueName}",
    tag = TAG,
    summary = "Delete every message on a queue or a dead-letter queue",
    description = "Purging a queue leaves its DLQ alone, and the reverse. Requires role SYSCON__QUEUE_ADMIN and the write scope.",
    params(("queueName" = String, Path, description = "A queue's or a dead-letter queue's name")),
    responses(
        (status = 200, body = PurgeQueueResult),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, description = "No such queue on this service", body = ErrorResponse),
    )
)]
async fn purge_queue(
    State(st): State<AdminState>,
    auth: Authorised<QueueAdminWrite>,
    Path(queue_name): Path<String>,
) -> Result<Json<PurgeQueueResult>, ApiError> {
    let name = match st.resolve(&queue_name).await? {
        Target::Queue(s) => s.queue,
        Target::Dlq(s) => s.dlq,
    };
    let n = st.bus.purge(&name).await?;
    tracing::info!(queue = %name, deleted = n, by = auth.username(), "queue purged");
    Ok(Json(PurgeQueueResult {
        queue_name: name,
        messages_found_count: n,
    }))
}

/// The `/queue-admin/*` routes for `queues` (this service's queue names), relative to the
/// service prefix. Merge into the service's router; the composition supplies the token
/// validator layer as for every protected route.
pub fn admin_routes<S>(bus: Arc<dyn EventBus>, queues: Vec<String>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    OpenApiRouter::new()
        .routes(routes!(list_queues))
        .routes(routes!(get_dlq_messages))
        .routes(routes!(retry_dlq))
        .routes(routes!(retry_all_dlqs))
        .routes(routes!(purge_queue))
        .with_state(AdminState {
            bus,
            queues: Arc::new(queues),
        })
}

/// The `queues` component of `/health`: each queue's depth, in-flight and DLQ counts.
/// DOWN only when the bus cannot be reached; a backlog or a full DLQ is for alerts.
pub struct QueueHealth {
    bus: Arc<dyn EventBus>,
    queues: Vec<String>,
}

impl QueueHealth {
    pub fn new(bus: Arc<dyn EventBus>, queues: Vec<String>) -> Self {
        Self { bus, queues }
    }
}

#[async_trait::async_trait]
impl HealthCheck for QueueHealth {
    fn name(&self) -> &str {
        "queues"
    }

    async fn check(&self) -> ComponentHealth {
        let mut details = serde_json::Map::new();
        for q in &self.queues {
            let entry = match self.bus.stats(q).await {
                Ok(s) => json!({
                    "queueName": s.queue,
                    "messagesOnQueue": s.depth,
                    "messagesInFlight": s.in_flight,
                    "dlqName": s.dlq,
                    "messagesOnDlq": s.dlq_depth,
                }),
                Err(BusError::UnknownQueue(_)) => {
                    json!({ "queueName": q, "status": "not declared yet" })
                }
                Err(e) => {
                    details.insert(q.clone(), json!({ "queueName": q, "error": e.to_string() }));
                    return ComponentHealth::down(Value::Object(details));
                }
            };
            details.insert(q.clone(), entry);
        }
        ComponentHealth::up(Value::Object(details))
    }
}
