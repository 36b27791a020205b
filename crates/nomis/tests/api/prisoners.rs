use axum::http::StatusCode;
use serde_json::json;
use tandem_platform::{both_backends, db::testing::TestBackend};

use crate::support::{app, assert_error};

async fn receives_and_finds_a_prisoner(backend: TestBackend) {
    let app = app(backend).await;
    let (status, created) = app
        .post(
            "/prisoners",
            json!({"firstName": "John", "lastName": "Smith", "dateOfBirth": "1980-02-29", "prisonId": "MDI"}),
        )
        .module("OIDADMIS")
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let no = created["offenderNo"].as_str().unwrap();
    assert!(tandem_platform::ids::PrisonerNumber::looks_like(no), "{no}");
    assert_eq!(created["prisonId"], "MDI");
    assert_eq!(created["dateOfBirth"], "1980-02-29");
    assert!(created["offenderId"].as_i64().unwrap() > 0);
    assert!(created["bookingId"].as_i64().unwrap() > 0);

    let (status, found) = app.get(&format!("/prisoners/{no}")).send().await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["offenderNo"], no);
    assert_eq!(found["offenderId"], created["offenderId"]);
    assert_eq!(found["bookingId"], created["bookingId"]);
    assert_eq!(found["firstName"], "John");
    assert_eq!(found["lastName"], "Smith");
    assert_eq!(found["prisonId"], "MDI");
    assert_eq!(found["prisonName"], "Moorland (HMP & YOI)");
    assert_eq!(found["active"], true);
    assert!(
        found["cellLocation"].as_str().unwrap().starts_with("A-"),
        "{found}"
    );
    assert_eq!(found["auditModuleName"], "OIDADMIS");
    assert!(found["modifyDatetime"].as_str().is_some());

    // Lower case is accepted, as the DPS services accept it.
    let (status, _) = app
        .get(&format!("/prisoners/{}", no.to_lowercase()))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);

    // A second prisoner gets a different number; the creation raised an offender event.
    let other = app.prisoner("Amy", "Jones", "LEI").await;
    assert_ne!(other, no);
    let events = app.events("OFFENDER-INSERTED").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1["offenderIdDisplay"], no);
    assert_eq!(events[0].1["auditModuleName"], "OIDADMIS");
    assert_eq!(events[1].1["auditModuleName"], "DPS_SYNCHRONISATION");
}

async fn a_chosen_number_is_used_once(backend: TestBackend) {
    let app = app(backend).await;
    let body = json!({"firstName": "A", "lastName": "B", "dateOfBirth": "1990-01-01", "prisonId": "BXI",
        "offenderNo": "a1234aa", "cellLocation": "B-2-010"});
    let (status, created) = app.post("/prisoners", body.clone()).send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["offenderNo"], "A1234AA");
    let (_, found) = app.get("/prisoners/A1234AA").send().await;
    assert_eq!(found["cellLocation"], "B-2-010");
    let (status, err) = app.post("/prisoners", body).send().await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        &["offenderNo", "A1234AA"],
    );
    assert_eq!(app.count("offenders").await, 1);
}

async fn bad_prisoner_requests_are_refused(backend: TestBackend) {
    let app = app(backend).await;
    let ok =
        json!({"firstName": "A", "lastName": "B", "dateOfBirth": "1990-01-01", "prisonId": "MDI"});
    let mut unknown_prison = ok.clone();
    unknown_prison["prisonId"] = json!("XYZ");
    let (status, err) = app.post("/prisoners", unknown_prison).send().await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        &["prisonId", "XYZ", "MDI, PVI"],
    );
    let mut out = ok.clone();
    out["prisonId"] = json!("OUT");
    let (status, err) = app.post("/prisoners", out).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["prisonId"]);
    let mut future = ok.clone();
    future["dateOfBirth"] = json!("2999-01-01");
    let (status, err) = app.post("/prisoners", future).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["dateOfBirth"]);
    let mut blank = ok.clone();
    blank["lastName"] = json!("  ");
    let (status, err) = app.post("/prisoners", blank).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["lastName"]);
    let (status, err) = app
        .post("/prisoners", json!({"firstName": "A"}))
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["lastName"]);
    let (status, err) = app
        .post("/prisoners", ok.clone())
        .module("bad module")
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["X-Audit-Module"]);
    assert_eq!(app.count("offenders").await, 0);
    assert_eq!(app.count("offender_bookings").await, 0);
    assert_eq!(app.count("outbox").await, 0);

    let (status, err) = app.get("/prisoners/A1234BC").send().await;
    assert_error(status, &err, StatusCode::NOT_FOUND, &["A1234BC"]);
    let (status, err) = app.get("/prisoners/NOT-A-NUMBER").send().await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        &["offenderNo", "NOT-A-NUMBER"],
    );
}

async fn searches_in_bulk(backend: TestBackend) {
    let app = app(backend).await;
    let a = app.prisoner("A", "One", "MDI").await;
    let b = app.prisoner("B", "Two", "LEI").await;
    let (status, found) = app
        .post(
            "/prisoners/search",
            json!({"prisonerNumbers": [b, "Z9999ZZ", a, b]}),
        )
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let numbers: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offenderNo"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec![b.as_str(), a.as_str()]);
    assert_eq!(found[0]["prisonId"], "LEI");

    let (status, err) = app
        .post("/prisoners/search", json!({"prisonerNumbers": []}))
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["prisonerNumbers"]);
    let (status, err) = app
        .post("/prisoners/search", json!({"prisonerNumbers": [a, "junk"]}))
        .send()
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        &["prisonerNumbers[1]"],
    );
    let many: Vec<String> = (0..1001).map(|i| format!("A{:04}AA", i % 10000)).collect();
    let (status, err) = app
        .post("/prisoners/search", json!({"prisonerNumbers": many}))
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["1000"]);
}

async fn released_prisoners_are_not_in_a_prison(backend: TestBackend) {
    let app = app(backend).await;
    tandem_nomis::seed(
        &app.db,
        &tandem_nomis::SeedOptions {
            prisoners: 200,
            seed: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let released = app
        .rows(
            "SELECT o.offender_no FROM offenders o JOIN offender_bookings b ON b.offender_id = o.offender_id \
             WHERE b.booking_seq = 1 AND b.agy_loc_id = 'OUT' ORDER BY o.offender_no",
        )
        .await;
    assert!(!released.is_empty(), "the seed releases a few prisoners");
    let no = released[0][0].clone().unwrap();
    let (status, found) = app.get(&format!("/prisoners/{no}")).send().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["active"], false);
    assert!(found["prisonId"].is_null());
    assert!(found["cellLocation"].is_null());
    assert!(
        found["bookingId"].as_i64().is_some(),
        "the latest booking is still given"
    );
}

async fn health_is_up(backend: TestBackend) {
    let app = app(backend).await;
    let (status, body) = app.get("/health").token(None).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["components"]["db"]["status"], "UP");
    let (status, doc) = app.get("/v3/api-docs").token(None).send().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/non-associations/ids/keyset"].is_object(),
        "{}",
        doc["paths"]
    );
}

both_backends!(
    receives_and_finds_a_prisoner,
    a_chosen_number_is_used_once,
    bad_prisoner_requests_are_refused,
    searches_in_bulk,
    released_prisoners_are_not_in_a_prison,
    health_is_up,
);
