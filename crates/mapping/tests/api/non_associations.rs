//! `/mapping/non-associations`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tandem_mapping::{MappingStore, NonAssociationMapping};
use tandem_platform::db::testing::TestBackend;

use crate::support::{App, assert_error, call, foreign, na, no_roles, read_only, rw, wrong_role};

const BASE: &str = "/mapping/non-associations";
const A: &str = "A1234BC";
const B: &str = "D5678EF";

fn nomis_path(first: &str, second: &str, seq: i32) -> String {
    format!("{BASE}/first-offender-no/{first}/second-offender-no/{second}/type-sequence/{seq}")
}

fn id_path(id: i64) -> String {
    format!("{BASE}/non-association-id/{id}")
}

async fn create(app: &App, body: &Value) {
    let resp = app.post(BASE, body).await;
    assert_eq!(resp.0, StatusCode::CREATED, "{}", resp.1);
}

async fn count(store: &MappingStore) -> usize {
    // Every row, whatever its type, through the Rust API.
    let all: Vec<NonAssociationMapping> =
        tandem_mapping::store::select(store.db().conn(), sea_orm::sea_query::Cond::all())
            .await
            .unwrap();
    all.len()
}

async fn creates_and_reads_both_ways(backend: TestBackend) {
    let app = App::new(backend).await;
    create(
        &app,
        &na(1234, A, B, 1, Some("2022-01-01"), "NOMIS_CREATED"),
    )
    .await;

    let (status, by_id) = app.get(&id_path(1234)).await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    assert_eq!(by_id["nonAssociationId"], 1234);
    assert_eq!(by_id["firstOffenderNo"], A);
    assert_eq!(by_id["secondOffenderNo"], B);
    assert_eq!(by_id["nomisTypeSequence"], 1);
    assert_eq!(by_id["label"], "2022-01-01");
    assert_eq!(by_id["mappingType"], "NOMIS_CREATED");
    let when = by_id["whenCreated"].as_str().expect("whenCreated");
    assert!(
        chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{when}"
    );

    let (status, by_nomis) = app.get(&nomis_path(A, B, 1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_nomis, by_id);

    // The legacy spelling of DPS_CREATED is accepted and stored canonically; no label is fine.
    create(&app, &na(5, A, B, 2, None, "NON_ASSOCIATION_CREATED")).await;
    let (_, m) = app.get(&id_path(5)).await;
    assert_eq!(m["mappingType"], "DPS_CREATED");
    assert_eq!(m["label"], Value::Null);

    // And the Rust API sees the same rows.
    let m: NonAssociationMapping = app.store.require_by_dps(&[1234i64.into()]).await.unwrap();
    assert_eq!(m.first_offender_no.as_str(), A);
}

async fn identical_recreate_is_a_no_op(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1234, A, B, 1, Some("2022-01-01"), "MIGRATED")).await;
    let (_, before) = app.get(&id_path(1234)).await;
    // Same keys, different label and type: still 201, nothing changes.
    create(
        &app,
        &na(1234, A, B, 1, Some("2099-01-01"), "NOMIS_CREATED"),
    )
    .await;
    create(&app, &na(1234, A, B, 1, None, "MIGRATED")).await;
    let (_, after) = app.get(&id_path(1234)).await;
    assert_eq!(before, after);
    assert_eq!(count(&app.store).await, 1);
}

