//! Registered OAuth clients (`<data_dir>/auth/clients.json`): id, a SHA-256 of the
//! secret (never the secret itself), authorities and scopes.
//!
//! The registry is read at start and re-read when an unknown client or a wrong secret is
//! presented, so a client registered by another process (`ensure_client` in a
//! multi-process setup) is honoured without a restart. Updates happen under a lock file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::IssuerError;
use crate::files;

/// A client allowed to obtain tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredClient {
    pub client_id: String,
    /// `sha256:<hex>` of the client secret.
    pub client_secret_hash: String,
    /// Roles put in the client's tokens.
    #[serde(default)]
    pub authorities: Vec<String>,
    /// Scopes the client may ask for (all of them when it asks for none).
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientsFile {
    clients: Vec<RegisteredClient>,
}

/// `sha256:<hex>` of a secret. Secrets are random and long, so a fast hash is enough.
pub(crate) fn hash_secret(secret: &str) -> String {
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Constant-time check of a presented secret against a stored hash.
pub(crate) fn secret_matches(stored_hash: &str, secret: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(
        stored_hash.as_bytes(),
        hash_secret(secret).as_bytes(),
    )
    .is_ok()
}

/// 32 random bytes, base64url: safe in Basic auth, URLs and shells.
pub(crate) fn random_secret() -> Result<String, IssuerError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|e| IssuerError::Crypto(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Client ids travel in HTTP Basic credentials, so no `:`, spaces or control characters.
pub(crate) fn check_client_id(id: &str) -> Result<(), IssuerError> {
    if id.is_empty()
        || id.len() > 200
        || id
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(IssuerError::InvalidClient(format!(
            "client id '{id}' is not usable: it must be 1-200 characters without ':', spaces or control characters"
        )));
    }
    Ok(())
}

pub(crate) struct ClientRegistry {
    /// `None` for an in-memory issuer (tests).
    path: Option<PathBuf>,
    clients: Mutex<Vec<RegisteredClient>>,
}

fn load(path: &Path) -> Result<Vec<RegisteredClient>, IssuerError> {
    match files::read_optional(path)? {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice::<ClientsFile>(&bytes)
            .map(|f| f.clients)
            .map_err(|e| IssuerError::BadClients {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }),
    }
}

impl ClientRegistry {
    pub(crate) fn in_memory() -> Self {
        Self {
            path: None,
            clients: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn open(path: PathBuf) -> Result<Self, IssuerError> {
        let clients = load(&path)?;
        Ok(Self {
            path: Some(path),
            clients: Mutex::new(clients),
        })
    }

    fn snapshot(&self) -> Vec<RegisteredClient> {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, clients: Vec<RegisteredClient>) {
        *self.clients.lock().unwrap_or_else(|p| p.into_inner()) = clients;
    }

    pub(crate) fn find(&self, client_id: &str) -> Option<RegisteredClient> {
        self.snapshot()
            .into_iter()
            .find(|c| c.client_id == client_id)
    }

    /// The client when `secret` is its secret; re-reads the file once on a miss.
    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<RegisteredClient>, IssuerError> {
        let check = |c: Option<RegisteredClient>| {
            c.filter(|c| secret_matches(&c.client_secret_hash, secret))
        };
        if let Some(c) = check(self.find(client_id)) {
            return Ok(Some(c));
        }
        if let Some(path) = &self.path {
            self.set(load(path)?);
            return Ok(check(self.find(client_id)));
        }
        Ok(None)
    }

    /// Runs `change` on the freshest list (under the lock file when file-backed) and
    /// saves the result if it differs. Returns what `change` returned.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<RegisteredClient>) -> Result<T, IssuerError>,
    ) -> Result<T, IssuerError> {
        match &self.path {
            None => {
                let mut guard = self.clients.lock().unwrap_or_else(|p| p.into_inner());
                change(&mut guard)
            }
            Some(path) => {
                let _lock = files::FileLock::acquire(path)?;
                let before = load(path)?;
                let mut clients = before.clone();
                let out = change(&mut clients)?;
                if clients != before {
                    let json = serde_json::to_vec_pretty(&ClientsFile {
                        clients: clients.clone(),
                    })
                    .map_err(|e| IssuerError::BadClients {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                    files::replace_private(path, &json)?;
                }
                self.set(clients);
                Ok(out)
            }
        }
    }
}

/// Inserts or replaces a client by id.
pub(crate) fn upsert(clients: &mut Vec<RegisteredClient>, client: RegisteredClient) {
    match clients.iter_mut().find(|c| c.client_id == client.client_id) {
        Some(existing) => *existing = client,
        None => clients.push(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_matches() {
        let h = hash_secret("s3cret");
        assert!(h.starts_with("sha256:"));
        assert_eq!(h.len(), 7 + 64);
        assert!(secret_matches(&h, "s3cret"));
        assert!(!secret_matches(&h, "s3cret "));
        assert!(!secret_matches(&h, ""));
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(check_client_id("nomis-prisoner-api").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a:b").is_err());
        assert!(check_client_id("a b").is_err());
    }

    #[test]
    fn file_registry_sees_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.json");
        let a = ClientRegistry::open(path.clone()).unwrap();
        let b = ClientRegistry::open(path.clone()).unwrap();
        b.update(|cs| {
            upsert(
                cs,
                RegisteredClient {
                    client_id: "x".into(),
                    client_secret_hash: hash_secret("pw"),
                    authorities: vec!["ROLE_A".into()],
                    scopes: vec!["read".into()],
                },
            );
            Ok(())
        })
        .unwrap();
        // `a` loaded before `b` wrote; it finds the client by re-reading.
        assert!(a.find("x").is_none());
        assert_eq!(
            a.authenticate("x", "pw").unwrap().unwrap().authorities,
            vec!["ROLE_A"]
        );
        assert!(a.authenticate("x", "nope").unwrap().is_none());
        // an update from `a` keeps `b`'s client
        a.update(|cs| {
            upsert(
                cs,
                RegisteredClient {
                    client_id: "y".into(),
                    client_secret_hash: hash_secret("pw2"),
                    authorities: vec![],
                    scopes: vec![],
                },
            );
            Ok(())
        })
        .unwrap();
        let again = ClientRegistry::open(path).unwrap();
        assert!(again.find("x").is_some() && again.find("y").is_some());
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.json");
        std::fs::write(&path, b"{not json").unwrap();
        let e = ClientRegistry::open(path).err().unwrap().to_string();
        assert!(e.contains("clients.json"), "{e}");
    }
}
