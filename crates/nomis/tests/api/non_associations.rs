use axum::http::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tandem_platform::{both_backends, db::testing::TestBackend, time::london_today};

use crate::support::{App, app, assert_error};

const UPSERTED: &str = "NON_ASSOCIATION_DETAIL-UPSERTED";
const DELETED: &str = "NON_ASSOCIATION_DETAIL-DELETED";

fn create_body(a: &str, b: &str) -> Value {
    json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER", "type": "WING",
        "authorisedBy": "Governor", "effectiveDate": "2024-02-01", "comment": "Fight on the wing"})
}

fn pair_path(a: &str, b: &str) -> String {
    format!("/non-associations/offender/{a}/ns-offender/{b}")
}

async fn two_prisoners(app: &App) -> (String, String) {
    let a = app.prisoner("Ann", "Able", "MDI").await;
    let b = app.prisoner("Bob", "Baker", "MDI").await;
    (a, b)
}

/// Detail rows as (offender_no, ns_offender_no, type_seq, reason, recip, type, expiry, module).
async fn detail_rows(app: &App) -> Vec<Vec<Option<String>>> {
    app.rows(
        "SELECT o1.offender_no, o2.offender_no, d.type_seq, d.ns_reason_code, d.recip_ns_reason_code, d.ns_type, \
         d.ns_expiry_date, d.audit_module_name, d.modify_user_id, d.offender_book_id \
         FROM offender_na_details d \
         JOIN offenders o1 ON o1.offender_id = d.offender_id \
         JOIN offenders o2 ON o2.offender_id = d.ns_offender_id \
         ORDER BY d.type_seq, o1.offender_no",
    )
    .await
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

async fn creates_both_directions_with_events(backend: TestBackend) {
    let app = app(backend).await;
    let (a, b) = two_prisoners(&app).await;
    let (_, pa) = app.get(&format!("/prisoners/{a}")).send().await;
    let (_, pb) = app.get(&format!("/prisoners/{b}")).send().await;

    let (status, created) = app
        .post("/non-associations", create_body(&a, &b))
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created, json!({"typeSequence": 1}));

    // Stored twice, one row per direction, same sequence, reasons swapped.
    let rows = detail_rows(&app).await;
    let (first, second) = if a < b { (&a, &b) } else { (&b, &a) };
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row[2], s("1"));
        assert_eq!(row[5], s("WING"));
        assert_eq!(row[6], None);
        assert_eq!(row[7], s("OIDSENAD"));
        assert_eq!(row[8], s("NOMIS_TEST_USER"));
        let (reason, recip) = if row[0].as_deref() == Some(&a) {
            ("VIC", "PER")
        } else {
            ("PER", "VIC")
        };
        assert_eq!(
            (row[3].as_deref(), row[4].as_deref()),
            (Some(reason), Some(recip)),
            "{row:?}"
        );
    }
    assert_eq!(rows[0][0].as_deref(), Some(first.as_str()));
    assert_eq!(rows[1][0].as_deref(), Some(second.as_str()));
    assert_eq!(app.count("offender_non_associations").await, 2);
    let headers = app
        .rows(
            "SELECT o.offender_no, h.ns_reason_code, h.recip_ns_reason_code FROM offender_non_associations h \
             JOIN offenders o ON o.offender_id = h.offender_id ORDER BY o.offender_no",
        )
        .await;
    for h in headers {
        assert_eq!(
            h[1],
            s("PER"),
            "NS_REASON_CODE = recipReason on both headers"
        );
        let recip = if h[0].as_deref() == Some(&a) {
            "PER"
        } else {
            "VIC"
        };
        assert_eq!(h[2], s(recip));
    }

    // One event per direction, flat NOMIS bodies, ordered by the sorted pair.
    let events = app.events(UPSERTED).await;
    assert_eq!(events.len(), 2);
    let key = format!("{first}/{second}");
    let forward = &events[0].1;
    assert_eq!(events[0].0.as_deref(), Some(key.as_str()));
    assert_eq!(events[1].0.as_deref(), Some(key.as_str()));
    assert_eq!(forward["eventType"], UPSERTED);
    assert_eq!(forward["nomisEventType"], "OFF_NA_DETAILS_ASSOC-INSERTED");
    assert_eq!(forward["offenderIdDisplay"], a);
    assert_eq!(forward["nsOffenderIdDisplay"], b);
    assert_eq!(forward["bookingId"], pa["bookingId"]);
    assert_eq!(forward["nsBookingId"], pb["bookingId"]);
    assert_eq!(forward["reasonCode"], "VIC");
    assert_eq!(forward["nsType"], "WING");
    assert_eq!(forward["typeSeq"], 1);
    assert_eq!(forward["effectiveDate"], "2024-02-01");
    assert!(forward.get("expiryDate").is_none());
    assert_eq!(forward["authorisedBy"], "Governor");
    assert_eq!(forward["comment"], "Fight on the wing");
    assert_eq!(forward["auditModuleName"], "OIDSENAD");
    assert_eq!(
        forward["eventDatetime"].as_str().map(str::len),
        Some(19),
        "{forward}"
    );
    let reverse = &events[1].1;
    assert_eq!(reverse["offenderIdDisplay"], b);
    assert_eq!(reverse["nsOffenderIdDisplay"], a);
    assert_eq!(reverse["bookingId"], pb["bookingId"]);
    assert_eq!(reverse["reasonCode"], "PER");

    // Read from either side.
    let (status, open) = app.get(&pair_path(&a, &b)).send().await;
    assert_eq!(status, StatusCode::OK, "{open}");
    assert_eq!(open["offenderNo"], a);
    assert_eq!(open["nsOffenderNo"], b);
    assert_eq!(open["typeSequence"], 1);
    assert_eq!(open["reason"], "VIC");
    assert_eq!(open["recipReason"], "PER");
    assert_eq!(open["type"], "WING");
    assert_eq!(open["authorisedBy"], "Governor");
    assert_eq!(open["updatedBy"], "NOMIS_TEST_USER");
    assert_eq!(open["effectiveDate"], "2024-02-01");
    assert!(open.get("expiryDate").is_none());
    assert_eq!(open["comment"], "Fight on the wing");
    assert_eq!(open["auditModuleName"], "OIDSENAD");
    assert!(open["modifyDatetime"].as_str().is_some());
    let (_, reverse) = app.get(&pair_path(&b, &a)).send().await;
    assert_eq!(reverse["reason"], "PER");
    assert_eq!(reverse["recipReason"], "VIC");
    let (_, by_seq) = app
        .get(&format!("{}?typeSequence=1", pair_path(&a, &b)))
        .send()
        .await;
    assert_eq!(by_seq, open);
    let (_, one) = app
        .get(&format!("{}/sequence/1", pair_path(&a, &b)))
        .send()
        .await;
    assert_eq!(one, open);
}

