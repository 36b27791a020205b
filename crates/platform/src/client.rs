//! Service-to-service calls: one code path whether the peer is mounted in this process
//! (the request goes through its router, no socket) or runs elsewhere (HTTP via reqwest).
//!
//! Every call carries a bearer token from a [`TokenSource`] (the caller's own client
//! credentials) and the current trace id.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::{Router, body::Body};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use tower::ServiceExt;

use crate::error::ErrorResponse;
use crate::http::{TRACE_HEADER, current_trace_id};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{service} is unreachable: {detail}")]
    Unreachable { service: String, detail: String },
    #[error("{service} answered {status}: {message}")]
    Status {
        service: String,
        status: StatusCode,
        message: String,
        body: Option<Box<ErrorResponse>>,
    },
    #[error("{service} answered with a body that could not be read: {detail}")]
    Decode { service: String, detail: String },
    #[error("could not obtain a token: {0}")]
    Token(String),
}

impl PeerError {
    /// The HTTP status the peer answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            PeerError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(StatusCode::CONFLICT)
    }
}

impl From<PeerError> for crate::ApiError {
    fn from(e: PeerError) -> Self {
        match &e {
            PeerError::Status {
                status,
                body: Some(body),
                ..
            } if status.is_client_error() => {
                crate::ApiError::new(*status, body.user_message.clone())
                    .with_developer_message(e.to_string())
            }
            _ => crate::ApiError::unavailable(e),
        }
    }
}

/// Supplies the bearer token a service presents to its peers.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn bearer(&self) -> Result<String, PeerError>;
}

/// The whole estate's router, filled in once composition is done, so in-process peers can
/// be called before the router that contains them exists.
#[derive(Clone, Default)]
pub struct LocalApp(Arc<OnceLock<Router>>);

impl LocalApp {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the composed router; later calls are ignored.
    pub fn set(&self, router: Router) {
        let _ = self.0.set(router);
    }
    fn get(&self) -> Option<Router> {
        self.0.get().cloned()
    }
}

#[derive(Clone)]
enum Transport {
    InProcess {
        app: LocalApp,
        prefix: String,
    },
    Http {
        client: reqwest::Client,
        base: String,
    },
}

/// A client for one peer service.
#[derive(Clone)]
pub struct PeerClient {
    service: Arc<str>,
    transport: Transport,
    tokens: Arc<dyn TokenSource>,
}

impl PeerClient {
    /// A peer mounted in this process at `/{service}`.
    pub fn in_process(service: &str, app: LocalApp, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            service: service.into(),
            transport: Transport::InProcess {
                app,
                prefix: format!("/{service}"),
            },
            tokens,
        }
    }

    /// A peer at `base` (including its prefix, e.g. `http://host:8080/nomis-prisoner-api`).
    pub fn http(service: &str, base: &str, tokens: Arc<dyn TokenSource>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            service: service.into(),
            transport: Transport::Http {
                client,
                base: base.trim_end_matches('/').to_string(),
            },
            tokens,
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn request(&self, method: Method, path: impl Into<String>) -> PeerRequest<'_> {
        PeerRequest {
            client: self,
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// GET and decode a 2xx JSON body.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<T, PeerError> {
        self.request(Method::GET, path).send().await?.ok()?.json()
    }

    /// GET that treats 404 as `None`.
    pub async fn find_json<T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<Option<T>, PeerError> {
        let resp = self.request(Method::GET, path).send().await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.ok()?.json().map(Some)
    }
}

