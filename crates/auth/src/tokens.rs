//! Token sources for service-to-service calls: each service presents its own
//! client-credentials token, cached until shortly before it expires.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use tandem_platform::client::{PeerError, TokenSource};

use crate::issuer::{Issuer, TokenSpec};

/// A token is renewed this long before it expires, so one in flight does not lapse.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

impl Cached {
    fn new(token: String, ttl: Duration) -> Self {
        // Short-lived tokens are renewed at half-life rather than immediately.
        let early = if ttl > REFRESH_MARGIN * 2 {
            ttl - REFRESH_MARGIN
        } else {
            ttl / 2
        };
        Self {
            token,
            renew_at: Instant::now() + early,
        }
    }
    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// Mints tokens straight from an issuer in this process (or one sharing its data dir).
pub struct LocalTokenSource {
    issuer: Arc<Issuer>,
    spec: TokenSpec,
    cached: Mutex<Option<Cached>>,
}

impl LocalTokenSource {
    /// Tokens for `client_id` carrying `authorities`, scopes read+write.
    pub fn new(
        issuer: Arc<Issuer>,
        client_id: impl Into<String>,
        authorities: Vec<String>,
    ) -> Self {
        Self::with_spec(issuer, TokenSpec::client(client_id, authorities))
    }

    pub fn with_spec(issuer: Arc<Issuer>, spec: TokenSpec) -> Self {
        Self {
            issuer,
            spec,
            cached: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for LocalTokenSource {
    async fn bearer(&self) -> Result<String, PeerError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref().filter(|c| c.fresh()) {
            return Ok(c.token.clone());
        }
        let token = self
            .issuer
            .mint(&self.spec)
            .map_err(|e| PeerError::Token(e.to_string()))?;
        *cached = Some(Cached::new(token.clone(), self.spec.ttl));
        Ok(token)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Obtains tokens from an OAuth token endpoint with the client-credentials grant
/// (HTTP Basic client authentication), as services in other processes do.
pub struct ClientCredentialsTokenSource {
    token_url: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl ClientCredentialsTokenSource {
    /// `token_url` is the full endpoint, e.g. `http://host:8080/auth/oauth/token`.
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks for these scopes rather than all of the client's.
    pub fn with_scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    async fn fetch(&self) -> Result<Cached, PeerError> {
        let fail = |detail: String| PeerError::Token(format!("{}: {detail}", self.token_url));
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !self.scopes.is_empty() {
                form.append_pair("scope", &self.scopes.join(" "));
            }
            form.finish()
        };
        // RFC 6749 §2.3.1: id and secret are form-encoded before going into Basic.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&self.client_id),
            enc(&self.client_secret)
        ));
        let resp = self
            .http
            .post(&self.token_url)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<tandem_platform::ErrorResponse>(&body)
                .map(|e| e.user_message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            return Err(fail(format!("answered {status}: {message}")));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("unreadable token response: {e}")))?;
        let ttl = Duration::from_secs(answer.expires_in.unwrap_or(300));
        Ok(Cached::new(answer.access_token, ttl))
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientCredentialsTokenSource {
    async fn bearer(&self) -> Result<String, PeerError> {
        // Holding the lock across the fetch makes concurrent callers share one request.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.fresh()) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_before_expiry() {
        let c = Cached::new("t".into(), Duration::from_secs(1200));
        let left = c.renew_at - Instant::now();
        assert!(left <= Duration::from_secs(1140) && left > Duration::from_secs(1130));
        let short = Cached::new("t".into(), Duration::from_secs(60));
        assert!(short.renew_at - Instant::now() <= Duration::from_secs(30));
        assert!(!Cached::new("t".into(), Duration::ZERO).fresh());
    }

    #[tokio::test]
    async fn local_source_caches() {
        let issuer = Arc::new(Issuer::ephemeral().unwrap());
        let src = LocalTokenSource::new(issuer, "svc", vec!["ROLE_A".into()]);
        let a = src.bearer().await.unwrap();
        let b = src.bearer().await.unwrap();
        assert_eq!(a, b);
    }
}
