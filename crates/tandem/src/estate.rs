//! Boots the estate, or the part of it one process serves: one database per service, the
//! bus (embedded SqlBus or RabbitMQ), one outbox relay per producing service, peer clients
//! (in-process for the services mounted here, HTTP for the others) and the routers mounted
//! under their prefixes on one listener. `tandem up` composes every service; `tandem serve`
//! the services it names. There is one composition, below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::{Router, routing::get};
use tandem_auth::{Issuer, LocalTokenSource, LocalValidator, TokenValidator};
use tandem_bus::{EventBus, outbox::OutboxRelay, spawn_consumer, sql::SqlBus};
use tandem_non_associations::sync_adapter;
use tandem_platform::{
    client::{LocalApp, PeerClient, Peers, TokenSource},
    config::{StorageConfig, services},
    db::Db,
    http::{Service, finish, mount_service},
};
use tandem_sync::{
    listeners::{FeatureSwitches, Listener},
    migration::{EngineConfig, LedgerMigrator, MigrationEngine},
    services::{from_nomis_service, to_nomis_service},
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Which event bus the estate uses.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerConfig {
    /// The embedded `SqlBus`, its queues in the `bus` database (SQLite file or schema).
    Embedded,
    /// RabbitMQ at `url`; every exchange and queue name starts with `prefix` (empty in
    /// production; tests sharing a broker set one).
    RabbitMq { url: String, prefix: String },
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct EstateOptions {
    /// Keys, dev client and (embedded) SQLite files.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    /// Migration engine tuning.
    pub engine: EngineConfig,
    /// The services mounted in this process (names = URL prefixes); every estate service
    /// for `tandem up`.
    pub services: Vec<&'static str>,
    pub broker: BrokerConfig,
    /// Base URLs (prefix included) of peers served elsewhere, by service name. A peer not
    /// listed here is looked up in `TANDEM_<SERVICE>_URL`.
    pub peer_urls: BTreeMap<String, String>,
}

impl EstateOptions {
    /// The embedded default: every service, in SQLite files under `data_dir`, embedded bus.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            storage: StorageConfig::embedded(&data_dir),
            data_dir,
            engine: EngineConfig::default(),
            services: ALL_SERVICES.to_vec(),
            broker: BrokerConfig::Embedded,
            peer_urls: BTreeMap::new(),
        }
    }
}

/// The services `tandem up` mounts, by prefix (and the names `tandem serve` accepts).
pub const ALL_SERVICES: &[&str] = &[
    services::AUTH,
    services::NOMIS_PRISONER_API,
    services::NOMIS_MAPPING_API,
    services::NON_ASSOCIATIONS_API,
    services::PRISONER_FROM_NOMIS,
    services::PRISONER_TO_NOMIS,
];

/// The peers `service` calls over HTTP (or in-process when they are mounted alongside).
/// Tokens are not among them: every process validates and mints with the signing key in
/// its data directory, so no service calls `/auth`.
pub fn peers_needed(service: &str) -> &'static [&'static str] {
    const SYNC: &[&str] = &[
        services::NOMIS_PRISONER_API,
        services::NON_ASSOCIATIONS_API,
        services::NOMIS_MAPPING_API,
    ];
    match service {
        services::NON_ASSOCIATIONS_API => &[services::NOMIS_PRISONER_API],
        services::PRISONER_FROM_NOMIS | services::PRISONER_TO_NOMIS => SYNC,
        _ => &[],
    }
}

