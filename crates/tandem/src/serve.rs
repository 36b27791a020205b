//! `tandem serve SERVICE…`: which services this process mounts and where everything else
//! is, from the environment over an optional TOML file (DESIGN §7).
//!
//! Every setting has an environment variable; the file uses the same names in lower case
//! without `TANDEM_` (`TANDEM_DATABASE_URL` ↔ `database_url`,
//! `TANDEM_NOMIS_PRISONER_API_URL` ↔ `nomis_prisoner_api_url`). A variable that is set
//! wins over the file; a key the file does not know is an error (a typo must not pass
//! silently).
//!
//! | variable | meaning |
//! |---|---|
//! | `TANDEM_DATA_DIR` | signing key and dev client (created when `auth` is served, required otherwise) |
//! | `TANDEM_LISTEN` | listen address (`--listen` wins) |
//! | `TANDEM_DATABASE_URL`, `TANDEM_<SERVICE>_DATABASE_URL`, `TANDEM_SCHEMA_PREFIX` | storage, as for `tandem up` |
//! | `TANDEM_BROKER_URL` | `amqp://…`: RabbitMQ; unset: the embedded bus in the `bus` database |
//! | `TANDEM_BROKER_PREFIX` | prefix of every exchange and queue name (empty in production) |
//! | `TANDEM_<SERVICE>_URL` | base URL (prefix included) of a peer this process does not serve |
//! | `TANDEM_MIGRATION_WORKERS`, `TANDEM_MIGRATION_BATCH_SIZE`, `TANDEM_MIGRATION_LEASE_SECS` | migration engine tuning |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tandem_platform::config::{StorageConfig, env_name, services};
use tandem_sync::migration::EngineConfig;

use crate::estate::{ALL_SERVICES, BrokerConfig, EstateOptions, peers_needed};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./tandem-data";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("name the services to serve; they are: {}", ALL_SERVICES.join(", "))]
    NoServices,
    #[error("there is no service named '{name}'; the services are: {}", ALL_SERVICES.join(", "))]
    UnknownService { name: String },
    #[error(
        "{service} calls {peer}, which this process does not serve: set {var} to its base URL, prefix included (e.g. {var}=http://host:8080/{peer}), or serve {peer} here too"
    )]
    MissingPeer {
        service: String,
        peer: String,
        var: String,
    },
    #[error("cannot read the configuration file {path}: {detail}")]
    ReadFile { path: PathBuf, detail: String },
    #[error("the configuration file {path} is not valid TOML: {detail}")]
    ParseFile { path: PathBuf, detail: String },
    #[error(
        "the configuration file {path} has an unknown key '{key}' (keys are the TANDEM_ variables in lower case without the prefix, e.g. database_url, broker_url, nomis_prisoner_api_url)"
    )]
    UnknownKey { path: PathBuf, key: String },
    #[error("{var} = '{value}': {expected}")]
    Invalid {
        var: String,
        value: String,
        expected: String,
    },
}

/// Settings from a TOML file, keyed by their environment variable names.
#[derive(Debug, Default, Clone)]
pub struct FileSettings(BTreeMap<String, String>);

/// Every variable `serve` reads, for checking the file's keys.
fn known_vars() -> Vec<String> {
    let mut vars: Vec<String> = [
        "TANDEM_DATA_DIR",
        "TANDEM_LISTEN",
        "TANDEM_DATABASE_URL",
        "TANDEM_SCHEMA_PREFIX",
        "TANDEM_BROKER_URL",
        "TANDEM_BROKER_PREFIX",
        "TANDEM_MIGRATION_WORKERS",
        "TANDEM_MIGRATION_BATCH_SIZE",
        "TANDEM_MIGRATION_LEASE_SECS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in ALL_SERVICES.iter().chain([&services::BUS]) {
        vars.push(format!("TANDEM_{}_DATABASE_URL", env_name(s)));
        vars.push(format!("TANDEM_{}_URL", env_name(s)));
    }
    vars
}

impl FileSettings {
    /// Parses TOML text: top-level keys with string, integer or boolean values.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let doc: toml_edit::DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| ConfigError::ParseFile {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
        let known = known_vars();
        let mut out = BTreeMap::new();
        for (key, item) in doc.iter() {
            let var = format!("TANDEM_{}", env_name(key));
            if !known.contains(&var) {
                return Err(ConfigError::UnknownKey {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                });
            }
            let value = match item.as_value() {
                Some(toml_edit::Value::String(s)) => s.value().clone(),
                Some(toml_edit::Value::Integer(i)) => i.value().to_string(),
                Some(toml_edit::Value::Boolean(b)) => b.value().to_string(),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: key.to_string(),
                        value: format!("({})", item.type_name()),
                        expected: format!(
                            "in {}: expected a string, a number or a boolean",
                            path.display()
                        ),
                    });
                }
            };
            out.insert(var, value);
        }
        Ok(Self(out))
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    fn get(&self, var: &str) -> Option<String> {
        self.0.get(var).cloned()
    }
}

