//! The token issuer: one RS256 key kept in `<data_dir>/auth/` (so tokens survive restarts
//! and `tandem token` mints tokens the running instance accepts), the client registry,
//! and the dev client.
//!
//! Files under `<data_dir>/auth/` (all 0600, directory 0700):
//! - `signing-key.pem`: the RSA 2048 private key, PKCS#8 PEM; its kid is its thumbprint.
//! - `clients.json`: registered clients (secrets stored as SHA-256 only).
//! - `dev-client.txt`: the dev client's id and plaintext secret, for `tandem up` to print.
//! - `client-secret.key`: the key from which [`Issuer::ensure_client`] derives service
//!   clients' secrets, so every process sharing the directory derives the same secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};

use crate::clients::{self, ClientRegistry, RegisteredClient};
use crate::error::IssuerError;
use crate::files;
use crate::keys::{Jwks, SigningKey};
use crate::{Claims, roles};

/// The `iss` claim unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "tandem-auth";
/// The client every dev instance has, holding every role.
pub const DEV_CLIENT_ID: &str = "tandem-dev";
/// Lifetime of client-credentials tokens (HMPPS Auth issues 20-minute system tokens).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(20 * 60);
/// Clock skew tolerated on `exp`.
pub const LEEWAY_SECONDS: u64 = 30;

const KEY_FILE: &str = "signing-key.pem";
const CLIENTS_FILE: &str = "clients.json";
const DEV_CLIENT_FILE: &str = "dev-client.txt";
const CLIENT_SECRET_KEY_FILE: &str = "client-secret.key";

/// The scopes a client gets when nothing narrower is asked for.
pub fn default_scopes() -> Vec<String> {
    vec!["read".to_string(), "write".to_string()]
}

/// What to put in a token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    /// The client the token is for (`client_id`; also `sub` unless there is a user).
    pub client_id: String,
    /// A user on whose behalf the client acts (`user_name` and `sub`).
    pub user_name: Option<String>,
    pub authorities: Vec<String>,
    pub scopes: Vec<String>,
    pub ttl: Duration,
}

impl TokenSpec {
    /// A system token for `client_id` with `authorities`, scopes read+write, default TTL.
    pub fn client(client_id: impl Into<String>, authorities: Vec<String>) -> Self {
        Self {
            client_id: client_id.into(),
            user_name: None,
            authorities,
            scopes: default_scopes(),
            ttl: DEFAULT_TOKEN_TTL,
        }
    }
    pub fn with_user(mut self, user_name: impl Into<String>) -> Self {
        self.user_name = Some(user_name.into());
        self
    }
    pub fn with_scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

/// Signs tokens and knows the registered clients.
pub struct Issuer {
    name: String,
    dir: Option<PathBuf>,
    key: SigningKey,
    clients: ClientRegistry,
    client_secret_key: hmac::Key,
    dev_secret: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("kid", &self.key.jwk.kid)
            .finish_non_exhaustive()
    }
}

