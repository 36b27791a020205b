//! NOMIS → DPS (reference migration-sync §3.5): `NON_ASSOCIATION_DETAIL-UPSERTED` and
//! `-DELETED` offender events.
//!
//! Rules, in order:
//! - a switched-off event type is acknowledged and dropped (`FeatureSwitches`);
//! - only the primary direction is handled (`offenderIdDisplay < nsOffenderIdDisplay`):
//!   NOMIS raises one event per direction for the same change;
//! - an event whose `auditModuleName` starts with `DPS_SYNCHRONISATION` is the echo of our
//!   own DPS → NOMIS write: counted and skipped;
//! - UPSERTED re-reads the NOMIS record (state transfer, never the event's fields): gone →
//!   nothing to do; mapped → DPS `/sync` with the mapped id; not mapped and the event is an
//!   insert → DPS `/sync` (which finds a record already synced from the same NOMIS record,
//!   so a redelivery after a lost mapping write does not duplicate) and a `NOMIS_CREATED`
//!   mapping; not mapped and the event is an update → if DPS already has the record (its
//!   create landed but not its mapping) the mapping is created for it, else Retry until the
//!   create has landed (then the queue dead-letters it);
//! - DELETED: mapped → DPS delete and mapping delete; not mapped → the DPS record synced from
//!   that NOMIS record, if any, is deleted; otherwise there is nothing to delete (a create
//!   still retrying re-reads NOMIS, finds the record gone and does nothing), so a repeated
//!   delete is harmless instead of dead-lettering.
//!
//! The agency switch is not consulted here: NOMIS refuses NOMIS users' edits where DPS is
//! master, so every change that arrives was legitimate when made (see the module above).

use std::sync::Arc;
use std::time::Duration;

use tandem_bus::{HandlerError, MessageHandler, Subscription};
use tandem_platform::events::{InboundEvent, OFFENDER_EVENTS};
use tandem_sync::listeners::{
    Direction, FeatureSwitches, Listener, count_applied, count_echo, originates_in_dps,
};

use super::clients::{MappingCreateError, MappingDto, dps_request};
use super::{AdapterError, DOMAIN, Peers};

pub const QUEUE: &str = "prisoner-from-nomis-nonassociations";
pub const UPSERTED: &str = "NON_ASSOCIATION_DETAIL-UPSERTED";
pub const DELETED: &str = "NON_ASSOCIATION_DETAIL-DELETED";
/// The NOMIS trigger's name for an update (vs `…-INSERTED`).
const NOMIS_UPDATED: &str = "OFF_NA_DETAILS_ASSOC-UPDATED";
pub const NOMIS_CREATED: &str = "NOMIS_CREATED";

/// The subscription and handler.
pub fn listener(peers: Peers, switches: FeatureSwitches) -> Listener {
    Listener {
        subscription: Subscription::new(QUEUE, OFFENDER_EVENTS)
            .event_types([UPSERTED, DELETED])
            .max_receive_count(3)
            .backoff(vec![
                Duration::from_secs(1),
                Duration::from_secs(10),
                Duration::from_secs(60),
            ]),
        handler: Arc::new(FromNomisHandler { peers, switches }),
    }
}

/// What the handler did with an event (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    SwitchedOff,
    NotPrimary,
    Echo,
    NothingToDo,
    Created(i64),
    Updated(i64),
    MappedExisting(i64),
    Deleted(i64),
}

pub struct FromNomisHandler {
    peers: Peers,
    switches: FeatureSwitches,
}

struct Detail<'a> {
    offender: &'a str,
    ns_offender: &'a str,
    seq: i32,
}

fn detail(event: &InboundEvent) -> Result<Detail<'_>, HandlerError> {
    let body = &event.body;
    let field = |name: &str| {
        body.get(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                HandlerError::Reject(format!("{} event without {name}", event.event_type))
            })
    };
    let seq = body
        .get("typeSeq")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| {
            HandlerError::Reject(format!("{} event without a typeSeq", event.event_type))
        })?;
    Ok(Detail {
        offender: field("offenderIdDisplay")?,
        ns_offender: field("nsOffenderIdDisplay")?,
        seq,
    })
}

impl FromNomisHandler {
    pub fn new(peers: Peers, switches: FeatureSwitches) -> Self {
        Self { peers, switches }
    }

