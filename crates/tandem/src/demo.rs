//! `tandem up --demo`: a living estate to look at. Seeds NOMIS on first start, migrates
//! non-associations with visible progress, then keeps a trickle of edits going on both
//! sides — NOMIS users on a NOMIS screen (`X-Audit-Module: OIDSENAD`) and DPS users
//! through the DPS API — and logs a one-line summary every few seconds.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tandem_auth::{LocalTokenSource, TokenSpec, roles::ALL_ROLES};
use tandem_platform::client::{LocalApp, PeerClient};
use tokio_util::sync::CancellationToken;

use crate::Estate;

/// The NOMIS screen the demo's NOMIS users work on.
const NOMIS_SCREEN: &str = "OIDSENAD";

struct Clients {
    nomis: PeerClient,
    dps: PeerClient,
    from_nomis: PeerClient,
}

fn clients(estate: &Estate) -> Clients {
    let app = LocalApp::new();
    app.set(estate.router.clone());
    let tokens = Arc::new(LocalTokenSource::with_spec(
        estate.issuer.clone(),
        TokenSpec::client(
            "tandem-demo",
            ALL_ROLES.iter().map(|r| r.to_string()).collect(),
        )
        .with_user("DEMO_USER"),
    ));
    Clients {
        nomis: PeerClient::in_process("nomis-prisoner-api", app.clone(), tokens.clone()),
        dps: PeerClient::in_process("non-associations-api", app.clone(), tokens.clone()),
        from_nomis: PeerClient::in_process("prisoner-from-nomis", app, tokens),
    }
}

/// Runs the demo until `cancel`.
pub async fn run(estate: &Estate, cancel: CancellationToken) {
    let c = clients(estate);
    if let Err(e) = migrate(&c, &cancel).await {
        tracing::warn!(error = %e, "demo: the migration did not run");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let mut summary = tokio::time::interval(Duration::from_secs(5));
    let mut made = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = summary.tick() => log_summary(estate, made).await,
            _ = tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))) => {
                if rng.random_bool(0.5) {
                    match nomis_edit(&c, &mut rng).await {
                        Ok(true) => made.0 += 1,
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "demo: NOMIS edit skipped"),
                    }
                } else {
                    match dps_edit(&c, &mut rng).await {
                        Ok(true) => made.1 += 1,
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "demo: DPS edit skipped"),
                    }
                }
            }
        }
    }
}

async fn migrate(c: &Clients, cancel: &CancellationToken) -> Result<(), String> {
    let started = c
        .from_nomis
        .request(Method::POST, "/migrate/non-associations")
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = started.json().unwrap_or(Value::Null);
    let Some(id) = body["migrationId"].as_str() else {
        // Already migrated on an earlier start, or one is in progress: carry on.
        tracing::info!(answer = %body, "demo: migration not started");
        return Ok(());
    };
    tracing::info!(migration_id = id, estimated = %body["estimatedCount"], "demo: migrating non-associations");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let h: Value = c
            .from_nomis
            .get_json(format!("/migrate/history/{id}"))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            status = %h["status"], done = %h["entitiesDone"], estimated = %h["estimatedRecordCount"],
            records = %h["recordsMigrated"], failed = %h["recordsFailed"], "demo: migration progress"
        );
        if h["status"] == "COMPLETED" || h["status"] == "CANCELLED" {
            return Ok(());
        }
    }
}

/// A random NOMIS pair from the first pages of ids.
async fn random_pair(c: &Clients, rng: &mut StdRng) -> Result<Option<(String, String)>, String> {
    let page: Value = c
        .nomis
        .get_json(format!(
            "/non-associations/ids?page={}&size=20",
            rng.random_range(0..10)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let Some(items) = page["content"].as_array().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let p = &items[rng.random_range(0..items.len())];
    Ok(p["offenderNo1"]
        .as_str()
        .zip(p["offenderNo2"].as_str())
        .map(|(a, b)| (a.to_string(), b.to_string())))
}

/// A NOMIS user amends the comment of an open non-association on the NOMIS screen.
async fn nomis_edit(c: &Clients, rng: &mut StdRng) -> Result<bool, String> {
    let Some((a, b)) = random_pair(c, rng).await? else {
        return Ok(false);
    };
    let open = c
        .nomis
        .find_json::<Value>(format!("/non-associations/offender/{a}/ns-offender/{b}"))
        .await
        .map_err(|e| e.to_string())?;
    let Some(r) = open else { return Ok(false) };
    let seq = r["typeSequence"].as_i64().unwrap_or(1);
    let body = json!({
        "reason": r["reason"], "recipReason": r["recipReason"], "type": r["type"],
        "authorisedBy": r["authorisedBy"], "effectiveDate": r["effectiveDate"], "expiryDate": r["expiryDate"],
        "comment": format!("Reviewed on the wing ({})", rng.random_range(1..1000)),
    });
    c.nomis
        .request(
            Method::PUT,
            format!("/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"),
        )
        .header("x-audit-module", NOMIS_SCREEN)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .ok()
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// A DPS user amends an open non-association's comment in DPS.
async fn dps_edit(c: &Clients, rng: &mut StdRng) -> Result<bool, String> {
    let page: Value = c
        .dps
        .get_json(format!(
            "/non-associations?includeClosed=false&page={}&size=20",
            rng.random_range(0..10)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let Some(items) = page["content"].as_array().filter(|a| !a.is_empty()) else {
        return Ok(false);
    };
    let Some(id) = items[rng.random_range(0..items.len())]["id"].as_i64() else {
        return Ok(false);
    };
    c.dps
        .request(Method::PATCH, format!("/non-associations/{id}"))
        .json(&json!({"comment": format!("Updated in DPS ({})", rng.random_range(1..1000))}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .ok()
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Sums the samples of a Prometheus metric whose labels contain `label` ("" for all).
fn metric_sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        .max(0.0) as u64
}

async fn log_summary(estate: &Estate, made: (u64, u64)) {
    let text = crate::estate::metrics_handle().render();
    let mut dlq = 0u64;
    if let Ok(queues) = estate.bus.list_queues().await {
        for q in queues {
            if let Ok(s) = estate.bus.stats(&q).await {
                dlq += s.dlq_depth;
            }
        }
    }
    tracing::info!(
        "demo: edits made nomis={} dps={} | applied nomis→dps={} dps→nomis={} | echoes suppressed={} | retries={} | on DLQs={}",
        made.0,
        made.1,
        metric_sum(&text, "sync_changes_applied_total", "from_nomis"),
        metric_sum(&text, "sync_changes_applied_total", "to_nomis"),
        metric_sum(&text, "sync_echoes_suppressed_total", ""),
        metric_sum(&text, "messages_processed_total", "outcome=\"retry\""),
        dlq,
    );
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn sums_prometheus_samples() {
        let text = "# TYPE x counter\nsync_changes_applied_total{direction=\"from_nomis\",domain=\"na\"} 3\n\
                    sync_changes_applied_total{direction=\"to_nomis\",domain=\"na\"} 2\nsync_changes_applied_totalx 9\n";
        assert_eq!(
            metric_sum(text, "sync_changes_applied_total", "from_nomis"),
            3
        );
        assert_eq!(metric_sum(text, "sync_changes_applied_total", ""), 5);
    }
}
