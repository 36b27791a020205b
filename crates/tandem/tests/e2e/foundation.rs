//! The foundation, end to end: every service mounted, documented and healthy; tokens from
//! `/auth`; NOMIS and DPS non-associations written and read over HTTP, their events
//! leaving through the outbox onto the bus; the mapping service; and bad input refused
//! with nothing written.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tandem_platform::db::testing::TestBackend;
use tandem_platform::events::{DOMAIN_EVENTS, OFFENDER_EVENTS};

use crate::support::TestEstate;

const SERVICES: &[&str] = &[
    "auth",
    "nomis-prisoner-api",
    "nomis-mapping-api",
    "non-associations-api",
];

async fn every_service_is_mounted_healthy_and_documented(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    for s in SERVICES {
        let h = t.get(&format!("/{s}/health")).await;
        assert_eq!(
            (h.status, h.body["status"].as_str()),
            (200, Some("UP")),
            "{s} health: {}",
            h.body
        );
        assert_eq!(
            t.get(&format!("/{s}/health/ping")).await.status,
            200,
            "{s} ping"
        );
        assert_eq!(t.get(&format!("/{s}/info")).await.body["app"]["name"], *s);
        let docs = t.get(&format!("/{s}/v3/api-docs")).await;
        assert_eq!(docs.status, 200);
        assert!(
            docs.body["paths"]
                .as_object()
                .is_some_and(|p| !p.is_empty()),
            "{s} has no documented paths"
        );
        assert_eq!(
            t.get(&format!("/{s}/swagger-ui/")).await.status,
            200,
            "{s} swagger"
        );
    }
    assert_eq!(t.get("/").await.status, 200);
    assert_eq!(t.get("/metrics").await.status, 200);
    let missing = t.get("/no-such-service/thing").await;
    assert_eq!(
        (missing.status, missing.body["status"].as_u64()),
        (404, Some(404))
    );
    t.stop().await;
}

async fn tokens_are_required_and_roles_enforced(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    let path = "/nomis-prisoner-api/prisoners/A1234BC";
    let none = t.call_as(None, Method::GET, path, None, &[]).await;
    assert_eq!(
        (none.status, none.body["status"].as_u64()),
        (401, Some(401))
    );
    let garbage = t
        .call_as(Some("not.a.jwt"), Method::GET, path, None, &[])
        .await;
    assert_eq!(garbage.status, 401);
    let wrong_role = t.user_token("SOMEONE", &["ROLE_READ_NON_ASSOCIATIONS"]);
    let denied = t
        .call_as(Some(&wrong_role), Method::GET, path, None, &[])
        .await;
    assert_eq!(
        (denied.status, denied.body["status"].as_u64()),
        (403, Some(403))
    );
    let jwks = t
        .call_as(None, Method::GET, "/auth/.well-known/jwks.json", None, &[])
        .await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.body["keys"][0]["alg"], "RS256");
    let (id, _) = t.estate.dev_client.clone();
    let bad = t
        .raw(
            http::Request::post("/auth/oauth/token")
                .header(
                    "authorization",
                    format!("Basic {}", {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.encode(format!("{id}:wrong"))
                    }),
                )
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
        .await;
    assert_eq!(bad.status, 401);
    t.stop().await;
}

async fn new_prisoner(t: &TestEstate, first: &str, prison: &str) -> String {
    let r = t
        .call(
            Method::POST,
            "/nomis-prisoner-api/prisoners",
            Some(json!({"firstName": first, "lastName": "TEST", "dateOfBirth": "1990-02-03", "prisonId": prison})),
        )
        .await;
    assert_eq!(r.status, 201, "create prisoner: {}", r.body);
    r.body["offenderNo"]
        .as_str()
        .expect("offenderNo")
        .to_string()
}

