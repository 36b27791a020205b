//! HTTP conventions every service follows (DESIGN §5–6): extractors that turn bad input
//! into a 400 `ErrorResponse` naming the field, the service descriptor, and `mount`, which
//! puts a service under its prefix with `/health`, `/health/ping`, `/info`,
//! `/v3/api-docs` and `/swagger-ui`, plus trace-id propagation and panic capture.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, StatusCode, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::error::ApiError;

/// The largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const TRACE_HEADER: &str = "x-request-id";

tokio::task_local! {
    static TRACE_ID: String;
}

/// The trace id of the request or message being handled, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// Runs `f` with `id` as the current trace id (consumers use it for bus messages).
pub async fn with_trace_id<F: std::future::Future>(id: String, f: F) -> F::Output {
    TRACE_ID.scope(id, f).await
}

fn problem(status: StatusCode, msg: String) -> ApiError {
    ApiError::new(status, msg)
}

/// A JSON body. Unlike `axum::Json` it ignores the content type, answers 400 (never 422)
/// with the path of the offending field, and 413 when the body is over the limit.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The body's bytes, with the same answers as [`Json`] when they cannot be read: 413 over
/// the limit, 408 when the client stopped sending (see [`crate::serve`]), else 400.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body too large: the limit is {MAX_BODY_BYTES} bytes"),
                )
            } else if caused_by_timeout(&e) {
                problem(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request body not received in time: send the whole body, as its Content-Length says".to_string(),
                )
            } else {
                ApiError::bad_request(format!("Unable to read request body: {}", e.body_text()))
            }
        })?;
        Ok(RawBody(bytes))
    }
}

/// Whether `e` (or what it wraps) is the body timeout of [`crate::serve`].
fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Parses a JSON document, naming the field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "Unable to read request body: the body is empty; a JSON document is required",
        ));
    }
    // The common case, a valid body, is read straight into `T`. Only a body that fails is
    // read again in two steps, so that a malformed document and a well-formed one with a
    // wrong field are told apart reliably and the second always names the field (building
    // the document first costs as much again as the parse, on every batch call).
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("Unable to read request body: malformed JSON: {e}"))
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("Validation failure: {inner}"))
        } else {
            ApiError::bad_request(format!("Validation failure: {path}: {inner}"))
        }
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a value of the wrong shape is a 400 naming the parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| {
                ApiError::bad_request(format!("Invalid path parameter: {}", e.body_text()))
            })
    }
}

/// Query parameters; a bad one is a 400 naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(format!(
                    "Invalid query parameter {path}: {}",
                    e.into_inner()
                ))
            })
    }
}

/// Health of one dependency, as shown under `components` in `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    pub status: &'static str,
    pub details: Value,
}

impl ComponentHealth {
    pub fn up(details: Value) -> Self {
        Self {
            status: "UP",
            details,
        }
    }
    pub fn down(details: Value) -> Self {
        Self {
            status: "DOWN",
            details,
        }
    }
}

#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    fn name(&self) -> &str;
    async fn check(&self) -> ComponentHealth;
}

/// The database component of `/health`.
pub struct DbHealth(pub crate::db::Db);

#[async_trait::async_trait]
impl HealthCheck for DbHealth {
    fn name(&self) -> &str {
        "db"
    }
    async fn check(&self) -> ComponentHealth {
        let backend = format!("{:?}", self.0.backend());
        match self.0.ping().await {
            Ok(()) => ComponentHealth::up(json!({ "database": backend })),
            Err(e) => ComponentHealth::down(json!({ "database": backend, "error": e.to_string() })),
        }
    }
}

/// A service ready to be mounted: its routes (relative to its prefix, state applied),
/// its OpenAPI document and its health components.
pub struct Service {
    /// The URL prefix without the slash, e.g. `nomis-prisoner-api`.
    pub name: &'static str,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

impl Service {
    /// Builds a service from a `utoipa_axum` router (routes and OpenAPI paths together).
    pub fn new(
        name: &'static str,
        title: &str,
        router: utoipa_axum::router::OpenApiRouter,
    ) -> Self {
        let (router, mut openapi) = router.split_for_parts();
        openapi.info.title = title.to_string();
        openapi.info.version = env!("CARGO_PKG_VERSION").to_string();
        Self {
            name,
            router,
            openapi,
            health: Vec::new(),
        }
    }