async fn clash_on_the_nomis_key_is_a_1409(backend: TestBackend) {
    let app = App::new(backend).await;
    create(
        &app,
        &na(1234, A, B, 1, Some("2022-01-01"), "NOMIS_CREATED"),
    )
    .await;
    let resp = app
        .post(BASE, &na(99, A, B, 1, Some("2022-01-01"), "NOMIS_CREATED"))
        .await;
    assert_error(
        &resp,
        409,
        &[
            "Conflict: Non-association mapping already exists.",
            "Existing mapping: nonAssociationId=1234, firstOffenderNo=A1234BC, secondOffenderNo=D5678EF, nomisTypeSequence=1, label=2022-01-01, mappingType=NOMIS_CREATED",
            "Duplicate mapping: nonAssociationId=99, firstOffenderNo=A1234BC",
        ],
    );
    let body = &resp.1;
    assert_eq!(body["errorCode"], 1409);
    let existing = &body["moreInfo"]["existing"];
    assert_eq!(existing["nonAssociationId"], 1234);
    assert_eq!(existing["nomisTypeSequence"], 1);
    assert_eq!(existing["mappingType"], "NOMIS_CREATED");
    assert!(existing["whenCreated"].is_string());
    let duplicate = &body["moreInfo"]["duplicate"];
    assert_eq!(duplicate["nonAssociationId"], 99);
    assert_eq!(duplicate["firstOffenderNo"], A);
    assert_eq!(duplicate["secondOffenderNo"], B);
    assert_eq!(duplicate["nomisTypeSequence"], 1);
    assert_eq!(duplicate["mappingType"], "NOMIS_CREATED");
    // Both are mapping objects of the same shape.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(existing), keys(duplicate));
    assert_eq!(duplicate["whenCreated"], Value::Null);
    assert_eq!(count(&app.store).await, 1);
}

async fn clash_on_the_dps_id_is_a_1409(backend: TestBackend) {
    let app = App::new(backend).await;
    create(
        &app,
        &na(1234, A, B, 1, Some("2022-01-01"), "NOMIS_CREATED"),
    )
    .await;
    let resp = app
        .post(
            BASE,
            &na(1234, A, B, 21, Some("2022-01-01"), "NOMIS_CREATED"),
        )
        .await;
    assert_error(
        &resp,
        409,
        &[
            "Existing mapping: nonAssociationId=1234",
            "nomisTypeSequence=21",
        ],
    );
    let more = &resp.1["moreInfo"];
    assert_eq!(resp.1["errorCode"], 1409);
    assert_eq!(more["existing"]["nomisTypeSequence"], 1);
    assert_eq!(more["duplicate"]["nomisTypeSequence"], 21);
    assert_eq!(more["duplicate"]["nonAssociationId"], 1234);
    // The same id for another pair entirely is a clash too.
    let resp = app
        .post(BASE, &na(1234, B, "Z9999ZZ", 1, None, "MIGRATED"))
        .await;
    assert_error(&resp, 409, &["Existing mapping: nonAssociationId=1234"]);
    assert_eq!(count(&app.store).await, 1);
}

async fn concurrent_identical_creates_all_succeed(backend: TestBackend) {
    let app = App::new(backend).await;
    let body = na(777, A, B, 3, Some("m1"), "MIGRATED");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (router, body) = (app.router(), body.clone());
            tokio::spawn(
                async move { call(router, Method::POST, BASE, Some(rw()), Some(&body)).await },
            )
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        let (status, body) = t.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(count(&app.store).await, 1);
}

async fn concurrent_different_creates_one_wins_the_rest_get_409(backend: TestBackend) {
    let app = App::new(backend).await;
    // Same DPS id, different NOMIS keys; then same NOMIS key, different DPS ids.
    for (round, bodies) in [
        (
            0,
            (1..=8)
                .map(|seq| na(500, A, B, seq, None, "NOMIS_CREATED"))
                .collect::<Vec<_>>(),
        ),
        (
            1,
            (1..=8)
                .map(|id| na(600 + id, "G1234HI", "J5678KL", 1, None, "DPS_CREATED"))
                .collect(),
        ),
    ] {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let router = app.router();
                tokio::spawn(async move {
                    call(router, Method::POST, BASE, Some(rw()), Some(&body)).await
                })
            })
            .collect();
        let results: Vec<_> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let created = results
            .iter()
            .filter(|r| r.0 == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "round {round}: {results:?}");
        let winner = match round {
            0 => app.get(&id_path(500)).await.1,
            _ => app.get(&nomis_path("G1234HI", "J5678KL", 1)).await.1,
        };
        for (status, body) in results.iter().filter(|r| r.0 != StatusCode::CREATED) {
            assert_eq!(*status, StatusCode::CONFLICT, "round {round}: {body}");
            assert_eq!(body["errorCode"], 1409);
            assert_eq!(body["moreInfo"]["existing"], winner, "round {round}");
        }
    }
    assert_eq!(count(&app.store).await, 2);
}

