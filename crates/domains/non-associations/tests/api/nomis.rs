//! Seed 002's contract: the NOMIS-shaped view, `/migrate`, `/sync`, `DELETE /sync/{id}`
//! and the NOMIS-key lookup.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tandem_auth::roles;
use tandem_platform::db::testing::TestBackend;

use crate::support::*;

/// One item of the seed body, from `A`'s side, with a type sequence.
fn item(other: &str, type_sequence: i64, expiry: Option<&str>) -> Value {
    json!({
        "typeSequence": type_sequence,
        "reasonCode": "VIC",
        "typeCode": "WING",
        "effectiveDate": "2021-07-05T10:35:17",
        "expiryDate": expiry,
        "authorisedBy": "Staff Name",
        "comments": "Do not location near",
        "prisonerNonAssociation": {"prisonerNumber": other, "reasonCode": "PER"}
    })
}

fn body(prisoner: &str, items: Vec<Value>) -> Value {
    json!({"prisonerNumber": prisoner, "nonAssociations": items})
}

async fn migrates_without_events_idempotently(backend: TestBackend) {
    let app = App::new(backend).await;
    let request = body(
        A,
        vec![
            item(B, 1, None),
            item(B, 2, Some("2022-01-01")),
            item(C, 1, Some("2021-08-01")),
        ],
    );

    let (status, first) = app.post("/migrate", &migrator(), request.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let results = first.as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["typeSequence"], 1);
    assert_eq!(results[0]["firstPrisonerNumber"], A);
    assert_eq!(results[0]["secondPrisonerNumber"], B);
    assert!(results.iter().all(|r| r["created"] == true));
    assert_eq!(app.row_count().await, 3);
    assert!(app.events().await.is_empty(), "migration publishes nothing");

    // A repeat (a lost response, a redelivered message) creates nothing.
    let (status, again) = app.post("/migrate", &migrator(), request).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    for (a, b) in results.iter().zip(again.as_array().unwrap()) {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(b["created"], false);
    }
    assert_eq!(app.row_count().await, 3);

    // The same NOMIS record from the other side is the same record.
    let from_b = body(
        B,
        vec![
            json!({"typeSequence": 2, "reasonCode": "PER", "typeCode": "WING",
        "effectiveDate": "2021-07-05", "expiryDate": "2022-01-01",
        "prisonerNonAssociation": {"prisonerNumber": A, "reasonCode": "VIC"}}),
        ],
    );
    let (status, got) = app.post("/migrate", &migrator(), from_b).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got[0]["id"], results[1]["id"]);

    // What was stored, in DPS terms.
    let id = results[0]["id"].as_i64().unwrap();
    let (_, na) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(na["firstPrisonerRole"], "VICTIM");
    assert_eq!(na["secondPrisonerRole"], "PERPETRATOR");
    assert_eq!(na["reason"], "OTHER");
    assert_eq!(na["restrictionType"], "WING");
    assert_eq!(na["comment"], "Do not location near");
    assert_eq!(na["whenCreated"], "2021-07-05T00:00:00");
    assert_eq!(na["updatedBy"], "NON_ASSOCIATIONS_API");
    assert_eq!(na["isOpen"], true);
    let closed = results[1]["id"].as_i64().unwrap();
    let (_, na) = app
        .get(&format!("/non-associations/{closed}"), &reader())
        .await;
    assert_eq!(na["isClosed"], true);
    assert_eq!(na["closedAt"], "2022-01-01T00:00:00");
    assert_eq!(na["whenUpdated"], "2022-01-01T00:00:00");
    assert_eq!(na["closedReason"], "No closure reason provided");
    assert_eq!(na["closedBy"], "NON_ASSOCIATIONS_API");

    // The NOMIS key finds the record, in either order.
    for path in [format!("/sync/id/{A}/{B}/1"), format!("/sync/id/{B}/{A}/1")] {
        let (status, found) = app.get(&path, &migrator()).await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["id"], id);
    }
    assert_error(
        &app.get(&format!("/sync/id/{A}/{B}/9"), &syncer()).await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    assert_error(
        &app.get(&format!("/sync/id/{A}/nope/1"), &syncer()).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert_error(
        &app.get(&format!("/sync/id/{A}/{B}/1"), &reader()).await,
        StatusCode::FORBIDDEN,
        None,
    );
}

async fn migration_keeps_one_open_per_pair(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, _) = app
        .post("/migrate", &migrator(), body(A, vec![item(B, 1, None)]))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before = app.snapshot().await;
    // A closed record before the open one in the same request: all or nothing.
    let got = app
        .post(
            "/migrate",
            &migrator(),
            body(B, vec![item(A, 5, Some("2021-09-01")), item(A, 2, None)]),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, Some(101));
    assert_eq!(
        app.snapshot().await,
        before,
        "the closed one was not kept either"
    );
    // Closed records are always inserted.
    let (status, got) = app
        .post(
            "/migrate",
            &migrator(),
            body(B, vec![item(A, 5, Some("2021-09-01"))]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    // The DPS API sees the same rule.
    assert_error(
        &app.post("/non-associations", &writer(), create_body(B, A))
            .await,
        StatusCode::CONFLICT,
        Some(101),
    );
}

async fn nomis_view_of_a_prisoner(backend: TestBackend) {
    let app = App::new(backend).await;
    app.post(
        "/migrate",
        &migrator(),
        body(A, vec![item(B, 1, None), item(C, 3, Some("2022-02-02"))]),
    )
    .await;
    let dps = app.create(D, A).await;

    let (status, v) = app.get(&format!("/non-associations/{A}"), &syncer()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["prisonerNumber"], A);
    let list = v["nonAssociations"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list[0],
        json!({
            "id": list[0]["id"], "typeSequence": 1, "reasonCode": "VIC", "typeCode": "WING",
            "effectiveDate": "2021-07-05T00:00:00", "expiryDate": null, "authorisedBy": "Staff Name",
            "comments": "Do not location near",
            "prisonerNonAssociation": {"prisonerNumber": B, "reasonCode": "PER"}
        })
    );
    assert_eq!(list[1]["expiryDate"], "2022-02-02T00:00:00");
    // The DPS-created one seen from A's side: A is the second prisoner (PERPETRATOR → PER).
    assert_eq!(list[2]["id"], dps);
    assert_eq!(list[2]["typeSequence"], Value::Null);
    assert_eq!(list[2]["reasonCode"], "PER");
    assert_eq!(list[2]["typeCode"], "CELL");
    assert_eq!(
        list[2]["prisonerNonAssociation"],
        json!({"prisonerNumber": D, "reasonCode": "VIC"})
    );

    // Readers may use it too; unknown prisoners have none.
    let (status, v) = app
        .get(&format!("/non-associations/{UNKNOWN}"), &reader())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["nonAssociations"], json!([]));
}

async fn path_tells_ids_from_prisoner_numbers(backend: TestBackend) {
    let app = App::new(backend).await;
    let id = app.create(A, B).await;
    let (status, v) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["id"], id);
    assert!(v.get("firstPrisonerNumber").is_some());
    let (status, v) = app.get(&format!("/non-associations/{A}"), &reader()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["prisonerNumber"], A);
    assert_error(
        &app.get("/non-associations/0", &reader()).await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    for bad in ["abc", "a1234bc", "A1234B", "12a", "99999999999999999999999"] {
        let msg = assert_error(
            &app.get(&format!("/non-associations/{bad}"), &reader())
                .await,
            StatusCode::BAD_REQUEST,
            Some(102),
        );
        assert!(
            msg.contains("id") && (msg.contains("prisoner number") || msg.contains("too large")),
            "{bad}: {msg}"
        );
    }
    // The id form needs the read role; the sync role only reaches the prisoner form.
    assert_error(
        &app.get(&format!("/non-associations/{id}"), &syncer()).await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_error(
        &app.get(&format!("/non-associations/{A}"), &migrator())
            .await,
        StatusCode::FORBIDDEN,
        None,
    );
}

async fn sync_creates_updates_and_closes(backend: TestBackend) {
    let app = App::new(backend).await;
    let s = syncer();

    // Unknown NOMIS record: created, with an event from NOMIS.
    let (status, got) = app.post("/sync", &s, body(A, vec![item(B, 1, None)])).await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    let id = got[0]["id"].as_i64().unwrap();
    assert_eq!(got[0]["created"], true);
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "non-associations.created");
    assert_eq!(events[0].body["additionalInformation"]["source"], "NOMIS");
    assert_eq!(events[0].body["additionalInformation"]["id"], id);

    // The same again (a duplicate NOMIS event): nothing changes, nothing is published.
    let (status, got) = app.post("/sync", &s, body(A, vec![item(B, 1, None)])).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got[0],
        json!({"id": id, "typeSequence": 1, "firstPrisonerNumber": A, "secondPrisonerNumber": B, "created": false})
    );
    assert_eq!(app.events().await.len(), 1);

    // A change found by the NOMIS key, sent from the other side: amended, pair kept as stored.
    let changed = json!({"typeSequence": 1, "reasonCode": "RIV", "typeCode": "LAND", "effectiveDate": "2021-07-05",
        "comments": "Rival gangs", "prisonerNonAssociation": {"prisonerNumber": A, "reasonCode": "RIV"},
        "lastModifiedByUsername": "NOMIS_CLERK"});
    let (status, got) = app.post("/sync", &s, body(B, vec![changed])).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got[0]["id"], id);
    assert_eq!(got[0]["firstPrisonerNumber"], A);
    let (_, na) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(na["reason"], "GANG_RELATED");
    assert_eq!(na["restrictionType"], "LANDING");
    assert_eq!(na["comment"], "Rival gangs");
    assert_eq!(na["updatedBy"], "NOMIS_CLERK");
    assert_eq!(na["firstPrisonerNumber"], A);
    assert_eq!(na["whenCreated"], "2021-07-05T00:00:00");
    let e = app.events().await.pop().unwrap();
    assert_eq!(e.event_type, "non-associations.amended");
    assert_eq!(e.body["additionalInformation"]["source"], "NOMIS");

    // Expired in NOMIS, addressed by id: closed.
    let mut expired = item(B, 1, Some("2023-03-04"));
    expired["id"] = json!(id);
    let (status, got) = app.post("/sync", &s, body(A, vec![expired])).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (_, na) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(na["isClosed"], true);
    assert_eq!(na["closedAt"], "2023-03-04T00:00:00");
    assert_eq!(na["closedReason"], "No closure reason provided");
    let e = app.events().await.pop().unwrap();
    assert_eq!(e.event_type, "non-associations.closed");
    assert_eq!(e.body["additionalInformation"]["source"], "NOMIS");
    assert_eq!(app.events().await.len(), 3);
    assert_eq!(app.row_count().await, 1);
}

