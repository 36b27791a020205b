//! `tandem up` killed (SIGKILL) in the middle of a migration and started again: the
//! migration carries on and ends exact — one DPS record and one mapping per record migrated,
//! nothing failed, nothing duplicated. A real process, a real kill (embedded backend).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tandem_platform::db::testing::TestBackend;

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `tandem` keeps its databases in this test: SQLite files in the data directory, or
/// schemas with a unique prefix in the test PostgreSQL database.
fn storage_env(backend: TestBackend) -> Vec<(&'static str, String)> {
    match backend {
        TestBackend::Sqlite => vec![],
        TestBackend::Postgres => vec![
            (
                "TANDEM_DATABASE_URL",
                tandem_platform::db::testing::test_database_url(),
            ),
            (
                "TANDEM_SCHEMA_PREFIX",
                format!("r{}_", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            ),
        ],
    }
}

fn tandem(env: &[(&'static str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.env_remove("TANDEM_DATABASE_URL")
        .env_remove("TANDEM_SCHEMA_PREFIX");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn start(dir: &std::path::Path, port: u16, env: &[(&'static str, String)]) -> Up {
    let child = tandem(env)
        .args([
            "up",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tandem up");
    Up(child)
}

async fn get(client: &reqwest::Client, token: &str, url: &str) -> Value {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    r.json().await.unwrap_or(Value::Null)
}

async fn wait_up(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client
            .get(format!("{base}/prisoner-from-nomis/health/ping"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tandem up did not come up at {base}");
}

async fn a_migration_killed_mid_run_and_restarted_ends_exact(backend: TestBackend) {
    let dir = tempfile::tempdir().unwrap();
    let env = storage_env(backend);
    if backend == TestBackend::Postgres {
        // Makes sure the test database exists before the processes use it.
        drop(tandem_platform::db::testing::TestStorage::new(backend).await);
    }
    let seeded = tandem(&env)
        .args([
            "seed",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--prisoners",
            "8000",
            "--pairs",
            "5000",
            "--seed",
            "9",
        ])
        .output()
        .expect("tandem seed");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let roles: Vec<String> = tandem_auth::roles::ALL_ROLES
        .iter()
        .map(|r| r.to_string())
        .collect();
    let token =
        tandem_auth::cli_token(dir.path(), &roles, None, &["read".into(), "write".into()]).unwrap();
    let client = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = start(dir.path(), port, &env);
    wait_up(&client, &base).await;
    let started: Value = client
        .post(format!(
            "{base}/prisoner-from-nomis/migrate/non-associations"
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["migrationId"]
        .as_str()
        .expect("migrationId")
        .to_string();
    let history = format!("{base}/prisoner-from-nomis/migrate/history/{id}");
    loop {
        let h = get(&client, &token, &history).await;
        if h["entitiesDone"].as_i64().unwrap_or(0) >= 400 {
            assert_ne!(
                h["status"], "COMPLETED",
                "the migration finished before the kill: make it bigger"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: no graceful shutdown, batches in flight are lost mid-way.
    up.0.kill().unwrap();
    up.0.wait().unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _up = start(dir.path(), port, &env);
    wait_up(&client, &base).await;
    let history = format!("{base}/prisoner-from-nomis/migrate/history/{id}");
    let h = loop {
        let h = get(&client, &token, &history).await;
        if h["status"] == "COMPLETED" {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(h["recordsFailed"], 0, "{h}");
    assert_eq!(h["entitiesDone"], 5000, "{h}");
    let migrated = h["recordsMigrated"].as_i64().unwrap();
    let dps = get(&client, &token, &format!("{base}/non-associations-api/non-associations?includeOpen=true&includeClosed=true&size=1")).await;
    let mapped = get(
        &client,
        &token,
        &format!("{base}/nomis-mapping-api/mapping/non-associations/migration-id/{id}?size=1"),
    )
    .await;
    assert_eq!(
        dps["totalElements"].as_i64(),
        Some(migrated),
        "one DPS record per record migrated: {h}"
    );
    assert_eq!(
        mapped["totalElements"].as_i64(),
        Some(migrated),
        "one mapping per record migrated: {h}"
    );
    assert!(migrated > 5000, "several records per pair: {migrated}");
}

tandem_platform::both_backends!(a_migration_killed_mid_run_and_restarted_ends_exact);
