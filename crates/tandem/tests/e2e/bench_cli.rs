//! `tandem bench` on the production backends: the benchmarks of BENCHMARKS.md must run on
//! PostgreSQL + RabbitMQ as they do embedded, count exactly, and leave no schemas behind.
//! Small sizes: this checks the plumbing and the counts, not the speed (numbers come from
//! the benchmarks themselves, never from a timed test).

use std::process::Command;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::Value;
use tandem_platform::db::testing::{TestBackend, TestStorage, test_database_url};

use crate::support::required_rabbitmq;

/// Runs `tandem bench ARGS… --database-url … --broker-url …`; its JSON and its pid.
fn bench(args: &[&str], database_url: &str, broker_url: &str) -> (Value, u32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TANDEM_") && !k.starts_with("TANDEM_TEST_") {
            c.env_remove(k);
        }
    }
    let child = c
        .arg("bench")
        .args(args)
        .args(["--database-url", database_url, "--broker-url", broker_url])
        .env("TANDEM_DB_POOL_SIZE", "3")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tandem bench starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("tandem bench runs");
    assert!(
        out.status.success(),
        "tandem bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tandem bench printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (json, pid)
}

/// The run was on PostgreSQL + RabbitMQ and dropped its schemas afterwards.
async fn assert_production_run_cleaned_up(json: &Value, database_url: &str, prefix: &str) {
    assert_eq!(json["backend"]["storage"], "postgresql", "{json}");
    assert_eq!(json["backend"]["bus"], "rabbitmq", "{json}");
    assert_eq!(
        schemas_starting(database_url, prefix).await,
        0,
        "the run's schemas ({prefix}*) are dropped"
    );
}

async fn schemas_starting(url: &str, prefix: &str) -> i64 {
    let conn = Database::connect(url).await.expect("PostgreSQL");
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM pg_namespace WHERE starts_with(nspname, $1)",
            [prefix.into()],
        ))
        .await
        .expect("count schemas")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmarks_run_on_postgres_and_rabbitmq_and_count_exactly() {
    // Makes sure the test database exists (and fails loudly when PostgreSQL is down).
    let _storage = TestStorage::new(TestBackend::Postgres).await;
    let database_url = test_database_url();
    let broker_url = required_rabbitmq().await;

    let (m, pid) = bench(
        &["migration", "--pairs", "300", "--batch-size", "50"],
        &database_url,
        &broker_url,
    );
    assert_production_run_cleaned_up(&m, &database_url, &format!("bench_migration_{pid}_")).await;
    assert_eq!(m["failed"], 0, "{m}");
    assert_eq!(m["entities"], 300, "{m}");
    let records = m["records"].as_i64().expect("records");
    assert!(records > 300, "closed and open records per pair: {m}");
    assert_eq!(m["dps_rows"].as_i64(), Some(records), "{m}");
    assert_eq!(m["floor_rows"].as_i64(), Some(records), "{m}");
    assert!(m["floor_per_second"].as_f64().unwrap_or(0.0) > 0.0, "{m}");
    let start = m["start_seconds"].as_f64().expect("start_seconds");
    assert!(
        (0.0..=m["seconds"].as_f64().unwrap_or(0.0)).contains(&start),
        "the start (the estimate) is part of the migration's time: {m}"
    );
    assert!(
        m["floor_method"]
            .as_str()
            .is_some_and(|s| s.contains("PostgreSQL")),
        "{m}"
    );

    let (s, pid) = bench(
        &["sync", "--rate", "20", "--seconds", "3", "--records", "20"],
        &database_url,
        &broker_url,
    );
    assert_production_run_cleaned_up(&s, &database_url, &format!("bench_sync_{pid}_")).await;
    assert_eq!(s["changes"], 60, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    assert_eq!(s["write_failed"], 0, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    for direction in ["dps_to_nomis", "nomis_to_dps"] {
        assert_eq!(s[direction]["seen"], 30, "{direction}: {s}");
    }
}
