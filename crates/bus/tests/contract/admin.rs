//! The `/queue-admin/*` endpoints and the queue health component, over HTTP.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tandem_auth::{AuthError, Claims, TokenValidator, validator_layer};
use tandem_bus::{EventBus, QueueHealth, Subscription, admin_routes};
use tandem_platform::db::testing::TestBackend;
use tandem_platform::events::OutgoingEvent;
use tandem_platform::http::{HealthCheck, Service, finish, mount_service};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

use super::SqlFixture;

/// Tokens by name: `rw` (role + write scope), `ro` (role, read scope), `other` (no role).
struct FakeTokens;

impl TokenValidator for FakeTokens {
    fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        let (roles, scopes): (Vec<&str>, Vec<&str>) = match token {
            "rw" => (vec!["ROLE_SYSCON__QUEUE_ADMIN"], vec!["read", "write"]),
            "ro" => (vec!["ROLE_SYSCON__QUEUE_ADMIN"], vec!["read"]),
            "other" => (vec!["ROLE_SOMETHING_ELSE"], vec!["read", "write"]),
            _ => return Err(AuthError::Invalid("unknown test token".into())),
        };
        Ok(Claims {
            sub: "tester".into(),
            authorities: roles.into_iter().map(String::from).collect(),
            scope: scopes.into_iter().map(String::from).collect(),
            client_id: Some("tester".into()),
            user_name: None,
            iss: "test".into(),
            exp: i64::MAX,
            iat: 0,
            jti: None,
        })
    }
}

struct App {
    router: axum::Router,
    bus: Arc<dyn EventBus>,
    a: Subscription,
    b: Subscription,
    _f: SqlFixture,
}

async fn app(backend: TestBackend) -> App {
    let f = SqlFixture::new(backend).await;
    let bus: Arc<dyn EventBus> = Arc::new(f.bus.clone());
    let a = Subscription::new("svc_a_queue", "domain-events").dlq("svc_a_dlq");
    let b = Subscription::new("svc_b_queue", "domain-events");
    let foreign = Subscription::new("someone_elses_queue", "domain-events");
    for s in [&a, &b, &foreign] {
        bus.declare(s).await.unwrap();
    }
    let queues = vec![
        a.queue.clone(),
        b.queue.clone(),
        "not_started_queue".to_string(),
    ];
    let routes: OpenApiRouter = admin_routes(bus.clone(), queues);
    let router = finish(mount_service(Service::new("test-svc", "Test", routes)))
        .layer(validator_layer(Arc::new(FakeTokens)));
    App {
        router,
        bus,
        a,
        b,
        _f: f,
    }
}

async fn call(app: &App, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/test-svc{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Puts `n` messages on the DLQ of `queue` (and one copy of each on every other queue).
async fn dead_letter(bus: &dyn EventBus, queue: &str, n: u32) {
    for i in 0..n {
        let e = OutgoingEvent::raw(
            "domain-events",
            "thing.happened",
            json!({ "eventType": "thing.happened", "i": i }),
            None,
        );
        bus.publish(&e).await.unwrap();
    }
    for d in bus.receive(queue, 100).await.unwrap() {
        bus.dead_letter(&d, &format!("failed {}", d.body))
            .await
            .unwrap();
    }
}

async fn requires_the_queue_admin_role(backend: TestBackend) {
    let app = app(backend).await;
    let (status, body) = call(&app, Method::GET, "/queue-admin/queues", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = call(&app, Method::GET, "/queue-admin/queues", Some("other")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["userMessage"]
            .as_str()
            .unwrap()
            .contains("ROLE_SYSCON__QUEUE_ADMIN")
    );
    let (status, _) = call(&app, Method::GET, "/queue-admin/queues", Some("ro")).await;
    assert_eq!(status, 200);
    for path in [
        "/queue-admin/retry-dlq/svc_a_dlq",
        "/queue-admin/retry-all-dlqs",
        "/queue-admin/purge-queue/svc_a_queue",
    ] {
        let (status, body) = call(&app, Method::PUT, path, Some("ro")).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["userMessage"]
                .as_str()
                .unwrap()
                .contains("write scope"),
            "{body}"
        );
    }
}

async fn lists_this_services_queues_with_counts(backend: TestBackend) {
    let app = app(backend).await;
    dead_letter(&*app.bus, &app.a.queue, 2).await;
    let (status, body) = call(&app, Method::GET, "/queue-admin/queues", Some("ro")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            { "queue": "svc_a_queue", "dlq": "svc_a_dlq", "depth": 0, "inFlight": 0, "dlqDepth": 2 },
            { "queue": "svc_b_queue", "dlq": "svc_b_queue-dlq", "depth": 2, "inFlight": 0, "dlqDepth": 0 },
        ]),
        "another service's queue and an undeclared one are not listed"
    );
}

