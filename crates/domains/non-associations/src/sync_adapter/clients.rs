//! The calls the adapter makes to NOMIS, DPS and the mapping service, with the peers' JSON
//! contracts as small local types (the HTTP API is the contract, not the peers' crates).

use chrono::NaiveDate;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AdapterError, Peers, seg};
use crate::api::dto::LegacyNonAssociation;
use crate::nomis_codes::{is_open_on, ordered_pair};
use crate::sync::SyncResult;

/// NOMIS limits (`OFFENDER_NA_DETAILS`): comment 240, authorised-by 60 characters.
const NOMIS_MAX_COMMENT: usize = 240;
const NOMIS_MAX_AUTHORISED_BY: usize = 60;

/// A pair in the body of NOMIS's bulk read (`NonAssociationIdResponse`), borrowed from the
/// batch rather than built as a JSON object per pair.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NomisPair<'a> {
    offender_no1: &'a str,
    offender_no2: &'a str,
}

/// A pair in the body of the mapping service's look-up by pairs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MappingPair<'a> {
    first_offender_no: &'a str,
    second_offender_no: &'a str,
}

/// A page of NOMIS's keyset id listing (`/non-associations/ids/keyset`); only the pairs
/// are read.
#[derive(Debug, Deserialize)]
pub struct NomisIdPage {
    pub content: Vec<NomisIdPair>,
}

/// One pair of a [`NomisIdPage`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NomisIdPair {
    pub offender_no1: String,
    pub offender_no2: String,
}

/// One NOMIS non-association detail, seen from `offender_no`'s side (NOMIS
/// `NonAssociationResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NomisRecord {
    pub offender_no: String,
    pub ns_offender_no: String,
    pub type_sequence: i32,
    /// `offender_no`'s reason.
    pub reason: String,
    /// `ns_offender_no`'s reason.
    pub recip_reason: String,
    #[serde(rename = "type")]
    pub na_type: String,
    #[serde(default)]
    pub authorised_by: Option<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
    pub effective_date: NaiveDate,
    #[serde(default)]
    pub expiry_date: Option<NaiveDate>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub audit_module_name: Option<String>,
}

impl NomisRecord {
    pub fn is_open(&self, today: NaiveDate) -> bool {
        is_open_on(self.effective_date, self.expiry_date, today)
    }

    /// The same record seen from the smaller prisoner number's side.
    pub fn primary(mut self) -> Self {
        if self.offender_no > self.ns_offender_no {
            std::mem::swap(&mut self.offender_no, &mut self.ns_offender_no);
            std::mem::swap(&mut self.reason, &mut self.recip_reason);
        }
        self
    }

    /// One item of the DPS `/sync` and `/migrate` body (seed 002 plus `typeSequence`/`id`);
    /// the request's `prisonerNumber` must be `offender_no`.
    pub fn dps_item(&self, id: Option<i64>) -> DpsItem<'_> {
        DpsItem {
            id,
            type_sequence: self.type_sequence,
            reason_code: &self.reason,
            type_code: &self.na_type,
            effective_date: self.effective_date,
            expiry_date: self.expiry_date,
            authorised_by: self
                .authorised_by
                .as_deref()
                .filter(|a| !a.trim().is_empty()),
            comments: self.comment.as_deref(),
            prisoner_non_association: DpsOtherPrisoner {
                prisoner_number: &self.ns_offender_no,
                reason_code: &self.recip_reason,
            },
            last_modified_by_username: self.updated_by.as_deref().filter(|u| {
                !u.trim().is_empty() && u.chars().count() <= crate::model::MAX_USER_LEN
            }),
        }
    }
}

/// One item of a DPS `/sync` or `/migrate` body, borrowed from the [`NomisRecord`] it is
/// written from (typed rather than built as a JSON document: a migration batch writes
/// hundreds of them).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DpsItem<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub type_sequence: i32,
    pub reason_code: &'a str,
    pub type_code: &'a str,
    pub effective_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorised_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<&'a str>,
    pub prisoner_non_association: DpsOtherPrisoner<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_by_username: Option<&'a str>,
}

