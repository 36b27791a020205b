//! What every sync listener shares, whichever the domain: echo suppression in both
//! directions and per-event-type feature switches. Domains supply the handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_bus::{MessageHandler, Subscription};
use tandem_platform::events::InboundEvent;

/// The audit module NOMIS writes made by the sync carry (and its variants, e.g. `DPS_SYNCHRONISATION_VB`).
pub const DPS_SYNCHRONISATION: &str = "DPS_SYNCHRONISATION";

/// A consumer: its queue and what it does with each event.
pub struct Listener {
    pub subscription: Subscription,
    pub handler: Arc<dyn MessageHandler>,
}

/// NOMIS → DPS: a NOMIS change made by our own DPS → NOMIS writes is an echo, not news.
pub fn originates_in_dps(event: &InboundEvent) -> bool {
    event
        .body
        .get("auditModuleName")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|m| m.starts_with(DPS_SYNCHRONISATION))
}

/// DPS → NOMIS: a DPS change that came from a NOMIS sync is an echo, not news.
pub fn originates_in_nomis(event: &InboundEvent) -> bool {
    event.info_str("source") == Some("NOMIS")
}

/// Which way a change travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    FromNomis,
    ToNomis,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromNomis => "from_nomis",
            Direction::ToNomis => "to_nomis",
        }
    }
}

/// Counts a change applied on the other side (`sync_changes_applied_total`): the figure the
/// demo summary and the dashboard show per direction.
pub fn count_applied(direction: Direction, domain: &'static str) {
    metrics::counter!("sync_changes_applied_total", "direction" => direction.as_str(), "domain" => domain).increment(1);
}

/// Counts an echo of our own write that was recognised and skipped (`sync_echoes_suppressed_total`).
pub fn count_echo(direction: Direction, domain: &'static str) {
    metrics::counter!("sync_echoes_suppressed_total", "direction" => direction.as_str(), "domain" => domain).increment(1);
    tracing::debug!(direction = direction.as_str(), domain, "echo suppressed");
}

/// Per-event-type switches (`feature.event.<eventType>`, default on), as the real listeners
/// have: set `TANDEM_FEATURE_EVENT_<EVENT_TYPE>=false` (upper-cased, `-` and `.` as `_`) to
/// stop handling a type without redeploying; its messages are then acknowledged and dropped.
#[derive(Debug, Clone, Default)]
pub struct FeatureSwitches {
    overrides: BTreeMap<String, bool>,
}

impl FeatureSwitches {
    fn var(event_type: &str) -> String {
        format!(
            "TANDEM_FEATURE_EVENT_{}",
            event_type.to_ascii_uppercase().replace(['-', '.'], "_")
        )
    }

    /// Reads the switches for `event_types` from the environment.
    pub fn from_env(event_types: &[&str]) -> Self {
        let mut overrides = BTreeMap::new();
        for t in event_types {
            if let Ok(v) = std::env::var(Self::var(t)) {
                overrides.insert(
                    t.to_string(),
                    !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "off"),
                );
            }
        }
        Self { overrides }
    }

    pub fn with(mut self, event_type: &str, on: bool) -> Self {
        self.overrides.insert(event_type.to_string(), on);
        self
    }

    pub fn is_on(&self, event_type: &str) -> bool {
        self.overrides.get(event_type).copied().unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(body: serde_json::Value) -> InboundEvent {
        InboundEvent {
            event_type: "x".into(),
            body,
        }
    }

    #[test]
    fn echoes_are_recognised() {
        assert!(originates_in_dps(&ev(
            json!({"auditModuleName": "DPS_SYNCHRONISATION"})
        )));
        assert!(originates_in_dps(&ev(
            json!({"auditModuleName": "DPS_SYNCHRONISATION_VB"})
        )));
        assert!(!originates_in_dps(&ev(
            json!({"auditModuleName": "OIDSENAD"})
        )));
        assert!(!originates_in_dps(&ev(json!({}))));
        assert!(originates_in_nomis(&ev(
            json!({"additionalInformation": {"source": "NOMIS"}})
        )));
        assert!(!originates_in_nomis(&ev(
            json!({"additionalInformation": {"source": "DPS"}})
        )));
    }

    #[test]
    fn switches_default_on() {
        let s = FeatureSwitches::default().with("NON_ASSOCIATION_DETAIL-DELETED", false);
        assert!(s.is_on("NON_ASSOCIATION_DETAIL-UPSERTED"));
        assert!(!s.is_on("NON_ASSOCIATION_DETAIL-DELETED"));
        assert_eq!(
            FeatureSwitches::var("NON_ASSOCIATION_DETAIL-UPSERTED"),
            "TANDEM_FEATURE_EVENT_NON_ASSOCIATION_DETAIL_UPSERTED"
        );
    }
}