async fn unknown_mappings_are_404(backend: TestBackend) {
    let app = App::new(backend).await;
    assert_error(
        &app.get(&id_path(765)).await,
        404,
        &["Not Found:", "nonAssociationId=765"],
    );
    assert_error(
        &app.get(&nomis_path(A, B, 999)).await,
        404,
        &["firstOffenderNo=A1234BC, secondOffenderNo=D5678EF, nomisTypeSequence=999 not found"],
    );
    assert_error(
        &app.get(&format!("{BASE}/migrated/latest")).await,
        404,
        &["no migrated"],
    );
    assert_error(
        &app.put(&format!("{}/sequence/2", id_path(765)), None).await,
        404,
        &["nonAssociationId=765"],
    );
    assert_error(&app.get(&format!("{BASE}/no-such-thing")).await, 404, &[]);
}

async fn pages_by_migration_id(backend: TestBackend) {
    let app = App::new(backend).await;
    for id in 1..=4 {
        create(
            &app,
            &na(id, A, B, id as i32, Some("2022-01-01"), "MIGRATED"),
        )
        .await;
    }
    for id in 5..=9 {
        create(
            &app,
            &na(id, A, B, id as i32, Some("2099-01-01"), "MIGRATED"),
        )
        .await;
    }
    // Same label but not migrated: not counted.
    create(&app, &na(12, A, B, 12, Some("2022-01-01"), "NOMIS_CREATED")).await;

    let (status, page) = app.get(&format!("{BASE}/migration-id/2022-01-01")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 4);
    assert_eq!(page["numberOfElements"], 4);
    assert_eq!(page["size"], 20);
    let ids: Vec<i64> = page["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nonAssociationId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert!(page["content"][0]["whenCreated"].is_string());

    let (_, page) = app
        .get(&format!("{BASE}/migration-id/2022-01-01?size=3&page=1"))
        .await;
    assert_eq!(page["totalElements"], 4);
    assert_eq!(page["numberOfElements"], 1);
    assert_eq!(page["number"], 1);
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["size"], 3);
    assert_eq!(page["last"], true);
    assert_eq!(page["content"][0]["nonAssociationId"], 4);

    let (_, page) = app
        .get(&format!(
            "{BASE}/migration-id/2099-01-01?size=2&sort=nomisTypeSequence,desc"
        ))
        .await;
    assert_eq!(page["totalElements"], 5);
    assert_eq!(page["content"][0]["nomisTypeSequence"], 9);
    assert_eq!(page["content"][1]["nomisTypeSequence"], 8);
    assert_eq!(page["sort"]["sorted"], true);

    let (_, page) = app.get(&format!("{BASE}/migration-id/2044-01-01")).await;
    assert_eq!(page["totalElements"], 0);
    assert_eq!(page["content"], json!([]));

    assert_error(
        &app.get(&format!("{BASE}/migration-id/2022-01-01?size=0"))
            .await,
        400,
        &["size"],
    );
    assert_error(
        &app.get(&format!("{BASE}/migration-id/2022-01-01?page=-1"))
            .await,
        400,
        &["page"],
    );
    assert_error(
        &app.get(&format!("{BASE}/migration-id/2022-01-01?sort=bogus"))
            .await,
        400,
        &["sort", "bogus"],
    );
}

async fn latest_migrated_is_the_most_recently_created(backend: TestBackend) {
    let app = App::new(backend).await;
    create(
        &app,
        &na(10, A, B, 2, Some("2022-01-01T00:00:00"), "MIGRATED"),
    )
    .await;
    create(
        &app,
        &na(20, A, B, 4, Some("2022-01-02T00:00:00"), "MIGRATED"),
    )
    .await;
    create(
        &app,
        &na(1, A, B, 1, Some("2022-01-02T10:00:00"), "MIGRATED"),
    )
    .await;
    create(&app, &na(99, A, B, 3, Some("whatever"), "NOMIS_CREATED")).await;
    let (status, m) = app.get(&format!("{BASE}/migrated/latest")).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["nonAssociationId"], 1);
    assert_eq!(m["label"], "2022-01-02T10:00:00");
    assert_eq!(m["mappingType"], "MIGRATED");
}

