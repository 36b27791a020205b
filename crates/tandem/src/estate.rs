//! Boots the estate: one database per service, the embedded bus, one outbox relay per
//! producing service, the routers mounted under their prefixes on one listener.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::{Router, routing::get};
use tandem_auth::{Issuer, LocalTokenSource, LocalValidator, TokenValidator};
use tandem_bus::{EventBus, outbox::OutboxRelay, spawn_consumer, sql::SqlBus};
use tandem_non_associations::sync_adapter;
use tandem_platform::{
    client::{LocalApp, Peers, TokenSource},
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

/// What to boot.
#[derive(Debug, Clone)]
pub struct EstateOptions {
    /// Keys, dev client and (embedded) SQLite files.
    pub data_dir: PathBuf,
    pub storage: StorageConfig,
    /// Migration engine tuning.
    pub engine: EngineConfig,
}

impl EstateOptions {
    /// The embedded default: everything in SQLite files under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            storage: StorageConfig::embedded(&data_dir),
            data_dir,
            engine: EngineConfig::default(),
        }
    }
}

/// The services `tandem up` mounts, by prefix.
pub const ALL_SERVICES: &[&str] = &[
    services::AUTH,
    services::NOMIS_PRISONER_API,
    services::NOMIS_MAPPING_API,
    services::NON_ASSOCIATIONS_API,
    services::PRISONER_FROM_NOMIS,
    services::PRISONER_TO_NOMIS,
];

/// A running estate (without its listener: callers serve `router` where they like).
pub struct Estate {
    pub router: Router,
    pub issuer: Arc<Issuer>,
    /// The dev client's id and secret, for people and scripts.
    pub dev_client: (String, String),
    pub bus: Arc<dyn EventBus>,
    pub engine: Arc<MigrationEngine>,
    /// Each service's database, by service name.
    pub dbs: Vec<(&'static str, Db)>,
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

impl Estate {
    pub async fn start(opts: EstateOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating data directory {}", opts.data_dir.display()))?;
        let issuer =
            Arc::new(Issuer::load_or_create(&opts.data_dir).context("loading the signing key")?);
        let dev_client = issuer.dev_client().context("loading the dev client")?;
        let validator: Arc<dyn TokenValidator> = Arc::new(LocalValidator::new(issuer.clone()));

        let app = LocalApp::new();
        let peers = Peers::new(app.clone(), ALL_SERVICES);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();

        let bus_db = open(&opts.storage, services::BUS).await?;
        let bus: Arc<dyn EventBus> = Arc::new(
            SqlBus::new(bus_db.clone())
                .await
                .context("starting the embedded bus")?,
        );

        let nomis_db = open(&opts.storage, services::NOMIS_PRISONER_API).await?;
        nomis_db.migrate::<tandem_nomis::Migrator>().await?;
        let mapping_db = open(&opts.storage, services::NOMIS_MAPPING_API).await?;
        mapping_db.migrate::<tandem_mapping::Migrator>().await?;
        let na_db = open(&opts.storage, services::NON_ASSOCIATIONS_API).await?;
        na_db.migrate::<tandem_non_associations::Migrator>().await?;

        let na_tokens = service_tokens(
            &issuer,
            "non-associations-api",
            &[tandem_auth::roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW],
        );
        let prisoners = Arc::new(tandem_non_associations::NomisPrisonerDirectory::new(
            peers.client(services::NOMIS_PRISONER_API, na_tokens)?,
        ));

        let from_db = open(&opts.storage, services::PRISONER_FROM_NOMIS).await?;
        from_db.migrate::<LedgerMigrator>().await?;

        // The sync services' own client credentials towards their peers.
        let sync_tokens = service_tokens(
            &issuer,
            "prisoner-nomis-sync",
            &[
                tandem_auth::roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW,
                tandem_auth::roles::NOMIS_MAPPING_API_SYNCHRONISATION_RW,
                tandem_auth::roles::NON_ASSOCIATIONS_SYNC,
                tandem_auth::roles::NON_ASSOCIATIONS_MIGRATE,
            ],
        );
        let nomis = peers.client(services::NOMIS_PRISONER_API, sync_tokens.clone())?;
        let dps = peers.client(services::NON_ASSOCIATIONS_API, sync_tokens.clone())?;
        let mapping = peers.client(services::NOMIS_MAPPING_API, sync_tokens)?;

        let engine = MigrationEngine::new(
            from_db.clone(),
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
        let from_listeners = sync_adapter::from_nomis_listeners(
            nomis.clone(),
            dps.clone(),
            mapping.clone(),
            switches,
        );
        let to_listeners = sync_adapter::to_nomis_listeners(nomis, dps, mapping);
        let dps_listeners =
            sync_adapter::dps_listeners(tandem_non_associations::Store::new(na_db.clone()));
        let dps_queues: Vec<String> = dps_listeners
            .iter()
            .map(|l| l.subscription.queue.clone())
            .collect();

        let mounted: Vec<Service> = vec![
            tandem_auth::service(issuer.clone()),
            tandem_nomis::service(nomis_db.clone()),
            tandem_mapping::service(mapping_db.clone()),
            tandem_non_associations::service(na_db.clone(), prisoners)
                .merge(tandem_bus::admin_routes(bus.clone(), dps_queues)),
            from_nomis_service(
                from_db.clone(),
                engine.clone(),
                bus.clone(),
                &from_listeners,
            ),
            to_nomis_service(bus.clone(), &to_listeners),
        ];
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
        let listeners: Vec<Listener> = from_listeners
            .into_iter()
            .chain(to_listeners)
            .chain(dps_listeners)
            .collect();
        for l in &listeners {
            bus.declare(&l.subscription)
                .await
                .context("declaring a consumer queue")?;
        }
        // Producers' outboxes drain to the bus.
        for db in [&nomis_db, &na_db] {
            let relay = OutboxRelay::new(db.clone(), bus.clone());
            let c = cancel.clone();
            tasks.spawn(async move { relay.run(c).await });
        }
        // The services' SQLite files keep their write-ahead logs short off the hot path (the
        // bus does the same for its own file).
        for db in [&nomis_db, &mapping_db, &na_db, &from_db] {
            if db.is_sqlite() {
                tasks.spawn(checkpoints(db.clone(), cancel.clone()));
            }
        }
        for l in listeners {
            let handle = spawn_consumer(bus.clone(), l.subscription, l.handler, cancel.clone());
            tasks.spawn(async move {
                let _ = handle.await;
            });
        }
        engine.watch();

        Ok(Self {
            router,
            issuer,
            dev_client,
            bus,
            engine,
            dbs: vec![
                (services::BUS, bus_db),
                (services::NOMIS_PRISONER_API, nomis_db),
                (services::NOMIS_MAPPING_API, mapping_db),
                (services::NON_ASSOCIATIONS_API, na_db),
                (services::PRISONER_FROM_NOMIS, from_db),
            ],
            cancel,
            tasks,
        })
    }

    /// The database of `service`.
    pub fn db(&self, service: &str) -> Option<&Db> {
        self.dbs.iter().find(|(n, _)| *n == service).map(|(_, d)| d)
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
