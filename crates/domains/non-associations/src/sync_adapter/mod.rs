//! The non-associations sync adapter: migration NOMIS → DPS, the NOMIS → DPS and DPS → NOMIS
//! listeners, and the merge / booking-move consumers. The generic machinery (engine, ledger,
//! echo rules, feature switches, bus) lives in `tandem-sync` and `tandem-bus`; this module
//! only says what a non-association is on each side.
//!
//! Every peer is reached through a [`PeerClient`] (in-process or HTTP), with these roles:
//! - NOMIS (`nomis-prisoner-api`): `ROLE_NOMIS_PRISONER_API__SYNCHRONISATION__RW` + write scope;
//! - DPS (`non-associations-api`): `ROLE_NON_ASSOCIATIONS_SYNC` and `ROLE_NON_ASSOCIATIONS_MIGRATE`;
//! - mapping (`nomis-mapping-api`): `ROLE_NOMIS_MAPPING_API__SYNCHRONISATION__RW` + write scope.
//!
//! Who is master (per-prison switch-over, reference migration-sync §3.4): NOMIS itself refuses
//! a NOMIS user's edit of a non-association at a prison where DPS is master, so every NOMIS
//! change that reaches the NOMIS → DPS listener was legitimate when it was made and is
//! applied; the listener does not consult the switch (doing so would drop changes made just
//! before a switch-on). DPS changes always go to NOMIS (NOMIS accepts `DPS_SYNCHRONISATION`
//! writes everywhere), so NOMIS stays a faithful copy for the prisons it still masters and for
//! the ones DPS masters alike.

pub mod clients;
pub mod from_nomis;
pub mod merges;
pub mod migration;
pub mod to_nomis;

use std::sync::Arc;

use tandem_bus::HandlerError;
use tandem_platform::client::{PeerClient, PeerError};
use tandem_sync::listeners::{FeatureSwitches, Listener};
use tandem_sync::migration::{EntityError, MigrationDomain};

pub use from_nomis::FromNomisHandler;
pub use merges::{DpsPrisonerEventsHandler, MappingMergesHandler};
pub use migration::NonAssociationsMigration;
pub use to_nomis::ToNomisHandler;

/// The domain name in metrics.
pub const DOMAIN: &str = "non-associations";

/// Roles each client needs (see the module documentation).
pub mod roles {
    pub const NOMIS: &[&str] = &[tandem_auth::roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW];
    pub const DPS: &[&str] = &[
        tandem_auth::roles::NON_ASSOCIATIONS_SYNC,
        tandem_auth::roles::NON_ASSOCIATIONS_MIGRATE,
    ];
    pub const MAPPING: &[&str] = &[tandem_auth::roles::NOMIS_MAPPING_API_SYNCHRONISATION_RW];
}

/// The three peers the adapter talks to.
#[derive(Clone)]
pub struct Peers {
    pub nomis: PeerClient,
    pub dps: PeerClient,
    pub mapping: PeerClient,
}

/// Why a step of the adapter failed, in the two classes every caller needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// Worth trying again: a peer is down or busy, or something has not landed yet.
    #[error("{0}")]
    Transient(String),
    /// Will not succeed as it is: bad data or a reported duplicate.
    #[error("{0}")]
    Permanent(String),
}

impl AdapterError {
    /// Classifies a peer failure: unreachable, 5xx, 409 (a concurrent change) and 423
    /// (locked) are transient; any other 4xx is the peer refusing the data.
    pub fn from_peer(context: &str, e: PeerError) -> Self {
        match &e {
            PeerError::Status {
                status, message, ..
            } if status.is_client_error()
                && *status != http::StatusCode::CONFLICT
                && *status != http::StatusCode::LOCKED
                && *status != http::StatusCode::TOO_MANY_REQUESTS =>
            {
                AdapterError::Permanent(format!("{context}: {message}"))
            }
            PeerError::Decode { .. } => AdapterError::Permanent(format!("{context}: {e}")),
            _ => AdapterError::Transient(format!("{context}: {e}")),
        }
    }
}

impl From<AdapterError> for EntityError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Transient(m) => EntityError::Retryable(m),
            AdapterError::Permanent(m) => EntityError::Permanent(m),
        }
    }
}

impl From<AdapterError> for HandlerError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Transient(m) => HandlerError::Retry(m),
            AdapterError::Permanent(m) => HandlerError::Reject(m),
        }
    }
}

/// The migration of non-associations, for the engine of `prisoner-from-nomis`.
pub fn migration_domain(
    nomis: PeerClient,
    dps: PeerClient,
    mapping: PeerClient,
) -> Arc<dyn MigrationDomain> {
    Arc::new(NonAssociationsMigration::new(Peers {
        nomis,
        dps,
        mapping,
    }))
}

/// The NOMIS → DPS listener (`prisoner-from-nomis-nonassociations` on `offender-events`).
pub fn from_nomis_listeners(
    nomis: PeerClient,
    dps: PeerClient,
    mapping: PeerClient,
    switches: FeatureSwitches,
) -> Vec<Listener> {
    vec![from_nomis::listener(
        Peers {
            nomis,
            dps,
            mapping,
        },
        switches,
    )]
}

/// The DPS → NOMIS listeners: `prisoner-to-nomis-nonassociations` (created / amended /
/// closed / deleted) and `prisoner-to-nomis-nonassociations-merges` (keeps the mappings in
/// step with merges and booking moves).
pub fn to_nomis_listeners(
    nomis: PeerClient,
    dps: PeerClient,
    mapping: PeerClient,
) -> Vec<Listener> {
    let peers = Peers {
        nomis,
        dps,
        mapping,
    };
    vec![
        to_nomis::listener(peers.clone()),
        merges::mapping_listener(peers),
    ]
}

/// The DPS service's own consumer of prisoner merges and booking moves
/// (`non-associations-api-prisoner-events` on `domain-events`), working on its database.
pub fn dps_listeners(store: crate::Store) -> Vec<Listener> {
    vec![merges::dps_listener(store)]
}

/// Percent-encodes one path segment (prisoner numbers and ids never need it, but a bad
/// event must not be able to change the path).
pub(crate) fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