async fn sync_keeps_dps_details_nomis_lacks(backend: TestBackend) {
    let app = App::new(backend).await;
    let id = app.create(A, B).await;
    app.put(
        &format!("/non-associations/{id}/close"),
        &writer(),
        json!({"closedReason": "Released", "closedAt": "2024-05-06T07:08:09"}),
    )
    .await;
    let (_, before) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    // NOMIS echoes the record back (say a comment edit in NOMIS) with dates only.
    let created_on = &before["whenCreated"].as_str().unwrap()[..10];
    let echo = json!({"id": id, "typeSequence": 4, "reasonCode": "VIC", "typeCode": "CELL",
        "effectiveDate": created_on, "expiryDate": "2024-05-06", "comments": "Edited in NOMIS",
        "authorisedBy": USER, "prisonerNonAssociation": {"prisonerNumber": B, "reasonCode": "PER"}});
    let (status, got) = app.post("/sync", &syncer(), body(A, vec![echo])).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (_, after) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(after["comment"], "Edited in NOMIS");
    assert_eq!(
        after["whenCreated"], before["whenCreated"],
        "same day: the DPS time is kept"
    );
    assert_eq!(after["closedAt"], "2024-05-06T07:08:09");
    assert_eq!(
        after["closedReason"], "Released",
        "NOMIS does not know why it was closed"
    );
    assert_eq!(after["closedBy"], USER);
    let e = app.events().await.pop().unwrap();
    assert_eq!(
        e.event_type, "non-associations.amended",
        "already closed: an amendment"
    );
    // Now linked to the NOMIS record.
    let (status, _) = app.get(&format!("/sync/id/{A}/{B}/4"), &syncer()).await;
    assert_eq!(status, StatusCode::OK);
}