async fn deletes(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, A, B, 1, Some("m"), "MIGRATED")).await;
    create(&app, &na(2, A, B, 2, Some("m"), "MIGRATED")).await;
    create(&app, &na(3, A, B, 3, None, "NOMIS_CREATED")).await;
    create(&app, &na(4, A, B, 4, None, "DPS_CREATED")).await;

    assert_eq!(app.delete(&id_path(1)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&id_path(1)).await.0, StatusCode::NOT_FOUND);
    // Idempotent.
    assert_eq!(app.delete(&id_path(1)).await.0, StatusCode::NO_CONTENT);
    // The NOMIS key is free again.
    create(&app, &na(11, A, B, 1, None, "NOMIS_CREATED")).await;

    assert_error(
        &app.delete(&format!("{BASE}?onlyMigrated=maybe")).await,
        400,
        &["onlyMigrated"],
    );
    assert_eq!(
        app.delete(&format!("{BASE}?onlyMigrated=true")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&id_path(2)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&id_path(3)).await.0, StatusCode::OK);
    assert_eq!(count(&app.store).await, 3);
    assert_eq!(app.delete(BASE).await.0, StatusCode::NO_CONTENT);
    assert_eq!(count(&app.store).await, 0);
}

async fn merge_replaces_the_number_on_either_side(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, "B1111BB", "C2222CC", 1, None, "MIGRATED")).await;
    create(&app, &na(2, "A0000AA", "B1111BB", 1, None, "MIGRATED")).await;
    create(&app, &na(3, "D3333DD", "E4444EE", 1, None, "MIGRATED")).await;

    let (status, updated) = app
        .put(&format!("{BASE}/merge/from/B1111BB/to/Z9999ZZ"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated.as_array().unwrap().len(), 2);
    // Smaller number first, as every creator writes it, so NOMIS-key look-ups keep working.
    let (_, m1) = app.get(&id_path(1)).await;
    assert_eq!(
        (
            m1["firstOffenderNo"].as_str(),
            m1["secondOffenderNo"].as_str()
        ),
        (Some("C2222CC"), Some("Z9999ZZ"))
    );
    assert_eq!(m1["mappingType"], "MIGRATED");
    let (_, m2) = app.get(&id_path(2)).await;
    assert_eq!(
        (
            m2["firstOffenderNo"].as_str(),
            m2["secondOffenderNo"].as_str()
        ),
        (Some("A0000AA"), Some("Z9999ZZ"))
    );
    assert_eq!(
        app.get(&nomis_path("C2222CC", "Z9999ZZ", 1)).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get(&id_path(3)).await.1["firstOffenderNo"], "D3333DD");

    // Again: nothing left to replace.
    let (status, updated) = app
        .put(&format!("{BASE}/merge/from/B1111BB/to/Z9999ZZ"), None)
        .await;
    assert_eq!((status, updated), (StatusCode::OK, json!([])));

    // Merging one side of a pair into the other leaves an NA with itself: 400, nothing changed.
    assert_error(
        &app.put(&format!("{BASE}/merge/from/D3333DD/to/E4444EE"), None)
            .await,
        400,
        &["E4444EE and itself", "manual intervention"],
    );
    assert_eq!(app.get(&id_path(3)).await.1["firstOffenderNo"], "D3333DD");
    assert_error(
        &app.put(&format!("{BASE}/merge/from/D3333DD/to/D3333DD"), None)
            .await,
        400,
        &["both D3333DD"],
    );
    assert_error(
        &app.put(&format!("{BASE}/merge/from/nope/to/D3333DD"), None)
            .await,
        400,
        &["oldOffenderNo", "invalid prisoner number"],
    );
}