/// Loads `path` or, when absent, creates it from `make()`; when two processes race, both
/// end up with the winner's file.
fn load_or_create_file(
    path: &Path,
    make: impl FnOnce() -> Result<Vec<u8>, IssuerError>,
) -> Result<Vec<u8>, IssuerError> {
    if let Some(bytes) = files::read_optional(path)? {
        return Ok(bytes);
    }
    let fresh = make()?;
    if files::create_private_once(path, &fresh)? {
        return Ok(fresh);
    }
    files::read_optional(path)?.ok_or_else(|| {
        IssuerError::io(
            "read",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

fn dev_client_record(secret: &str) -> RegisteredClient {
    RegisteredClient {
        client_id: DEV_CLIENT_ID.to_string(),
        client_secret_hash: clients::hash_secret(secret),
        authorities: roles::ALL_ROLES.iter().map(|r| r.to_string()).collect(),
        scopes: default_scopes(),
    }
}

fn parse_dev_client_file(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("client_secret="))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Issuer {
    /// Loads the issuer whose files are in `<data_dir>/auth/`, creating the key, the
    /// registry and the dev client on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IssuerError> {
        let dir = data_dir.join("auth");
        files::ensure_private_dir(&dir)?;

        let key_path = dir.join(KEY_FILE);
        let pem = load_or_create_file(&key_path, || {
            crate::keys::generate_pem()
                .map(String::into_bytes)
                .map_err(IssuerError::Crypto)
        })?;
        let pem = String::from_utf8(pem).map_err(|_| IssuerError::BadKey {
            path: key_path.clone(),
            detail: "not a text file".into(),
        })?;
        let key = SigningKey::from_pem(&pem).map_err(|detail| IssuerError::BadKey {
            path: key_path.clone(),
            detail,
        })?;

        let hmac_path = dir.join(CLIENT_SECRET_KEY_FILE);
        let hmac_bytes = load_or_create_file(&hmac_path, || {
            clients::random_secret().map(String::into_bytes)
        })?;
        let client_secret_key = hmac::Key::new(hmac::HMAC_SHA256, &hmac_bytes);

        let clients = ClientRegistry::open(dir.join(CLIENTS_FILE))?;
        let dev_path = dir.join(DEV_CLIENT_FILE);
        let dev_secret = clients.update(|list| {
            // The dev client is good if its secret file and its registry entry agree;
            // otherwise (first start, or either was removed) it gets a new secret.
            let existing = files::read_optional(&dev_path)?
                .and_then(|b| parse_dev_client_file(&String::from_utf8_lossy(&b)));
            let registered = list.iter().find(|c| c.client_id == DEV_CLIENT_ID);
            if let (Some(secret), Some(c)) = (&existing, registered)
                && clients::secret_matches(&c.client_secret_hash, secret)
            {
                return Ok(secret.clone());
            }
            let secret = clients::random_secret()?;
            let text = format!(
                "# The dev client of this tandem instance (client credentials grant at /auth/oauth/token).\nclient_id={DEV_CLIENT_ID}\nclient_secret={secret}\n"
            );
            files::replace_private(&dev_path, text.as_bytes())?;
            clients::upsert(list, dev_client_record(&secret));
            Ok(secret)
        })?;

        tracing::debug!(dir = %dir.display(), kid = %key.jwk.kid, "token issuer ready");
        Ok(Self {
            name: DEFAULT_ISSUER.to_string(),
            dir: Some(dir),
            key,
            clients,
            client_secret_key,
            dev_secret,
        })
    }

    /// An issuer with a fresh key and clients held in memory only (tests). It has the
    /// dev client too.
    pub fn ephemeral() -> Result<Self, IssuerError> {
        let pem = crate::keys::generate_pem().map_err(IssuerError::Crypto)?;
        let key = SigningKey::from_pem(&pem).map_err(IssuerError::Crypto)?;
        let hmac_bytes = clients::random_secret()?;
        let dev_secret = clients::random_secret()?;
        let clients = ClientRegistry::in_memory();
        clients.update(|list| {
            clients::upsert(list, dev_client_record(&dev_secret));
            Ok(())
        })?;
        Ok(Self {
            name: DEFAULT_ISSUER.to_string(),
            dir: None,
            key,
            clients,
            client_secret_key: hmac::Key::new(hmac::HMAC_SHA256, hmac_bytes.as_bytes()),
            dev_secret,
        })
    }

    /// Uses `name` as the `iss` claim (e.g. the public URL of `/auth`). Validators must
    /// be given the same name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The `iss` claim this issuer writes.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the signing key (the `kid` in token headers and the JWKS).
    pub fn kid(&self) -> &str {
        &self.key.jwk.kid
    }

    /// `<data_dir>/auth`, unless in memory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The dev client's id and plaintext secret (it holds every role, scopes read+write).
    pub fn dev_client(&self) -> Result<(String, String), IssuerError> {
        Ok((DEV_CLIENT_ID.to_string(), self.dev_secret.clone()))
    }

    /// Makes a token as `spec` says.
    pub fn mint(&self, spec: &TokenSpec) -> Result<String, IssuerError> {
        let now = tandem_platform::time::now().timestamp();
        let ttl = i64::try_from(spec.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: spec
                .user_name
                .clone()
                .unwrap_or_else(|| spec.client_id.clone()),
            authorities: spec.authorities.clone(),
            scope: spec.scopes.clone(),
            client_id: Some(spec.client_id.clone()),
            user_name: spec.user_name.clone(),
            iss: self.name.clone(),
            iat: now,
            exp: now.saturating_add(ttl),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims with this issuer's key. For tests that need unusual tokens
    /// (expired, another `iss`); everything else uses [`Issuer::mint`].
    pub fn sign(&self, claims: &Claims) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key.encoding)
            .map_err(|e| IssuerError::Crypto(format!("signing failed: {e}")))
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.key.jwk.clone()],
        }
    }

    /// The client with this id and secret, if registered.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<RegisteredClient>, IssuerError> {
        self.clients.authenticate(client_id, secret)
    }

    /// The registered client with this id.
    pub fn client(&self, client_id: &str) -> Option<RegisteredClient> {
        self.clients.find(client_id)
    }

    /// Registers (or updates) a service client with `authorities` and scopes read+write,
    /// and returns its secret. The secret is derived from `client-secret.key`, so every
    /// call, from any process sharing the data directory, returns the same secret.
    pub fn ensure_client<S: AsRef<str>>(
        &self,
        client_id: &str,
        authorities: &[S],
    ) -> Result<String, IssuerError> {
        clients::check_client_id(client_id)?;
        if client_id == DEV_CLIENT_ID {
            return Err(IssuerError::InvalidClient(format!(
                "client id '{DEV_CLIENT_ID}' is reserved for the dev client"
            )));
        }
        let tag = hmac::sign(
            &self.client_secret_key,
            format!("client:{client_id}").as_bytes(),
        );
        let secret = URL_SAFE_NO_PAD.encode(tag.as_ref());
        let record = RegisteredClient {
            client_id: client_id.to_string(),
            client_secret_hash: clients::hash_secret(&secret),
            authorities: authorities.iter().map(|a| a.as_ref().to_string()).collect(),
            scopes: default_scopes(),
        };
        if self.clients.find(client_id).as_ref() != Some(&record) {
            self.clients.update(|list| {
                clients::upsert(list, record);
                Ok(())
            })?;
        }
        Ok(secret)
    }

    pub(crate) fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.key.decoding
    }
}

