//! Migration NOMIS → DPS (reference migration-sync §2.4): the unit is a pair of prisoners,
//! keyed `A1234BC/B5678CD` (smaller first). Per pair every closed NOMIS record and the latest
//! open one migrate (DPS allows one open per pair; NOMIS allows several); others are
//! ignored and logged.
//!
//! A batch of pairs costs a handful of calls, not a few per record: one NOMIS bulk read of
//! every pair's details, one mapping look-up for all pairs, one DPS `/migrate/batch`
//! (one transaction) and one mapping `/batch` create. When a batch call is refused, the
//! batch falls back to one call per pair so one bad pair does not fail its neighbours.
//!
//! Idempotent per pair: mapped records are skipped; DPS migrate returns the record already
//! migrated from the same NOMIS record (so a lost response recovers without a duplicate);
//! identical mapping creates are no-ops. The count of a pair is the number of its selected
//! records whose mapping carries this migration's label, so it stays exact across crashes
//! and a second migration counts 0.

use std::collections::HashMap;

use futures::{StreamExt, stream};
use serde_json::Value;
use tandem_platform::client::PeerError;
use tandem_sync::migration::{
    DomainError, EntityError, EntityOutcome, MigrationDomain, MigrationFilter,
};

use super::clients::{
    DpsRequest, MappingCreateError, MappingDto, NomisIdPage, NomisRecord, dps_request,
};
use super::{AdapterError, Peers};
use crate::sync::SyncResult;

/// The migration type in URLs and history.
pub const MIGRATION_TYPE: &str = "non-associations";

/// Mapping types (reference §5.1).
pub const MIGRATED: &str = "MIGRATED";

/// Concurrent per-pair fall-backs within one batch.
const CONCURRENCY: usize = 16;

/// Pairs or mappings per mapping-service batch call (the service's limit). A batch
/// larger than that is written in several calls; each is all or nothing, and a
/// duplicate in a later one sends the batch to the per-pair path, where the mappings
/// already written are identical re-creates.
const MAPPING_BATCH: usize = 1000;

/// Pairs per NOMIS bulk read (the endpoint's limit).
const NOMIS_PAIRS_PER_READ: usize = 1000;

type NomisKey = (String, String, i32);

/// The non-associations [`MigrationDomain`].
pub struct NonAssociationsMigration {
    peers: Peers,
}

impl NonAssociationsMigration {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }
}

/// A query string of `pairs` plus the filter's dates.
fn query(filter: &MigrationFilter, pairs: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    if let Some(d) = filter.from_date {
        q.append_pair("fromDate", &d.to_string());
    }
    if let Some(d) = filter.to_date {
        q.append_pair("toDate", &d.to_string());
    }
    q.finish()
}

/// Parses a key `A1234BC/B5678CD` into the sorted pair.
pub fn parse_key(key: &str) -> Result<(String, String), String> {
    let (a, b) = key
        .split_once('/')
        .ok_or_else(|| format!("'{key}' is not a pair key (expected A1234BC/B5678CD)"))?;
    for p in [a, b] {
        tandem_platform::ids::PrisonerNumber::parse(p)
            .map_err(|e| format!("'{key}' is not a pair key: {e}"))?;
    }
    if a == b {
        return Err(format!("'{key}' pairs a prisoner with himself"));
    }
    let (a, b) = crate::nomis_codes::ordered_pair(a, b);
    Ok((a.to_string(), b.to_string()))
}

/// Which NOMIS records of a pair migrate: every closed one and the latest open one
/// (latest effective date, then highest type sequence).
pub fn select(
    records: Vec<NomisRecord>,
    today: chrono::NaiveDate,
) -> (Vec<NomisRecord>, Vec<NomisRecord>) {
    let latest_open = records
        .iter()
        .filter(|r| r.is_open(today))
        .max_by_key(|r| (r.effective_date, r.type_sequence))
        .map(|r| r.type_sequence);
    records
        .into_iter()
        .partition(|r| !r.is_open(today) || Some(r.type_sequence) == latest_open)
}

/// DPS refusals during migration are the data's fault (including 409 "open exists"):
/// permanent; an unreachable or failing DPS is transient.
fn dps_error(context: &str, e: PeerError) -> AdapterError {
    match &e {
        PeerError::Status {
            status, message, ..
        } if status.is_client_error() => {
            AdapterError::Permanent(format!("{context}: DPS refused the records: {message}"))
        }
        _ => AdapterError::from_peer(context, e),
    }
}