/// The other prisoner of a [`DpsItem`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DpsOtherPrisoner<'a> {
    pub prisoner_number: &'a str,
    pub reason_code: &'a str,
}

/// The DPS `/sync` / `/migrate` body for records of one prisoner (`offender_no` of each).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DpsRequest<'a> {
    pub prisoner_number: &'a str,
    pub non_associations: Vec<DpsItem<'a>>,
}

/// The DPS `/sync` / `/migrate` body for records of one prisoner (`offender_no` of each).
pub fn dps_request<'a>(prisoner: &'a str, items: Vec<DpsItem<'a>>) -> DpsRequest<'a> {
    DpsRequest {
        prisoner_number: prisoner,
        non_associations: items,
    }
}

/// A non-association mapping (mapping service `NonAssociationMapping`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingDto {
    pub non_association_id: i64,
    pub first_offender_no: String,
    pub second_offender_no: String,
    pub nomis_type_sequence: i32,
    #[serde(default)]
    pub label: Option<String>,
    pub mapping_type: String,
}

impl MappingDto {
    /// A mapping for DPS `id` and the NOMIS record (`a`, `b`, `seq`), pair sorted.
    pub fn new(
        id: i64,
        a: &str,
        b: &str,
        seq: i32,
        mapping_type: &str,
        label: Option<&str>,
    ) -> Self {
        let (first, second) = ordered_pair(a, b);
        Self {
            non_association_id: id,
            first_offender_no: first.to_string(),
            second_offender_no: second.to_string(),
            nomis_type_sequence: seq,
            label: label.map(str::to_string),
            mapping_type: mapping_type.to_string(),
        }
    }

    pub fn nomis_key(&self) -> (String, String, i32) {
        (
            self.first_offender_no.clone(),
            self.second_offender_no.clone(),
            self.nomis_type_sequence,
        )
    }
}

/// A mapping create that failed.
#[derive(Debug)]
pub enum MappingCreateError {
    /// 409: a different mapping holds the DPS id or the NOMIS key. Terminal and reported.
    Duplicate(String),
    Other(AdapterError),
}

/// The NOMIS create body (`CreateNonAssociationRequest`) for a DPS record.
pub fn nomis_create_body(na: &LegacyNonAssociation, today: NaiveDate) -> Value {
    let effective = parse_date(&na.effective_date).unwrap_or(today).min(today);
    json!({
        "offenderNo": na.offender_no,
        "nsOffenderNo": na.offender_non_association.offender_no,
        "reason": na.reason_code.code(),
        "recipReason": na.offender_non_association.reason_code.code(),
        "type": na.type_code.code(),
        "authorisedBy": na.authorised_by.as_deref().map(|a| truncate(a, NOMIS_MAX_AUTHORISED_BY)),
        "effectiveDate": effective,
        "comment": truncate(&na.comments, NOMIS_MAX_COMMENT),
    })
}

/// The NOMIS update body (`UpdateNonAssociationRequest`, a full replacement) for a DPS
/// record, from `offender_no`'s side.
pub fn nomis_update_body(na: &LegacyNonAssociation, today: NaiveDate) -> Value {
    let mut body = nomis_create_body(na, today);
    let expiry = na
        .expiry_date
        .as_deref()
        .and_then(parse_date)
        .map(|d| d.min(today));
    if let (Some(o), Some(e)) = (body.as_object_mut(), expiry) {
        o.insert("expiryDate".into(), json!(e));
    }
    body
}