async fn update_close_recreate_and_delete(backend: TestBackend) {
    let app = app(backend).await;
    let (a, b) = two_prisoners(&app).await;
    app.post("/non-associations", create_body(&a, &b))
        .send()
        .await;

    // A second open one for the pair is refused, from either side.
    for (x, y) in [(&a, &b), (&b, &a)] {
        let (status, err) = app
            .post("/non-associations", create_body(x, y))
            .send()
            .await;
        assert_error(
            status,
            &err,
            StatusCode::BAD_REQUEST,
            &["Non-association already exists"],
        );
    }

    let seq1 = format!("{}/sequence/1", pair_path(&a, &b));
    let (status, updated) = app
        .put(
            &seq1,
            json!({"reason": "BUL", "recipReason": "BUL", "type": "CELL", "effectiveDate": "2024-03-01",
                "comment": "Reviewed"}),
        )
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["reason"], "BUL");
    assert_eq!(updated["type"], "CELL");
    assert_eq!(updated["effectiveDate"], "2024-03-01");
    assert!(
        updated.get("authorisedBy").is_none(),
        "a full replacement clears authorisedBy"
    );
    assert_eq!(updated["comment"], "Reviewed");
    let (_, reverse) = app
        .get(&format!("{}/sequence/1", pair_path(&b, &a)))
        .send()
        .await;
    assert_eq!(reverse["type"], "CELL");
    assert_eq!(reverse["comment"], "Reviewed");
    let events = app.events(UPSERTED).await;
    assert_eq!(events.len(), 4);
    assert!(
        events[2..]
            .iter()
            .all(|(_, e)| e["nomisEventType"] == "OFF_NA_DETAILS_ASSOC-UPDATED")
    );
    assert!(
        events[2..]
            .iter()
            .all(|(_, e)| e["nsType"] == "CELL" && e["auditModuleName"] == "OIDSENAD")
    );

    let (status, closed) = app.call(Method::PUT, &format!("{seq1}/close")).send().await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let today = london_today().to_string();
    assert_eq!(closed["expiryDate"], today.as_str());
    assert_eq!(closed["auditModuleName"], "DPS_SYNCHRONISATION");
    let (_, reverse) = app
        .get(&format!("{}/sequence/1", pair_path(&b, &a)))
        .send()
        .await;
    assert_eq!(reverse["expiryDate"], today.as_str());
    let events = app.events(UPSERTED).await;
    assert_eq!(events.len(), 6);
    assert_eq!(events[5].1["expiryDate"], today.as_str());
    let (status, err) = app.call(Method::PUT, &format!("{seq1}/close")).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["already closed"]);
    let (status, err) = app.get(&pair_path(&a, &b)).send().await;
    assert_error(
        status,
        &err,
        StatusCode::NOT_FOUND,
        &["No open non-association"],
    );

    // Closed, so a new one may be created: the next sequence, in both directions.
    let (status, created) = app
        .post("/non-associations", create_body(&b, &a))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["typeSequence"], 2);
    let (status, all) = app.get(&format!("{}/all", pair_path(&a, &b))).send().await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["typeSequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(
        all[1]["reason"], "PER",
        "created from b's side: a's reason is the reciprocal one"
    );
    let (_, open) = app.get(&pair_path(&a, &b)).send().await;
    assert_eq!(open["typeSequence"], 2);

    // Deleting one sequence removes both directions and keeps the headers.
    let (status, body) = app
        .call(Method::DELETE, &seq1)
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let rows = detail_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r[2] == s("2")));
    assert_eq!(app.count("offender_non_associations").await, 2);
    let deleted = app.events(DELETED).await;
    assert_eq!(deleted.len(), 2);
    assert!(deleted.iter().all(
        |(_, e)| e["nomisEventType"] == "OFF_NA_DETAILS_ASSOC-DELETED"
            && e["typeSeq"] == 1
            && e["auditModuleName"] == "OIDSENAD"
    ));
    let (status, _) = app.call(Method::DELETE, &seq1).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the last removes the headers too.
    let (status, _) = app
        .call(Method::DELETE, &format!("{}/sequence/2", pair_path(&b, &a)))
        .send()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("offender_na_details").await, 0);
    assert_eq!(app.count("offender_non_associations").await, 0);
    assert_eq!(app.events(DELETED).await.len(), 4);
    let (status, err) = app.get(&format!("{}/all", pair_path(&a, &b))).send().await;
    assert_error(status, &err, StatusCode::NOT_FOUND, &[]);
}