async fn nomis_writes_are_audited_and_raise_offender_events(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch(
        "e2e-offender-events",
        OFFENDER_EVENTS,
        &["NON_ASSOCIATION_DETAIL-*"],
    )
    .await;
    let a = new_prisoner(&t, "ALAN", "MDI").await;
    let b = new_prisoner(&t, "BOB", "MDI").await;
    let p = t.get(&format!("/nomis-prisoner-api/prisoners/{a}")).await;
    assert_eq!((p.status, p.body["prisonId"].as_str()), (200, Some("MDI")));

    // A NOMIS user on the NOMIS screen creates one.
    let created = t
        .call_as(
            Some(&t.token.clone()),
            Method::POST,
            "/nomis-prisoner-api/non-associations",
            Some(json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER", "type": "WING",
                        "authorisedBy": "Officer Dibble", "effectiveDate": "2024-01-10", "comment": "Keep apart"})),
            &[("X-Audit-Module", "OIDSENAD")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let seq = created.body["typeSequence"].as_i64().expect("typeSequence");
    let read = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"
        ))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["auditModuleName"], "OIDSENAD");
    assert!(read.body["modifyDatetime"].is_string());
    // Stored both ways: the reverse direction reads too.
    assert_eq!(
        t.get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{b}/ns-offender/{a}/sequence/{seq}"
        ))
        .await
        .status,
        200
    );

    // The sync itself writes with the default module.
    let closed = t.call(Method::PUT, &format!("/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}/close"), None).await;
    assert_eq!(closed.status, 200, "{}", closed.body);

    let events = t.drain("e2e-offender-events", Duration::from_secs(2)).await;
    let modules: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap_or(""),
                e["auditModuleName"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        modules,
        vec![
            ("NON_ASSOCIATION_DETAIL-UPSERTED", "OIDSENAD"),
            ("NON_ASSOCIATION_DETAIL-UPSERTED", "OIDSENAD"),
            ("NON_ASSOCIATION_DETAIL-UPSERTED", "DPS_SYNCHRONISATION"),
            ("NON_ASSOCIATION_DETAIL-UPSERTED", "DPS_SYNCHRONISATION"),
        ],
        "one event per direction per write: {events:?}"
    );
    let directions: Vec<(&str, &str)> = events[..2]
        .iter()
        .map(|e| {
            (
                e["offenderIdDisplay"].as_str().unwrap_or(""),
                e["nsOffenderIdDisplay"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        directions.contains(&(a.as_str(), b.as_str()))
            && directions.contains(&(b.as_str(), a.as_str()))
    );
    assert_eq!(events[0]["typeSeq"].as_i64(), Some(seq));
    t.stop().await;
}

async fn dps_non_associations_over_http(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch("e2e-domain-events", DOMAIN_EVENTS, &["non-associations.*"])
        .await;
    let a = new_prisoner(&t, "CARL", "LEI").await;
    let b = new_prisoner(&t, "DAVE", "LEI").await;
    let c = new_prisoner(&t, "EVAN", "MDI").await;
    let ui = t.user_token(
        "CASE_WORKER",
        &[
            "ROLE_READ_NON_ASSOCIATIONS",
            "ROLE_WRITE_NON_ASSOCIATIONS",
            "ROLE_REOPEN_NON_ASSOCIATIONS",
            "ROLE_DELETE_NON_ASSOCIATIONS",
        ],
    );
    let ui = Some(ui.as_str());
    let create = |x: &str, y: &str| {
        json!({"firstPrisonerNumber": x, "firstPrisonerRole": "VICTIM", "secondPrisonerNumber": y,
               "secondPrisonerRole": "PERPETRATOR", "reason": "BULLYING", "restrictionType": "CELL", "comment": "seen fighting"})
    };
    let r = t
        .call_as(
            ui,
            Method::POST,
            "/non-associations-api/non-associations",
            Some(create(&a, &b)),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().expect("id");
    assert_eq!(r.body["isOpen"], true);

    // One open per pair, either order: 409 with the reference's error code.
    let dup = t
        .call_as(
            ui,
            Method::POST,
            "/non-associations-api/non-associations",
            Some(create(&b, &a)),
            &[],
        )
        .await;
    assert_eq!(
        (dup.status, dup.body["errorCode"].as_i64()),
        (409, Some(101))
    );
    // A prisoner with themself: 400, not 500.
    let selfish = t
        .call_as(
            ui,
            Method::POST,
            "/non-associations-api/non-associations",
            Some(create(&a, &a)),
            &[],
        )
        .await;
    assert_eq!(selfish.status, 400, "{}", selfish.body);

    let got = t
        .call_as(
            ui,
            Method::GET,
            &format!("/non-associations-api/non-associations/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (got.status, got.body["firstPrisonerNumber"].as_str()),
        (200, Some(a.as_str()))
    );
    let view = t
        .call_as(
            ui,
            Method::GET,
            &format!("/non-associations-api/prisoner/{a}/non-associations"),
            None,
            &[],
        )
        .await;
    assert_eq!(view.status, 200, "{}", view.body);
    assert_eq!(view.body["openCount"], 1);
    assert_eq!(
        view.body["nonAssociations"][0]["otherPrisonerDetails"]["prisonerNumber"],
        b.as_str()
    );
    let between = t
        .call_as(
            ui,
            Method::POST,
            "/non-associations-api/non-associations/between",
            Some(json!([a, b])),
            &[],
        )
        .await;
    assert_eq!(
        (between.status, between.body.as_array().map(Vec::len)),
        (200, Some(1))
    );
    let involving = t
        .call_as(
            ui,
            Method::POST,
            "/non-associations-api/non-associations/involving",
            Some(json!([c])),
            &[],
        )
        .await;
    assert_eq!(
        (involving.status, involving.body.as_array().map(Vec::len)),
        (200, Some(0))
    );
    let list = t
        .call_as(
            ui,
            Method::GET,
            "/non-associations-api/non-associations?size=10",
            None,
            &[],
        )
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["totalElements"], 1);

    let patched = t
        .call_as(
            ui,
            Method::PATCH,
            &format!("/non-associations-api/non-associations/{id}"),
            Some(json!({"restrictionType": "WING"})),
            &[],
        )
        .await;
    assert_eq!(
        (patched.status, patched.body["restrictionType"].as_str()),
        (200, Some("WING"))
    );
    let closed = t
        .call_as(
            ui,
            Method::PUT,
            &format!("/non-associations-api/non-associations/{id}/close"),
            Some(json!({"closedReason": "moved on"})),
            &[],
        )
        .await;
    assert_eq!(
        (closed.status, closed.body["isClosed"].as_bool()),
        (200, Some(true))
    );
    let again = t
        .call_as(
            ui,
            Method::PUT,
            &format!("/non-associations-api/non-associations/{id}/close"),
            Some(json!({"closedReason": "twice"})),
            &[],
        )
        .await;
    assert_eq!(
        (again.status, again.body["errorCode"].as_i64()),
        (409, Some(100))
    );
    let reopened = t
        .call_as(
            ui,
            Method::PUT,
            &format!("/non-associations-api/non-associations/{id}/reopen"),
            Some(json!({"reopenReason": "back again"})),
            &[],
        )
        .await;
    assert_eq!(
        (reopened.status, reopened.body["comment"].as_str()),
        (200, Some("back again"))
    );

    // The NOMIS-shaped views: the legacy sync view and the seed's per-prisoner body.
    let legacy = t
        .get(&format!(
            "/non-associations-api/legacy/api/non-associations/{id}"
        ))
        .await;
    assert_eq!(legacy.status, 200, "{}", legacy.body);
    assert_eq!(
        (
            legacy.body["offenderNo"].as_str(),
            legacy.body["typeCode"].as_str()
        ),
        (Some(a.as_str()), Some("WING"))
    );
    let nomis_shaped = t
        .get(&format!("/non-associations-api/non-associations/{a}"))
        .await;
    assert_eq!(nomis_shaped.status, 200, "{}", nomis_shaped.body);
    assert_eq!(nomis_shaped.body["prisonerNumber"], a.as_str());
    assert_eq!(
        nomis_shaped.body["nonAssociations"][0]["prisonerNonAssociation"]["prisonerNumber"],
        b.as_str()
    );
    let neither = t.get("/non-associations-api/non-associations/abc").await;
    assert_eq!(neither.status, 400);
    let constants = t
        .call_as(
            None,
            Method::GET,
            "/non-associations-api/constants",
            None,
            &[],
        )
        .await;
    assert_eq!(constants.status, 200);
    assert!(
        constants.body["reasons"]
            .as_array()
            .is_some_and(|r| r.len() == 7)
    );

    let deleted = t
        .call_as(
            ui,
            Method::POST,
            &format!("/non-associations-api/non-associations/{id}/delete"),
            Some(json!({"deletionReason": "entered in error", "staffUserNameRequestingDeletion": "BOSS"})),
            &[],
        )
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(
        t.call_as(
            ui,
            Method::GET,
            &format!("/non-associations-api/non-associations/{id}"),
            None,
            &[]
        )
        .await
        .status,
        404
    );

    let events = t.drain("e2e-domain-events", Duration::from_secs(2)).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        vec![
            "non-associations.created",
            "non-associations.amended",
            "non-associations.closed",
            "non-associations.amended",
            "non-associations.deleted"
        ]
    );
    for e in &events {
        assert_eq!(e["additionalInformation"]["source"], "DPS");
        assert_eq!(e["additionalInformation"]["id"].as_i64(), Some(id));
        assert_eq!(e["additionalInformation"]["nsPrisonerNumber1"], a.as_str());
    }
    t.stop().await;
}

async fn migrate_and_sync_endpoints_and_mappings(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch("e2e-domain-events", DOMAIN_EVENTS, &["non-associations.*"])
        .await;
    let a = new_prisoner(&t, "FRED", "BXI").await;
    let b = new_prisoner(&t, "GARY", "BXI").await;
    let body = |seq: i64, expiry: Value| {
        json!({"prisonerNumber": a, "nonAssociations": [{
            "reasonCode": "VIC", "typeCode": "LAND", "effectiveDate": "2019-05-01T00:00:00", "expiryDate": expiry,
            "authorisedBy": "Governor", "comments": "historic", "typeSequence": seq,
            "prisonerNonAssociation": {"prisonerNumber": b, "reasonCode": "PER"}}]})
    };
    let migrated = t
        .call(
            Method::POST,
            "/non-associations-api/migrate",
            Some(body(1, json!("2020-01-01T00:00:00"))),
        )
        .await;
    assert_eq!(migrated.status, 201, "{}", migrated.body);
    let dps_id = migrated.body[0]["id"].as_i64().expect("id");
    // Idempotent on the NOMIS key: the same record again is not a second record.
    let again = t
        .call(
            Method::POST,
            "/non-associations-api/migrate",
            Some(body(1, json!("2020-01-01T00:00:00"))),
        )
        .await;
    assert_eq!(again.body[0]["id"].as_i64(), Some(dps_id));
    assert_eq!(again.body[0]["created"], false);
    // Sync creates with source NOMIS.
    let synced = t
        .call(
            Method::POST,
            "/non-associations-api/sync",
            Some(body(2, Value::Null)),
        )
        .await;
    assert!(
        synced.status == 200 || synced.status == 201,
        "{}",
        synced.body
    );
    let lookup = t
        .get(&format!("/non-associations-api/sync/id/{a}/{b}/2"))
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup.body);

    let mapping = json!({"nonAssociationId": dps_id, "firstOffenderNo": a, "secondOffenderNo": b,
                         "nomisTypeSequence": 1, "label": "2026-11-23T10:00:00.000", "mappingType": "MIGRATED"});
    let m = t
        .call(
            Method::POST,
            "/nomis-mapping-api/mapping/non-associations",
            Some(mapping.clone()),
        )
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    assert_eq!(
        t.call(
            Method::POST,
            "/nomis-mapping-api/mapping/non-associations",
            Some(mapping.clone())
        )
        .await
        .status,
        201
    );
    let mut clash = mapping.clone();
    clash["nonAssociationId"] = json!(dps_id + 1000);
    let c = t
        .call(
            Method::POST,
            "/nomis-mapping-api/mapping/non-associations",
            Some(clash),
        )
        .await;
    assert_eq!((c.status, c.body["errorCode"].as_i64()), (409, Some(1409)));
    assert_eq!(
        c.body["moreInfo"]["existing"]["nonAssociationId"].as_i64(),
        Some(dps_id)
    );
    let by_nomis = t.get(&format!("/nomis-mapping-api/mapping/non-associations/first-offender-no/{a}/second-offender-no/{b}/type-sequence/1")).await;
    assert_eq!(
        (by_nomis.status, by_nomis.body["nonAssociationId"].as_i64()),
        (200, Some(dps_id))
    );

    // Migrate raised no events; sync raised one with source NOMIS.
    let events = t.drain("e2e-domain-events", Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["eventType"], "non-associations.created");
    assert_eq!(events[0]["additionalInformation"]["source"], "NOMIS");
    t.stop().await;
}

async fn bad_input_is_refused_and_writes_nothing(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch(
        "e2e-offender-events",
        OFFENDER_EVENTS,
        &["NON_ASSOCIATION_DETAIL-*"],
    )
    .await;
    t.watch("e2e-domain-events", DOMAIN_EVENTS, &["non-associations.*"])
        .await;
    let a = new_prisoner(&t, "HARRY", "WSI").await;
    let b = new_prisoner(&t, "IAN", "WSI").await;
    let good = json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER", "type": "WING", "effectiveDate": "2024-01-10"});
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut v = good.clone();
                v["reason"] = json!("NOPE");
                v
            },
            "reason",
        ),
        (
            {
                let mut v = good.clone();
                v["type"] = json!(7);
                v
            },
            "type",
        ),
        (
            {
                let mut v = good.clone();
                v["nsOffenderNo"] = json!("B12");
                v
            },
            "nsOffenderNo",
        ),
        (
            {
                let mut v = good.clone();
                v["effectiveDate"] = json!("yesterday");
                v
            },
            "effectiveDate",
        ),
        (
            {
                let mut v = good.clone();
                v["comment"] = json!("x".repeat(241));
                v
            },
            "comment",
        ),
        (
            {
                let mut v = good.clone();
                v["nsOffenderNo"] = json!(a);
                v
            },
            "same",
        ),
    ];
    for (body, field) in cases {
        let r = t
            .call(
                Method::POST,
                "/nomis-prisoner-api/non-associations",
                Some(body),
            )
            .await;
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        let msg = r.body["userMessage"].as_str().unwrap_or("");
        assert!(
            msg.contains(field) || (field == "same" && msg.contains("cannot be the same")),
            "{field} not named in: {msg}"
        );
    }
    let malformed = t
        .raw(
            http::Request::post("/nomis-prisoner-api/non-associations")
                .header("authorization", format!("Bearer {}", t.token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"offenderNo\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(malformed.status, 400);
    let dps_bad = t
        .call(
            Method::POST,
            "/non-associations-api/migrate",
            Some(json!({"prisonerNumber": a, "nonAssociations": [{"reasonCode": "ZZZ", "typeCode": "WING", "effectiveDate": "2020-01-01T00:00:00",
                          "typeSequence": 1, "prisonerNonAssociation": {"prisonerNumber": b, "reasonCode": "PER"}}]})),
        )
        .await;
    assert_eq!(dps_bad.status, 400, "{}", dps_bad.body);
    assert_eq!(
        t.get("/non-associations-api/non-associations/999999")
            .await
            .status,
        404
    );
    assert_eq!(
        t.get("/nomis-prisoner-api/prisoners/Z9999ZZ").await.status,
        404
    );

    // Nothing was written: no record either way, no event.
    let all = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .await;
    assert!(
        all.status == 404 || all.body.as_array().is_some_and(Vec::is_empty),
        "{}",
        all.body
    );
    assert!(
        t.drain("e2e-offender-events", Duration::from_millis(600))
            .await
            .is_empty()
    );
    assert!(
        t.drain("e2e-domain-events", Duration::from_millis(100))
            .await
            .is_empty()
    );
    t.stop().await;
}

tandem_platform::both_backends!(
    every_service_is_mounted_healthy_and_documented,
    tokens_are_required_and_roles_enforced,
    nomis_writes_are_audited_and_raise_offender_events,
    dps_non_associations_over_http,
    migrate_and_sync_endpoints_and_mappings,
    bad_input_is_refused_and_writes_nothing,
);
