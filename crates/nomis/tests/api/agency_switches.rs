use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tandem_nomis::SYNC_ROLE;
use tandem_platform::{both_backends, db::testing::TestBackend};

use crate::support::{App, app, assert_error, token_with};

const NA: &str = "/agency-switches/NON_ASSOCIATIONS";
const UPSERTED: &str = "NON_ASSOCIATION_DETAIL-UPSERTED";
const DELETED: &str = "NON_ASSOCIATION_DETAIL-DELETED";

fn agency(prison: &str) -> String {
    format!("{NA}/agency/{prison}")
}

async fn is_on(app: &App, prison: &str) -> bool {
    let (status, body) = app.get(&agency(prison)).send().await;
    match status {
        StatusCode::NO_CONTENT => true,
        StatusCode::NOT_FOUND => {
            assert_eq!(body["status"], 404, "{body}");
            false
        }
        other => panic!("GET {prison}: {other} {body}"),
    }
}

async fn listed(app: &App) -> Value {
    let (status, body) = app.get(NA).send().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn switches_on_and_off(backend: TestBackend) {
    let app = app(backend).await;
    assert!(!is_on(&app, "MDI").await);
    let (_, off) = app.get(&agency("MDI")).send().await;
    assert_error(
        StatusCode::NOT_FOUND,
        &off,
        StatusCode::NOT_FOUND,
        &["NON_ASSOCIATIONS", "MDI"],
    );
    assert_eq!(listed(&app).await, json!([]));

    let (status, body) = app.call(Method::POST, &agency("MDI")).send().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"prisonId": "MDI", "name": "Moorland (HMP & YOI)"})
    );
    // Idempotent: already on is a 200 with the same body, and still one row.
    let (status, again) = app.call(Method::POST, &agency("MDI")).send().await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, body);
    assert_eq!(app.count("service_agency_switches").await, 1);
    let row = &app
        .rows("SELECT service_code, agy_loc_id, create_user_id, audit_module_name FROM service_agency_switches")
        .await[0];
    assert_eq!(
        row,
        &vec![
            Some("NON_ASSOCIATIONS".to_string()),
            Some("MDI".to_string()),
            Some("NOMIS_TEST_USER".to_string()),
            Some("DPS_SYNCHRONISATION".to_string()),
        ]
    );

    assert!(is_on(&app, "MDI").await);
    assert!(!is_on(&app, "LEI").await, "only the prison switched on");
    let (status, _) = app
        .get("/agency-switches/INCIDENTS/agency/MDI")
        .send()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "per service");
    assert_eq!(
        listed(&app).await,
        json!([{"prisonId": "MDI", "name": "Moorland (HMP & YOI)"}])
    );

    let (status, _) = app.call(Method::POST, &agency("lei")).send().await;
    assert_eq!(status, StatusCode::CREATED);
    let ids: Vec<Value> = listed(&app)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["prisonId"].clone())
        .collect();
    assert_eq!(ids, vec![json!("LEI"), json!("MDI")]);

    let (status, body) = app.call(Method::DELETE, &agency("MDI")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!is_on(&app, "MDI").await);
    assert!(is_on(&app, "LEI").await);
    // Off again is still a 204.
    let (status, _) = app.call(Method::DELETE, &agency("MDI")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.count("service_agency_switches").await, 1);
}

async fn all_means_every_prison(backend: TestBackend) {
    let app = app(backend).await;
    let a = app.prisoner("Ann", "Able", "BXI").await;
    let (status, _) = app.get(&format!("{NA}/prisoner/{a}")).send().await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = app.call(Method::POST, &agency("*ALL*")).send().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"prisonId": "*ALL*", "name": "All prisons"}));
    for prison in ["MDI", "LEI", "BXI", "*ALL*"] {
        assert!(is_on(&app, prison).await, "{prison}");
    }
    let (status, _) = app.get(&format!("{NA}/prisoner/{a}")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        listed(&app).await,
        json!([{"prisonId": "*ALL*", "name": "All prisons"}])
    );

    // Switching one prison off leaves it on through *ALL*.
    let (status, _) = app.call(Method::DELETE, &agency("MDI")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(is_on(&app, "MDI").await);
    let (status, _) = app.call(Method::DELETE, &agency("*ALL*")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!is_on(&app, "MDI").await);
    assert!(!is_on(&app, "BXI").await);

    // The prisoner check follows the prisoner's own prison.
    app.call(Method::POST, &agency("BXI")).send().await;
    let (status, _) = app.get(&format!("{NA}/prisoner/{a}")).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("{NA}/prisoner/Z9999ZZ")).send().await;
    assert_error(status, &body, StatusCode::NOT_FOUND, &["Z9999ZZ"]);
}

