//! Token validators: [`LocalValidator`] for services in the issuer's process (or sharing
//! its data directory), [`JwksValidator`] for services elsewhere, which know the issuer
//! only by its JWKS URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};

use crate::error::IssuerError;
use crate::issuer::{Issuer, validation};
use crate::keys::Jwks;
use crate::{AuthError, Claims, TokenValidator};

/// Turns jsonwebtoken's verdict into ours: expired is told apart from invalid, and the
/// message says what is wrong in terms a caller can act on.
fn auth_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidSignature => {
            AuthError::Invalid("the signature does not match the issuer's key".into())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::Invalid("only RS256-signed tokens are accepted".into())
        }
        ErrorKind::InvalidIssuer => {
            AuthError::Invalid("the token was issued by another issuer (iss)".into())
        }
        ErrorKind::MissingRequiredClaim(c) => {
            AuthError::Invalid(format!("the {c} claim is missing"))
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            AuthError::Invalid("it is not a JWT (three base64url parts separated by dots)".into())
        }
        ErrorKind::Json(err) => AuthError::Invalid(format!("malformed header or claims: {err}")),
        _ => AuthError::Invalid(e.to_string()),
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, AuthError> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|d| d.claims)
        .map_err(auth_error)
}

/// Validates tokens against the issuer's own public key.
pub struct LocalValidator {
    issuer: Arc<Issuer>,
    validation: Validation,
}

impl LocalValidator {
    pub fn new(issuer: Arc<Issuer>) -> Self {
        let validation = validation(issuer.name());
        Self { issuer, validation }
    }
}

impl TokenValidator for LocalValidator {
    fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        decode(token, self.issuer.decoding_key(), &self.validation)
    }
}

/// Don't hammer the issuer when tokens with unknown kids keep arriving.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

struct JwksState {
    url: Option<String>,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    validation: Validation,
}

/// Validates tokens against keys published as JWKS, kept by kid. `validate` stays
/// synchronous: a token with an unknown kid is rejected and, at most every 30 s, a
/// background re-fetch is started so a rotated key is picked up.
#[derive(Clone)]
pub struct JwksValidator {
    state: Arc<JwksState>,
    min_refetch_interval: Duration,
}

/// The usable keys of a JWKS document: RSA, for signing, RS256 (or unspecified).
fn keys_from(jwks: &Jwks) -> Result<HashMap<String, DecodingKey>, IssuerError> {
    let mut keys = HashMap::new();
    for k in &jwks.keys {
        let usable = k.kty == "RSA"
            && k.use_.as_deref().is_none_or(|u| u == "sig")
            && k.alg.as_deref().is_none_or(|a| a == "RS256");
        if !usable {
            continue;
        }
        let key = DecodingKey::from_rsa_components(&k.n, &k.e)
            .map_err(|e| IssuerError::BadJwks(format!("key {}: {e}", k.kid)))?;
        keys.insert(k.kid.clone(), key);
    }
    if keys.is_empty() {
        return Err(IssuerError::BadJwks("it has no RS256 signing key".into()));
    }
    Ok(keys)
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<Jwks, IssuerError> {
    let fail = |detail: String| IssuerError::JwksFetch {
        url: url.to_string(),
        detail,
    };
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("answered {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| IssuerError::BadJwks(e.to_string()))
}

impl JwksValidator {
    /// Fetches `jwks_url` once and validates tokens whose `iss` is `issuer`.
    pub async fn fetch(jwks_url: &str, issuer: &str) -> Result<Self, IssuerError> {
        let http = http_client();
        let jwks = fetch_jwks(&http, jwks_url).await?;
        let keys = keys_from(&jwks)?;
        Ok(Self {
            state: Arc::new(JwksState {
                url: Some(jwks_url.to_string()),
                http,
                keys: RwLock::new(keys),
                last_fetch: Mutex::new(Some(Instant::now())),
                validation: validation(issuer),
            }),
            min_refetch_interval: MIN_REFETCH_INTERVAL,
        })
    }

    /// How soon after a fetch an unknown kid may trigger another (default 30 s).
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// A validator over a JWKS document already in hand (no URL, never re-fetched).
    pub fn from_jwks(jwks: &Jwks, issuer: &str) -> Result<Self, IssuerError> {
        Ok(Self {
            state: Arc::new(JwksState {
                url: None,
                http: http_client(),
                keys: RwLock::new(keys_from(jwks)?),
                last_fetch: Mutex::new(None),
                validation: validation(issuer),
            }),
            min_refetch_interval: MIN_REFETCH_INTERVAL,
        })
    }

    /// Re-fetches the JWKS (no-op without a URL). Returns the number of keys now held.
    pub async fn refresh(&self) -> Result<usize, IssuerError> {
        let Some(url) = &self.state.url else {
            return Ok(self.kids().len());
        };
        *self
            .state
            .last_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let keys = keys_from(&fetch_jwks(&self.state.http, url).await?)?;
        let n = keys.len();
        *self.state.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(n)
    }

    /// The kids currently held.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .state
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        kids.sort();
        kids
    }

    /// Starts a background refresh when a runtime is at hand and none ran recently.
    fn refresh_soon(&self) {
        if self.state.url.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut last = self
                .state
                .last_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.min_refetch_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let this = self.clone();
        runtime.spawn(async move {
            if let Err(e) = this.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed");
            }
        });
    }
}

impl TokenValidator for JwksValidator {
    fn validate(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(auth_error)?;
        let key = {
            let keys = self.state.keys.read().unwrap_or_else(|p| p.into_inner());
            match &header.kid {
                Some(kid) => keys.get(kid).cloned(),
                // A token without a kid is acceptable only when there is one key to try.
                None if keys.len() == 1 => keys.values().next().cloned(),
                None => {
                    return Err(AuthError::Invalid(
                        "the token header has no kid, and the issuer has several keys".into(),
                    ));
                }
            }
        };
        match key {
            Some(key) => decode(token, &key, &self.state.validation),
            None => {
                self.refresh_soon();
                Err(AuthError::Invalid(format!(
                    "it is signed with a key the issuer does not publish (kid {})",
                    header.kid.unwrap_or_default()
                )))
            }
        }
    }
}