async fn sync_refuses_what_it_cannot_apply(backend: TestBackend) {
    let app = App::new(backend).await;
    let s = syncer();
    let open = app.create(A, B).await;
    let closed = app.create(A, C).await;
    app.close(closed).await;
    let elsewhere = app.create(C, D).await;
    let before = app.snapshot().await;

    // Unknown id.
    let mut i = item(B, 1, None);
    i["id"] = json!(987654);
    assert_error(
        &app.post("/sync", &s, body(A, vec![i])).await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    // A new open record for a pair with an open one.
    assert_error(
        &app.post("/sync", &s, body(B, vec![item(A, 7, None)])).await,
        StatusCode::CONFLICT,
        Some(101),
    );
    // Reopening by id while another is open for the pair.
    let dup = app.create(C, A).await;
    let before = (before.0 + 1, before.1 + 1);
    let mut reopen = item(C, 2, None);
    reopen["id"] = json!(closed);
    assert_error(
        &app.post("/sync", &s, body(A, vec![reopen])).await,
        StatusCode::CONFLICT,
        Some(101),
    );
    // An id that belongs to another pair: the mapping is stale.
    let mut stale = item(B, 1, None);
    stale["id"] = json!(elsewhere);
    let msg = assert_error(
        &app.post("/sync", &s, body(A, vec![stale])).await,
        StatusCode::CONFLICT,
        None,
    );
    assert!(msg.contains("out of date"), "{msg}");
    // All or nothing: a good item followed by a bad one.
    let got = app
        .post(
            "/sync",
            &s,
            body(A, vec![item(D, 1, None), item(A, 1, None)]),
        )
        .await;
    let msg = assert_error(&got, StatusCode::BAD_REQUEST, Some(102));
    assert!(
        msg.contains("nonAssociations[1].prisonerNonAssociation.prisonerNumber"),
        "{msg}"
    );
    let got = app
        .post(
            "/sync",
            &s,
            body(D, vec![item(LEEDS, 1, None), item(C, 1, None)]),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, Some(101));
    assert_eq!(app.snapshot().await, before);
    let _ = (open, dup);

    // Bad bodies.
    let msg = assert_error(
        &app.post("/sync", &s, body(A, vec![json!({"reasonCode": "VIC"})]))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("nonAssociations[0]"), "{msg}");
    let mut bad = item(B, 1, None);
    bad["typeCode"] = json!("FAR");
    let msg = assert_error(
        &app.post("/sync", &s, body(A, vec![bad])).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("nonAssociations[0].typeCode"), "{msg}");
    let mut bad = item(B, 1, None);
    bad["effectiveDate"] = json!("yesterday");
    let msg = assert_error(
        &app.post("/sync", &s, body(A, vec![bad])).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("effectiveDate"), "{msg}");
    // One NOMIS record named twice (same other prisoner and type sequence), on either
    // endpoint: the second used to replace the first (/sync) or be dropped (/migrate).
    let mut twice = item(D, 3, None);
    twice["reasonCode"] = json!("BUL");
    for (path, token) in [("/sync", &s), ("/migrate", &migrator())] {
        let msg = assert_error(
            &app.post(path, token, body(A, vec![item(D, 3, None), twice.clone()]))
                .await,
            StatusCode::BAD_REQUEST,
            Some(102),
        );
        assert!(
            msg.contains("nonAssociations[1]") && msg.contains("nonAssociations[0]"),
            "{path}: {msg}"
        );
    }
    let msg = assert_error(
        &app.post("/migrate", &migrator(), body("A123", vec![]))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("prisonerNumber"), "{msg}");
    assert_eq!(app.snapshot().await, before);

    // Roles: each endpoint its own.
    assert_error(
        &app.post("/sync", &migrator(), body(A, vec![])).await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_error(
        &app.post("/migrate", &s, body(A, vec![])).await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_error(
        &app.post("/migrate", &writer(), body(A, vec![])).await,
        StatusCode::FORBIDDEN,
        None,
    );
    let (status, got) = app.post("/sync", &s, body(A, vec![])).await;
    assert_eq!((status, got), (StatusCode::OK, json!([])));
}

async fn sync_deletes(backend: TestBackend) {
    let app = App::new(backend).await;
    let (_, got) = app
        .post("/sync", &syncer(), body(A, vec![item(B, 1, None)]))
        .await;
    let id = got[0]["id"].as_i64().unwrap();
    assert_error(
        &app.call(Method::DELETE, &format!("/sync/{id}"), &reader(), None)
            .await,
        StatusCode::FORBIDDEN,
        None,
    );
    let (status, _) = app
        .call(Method::DELETE, &format!("/sync/{id}"), &syncer(), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.row_count().await, 0);
    let e = app.events().await.pop().unwrap();
    assert_eq!(e.event_type, "non-associations.deleted");
    assert_eq!(
        e.body["additionalInformation"],
        json!({"id": id, "nsPrisonerNumber1": A, "nsPrisonerNumber2": B, "source": "NOMIS"})
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/sync/{id}"), &syncer(), None)
            .await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    assert_error(
        &app.call(Method::DELETE, "/sync/x", &syncer(), None).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    // Deleted in NOMIS, so a new sync of the same NOMIS record creates it afresh.
    let (status, got) = app
        .post("/sync", &syncer(), body(A, vec![item(B, 1, None)]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{got}");
    let _ = roles::NON_ASSOCIATIONS_SYNC;
}

async fn concurrent_migrations_of_one_record(backend: TestBackend) {
    let app = std::sync::Arc::new(App::new(backend).await);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/migrate",
                &migrator(),
                body(A, vec![item(B, 3, Some("2022-01-01"))]),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {got}"
        );
        created += usize::from(got[0]["created"] == true);
        ids.insert(got[0]["id"].as_i64().unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(app.row_count().await, 1);
}

/// `/migrate/batch` decides as `/migrate` does for each request, with the batch's own
/// records counted: created once, returned as they are on a repeat, and a second open
/// record of a pair (across requests of one batch) refused with nothing written.
async fn migrate_batch_is_all_or_nothing_and_idempotent(backend: TestBackend) {
    let app = App::new(backend).await;
    let batch = json!([
        body(A, vec![item(B, 1, Some("2022-01-01")), item(B, 2, None)]),
        body(C, vec![item(A, 1, None)]),
    ]);
    let (status, first) = app.post("/migrate/batch", &migrator(), batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let lists = first.as_array().unwrap();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0].as_array().unwrap().len(), 2);
    assert_eq!(lists[1][0]["firstPrisonerNumber"], C);
    assert!(
        lists
            .iter()
            .flat_map(|l| l.as_array().unwrap())
            .all(|r| r["created"] == true)
    );
    assert_eq!(app.row_count().await, 3);

    let (status, again) = app.post("/migrate/batch", &migrator(), batch).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let ids = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l.as_array().unwrap())
            .map(|r| r["id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l.as_array().unwrap())
            .all(|r| r["created"] == false)
    );
    assert_eq!(app.row_count().await, 3);

    // Two open records of one new pair in one batch: refused whole.
    let clash = json!([
        body(B, vec![item(C, 1, None)]),
        body(C, vec![item(B, 2, None)]),
    ]);
    let (status, err) = app.post("/migrate/batch", &migrator(), clash).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["errorCode"], 101, "{err}");
    assert_eq!(
        app.row_count().await,
        3,
        "nothing of the refused batch is written"
    );

    // One NOMIS record in two requests of a batch (from each prisoner's side): refused,
    // naming both places, with nothing written.
    let repeated = json!([
        body(B, vec![item(D, 1, Some("2022-01-01"))]),
        body(D, vec![item(C, 1, None), item(B, 1, Some("2022-01-01"))]),
    ]);
    let msg = assert_error(
        &app.post("/migrate/batch", &migrator(), repeated).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(
        msg.contains("[1].nonAssociations[1]") && msg.contains("[0].nonAssociations[0]"),
        "{msg}"
    );
    assert_eq!(app.row_count().await, 3);
}

tandem_platform::both_backends!(
    migrate_batch_is_all_or_nothing_and_idempotent,
    migrates_without_events_idempotently,
    migration_keeps_one_open_per_pair,
    nomis_view_of_a_prisoner,
    path_tells_ids_from_prisoner_numbers,
    sync_creates_updates_and_closes,
    sync_keeps_dps_details_nomis_lacks,
    sync_refuses_what_it_cannot_apply,
    sync_deletes,
    concurrent_migrations_of_one_record,
);