/// One pair's state as the batch goes.
struct PairWork {
    pair: (String, String),
    selected: Vec<NomisRecord>,
    /// Mappings of the pair, by NOMIS key (before and after this batch's writes).
    mapped: HashMap<NomisKey, MappingDto>,
    outcome: Option<EntityError>,
}

impl PairWork {
    fn unmapped(&self) -> Vec<&NomisRecord> {
        self.selected
            .iter()
            .filter(|r| !self.mapped.contains_key(&key_of(r)))
            .collect()
    }

    fn fail(&mut self, e: impl Into<EntityError>) {
        if self.outcome.is_none() {
            self.outcome = Some(e.into());
        }
    }

    fn count(&self, migration_id: &str) -> u32 {
        self.selected
            .iter()
            .filter(|r| {
                self.mapped
                    .get(&key_of(r))
                    .is_some_and(|m| m.label.as_deref() == Some(migration_id))
            })
            .count() as u32
    }

    fn dps_body(&self) -> DpsRequest<'_> {
        let items = self
            .unmapped()
            .into_iter()
            .map(|r| r.dps_item(None))
            .collect();
        dps_request(&self.pair.0, items)
    }
}

/// Calls `call` on consecutive chunks of at most `size` items, one after another, and
/// concatenates the answers; the first error stops the rest.
async fn in_chunks<'a, T, R, E, F, Fut>(
    items: &'a [T],
    size: usize,
    mut call: F,
) -> Result<Vec<R>, E>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<R>, E>>,
{
    let mut all = Vec::new();
    for chunk in items.chunks(size) {
        all.extend(call(chunk).await?);
    }
    Ok(all)
}

fn key_of(r: &NomisRecord) -> NomisKey {
    let (a, b) = crate::nomis_codes::ordered_pair(&r.offender_no, &r.ns_offender_no);
    (a.to_string(), b.to_string(), r.type_sequence)
}

fn mappings_for(results: &[SyncResult], migration_id: &str) -> Vec<MappingDto> {
    results
        .iter()
        .map(|r| {
            MappingDto::new(
                r.id,
                &r.first_prisoner_number,
                &r.second_prisoner_number,
                r.type_sequence,
                MIGRATED,
                Some(migration_id),
            )
        })
        .collect()
}

impl NonAssociationsMigration {
    async fn read_nomis(&self, work: &mut [PairWork]) {
        let today = tandem_platform::time::london_today();
        let pairs: Vec<(String, String)> = work
            .iter()
            .filter(|w| w.outcome.is_none())
            .map(|w| w.pair.clone())
            .collect();
        let mut by_pair: HashMap<(String, String), Vec<NomisRecord>> = HashMap::new();
        for chunk in pairs.chunks(NOMIS_PAIRS_PER_READ) {
            match self.peers.nomis_details_of_pairs(chunk).await {
                Ok(records) => {
                    for r in records {
                        let r = r.primary();
                        by_pair
                            .entry((r.offender_no.clone(), r.ns_offender_no.clone()))
                            .or_default()
                            .push(r);
                    }
                }
                Err(e) => {
                    let failed: std::collections::HashSet<&(String, String)> =
                        chunk.iter().collect();
                    for w in work.iter_mut().filter(|w| failed.contains(&w.pair)) {
                        w.fail(e.clone());
                    }
                }
            }
        }
        for w in work.iter_mut().filter(|w| w.outcome.is_none()) {
            let records = by_pair.remove(&w.pair).unwrap_or_default();
            let (selected, ignored) = select(records, today);
            for r in &ignored {
                tracing::info!(
                    pair = %format!("{}/{}", w.pair.0, w.pair.1),
                    type_sequence = r.type_sequence,
                    "non-association-migration-entity-ignored: an older open record; only the latest open one migrates"
                );
            }
            w.selected = selected;
        }
    }

    async fn read_mappings(&self, work: &mut [PairWork]) {
        let pairs: Vec<(String, String)> = work
            .iter()
            .filter(|w| w.outcome.is_none() && !w.selected.is_empty())
            .map(|w| w.pair.clone())
            .collect();
        if pairs.is_empty() {
            return;
        }
        match in_chunks(&pairs, MAPPING_BATCH, |c| self.peers.mappings_of_pairs(c)).await {
            Ok(mappings) => {
                let mut by_pair: HashMap<(String, String), Vec<MappingDto>> = HashMap::new();
                for m in mappings {
                    by_pair
                        .entry((m.first_offender_no.clone(), m.second_offender_no.clone()))
                        .or_default()
                        .push(m);
                }
                for w in work.iter_mut() {
                    for m in by_pair.remove(&w.pair).unwrap_or_default() {
                        w.mapped.insert(m.nomis_key(), m);
                    }
                }
            }
            Err(e) => {
                for w in work.iter_mut() {
                    w.fail(e.clone());
                }
            }
        }
    }

