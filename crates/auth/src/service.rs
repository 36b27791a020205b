//! The `/auth` service: the client-credentials token endpoint and the JWKS, shaped like
//! HMPPS Auth's (`/auth/oauth/token`, `/auth/.well-known/jwks.json`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tandem_platform::{ApiError, ErrorResponse, http::Service};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::issuer::{DEFAULT_TOKEN_TTL, Issuer, TokenSpec};
use crate::keys::Jwks;

const BASIC_SCHEME: &str = "client-basic";

/// The token request (form-urlencoded).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads the pairs itself
struct TokenRequest {
    /// Must be `client_credentials`.
    grant_type: String,
    /// Space-separated scopes to ask for (a subset of the client's); all when absent.
    scope: Option<String>,
    /// Client id, when not sent with HTTP Basic.
    client_id: Option<String>,
    /// Client secret, when not sent with HTTP Basic.
    client_secret: Option<String>,
}

/// A token, as OAuth 2 returns it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// Why a token request is refused (small, so results stay cheap to move).
enum Refusal {
    BadRequest(String),
    /// A 401 that carries the `WWW-Authenticate` challenge OAuth clients expect.
    Unauthorised(String),
    Failed(Box<ApiError>),
}

impl From<crate::error::IssuerError> for Refusal {
    fn from(e: crate::error::IssuerError) -> Self {
        Refusal::Failed(Box::new(e.into()))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::BadRequest(m) => ApiError::bad_request(m).into_response(),
            Refusal::Unauthorised(m) => {
                let mut resp = ApiError::unauthorized(m).into_response();
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tandem-auth\""),
                );
                resp
            }
            Refusal::Failed(e) => e.into_response(),
        }
    }
}

fn unauthorised(message: &str) -> Refusal {
    Refusal::Unauthorised(message.to_string())
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal::BadRequest(message.into())
}

/// The form parameters, each at most once (RFC 6749 §3.2).
fn form_params(body: &[u8]) -> Result<HashMap<String, String>, Refusal> {
    let mut params = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad_request(format!(
                "Validation failure: the parameter {k} is given more than once"
            )));
        }
    }
    Ok(params)
}

/// Client id and secret from `Authorization: Basic`, if that header is there.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        unauthorised(
            "Bad client credentials: the Authorization header must be 'Basic base64(client_id:client_secret)'",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(malformed());
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded inside the Basic credentials.
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Issues a token for a registered client (client-credentials grant).
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 400, description = "Missing or unsupported grant_type, or a scope the client does not have", body = ErrorResponse),
        (status = 401, description = "Unknown client or wrong secret", body = ErrorResponse),
    ),
    security((), ("client-basic" = [])),
)]
async fn token(State(issuer): State<Arc<Issuer>>, headers: HeaderMap, body: Bytes) -> Response {
    match issue(&issuer, &headers, &body) {
        Ok(t) => {
            let mut resp = axum::Json(t).into_response();
            // RFC 6749 §5.1: tokens must not be cached.
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(refusal) => refusal.into_response(),
    }
}

fn issue(issuer: &Issuer, headers: &HeaderMap, body: &[u8]) -> Result<TokenResponse, Refusal> {
    let params = form_params(body)?;
    match params.get("grant_type").map(String::as_str) {
        None | Some("") => {
            return Err(bad_request(
                "Validation failure: grant_type is required; send grant_type=client_credentials as a form field",
            ));
        }
        Some("client_credentials") => {}
        Some(other) => {
            return Err(bad_request(format!(
                "Unsupported grant_type '{other}': only client_credentials is supported"
            )));
        }
    }

    let form_id = params.get("client_id").filter(|s| !s.is_empty());
    let (client_id, secret) = match basic_credentials(headers)? {
        Some((id, secret)) => {
            if form_id.is_some_and(|f| *f != id) {
                return Err(bad_request(
                    "Validation failure: client_id in the form differs from the one in the Authorization header",
                ));
            }
            (id, secret)
        }
        None => match (form_id, params.get("client_secret")) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            _ => {
                return Err(unauthorised(
                    "Client authentication is required: send HTTP Basic credentials (client id and secret) or client_id and client_secret form fields",
                ));
            }
        },
    };
    let client = issuer
        .authenticate_client(&client_id, &secret)?
        .ok_or_else(|| unauthorised("Bad client credentials: unknown client id or wrong secret"))?;

    let requested: Vec<String> = params
        .get("scope")
        .map(|s| {
            s.split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let scopes = if requested.is_empty() {
        client.scopes.clone()
    } else {
        if let Some(bad) = requested.iter().find(|s| !client.scopes.contains(s)) {
            return Err(bad_request(format!(
                "Invalid scope '{bad}': this client may ask for {}",
                if client.scopes.is_empty() {
                    "no scopes".to_string()
                } else {
                    client.scopes.join(", ")
                }
            )));
        }
        requested
    };

    let spec = TokenSpec::client(client.client_id.clone(), client.authorities.clone())
        .with_scopes(scopes.clone())
        .with_ttl(DEFAULT_TOKEN_TTL);
    let access_token = issuer.mint(&spec)?;
    tracing::debug!(client_id = %client.client_id, "token issued");
    Ok(TokenResponse {
        access_token,
        token_type: "bearer".to_string(),
        expires_in: spec.ttl.as_secs(),
        scope: scopes.join(" "),
    })
}

/// The public keys tokens are signed with (no authentication).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The JWKS document", body = Jwks)),
    security(()),
)]
async fn jwks(State(issuer): State<Arc<Issuer>>) -> axum::Json<Jwks> {
    axum::Json(issuer.jwks())
}

/// The `/auth` service.
pub fn service(issuer: Arc<Issuer>) -> Service {
    let mut router = OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(jwks))
        .with_state(issuer);
    {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = router
            .get_openapi_mut()
            .components
            .get_or_insert_with(Default::default);
        components.add_security_scheme(
            BASIC_SCHEME,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
    Service::new(
        tandem_platform::config::services::AUTH,
        "tandem auth (token issuer)",
        router,
    )
}