async fn bad_requests_change_nothing(backend: TestBackend) {
    let app = app(backend).await;
    let (a, b) = two_prisoners(&app).await;
    let with = |field: &str, value: Value| {
        let mut body = create_body(&a, &b);
        body[field] = value;
        body
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with("nsOffenderNo", json!(a)),
            vec!["Offender and NS Offender cannot be the same"],
        ),
        (
            with("reason", json!("XYZ")),
            vec![
                "reason",
                "XYZ",
                "NON_ASSO_RSN",
                "BUL, PER, RIV, VIC, NOT_REL, UNKNOWN",
            ],
        ),
        (
            with("recipReason", json!("XYZ")),
            vec!["recipReason", "XYZ"],
        ),
        (
            with("type", json!("LANDING")),
            vec!["type", "LANDING", "CELL, LAND, WING, NONEX, TNA"],
        ),
        (
            with("effectiveDate", json!("2999-01-01")),
            vec!["effectiveDate", "future"],
        ),
        (
            with("effectiveDate", json!("yesterday")),
            vec!["effectiveDate"],
        ),
        (
            with("comment", json!("x".repeat(241))),
            vec!["comment", "240"],
        ),
        (
            with("authorisedBy", json!("y".repeat(61))),
            vec!["authorisedBy", "60"],
        ),
        (
            with("offenderNo", json!("A0000AA")),
            vec!["offenderNo", "A0000AA", "not found"],
        ),
        (
            with("nsOffenderNo", json!("bad")),
            vec!["nsOffenderNo", "bad"],
        ),
        (json!({"offenderNo": a, "nsOffenderNo": b}), vec!["reason"]),
    ];
    for (body, fragments) in cases {
        let (status, err) = app.post("/non-associations", body.clone()).send().await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, &fragments);
    }
    let (status, err) = app
        .post("/non-associations", create_body(&a, &b))
        .module("oidsenad")
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["X-Audit-Module"]);
    assert_eq!(app.count("offender_na_details").await, 0);
    assert_eq!(app.count("offender_non_associations").await, 0);
    assert!(app.events(UPSERTED).await.is_empty());

    // Updates: bad input leaves the record and the outbox as they were.
    app.post("/non-associations", create_body(&a, &b))
        .send()
        .await;
    let before = detail_rows(&app).await;
    let seq1 = format!("{}/sequence/1", pair_path(&a, &b));
    let update = json!({"reason": "VIC", "recipReason": "PER", "type": "WING", "effectiveDate": "2024-01-01"});
    let mut bad_type = update.clone();
    bad_type["type"] = json!("NOPE");
    let (status, err) = app.put(&seq1, bad_type).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["type", "NOPE"]);
    let mut future = update.clone();
    future["effectiveDate"] = json!("2999-01-01");
    let (status, err) = app.put(&seq1, future).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["effectiveDate"]);
    let (status, err) = app
        .put(&format!("{}/sequence/9", pair_path(&a, &b)), update.clone())
        .send()
        .await;
    assert_error(status, &err, StatusCode::NOT_FOUND, &["typeSequence=9"]);
    let (status, err) = app
        .put(
            &format!("{}/sequence/1", pair_path(&a, "Z9999ZZ")),
            update.clone(),
        )
        .send()
        .await;
    assert_error(status, &err, StatusCode::NOT_FOUND, &["Z9999ZZ"]);
    let (status, err) = app
        .put(&format!("{}/sequence/x", pair_path(&a, &b)), update.clone())
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &[]);
    let (status, err) = app
        .put(&format!("{}/sequence/1", pair_path(&a, &a)), update)
        .send()
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        &["cannot be the same"],
    );
    assert_eq!(detail_rows(&app).await, before);
    assert_eq!(app.events(UPSERTED).await.len(), 2);

    // Reads of unknown things are 404s; malformed numbers 400s.
    let (status, _) = app.get(&pair_path(&a, "Z9999ZZ")).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, err) = app.get(&pair_path(&a, "ZZZ")).send().await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["nsOffenderNo"]);
}