async fn merge_collision_is_a_409_until_resequenced(backend: TestBackend) {
    let app = App::new(backend).await;
    // H and J both have a non-association with X at sequence 1.
    create(&app, &na(5, "H1111HH", "X9999XX", 1, None, "MIGRATED")).await;
    create(&app, &na(6, "J2222JJ", "X9999XX", 1, None, "MIGRATED")).await;
    create(&app, &na(7, "H1111HH", "K3333KK", 1, None, "MIGRATED")).await;
    // Same third party, other sequence: no collision.
    create(&app, &na(8, "H1111HH", "L4444LL", 1, None, "MIGRATED")).await;
    create(&app, &na(9, "J2222JJ", "L4444LL", 2, None, "MIGRATED")).await;

    let (status, common) = app
        .get(&format!("{BASE}/find/common-between/H1111HH/and/J2222JJ"))
        .await;
    assert_eq!(status, StatusCode::OK, "{common}");
    let mut ids: Vec<i64> = common
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nonAssociationId"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [5, 6]);

    let resp = app
        .put(&format!("{BASE}/merge/from/H1111HH/to/J2222JJ"), None)
        .await;
    assert_error(&resp, 409, &["Existing mapping: nonAssociationId=6"]);
    assert_eq!(resp.1["errorCode"], 1409);
    assert_eq!(resp.1["moreInfo"]["existing"]["nonAssociationId"], 6);
    assert_eq!(resp.1["moreInfo"]["duplicate"]["nonAssociationId"], 5);
    // All or nothing: no row was rewritten.
    assert_eq!(app.get(&id_path(7)).await.1["firstOffenderNo"], "H1111HH");
    assert_eq!(app.get(&id_path(8)).await.1["firstOffenderNo"], "H1111HH");

    let (status, m) = app.put(&format!("{}/sequence/3", id_path(5)), None).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["nomisTypeSequence"], 3);
    let (status, updated) = app
        .put(&format!("{BASE}/merge/from/H1111HH/to/J2222JJ"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated.as_array().unwrap().len(), 3);
    assert_eq!(
        app.get(&nomis_path("J2222JJ", "X9999XX", 3)).await.1["nonAssociationId"],
        5
    );
    let (_, common) = app
        .get(&format!("{BASE}/find/common-between/H1111HH/and/J2222JJ"))
        .await;
    assert_eq!(common, json!([]));
}

async fn update_list_by_prisoner_numbers(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, "A1111AA", "B2222BB", 1, None, "MIGRATED")).await;
    create(&app, &na(2, "A1111AA", "C3333CC", 1, None, "MIGRATED")).await;
    create(&app, &na(3, "A1111AA", "D4444DD", 1, None, "MIGRATED")).await;
    let path = format!("{BASE}/update-list/from/A1111AA/to/Z9999ZZ");

    let (status, updated) = app.put(&path, Some(&json!(["B2222BB", "C3333CC"]))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated.as_array().unwrap().len(), 2);
    assert_eq!(app.get(&id_path(1)).await.1["secondOffenderNo"], "Z9999ZZ");
    assert_eq!(app.get(&id_path(2)).await.1["secondOffenderNo"], "Z9999ZZ");
    assert_eq!(app.get(&id_path(3)).await.1["firstOffenderNo"], "A1111AA");

    assert_error(
        &app.put(&path, Some(&json!(["A1111AA"]))).await,
        400,
        &["old prisoner number A1111AA is in the list"],
    );
    assert_error(
        &app.put(&path, Some(&json!(["Z9999ZZ"]))).await,
        400,
        &["new prisoner number Z9999ZZ is in the list"],
    );
    assert_error(
        &app.put(&path, Some(&json!(["B2222BB", "bad"]))).await,
        400,
        &["[1]", "invalid prisoner number"],
    );
    assert_error(
        &app.put(&path, Some(&json!({"list": []}))).await,
        400,
        &["Validation failure"],
    );
    assert_error(&app.put(&path, None).await, 400, &["empty"]);
}