async fn bad_requests_are_refused(backend: TestBackend) {
    let app = app(backend).await;
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let (status, body) = app
            .call(method.clone(), "/agency-switches/NOT_A_SERVICE/agency/MDI")
            .send()
            .await;
        assert_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            &[
                "NOT_A_SERVICE",
                "ADJUDICATIONS, INCIDENTS, NON_ASSOCIATIONS, VISITS",
            ],
        );
        for bad in ["M!I", "TOOLONGX", "%2AALL"] {
            let (status, body) = app.call(method.clone(), &agency(bad)).send().await;
            assert_error(
                status,
                &body,
                StatusCode::BAD_REQUEST,
                &["agencyId", "*ALL*"],
            );
        }
    }
    let (status, body) = app.get("/agency-switches/NOT_A_SERVICE").send().await;
    assert_error(status, &body, StatusCode::NOT_FOUND, &["NON_ASSOCIATIONS"]);

    let (status, body) = app.call(Method::POST, &agency("ZZZ")).send().await;
    assert_error(status, &body, StatusCode::NOT_FOUND, &["ZZZ"]);
    let (status, body) = app.call(Method::POST, &agency("OUT")).send().await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        &["agencyId", "OUT", "not a prison"],
    );
    assert_eq!(app.count("service_agency_switches").await, 0);

    // The sync role for everything; the write scope for changes.
    let wrong_role = token_with(&["ROLE_NOMIS_NON_ASSOCIATIONS"], &["read", "write"]);
    let read_only = token_with(&[SYNC_ROLE], &["read"]);
    for (method, path) in [
        (Method::GET, NA.to_string()),
        (Method::GET, agency("MDI")),
        (Method::POST, agency("MDI")),
        (Method::DELETE, agency("MDI")),
        (Method::GET, format!("{NA}/prisoner/A1234BC")),
    ] {
        let (status, body) = app.call(method.clone(), &path).token(None).send().await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, &[]);
        let (status, body) = app
            .call(method.clone(), &path)
            .token(Some(wrong_role.clone()))
            .send()
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, &[SYNC_ROLE]);
        if method != Method::GET {
            let (status, body) = app
                .call(method.clone(), &path)
                .token(Some(read_only.clone()))
                .send()
                .await;
            assert_error(status, &body, StatusCode::FORBIDDEN, &["write"]);
        }
    }
    assert_eq!(app.count("service_agency_switches").await, 0);
}

fn create_body(a: &str, b: &str) -> Value {
    json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER", "type": "WING",
        "effectiveDate": "2024-02-01"})
}

fn seq1(a: &str, b: &str) -> String {
    format!("/non-associations/offender/{a}/ns-offender/{b}/sequence/1")
}

fn update_body() -> Value {
    json!({"reason": "BUL", "recipReason": "BUL", "type": "CELL", "effectiveDate": "2024-03-01"})
}

/// The stored pair, for before/after comparison: every detail column that a write changes.
async fn snapshot(app: &App) -> Vec<Vec<Option<String>>> {
    app.rows(
        "SELECT offender_id, ns_offender_id, type_seq, ns_reason_code, ns_type, ns_effective_date, \
         ns_expiry_date, audit_module_name, modify_datetime FROM offender_na_details \
         ORDER BY offender_id, ns_offender_id, type_seq",
    )
    .await
}

async fn outbox_size(app: &App) -> usize {
    app.events(UPSERTED).await.len() + app.events(DELETED).await.len()
}