/// One request being built.
pub struct PeerRequest<'a> {
    client: &'a PeerClient,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl PeerRequest<'_> {
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = Some(serde_json::to_vec(body).unwrap_or_default());
        self
    }

    pub async fn send(self) -> Result<PeerResponse, PeerError> {
        let c = self.client;
        let token = c.tokens.bearer().await?;
        let trace = current_trace_id();
        let unreachable = |detail: String| PeerError::Unreachable {
            service: c.service.to_string(),
            detail,
        };
        let (status, body) = match &c.transport {
            Transport::InProcess { app, prefix } => {
                let router = app
                    .get()
                    .ok_or_else(|| unreachable("the estate is still starting".into()))?;
                let mut req = Request::builder()
                    .method(self.method.clone())
                    .uri(format!("{prefix}{}", self.path))
                    .header("authorization", format!("Bearer {token}"));
                if self.body.is_some() {
                    req = req.header("content-type", "application/json");
                }
                if let Some(t) = &trace {
                    req = req.header(TRACE_HEADER, t);
                }
                for (k, v) in &self.headers {
                    req = req.header(*k, v);
                }
                let req = req
                    .body(Body::from(self.body.unwrap_or_default()))
                    .map_err(|e| unreachable(e.to_string()))?;
                let resp = router
                    .oneshot(req)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                (status, body)
            }
            Transport::Http { client, base } => {
                let mut req = client
                    .request(self.method.clone(), format!("{base}{}", self.path))
                    .bearer_auth(token);
                if let Some(t) = &trace {
                    req = req.header(TRACE_HEADER, t);
                }
                for (k, v) in &self.headers {
                    req = req.header(*k, v);
                }
                if let Some(b) = self.body {
                    req = req.header("content-type", "application/json").body(b);
                }
                let resp = req.send().await.map_err(|e| unreachable(e.to_string()))?;
                let status = resp.status();
                let body = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
                (status, body)
            }
        };
        Ok(PeerResponse {
            service: c.service.clone(),
            status,
            body,
        })
    }
}

/// A peer's answer.
#[derive(Debug)]
pub struct PeerResponse {
    service: Arc<str>,
    pub status: StatusCode,
    pub body: Bytes,
}

impl PeerResponse {
    /// Ok for 2xx, otherwise a [`PeerError::Status`] carrying the peer's `ErrorResponse`.
    pub fn ok(self) -> Result<Self, PeerError> {
        if self.status.is_success() {
            return Ok(self);
        }
        let body: Option<Box<ErrorResponse>> = serde_json::from_slice(&self.body).ok();
        let message = body
            .as_ref()
            .map(|b| b.user_message.clone())
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(500)
                    .collect()
            });
        Err(PeerError::Status {
            service: self.service.to_string(),
            status: self.status,
            message,
            body,
        })
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PeerError> {
        serde_json::from_slice(&self.body).map_err(|e| PeerError::Decode {
            service: self.service.to_string(),
            detail: e.to_string(),
        })
    }
}

/// How each peer service is reached: mounted here, or at a configured URL.
#[derive(Clone)]
pub struct Peers {
    app: LocalApp,
    local: Vec<String>,
    urls: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "service {service} is needed but is neither served by this process nor configured: set {var} to its base URL (e.g. http://host:8080/{service})"
)]
pub struct MissingPeer {
    pub service: String,
    pub var: String,
}

impl Peers {
    /// `local` are the services mounted in this process; every other peer's URL comes from
    /// `TANDEM_<SERVICE>_URL`.
    pub fn new(app: LocalApp, local: &[&str]) -> Self {
        Self {
            app,
            local: local.iter().map(|s| s.to_string()).collect(),
            urls: BTreeMap::new(),
        }
    }

    pub fn with_url(mut self, service: &str, url: &str) -> Self {
        self.urls.insert(service.to_string(), url.to_string());
        self
    }

    pub fn client(
        &self,
        service: &str,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<PeerClient, MissingPeer> {
        if self.local.iter().any(|s| s == service) {
            return Ok(PeerClient::in_process(service, self.app.clone(), tokens));
        }
        let var = format!("TANDEM_{}_URL", crate::config::env_name(service));
        let url = self
            .urls
            .get(service)
            .cloned()
            .or_else(|| std::env::var(&var).ok().filter(|v| !v.is_empty()));
        match url {
            Some(url) => Ok(PeerClient::http(service, &url, tokens)),
            None => Err(MissingPeer {
                service: service.to_string(),
                var,
            }),
        }
    }
}