async fn update_list_by_ids(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, "A1111AA", "B2222BB", 1, None, "MIGRATED")).await;
    create(&app, &na(2, "A1111AA", "C3333CC", 1, None, "MIGRATED")).await;
    create(&app, &na(3, "E5555EE", "F6666FF", 1, None, "MIGRATED")).await;
    let path = format!("{BASE}/update-list/from/A1111AA/to/Z9999ZZ");

    // 404 is not an error here: a deleted mapping has nothing to move.
    let (status, updated) = app.put(&path, Some(&json!([1, 42]))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated[0]["nonAssociationId"], 1);
    assert_eq!(updated[0]["secondOffenderNo"], "Z9999ZZ");
    assert_eq!(app.get(&id_path(2)).await.1["firstOffenderNo"], "A1111AA");
    // A retry of the same move succeeds without changing anything.
    let (status, updated) = app.put(&path, Some(&json!([1]))).await;
    assert_eq!((status, updated), (StatusCode::OK, json!([])));
    // An id naming neither number is a mistake worth reporting; nothing moves.
    assert_error(
        &app.put(&path, Some(&json!([2, 3]))).await,
        400,
        &["non-association 3", "not A1111AA"],
    );
    assert_eq!(app.get(&id_path(2)).await.1["firstOffenderNo"], "A1111AA");
    assert_error(
        &app.put(&path, Some(&json!([2, "B2222BB"]))).await,
        400,
        &["not both"],
    );
}

async fn set_sequence(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, A, B, 1, Some("m"), "MIGRATED")).await;
    create(&app, &na(2, A, B, 2, Some("m"), "MIGRATED")).await;

    let (status, m) = app.put(&format!("{}/sequence/5", id_path(1)), None).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["nomisTypeSequence"], 5);
    assert_eq!(m["label"], "m");
    assert_eq!(app.get(&nomis_path(A, B, 5)).await.1["nonAssociationId"], 1);
    assert_eq!(app.get(&nomis_path(A, B, 1)).await.0, StatusCode::NOT_FOUND);
    // Same sequence again: no-op.
    assert_eq!(
        app.put(&format!("{}/sequence/5", id_path(1)), None).await.0,
        StatusCode::OK
    );

    let resp = app.put(&format!("{}/sequence/2", id_path(1)), None).await;
    assert_error(&resp, 409, &["Existing mapping: nonAssociationId=2"]);
    assert_eq!(resp.1["moreInfo"]["duplicate"]["nomisTypeSequence"], 2);
    assert_error(
        &app.put(&format!("{}/sequence/0", id_path(1)), None).await,
        400,
        &["newSequence"],
    );
    assert_error(
        &app.put(&format!("{}/sequence/x", id_path(1)), None).await,
        400,
        &["newSequence"],
    );
}

async fn bad_input_is_a_400_naming_the_field(backend: TestBackend) {
    let app = App::new(backend).await;
    let good = na(1, A, B, 1, None, "MIGRATED");
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    for (body, parts) in [
        (
            with("firstOffenderNo", json!("A123")),
            vec!["firstOffenderNo", "invalid prisoner number"],
        ),
        (
            with("secondOffenderNo", json!("a1234bc")),
            vec!["secondOffenderNo"],
        ),
        (
            with("secondOffenderNo", json!(A)),
            vec!["secondOffenderNo: must differ"],
        ),
        // The larger number first: stored so, no look-up by NOMIS key would find it.
        (
            with("firstOffenderNo", json!("Z1111ZZ")),
            vec!["firstOffenderNo: must be the smaller", "put D5678EF first"],
        ),
        (without("nomisTypeSequence"), vec!["nomisTypeSequence"]),
        (without("nonAssociationId"), vec!["nonAssociationId"]),
        (without("mappingType"), vec!["mappingType"]),
        (
            with("mappingType", json!("SOMETHING")),
            vec!["mappingType", "SOMETHING"],
        ),
        (
            with("nomisTypeSequence", json!("one")),
            vec!["nomisTypeSequence"],
        ),
        (
            with("nomisTypeSequence", json!(0)),
            vec!["nomisTypeSequence"],
        ),
        (
            with("nonAssociationId", json!(-4)),
            vec!["nonAssociationId"],
        ),
        (
            with("label", json!("x".repeat(41))),
            vec!["label", "40 characters"],
        ),
        (with("label", json!(7)), vec!["label"]),
    ] {
        assert_error(
            &app.post(BASE, &body).await,
            400,
            &parts.iter().map(|s| &**s).collect::<Vec<_>>(),
        );
    }
    assert_error(
        &app.call(Method::POST, BASE, Some(rw()), None).await,
        400,
        &["empty"],
    );
    assert_error(
        &app.get(&nomis_path("nope", B, 1)).await,
        400,
        &["firstOffenderNo", "invalid prisoner number 'nope'"],
    );
    assert_error(
        &app.get(&nomis_path(A, "D5678E", 1)).await,
        400,
        &["secondOffenderNo"],
    );
    assert_error(
        &app.get(&format!(
            "{}/type-sequence/x",
            nomis_path(A, B, 1).rsplit_once("/type-sequence").unwrap().0
        ))
        .await,
        400,
        &["typeSequence"],
    );
    assert_error(
        &app.get(&format!("{BASE}/non-association-id/abc")).await,
        400,
        &["nonAssociationId"],
    );
    assert_error(
        &app.get(&format!("{BASE}/find/common-between/{A}/and/x"))
            .await,
        400,
        &["newOffenderNo"],
    );
    // Nothing was stored by any of it.
    assert_eq!(count(&app.store).await, 0);
}

