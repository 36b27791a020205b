//! `tandem`: the command line (DESIGN §7).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tandem::{Estate, EstateOptions};
use tandem_platform::config::{StorageConfig, services};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "The prison data estate: NOMIS, the DPS services and the machinery that keeps them in step"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole estate in one process on the embedded backend.
    Up {
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed a synthetic NOMIS estate on first start.
        #[arg(long)]
        demo: bool,
    },
    /// Serve only the named services on a listener of their own; database, bus and peers
    /// from the environment (over an optional TOML file).
    Serve {
        /// Service names (URL prefixes without the slash), e.g. nomis-prisoner-api auth.
        #[arg(required = true)]
        services: Vec<String>,
        /// Listen address (default: TANDEM_LISTEN, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (default: TANDEM_DATA_DIR, else ./tandem-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A TOML file of settings (keys: the TANDEM_ variables in lower case without the
        /// prefix); variables set in the environment win.
        #[arg(long, env = "TANDEM_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write a deterministic synthetic NOMIS estate straight into the NOMIS database.
    Seed {
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        prisoners: usize,
        /// Comma-separated prison ids.
        #[arg(long, value_delimiter = ',', default_value = "MDI,LEI,BXI,WSI")]
        prisons: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Non-association pairs (default: in proportion to prisoners).
        #[arg(long)]
        pairs: Option<usize>,
    },
    /// Start a migration through the API of a running instance.
    Migrate {
        /// The migration type, e.g. non-associations.
        domain: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Where the instance's keys are (to mint the operator's token).
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        #[arg(long)]
        from_date: Option<String>,
        #[arg(long)]
        to_date: Option<String>,
        /// Only these prisons (repeatable).
        #[arg(long = "prison")]
        prisons: Vec<String>,
        /// Follow it with a progress bar until it ends.
        #[arg(long)]
        wait: bool,
    },
    /// Print a dev token for the instance whose keys are in DATA_DIR (only the token).
    Token {
        #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./tandem-data")]
        data_dir: PathBuf,
        /// Comma-separated roles (the ROLE_ prefix is optional).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_delimiter = ',', default_value = "read,write")]
        scope: Vec<String>,
    },
    /// Run a benchmark on a scratch estate (embedded unless told otherwise); prints one JSON
    /// object on stdout.
    Bench {
        #[command(subcommand)]
        scenario: BenchScenario,
    },
}