async fn reads_dlq_messages(backend: TestBackend) {
    let app = app(backend).await;
    dead_letter(&*app.bus, &app.a.queue, 3).await;
    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/svc_a_dlq?maxMessages=2",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messagesFoundCount"], 3);
    assert_eq!(body["messagesReturnedCount"], 2);
    let m = &body["messages"][0];
    assert_eq!(m["eventType"], "thing.happened");
    assert_eq!(m["body"]["i"], 0, "the body is the JSON document");
    assert_eq!(m["receiveCount"], 1);
    assert!(
        m["lastError"].as_str().unwrap().starts_with("failed"),
        "{m}"
    );
    assert!(m["deadLetteredAt"].as_str().is_some(), "{m}");
    assert!(m["messageId"].as_str().is_some());

    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/svc_a_dlq",
        Some("ro"),
    )
    .await;
    assert_eq!(
        (status, body["messagesReturnedCount"].as_u64()),
        (200, Some(3)),
        "default max 100"
    );
    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/svc_a_dlq?maxMessages=0",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["userMessage"]
            .as_str()
            .unwrap()
            .contains("maxMessages"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/svc_a_dlq?maxMessages=lots",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["userMessage"]
            .as_str()
            .unwrap()
            .contains("maxMessages"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/nope_dlq",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["userMessage"].as_str().unwrap().contains("nope_dlq"),
        "{body}"
    );
    let (status, body) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/svc_a_queue",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 404, "a queue is not a DLQ");
    assert!(
        body["userMessage"].as_str().unwrap().contains("svc_a_dlq"),
        "{body}"
    );
    let (status, _) = call(
        &app,
        Method::GET,
        "/queue-admin/get-dlq-messages/someone_elses_queue-dlq",
        Some("ro"),
    )
    .await;
    assert_eq!(status, 404, "another service's DLQ is not reachable here");
}

async fn retries_and_purges(backend: TestBackend) {
    let app = app(backend).await;
    dead_letter(&*app.bus, &app.a.queue, 2).await;
    dead_letter(&*app.bus, &app.b.queue, 1).await;
    // a: 1 pending (from the second round), 2 dead; b: every copy dead (3).

    let (status, body) = call(
        &app,
        Method::PUT,
        "/queue-admin/retry-dlq/svc_a_dlq",
        Some("rw"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "dlqName": "svc_a_dlq", "messagesFoundCount": 2 })
    );
    let a = app.bus.stats(&app.a.queue).await.unwrap();
    assert_eq!((a.depth, a.dlq_depth), (3, 0));
    let b = app.bus.stats(&app.b.queue).await.unwrap();
    assert_eq!((b.depth, b.dlq_depth), (0, 3), "b untouched by a's retry");

    let (status, body) = call(&app, Method::PUT, "/queue-admin/retry-all-dlqs", Some("rw")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            { "dlqName": "svc_a_dlq", "messagesFoundCount": 0 },
            { "dlqName": "svc_b_queue-dlq", "messagesFoundCount": 3 },
        ])
    );

    dead_letter(&*app.bus, &app.b.queue, 1).await; // b: all 4 on the DLQ; a: 4 pending
    let (status, body) = call(
        &app,
        Method::PUT,
        "/queue-admin/purge-queue/svc_b_queue-dlq",
        Some("rw"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "queueName": "svc_b_queue-dlq", "messagesFoundCount": 4 })
    );
    assert_eq!(app.bus.stats(&app.b.queue).await.unwrap().dlq_depth, 0);
    let (status, body) = call(
        &app,
        Method::PUT,
        "/queue-admin/purge-queue/svc_a_queue",
        Some("rw"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messagesFoundCount"], 4);
    assert_eq!(app.bus.stats(&app.a.queue).await.unwrap().depth, 0);
    let (status, _) = call(
        &app,
        Method::PUT,
        "/queue-admin/purge-queue/someone_elses_queue",
        Some("rw"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.bus.stats("someone_elses_queue").await.unwrap().depth,
        4,
        "not purged"
    );
}

async fn documents_the_endpoints(backend: TestBackend) {
    let app = app(backend).await;
    let (status, doc) = call(&app, Method::GET, "/v3/api-docs", None).await;
    assert_eq!(status, 200);
    for p in [
        "/queue-admin/queues",
        "/queue-admin/get-dlq-messages/{dlqName}",
        "/queue-admin/retry-dlq/{dlqName}",
        "/queue-admin/retry-all-dlqs",
        "/queue-admin/purge-queue/{queueName}",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
}

async fn health_reports_each_queue(backend: TestBackend) {
    let app = app(backend).await;
    dead_letter(&*app.bus, &app.a.queue, 1).await;
    let health = QueueHealth::new(
        app.bus.clone(),
        vec![app.a.queue.clone(), "not_started_queue".into()],
    );
    let h = health.check().await;
    assert_eq!(h.status, "UP");
    assert_eq!(h.details["svc_a_queue"]["messagesOnDlq"], 1);
    assert_eq!(h.details["svc_a_queue"]["dlqName"], "svc_a_dlq");
    assert_eq!(h.details["not_started_queue"]["status"], "not declared yet");
}

tandem_platform::both_backends!(
    requires_the_queue_admin_role,
    lists_this_services_queues_with_counts,
    reads_dlq_messages,
    retries_and_purges,
    documents_the_endpoints,
    health_reports_each_queue,
);