async fn nomis_screen_edits_are_refused_where_dps_is_master(backend: TestBackend) {
    let app = app(backend).await;
    // The pair spans two prisons; only the second prisoner's is switched on.
    let a = app.prisoner("Ann", "Able", "MDI").await;
    let b = app.prisoner("Bob", "Baker", "LEI").await;
    app.call(Method::POST, &agency("LEI")).send().await;

    let (status, body) = app
        .post("/non-associations", create_body(&a, &b))
        .module("OIDSENAD")
        .send()
        .await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        &["Non-associations at LEI are mastered in DPS: edit them in DPS"],
    );
    assert_eq!(app.count("offender_na_details").await, 0);
    assert_eq!(app.count("offender_non_associations").await, 0);
    assert_eq!(outbox_size(&app).await, 0, "no event for a refused write");

    // The same write from the sync from DPS (the default module) goes through.
    let (status, body) = app
        .post("/non-associations", create_body(&a, &b))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.count("offender_na_details").await, 2);
    assert_eq!(outbox_size(&app).await, 2);
    let (status, body) = app
        .put(&seq1(&a, &b), update_body())
        .module("DPS_SYNCHRONISATION_NA")
        .send()
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a DPS_SYNCHRONISATION… module is the sync: {body}"
    );
    assert_eq!(outbox_size(&app).await, 4);

    // Every NOMIS-screen write to the pair is refused, from either side, changing nothing.
    let before = snapshot(&app).await;
    let attempts = [
        (
            Method::PUT,
            seq1(&a, &b),
            Some(
                json!({"reason": "RIV", "recipReason": "RIV", "type": "LAND", "effectiveDate": "2024-04-01"}),
            ),
        ),
        (Method::PUT, seq1(&b, &a), Some(update_body())),
        (Method::PUT, format!("{}/close", seq1(&a, &b)), None),
        (Method::DELETE, seq1(&b, &a), None),
    ];
    for (method, path, body) in &attempts {
        let mut call = app.call(method.clone(), path).module("OIDSENAD");
        if let Some(b) = body {
            call = call.body(b.clone());
        }
        let (status, err) = call.send().await;
        assert_error(
            status,
            &err,
            StatusCode::CONFLICT,
            &["Non-associations at LEI", "edit them in DPS", "OIDSENAD"],
        );
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(outbox_size(&app).await, 4);

    // Switched off again, the NOMIS screen can edit.
    app.call(Method::DELETE, &agency("LEI")).send().await;
    let (status, body) = app
        .call(Method::PUT, &format!("{}/close", seq1(&a, &b)))
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outbox_size(&app).await, 6);

    // Unrelated prisons are not affected by a switch elsewhere.
    app.call(Method::POST, &agency("BXI")).send().await;
    let c = app.prisoner("Cat", "Cole", "MDI").await;
    let (status, body) = app
        .post("/non-associations", create_body(&a, &c))
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn all_switches_every_prison_to_dps(backend: TestBackend) {
    let app = app(backend).await;
    let a = app.prisoner("Ann", "Able", "MDI").await;
    let b = app.prisoner("Bob", "Baker", "MDI").await;
    app.post("/non-associations", create_body(&a, &b))
        .send()
        .await;
    app.call(Method::POST, &agency("*ALL*")).send().await;

    let before = snapshot(&app).await;
    let (status, body) = app
        .call(Method::DELETE, &seq1(&a, &b))
        .module("OIDSENAD")
        .send()
        .await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        &["Non-associations at all prisons are mastered in DPS"],
    );
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(outbox_size(&app).await, 2);

    // Another service's switch does not matter.
    app.call(Method::DELETE, &agency("*ALL*")).send().await;
    app.call(Method::POST, "/agency-switches/INCIDENTS/agency/*ALL*")
        .send()
        .await;
    let (status, body) = app
        .put(&seq1(&a, &b), update_body())
        .module("OIDSENAD")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The sync from DPS writes under *ALL* too.
    app.call(Method::POST, &agency("*ALL*")).send().await;
    let (status, body) = app.call(Method::DELETE, &seq1(&a, &b)).send().await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(app.count("offender_na_details").await, 0);
    assert_eq!(app.events(DELETED).await.len(), 2);
}

both_backends!(
    switches_on_and_off,
    all_means_every_prison,
    bad_requests_are_refused,
    nomis_screen_edits_are_refused_where_dps_is_master,
    all_switches_every_prison_to_dps
);
