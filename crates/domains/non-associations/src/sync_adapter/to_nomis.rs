//! DPS → NOMIS (reference migration-sync §4.2): `non-associations.created|amended|closed|deleted`.
//!
//! - `source: NOMIS` is the echo of a NOMIS change synced to DPS: counted and skipped (a
//!   missing source counts as DPS, §4.3).
//! - created: already mapped → done (redelivery). Otherwise the DPS legacy view is written to
//!   NOMIS (stamped `DPS_SYNCHRONISATION` by NOMIS) and a `DPS_CREATED` mapping recorded.
//!   A redelivery after the NOMIS write succeeded but the mapping write failed must not
//!   create a second NOMIS record, so first an unmapped NOMIS record of the pair with the
//!   same reasons, type and effective date is looked for and adopted. A mapping 409 is a
//!   reported duplicate (terminal).
//! - amended / closed: the whole DPS record replaces the NOMIS one (`PUT …/sequence/{seq}`,
//!   expiry included), so redelivery and reordering converge. Not mapped yet, or NOMIS 404 →
//!   Retry (the create has not landed), then the queue dead-letters it.
//! - deleted: mapped → NOMIS delete and mapping delete; not mapped → nothing to do.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tandem_bus::{HandlerError, MessageHandler, Subscription};
use tandem_platform::events::{DOMAIN_EVENTS, InboundEvent};
use tandem_sync::listeners::{Direction, Listener, count_applied, count_echo, originates_in_nomis};

use super::clients::{
    MappingCreateError, MappingDto, matches_dps, nomis_create_body, nomis_update_body,
};
use super::{AdapterError, DOMAIN, Peers, seg};
use crate::events::{AMENDED, CLOSED, CREATED, DELETED};

pub const QUEUE: &str = "prisoner-to-nomis-nonassociations";
pub const DPS_CREATED: &str = "DPS_CREATED";

/// The subscription and handler (`maxReceiveCount` 5, as the real queue).
pub fn listener(peers: Peers) -> Listener {
    Listener {
        subscription: Subscription::new(QUEUE, DOMAIN_EVENTS)
            .event_types([CREATED, AMENDED, CLOSED, DELETED])
            .max_receive_count(5)
            .backoff(vec![
                Duration::from_secs(1),
                Duration::from_secs(10),
                Duration::from_secs(60),
                Duration::from_secs(600),
            ]),
        handler: Arc::new(ToNomisHandler { peers }),
    }
}

/// What the handler did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Echo,
    NothingToDo,
    AlreadyMapped,
    /// Created in NOMIS with this type sequence.
    Created(i32),
    /// A NOMIS record written earlier (mapping lost) was adopted.
    Adopted(i32),
    Updated(i32),
    Deleted(i32),
}

pub struct ToNomisHandler {
    peers: Peers,
}

fn dps_id(event: &InboundEvent) -> Result<i64, HandlerError> {
    event
        .body
        .get("additionalInformation")
        .and_then(|i| i.get("id"))
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| {
            HandlerError::Reject(format!(
                "{} event without additionalInformation.id",
                event.event_type
            ))
        })
}