async fn needs_a_token_with_the_role_and_write_scope_for_writes(backend: TestBackend) {
    let app = App::new(backend).await;
    create(&app, &na(1, A, B, 1, None, "MIGRATED")).await;
    let body = na(2, A, B, 2, None, "MIGRATED");
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, BASE.to_string(), Some(body.clone())),
        (Method::DELETE, id_path(1), None),
        (Method::DELETE, BASE.to_string(), None),
        (
            Method::PUT,
            format!("{BASE}/merge/from/{A}/to/Z9999ZZ"),
            None,
        ),
        (
            Method::PUT,
            format!("{BASE}/update-list/from/{A}/to/Z9999ZZ"),
            Some(json!([B])),
        ),
        (Method::PUT, format!("{}/sequence/4", id_path(1)), None),
    ];
    let reads = vec![
        id_path(1),
        nomis_path(A, B, 1),
        format!("{BASE}/migration-id/x"),
        format!("{BASE}/migrated/latest"),
        format!("{BASE}/find/common-between/{A}/and/Z9999ZZ"),
    ];
    for (method, path, body) in &writes {
        for (token, status) in [
            (None, 401),
            (Some("garbage"), 401),
            (Some(foreign()), 401),
            (Some(no_roles()), 403),
            (Some(wrong_role()), 403),
            (Some(read_only()), 403),
        ] {
            let resp = app.call(method.clone(), path, token, body.as_ref()).await;
            assert_error(&resp, status, &[]);
            if status == 403 && token != Some(read_only()) {
                assert!(
                    resp.1["userMessage"]
                        .as_str()
                        .unwrap()
                        .contains("ROLE_NOMIS_MAPPING_API__SYNCHRONISATION__RW")
                );
            }
        }
    }
    for path in &reads {
        for (token, status) in [
            (None, 401),
            (Some(no_roles()), 403),
            (Some(wrong_role()), 403),
        ] {
            assert_error(&app.call(Method::GET, path, token, None).await, status, &[]);
        }
        // Reading needs the role but not the write scope.
        let (status, _) = app.call(Method::GET, path, Some(read_only()), None).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    // Nothing was changed by the refused writes.
    assert_eq!(count(&app.store).await, 1);
    assert_eq!(app.get(&id_path(1)).await.1["nomisTypeSequence"], 1);
}

/// Prisoner number `i` of a synthetic estate (letters and digits as NOMIS has them).
fn prisoner(prefix: char, i: usize) -> String {
    let letters = |n: usize| {
        let a = (b'A' + (n / 26 % 26) as u8) as char;
        let b = (b'A' + (n % 26) as u8) as char;
        format!("{a}{b}")
    };
    format!("{prefix}{:04}{}", i % 10_000, letters(i / 10_000))
}