/// Whether the NOMIS record is the one `nomis_create_body` would write for `na` (same
/// pair, reasons per side, type and effective date): a NOMIS write whose mapping was lost.
pub fn matches_dps(record: &NomisRecord, na: &LegacyNonAssociation, today: NaiveDate) -> bool {
    let effective = parse_date(&na.effective_date).unwrap_or(today).min(today);
    let other = &na.offender_non_association;
    let (reason, recip) = if record.offender_no == na.offender_no
        && record.ns_offender_no == other.offender_no
    {
        (&record.reason, &record.recip_reason)
    } else if record.offender_no == other.offender_no && record.ns_offender_no == na.offender_no {
        (&record.recip_reason, &record.reason)
    } else {
        return false;
    };
    reason == na.reason_code.code()
        && recip == other.reason_code.code()
        && record.na_type == na.type_code.code()
        && record.effective_date == effective
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Peers {
    // ---- NOMIS ----

    /// Every NOMIS detail of the pair (none when the pair or a prisoner is unknown).
    pub async fn nomis_all(&self, a: &str, b: &str) -> Result<Vec<NomisRecord>, AdapterError> {
        let path = format!(
            "/non-associations/offender/{}/ns-offender/{}/all",
            seg(a),
            seg(b)
        );
        self.nomis
            .find_json::<Vec<NomisRecord>>(path)
            .await
            .map(Option::unwrap_or_default)
            .map_err(|e| AdapterError::from_peer("reading the NOMIS non-associations", e))
    }

    /// Every NOMIS detail of each sorted pair, from the first number's side, in one call
    /// (`POST /non-associations/pairs/details`, at most 1000 pairs).
    pub async fn nomis_details_of_pairs(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Vec<NomisRecord>, AdapterError> {
        let body: Vec<NomisPair<'_>> = pairs
            .iter()
            .map(|(a, b)| NomisPair {
                offender_no1: a,
                offender_no2: b,
            })
            .collect();
        self.nomis
            .request(Method::POST, "/non-associations/pairs/details")
            .json(&body)
            .send()
            .await
            .and_then(|r| r.ok())
            .and_then(|r| r.json())
            .map_err(|e| {
                AdapterError::from_peer("reading the NOMIS non-associations of a batch", e)
            })
    }

    /// One NOMIS detail; `None` when it does not exist (any more).
    pub async fn nomis_one(
        &self,
        a: &str,
        b: &str,
        seq: i32,
    ) -> Result<Option<NomisRecord>, AdapterError> {
        let path = format!(
            "/non-associations/offender/{}/ns-offender/{}/sequence/{seq}",
            seg(a),
            seg(b)
        );
        self.nomis
            .find_json(path)
            .await
            .map_err(|e| AdapterError::from_peer("reading the NOMIS non-association", e))
    }

    // ---- mapping ----

    pub async fn mapping_by_nomis(
        &self,
        a: &str,
        b: &str,
        seq: i32,
    ) -> Result<Option<MappingDto>, AdapterError> {
        let (first, second) = ordered_pair(a, b);
        let path = format!(
            "/mapping/non-associations/first-offender-no/{}/second-offender-no/{}/type-sequence/{seq}",
            seg(first),
            seg(second)
        );
        self.mapping
            .find_json(path)
            .await
            .map_err(|e| AdapterError::from_peer("reading the mapping", e))
    }

    pub async fn mapping_by_id(&self, id: i64) -> Result<Option<MappingDto>, AdapterError> {
        self.mapping
            .find_json(format!("/mapping/non-associations/non-association-id/{id}"))
            .await
            .map_err(|e| AdapterError::from_peer("reading the mapping", e))
    }

    /// Every mapping of the given pairs (sorted pairs), in one call.
    pub async fn mappings_of_pairs(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Vec<MappingDto>, AdapterError> {
        let body: Vec<MappingPair<'_>> = pairs
            .iter()
            .map(|(a, b)| MappingPair {
                first_offender_no: a,
                second_offender_no: b,
            })
            .collect();
        self.mapping
            .request(Method::POST, "/mapping/non-associations/pairs")
            .json(&body)
            .send()
            .await
            .and_then(|r| r.ok())
            .and_then(|r| r.json())
            .map_err(|e| AdapterError::from_peer("reading the mappings of a batch", e))
    }

    /// Creates one mapping; re-sending the same one succeeds.
    pub async fn create_mapping(&self, m: &MappingDto) -> Result<(), MappingCreateError> {
        match self
            .mapping
            .request(Method::POST, "/mapping/non-associations")
            .json(m)
            .send()
            .await
            .and_then(|r| r.ok())
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(MappingCreateError::Duplicate(e.to_string())),
            Err(e) => Err(MappingCreateError::Other(AdapterError::from_peer(
                "creating the mapping",
                e,
            ))),
        }
    }

    /// Creates many mappings in one transaction and returns them as stored (an identical
    /// mapping already stored comes back with its own label).
    pub async fn create_mappings(
        &self,
        ms: &[MappingDto],
    ) -> Result<Vec<MappingDto>, MappingCreateError> {
        match self
            .mapping
            .request(Method::POST, "/mapping/non-associations/batch")
            .json(ms)
            .send()
            .await
            .and_then(|r| r.ok())
            .and_then(|r| r.json())
        {
            Ok(v) => Ok(v),
            Err(e) if e.is_conflict() => Err(MappingCreateError::Duplicate(e.to_string())),
            Err(e) => Err(MappingCreateError::Other(AdapterError::from_peer(
                "creating the mappings",
                e,
            ))),
        }
    }

    /// Deletes a mapping; one already gone is fine.
    pub async fn delete_mapping(&self, id: i64) -> Result<(), AdapterError> {
        let resp = self
            .mapping
            .request(
                Method::DELETE,
                format!("/mapping/non-associations/non-association-id/{id}"),
            )
            .send()
            .await
            .map_err(|e| AdapterError::from_peer("deleting the mapping", e))?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        resp.ok()
            .map(|_| ())
            .map_err(|e| AdapterError::from_peer("deleting the mapping", e))
    }

    // ---- DPS ----

    /// `POST` of `body` to DPS, the answer read as `T`; callers name their own errors.
    pub async fn dps_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized + Sync),
    ) -> Result<T, tandem_platform::client::PeerError> {
        self.dps
            .request(Method::POST, path)
            .json(body)
            .send()
            .await
            .and_then(|r| r.ok())
            .and_then(|r| r.json())
    }

    /// `POST /sync` with one prisoner's items.
    pub async fn dps_sync(
        &self,
        body: &(impl Serialize + ?Sized + Sync),
    ) -> Result<Vec<SyncResult>, AdapterError> {
        self.dps_post("/sync", body)
            .await
            .map_err(|e| AdapterError::from_peer("writing DPS (sync)", e))
    }

    /// `POST /migrate` for one pair.
    pub async fn dps_migrate(
        &self,
        body: &(impl Serialize + ?Sized + Sync),
    ) -> Result<Vec<SyncResult>, AdapterError> {
        self.dps_post("/migrate", body)
            .await
            .map_err(|e| AdapterError::from_peer("writing DPS (migrate)", e))
    }

    /// `POST /migrate/batch`: several pairs' bodies in one transaction.
    pub async fn dps_migrate_batch(
        &self,
        bodies: &[DpsRequest<'_>],
    ) -> Result<Vec<Vec<SyncResult>>, AdapterError> {
        self.dps_post("/migrate/batch", bodies)
            .await
            .map_err(|e| AdapterError::from_peer("writing DPS (migrate batch)", e))
    }

    /// The DPS id migrated or synced from the NOMIS record, if any.
    pub async fn dps_id_by_nomis_key(
        &self,
        a: &str,
        b: &str,
        seq: i32,
    ) -> Result<Option<i64>, AdapterError> {
        let path = format!("/sync/id/{}/{}/{seq}", seg(a), seg(b));
        let found: Option<Value> = self
            .dps
            .find_json(path)
            .await
            .map_err(|e| AdapterError::from_peer("reading DPS by NOMIS key", e))?;
        Ok(found.and_then(|v| v["id"].as_i64()))
    }

    /// Deletes a DPS record because NOMIS deleted it; one already gone is fine.
    pub async fn dps_delete(&self, id: i64) -> Result<(), AdapterError> {
        let resp = self
            .dps
            .request(Method::DELETE, format!("/sync/{id}"))
            .send()
            .await
            .map_err(|e| AdapterError::from_peer("deleting in DPS", e))?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        resp.ok()
            .map(|_| ())
            .map_err(|e| AdapterError::from_peer("deleting in DPS", e))
    }

    /// The DPS record, NOMIS-shaped; `None` when it has been deleted.
    pub async fn dps_legacy(&self, id: i64) -> Result<Option<LegacyNonAssociation>, AdapterError> {
        self.dps
            .find_json(format!("/legacy/api/non-associations/{id}"))
            .await
            .map_err(|e| AdapterError::from_peer("reading the DPS non-association", e))
    }
}
