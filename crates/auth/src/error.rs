//! Errors of the issuing side (keys, client registry, JWKS fetch). Token *validation*
//! failures are [`crate::AuthError`], which is always a 401.

use std::path::PathBuf;

use tandem_platform::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the signing key in {path} cannot be used ({detail}); move the file away to have a new key made (tokens signed with the old key stop working)"
    )]
    BadKey { path: PathBuf, detail: String },
    #[error("the client registry {path} cannot be read ({detail}); fix or remove the file")]
    BadClients { path: PathBuf, detail: String },
    #[error("{0}")]
    InvalidClient(String),
    #[error("cryptography failure: {0}")]
    Crypto(String),
    #[error("cannot fetch the JWKS from {url}: {detail}")]
    JwksFetch { url: String, detail: String },
    #[error("the JWKS document is not usable: {0}")]
    BadJwks(String),
}

impl IssuerError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<IssuerError> for ApiError {
    fn from(e: IssuerError) -> Self {
        match e {
            IssuerError::JwksFetch { .. } => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}
