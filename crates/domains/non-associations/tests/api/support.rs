//! The service mounted as the estate mounts it, with real tokens, a fresh database per
//! test and an in-memory prisoner directory.

use std::sync::{Arc, LazyLock};

use axum::{Router, body::Body};
use http::{Method, Request, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use tandem_auth::{Issuer, LocalValidator, TokenSpec, roles, validator_layer};
use tandem_non_associations::{InMemoryPrisoners, Migrator, NAME, service};
use tandem_platform::db::Db;
use tandem_platform::db::testing::{TestBackend, TestStorage};
use tandem_platform::http::{finish, mount_service};
use tower::ServiceExt;

pub static ISSUER: LazyLock<Arc<Issuer>> =
    LazyLock::new(|| Arc::new(Issuer::ephemeral().expect("test issuer")));

pub const USER: &str = "STAFF_USER";

/// Prisoners the directory knows: four in MDI, one in LEI, one released.
pub const A: &str = "A1234AA";
pub const B: &str = "B1234BB";
pub const C: &str = "C1234CC";
pub const D: &str = "D1234DD";
pub const LEEDS: &str = "E1234EE";
pub const RELEASED: &str = "F1234FF";
pub const UNKNOWN: &str = "Z9999ZZ";

pub struct App {
    router: Router,
    pub db: Db,
    #[allow(dead_code)]
    pub prisoners: InMemoryPrisoners,
    _storage: TestStorage,
}

/// A token with `roles`, the write scope when `write`, and a user name when given.
pub fn token(roles: &[&str], user: Option<&str>, write: bool) -> String {
    let scopes = if write {
        vec!["read".into(), "write".into()]
    } else {
        vec!["read".into()]
    };
    let mut spec = TokenSpec::client("test-client", roles.iter().map(|r| r.to_string()).collect())
        .with_scopes(scopes);
    if let Some(u) = user {
        spec = spec.with_user(u);
    }
    ISSUER.mint(&spec).expect("mint")
}

pub fn reader() -> String {
    token(&[roles::READ_NON_ASSOCIATIONS], Some(USER), false)
}

pub fn writer() -> String {
    token(
        &[roles::READ_NON_ASSOCIATIONS, roles::WRITE_NON_ASSOCIATIONS],
        Some(USER),
        true,
    )
}

pub fn syncer() -> String {
    token(&[roles::NON_ASSOCIATIONS_SYNC], None, false)
}

pub fn migrator() -> String {
    token(&[roles::NON_ASSOCIATIONS_MIGRATE], None, false)
}

/// An event as the outbox holds it.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: String,
    pub ordering_key: Option<String>,
    pub body: Value,
}

impl App {
    pub async fn new(backend: TestBackend) -> Self {
        let storage = TestStorage::new(backend).await;
        let db = storage.db(NAME).await;
        db.migrate::<Migrator>().await.expect("migrate");
        let prisoners = InMemoryPrisoners::new();
        for p in [A, B, C, D] {
            prisoners.add(p, Some("MDI"));
        }
        prisoners.add(LEEDS, Some("LEI"));
        prisoners.add(RELEASED, None);
        let svc = service(db.clone(), Arc::new(prisoners.clone()));
        let router = finish(mount_service(svc).layer(validator_layer(Arc::new(
            LocalValidator::new(ISSUER.clone()),
        ))));
        Self {
            router,
            db,
            prisoners,
            _storage: storage,
        }
    }

    /// Sends a request to `/non-associations-api{path}` with a raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/{NAME}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.raw(method, path, Some(token), body.as_deref()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// Creates an open non-association through the API and returns its id.
    pub async fn create(&self, first: &str, second: &str) -> i64 {
        let (status, body) = self
            .post("/non-associations", &writer(), create_body(first, second))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    pub async fn close(&self, id: i64) {
        let (status, body) = self
            .put(
                &format!("/non-associations/{id}/close"),
                &writer(),
                serde_json::json!({"closedReason": "done"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Every event in the outbox, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        let rows = self
            .db
            .conn()
            .query_all_raw(Statement::from_string(
                self.db.backend(),
                "SELECT event_type, ordering_key, body FROM outbox ORDER BY seq",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| Event {
                event_type: r.try_get("", "event_type").unwrap(),
                ordering_key: r.try_get("", "ordering_key").unwrap(),
                body: serde_json::from_str(&r.try_get::<String>("", "body").unwrap()).unwrap(),
            })
            .collect()
    }

    pub async fn row_count(&self) -> i64 {
        let row = self
            .db
            .conn()
            .query_one_raw(Statement::from_string(
                self.db.backend(),
                "SELECT COUNT(*) AS n FROM non_association",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    /// (rows, events) now: a rejected request must leave both as they were.
    pub async fn snapshot(&self) -> (i64, usize) {
        (self.row_count().await, self.events().await.len())
    }
}

pub fn create_body(first: &str, second: &str) -> Value {
    serde_json::json!({
        "firstPrisonerNumber": first,
        "firstPrisonerRole": "VICTIM",
        "secondPrisonerNumber": second,
        "secondPrisonerRole": "PERPETRATOR",
        "reason": "VIOLENCE",
        "restrictionType": "CELL",
        "comment": "Keep apart",
    })
}

/// Asserts an `ErrorResponse` with `status` and `errorCode`, returning its user message.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: Option<i64>) -> String {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["errorCode"].as_i64(), code, "{body}");
    assert!(body["developerMessage"].is_string(), "{body}");
    body["userMessage"].as_str().unwrap_or_default().to_string()
}