/// Creates pairs (x, y) for the given prisoner indexes; returns the prisoners.
async fn estate(app: &App, people: usize, pairs: &[(usize, usize, &str)]) -> Vec<String> {
    let mut numbers = Vec::new();
    for i in 0..people {
        numbers.push(app.prisoner("P", &format!("N{i}"), "LEI").await);
    }
    for (x, y, date) in pairs {
        let mut body = create_body(&numbers[*x], &numbers[*y]);
        body["effectiveDate"] = json!(date);
        let (status, created) = app.post("/non-associations", body).send().await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    numbers
}

fn pair_of(numbers: &[String], x: usize, y: usize) -> (String, String) {
    let (p, q) = (numbers[x].clone(), numbers[y].clone());
    if p < q { (p, q) } else { (q, p) }
}

fn pairs_in(page: &Value) -> Vec<(String, String)> {
    page["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["offenderNo1"].as_str().unwrap().to_string(),
                p["offenderNo2"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn lists_pairs_by_page_and_by_key(backend: TestBackend) {
    let app = app(backend).await;
    let links = [
        (0, 1, "2020-01-01"),
        (2, 1, "2021-06-01"),
        (3, 4, "2022-01-01"),
        (0, 4, "2023-01-01"),
        (5, 0, "2024-01-01"),
    ];
    let numbers = estate(&app, 6, &links).await;
    // A second sequence for a pair does not make a second pair.
    let (p, q) = pair_of(&numbers, 0, 1);
    app.call(
        Method::PUT,
        &format!("{}/sequence/1/close", pair_path(&p, &q)),
    )
    .send()
    .await;
    let mut again = create_body(&q, &p);
    again["effectiveDate"] = json!("2025-01-01");
    app.post("/non-associations", again).send().await;

    let mut expected: Vec<(String, String)> = links
        .iter()
        .map(|(x, y, _)| pair_of(&numbers, *x, *y))
        .collect();
    expected.sort();

    let (status, page) = app.get("/non-associations/ids?page=0&size=2").send().await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 5);
    assert_eq!(page["totalPages"], 3);
    assert_eq!(page["number"], 0);
    assert_eq!(page["size"], 2);
    assert_eq!(page["first"], true);
    assert_eq!(page["last"], false);
    assert_eq!(page["numberOfElements"], 2);
    let mut walked = pairs_in(&page);
    for n in 1..3 {
        let (_, page) = app
            .get(&format!("/non-associations/ids?page={n}&size=2"))
            .send()
            .await;
        walked.extend(pairs_in(&page));
        assert_eq!(page["last"], n == 2);
    }
    assert_eq!(walked, expected);
    let (_, beyond) = app.get("/non-associations/ids?page=7&size=2").send().await;
    assert_eq!(beyond["empty"], true);
    let (_, default) = app.get("/non-associations/ids").send().await;
    assert_eq!(default["size"], 20);
    assert_eq!(pairs_in(&default), expected);

    // Filtered on effective date (any sequence of the pair).
    let (_, filtered) = app
        .get("/non-associations/ids?fromDate=2021-01-01&toDate=2022-12-31")
        .send()
        .await;
    let mut want = vec![pair_of(&numbers, 2, 1), pair_of(&numbers, 3, 4)];
    want.sort();
    assert_eq!(pairs_in(&filtered), want);
    assert_eq!(filtered["totalElements"], 2);
    let (_, later) = app
        .get("/non-associations/ids?fromDate=2024-06-01")
        .send()
        .await;
    assert_eq!(pairs_in(&later), vec![pair_of(&numbers, 0, 1)]);

    // The keyset walk visits the same pairs in the same order.
    let mut keyset = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/non-associations/ids/keyset?size=2&after={a}"),
            None => "/non-associations/ids/keyset?size=2".to_string(),
        };
        let (status, page) = app.get(&path).send().await;
        assert_eq!(status, StatusCode::OK, "{page}");
        keyset.extend(pairs_in(&page));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(keyset, expected);
    let (_, all) = app.get("/non-associations/ids/keyset?size=5").send().await;
    assert!(all["next"].is_null(), "exactly one page: no next");
    let (_, filtered) = app
        .get(&format!(
            "/non-associations/ids/keyset?fromDate=2021-01-01&toDate=2022-12-31&after={}/{}",
            want[0].0, want[0].1
        ))
        .send()
        .await;
    assert_eq!(pairs_in(&filtered), want[1..].to_vec());

    for bad in [
        "/non-associations/ids?size=0",
        "/non-associations/ids?size=10001",
        "/non-associations/ids?page=-1",
        "/non-associations/ids?fromDate=2024-13-01",
        "/non-associations/ids?fromDate=2024-02-01&toDate=2024-01-01",
        // Five-digit and negative years would compare wrongly as ISO text.
        "/non-associations/ids?toDate=%2B10000-01-01",
        "/non-associations/ids/keyset?fromDate=-0001-01-01",
        "/non-associations/ids/keyset?after=A1234BC",
        "/non-associations/ids/keyset?size=0",
    ] {
        let (status, err) = app.get(bad).send().await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, &[]);
    }
}

/// The bulk read answers what `/all` answers for each pair, in the order asked, from the
/// first number's side; unknown pairs and prisoners add nothing; bad entries are named.
async fn reads_many_pairs_at_once(backend: TestBackend) {
    let app = app(backend).await;
    let (status, got) = app
        .post("/non-associations/pairs/details", json!([]))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "empty {got}");
    let links = [
        (0, 1, "2020-01-01"),
        (2, 1, "2021-06-01"),
        (0, 2, "2022-01-01"),
    ];
    let numbers = estate(&app, 4, &links).await;
    // A second sequence for (0, 1), created from 1's side.
    let mut body = create_body(&numbers[1], &numbers[0]);
    body["effectiveDate"] = json!("2023-01-01");
    let (p, q) = pair_of(&numbers, 0, 1);
    let (status, _) = app
        .put(
            &format!("{}/sequence/1", pair_path(&p, &q)),
            json!({"reason": "VIC", "recipReason": "PER", "type": "WING", "effectiveDate": "2020-01-01", "expiryDate": "2021-01-01"}),
        )
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/non-associations", body).send().await;
    assert_eq!(status, StatusCode::CREATED);
    // Legacy data: a detail of (2, 1) without its reciprocal reason; the header's stands in.
    let (c, d) = pair_of(&numbers, 2, 1);
    app.db
        .conn()
        .execute_unprepared(&format!(
            "UPDATE offender_na_details SET recip_ns_reason_code = NULL \
             WHERE offender_id = (SELECT offender_id FROM offenders WHERE offender_no = '{c}') \
             AND ns_offender_id = (SELECT offender_id FROM offenders WHERE offender_no = '{d}')"
        ))
        .await
        .expect("clearing a reciprocal reason");
    let header_recip = app
        .rows(&format!(
            "SELECT h.recip_ns_reason_code FROM offender_non_associations h \
             JOIN offenders o1 ON o1.offender_id = h.offender_id \
             JOIN offenders o2 ON o2.offender_id = h.ns_offender_id \
             WHERE o1.offender_no = '{c}' AND o2.offender_no = '{d}'"
        ))
        .await;
    let header_recip = header_recip[0][0]
        .clone()
        .expect("the header's reciprocal reason");

    let asked = [
        pair_of(&numbers, 2, 1),
        pair_of(&numbers, 0, 1),
        pair_of(&numbers, 0, 3),                     // no such pair
        ("A9999ZZ".to_string(), numbers[0].clone()), // no such prisoner
        (pair_of(&numbers, 0, 2).1, pair_of(&numbers, 0, 2).0), // the reverse side
    ];
    let body: Vec<Value> = asked
        .iter()
        .map(|(a, b)| json!({"offenderNo1": a, "offenderNo2": b}))
        .collect();
    let (status, got) = app
        .post("/non-associations/pairs/details", json!(body))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let mut expected = Vec::new();
    for (a, b) in [&asked[0], &asked[1], &asked[4]] {
        let (status, all) = app.get(&format!("{}/all", pair_path(a, b))).send().await;
        assert_eq!(status, StatusCode::OK);
        expected.extend(all.as_array().unwrap().iter().cloned());
    }
    assert_eq!(got.as_array().unwrap().len(), 4, "{got}");
    assert_eq!(got, json!(expected));
    assert_eq!(got[0]["recipReason"], json!(header_recip), "{got}");

    let (status, err) = app
        .post(
            "/non-associations/pairs/details",
            json!([{"offenderNo1": numbers[0], "offenderNo2": numbers[1]}, {"offenderNo1": "nope", "offenderNo2": numbers[1]}]),
        )
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["[1].offenderNo1"]);
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"offenderNo1": numbers[0], "offenderNo2": numbers[1]}))
        .collect();
    let (status, err) = app
        .post("/non-associations/pairs/details", json!(too_many))
        .send()
        .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, &["1000"]);
    let (status, _) = app
        .post("/non-associations/pairs/details", json!([]))
        .token(None)
        .send()
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

both_backends!(
    reads_many_pairs_at_once,
    creates_both_directions_with_events,
    update_close_recreate_and_delete,
    bad_requests_change_nothing,
    lists_pairs_by_page_and_by_key,
);
