//! Boots an estate for a test and talks to it like a client would.

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request};
use serde_json::Value;
use tandem::{Estate, EstateOptions};
use tandem_auth::TokenSpec;
use tandem_bus::Subscription;
use tandem_platform::db::testing::{TestBackend, TestStorage};
use tower::ServiceExt;

pub struct TestEstate {
    pub estate: Estate,
    /// The dev client's token, fetched through `POST /auth/oauth/token`.
    pub token: String,
    _storage: TestStorage,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl TestEstate {
    pub async fn boot(backend: TestBackend) -> Self {
        let storage = TestStorage::new(backend).await;
        let opts = EstateOptions {
            storage: storage.config.clone(),
            ..EstateOptions::embedded(storage.config.data_dir.clone())
        };
        let estate = Estate::start(opts).await.expect("estate starts");
        let (id, secret) = estate.dev_client.clone();
        let mut te = Self {
            estate,
            token: String::new(),
            _storage: storage,
        };
        let basic = base64_basic(&id, &secret);
        let reply = te
            .raw(
                Request::post("/auth/oauth/token")
                    .header("authorization", format!("Basic {basic}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from("grant_type=client_credentials"))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, 200, "token endpoint: {}", reply.body);
        te.token = reply.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        te
    }

    /// A token for a user with exactly these roles (as a DPS user's UI would hold).
    pub fn user_token(&self, user: &str, roles: &[&str]) -> String {
        self.estate
            .issuer
            .mint(
                &TokenSpec::client("e2e-ui", roles.iter().map(|r| r.to_string()).collect())
                    .with_user(user),
            )
            .expect("mint")
    }

    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let resp = self
            .estate
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply { status, body }
    }

    /// A JSON call with the dev client's token (or `token`), optional extra headers.
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.raw(req.body(body).unwrap()).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(&self.token.clone()), method, path, body, &[])
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Declares a queue that sees `event_types` on `topic` (do it before the writes).
    pub async fn watch(&self, queue: &str, topic: &str, event_types: &[&str]) {
        let sub =
            Subscription::new(queue, topic).event_types(event_types.iter().map(|s| s.to_string()));
        self.estate.bus.declare(&sub).await.expect("declare");
    }

    /// Everything that reaches `queue` within `within` (acknowledged), as JSON bodies.
    pub async fn drain(&self, queue: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let got = self.estate.bus.receive(queue, 100).await.expect("receive");
            for d in &got {
                out.push(serde_json::from_str(&d.body).expect("event body is JSON"));
                self.estate.bus.ack(d).await.expect("ack");
            }
            if got.is_empty() {
                if tokio::time::Instant::now() >= deadline {
                    return out;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    pub async fn stop(self) {
        self.estate.shutdown().await;
    }
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// Polls `f` until it returns Some, or fails after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The test broker (`TANDEM_TEST_AMQP_URL`, by default the `tandem_test` vhost on
/// localhost), checked reachable: a test that needs RabbitMQ fails here, saying how to start
/// it, rather than skipping.
pub async fn required_rabbitmq() -> String {
    let url = std::env::var("TANDEM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/tandem_test".to_string());
    let probe = tandem_bus_rabbitmq::RabbitBus::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is required by this test and is not reachable at {url}: {e}. Start it \
                 (`rabbitmq-server -detached && rabbitmqctl await_startup`), create the vhost \
                 (`rabbitmqctl add_vhost tandem_test && rabbitmqctl set_permissions -p tandem_test guest '.*' '.*' '.*'`) \
                 or run the suite through `scripts/test`, which does."
            )
        });
    probe.close_connection().await;
    url
}