/// A running estate (without its listener: callers serve `router` where they like).
pub struct Estate {
    pub router: Router,
    pub issuer: Arc<Issuer>,
    /// The dev client's id and secret, for people and scripts.
    pub dev_client: (String, String),
    pub bus: Arc<dyn EventBus>,
    /// The same bus when it is RabbitMQ (for what only that backend does, e.g. a
    /// benchmark deleting its queues afterwards).
    pub rabbit: Option<tandem_bus_rabbitmq::RabbitBus>,
    /// The migration engine, when `prisoner-from-nomis` is served here.
    pub engine: Option<Arc<MigrationEngine>>,
    /// Each service's database opened here, by service name.
    pub dbs: Vec<(&'static str, Db)>,
    /// The services mounted here.
    pub services: Vec<&'static str>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

async fn open(storage: &StorageConfig, service: &str) -> anyhow::Result<Db> {
    Db::connect(&storage.target_for(service))
        .await
        .with_context(|| format!("opening the {service} database"))
}

/// A token source for one service's calls to its peers (its own client credentials).
fn service_tokens(issuer: &Arc<Issuer>, client_id: &str, roles: &[&str]) -> Arc<dyn TokenSource> {
    Arc::new(LocalTokenSource::new(
        issuer.clone(),
        client_id,
        roles.iter().map(|r| r.to_string()).collect(),
    ))
}

/// Where the issuer keeps its signing key under a data directory.
fn signing_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auth").join("signing-key.pem")
}

/// The token issuer of this process. Where `/auth` is served it creates its key on first
/// start; anywhere else the key must already be in the data directory (a process must not
/// make a key of its own: every token it minted would be refused by the others).
fn load_issuer(data_dir: &Path, serves_auth: bool) -> anyhow::Result<Issuer> {
    if !serves_auth && !signing_key_path(data_dir).is_file() {
        anyhow::bail!(
            "there is no signing key at {}, and this process does not serve auth: set TANDEM_DATA_DIR \
             (or --data-dir) to a copy of the auth service's data directory (its auth/ folder)",
            signing_key_path(data_dir).display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    Issuer::load_or_create(data_dir).context("loading the signing key")
}

impl Estate {
    pub async fn start(opts: EstateOptions) -> anyhow::Result<Self> {
        // The recorder is installed before anything counts (a counter incremented before
        // the first scrape would otherwise be lost).
        metrics_handle();
        let local = |s: &str| opts.services.contains(&s);
        let issuer = Arc::new(load_issuer(&opts.data_dir, local(services::AUTH))?);
        let dev_client = issuer.dev_client().context("loading the dev client")?;
        let validator: Arc<dyn TokenValidator> = Arc::new(LocalValidator::new(issuer.clone()));

        let app = LocalApp::new();
        let mut peers = Peers::new(app.clone(), &opts.services);
        for (service, url) in &opts.peer_urls {
            peers = peers.with_url(service, url);
        }
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut dbs: Vec<(&'static str, Db)> = Vec::new();

        let mut rabbit = None;
        let bus: Arc<dyn EventBus> = match &opts.broker {
            BrokerConfig::Embedded => {
                let bus_db = open(&opts.storage, services::BUS).await?;
                dbs.push((services::BUS, bus_db.clone()));
                Arc::new(
                    SqlBus::new(bus_db)
                        .await
                        .context("starting the embedded bus")?,
                )
            }
            BrokerConfig::RabbitMq { url, prefix } => {
                let bus = tandem_bus_rabbitmq::RabbitBus::connect_with_prefix(url, prefix)
                    .await
                    .context("connecting to RabbitMQ (TANDEM_BROKER_URL)")?;
                rabbit = Some(bus.clone());
                Arc::new(bus)
            }
        };

        let mut mounted: Vec<Service> = Vec::new();
        let mut listeners: Vec<Listener> = Vec::new();
        // Databases whose outbox this process relays.
        let mut producers: Vec<Db> = Vec::new();

        if local(services::AUTH) {
            mounted.push(tandem_auth::service(issuer.clone()));
        }
        if local(services::NOMIS_PRISONER_API) {
            let db = open(&opts.storage, services::NOMIS_PRISONER_API).await?;
            db.migrate::<tandem_nomis::Migrator>().await?;
            mounted.push(tandem_nomis::service(db.clone()));
            producers.push(db.clone());
            dbs.push((services::NOMIS_PRISONER_API, db));
        }
        if local(services::NOMIS_MAPPING_API) {
            let db = open(&opts.storage, services::NOMIS_MAPPING_API).await?;
            db.migrate::<tandem_mapping::Migrator>().await?;
            mounted.push(tandem_mapping::service(db.clone()));
            dbs.push((services::NOMIS_MAPPING_API, db));
        }
        if local(services::NON_ASSOCIATIONS_API) {
            let db = open(&opts.storage, services::NON_ASSOCIATIONS_API).await?;
            db.migrate::<tandem_non_associations::Migrator>().await?;
            let na_tokens = service_tokens(
                &issuer,
                "non-associations-api",
                &[tandem_auth::roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW],
            );
            let prisoners = Arc::new(tandem_non_associations::NomisPrisonerDirectory::new(
                peers.client(services::NOMIS_PRISONER_API, na_tokens)?,
            ));
            let dps_listeners =
                sync_adapter::dps_listeners(tandem_non_associations::Store::new(db.clone()));
            let dps_queues: Vec<String> = dps_listeners
                .iter()
                .map(|l| l.subscription.queue.clone())
                .collect();
            mounted.push(
                tandem_non_associations::service(db.clone(), prisoners)
                    .merge(tandem_bus::admin_routes(bus.clone(), dps_queues)),
            );
            listeners.extend(dps_listeners);
            producers.push(db.clone());
            dbs.push((services::NON_ASSOCIATIONS_API, db));
        }

        // The sync services' own client credentials towards their peers.
        let sync_peers = || -> anyhow::Result<(PeerClient, PeerClient, PeerClient)> {
            let tokens = service_tokens(
                &issuer,
                "prisoner-nomis-sync",
                &[
                    tandem_auth::roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW,
                    tandem_auth::roles::NOMIS_MAPPING_API_SYNCHRONISATION_RW,
                    tandem_auth::roles::NON_ASSOCIATIONS_SYNC,
                    tandem_auth::roles::NON_ASSOCIATIONS_MIGRATE,
                ],
            );
            Ok((
                peers.client(services::NOMIS_PRISONER_API, tokens.clone())?,
                peers.client(services::NON_ASSOCIATIONS_API, tokens.clone())?,
                peers.client(services::NOMIS_MAPPING_API, tokens)?,
            ))
        };
        let mut engine = None;
        if local(services::PRISONER_FROM_NOMIS) {
            let (nomis, dps, mapping) = sync_peers()?;
            let db = open(&opts.storage, services::PRISONER_FROM_NOMIS).await?;
            db.migrate::<LedgerMigrator>().await?;
            let e = MigrationEngine::new(
                db.clone(),
                vec![sync_adapter::migration_domain(
                    nomis.clone(),
                    dps.clone(),
                    mapping.clone(),
                )],
                opts.engine.clone(),
                cancel.clone(),
                tasks.clone(),
            );
            let switches = FeatureSwitches::from_env(&[
                "NON_ASSOCIATION_DETAIL-UPSERTED",
                "NON_ASSOCIATION_DETAIL-DELETED",
            ]);
            let from_listeners = sync_adapter::from_nomis_listeners(nomis, dps, mapping, switches);
            mounted.push(from_nomis_service(
                db.clone(),
                e.clone(),
                bus.clone(),
                &from_listeners,
            ));
            listeners.extend(from_listeners);
            dbs.push((services::PRISONER_FROM_NOMIS, db));
            engine = Some(e);
        }
        if local(services::PRISONER_TO_NOMIS) {
            let (nomis, dps, mapping) = sync_peers()?;
            let to_listeners = sync_adapter::to_nomis_listeners(nomis, dps, mapping);
            mounted.push(to_nomis_service(bus.clone(), &to_listeners));
            listeners.extend(to_listeners);
        }

        let names: Vec<&'static str> = mounted.iter().map(|s| s.name).collect();
        let mut router = Router::new()
            .route(
                "/",
                get(move || std::future::ready(crate::home::page(&names))),
            )
            .route("/metrics", get(|| async { metrics_handle().render() }));
        for s in mounted {
            router = router.merge(mount_service(s));
        }
        let router = finish(router).layer(tandem_auth::validator_layer(validator));
        app.set(router.clone());

        // Every queue exists before the first event is relayed (as with SNS, an event
        // published before its queue is declared is not delivered to it).
        for l in &listeners {
            bus.declare(&l.subscription)
                .await
                .context("declaring a consumer queue")?;
        }
        // Producers' outboxes drain to the bus.
        for db in producers {
            let relay = OutboxRelay::new(db, bus.clone());
            let c = cancel.clone();
            tasks.spawn(async move { relay.run(c).await });
        }
        // The services' SQLite files keep their write-ahead logs short off the hot path (the
        // bus does the same for its own file).
        for (name, db) in &dbs {
            if *name != services::BUS && db.is_sqlite() {
                tasks.spawn(checkpoints(db.clone(), cancel.clone()));
            }
        }
        for l in listeners {
            let handle = spawn_consumer(bus.clone(), l.subscription, l.handler, cancel.clone());
            tasks.spawn(async move {
                let _ = handle.await;
            });
        }
        if let Some(e) = &engine {
            e.watch();
        }

        Ok(Self {
            router,
            issuer,
            dev_client,
            bus,
            rabbit,
            engine,
            dbs,
            services: opts.services.clone(),
            cancel,
            tasks,
        })
    }

    /// The database of `service`, when it is served here.
    pub fn db(&self, service: &str) -> Option<&Db> {
        self.dbs.iter().find(|(n, _)| *n == service).map(|(_, d)| d)
    }

    /// The migration engine, when `prisoner-from-nomis` is served here.
    pub fn engine(&self) -> anyhow::Result<&Arc<MigrationEngine>> {
        self.engine
            .as_ref()
            .context("prisoner-from-nomis is not served by this estate")
    }

    /// Stops consumers and relays; relays drain what is committed first.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        for (_, db) in &self.dbs {
            db.close().await;
        }
    }
}

/// How often a service's SQLite write-ahead log is folded back into its database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Passive checkpoints of one SQLite database until `cancel`. Without them the WAL grows to
/// SQLite's auto-checkpoint size (1000 pages) every few hundred writes under steady load,
/// and the commit that crosses it runs the checkpoint itself (copies the log into the file
/// and syncs it) before it returns: a stall in the middle of a request or a sync step. A
/// passive checkpoint never waits for or blocks a writer, and one with nothing to copy
/// costs next to nothing.
async fn checkpoints(db: Db, cancel: CancellationToken) {
    use sea_orm::ConnectionTrait;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
        }
        if let Err(e) = db
            .conn()
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::debug!(error = %e, "checkpoint failed");
        }
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every estate in the process).
pub fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