/// The migration's batch calls at their limit: a thousand mappings created in one call
/// (then re-created identically: a no-op that returns them as stored), a clash anywhere
/// in a batch refusing all of it, and the mappings of a thousand pairs read in one call.
async fn batch_creates_and_pair_reads_at_the_limit(backend: TestBackend) {
    let app = App::new(backend).await;
    // Sent in descending id order: the answer is as stored, ascending.
    let batch: Vec<Value> = (0..1000)
        .rev()
        .map(|i| {
            na(
                i as i64 + 1,
                &prisoner('A', i),
                &prisoner('B', i),
                1,
                Some("m1"),
                "MIGRATED",
            )
        })
        .collect();
    let (status, stored) = app.post(&format!("{BASE}/batch"), &json!(batch)).await;
    assert!(status.is_success(), "{status} {stored}");
    assert_eq!(stored.as_array().unwrap().len(), 1000);
    assert_eq!(count(&app.store).await, 1000);
    let first_answer = stored;

    let again: Vec<Value> = (0..1000)
        .map(|i| {
            na(
                i as i64 + 1,
                &prisoner('A', i),
                &prisoner('B', i),
                1,
                Some("m2"),
                "MIGRATED",
            )
        })
        .collect();
    let (status, stored) = app.post(&format!("{BASE}/batch"), &json!(again)).await;
    assert!(status.is_success(), "{status} {stored}");
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["label"] == "m1"),
        "an identical re-create keeps the stored label"
    );
    // The first answer (made without reading back) is what a read of the stored rows gives,
    // creation times included.
    assert_eq!(first_answer, stored);
    assert_eq!(count(&app.store).await, 1000);

    // New mappings plus one that takes a stored DPS id: nothing is written.
    let mut clash: Vec<Value> = (0..10)
        .map(|i| {
            na(
                5000 + i as i64,
                &prisoner('C', i),
                &prisoner('D', i),
                1,
                None,
                "MIGRATED",
            )
        })
        .collect();
    clash.push(na(
        1,
        &prisoner('E', 1),
        &prisoner('F', 1),
        1,
        None,
        "MIGRATED",
    ));
    let resp = app.post(&format!("{BASE}/batch"), &json!(clash)).await;
    assert_error(&resp, 409, &["nonAssociationId=1"]);
    assert_eq!(count(&app.store).await, 1000);

    // A thousand pairs (half given the other way round), two of them unknown.
    let mut asked: Vec<Value> = (0..998)
        .map(|i| {
            let (a, b) = (prisoner('A', i), prisoner('B', i));
            if i % 2 == 0 {
                json!({"firstOffenderNo": a, "secondOffenderNo": b})
            } else {
                json!({"firstOffenderNo": b, "secondOffenderNo": a})
            }
        })
        .collect();
    asked.push(json!({"firstOffenderNo": prisoner('A', 1), "secondOffenderNo": prisoner('B', 2)}));
    asked.push(json!({"firstOffenderNo": prisoner('G', 1), "secondOffenderNo": prisoner('H', 1)}));
    let (status, found) = app.post(&format!("{BASE}/pairs"), &json!(asked)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<i64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nonAssociationId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=998).collect::<Vec<i64>>());
}

tandem_platform::both_backends!(
    batch_creates_and_pair_reads_at_the_limit,
    creates_and_reads_both_ways,
    identical_recreate_is_a_no_op,
    clash_on_the_nomis_key_is_a_1409,
    clash_on_the_dps_id_is_a_1409,
    concurrent_identical_creates_all_succeed,
    concurrent_different_creates_one_wins_the_rest_get_409,
    unknown_mappings_are_404,
    pages_by_migration_id,
    latest_migrated_is_the_most_recently_created,
    deletes,
    merge_replaces_the_number_on_either_side,
    merge_collision_is_a_409_until_resequenced,
    update_list_by_prisoner_numbers,
    update_list_by_ids,
    set_sequence,
    bad_input_is_a_400_naming_the_field,
    needs_a_token_with_the_role_and_write_scope_for_writes,
);