/// The validation every validator applies: RS256 only, `exp` with a small leeway, `iss`.
pub(crate) fn validation(issuer: &str) -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = LEEWAY_SECONDS;
    v.validate_aud = false;
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Issuer::load_or_create(dir.path()).unwrap();
        let b = Issuer::load_or_create(dir.path()).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.dev_client().unwrap(), b.dev_client().unwrap());
        let auth = dir.path().join("auth");
        for f in [
            KEY_FILE,
            CLIENTS_FILE,
            DEV_CLIENT_FILE,
            CLIENT_SECRET_KEY_FILE,
        ] {
            assert!(auth.join(f).exists(), "{f}");
        }
        let clients = std::fs::read_to_string(auth.join(CLIENTS_FILE)).unwrap();
        let (_, secret) = a.dev_client().unwrap();
        assert!(
            !clients.contains(&secret),
            "the registry must not hold plaintext secrets"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&auth), 0o700);
            assert_eq!(mode(&auth.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&auth.join(DEV_CLIENT_FILE)), 0o600);
        }
    }

    #[test]
    fn dev_client_is_renewed_when_its_file_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let a = Issuer::load_or_create(dir.path()).unwrap();
        let (_, old) = a.dev_client().unwrap();
        std::fs::remove_file(dir.path().join("auth").join(DEV_CLIENT_FILE)).unwrap();
        let b = Issuer::load_or_create(dir.path()).unwrap();
        let (id, new) = b.dev_client().unwrap();
        assert_eq!(id, DEV_CLIENT_ID);
        assert_ne!(old, new);
        assert!(
            b.authenticate_client(DEV_CLIENT_ID, &new)
                .unwrap()
                .is_some()
        );
        assert!(
            b.authenticate_client(DEV_CLIENT_ID, &old)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn corrupt_key_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("auth")).unwrap();
        std::fs::write(dir.path().join("auth").join(KEY_FILE), "garbage").unwrap();
        let e = Issuer::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, IssuerError::BadKey { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("auth").join(KEY_FILE)).unwrap(),
            "garbage"
        );
    }

    #[test]
    fn ensure_client_is_stable_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let a = Issuer::load_or_create(dir.path()).unwrap();
        let b = Issuer::load_or_create(dir.path()).unwrap();
        let s1 = a
            .ensure_client(
                "prisoner-to-nomis",
                &[roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW],
            )
            .unwrap();
        let s2 = b
            .ensure_client(
                "prisoner-to-nomis",
                &[roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW],
            )
            .unwrap();
        assert_eq!(s1, s2);
        let c = a
            .authenticate_client("prisoner-to-nomis", &s1)
            .unwrap()
            .unwrap();
        assert_eq!(
            c.authorities,
            vec![roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW]
        );
        assert!(a.ensure_client(DEV_CLIENT_ID, &["ROLE_X"]).is_err());
        assert!(a.ensure_client("bad:id", &["ROLE_X"]).is_err());
    }

    #[test]
    fn mint_fills_the_hmpps_claims() {
        let issuer = Issuer::ephemeral().unwrap();
        let token = issuer
            .mint(&TokenSpec::client("svc", vec!["ROLE_A".into()]).with_user("JSMITH"))
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(issuer.kid()));
        assert_eq!(header.alg, Algorithm::RS256);
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            issuer.decoding_key(),
            &validation(DEFAULT_ISSUER),
        )
        .unwrap();
        let c = data.claims;
        assert_eq!(c.sub, "JSMITH");
        assert_eq!(c.user_name.as_deref(), Some("JSMITH"));
        assert_eq!(c.client_id.as_deref(), Some("svc"));
        assert_eq!(c.scope, vec!["read", "write"]);
        assert_eq!(c.exp - c.iat, DEFAULT_TOKEN_TTL.as_secs() as i64);
        assert!(c.jti.is_some());
    }
}
