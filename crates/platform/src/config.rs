//! Where a service's database lives and how peers are found, from flags and environment.
//!
//! The contract (DESIGN §7): `TANDEM_DATA_DIR`, `TANDEM_DATABASE_URL`,
//! `TANDEM_<SERVICE>_DATABASE_URL`, `TANDEM_<SERVICE>_URL`; service names are URL prefixes
//! without the slash, upper-cased with `-` as `_` in variable names.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The environment variable name fragment for a service: `nomis-prisoner-api` → `NOMIS_PRISONER_API`.
pub fn env_name(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// Where each service's database is.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Directory for SQLite files (and the auth keys).
    pub data_dir: PathBuf,
    /// `postgres://…`: every service in its own schema of this database.
    pub database_url: Option<String>,
    /// Per-service overrides (`TANDEM_<SERVICE>_DATABASE_URL`).
    pub per_service: BTreeMap<String, String>,
    /// Prepended to every PostgreSQL schema name (tests use it to stay apart).
    pub schema_prefix: String,
}

/// One service's database.
#[derive(Debug, Clone, PartialEq)]
pub enum DbTarget {
    Sqlite { path: PathBuf },
    Postgres { url: String, schema: String },
}

impl StorageConfig {
    /// SQLite files under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            per_service: BTreeMap::new(),
            schema_prefix: String::new(),
        }
    }

    /// Reads `TANDEM_DATABASE_URL` and every `TANDEM_<SERVICE>_DATABASE_URL` for the given services.
    pub fn from_env(data_dir: impl Into<PathBuf>, services: &[&str]) -> Self {
        Self::from_lookup(data_dir, services, |var| std::env::var(var).ok())
    }

    /// As [`StorageConfig::from_env`], with the variables looked up by `lookup` (the
    /// environment, or the environment over a configuration file).
    pub fn from_lookup(
        data_dir: impl Into<PathBuf>,
        services: &[&str],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut cfg = Self::embedded(data_dir);
        cfg.database_url = lookup("TANDEM_DATABASE_URL").filter(|s| !s.is_empty());
        // Lets several estates share one PostgreSQL database (tests, side-by-side instances).
        if let Some(prefix) = lookup("TANDEM_SCHEMA_PREFIX") {
            cfg.schema_prefix = prefix;
        }
        for s in services {
            if let Some(url) = lookup(&format!("TANDEM_{}_DATABASE_URL", env_name(s)))
                && !url.is_empty()
            {
                cfg.per_service.insert(s.to_string(), url);
            }
        }
        cfg
    }

    /// The database for `service` (or for the embedded bus, named `bus`).
    pub fn target_for(&self, service: &str) -> DbTarget {
        let url = self.per_service.get(service).or(self.database_url.as_ref());
        match url {
            Some(url) if url.starts_with("postgres") => DbTarget::Postgres {
                url: url.clone(),
                schema: format!("{}{}", self.schema_prefix, service.replace('-', "_")),
            },
            Some(url) if url.starts_with("sqlite:") => DbTarget::Sqlite {
                path: PathBuf::from(
                    url.trim_start_matches("sqlite://")
                        .trim_start_matches("sqlite:"),
                ),
            },
            _ => DbTarget::Sqlite {
                path: self.data_dir.join(format!("{service}.db")),
            },
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let mut cfg = StorageConfig::embedded("/tmp/x");
        assert_eq!(
            cfg.target_for("nomis-prisoner-api"),
            DbTarget::Sqlite {
                path: "/tmp/x/nomis-prisoner-api.db".into()
            }
        );
        cfg.database_url = Some("postgres://p@h/db".into());
        cfg.schema_prefix = "t1_".into();
        assert_eq!(
            cfg.target_for("nomis-prisoner-api"),
            DbTarget::Postgres {
                url: "postgres://p@h/db".into(),
                schema: "t1_nomis_prisoner_api".into()
            }
        );
        assert_eq!(env_name("nomis-prisoner-api"), "NOMIS_PRISONER_API");
    }
}

/// The services of the estate, by URL prefix (DESIGN §1).
pub mod services {
    pub const AUTH: &str = "auth";
    pub const NOMIS_PRISONER_API: &str = "nomis-prisoner-api";
    pub const PRISON_API: &str = "prison-api";
    pub const NON_ASSOCIATIONS_API: &str = "non-associations-api";
    pub const NOMIS_MAPPING_API: &str = "nomis-mapping-api";
    pub const PRISONER_FROM_NOMIS: &str = "prisoner-from-nomis";
    pub const PRISONER_TO_NOMIS: &str = "prisoner-to-nomis";
    /// The embedded bus's own database.
    pub const BUS: &str = "bus";
}
