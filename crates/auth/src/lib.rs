//! Authentication and authorisation: HMPPS-style RS256 JWTs.
//!
//! - [`Authorised<R>`] is the extractor every protected handler takes; `R` names the roles
//!   it accepts (declared with [`role!`]) and whether it needs `SCOPE_write`. Missing,
//!   invalid or expired token → 401; token without the role (or scope) → 403.
//! - [`TokenValidator`] checks signatures against the issuer's keys; the composition puts
//!   one in the router's extensions with [`validator_layer`]. [`LocalValidator`] uses the
//!   issuer's key directly; [`JwksValidator`] a JWKS URL (services in other processes).
//! - [`Issuer`] holds the RS256 key and the registered clients under `<data_dir>/auth/`;
//!   [`service`] is the `/auth` service (client-credentials token endpoint and JWKS).
//! - [`LocalTokenSource`] and [`ClientCredentialsTokenSource`] supply the tokens a
//!   service presents to its peers.
//! - [`roles`] spells every role of the estate once.

mod cli;
mod clients;
mod error;
mod files;
mod issuer;
mod keys;
pub mod roles;
mod service;
mod tokens;
mod validate;

pub use cli::{CLI_CLIENT_ID, CLI_TOKEN_TTL, cli_token, normalise_roles};
pub use clients::RegisteredClient;
pub use error::IssuerError;
pub use issuer::{
    DEFAULT_ISSUER, DEFAULT_TOKEN_TTL, DEV_CLIENT_ID, Issuer, LEEWAY_SECONDS, TokenSpec,
    default_scopes,
};
pub use keys::{Jwk, Jwks};
pub use service::{TokenResponse, service};
pub use tokens::{ClientCredentialsTokenSource, LocalTokenSource, REFRESH_MARGIN};
pub use validate::{JwksValidator, LocalValidator};

use std::marker::PhantomData;
use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::{Deserialize, Serialize};
use tandem_platform::ApiError;

/// The claims HMPPS Auth puts in a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub authorities: Vec<String>,
    /// HMPPS tokens carry a list; a space-separated string (plain OAuth 2) is accepted too.
    #[serde(default, deserialize_with = "scope_list")]
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

fn scope_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scope {
        List(Vec<String>),
        Words(String),
    }
    Ok(match Scope::deserialize(d)? {
        Scope::List(l) => l,
        Scope::Words(w) => w.split_whitespace().map(str::to_string).collect(),
    })
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub claims: Claims,
}

impl Principal {
    /// The user name when the token is a user's, else the client id (as the HMPPS
    /// services record "who did it").
    pub fn username(&self) -> &str {
        self.claims
            .user_name
            .as_deref()
            .or(self.claims.client_id.as_deref())
            .unwrap_or(&self.claims.sub)
    }
    /// The user name only when the token carries one.
    pub fn user_name(&self) -> Option<&str> {
        self.claims.user_name.as_deref()
    }
    pub fn has_authority(&self, authority: &str) -> bool {
        self.claims.authorities.iter().any(|a| a == authority)
    }
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.iter().any(|s| s == scope)
    }
}

/// What an endpoint requires: any one of `ROLES` and, when `WRITE`, the `write` scope.
pub trait RoleRequirement: Send + Sync + 'static {
    const ROLES: &'static [&'static str];
    const WRITE: bool;
}

/// Declares a role requirement type:
/// `role!(pub SyncRw, ["ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW"], write);`
#[macro_export]
macro_rules! role {
    ($vis:vis $name:ident, [$($role:expr),+ $(,)?], write) => {
        $vis struct $name;
        impl $crate::RoleRequirement for $name {
            const ROLES: &'static [&'static str] = &[$($role),+];
            const WRITE: bool = true;
        }
    };
    ($vis:vis $name:ident, [$($role:expr),+ $(,)?]) => {
        $vis struct $name;
        impl $crate::RoleRequirement for $name {
            const ROLES: &'static [&'static str] = &[$($role),+];
            const WRITE: bool = false;
        }
    };
}

/// A caller who holds one of `R`'s roles (and the write scope when `R` needs it).
pub struct Authorised<R: RoleRequirement> {
    pub principal: Principal,
    _requirement: PhantomData<R>,
}

impl<R: RoleRequirement> std::ops::Deref for Authorised<R> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

/// Checks token signatures and claims. Implemented by the issuer's key set (local or
/// fetched from a JWKS URL).
pub trait TokenValidator: Send + Sync {
    fn validate(&self, token: &str) -> Result<Claims, AuthError>;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("no bearer token: send an Authorization: Bearer <token> header")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::unauthorized(format!("Unauthorised: {e}"))
    }
}

/// The validator as the router carries it.
#[derive(Clone)]
pub struct Validator(pub Arc<dyn TokenValidator>);

/// The layer that makes `validator` available to every [`Authorised`] extractor.
pub fn validator_layer(validator: Arc<dyn TokenValidator>) -> axum::Extension<Validator> {
    axum::Extension(Validator(validator))
}

/// Reads and validates the bearer token of a request.
pub fn authenticate(parts: &Parts) -> Result<Principal, ApiError> {
    let validator = parts
        .extensions
        .get::<Validator>()
        .ok_or_else(|| ApiError::internal("no token validator configured on this router"))?;
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?;
    let claims = validator.0.validate(token.trim())?;
    Ok(Principal { claims })
}

/// Checks a principal against a requirement: 403 naming what is missing.
pub fn authorise<R: RoleRequirement>(principal: &Principal) -> Result<(), ApiError> {
    if !R::ROLES.iter().any(|r| principal.has_authority(r)) {
        return Err(ApiError::forbidden(format!(
            "Access is denied: this endpoint requires one of the roles {}",
            R::ROLES.join(", ")
        )));
    }
    if R::WRITE && !principal.has_scope("write") {
        return Err(ApiError::forbidden(
            "Access is denied: this endpoint changes data and requires a token with the write scope",
        ));
    }
    Ok(())
}

impl<S: Send + Sync, R: RoleRequirement> FromRequestParts<S> for Authorised<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts)?;
        authorise::<R>(&principal)?;
        Ok(Self {
            principal,
            _requirement: PhantomData,
        })
    }
}
