//! Prisoner merges and booking moves (reference domain-apis §3.6, migration-sync §4.2).
//!
//! Two consumers of the same two events:
//! - DPS's own (`non-associations-api-prisoner-events`): renumbers the DPS records
//!   ([`crate::Store::renumber`]): deletes those that now pair a prisoner with himself,
//!   closes (`MERGE`) those that would duplicate an open pair; no domain events; a
//!   redelivery finds nothing left to renumber.
//! - the mapping keeper (`prisoner-to-nomis-nonassociations-merges`): rewrites the mappings
//!   so they name the new prisoner number. Merge: mappings of records between the two
//!   numbers are dropped (DPS deletes those records), then `PUT …/merge/from/{old}/to/{new}`.
//!   Booking move: the DPS records of either number created while the booking was with the
//!   old number are moved with `PUT …/update-list/from/{old}/to/{new}` (ids form; ids
//!   already moved are skipped, so a redelivery is harmless).

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::London;
use http::Method;
use serde_json::Value;
use tandem_bus::{HandlerError, MessageHandler, Subscription};
use tandem_platform::events::{DOMAIN_EVENTS, InboundEvent};
use tandem_sync::listeners::Listener;

use super::{AdapterError, Peers, seg};
use crate::store::{MergeResult, Store};

pub const MERGED: &str = "prison-offender-events.prisoner.merged";
pub const BOOKING_MOVED: &str = "prison-offender-events.prisoner.booking.moved";
pub const DPS_QUEUE: &str = "non-associations-api-prisoner-events";
pub const MAPPING_QUEUE: &str = "prisoner-to-nomis-nonassociations-merges";

/// A merge or booking move, read from the event.
#[derive(Debug, Clone, PartialEq)]
pub enum Renumbering {
    Merge {
        removed: String,
        kept: String,
    },
    BookingMove {
        from: String,
        to: String,
        /// Records created in this window moved with the booking.
        window: (DateTime<Utc>, DateTime<Utc>),
    },
}

fn info<'a>(event: &'a InboundEvent, field: &str) -> Result<&'a str, HandlerError> {
    let v = event.info_str(field).ok_or_else(|| {
        HandlerError::Reject(format!(
            "{} event without additionalInformation.{field}",
            event.event_type
        ))
    })?;
    tandem_platform::ids::PrisonerNumber::parse(v).map_err(|e| {
        HandlerError::Reject(format!(
            "{}: additionalInformation.{field}: {e}",
            event.event_type
        ))
    })?;
    Ok(v)
}

/// A local (London) date-time as the booking-moved event carries it.
fn london(s: &str) -> Option<DateTime<Utc>> {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    London
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

impl Renumbering {
    pub fn from_event(event: &InboundEvent) -> Result<Self, HandlerError> {
        match event.event_type.as_str() {
            MERGED => Ok(Self::Merge {
                removed: info(event, "removedNomsNumber")?.to_string(),
                kept: info(event, "nomsNumber")?.to_string(),
            }),
            BOOKING_MOVED => {
                let start = event
                    .info_str("bookingStartDateTime")
                    .and_then(london)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                let end = event
                    .body
                    .get("occurredAt")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(tandem_platform::time::now);
                Ok(Self::BookingMove {
                    from: info(event, "movedFromNomsNumber")?.to_string(),
                    to: info(event, "movedToNomsNumber")?.to_string(),
                    window: (start, end),
                })
            }
            other => Err(HandlerError::Reject(format!(
                "unexpected event type {other}"
            ))),
        }
    }
}

fn subscription(queue: &str) -> Subscription {
    Subscription::new(queue, DOMAIN_EVENTS).event_types([MERGED, BOOKING_MOVED])
}

/// DPS's consumer.
pub fn dps_listener(store: Store) -> Listener {
    Listener {
        subscription: subscription(DPS_QUEUE),
        handler: Arc::new(DpsPrisonerEventsHandler { store }),
    }
}

/// The mapping keeper.
pub fn mapping_listener(peers: Peers) -> Listener {
    Listener {
        subscription: subscription(MAPPING_QUEUE),
        handler: Arc::new(MappingMergesHandler { peers }),
    }
}

pub struct DpsPrisonerEventsHandler {
    store: Store,
}

impl DpsPrisonerEventsHandler {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Applies the event; returns what happened to each record.
    pub async fn apply(
        &self,
        event: &InboundEvent,
    ) -> Result<Vec<(i64, MergeResult)>, HandlerError> {
        let (from, to, window) = match Renumbering::from_event(event)? {
            Renumbering::Merge { removed, kept } => (removed, kept, None),
            Renumbering::BookingMove { from, to, window } => (from, to, Some(window)),
        };
        if from == to {
            return Err(HandlerError::Reject(format!(
                "{}: the old and new prisoner numbers are both {from}",
                event.event_type
            )));
        }
        let results = self
            .store
            .renumber(&from, &to, window)
            .await
            .map_err(|e| HandlerError::Retry(format!("renumbering {from} to {to}: {e}")))?;
        tracing::info!(event_type = %event.event_type, from, to, ?results, "non-associations renumbered");
        Ok(results)
    }
}

#[async_trait::async_trait]
impl MessageHandler for DpsPrisonerEventsHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        self.apply(event).await.map(|_| ())
    }
}

