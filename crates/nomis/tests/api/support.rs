//! A mounted service with a real token issuer, and helpers to call it and look inside its
//! database.

use std::sync::{Arc, OnceLock};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tandem_auth::{Issuer, LocalValidator, TokenSpec};
use tandem_nomis::{Migrator, NAME, SYNC_ROLE, service};
use tandem_platform::{
    db::{
        Db,
        testing::{TestBackend, TestStorage},
    },
    http::{finish, mount_service},
};
use tower::ServiceExt;

fn issuer() -> Arc<Issuer> {
    static ISSUER: OnceLock<Arc<Issuer>> = OnceLock::new();
    ISSUER
        .get_or_init(|| Arc::new(Issuer::ephemeral().expect("test issuer")))
        .clone()
}

/// A token for a NOMIS user with the given roles and scopes.
pub fn token_with(roles: &[&str], scopes: &[&str]) -> String {
    let spec = TokenSpec::client("nomis-test", roles.iter().map(|r| r.to_string()).collect())
        .with_user("NOMIS_TEST_USER")
        .with_scopes(scopes.iter().map(|s| s.to_string()).collect());
    issuer().mint(&spec).expect("mint token")
}

/// The sync role with read and write scopes.
pub fn sync_token() -> String {
    token_with(&[SYNC_ROLE], &["read", "write"])
}

pub struct App {
    pub router: Router,
    pub db: Db,
    pub token: String,
    _storage: TestStorage,
}

pub async fn app(backend: TestBackend) -> App {
    let storage = TestStorage::new(backend).await;
    let db = storage.db(NAME).await;
    db.migrate::<Migrator>().await.expect("migrate");
    let validator = Arc::new(LocalValidator::new(issuer()));
    let router =
        finish(mount_service(service(db.clone()))).layer(tandem_auth::validator_layer(validator));
    App {
        router,
        db,
        token: sync_token(),
        _storage: storage,
    }
}

pub struct Call<'a> {
    app: &'a App,
    method: Method,
    path: String,
    token: Option<String>,
    module: Option<String>,
    body: Option<Value>,
}

impl App {
    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            method,
            path: format!("/{NAME}{path}"),
            token: Some(self.token.clone()),
            module: None,
            body: None,
        }
    }
    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }
    pub fn post(&self, path: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, path).body(body)
    }
    pub fn put(&self, path: &str, body: Value) -> Call<'_> {
        self.call(Method::PUT, path).body(body)
    }

    /// Rows of a query, every value as text (so one helper reads both backends).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let backend = self.db.backend();
        let rows = self
            .db
            .conn()
            .query_all_raw(Statement::from_string(backend, sql.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|r| {
                let n = r.column_names().len();
                (0..n)
                    .map(|i| {
                        r.try_get_by_index::<Option<String>>(i)
                            .or_else(|_| {
                                r.try_get_by_index::<Option<i64>>(i)
                                    .map(|v| v.map(|v| v.to_string()))
                            })
                            .or_else(|_| {
                                r.try_get_by_index::<Option<i32>>(i)
                                    .map(|v| v.map(|v| v.to_string()))
                            })
                            .or_else(|_| {
                                r.try_get_by_index::<Option<chrono::NaiveDate>>(i)
                                    .map(|v| v.map(|v| v.to_string()))
                            })
                            .or_else(|_| {
                                r.try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(i)
                                    .map(|v| v.map(|v| v.to_rfc3339()))
                            })
                            .unwrap_or_else(|e| panic!("{sql} column {i}: {e}"))
                    })
                    .collect()
            })
            .collect()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        self.rows(&sql).await[0][0]
            .as_deref()
            .unwrap_or("0")
            .parse()
            .unwrap_or(-1)
    }

    /// Outbox events of one type, in order: (ordering key, body).
    pub async fn events(&self, event_type: &str) -> Vec<(Option<String>, Value)> {
        let sql = format!(
            "SELECT topic, ordering_key, body FROM outbox WHERE event_type = '{event_type}' ORDER BY seq"
        );
        self.rows(&sql)
            .await
            .into_iter()
            .map(|r| {
                assert_eq!(r[0].as_deref(), Some("offender-events"));
                let body: Value = serde_json::from_str(r[2].as_deref().unwrap_or("null")).unwrap();
                (r[1].clone(), body)
            })
            .collect()
    }

    /// Receives a prisoner into `prison`; returns the offender number.
    pub async fn prisoner(&self, first: &str, last: &str, prison: &str) -> String {
        let (status, body) = self
            .post(
                "/prisoners",
                json!({"firstName": first, "lastName": last, "dateOfBirth": "1990-04-01", "prisonId": prison}),
            )
            .send()
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["offenderNo"].as_str().unwrap().to_string()
    }
}

impl Call<'_> {
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
    pub fn module(mut self, module: &str) -> Self {
        self.module = Some(module.to_string());
        self
    }
    pub async fn send(self) -> (StatusCode, Value) {
        let mut req = Request::builder().method(self.method).uri(&self.path);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(m) = &self.module {
            req = req.header("x-audit-module", m);
        }
        let req = match self.body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, body)
    }
}

/// Asserts an HMPPS ErrorResponse with `status` whose userMessage contains every fragment.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, fragments: &[&str]) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    let msg = body["userMessage"].as_str().unwrap_or_default();
    for f in fragments {
        assert!(msg.contains(f), "userMessage {msg:?} lacks {f:?}");
    }
}