impl ToNomisHandler {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }

    pub async fn apply(&self, event: &InboundEvent) -> Result<Handled, HandlerError> {
        if originates_in_nomis(event) {
            count_echo(Direction::ToNomis, DOMAIN);
            tracing::info!(event_type = %event.event_type, "non-association-{}-ignored: echo of a NOMIS change", event.event_type);
            return Ok(Handled::Echo);
        }
        let id = dps_id(event)?;
        let handled = match event.event_type.as_str() {
            CREATED => self.created(id).await?,
            AMENDED | CLOSED => self.updated(id).await?,
            DELETED => self.deleted(id).await?,
            other => {
                return Err(HandlerError::Reject(format!(
                    "unexpected event type {other} on {QUEUE}"
                )));
            }
        };
        if matches!(
            handled,
            Handled::Created(_) | Handled::Adopted(_) | Handled::Updated(_) | Handled::Deleted(_)
        ) {
            count_applied(Direction::ToNomis, DOMAIN);
        }
        tracing::info!(event_type = %event.event_type, dps_id = id, outcome = ?handled, "non-association synchronised to NOMIS");
        Ok(handled)
    }

    async fn created(&self, id: i64) -> Result<Handled, AdapterError> {
        if self.peers.mapping_by_id(id).await?.is_some() {
            return Ok(Handled::AlreadyMapped);
        }
        let Some(na) = self.peers.dps_legacy(id).await? else {
            return Ok(Handled::NothingToDo);
        };
        let today = tandem_platform::time::london_today();
        let a = na.offender_no.clone();
        let b = na.offender_non_association.offender_no.clone();
        let mut adopted = None;
        for record in self.peers.nomis_all(&a, &b).await? {
            if matches_dps(&record, &na, today)
                && self
                    .peers
                    .mapping_by_nomis(&a, &b, record.type_sequence)
                    .await?
                    .is_none()
            {
                adopted = Some(record.type_sequence);
            }
        }
        let (seq, handled) = match adopted {
            Some(seq) => (seq, Handled::Adopted(seq)),
            None => {
                let created: serde_json::Value = self
                    .peers
                    .nomis
                    .request(Method::POST, "/non-associations")
                    .json(&nomis_create_body(&na, today))
                    .send()
                    .await
                    .and_then(|r| r.ok())
                    .and_then(|r| r.json())
                    .map_err(|e| {
                        AdapterError::from_peer("creating the NOMIS non-association", e)
                    })?;
                let seq = created["typeSequence"]
                    .as_i64()
                    .and_then(|s| i32::try_from(s).ok())
                    .ok_or_else(|| {
                        AdapterError::Permanent(format!(
                            "NOMIS answered a create without a typeSequence: {created}"
                        ))
                    })?;
                (seq, Handled::Created(seq))
            }
        };
        if na.expiry_date.is_some() {
            self.put(&na, seq).await?;
        }
        let m = MappingDto::new(id, &a, &b, seq, DPS_CREATED, None);
        match self.peers.create_mapping(&m).await {
            Ok(()) => Ok(handled),
            Err(MappingCreateError::Duplicate(msg)) => {
                tracing::warn!(
                    dps_id = id,
                    type_sequence = seq,
                    "to-nomis-synch-non-association-duplicate: {msg}"
                );
                Ok(handled)
            }
            Err(MappingCreateError::Other(e)) => Err(e),
        }
    }

    async fn put(
        &self,
        na: &crate::api::dto::LegacyNonAssociation,
        seq: i32,
    ) -> Result<(), AdapterError> {
        let today = tandem_platform::time::london_today();
        let path = format!(
            "/non-associations/offender/{}/ns-offender/{}/sequence/{seq}",
            seg(&na.offender_no),
            seg(&na.offender_non_association.offender_no)
        );
        match self
            .peers
            .nomis
            .request(Method::PUT, path)
            .json(&nomis_update_body(na, today))
            .send()
            .await
            .and_then(|r| r.ok())
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(AdapterError::Transient(format!(
                "NOMIS non-association {}/{}/{seq} not found; retrying: {e}",
                na.offender_no, na.offender_non_association.offender_no
            ))),
            Err(e) => Err(AdapterError::from_peer(
                "updating the NOMIS non-association",
                e,
            )),
        }
    }

    async fn updated(&self, id: i64) -> Result<Handled, AdapterError> {
        let Some(m) = self.peers.mapping_by_id(id).await? else {
            return Err(AdapterError::Transient(format!(
                "non-association {id} is not mapped to NOMIS yet (its create has not been synchronised); retrying"
            )));
        };
        let Some(na) = self.peers.dps_legacy(id).await? else {
            return Ok(Handled::NothingToDo);
        };
        self.put(&na, m.nomis_type_sequence).await?;
        Ok(Handled::Updated(m.nomis_type_sequence))
    }

    async fn deleted(&self, id: i64) -> Result<Handled, AdapterError> {
        let Some(m) = self.peers.mapping_by_id(id).await? else {
            return Ok(Handled::NothingToDo);
        };
        let path = format!(
            "/non-associations/offender/{}/ns-offender/{}/sequence/{}",
            seg(&m.first_offender_no),
            seg(&m.second_offender_no),
            m.nomis_type_sequence
        );
        match self
            .peers
            .nomis
            .request(Method::DELETE, path)
            .send()
            .await
            .and_then(|r| r.ok())
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(AdapterError::from_peer(
                    "deleting the NOMIS non-association",
                    e,
                ));
            }
        }
        self.peers.delete_mapping(id).await?;
        Ok(Handled::Deleted(m.nomis_type_sequence))
    }
}

#[async_trait::async_trait]
impl MessageHandler for ToNomisHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        self.apply(event).await.map(|_| ())
    }
}