pub struct MappingMergesHandler {
    peers: Peers,
}

impl MappingMergesHandler {
    pub fn new(peers: Peers) -> Self {
        Self { peers }
    }

    pub async fn apply(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        match Renumbering::from_event(event)? {
            Renumbering::Merge { removed, kept } => Ok(self.merge(&removed, &kept).await?),
            Renumbering::BookingMove { from, to, window } => {
                Ok(self.booking_move(&from, &to, window).await?)
            }
        }
    }

    async fn put(&self, path: String, body: Option<&Value>) -> Result<(), AdapterError> {
        let mut req = self.peers.mapping.request(Method::PUT, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send().await.and_then(|r| r.ok()) {
            Ok(_) => Ok(()),
            // A rewritten mapping would collide with one of the new number (both had a
            // non-association with the same third prisoner and type sequence): that needs
            // re-sequencing by a person, not a retry.
            Err(e) if e.is_conflict() => Err(AdapterError::Permanent(format!(
                "rewriting the non-association mappings needs manual re-sequencing: {e}"
            ))),
            Err(e) => Err(AdapterError::from_peer(
                "rewriting the non-association mappings",
                e,
            )),
        }
    }

    async fn merge(&self, old: &str, new: &str) -> Result<(), AdapterError> {
        // Records between the two become a prisoner with himself: DPS deletes them, so
        // their mappings go too.
        let pair = crate::nomis_codes::ordered_pair(old, new);
        for m in self
            .peers
            .mappings_of_pairs(&[(pair.0.to_string(), pair.1.to_string())])
            .await?
        {
            self.peers.delete_mapping(m.non_association_id).await?;
        }
        self.put(
            format!(
                "/mapping/non-associations/merge/from/{}/to/{}",
                seg(old),
                seg(new)
            ),
            None,
        )
        .await
    }

    async fn booking_move(
        &self,
        from: &str,
        to: &str,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<(), AdapterError> {
        let mut ids = Vec::new();
        for p in [from, to] {
            let view: Option<crate::sync::NomisNonAssociationsView> = self
                .peers
                .dps
                .find_json(format!("/non-associations/{}", seg(p)))
                .await
                .map_err(|e| AdapterError::from_peer("reading the DPS non-associations", e))?;
            for na in view.map(|v| v.non_associations).unwrap_or_default() {
                let created = london(&na.effective_date);
                if created.is_some_and(|c| c >= start && c <= end) && !ids.contains(&na.id) {
                    ids.push(na.id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.put(
            format!(
                "/mapping/non-associations/update-list/from/{}/to/{}",
                seg(from),
                seg(to)
            ),
            Some(&serde_json::json!(ids)),
        )
        .await
    }
}

#[async_trait::async_trait]
impl MessageHandler for MappingMergesHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<(), HandlerError> {
        self.apply(event).await
    }
}