    /// Writes DPS for every pair with unmapped records; returns the results per pair index.
    async fn write_dps(&self, work: &mut [PairWork]) -> HashMap<usize, Vec<SyncResult>> {
        let todo: Vec<usize> = (0..work.len())
            .filter(|&i| work[i].outcome.is_none() && !work[i].unmapped().is_empty())
            .collect();
        let mut out = HashMap::new();
        if todo.is_empty() {
            return out;
        }
        let bodies: Vec<DpsRequest<'_>> = todo.iter().map(|&i| work[i].dps_body()).collect();
        match self.peers.dps_migrate_batch(&bodies).await {
            Ok(results) if results.len() == todo.len() => {
                out.extend(todo.into_iter().zip(results));
                return out;
            }
            Ok(_) => tracing::warn!(
                "DPS migrate batch answered the wrong number of results; going pair by pair"
            ),
            Err(AdapterError::Transient(m)) => {
                for &i in &todo {
                    work[i].fail(EntityError::Retryable(m.clone()));
                }
                return out;
            }
            // One pair's data is refused: find it by going pair by pair.
            Err(AdapterError::Permanent(_)) => {}
        }
        // The futures are made first: a stream over a borrowing closure is not `Send` for
        // every lifetime, which the trait's future must be.
        let calls: Vec<_> = bodies
            .iter()
            .map(|body| self.dps_migrate_one(body))
            .collect();
        let singles: Vec<Result<Vec<SyncResult>, AdapterError>> =
            stream::iter(calls).buffered(CONCURRENCY).collect().await;
        for (i, r) in todo.into_iter().zip(singles) {
            match r {
                Ok(results) => {
                    out.insert(i, results);
                }
                Err(e) => work[i].fail(e),
            }
        }
        out
    }

    /// `POST /migrate` for one pair, a refusal named as permanent.
    async fn dps_migrate_one(
        &self,
        body: &DpsRequest<'_>,
    ) -> Result<Vec<SyncResult>, AdapterError> {
        self.peers
            .dps_post("/migrate", body)
            .await
            .map_err(|e| dps_error("migrating to DPS", e))
    }

    async fn write_mappings(
        &self,
        migration_id: &str,
        work: &mut [PairWork],
        written: HashMap<usize, Vec<SyncResult>>,
    ) {
        let mut all = Vec::new();
        let mut owners = Vec::new();
        for (&i, results) in &written {
            for m in mappings_for(results, migration_id) {
                all.push(m);
                owners.push(i);
            }
        }
        if all.is_empty() {
            return;
        }
        match in_chunks(&all, MAPPING_BATCH, |c| self.peers.create_mappings(c)).await {
            Ok(stored) => {
                let by_pair: HashMap<(String, String), usize> =
                    written.keys().map(|&i| (work[i].pair.clone(), i)).collect();
                for m in stored {
                    let pair = (m.first_offender_no.clone(), m.second_offender_no.clone());
                    if let Some(&i) = by_pair.get(&pair) {
                        work[i].mapped.insert(m.nomis_key(), m);
                    }
                }
                return;
            }
            Err(MappingCreateError::Other(e)) => {
                for &i in &owners {
                    work[i].fail(e.clone());
                }
                return;
            }
            Err(MappingCreateError::Duplicate(_)) => {}
        }
        // A duplicate somewhere rolled the batch back: per pair, to report the right one.
        let per_pair: Vec<(usize, Vec<MappingDto>)> = written
            .iter()
            .map(|(&i, results)| (i, mappings_for(results, migration_id)))
            .collect();
        let results: Vec<(usize, Result<Vec<MappingDto>, MappingCreateError>)> = stream::iter(
            per_pair
                .into_iter()
                .map(|(i, ms)| async move { (i, self.peers.create_mappings(&ms).await) }),
        )
        .buffered(CONCURRENCY)
        .collect()
        .await;
        for (i, r) in results {
            match r {
                Ok(stored) => {
                    for m in stored {
                        work[i].mapped.insert(m.nomis_key(), m);
                    }
                }
                Err(MappingCreateError::Duplicate(msg)) => {
                    tracing::warn!(
                        pair = %format!("{}/{}", work[i].pair.0, work[i].pair.1),
                        migration_id,
                        "nomis-migration-non-association-duplicate: {msg}"
                    );
                    work[i].fail(EntityError::Permanent(format!(
                        "duplicate mapping: the NOMIS record or the DPS record is already mapped to another record ({msg})"
                    )))
                }
                Err(MappingCreateError::Other(e)) => work[i].fail(e),
            }
        }
    }
}