#[derive(Subcommand)]
enum BenchScenario {
    /// Seed N non-association pairs, migrate them through the API, compare with a bulk-insert floor.
    Migration {
        #[arg(long, default_value = "non-associations")]
        domain: String,
        #[arg(long, default_value_t = 100_000)]
        pairs: usize,
        /// Prisoners to seed (default: twice the pairs).
        #[arg(long)]
        prisoners: Option<usize>,
        /// Where the estate lives (default: a fresh temporary directory, removed afterwards).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = tandem::bench::tuned_engine().workers)]
        workers: usize,
        #[arg(long, default_value_t = tandem::bench::tuned_engine().batch_size)]
        batch_size: usize,
        #[arg(long, default_value_t = tandem::bench::tuned_engine().page_size)]
        page_size: usize,
        /// Rows per INSERT statement of the floor (default: the most the backend binds).
        #[arg(long)]
        floor_rows: Option<usize>,
        #[command(flatten)]
        backend: tandem::bench::Backend,
    },
    /// Steady edits alternately in DPS and NOMIS; latency until each is visible on the other side.
    Sync {
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Non-associations edited (half in DPS, half in NOMIS).
        #[arg(long, default_value_t = 2000)]
        records: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        backend: tandem::bench::Backend,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// mimalloc instead of glibc's malloc: batch migration and sync allocate and free many
/// small JSON values across threads, where glibc's arenas spent a quarter of the CPU
/// (`malloc_consolidate`, `_int_free`) in the migration profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process. mimalloc advises huge pages for its
/// arenas; each first touch of one then zeroes 2 MB (4% of the migration's CPU, in the
/// kernel) and a huge page partly used stays resident whole: a 100k-pair migration peaked
/// at 300-330 MB with them, 180-200 MB without. Best effort: an older kernel without the
/// setting keeps its default.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and reads or writes no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            data_dir,
            listen,
            demo,
        } => up(data_dir, listen, demo).await,
        Command::Serve {
            services,
            listen,
            data_dir,
            config,
        } => serve(services, listen, data_dir, config).await,
        Command::Seed {
            data_dir,
            prisoners,
            prisons,
            seed,
            pairs,
        } => {
            init_tracing();
            let storage = StorageConfig::from_env(&data_dir, &[services::NOMIS_PRISONER_API]);
            if let tandem_platform::config::DbTarget::Postgres { .. } =
                storage.target_for(services::NOMIS_PRISONER_API)
            {
                tracing::info!("seeding NOMIS on PostgreSQL");
            }
            let db =
                tandem_platform::db::Db::connect(&storage.target_for(services::NOMIS_PRISONER_API))
                    .await?;
            db.migrate::<tandem_nomis::Migrator>().await?;
            let opts = tandem_nomis::SeedOptions {
                prisoners,
                prisons,
                seed,
                non_association_pairs: pairs,
            };
            let summary = tandem_nomis::seed(&db, &opts).await?;
            println!(
                "{}",
                serde_json::json!({
                    "prisoners": summary.prisoners,
                    "bookings": summary.bookings,
                    "nonAssociationPairs": summary.non_association_pairs,
                    "nonAssociationDetails": summary.non_association_details,
                })
            );
            Ok(())
        }
        Command::Migrate {
            domain,
            url,
            data_dir,
            from_date,
            to_date,
            prisons,
            wait,
        } => {
            let token = tandem_auth::cli_token(
                &data_dir,
                &["PRISONER_FROM_NOMIS__MIGRATION__RW".to_string()],
                Some("tandem-cli"),
                &["read".to_string(), "write".to_string()],
            )?;
            tandem::migrate_cli::run(tandem::migrate_cli::MigrateArgs {
                domain,
                url,
                token,
                from_date,
                to_date,
                prisons,
                wait,
            })
            .await
        }
        Command::Bench { scenario } => {
            tandem::bench::init_logging();
            let result = match scenario {
                BenchScenario::Migration {
                    domain,
                    pairs,
                    prisoners,
                    data_dir,
                    workers,
                    batch_size,
                    page_size,
                    floor_rows,
                    backend,
                } => {
                    tandem::bench::migration(tandem::bench::MigrationBench {
                        domain,
                        pairs,
                        prisoners,
                        data_dir,
                        engine: tandem_sync::migration::EngineConfig {
                            workers,
                            batch_size,
                            page_size,
                            ..tandem::bench::tuned_engine()
                        },
                        floor_rows_per_statement: floor_rows,
                        backend,
                    })
                    .await?
                }
                BenchScenario::Sync {
                    rate,
                    seconds,
                    records,
                    data_dir,
                    backend,
                } => {
                    tandem::bench::sync(tandem::bench::SyncBench {
                        rate,
                        seconds,
                        data_dir,
                        backend,
                        records,
                    })
                    .await?
                }
            };
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Command::Token {
            data_dir,
            roles,
            user,
            scope,
        } => {
            let token = tandem_auth::cli_token(&data_dir, &roles, user.as_deref(), &scope)?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn up(data_dir: PathBuf, listen: SocketAddr, demo: bool) -> anyhow::Result<()> {
    init_tracing();
    let mut opts = EstateOptions::embedded(&data_dir);
    let mut names: Vec<&str> = tandem::estate::ALL_SERVICES.to_vec();
    names.push(services::BUS);
    opts.storage = StorageConfig::from_env(&data_dir, &names);
    let estate = Estate::start(opts).await?;
    if demo {
        let db = estate
            .db(services::NOMIS_PRISONER_API)
            .context("nomis database")?;
        if nomis_is_empty(db).await? {
            let summary = tandem_nomis::seed(
                db,
                &tandem_nomis::SeedOptions {
                    prisoners: 2000,
                    prisons: vec!["MDI".into(), "LEI".into(), "BXI".into(), "WSI".into()],
                    seed: 1,
                    non_association_pairs: None,
                },
            )
            .await?;
            tracing::info!(?summary, "demo: seeded a synthetic NOMIS estate");
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (id, secret) = estate.dev_client.clone();
    println!(
        "tandem is up at http://{addr}/  (data in {})",
        data_dir.display()
    );
    for s in tandem::estate::ALL_SERVICES {
        println!("  http://{addr}/{s}/swagger-ui/");
    }
    println!("dev client: id {id}  secret {secret}");
    println!(
        "token: curl -s -u {id}:{secret} -d grant_type=client_credentials http://{addr}/auth/oauth/token"
    );
    let demo_stop = tokio_util::sync::CancellationToken::new();
    let estate = std::sync::Arc::new(estate);
    let demo_task = demo.then(|| {
        let (estate, stop) = (estate.clone(), demo_stop.clone());
        tokio::spawn(async move { tandem::demo::run(&estate, stop).await })
    });
    run_until_stopped(listener, estate, async move {
        demo_stop.cancel();
        if let Some(t) = demo_task {
            let _ = t.await;
        }
    })
    .await
}

/// `tandem serve`: the named services, configured from the environment (and a file).
async fn serve(
    names: Vec<String>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    init_tracing();
    let file = match &config {
        Some(path) => tandem::serve::FileSettings::load(path)?,
        None => tandem::serve::FileSettings::default(),
    };
    let cfg = tandem::serve::ServeConfig::resolve(&names, listen, data_dir, &file, |var| {
        std::env::var(var).ok()
    })?;
    let listen = cfg.listen;
    let data_dir = cfg.options.data_dir.clone();
    let estate = Estate::start(cfg.options).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "tandem is serving {} at http://{addr}/  (data in {})",
        estate.services.join(", "),
        data_dir.display()
    );
    for s in &estate.services {
        println!("  http://{addr}/{s}/swagger-ui/");
    }
    run_until_stopped(listener, std::sync::Arc::new(estate), async {}).await
}

/// Serves the estate until Ctrl-C or SIGTERM, runs `before_shutdown`, then shuts the
/// estate down (relays drain what is committed).
async fn run_until_stopped(
    listener: tokio::net::TcpListener,
    estate: std::sync::Arc<Estate>,
    before_shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tandem_platform::serve::serve(
        listener,
        estate.router.clone(),
        tandem_platform::serve::Timeouts::default(),
        async {
            stop_signal().await;
            tracing::info!("shutting down: draining the outbox");
        },
    )
    .await?;
    before_shutdown.await;
    match std::sync::Arc::try_unwrap(estate) {
        Ok(estate) => estate.shutdown().await,
        Err(_) => tracing::warn!("estate still referenced at shutdown"),
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what systemd and Kubernetes send) on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// True when the NOMIS database holds no prisoners yet (the demo seeds only a fresh estate).
async fn nomis_is_empty(db: &tandem_platform::db::Db) -> anyhow::Result<bool> {
    use sea_orm::ConnectionTrait;
    let row = db
        .conn()
        .query_one_raw(db.statement("SELECT COUNT(*) AS n FROM offenders", vec![]))
        .await?;
    let n: i64 = match row {
        Some(r) => r.try_get("", "n")?,
        None => 0,
    };
    Ok(n == 0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn transparent_huge_pages_are_off_for_the_process() {
        super::disable_transparent_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE takes plain integers and answers in the return value.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(
            disabled, 1,
            "the process still allows transparent huge pages"
        );
    }
}
