//! `tandem migrate`: starts a migration through the API of a running instance and, with
//! `--wait`, follows it with a progress bar until it ends.

use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

pub struct MigrateArgs {
    pub domain: String,
    pub url: String,
    pub token: String,
    pub from_date: Option<String>,
    pub to_date: Option<String>,
    pub prisons: Vec<String>,
    pub wait: bool,
}

async fn call(client: &reqwest::Client, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let _ = client;
    let resp = req.send().await.context("calling tandem")?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["userMessage"].as_str().unwrap_or("no details");
        bail!("tandem answered {status}: {msg}");
    }
    Ok(body)
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = format!("{}/prisoner-from-nomis", args.url.trim_end_matches('/'));
    let mut filter = json!({});
    if let Some(d) = &args.from_date {
        filter["fromDate"] = json!(d);
    }
    if let Some(d) = &args.to_date {
        filter["toDate"] = json!(d);
    }
    if !args.prisons.is_empty() {
        filter["prisonIds"] = json!(args.prisons);
    }
    let started = call(
        &client,
        client
            .post(format!("{base}/migrate/{}", args.domain))
            .bearer_auth(&args.token)
            .json(&filter),
    )
    .await?;
    let id = started["migrationId"]
        .as_str()
        .context("no migrationId in the answer")?
        .to_string();
    let estimate = started["estimatedCount"].as_u64().unwrap_or(0);
    println!(
        "started {} migration {id}: about {estimate} to migrate",
        args.domain
    );
    if !args.wait {
        return Ok(());
    }
    let bar = ProgressBar::new(estimate.max(1));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} entities  {per_sec}  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let history = loop {
        let h = call(
            &client,
            client
                .get(format!("{base}/migrate/history/{id}"))
                .bearer_auth(&args.token),
        )
        .await?;
        let done = h["entitiesDone"].as_u64().unwrap_or(0);
        let failed = h["recordsFailed"].as_u64().unwrap_or(0);
        bar.set_position(done + failed);
        bar.set_message(format!(
            "{failed} failed, {} in flight",
            h["beingProcessedCount"].as_u64().unwrap_or(0)
        ));
        match h["status"].as_str() {
            Some("COMPLETED") | Some("CANCELLED") => break h,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    bar.finish_and_clear();
    println!(
        "{} migration {id} {}: {} records migrated, {} entities failed, {} estimated",
        args.domain,
        history["status"].as_str().unwrap_or("?").to_lowercase(),
        history["recordsMigrated"],
        history["recordsFailed"],
        history["estimatedRecordCount"],
    );
    if history["recordsFailed"].as_u64().unwrap_or(0) > 0 {
        println!(
            "failed entities: GET {base}/migrate/dead-letter-queue/{}",
            args.domain
        );
    }
    Ok(())
}