/// What `tandem serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub options: EstateOptions,
}

/// The service name as `ALL_SERVICES` spells it (accepts a leading `/`).
fn service_name(name: &str) -> Result<&'static str, ConfigError> {
    let n = name.trim().trim_start_matches('/').trim_end_matches('/');
    ALL_SERVICES
        .iter()
        .copied()
        .find(|s| *s == n)
        .ok_or_else(|| ConfigError::UnknownService {
            name: name.to_string(),
        })
}

fn parse<T: std::str::FromStr>(var: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(var, value, expected))
}

fn invalid(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

impl ServeConfig {
    /// Resolves the configuration of `tandem serve names…`. `env` looks a variable up in
    /// the environment (tests pass a map); it wins over `file`; `--listen` and
    /// `--data-dir` win over both.
    pub fn resolve(
        names: &[String],
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        file: &FileSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let lookup = |var: &str| env(var).filter(|v| !v.is_empty()).or_else(|| file.get(var));

        let mut chosen: Vec<&'static str> = Vec::new();
        for n in names.iter().flat_map(|n| n.split(',')) {
            if n.trim().is_empty() {
                continue;
            }
            let s = service_name(n)?;
            if !chosen.contains(&s) {
                chosen.push(s);
            }
        }
        if chosen.is_empty() {
            return Err(ConfigError::NoServices);
        }
        // Mounted in the canonical order (the home page lists them so).
        let chosen: Vec<&'static str> = ALL_SERVICES
            .iter()
            .copied()
            .filter(|s| chosen.contains(s))
            .collect();

        let mut peer_urls = BTreeMap::new();
        for service in &chosen {
            for peer in peers_needed(service) {
                if chosen.contains(peer) || peer_urls.contains_key(*peer) {
                    continue;
                }
                let var = format!("TANDEM_{}_URL", env_name(peer));
                let Some(url) = lookup(&var) else {
                    return Err(ConfigError::MissingPeer {
                        service: service.to_string(),
                        peer: peer.to_string(),
                        var,
                    });
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        var,
                        value: url,
                        expected: format!(
                            "expected an http(s) base URL ending in its prefix, e.g. http://host:8080/{peer}"
                        ),
                    });
                }
                peer_urls.insert(peer.to_string(), url);
            }
        }

        let listen = match listen {
            Some(l) => l,
            None => {
                let v = lookup("TANDEM_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_string());
                parse("TANDEM_LISTEN", &v, "expected HOST:PORT, e.g. 0.0.0.0:8080")?
            }
        };
        let data_dir = data_dir
            .or_else(|| lookup("TANDEM_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

        let broker = match lookup("TANDEM_BROKER_URL") {
            None => BrokerConfig::Embedded,
            Some(url) if url.starts_with("amqp://") || url.starts_with("amqps://") => {
                BrokerConfig::RabbitMq {
                    url,
                    prefix: lookup("TANDEM_BROKER_PREFIX").unwrap_or_default(),
                }
            }
            Some(url) => {
                return Err(ConfigError::Invalid {
                    var: "TANDEM_BROKER_URL".into(),
                    value: url,
                    expected:
                        "expected an amqp:// or amqps:// URL (leave it unset for the embedded bus)"
                            .into(),
                });
            }
        };

        let mut engine = EngineConfig::default();
        if let Some(v) = lookup("TANDEM_MIGRATION_WORKERS") {
            engine.workers = parse(
                "TANDEM_MIGRATION_WORKERS",
                &v,
                "expected a whole number of at least 1",
            )?;
            if engine.workers == 0 {
                engine.workers = 1;
            }
        }
        if let Some(v) = lookup("TANDEM_MIGRATION_BATCH_SIZE") {
            let (var, expected) = (
                "TANDEM_MIGRATION_BATCH_SIZE",
                "expected a whole number of entities between 1 and 1000",
            );
            engine.batch_size = parse::<usize>(var, &v, expected)?;
            if !(1..=1000).contains(&engine.batch_size) {
                return Err(invalid(var, &v, expected));
            }
        }
        if let Some(v) = lookup("TANDEM_MIGRATION_LEASE_SECS") {
            let secs: u64 = parse(
                "TANDEM_MIGRATION_LEASE_SECS",
                &v,
                "expected a whole number of seconds",
            )?;
            engine.lease = Duration::from_secs(secs.max(1));
        }

        let mut storage_names: Vec<&str> = chosen.clone();
        storage_names.push(services::BUS);
        let storage = StorageConfig::from_lookup(&data_dir, &storage_names, lookup);
        Ok(Self {
            listen,
            options: EstateOptions {
                data_dir,
                storage,
                engine,
                services: chosen,
                broker,
                peer_urls,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn names(ns: &[&str]) -> Vec<String> {
        ns.iter().map(|s| s.to_string()).collect()
    }

    fn resolve(ns: &[&str], e: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
        ServeConfig::resolve(&names(ns), None, None, &FileSettings::default(), env(e))
    }

    #[test]
    fn a_missing_peer_names_its_variable() {
        let err = resolve(&["prisoner-to-nomis"], &[]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::MissingPeer {
                service: "prisoner-to-nomis".into(),
                peer: "nomis-prisoner-api".into(),
                var: "TANDEM_NOMIS_PRISONER_API_URL".into(),
            }
        );
        assert!(
            err.to_string()
                .contains("set TANDEM_NOMIS_PRISONER_API_URL"),
            "{err}"
        );
        let err = resolve(
            &["prisoner-to-nomis"],
            &[
                (
                    "TANDEM_NOMIS_PRISONER_API_URL",
                    "http://a:1/nomis-prisoner-api",
                ),
                (
                    "TANDEM_NON_ASSOCIATIONS_API_URL",
                    "http://b:1/non-associations-api",
                ),
            ],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("TANDEM_NOMIS_MAPPING_API_URL"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_service_lists_the_valid_names() {
        let err = resolve(&["auth", "nomis-api"], &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'nomis-api'"), "{msg}");
        for s in ALL_SERVICES {
            assert!(msg.contains(s), "{msg} lists {s}");
        }
        assert_eq!(resolve(&[], &[]).unwrap_err(), ConfigError::NoServices);
    }

    #[test]
    fn peers_served_here_need_no_url_and_the_rest_come_from_env() {
        let cfg = resolve(
            &[
                "prisoner-from-nomis",
                "nomis-mapping-api",
                "/nomis-prisoner-api",
            ],
            &[
                (
                    "TANDEM_NON_ASSOCIATIONS_API_URL",
                    "http://dps:8080/non-associations-api",
                ),
                ("TANDEM_BROKER_URL", "amqp://guest:guest@mq:5672/%2f"),
                ("TANDEM_DATABASE_URL", "postgres://u@db/tandem"),
                ("TANDEM_LISTEN", "0.0.0.0:9000"),
            ],
        )
        .unwrap();
        let o = &cfg.options;
        assert_eq!(
            o.services,
            vec![
                "nomis-prisoner-api",
                "nomis-mapping-api",
                "prisoner-from-nomis"
            ]
        );
        assert_eq!(
            o.peer_urls.keys().collect::<Vec<_>>(),
            vec!["non-associations-api"]
        );
        assert_eq!(
            o.broker,
            BrokerConfig::RabbitMq {
                url: "amqp://guest:guest@mq:5672/%2f".into(),
                prefix: String::new()
            }
        );
        assert!(o.storage.is_postgres());
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:9000");
        // Without a broker URL the embedded bus.
        let cfg = resolve(&["auth"], &[]).unwrap();
        assert_eq!(cfg.options.broker, BrokerConfig::Embedded);
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn the_file_fills_in_and_the_environment_wins() {
        let path = Path::new("tandem.toml");
        let file = FileSettings::parse(
            path,
            "database_url = \"postgres://file/db\"\nnomis_prisoner_api_url = \"http://file:1/nomis-prisoner-api\"\nmigration_lease_secs = 7\n",
        )
        .unwrap();
        let cfg = ServeConfig::resolve(
            &names(&["non-associations-api"]),
            None,
            None,
            &file,
            env(&[("TANDEM_DATABASE_URL", "postgres://env/db")]),
        )
        .unwrap();
        assert_eq!(
            cfg.options.storage.database_url.as_deref(),
            Some("postgres://env/db")
        );
        assert_eq!(
            cfg.options.peer_urls["nomis-prisoner-api"],
            "http://file:1/nomis-prisoner-api"
        );
        assert_eq!(cfg.options.engine.lease, Duration::from_secs(7));

        let err = FileSettings::parse(path, "databse_url = \"x\"").unwrap_err();
        assert!(err.to_string().contains("'databse_url'"), "{err}");
        assert!(matches!(
            FileSettings::parse(path, "database_url = "),
            Err(ConfigError::ParseFile { .. })
        ));
    }

    #[test]
    fn bad_values_are_named() {
        let err = resolve(&["auth"], &[("TANDEM_BROKER_URL", "redis://x")]).unwrap_err();
        assert!(err.to_string().contains("TANDEM_BROKER_URL"), "{err}");
        let err = resolve(&["auth"], &[("TANDEM_LISTEN", "8080")]).unwrap_err();
        assert!(err.to_string().contains("TANDEM_LISTEN"), "{err}");
        let err = resolve(
            &["non-associations-api"],
            &[("TANDEM_NOMIS_PRISONER_API_URL", "nomis:8080")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("TANDEM_NOMIS_PRISONER_API_URL"),
            "{err}"
        );
        for bad in ["0", "1001", "ten"] {
            let err = resolve(&["auth"], &[("TANDEM_MIGRATION_BATCH_SIZE", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("TANDEM_MIGRATION_BATCH_SIZE"),
                "{bad}: {err}"
            );
        }
        let cfg = resolve(&["auth"], &[("TANDEM_MIGRATION_BATCH_SIZE", "5")]).unwrap();
        assert_eq!(cfg.options.engine.batch_size, 5);
    }
}
