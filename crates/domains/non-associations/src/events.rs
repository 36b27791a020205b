//! The domain events this service publishes (reference §3.7). They are written to the
//! outbox in the transaction of the change they describe.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_platform::events::{DomainEvent, OutgoingEvent};

use crate::nomis_codes::ordered_pair;

pub const CREATED: &str = "non-associations.created";
pub const AMENDED: &str = "non-associations.amended";
pub const CLOSED: &str = "non-associations.closed";
pub const DELETED: &str = "non-associations.deleted";

/// Who made the change: consumers skip their own echoes by it (the DPS → NOMIS listener
/// ignores `NOMIS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    #[serde(rename = "DPS")]
    Dps,
    #[serde(rename = "NOMIS")]
    Nomis,
}

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::Dps => "DPS",
            Source::Nomis => "NOMIS",
        }
    }
}

/// What happened to a non-association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Amended,
    Reopened,
    Closed,
    Deleted,
}

impl Change {
    pub fn event_type(self) -> &'static str {
        match self {
            Change::Created => CREATED,
            Change::Amended | Change::Reopened => AMENDED,
            Change::Closed => CLOSED,
            Change::Deleted => DELETED,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Change::Created => "A non-association has been created:",
            Change::Amended => "A non-association has been amended:",
            Change::Reopened => "A non-association has been re-opened:",
            Change::Closed => "A non-association has been closed:",
            Change::Deleted => "A non-association has been deleted:",
        }
    }
}

/// The event for `change` to record `id` between `first` and `second`. The ordering key is
/// the sorted pair, so events about one pair reach each consumer in order.
pub fn event(change: Change, id: i64, first: &str, second: &str, source: Source) -> OutgoingEvent {
    let body = DomainEvent::new(
        change.event_type(),
        format!("{} {id}", change.description()),
        json!({
            "id": id,
            "nsPrisonerNumber1": first,
            "nsPrisonerNumber2": second,
            "source": source.code(),
        }),
    );
    let (low, high) = ordered_pair(first, second);
    OutgoingEvent::domain(&body, format!("{low}/{high}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let e = event(Change::Reopened, 42, "B5678CD", "A1234BC", Source::Nomis);
        assert_eq!(e.topic, "domain-events");
        assert_eq!(e.event_type, "non-associations.amended");
        assert_eq!(e.ordering_key.as_deref(), Some("A1234BC/B5678CD"));
        assert_eq!(e.body["version"], "1.0");
        assert_eq!(
            e.body["description"],
            "A non-association has been re-opened: 42"
        );
        assert_eq!(
            e.body["additionalInformation"],
            json!({"id": 42, "nsPrisonerNumber1": "B5678CD", "nsPrisonerNumber2": "A1234BC", "source": "NOMIS"})
        );
        assert_eq!(
            event(Change::Closed, 1, "A", "B", Source::Dps).event_type,
            CLOSED
        );
        assert_eq!(
            event(Change::Deleted, 1, "A", "B", Source::Dps).event_type,
            DELETED
        );
        assert_eq!(
            event(Change::Created, 1, "A", "B", Source::Dps).event_type,
            CREATED
        );
    }
}
