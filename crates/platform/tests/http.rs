//! The HTTP conventions through a mounted router: conventional endpoints, ErrorResponse
//! fallbacks, panic capture, trace ids, and the in-process peer client.

use std::sync::Arc;

use axum::{body::Body, http::Request};
use serde_json::Value;
use tandem_platform::{
    ApiError,
    client::{LocalApp, PeerClient, PeerError, TokenSource},
    http::{Json, Service, current_trace_id, finish, mount_service},
};
use tower::ServiceExt;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
struct Echo {
    prisoner: tandem_platform::ids::PrisonerNumber,
}

/// Echoes the body and the trace id it ran under.
#[utoipa::path(post, path = "/echo", request_body = Echo, responses((status = 200)))]
async fn echo(Json(body): Json<Echo>) -> Json<Value> {
    Json(serde_json::json!({ "prisoner": body.prisoner, "trace": current_trace_id() }))
}

#[utoipa::path(get, path = "/boom", responses((status = 500)))]
async fn boom() -> Result<Json<Value>, ApiError> {
    panic!("a bug")
}

fn app() -> axum::Router {
    let svc = Service::new(
        "probe-api",
        "Probe",
        OpenApiRouter::new()
            .routes(routes!(echo))
            .routes(routes!(boom)),
    );
    finish(mount_service(svc))
}

async fn call(router: &axum::Router, req: Request<Body>) -> (u16, Value, Option<String>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let trace = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, trace)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn conventional_endpoints() {
    let app = app();
    let (s, b, _) = call(&app, get("/probe-api/health/ping")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("UP")));
    let (s, b, _) = call(&app, get("/probe-api/health")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("UP")));
    let (s, b, _) = call(&app, get("/probe-api/info")).await;
    assert_eq!((s, b["app"]["name"].as_str()), (200, Some("probe-api")));
    let (s, b, _) = call(&app, get("/probe-api/v3/api-docs")).await;
    assert_eq!(s, 200);
    assert!(b["paths"]["/echo"]["post"].is_object(), "{b}");
    assert_eq!(b["servers"][0]["url"], "/probe-api");
    let resp = app
        .clone()
        .oneshot(get("/probe-api/swagger-ui/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn errors_are_error_responses() {
    let app = app();
    let (s, b, _) = call(&app, get("/nowhere")).await;
    assert_eq!((s, b["status"].as_u64()), (404, Some(404)));
    assert!(b["userMessage"].as_str().unwrap().contains("/nowhere"));
    let (s, b, _) = call(&app, get("/probe-api/echo")).await;
    assert_eq!((s, b["status"].as_u64()), (405, Some(405)));
    let (s, b, _) = call(&app, get("/probe-api/boom")).await;
    assert_eq!((s, b["status"].as_u64()), (500, Some(500)));
    let bad = Request::post("/probe-api/echo")
        .body(Body::from(r#"{"prisoner":"XYZ"}"#))
        .unwrap();
    let (s, b, _) = call(&app, bad).await;
    assert_eq!(s, 400);
    assert!(
        b["userMessage"].as_str().unwrap().contains("prisoner"),
        "{b}"
    );
    let huge = format!(r#"{{"prisoner":"{}"}}"#, "A".repeat(2 * 1024 * 1024));
    let (s, b, _) = call(
        &app,
        Request::post("/probe-api/echo")
            .body(Body::from(huge))
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["status"].as_u64()), (413, Some(413)));
}

#[tokio::test]
async fn trace_ids_are_taken_made_and_echoed() {
    let app = app();
    let req = Request::post("/probe-api/echo")
        .header("x-request-id", "trace-123")
        .body(Body::from(r#"{"prisoner":"A1234BC"}"#))
        .unwrap();
    let (s, b, t) = call(&app, req).await;
    assert_eq!(s, 200);
    assert_eq!(b["trace"], "trace-123");
    assert_eq!(t.as_deref(), Some("trace-123"));
    let (_, _, t) = call(&app, get("/probe-api/health/ping")).await;
    assert!(t.is_some_and(|t| t.len() >= 32));
}

struct FixedToken;
#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn bearer(&self) -> Result<String, PeerError> {
        Ok("t".into())
    }
}

#[tokio::test]
async fn in_process_peer_calls_go_through_the_router() {
    let local = LocalApp::new();
    let client = PeerClient::in_process("probe-api", local.clone(), Arc::new(FixedToken));
    let early = client
        .request(http::Method::GET, "/health/ping")
        .send()
        .await;
    assert!(matches!(early, Err(PeerError::Unreachable { .. })));
    local.set(app());
    let v: Value = client.get_json("/health/ping").await.unwrap();
    assert_eq!(v["status"], "UP");
    let resp = tandem_platform::http::with_trace_id("from-caller".into(), async {
        client
            .request(http::Method::POST, "/echo")
            .json(&serde_json::json!({"prisoner":"A1234BC"}))
            .send()
            .await
    })
    .await
    .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["trace"], "from-caller");
    let err = client
        .request(http::Method::POST, "/echo")
        .json(&serde_json::json!({"prisoner":"bad"}))
        .send()
        .await
        .unwrap()
        .ok()
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert!(
        client
            .find_json::<Value>("/missing")
            .await
            .unwrap()
            .is_none()
    );
}
