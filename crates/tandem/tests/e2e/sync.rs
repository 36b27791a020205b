//! Migration and two-way sync of non-associations through the whole estate: the migration
//! API and engine, the bus, the listeners on both sides, the mapping service.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tandem_platform::db::testing::TestBackend;
use tandem_platform::events::{DOMAIN_EVENTS, OFFENDER_EVENTS, OutgoingEvent};

use crate::support::{TestEstate, eventually};

async fn migrate(t: &TestEstate) -> Value {
    let started = t
        .call(
            Method::POST,
            "/prisoner-from-nomis/migrate/non-associations",
            Some(json!({})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.body["migrationId"]
        .as_str()
        .expect("migrationId")
        .to_string();
    eventually(60, "the migration to complete", || async {
        let h = t
            .get(&format!("/prisoner-from-nomis/migrate/history/{id}"))
            .await;
        (h.body["status"] == "COMPLETED").then_some(h.body)
    })
    .await
}

async fn total(t: &TestEstate, path: &str) -> i64 {
    let r = t.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body["totalElements"].as_i64().expect("totalElements")
}

/// NOMIS records that should migrate: per pair every closed record plus one open one.
async fn nomis_records_to_migrate(t: &TestEstate) -> i64 {
    let today = chrono::Utc::now().date_naive().to_string();
    let mut after: Option<String> = None;
    let mut expected = 0;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let page = t
            .get(&format!(
                "/nomis-prisoner-api/non-associations/ids/keyset?size=1000{q}"
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let pairs = page.body["content"].as_array().cloned().unwrap_or_default();
        for p in &pairs {
            let (a, b) = (
                p["offenderNo1"].as_str().unwrap(),
                p["offenderNo2"].as_str().unwrap(),
            );
            let all = t
                .get(&format!(
                    "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
                ))
                .await;
            let records = all.body.as_array().cloned().unwrap_or_default();
            let open = records
                .iter()
                .filter(|r| {
                    r["effectiveDate"].as_str().unwrap_or("") <= today.as_str()
                        && r["expiryDate"].as_str().is_none_or(|e| e > today.as_str())
                })
                .count() as i64;
            expected += records.len() as i64 - open + open.min(1);
        }
        match page.body["next"].as_str() {
            Some(n) if !pairs.is_empty() => after = Some(n.to_string()),
            _ => return expected,
        }
    }
}

async fn full_migration_counts_agree_and_a_second_run_migrates_nothing(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    let nomis = t.estate.db("nomis-prisoner-api").unwrap();
    let opts = tandem_nomis::SeedOptions {
        prisoners: 300,
        prisons: vec![],
        seed: 42,
        non_association_pairs: Some(120),
    };
    tandem_nomis::seed(nomis, &opts).await.expect("seed");
    let expected = nomis_records_to_migrate(&t).await;
    assert!(
        expected > 120,
        "the seed has several records per pair: {expected}"
    );

    // A filter the migration cannot apply is refused, naming the field, and nothing is
    // recorded (the history below holds the two runs only).
    for (body, field) in [
        (json!({"prisonIds": ["MDI"]}), "prisonIds"),
        (json!({"toDate": "+10000-01-01"}), "toDate"),
        (
            json!({"fromDate": "2024-02-01", "toDate": "2024-01-01"}),
            "fromDate",
        ),
    ] {
        let r = t
            .call(
                Method::POST,
                "/prisoner-from-nomis/migrate/non-associations",
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.body["userMessage"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{body}: {}",
            r.body
        );
    }

    let h = migrate(&t).await;
    let id = h["migrationId"].as_str().unwrap();
    assert_eq!(h["recordsFailed"], 0, "{h}");
    assert_eq!(h["recordsMigrated"].as_i64(), Some(expected), "{h}");
    assert_eq!(h["estimatedRecordCount"], 120);
    let dps = total(
        &t,
        "/non-associations-api/non-associations?includeOpen=true&includeClosed=true&size=1",
    )
    .await;
    let mapped = total(
        &t,
        &format!("/nomis-mapping-api/mapping/non-associations/migration-id/{id}?size=1"),
    )
    .await;
    assert_eq!((dps, mapped), (expected, expected));

    let again = migrate(&t).await;
    assert_eq!(
        (
            again["recordsMigrated"].as_i64(),
            again["recordsFailed"].as_i64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(
        total(
            &t,
            "/non-associations-api/non-associations?includeOpen=true&includeClosed=true&size=1"
        )
        .await,
        expected
    );
    let history = t
        .get("/prisoner-from-nomis/migrate/history/all/non-associations")
        .await;
    assert_eq!(history.body.as_array().map(Vec::len), Some(2));
    t.stop().await;
}

async fn new_prisoner(t: &TestEstate, first: &str, prison: &str) -> String {
    let r = t
        .call(
            Method::POST,
            "/nomis-prisoner-api/prisoners",
            Some(json!({"firstName": first, "lastName": "SYNC", "dateOfBirth": "1985-06-07", "prisonId": prison})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["offenderNo"].as_str().unwrap().to_string()
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

async fn a_dps_create_reaches_nomis_once_and_does_not_come_back(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch(
        "e2e-capture-offender",
        OFFENDER_EVENTS,
        &["NON_ASSOCIATION_DETAIL-*"],
    )
    .await;
    t.watch("e2e-capture-domain", DOMAIN_EVENTS, &["non-associations.*"])
        .await;
    let (a, b) = ordered(
        &new_prisoner(&t, "JACK", "MDI").await,
        &new_prisoner(&t, "KARL", "MDI").await,
    );
    let ui = t.user_token(
        "DPS_USER",
        &["ROLE_READ_NON_ASSOCIATIONS", "ROLE_WRITE_NON_ASSOCIATIONS"],
    );
    let created = t
        .call_as(
            Some(&ui),
            Method::POST,
            "/non-associations-api/non-associations",
            Some(json!({"firstPrisonerNumber": a, "firstPrisonerRole": "VICTIM", "secondPrisonerNumber": b,
                        "secondPrisonerRole": "PERPETRATOR", "reason": "VIOLENCE", "restrictionType": "LANDING", "comment": "from DPS"})),
            &[],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let mapping = eventually(10, "the DPS create to reach NOMIS", || async {
        let m = t
            .get(&format!(
                "/nomis-mapping-api/mapping/non-associations/non-association-id/{id}"
            ))
            .await;
        (m.status == 200).then_some(m.body)
    })
    .await;
    assert_eq!(mapping["mappingType"], "DPS_CREATED");
    let seq = mapping["nomisTypeSequence"].as_i64().unwrap();
    let nomis = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"
        ))
        .await;
    assert_eq!(
        (nomis.status, nomis.body["auditModuleName"].as_str()),
        (200, Some("DPS_SYNCHRONISATION"))
    );
    assert_eq!(
        (nomis.body["type"].as_str(), nomis.body["comment"].as_str()),
        (Some("LAND"), Some("from DPS"))
    );

    // An amendment follows the same road.
    let patched = t
        .call_as(
            Some(&ui),
            Method::PATCH,
            &format!("/non-associations-api/non-associations/{id}"),
            Some(json!({"comment": "amended in DPS"})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200);
    eventually(10, "the amendment to reach NOMIS", || async {
        let r = t
            .get(&format!(
                "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"
            ))
            .await;
        (r.body["comment"] == "amended in DPS").then_some(())
    })
    .await;

    // Give any echo time to come back, then check nothing was duplicated either side.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1), "{}", all.body);
    let dps = t
        .call_as(
            Some(&ui),
            Method::POST,
            "/non-associations-api/non-associations/between",
            Some(json!([a, b])),
            &[],
        )
        .await;
    assert_eq!(dps.body.as_array().map(Vec::len), Some(1), "{}", dps.body);
    assert_eq!(dps.body[0]["comment"], "amended in DPS");

    // Every message delivered twice changes nothing.
    redeliver_everything(&t).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1));
    let dps = t
        .call_as(
            Some(&ui),
            Method::POST,
            "/non-associations-api/non-associations/between",
            Some(json!([a, b])),
            &[],
        )
        .await;
    assert_eq!(dps.body.as_array().map(Vec::len), Some(1));
    assert_eq!(dps.body[0]["comment"], "amended in DPS");
    t.stop().await;
}

/// Publishes again every event captured so far (as a redelivery would hand it over).
async fn redeliver_everything(t: &TestEstate) {
    for (queue, topic) in [
        ("e2e-capture-offender", OFFENDER_EVENTS),
        ("e2e-capture-domain", DOMAIN_EVENTS),
    ] {
        for body in t.drain(queue, Duration::from_millis(300)).await {
            let event_type = body["eventType"].as_str().unwrap_or_default().to_string();
            let key = body["offenderIdDisplay"].as_str().map(str::to_string);
            let event = OutgoingEvent::raw(topic, &event_type, body, key);
            t.estate.bus.publish(&event).await.expect("publish");
        }
    }
}

async fn a_nomis_edit_reaches_dps_once_and_does_not_go_back(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    t.watch(
        "e2e-capture-offender",
        OFFENDER_EVENTS,
        &["NON_ASSOCIATION_DETAIL-*"],
    )
    .await;
    t.watch("e2e-capture-domain", DOMAIN_EVENTS, &["non-associations.*"])
        .await;
    let (a, b) = ordered(
        &new_prisoner(&t, "LEON", "LEI").await,
        &new_prisoner(&t, "MIKE", "LEI").await,
    );
    let screen = [("X-Audit-Module", "OIDSENAD")];
    let created = t
        .call_as(
            Some(&t.token.clone()),
            Method::POST,
            "/nomis-prisoner-api/non-associations",
            Some(json!({"offenderNo": a, "nsOffenderNo": b, "reason": "RIV", "recipReason": "RIV", "type": "CELL",
                        "authorisedBy": "SO Smith", "effectiveDate": "2025-03-01", "comment": "from NOMIS"})),
            &screen,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let seq = created.body["typeSequence"].as_i64().unwrap();
    let dps = eventually(10, "the NOMIS create to reach DPS", || async {
        let r = t
            .get(&format!("/non-associations-api/sync/id/{a}/{b}/{seq}"))
            .await;
        (r.status == 200).then_some(r.body)
    })
    .await;
    let id = dps["id"].as_i64().unwrap();
    assert_eq!(dps["reason"], "GANG_RELATED");
    let m = t
        .get(&format!(
            "/nomis-mapping-api/mapping/non-associations/non-association-id/{id}"
        ))
        .await;
    assert_eq!(
        (m.status, m.body["mappingType"].as_str()),
        (200, Some("NOMIS_CREATED"))
    );

    // A NOMIS user edits it on the screen.
    let put = t
        .call_as(
            Some(&t.token.clone()),
            Method::PUT,
            &format!("/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"),
            Some(json!({"reason": "RIV", "recipReason": "RIV", "type": "WING", "authorisedBy": "SO Smith",
                        "effectiveDate": "2025-03-01", "comment": "edited in NOMIS"})),
            &screen,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    eventually(10, "the NOMIS edit to reach DPS", || async {
        let r = t
            .get(&format!("/non-associations-api/non-associations/{id}"))
            .await;
        (r.body["comment"] == "edited in NOMIS" && r.body["restrictionType"] == "WING")
            .then_some(())
    })
    .await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .await;
    assert_eq!(
        all.body.as_array().map(Vec::len),
        Some(1),
        "no echo came back to NOMIS: {}",
        all.body
    );
    assert_eq!(
        all.body[0]["auditModuleName"], "OIDSENAD",
        "NOMIS was not rewritten by an echo"
    );
    redeliver_everything(&t).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = t
        .get(&format!(
            "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(1));
    let list = total(
        &t,
        "/non-associations-api/non-associations?includeOpen=true&includeClosed=true&size=1",
    )
    .await;
    assert_eq!(list, 1);

    // And deleted in NOMIS: gone from DPS and from the mappings.
    let del = t
        .call_as(
            Some(&t.token.clone()),
            Method::DELETE,
            &format!(
                "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"
            ),
            None,
            &screen,
        )
        .await;
    assert_eq!(del.status, 204);
    eventually(10, "the NOMIS delete to reach DPS", || async {
        (t.get(&format!("/non-associations-api/non-associations/{id}"))
            .await
            .status
            == 404)
            .then_some(())
    })
    .await;
    t.stop().await;
}

fn fixture(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(path);
    std::fs::read_to_string(&root).unwrap_or_else(|e| panic!("fixture {}: {e}", root.display()))
}

async fn the_merge_fixture_replayed_as_it_is(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    // The fixture merges A7777BB into B8888CC.
    for (no, name) in [("A7777BB", "OLD"), ("B8888CC", "NEW")] {
        let r = t
            .call(
                Method::POST,
                "/nomis-prisoner-api/prisoners",
                Some(json!({"offenderNo": no, "firstName": name, "lastName": "MERGE", "dateOfBirth": "1980-01-01", "prisonId": "MDI"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let other = new_prisoner(&t, "NICK", "MDI").await;
    let ui = t.user_token(
        "DPS_USER",
        &["ROLE_READ_NON_ASSOCIATIONS", "ROLE_WRITE_NON_ASSOCIATIONS"],
    );
    let created = t
        .call_as(
            Some(&ui),
            Method::POST,
            "/non-associations-api/non-associations",
            Some(json!({"firstPrisonerNumber": "A7777BB", "firstPrisonerRole": "VICTIM", "secondPrisonerNumber": other,
                        "secondPrisonerRole": "PERPETRATOR", "reason": "THREAT", "restrictionType": "CELL", "comment": "before merge"})),
            &[],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    eventually(10, "the create to be mapped", || async {
        (t.get(&format!(
            "/nomis-mapping-api/mapping/non-associations/non-association-id/{id}"
        ))
        .await
        .status
            == 200)
            .then_some(())
    })
    .await;

    let raw: Value = serde_json::from_str(&fixture(
        "domains/hmpps-non-associations-api/messages/prison-offender-events.prisoner.merged.json",
    ))
    .unwrap();
    let event_type = raw["MessageAttributes"]["eventType"]["Value"]
        .as_str()
        .unwrap()
        .to_string();
    // Published exactly as recorded: the SNS notification is the body.
    t.estate
        .bus
        .publish(&OutgoingEvent::raw(DOMAIN_EVENTS, &event_type, raw, None))
        .await
        .unwrap();

    let merged = eventually(10, "DPS to renumber the merged prisoner", || async {
        let r = t
            .get(&format!("/non-associations-api/non-associations/{id}"))
            .await;
        let numbers = [
            r.body["firstPrisonerNumber"].as_str(),
            r.body["secondPrisonerNumber"].as_str(),
        ];
        numbers.contains(&Some("B8888CC")).then_some(r.body)
    })
    .await;
    assert!(
        ![
            merged["firstPrisonerNumber"].as_str(),
            merged["secondPrisonerNumber"].as_str()
        ]
        .contains(&Some("A7777BB"))
    );
    let m = eventually(10, "the mapping to follow the merge", || async {
        let m = t
            .get(&format!(
                "/nomis-mapping-api/mapping/non-associations/non-association-id/{id}"
            ))
            .await;
        let numbers = [
            m.body["firstOffenderNo"].as_str(),
            m.body["secondOffenderNo"].as_str(),
        ];
        numbers.contains(&Some("B8888CC")).then_some(m.body)
    })
    .await;
    assert_eq!(m["nonAssociationId"].as_i64(), Some(id));
    t.stop().await;
}

async fn where_dps_is_master_nomis_users_are_refused_and_sync_still_writes(backend: TestBackend) {
    let t = TestEstate::boot(backend).await;
    let (a, b) = ordered(
        &new_prisoner(&t, "OSCAR", "BMI").await,
        &new_prisoner(&t, "PAUL", "BMI").await,
    );
    let on = t
        .call(
            Method::POST,
            "/nomis-prisoner-api/agency-switches/NON_ASSOCIATIONS/agency/BMI",
            None,
        )
        .await;
    assert_eq!(on.status, 201, "{}", on.body);
    assert_eq!(
        t.get("/nomis-prisoner-api/agency-switches/NON_ASSOCIATIONS/agency/BMI")
            .await
            .status,
        204
    );
    assert_eq!(
        t.get("/nomis-prisoner-api/agency-switches/NON_ASSOCIATIONS/agency/LEI")
            .await
            .status,
        404
    );
    let refused = t
        .call_as(
            Some(&t.token.clone()),
            Method::POST,
            "/nomis-prisoner-api/non-associations",
            Some(json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER", "type": "WING", "effectiveDate": "2025-01-01"})),
            &[("X-Audit-Module", "OIDSENAD")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body["userMessage"]
            .as_str()
            .unwrap_or("")
            .contains("edit them in DPS")
    );

    let ui = t.user_token(
        "DPS_USER",
        &["ROLE_READ_NON_ASSOCIATIONS", "ROLE_WRITE_NON_ASSOCIATIONS"],
    );
    let created = t
        .call_as(
            Some(&ui),
            Method::POST,
            "/non-associations-api/non-associations",
            Some(json!({"firstPrisonerNumber": a, "firstPrisonerRole": "VICTIM", "secondPrisonerNumber": b,
                        "secondPrisonerRole": "PERPETRATOR", "reason": "VIOLENCE", "restrictionType": "WING", "comment": "DPS is master"})),
            &[],
        )
        .await;
    assert_eq!(created.status, 201);
    eventually(
        10,
        "the DPS create to reach NOMIS at a switched prison",
        || async {
            let all = t
                .get(&format!(
                    "/nomis-prisoner-api/non-associations/offender/{a}/ns-offender/{b}/all"
                ))
                .await;
            (all.body.as_array().map(Vec::len) == Some(1)).then_some(())
        },
    )
    .await;
    t.stop().await;
}

tandem_platform::both_backends!(
    where_dps_is_master_nomis_users_are_refused_and_sync_still_writes,
    full_migration_counts_agree_and_a_second_run_migrates_nothing,
    a_dps_create_reaches_nomis_once_and_does_not_come_back,
    a_nomis_edit_reaches_dps_once_and_does_not_go_back,
    the_merge_fixture_replayed_as_it_is,
);
