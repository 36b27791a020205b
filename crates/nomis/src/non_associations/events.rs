//! The offender events a non-association write raises: one per direction, flat NOMIS
//! bodies (reference migration-sync §3.1), ordered per pair.

use serde_json::{Map, Value, json};
use tandem_platform::events::{OFFENDER_EVENTS, OutgoingEvent};

use crate::{audit::AuditStamp, schema::entities::offender_na_details};

pub const UPSERTED: &str = "NON_ASSOCIATION_DETAIL-UPSERTED";
pub const DELETED: &str = "NON_ASSOCIATION_DETAIL-DELETED";

/// What happened to the detail row (the trigger's view, `nomisEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Inserted,
    Updated,
    Deleted,
}

impl Change {
    fn event_type(self) -> &'static str {
        match self {
            Change::Inserted | Change::Updated => UPSERTED,
            Change::Deleted => DELETED,
        }
    }
    fn nomis_event_type(self) -> &'static str {
        match self {
            Change::Inserted => "OFF_NA_DETAILS_ASSOC-INSERTED",
            Change::Updated => "OFF_NA_DETAILS_ASSOC-UPDATED",
            Change::Deleted => "OFF_NA_DETAILS_ASSOC-DELETED",
        }
    }
}

/// The ordering key of a pair: both numbers, sorted, so both directions' events (and every
/// later change to the pair) are delivered in order.
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}/{b}")
    } else {
        format!("{b}/{a}")
    }
}

/// The event for one direction's detail row (`detail` as it is after the change, or as it
/// was before a delete).
pub(crate) fn event(
    change: Change,
    offender_no: &str,
    ns_offender_no: &str,
    detail: &offender_na_details::Model,
    stamp: &AuditStamp,
) -> OutgoingEvent {
    let mut body = Map::new();
    body.insert("eventType".into(), json!(change.event_type()));
    body.insert(
        "eventDatetime".into(),
        json!(crate::audit::nomis_local_string(stamp.at)),
    );
    put(
        &mut body,
        "bookingId",
        detail.offender_book_id.map(Value::from),
    );
    body.insert("offenderIdDisplay".into(), json!(offender_no));
    body.insert("nomisEventType".into(), json!(change.nomis_event_type()));
    body.insert("nsOffenderIdDisplay".into(), json!(ns_offender_no));
    put(
        &mut body,
        "nsBookingId",
        detail.ns_offender_book_id.map(Value::from),
    );
    body.insert("reasonCode".into(), json!(detail.ns_reason_code));
    body.insert("nsType".into(), json!(detail.ns_type));
    body.insert("typeSeq".into(), json!(detail.type_seq));
    body.insert(
        "effectiveDate".into(),
        json!(detail.ns_effective_date.to_string()),
    );
    put(
        &mut body,
        "expiryDate",
        detail.ns_expiry_date.map(|d| json!(d.to_string())),
    );
    put(
        &mut body,
        "authorisedBy",
        detail.authorized_staff.clone().map(Value::from),
    );
    put(
        &mut body,
        "comment",
        detail.comment_text.clone().map(Value::from),
    );
    body.insert("auditModuleName".into(), json!(stamp.module.as_str()));
    OutgoingEvent::raw(
        OFFENDER_EVENTS,
        change.event_type(),
        Value::Object(body),
        Some(pair_key(offender_no, ns_offender_no)),
    )
}

/// NOMIS leaves absent values out of its events rather than sending nulls.
fn put(body: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        body.insert(key.into(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditModule;
    use chrono::{NaiveDate, TimeZone, Utc};

    #[test]
    fn body_matches_the_recorded_nomis_event() {
        let at = Utc.with_ymd_and_hms(2023, 8, 17, 9, 39, 44).unwrap();
        let detail = offender_na_details::Model {
            offender_id: 1,
            ns_offender_id: 2,
            type_seq: 1,
            offender_book_id: Some(1201882),
            ns_offender_book_id: Some(1202145),
            ns_reason_code: "NOT_REL".into(),
            recip_ns_reason_code: Some("NOT_REL".into()),
            ns_level_code: None,
            ns_type: "CELL".into(),
            ns_effective_date: NaiveDate::from_ymd_opt(2023, 8, 17).unwrap(),
            ns_expiry_date: NaiveDate::from_ymd_opt(2026, 12, 20),
            authorized_staff: Some("Manager".into()),
            comment_text: Some("Test comment".into()),
            create_datetime: at,
            create_user_id: "U".into(),
            modify_datetime: at,
            modify_user_id: "U".into(),
            audit_module_name: "OIDSENAD".into(),
        };
        let stamp = AuditStamp::at(at, "U", AuditModule::parse("OIDSENAD").unwrap());
        let e = event(Change::Updated, "B1234BB", "A1234AA", &detail, &stamp);
        let expected = json!({"eventType":"NON_ASSOCIATION_DETAIL-UPSERTED","eventDatetime":"2023-08-17T10:39:44","bookingId":1201882,
            "offenderIdDisplay":"B1234BB","nomisEventType":"OFF_NA_DETAILS_ASSOC-UPDATED","nsOffenderIdDisplay":"A1234AA",
            "nsBookingId":1202145,"reasonCode":"NOT_REL","nsType":"CELL","typeSeq":1,"effectiveDate":"2023-08-17",
            "expiryDate":"2026-12-20","authorisedBy":"Manager","comment":"Test comment","auditModuleName":"OIDSENAD"});
        assert_eq!(e.body, expected);
        assert_eq!(e.topic, OFFENDER_EVENTS);
        assert_eq!(e.event_type, UPSERTED);
        assert_eq!(e.ordering_key.as_deref(), Some("A1234AA/B1234BB"));
    }
}