    /// Adds routes built elsewhere (e.g. queue admin for a queue this service consumes).
    pub fn merge(mut self, extra: utoipa_axum::router::OpenApiRouter) -> Self {
        let (router, openapi) = extra.split_for_parts();
        self.router = self.router.merge(router);
        self.openapi.merge(openapi);
        self
    }

    pub fn with_health(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health.push(check);
        self
    }
}

async fn health(checks: Arc<Vec<Arc<dyn HealthCheck>>>) -> Response {
    let mut components = serde_json::Map::new();
    let mut up = true;
    for c in checks.iter() {
        let h = c.check().await;
        up &= h.status == "UP";
        components.insert(
            c.name().to_string(),
            serde_json::to_value(h).unwrap_or(Value::Null),
        );
    }
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if up { "UP" } else { "DOWN" }, "components": components });
    (status, axum::Json(body)).into_response()
}

fn add_bearer_security(openapi: &mut utoipa::openapi::OpenApi, name: &str) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::server::Server;
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer-jwt",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    openapi.security = Some(vec![SecurityRequirement::new(
        "bearer-jwt",
        Vec::<String>::new(),
    )]);
    openapi.servers = Some(vec![Server::new(format!("/{name}"))]);
}

/// Mounts one service at `/{name}` with the conventional endpoints.
pub fn mount_service(service: Service) -> Router {
    let Service {
        name,
        router,
        mut openapi,
        health: checks,
    } = service;
    add_bearer_security(&mut openapi, name);
    let checks = Arc::new(checks);
    let title = openapi.info.title.clone();
    let info = json!({
        "app": { "name": name, "title": title, "version": env!("CARGO_PKG_VERSION") },
        "build": { "name": "tandem", "version": env!("CARGO_PKG_VERSION") },
    });
    let conventions = Router::new()
        .route("/health", get(move || health(checks.clone())))
        .route(
            "/health/ping",
            get(|| async { axum::Json(json!({ "status": "UP" })) }),
        )
        .route(
            "/info",
            get(move || std::future::ready(axum::Json(info.clone()))),
        );
    let swagger = utoipa_swagger_ui::SwaggerUi::new(format!("/{name}/swagger-ui"))
        .url(format!("/{name}/v3/api-docs"), openapi);
    Router::new()
        .nest(&format!("/{name}"), router.merge(conventions))
        .merge(swagger)
}

/// Puts trace-id propagation, panic capture, the body limit and ErrorResponse fallbacks
/// around a router of mounted services.
pub fn finish(router: Router) -> Router {
    router
        .fallback(|req: Request| async move {
            ApiError::not_found(format!(
                "No resource found at {} {}",
                req.method(),
                req.uri().path()
            ))
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "Method {} is not supported for {}",
                    req.method(),
                    req.uri().path()
                ),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_panic| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(axum::middleware::from_fn(trace_requests))
}

/// Takes the caller's `x-request-id` (or makes one), runs the request under it, logs the
/// outcome and echoes the id back.
async fn trace_requests(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(TRACE_HEADER, v);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("http", trace_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let mut resp = TRACE_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let status = resp.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        )
    });
    let service = path.split('/').nth(1).unwrap_or("").to_string();
    metrics::counter!("http_requests_total", "service" => service, "status" => status.to_string())
        .increment(1);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(TRACE_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        prisoner_number: crate::ids::PrisonerNumber,
        items: Vec<Item>,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    enum Code {
        A,
        B,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        code: Code,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"prisonerNumber":"A1234BC","items":[{"code":"Z"}]}"#)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.user_message.contains("items[0].code"),
            "{}",
            e.user_message
        );
        let e = parse_json::<Body>(br#"{"prisonerNumber":"A1234BC","items":[{"code":7}]}"#)
            .unwrap_err();
        assert!(
            e.user_message.contains("items[0].code"),
            "{}",
            e.user_message
        );
        let e = parse_json::<Body>(br#"{"prisonerNumber":"nope","items":[]}"#).unwrap_err();
        assert!(
            e.user_message.contains("prisonerNumber"),
            "{}",
            e.user_message
        );
        assert!(
            e.user_message.contains("invalid prisoner number"),
            "{}",
            e.user_message
        );
        let e = parse_json::<Body>(br#"{"prisonerNumber":"#).unwrap_err();
        assert!(
            e.user_message.contains("malformed JSON"),
            "{}",
            e.user_message
        );
        let e = parse_json::<Body>(b"").unwrap_err();
        assert!(e.user_message.contains("empty"), "{}", e.user_message);
        let e = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert!(
            e.user_message.contains("prisonerNumber"),
            "{}",
            e.user_message
        );
    }
}