    /// Handles one event and says what it did.
    pub async fn apply(&self, event: &InboundEvent) -> Result<Handled, HandlerError> {
        if !self.switches.is_on(&event.event_type) {
            return Ok(Handled::SwitchedOff);
        }
        let d = detail(event)?;
        if d.offender >= d.ns_offender {
            return Ok(Handled::NotPrimary);
        }
        if originates_in_dps(event) {
            count_echo(Direction::FromNomis, DOMAIN);
            tracing::info!(
                event_type = %event.event_type, offender = d.offender, ns_offender = d.ns_offender, type_sequence = d.seq,
                "non-association-synchronisation-skipped: echo of a DPS change"
            );
            return Ok(Handled::Echo);
        }
        let handled = match event.event_type.as_str() {
            UPSERTED => {
                let is_update = event.body.get("nomisEventType").and_then(|v| v.as_str())
                    == Some(NOMIS_UPDATED);
                self.upsert(&d, is_update).await?
            }
            DELETED => self.delete(&d).await?,
            other => {
                return Err(HandlerError::Reject(format!(
                    "unexpected event type {other} on {QUEUE}"
                )));
            }
        };
        if !matches!(handled, Handled::NothingToDo) {
            count_applied(Direction::FromNomis, DOMAIN);
        }
        tracing::info!(event_type = %event.event_type, offender = d.offender, ns_offender = d.ns_offender, type_sequence = d.seq, outcome = ?handled, "non-association synchronised from NOMIS");
        Ok(handled)
    }

    async fn upsert(&self, d: &Detail<'_>, is_update: bool) -> Result<Handled, AdapterError> {
        let Some(record) = self
            .peers
            .nomis_one(d.offender, d.ns_offender, d.seq)
            .await?
        else {
            return Ok(Handled::NothingToDo);
        };
        let record = record.primary();
        let mapping = self
            .peers
            .mapping_by_nomis(d.offender, d.ns_offender, d.seq)
            .await?;
        if let Some(m) = mapping {
            let body = dps_request(
                &record.offender_no,
                vec![record.dps_item(Some(m.non_association_id))],
            );
            self.peers.dps_sync(&body).await?;
            return Ok(Handled::Updated(m.non_association_id));
        }
        if is_update {
            // The create has not been mapped yet. If it reached DPS, map that record (and
            // bring it up to date); otherwise wait for the create.
            let Some(id) = self
                .peers
                .dps_id_by_nomis_key(d.offender, d.ns_offender, d.seq)
                .await?
            else {
                return Err(AdapterError::Transient(format!(
                    "update of NOMIS non-association {}/{}/{} before its create has been synchronised; retrying",
                    d.offender, d.ns_offender, d.seq
                )));
            };
            self.map(id, d).await?;
            let body = dps_request(&record.offender_no, vec![record.dps_item(Some(id))]);
            self.peers.dps_sync(&body).await?;
            return Ok(Handled::MappedExisting(id));
        }
        let body = dps_request(&record.offender_no, vec![record.dps_item(None)]);
        let results = self.peers.dps_sync(&body).await?;
        let Some(result) = results.first() else {
            return Err(AdapterError::Permanent(
                "DPS /sync answered no result".into(),
            ));
        };
        self.map(result.id, d).await?;
        Ok(Handled::Created(result.id))
    }

    /// Records a NOMIS_CREATED mapping; a 409 is a reported duplicate (terminal, logged).
    async fn map(&self, id: i64, d: &Detail<'_>) -> Result<(), AdapterError> {
        let m = MappingDto::new(id, d.offender, d.ns_offender, d.seq, NOMIS_CREATED, None);
        match self.peers.create_mapping(&m).await {
            Ok(()) => Ok(()),
            Err(MappingCreateError::Duplicate(msg)) => {
                tracing::warn!(
                    dps_id = id,
                    offender = d.offender,
                    ns_offender = d.ns_offender,
                    type_sequence = d.seq,
                    "from-nomis-synch-non-association-duplicate: {msg}"
                );
                Ok(())
            }
            Err(MappingCreateError::Other(e)) => Err(e),
        }
    }

    async fn delete(&self, d: &Detail<'_>) -> Result<Handled, AdapterError> {
        if let Some(m) = self
            .peers
            .mapping_by_nomis(d.offender, d.ns_offender, d.seq)
            .await?
        {
            self.peers.dps_delete(m.non_association_id).await?;
            self.peers.delete_mapping(m.non_association_id).await?;
            return Ok(Handled::Deleted(m.non_association_id));
        }
        match self
            .peers
            .dps_id_by_nomis_key(d.offender, d.ns_offender, d.seq)
            .await?
        {
            Some(id) => {
                self.peers.dps_delete(id).await?;
                Ok(Handled::Deleted(id))
            }
            None => Ok(Handled::NothingToDo),
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for FromNomisHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        self.apply(event).await.map(|_| ())
    }
}
