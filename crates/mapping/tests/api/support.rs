//! The service behind its real router (mounted, finished, with a token validator), on a
//! fresh database of the chosen backend.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tandem_auth::{Issuer, LocalValidator, TokenSpec, validator_layer};
use tandem_mapping::{MappingStore, Migrator, NAME, service};
use tandem_platform::db::testing::{TestBackend, TestStorage};
use tandem_platform::http::{finish, mount_service};
use tower::ServiceExt;

const ROLE: &str = "ROLE_NOMIS_MAPPING_API__SYNCHRONISATION__RW";

/// Real RS256 tokens from an in-memory issuer, minted once per test process.
struct Tokens {
    issuer: Arc<Issuer>,
    rw: String,
    read_only: String,
    wrong_role: String,
    no_roles: String,
    foreign: String,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let issuer = Arc::new(Issuer::ephemeral().expect("issuer"));
        let mint = |roles: &[&str], scopes: &[&str]| {
            let roles = roles.iter().map(|r| r.to_string()).collect();
            let spec = TokenSpec::client("test-client", roles)
                .with_scopes(scopes.iter().map(|s| s.to_string()).collect());
            issuer.mint(&spec).expect("mint")
        };
        let other = Issuer::ephemeral().expect("other issuer");
        let foreign = other
            .mint(&TokenSpec::client("test-client", vec![ROLE.to_string()]))
            .expect("mint");
        Tokens {
            rw: mint(&[ROLE], &["read", "write"]),
            read_only: mint(&[ROLE], &["read"]),
            wrong_role: mint(&["ROLE_BANANAS"], &["read", "write"]),
            no_roles: mint(&[], &["read", "write"]),
            foreign,
            issuer,
        }
    })
}

/// The sync services' token: the role and the write scope.
pub fn rw() -> &'static str {
    &tokens().rw
}
/// The role without the write scope.
pub fn read_only() -> &'static str {
    &tokens().read_only
}
/// A valid token for another service.
pub fn wrong_role() -> &'static str {
    &tokens().wrong_role
}
pub fn no_roles() -> &'static str {
    &tokens().no_roles
}
/// Well-formed, with the role, but signed by a key this service does not trust.
pub fn foreign() -> &'static str {
    &tokens().foreign
}

pub struct App {
    router: Router,
    pub store: MappingStore,
    _storage: TestStorage,
}

impl App {
    pub async fn new(backend: TestBackend) -> Self {
        let storage = TestStorage::new(backend).await;
        let db = storage.db(NAME).await;
        db.migrate::<Migrator>().await.expect("migrate");
        // Migrations are re-runnable: start-up applies them every time.
        db.migrate::<Migrator>().await.expect("migrate again");
        let router = finish(mount_service(service(db.clone()))).layer(validator_layer(Arc::new(
            LocalValidator::new(tokens().issuer.clone()),
        )));
        Self {
            router,
            store: MappingStore::new(db),
            _storage: storage,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        call(self.router.clone(), method, path, token, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(rw()), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(rw()), Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(rw()), body).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(rw()), None).await
    }

    /// A router handle for calls from spawned tasks.
    pub fn router(&self) -> Router {
        self.router.clone()
    }
}

pub async fn call(
    router: Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/{NAME}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = router.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }))
    };
    (status, json)
}

/// A non-association mapping body.
pub fn na(
    id: i64,
    first: &str,
    second: &str,
    seq: i32,
    label: Option<&str>,
    mapping_type: &str,
) -> Value {
    json!({
        "nonAssociationId": id,
        "firstOffenderNo": first,
        "secondOffenderNo": second,
        "nomisTypeSequence": seq,
        "label": label,
        "mappingType": mapping_type,
    })
}

/// Asserts an HMPPS ErrorResponse with `status` whose userMessage contains every `part`.
#[track_caller]
pub fn assert_error(resp: &(StatusCode, Value), status: u16, parts: &[&str]) {
    let (code, body) = resp;
    assert_eq!(code.as_u16(), status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let msg = body["userMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("no userMessage in {body}"));
    for part in parts {
        assert!(msg.contains(part), "'{part}' not in '{msg}'");
    }
}