#[async_trait::async_trait]
impl MigrationDomain for NonAssociationsMigration {
    fn migration_type(&self) -> &'static str {
        MIGRATION_TYPE
    }

    async fn estimate(&self, filter: &MigrationFilter) -> Result<u64, DomainError> {
        let q = query(filter, &[("page", "0".into()), ("size", "1".into())]);
        let page: Value = self
            .peers
            .nomis
            .get_json(format!("/non-associations/ids?{q}"))
            .await
            .map_err(|e| DomainError(e.to_string()))?;
        page["totalElements"]
            .as_u64()
            .ok_or_else(|| DomainError("NOMIS answered a page without totalElements".into()))
    }

    async fn next_keys(
        &self,
        filter: &MigrationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        let mut pairs = vec![("size", limit.max(1).to_string())];
        if let Some(a) = after {
            pairs.push(("after", a.to_string()));
        }
        let q = query(filter, &pairs);
        let page: NomisIdPage = self
            .peers
            .nomis
            .get_json(format!("/non-associations/ids/keyset?{q}"))
            .await
            .map_err(|e| DomainError(e.to_string()))?;
        Ok(page
            .content
            .into_iter()
            .map(|p| format!("{}/{}", p.offender_no1, p.offender_no2))
            .collect())
    }

    async fn migrate(&self, migration_id: &str, keys: &[String]) -> Vec<EntityOutcome> {
        let mut work: Vec<PairWork> = keys
            .iter()
            .map(|k| {
                let (pair, outcome) = match parse_key(k) {
                    Ok(p) => (p, None),
                    Err(e) => (
                        (String::new(), String::new()),
                        Some(EntityError::Permanent(e)),
                    ),
                };
                PairWork {
                    pair,
                    selected: Vec::new(),
                    mapped: HashMap::new(),
                    outcome,
                }
            })
            .collect();
        self.read_nomis(&mut work).await;
        self.read_mappings(&mut work).await;
        let written = self.write_dps(&mut work).await;
        self.write_mappings(migration_id, &mut work, written).await;
        work.into_iter()
            .map(|w| match w.outcome {
                Some(e) => Err(e),
                None => Ok(w.count(migration_id)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn rec(seq: i32, effective: &str, expiry: Option<&str>) -> NomisRecord {
        NomisRecord {
            offender_no: "A1234AA".into(),
            ns_offender_no: "B1234BB".into(),
            type_sequence: seq,
            reason: "VIC".into(),
            recip_reason: "PER".into(),
            na_type: "WING".into(),
            authorised_by: None,
            updated_by: None,
            effective_date: d(effective),
            expiry_date: expiry.map(d),
            comment: None,
            audit_module_name: None,
        }
    }

    #[test]
    fn selects_closed_and_latest_open() {
        let today = d("2024-06-01");
        let (sel, ign) = select(
            vec![
                rec(1, "2020-01-01", Some("2021-01-01")),
                rec(2, "2022-01-01", None),
                rec(3, "2023-01-01", None),
                rec(4, "2021-01-01", Some("2030-01-01")),
            ],
            today,
        );
        let seqs: Vec<i32> = sel.iter().map(|r| r.type_sequence).collect();
        assert_eq!(seqs, vec![1, 3]);
        let ignored: Vec<i32> = ign.iter().map(|r| r.type_sequence).collect();
        assert_eq!(ignored, vec![2, 4]);
    }

    #[test]
    fn keys_parse_sorted_and_reject_nonsense() {
        assert_eq!(
            parse_key("B1234BB/A1234AA").unwrap(),
            ("A1234AA".to_string(), "B1234BB".to_string())
        );
        assert!(parse_key("A1234AA").is_err());
        assert!(parse_key("A1234AA/A1234AA").is_err());
        assert!(parse_key("A1234AA/nope").is_err());
    }

    #[test]
    fn primary_swaps_reasons_with_numbers() {
        let mut r = rec(1, "2020-01-01", None);
        std::mem::swap(&mut r.offender_no, &mut r.ns_offender_no);
        let p = r.primary();
        assert_eq!(p.offender_no, "A1234AA");
        assert_eq!((p.reason.as_str(), p.recip_reason.as_str()), ("PER", "VIC"));
    }
}
