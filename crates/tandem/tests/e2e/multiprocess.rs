//! The estate spread over processes, as in production: `tandem serve` children on one
//! PostgreSQL database (a schema per service) and RabbitMQ.
//!
//! - A: `auth nomis-prisoner-api nomis-mapping-api`
//! - B: `non-associations-api`
//! - C1, C2: `prisoner-from-nomis` (two replicas sharing the migration)
//! - D1, D2: `prisoner-to-nomis` (two replicas competing on its queues)
//!
//! A migration across them ends exact even though C1 is SIGKILLed in the middle of it and
//! started again; then changes go both ways exactly once, with no echo, while RabbitMQ is
//! restarted (`rabbitmqctl stop_app` / `start_app`) in the middle of the traffic.
//!
//! PostgreSQL (`TANDEM_TEST_DATABASE_URL`) and RabbitMQ (`TANDEM_TEST_AMQP_URL`) are
//! required: the test fails, never skips, when either is unreachable. It restarts the
//! broker's application, so other suites using the same broker see a short outage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, required_rabbitmq};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tandem serve` child; killed when dropped. When the test panics, the tail of its log
/// is printed.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(f) = std::fs::File::open(&self.log)
        {
            let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log.display()
            );
            for l in lines.iter().rev().take(25).rev() {
                eprintln!("{l}");
            }
        }
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    runs: usize,
}

