//! The event envelope: what producers put in the outbox and what consumers receive.
//!
//! Two topics, as in production: `domain-events` (DPS services, NOMIS-derived
//! `prison-offender-events.*`, `probation-case.*`) and `offender-events` (raw NOMIS change
//! events). Consumers accept both the plain body and the SNS-in-SQS wrapping, so recorded
//! production messages replay as they are.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub const DOMAIN_EVENTS: &str = "domain-events";
pub const OFFENDER_EVENTS: &str = "offender-events";

/// The HMPPS domain event body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    pub event_type: String,
    /// `"1.0"` for most services, the integer `1` for some: kept as the producer wrote it.
    pub version: Value,
    /// ISO-8601 with the Europe/London offset.
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_url: Option<String>,
    #[serde(default)]
    pub additional_information: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_reference: Option<PersonReference>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonReference {
    pub identifiers: Vec<PersonIdentifier>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonIdentifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl DomainEvent {
    /// A version-"1.0" event occurring now.
    pub fn new(event_type: &str, description: impl Into<String>, info: Value) -> Self {
        Self {
            event_type: event_type.to_string(),
            version: Value::String("1.0".into()),
            occurred_at: crate::time::london_iso(crate::time::now()),
            description: Some(description.into()),
            detail_url: None,
            additional_information: info,
            person_reference: None,
        }
    }

    pub fn with_noms_number(mut self, noms: &str) -> Self {
        self.person_reference = Some(PersonReference {
            identifiers: vec![PersonIdentifier {
                kind: "NOMS".into(),
                value: noms.into(),
            }],
        });
        self
    }
}

/// An event on its way out: one outbox row, one bus message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutgoingEvent {
    /// Unique per event; the bus de-duplicates on it, so a relay retry is harmless.
    pub id: Uuid,
    pub topic: String,
    pub event_type: String,
    /// Messages with the same key are delivered to a queue in order, one at a time.
    pub ordering_key: Option<String>,
    /// The JSON body the consumer receives.
    pub body: Value,
    /// The trace id of the request that caused the event, carried across the bus hop.
    pub trace_id: Option<String>,
}

impl OutgoingEvent {
    /// A domain event for `domain-events`.
    pub fn domain(event: &DomainEvent, ordering_key: impl Into<Option<String>>) -> Self {
        Self::raw(
            DOMAIN_EVENTS,
            &event.event_type,
            serde_json::to_value(event).unwrap_or(Value::Null),
            ordering_key.into(),
        )
    }

    /// An event with an arbitrary body (NOMIS offender events are flat objects).
    pub fn raw(topic: &str, event_type: &str, body: Value, ordering_key: Option<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            topic: topic.to_string(),
            event_type: event_type.to_string(),
            ordering_key,
            body,
            trace_id: crate::http::current_trace_id(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvelopeError {
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("SNS notification has no string `Message`")]
    MissingMessage,
    #[error("message has no eventType (neither a message attribute nor a body field)")]
    MissingEventType,
}

/// An event as a consumer sees it, unwrapped.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    pub event_type: String,
    pub body: Value,
}

impl InboundEvent {
    /// Reads a message body as delivered: plain JSON, or an SNS `Notification` whose
    /// `Message` is a JSON string. The event type comes from the `eventType` message
    /// attribute when present (as the real listeners read it), else from the body.
    pub fn parse(raw: &[u8], attribute_event_type: Option<&str>) -> Result<Self, EnvelopeError> {
        let outer: Value =
            serde_json::from_slice(raw).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        Self::from_value(outer, attribute_event_type)
    }

    pub fn from_value(
        outer: Value,
        attribute_event_type: Option<&str>,
    ) -> Result<Self, EnvelopeError> {
        let (body, sns_attr) = if outer.get("Type").and_then(Value::as_str) == Some("Notification")
        {
            let msg = outer
                .get("Message")
                .and_then(Value::as_str)
                .ok_or(EnvelopeError::MissingMessage)?;
            let body: Value =
                serde_json::from_str(msg).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
            let attr = outer
                .pointer("/MessageAttributes/eventType/Value")
                .and_then(Value::as_str)
                .map(str::to_string);
            (body, attr)
        } else {
            (outer, None)
        };
        let event_type = attribute_event_type
            .map(str::to_string)
            .or(sns_attr)
            .or_else(|| {
                body.get("eventType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or(EnvelopeError::MissingEventType)?;
        Ok(Self { event_type, body })
    }

    /// `additionalInformation.<field>` as a string, for domain events.
    pub fn info_str(&self, field: &str) -> Option<&str> {
        self.body
            .get("additionalInformation")
            .and_then(|i| i.get(field))
            .and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sns_wrapped_bodies() {
        let plain = br#"{"eventType":"x.y","additionalInformation":{"a":"b"}}"#;
        let e = InboundEvent::parse(plain, None).unwrap();
        assert_eq!(e.event_type, "x.y");
        assert_eq!(e.info_str("a"), Some("b"));

        let wrapped = serde_json::json!({
            "Type": "Notification",
            "Message": "{\"version\":\"1.0\",\"additionalInformation\":{\"nomsNumber\":\"B8888CC\"}}",
            "MessageAttributes": {"eventType": {"Type": "String", "Value": "prison-offender-events.prisoner.merged"}}
        });
        let e = InboundEvent::parse(wrapped.to_string().as_bytes(), None).unwrap();
        assert_eq!(e.event_type, "prison-offender-events.prisoner.merged");
        assert_eq!(e.info_str("nomsNumber"), Some("B8888CC"));
    }

    #[test]
    fn rejects_what_cannot_be_read() {
        assert!(matches!(
            InboundEvent::parse(b"nope", None),
            Err(EnvelopeError::NotJson(_))
        ));
        assert_eq!(
            InboundEvent::parse(b"{}", None),
            Err(EnvelopeError::MissingEventType)
        );
        assert_eq!(
            InboundEvent::parse(br#"{"Type":"Notification"}"#, None),
            Err(EnvelopeError::MissingMessage)
        );
    }

    #[test]
    fn domain_event_round_trips() {
        let e = DomainEvent::new(
            "non-associations.created",
            "created 1",
            serde_json::json!({"id": 1}),
        )
        .with_noms_number("A1234BC");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["eventType"], "non-associations.created");
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["personReference"]["identifiers"][0]["type"], "NOMS");
        let back: DomainEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