impl Cluster {
    fn tandem(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TANDEM_") && !k.starts_with("TANDEM_TEST_") {
                c.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `tandem serve services…` with `peers` as `TANDEM_<SERVICE>_URL`.
    fn serve(&mut self, name: &str, services: &[&str], peers: &[(&str, &str)]) -> Proc {
        self.runs += 1;
        let port = free_port();
        let log = self.dir.path().join(format!("{name}-{}.log", self.runs));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = self.tandem();
        cmd.arg("serve")
            .args(services)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(out);
        for (service, url) in peers {
            let var = format!(
                "TANDEM_{}_URL",
                service.to_ascii_uppercase().replace('-', "_")
            );
            cmd.env(var, url);
        }
        let child = cmd.spawn().expect("spawn tandem serve");
        Proc {
            name: name.to_string(),
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

async fn wait_up(client: &reqwest::Client, p: &mut Proc, service: &str) {
    for _ in 0..300 {
        if client
            .get(format!("{}/{service}/health/ping", p.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            panic!("{} exited during start-up ({status}):\n{log}", p.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} did not come up at {}", p.name, p.base);
}

struct Api {
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.bearer_auth(&self.token).send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, url: &str) -> (u16, Value) {
        self.send(self.client.get(url)).await
    }
    async fn post(&self, url: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.client.post(url).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }
    async fn total(&self, url: &str) -> i64 {
        let (status, body) = self.get(url).await;
        assert_eq!(status, 200, "{url}: {body}");
        body["totalElements"].as_i64().expect("totalElements")
    }
}

/// NOMIS records that should migrate: per pair every closed record plus one open one.
async fn nomis_records_to_migrate(api: &Api, nomis: &str) -> i64 {
    let today = chrono::Utc::now().date_naive().to_string();
    let mut after: Option<String> = None;
    let mut expected = 0;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (status, page) = api
            .get(&format!("{nomis}/non-associations/ids/keyset?size=1000{q}"))
            .await;
        assert_eq!(status, 200, "{page}");
        let pairs = page["content"].as_array().cloned().unwrap_or_default();
        let mut calls = Vec::new();
        for p in &pairs {
            let (a, b) = (
                p["offenderNo1"].as_str().unwrap().to_string(),
                p["offenderNo2"].as_str().unwrap().to_string(),
            );
            calls.push(async move {
                api.get(&format!(
                    "{nomis}/non-associations/offender/{a}/ns-offender/{b}/all"
                ))
                .await
                .1
            });
        }
        // A few at a time, so the count does not take long.
        let mut results = Vec::new();
        let mut calls = calls.into_iter();
        loop {
            let chunk: Vec<_> = calls.by_ref().take(16).collect();
            if chunk.is_empty() {
                break;
            }
            results.extend(futures_join(chunk).await);
        }
        for all in results {
            let records = all.as_array().cloned().unwrap_or_default();
            let open = records
                .iter()
                .filter(|r| {
                    r["effectiveDate"].as_str().unwrap_or("") <= today.as_str()
                        && r["expiryDate"].as_str().is_none_or(|e| e > today.as_str())
                })
                .count() as i64;
            expected += records.len() as i64 - open + open.min(1);
        }
        match page["next"].as_str() {
            Some(n) if !pairs.is_empty() => after = Some(n.to_string()),
            _ => return expected,
        }
    }
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("ready")).collect()
}

/// The sum of a Prometheus counter over its label sets.
async fn counter(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test restarts RabbitMQ with rabbitmqctl, which cannot be run: {e}")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed (the test needs to run where rabbitmqctl may control the broker, e.g. as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker's application again if the test stops with it stopped.
struct BrokerStopped;

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

fn ordered(a: String, b: String) -> (String, String) {
    if a < b { (a, b) } else { (b, a) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estate_across_processes_migrates_exactly_and_syncs_both_ways_through_a_broker_restart()
{
    // Both servers are required; these fail loudly with instructions when they are down.
    drop(
        tandem_platform::db::testing::TestStorage::new(
            tandem_platform::db::testing::TestBackend::Postgres,
        )
        .await,
    );
    let url = required_rabbitmq().await;

    let unique = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster {
        env: vec![
            (
                "TANDEM_DATABASE_URL".into(),
                tandem_platform::db::testing::test_database_url(),
            ),
            ("TANDEM_SCHEMA_PREFIX".into(), format!("m{unique}_")),
            ("TANDEM_BROKER_URL".into(), url.clone()),
            ("TANDEM_BROKER_PREFIX".into(), format!("mp-{unique}.")),
            ("TANDEM_DATA_DIR".into(), dir.path().display().to_string()),
            ("TANDEM_DB_POOL_SIZE".into(), "3".into()),
            // A killed replica's batches come back to the others soon.
            ("TANDEM_MIGRATION_LEASE_SECS".into(), "3".into()),
            // Small batches, one at a time per replica: the migration lasts long enough
            // for the second replica to find it and for the kill to land mid-way.
            ("TANDEM_MIGRATION_BATCH_SIZE".into(), "5".into()),
            ("TANDEM_MIGRATION_WORKERS".into(), "1".into()),
            ("RUST_LOG".into(), "warn".into()),
        ],
        dir,
        runs: 0,
    };

    let seeded = cluster
        .tandem()
        .args([
            "seed",
            "--prisoners",
            "5000",
            "--pairs",
            "3000",
            "--seed",
            "11",
        ])
        .output()
        .expect("tandem seed");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let seeded: Value = serde_json::from_slice(&seeded.stdout).expect("seed summary");
    let pairs = seeded["nonAssociationPairs"].as_i64().expect("pairs");

    let client = reqwest::Client::new();
    let mut a = cluster.serve(
        "A",
        &["auth", "nomis-prisoner-api", "nomis-mapping-api"],
        &[],
    );
    wait_up(&client, &mut a, "nomis-prisoner-api").await;
    let nomis = format!("{}/nomis-prisoner-api", a.base);
    let mapping = format!("{}/nomis-mapping-api", a.base);
    let mut b = cluster.serve(
        "B",
        &["non-associations-api"],
        &[("nomis-prisoner-api", &nomis)],
    );
    wait_up(&client, &mut b, "non-associations-api").await;
    let dps = format!("{}/non-associations-api", b.base);
    let sync_peers = [
        ("nomis-prisoner-api", nomis.as_str()),
        ("non-associations-api", dps.as_str()),
        ("nomis-mapping-api", mapping.as_str()),
    ];
    let mut c1 = cluster.serve("C1", &["prisoner-from-nomis"], &sync_peers);
    let mut c2 = cluster.serve("C2", &["prisoner-from-nomis"], &sync_peers);
    let mut d1 = cluster.serve("D1", &["prisoner-to-nomis"], &sync_peers);
    let mut d2 = cluster.serve("D2", &["prisoner-to-nomis"], &sync_peers);
    for (p, s) in [
        (&mut c1, "prisoner-from-nomis"),
        (&mut c2, "prisoner-from-nomis"),
        (&mut d1, "prisoner-to-nomis"),
        (&mut d2, "prisoner-to-nomis"),
    ] {
        wait_up(&client, p, s).await;
    }

    let roles: Vec<String> = tandem_auth::roles::ALL_ROLES
        .iter()
        .map(|r| r.to_string())
        .collect();
    let scopes = ["read".to_string(), "write".to_string()];
    let api = Api {
        client: client.clone(),
        token: tandem_auth::cli_token(cluster.data_dir(), &roles, None, &scopes).unwrap(),
    };
    let ui = Api {
        client: client.clone(),
        token: tandem_auth::cli_token(
            cluster.data_dir(),
            &[
                "ROLE_READ_NON_ASSOCIATIONS".into(),
                "ROLE_WRITE_NON_ASSOCIATIONS".into(),
            ],
            Some("DPS_USER"),
            &scopes,
        )
        .unwrap(),
    };
    let expected = nomis_records_to_migrate(&api, &nomis).await;
    assert!(expected > pairs, "several records per pair: {expected}");

    // --- The migration, shared by C1 and C2; C1 is killed mid-way and started again.
    let (status, started) = api
        .post(
            &format!("{}/prisoner-from-nomis/migrate/non-associations", c1.base),
            json!({}),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["migrationId"]
        .as_str()
        .expect("migrationId")
        .to_string();
    let history = |base: &str| format!("{base}/prisoner-from-nomis/migrate/history/{id}");
    // C2 finds the migration C1 started through the ledger (it polls for active ones).
    let settled = "migration_entities_settled_total";
    loop {
        let (_, h) = api.get(&history(&c2.base)).await;
        let (by_c1, by_c2) = (
            counter(&client, &c1.base, settled).await,
            counter(&client, &c2.base, settled).await,
        );
        if h["entitiesDone"].as_i64().unwrap_or(0) >= pairs / 5 && by_c1 > 0.0 && by_c2 > 0.0 {
            assert_ne!(
                h["status"], "COMPLETED",
                "the migration finished before the kill: make it bigger"
            );
            break;
        }
        assert_ne!(
            h["status"], "COMPLETED",
            "both replicas work on the migration: C1 settled {by_c1}, C2 {by_c2}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: no graceful shutdown, C1's batches in flight are lost mid-way.
    c1.child.kill().unwrap();
    c1.child.wait().unwrap();
    let mut c1 = cluster.serve("C1", &["prisoner-from-nomis"], &sync_peers);
    wait_up(&client, &mut c1, "prisoner-from-nomis").await;
    let h = eventually(90, "the migration to complete", || async {
        let (_, h) = api.get(&history(&c1.base)).await;
        (h["status"] == "COMPLETED").then_some(h)
    })
    .await;
    assert_eq!(h["recordsFailed"], 0, "{h}");
    assert_eq!(h["entitiesDone"].as_i64(), Some(pairs), "{h}");
    assert_eq!(h["recordsMigrated"].as_i64(), Some(expected), "{h}");
    let all_dps = format!("{dps}/non-associations?includeOpen=true&includeClosed=true&size=1");
    assert_eq!(
        api.total(&all_dps).await,
        expected,
        "one DPS record per NOMIS record"
    );
    assert_eq!(
        api.total(&format!(
            "{mapping}/mapping/non-associations/migration-id/{id}?size=1"
        ))
        .await,
        expected,
        "one mapping per NOMIS record"
    );

    // --- Two-way sync across the processes, with a broker restart in the middle.
    let mut prisoners = Vec::new();
    for i in 0..40 {
        let (status, p) = api
            .post(
                &format!("{nomis}/prisoners"),
                json!({"firstName": format!("MP{i}"), "lastName": "SYNC", "dateOfBirth": "1985-06-07", "prisonId": "MDI"}),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{p}");
        prisoners.push(p["offenderNo"].as_str().unwrap().to_string());
    }
    let pairs_of: Vec<(String, String)> = prisoners
        .chunks(2)
        .map(|c| ordered(c[0].clone(), c[1].clone()))
        .collect();
    let (dps_side, nomis_side) = pairs_of.split_at(10);
    let screen = [("X-Audit-Module", "OIDSENAD")];
    let mut dps_ids = Vec::new();
    let mut nomis_seqs = Vec::new();
    let mut stopped: Option<BrokerStopped> = None;
    for (i, ((da, db), (na, nb))) in dps_side.iter().zip(nomis_side).enumerate() {
        if i == 4 {
            rabbitmqctl(&["stop_app"]);
            stopped = Some(BrokerStopped);
        }
        if i == 7 {
            rabbitmqctl(&["start_app"]);
            std::mem::forget(stopped.take());
        }
        let (status, created) = ui
            .post(
                &format!("{dps}/non-associations"),
                json!({"firstPrisonerNumber": da, "firstPrisonerRole": "VICTIM", "secondPrisonerNumber": db,
                       "secondPrisonerRole": "PERPETRATOR", "reason": "VIOLENCE", "restrictionType": "LANDING", "comment": "from DPS"}),
                &[],
            )
            .await;
        assert_eq!(
            status, 201,
            "DPS create while the broker is up or down: {created}"
        );
        dps_ids.push(created["id"].as_i64().unwrap());
        let (status, created) = api
            .post(
                &format!("{nomis}/non-associations"),
                json!({"offenderNo": na, "nsOffenderNo": nb, "reason": "RIV", "recipReason": "RIV", "type": "CELL",
                       "authorisedBy": "SO Smith", "effectiveDate": "2025-03-01", "comment": "from NOMIS"}),
                &screen,
            )
            .await;
        assert_eq!(
            status, 201,
            "NOMIS create while the broker is up or down: {created}"
        );
        nomis_seqs.push(created["typeSequence"].as_i64().unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The broker is back; everything written meanwhile arrives.
    for id in &dps_ids {
        eventually(60, "a DPS create to reach NOMIS", || async {
            let (s, m) = api
                .get(&format!(
                    "{mapping}/mapping/non-associations/non-association-id/{id}"
                ))
                .await;
            (s == 200 && m["mappingType"] == "DPS_CREATED").then_some(())
        })
        .await;
    }
    for ((na, nb), seq) in nomis_side.iter().zip(&nomis_seqs) {
        eventually(60, "a NOMIS create to reach DPS", || async {
            let (s, _) = api.get(&format!("{dps}/sync/id/{na}/{nb}/{seq}")).await;
            (s == 200).then_some(())
        })
        .await;
    }
    // A NOMIS user's edit on the screen reaches DPS.
    let ((na, nb), seq) = (&nomis_side[0], nomis_seqs[0]);
    let (status, put) = api
        .send(
            client
                .put(format!(
                    "{nomis}/non-associations/offender/{na}/ns-offender/{nb}/sequence/{seq}"
                ))
                .header("X-Audit-Module", "OIDSENAD")
                .json(&json!({"reason": "RIV", "recipReason": "RIV", "type": "WING", "authorisedBy": "SO Smith",
                              "effectiveDate": "2025-03-01", "comment": "edited in NOMIS"})),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let (_, synced) = api.get(&format!("{dps}/sync/id/{na}/{nb}/{seq}")).await;
    let edited_id = synced["id"].as_i64().expect("DPS id");
    eventually(30, "the NOMIS edit to reach DPS", || async {
        let (_, r) = api
            .get(&format!("{dps}/non-associations/{edited_id}"))
            .await;
        (r["comment"] == "edited in NOMIS" && r["restrictionType"] == "WING").then_some(())
    })
    .await;

    // Give echoes and redeliveries time to land, then: exactly once, both ways.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for ((a, b), side) in dps_side
        .iter()
        .map(|p| (p, "DPS_SYNCHRONISATION"))
        .chain(nomis_side.iter().map(|p| (p, "OIDSENAD")))
        .map(|(p, m)| (p.clone(), m))
    {
        let (_, all) = api
            .get(&format!(
                "{nomis}/non-associations/offender/{a}/ns-offender/{b}/all"
            ))
            .await;
        let records = all.as_array().cloned().unwrap_or_default();
        assert_eq!(records.len(), 1, "one NOMIS record for {a}/{b}: {all}");
        assert_eq!(
            records[0]["auditModuleName"], side,
            "NOMIS {a}/{b} was written only by its origin (no echo): {all}"
        );
        let (_, between) = ui
            .post(
                &format!("{dps}/non-associations/between"),
                json!([a, b]),
                &[],
            )
            .await;
        assert_eq!(
            between.as_array().map(Vec::len),
            Some(1),
            "one DPS record for {a}/{b}: {between}"
        );
    }
    assert_eq!(
        api.total(&all_dps).await,
        expected + 20,
        "the migrated records and the 20 new ones, nothing twice"
    );
    drop((a, b, c1, c2, d1, d2));
}
