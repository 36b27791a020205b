//! The DPS endpoints (reference §3.3–3.4, §3.7).

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tandem_auth::roles;
use tandem_platform::db::testing::TestBackend;

use crate::support::*;

async fn creates_reads_and_publishes(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, body) = app
        .post("/non-associations", &writer(), create_body(A, B))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["firstPrisonerNumber"], A);
    assert_eq!(body["firstPrisonerRole"], "VICTIM");
    assert_eq!(body["firstPrisonerRoleDescription"], "Victim");
    assert_eq!(body["secondPrisonerRole"], "PERPETRATOR");
    assert_eq!(body["reason"], "VIOLENCE");
    assert_eq!(body["reasonDescription"], "Violence");
    assert_eq!(body["restrictionType"], "CELL");
    assert_eq!(body["restrictionTypeDescription"], "Cell only");
    assert_eq!(body["comment"], "Keep apart");
    assert_eq!(body["updatedBy"], USER);
    assert_eq!(body["isClosed"], false);
    assert_eq!(body["isOpen"], true);
    assert_eq!(body["closedAt"], Value::Null);
    assert!(
        body.get("authorisedBy").is_none(),
        "not exposed in the DPS DTO"
    );

    let (status, got) = app.get(&format!("/non-associations/{id}"), &reader()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, body);

    let events = app.events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, "non-associations.created");
    assert_eq!(e.ordering_key.as_deref(), Some(format!("{A}/{B}").as_str()));
    assert_eq!(e.body["eventType"], "non-associations.created");
    assert_eq!(e.body["version"], "1.0");
    assert_eq!(
        e.body["description"],
        format!("A non-association has been created: {id}")
    );
    assert_eq!(
        e.body["additionalInformation"],
        json!({"id": id, "nsPrisonerNumber1": A, "nsPrisonerNumber2": B, "source": "DPS"})
    );
    assert!(
        e.body["occurredAt"].as_str().unwrap().contains('+'),
        "{}",
        e.body
    );

    // The legacy view records the creator as the authoriser.
    let (status, legacy) = app
        .get(&format!("/legacy/api/non-associations/{id}"), &syncer())
        .await;
    assert_eq!(status, StatusCode::OK, "{legacy}");
    assert_eq!(legacy["authorisedBy"], USER);
}

async fn rejects_bad_input_without_writing(backend: TestBackend) {
    let app = App::new(backend).await;
    let before = app.snapshot().await;
    let w = writer();

    let msg = assert_error(
        &app.post("/non-associations", &w, create_body(A, A)).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("themself"), "{msg}");

    let msg = assert_error(
        &app.raw(
            Method::POST,
            "/non-associations",
            Some(&w),
            Some("{\"firstPrisonerNumber\": "),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("malformed JSON"), "{msg}");

    let mut body = create_body(A, B);
    body["reason"] = json!("FIGHTING");
    let msg = assert_error(
        &app.post("/non-associations", &w, body).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("reason"), "{msg}");

    let mut body = create_body(A, B);
    body["firstPrisonerNumber"] = json!("nonsense");
    let msg = assert_error(
        &app.post("/non-associations", &w, body).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("firstPrisonerNumber"), "{msg}");

    let mut body = create_body(A, B);
    body["restrictionType"] = json!(7);
    let msg = assert_error(
        &app.post("/non-associations", &w, body).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("restrictionType"), "{msg}");

    let mut body = create_body(A, B);
    body["comment"] = json!("   ");
    let msg = assert_error(
        &app.post("/non-associations", &w, body).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("comment"), "{msg}");

    let mut body = create_body(A, B);
    body.as_object_mut().unwrap().remove("secondPrisonerRole");
    let msg = assert_error(
        &app.post("/non-associations", &w, body).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("secondPrisonerRole"), "{msg}");

    assert_error(
        &app.post("/non-associations", &w, create_body(A, UNKNOWN))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    let msg = assert_error(
        &app.post("/non-associations", &w, create_body(RELEASED, A))
            .await,
        StatusCode::CONFLICT,
        Some(103),
    );
    assert!(msg.contains(RELEASED), "{msg}");

    assert_eq!(
        app.snapshot().await,
        before,
        "nothing written, nothing published"
    );
}

async fn one_open_per_pair(backend: TestBackend) {
    let app = App::new(backend).await;
    let first = app.create(A, B).await;
    let before = app.snapshot().await;
    // Either order is the same pair.
    let msg = assert_error(
        &app.post("/non-associations", &writer(), create_body(B, A))
            .await,
        StatusCode::CONFLICT,
        Some(101),
    );
    assert!(msg.contains(&first.to_string()), "{msg}");
    assert_eq!(app.snapshot().await, before);

    // Closed records do not count; closed duplicates are kept.
    app.close(first).await;
    let second = app.create(B, A).await;
    app.close(second).await;
    let third = app.create(A, B).await;
    assert!(third > second && second > first);
}

async fn concurrent_creates_open_one(backend: TestBackend) {
    let app = std::sync::Arc::new(App::new(backend).await);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let (a, b) = if i % 2 == 0 { (C, D) } else { (D, C) };
            app.post("/non-associations", &writer(), create_body(a, b))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let got = t.await.unwrap();
        if got.0 == StatusCode::CREATED {
            created += 1;
        } else {
            assert_error(&got, StatusCode::CONFLICT, Some(101));
        }
    }
    assert_eq!(created, 1);
    assert_eq!(app.snapshot().await, (1, 1));
}

async fn auth_is_enforced(backend: TestBackend) {
    let app = App::new(backend).await;
    let body = create_body(A, B).to_string();
    let got = app
        .raw(Method::POST, "/non-associations", None, Some(&body))
        .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    let got = app
        .raw(
            Method::POST,
            "/non-associations",
            Some("not-a-jwt"),
            Some(&body),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    assert_error(
        &app.post("/non-associations", &reader(), create_body(A, B))
            .await,
        StatusCode::FORBIDDEN,
        None,
    );
    let no_write_scope = token(&[roles::WRITE_NON_ASSOCIATIONS], Some(USER), false);
    assert_error(
        &app.post("/non-associations", &no_write_scope, create_body(A, B))
            .await,
        StatusCode::FORBIDDEN,
        None,
    );
    // A client token without a user name cannot create or amend.
    let client = token(&[roles::WRITE_NON_ASSOCIATIONS], None, true);
    assert_error(
        &app.post("/non-associations", &client, create_body(A, B))
            .await,
        StatusCode::UNAUTHORIZED,
        Some(401),
    );
    let id = app.create(A, B).await;
    assert_error(
        &app.patch(
            &format!("/non-associations/{id}"),
            &client,
            json!({"comment": "x"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        Some(401),
    );
    // Reads need the read role.
    assert_error(
        &app.get(&format!("/non-associations/{id}"), &syncer()).await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_error(
        &app.get("/non-associations", &writer_without_read()).await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_eq!(app.events().await.len(), 1);
}

fn writer_without_read() -> String {
    token(&[roles::WRITE_NON_ASSOCIATIONS], Some(USER), true)
}

async fn patches(backend: TestBackend) {
    let app = App::new(backend).await;
    let id = app.create(A, B).await;
    let (status, body) = app
        .patch(
            &format!("/non-associations/{id}"),
            &token(&[roles::WRITE_NON_ASSOCIATIONS], Some("OTHER_USER"), true),
            json!({"reason": "GANG_RELATED", "comment": "Gang rivalry", "secondPrisonerRole": "NOT_RELEVANT"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], "GANG_RELATED");
    assert_eq!(body["comment"], "Gang rivalry");
    assert_eq!(body["firstPrisonerRole"], "VICTIM", "untouched");
    assert_eq!(body["secondPrisonerRole"], "NOT_RELEVANT");
    assert_eq!(body["restrictionType"], "CELL");
    assert_eq!(body["updatedBy"], "OTHER_USER");
    let events = app.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event_type, "non-associations.amended");
    assert_eq!(
        events[1].body["description"],
        format!("A non-association has been amended: {id}")
    );

    let before = app.snapshot().await;
    assert_error(
        &app.patch(
            &format!("/non-associations/{id}"),
            &writer(),
            json!({"comment": ""}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    let msg = assert_error(
        &app.patch(
            &format!("/non-associations/{id}"),
            &writer(),
            json!({"restrictionType": "ROOM"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("restrictionType"), "{msg}");
    assert_error(
        &app.patch(
            "/non-associations/999999",
            &writer(),
            json!({"comment": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    let msg = assert_error(
        &app.patch("/non-associations/abc", &writer(), json!({"comment": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("path"), "{msg}");
    assert_eq!(app.snapshot().await, before);
}

async fn closes_and_reopens(backend: TestBackend) {
    let app = App::new(backend).await;
    let id = app.create(A, B).await;
    let path = format!("/non-associations/{id}");

    let (status, body) = app
        .put(
            &format!("{path}/close"),
            &writer(),
            json!({"closedReason": "Moved on", "closedAt": "2024-02-03T10:11:12"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["isClosed"], true);
    assert_eq!(body["isOpen"], false);
    assert_eq!(body["closedBy"], USER, "defaults to the token's user");
    assert_eq!(body["closedReason"], "Moved on");
    assert_eq!(body["closedAt"], "2024-02-03T10:11:12");
    assert_eq!(body["whenUpdated"], "2024-02-03T10:11:12");
    assert_eq!(body["updatedBy"], USER);

    let before = app.snapshot().await;
    assert_error(
        &app.put(
            &format!("{path}/close"),
            &writer(),
            json!({"closedReason": "again"}),
        )
        .await,
        StatusCode::CONFLICT,
        Some(100),
    );
    assert_error(
        &app.put(&format!("{path}/close"), &writer(), json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert_error(
        &app.put(
            "/non-associations/424242/close",
            &writer(),
            json!({"closedReason": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    assert_eq!(app.snapshot().await, before);

    // Another open one for the pair blocks reopening.
    let other = app.create(B, A).await;
    let reopener = token(&[roles::REOPEN_NON_ASSOCIATIONS], Some("REOPENER"), true);
    let before = app.snapshot().await;
    assert_error(
        &app.put(
            &format!("{path}/reopen"),
            &reopener,
            json!({"reopenReason": "Back"}),
        )
        .await,
        StatusCode::CONFLICT,
        Some(104),
    );
    assert_error(
        &app.put(
            &format!("/non-associations/{other}/reopen"),
            &reopener,
            json!({"reopenReason": "Open"}),
        )
        .await,
        StatusCode::CONFLICT,
        Some(104),
    );
    assert_error(
        &app.put(
            &format!("{path}/reopen"),
            &writer(),
            json!({"reopenReason": "Back"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_eq!(app.snapshot().await, before);

    app.close(other).await;
    let (status, body) = app
        .put(
            &format!("{path}/reopen"),
            &reopener,
            json!({"reopenReason": "Back together"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["isOpen"], true);
    assert_eq!(
        body["comment"], "Back together",
        "the reopen reason replaces the comment"
    );
    assert_eq!(body["closedBy"], Value::Null);
    assert_eq!(body["closedReason"], Value::Null);
    assert_eq!(body["closedAt"], Value::Null);
    assert_eq!(body["updatedBy"], "REOPENER");

    let types: Vec<String> = app
        .events()
        .await
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(
        types,
        [
            "non-associations.created",
            "non-associations.closed",
            "non-associations.created",
            "non-associations.closed",
            "non-associations.amended"
        ]
    );
    let last = app.events().await.pop().unwrap();
    assert_eq!(
        last.body["description"],
        format!("A non-association has been re-opened: {id}")
    );
    let closed = &app.events().await[1];
    assert_eq!(
        closed.body["description"],
        format!("A non-association has been closed: {id}")
    );
}

async fn deletes(backend: TestBackend) {
    let app = App::new(backend).await;
    let id = app.create(B, A).await;
    let deleter = token(&[roles::DELETE_NON_ASSOCIATIONS], Some(USER), true);
    let path = format!("/non-associations/{id}/delete");
    let before = app.snapshot().await;
    assert_error(
        &app.post(&path, &deleter, json!({"deletionReason": "Error"}))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert_error(
        &app.post(
            &path,
            &deleter,
            json!({"deletionReason": "Error", "staffUserNameRequestingDeletion": "x".repeat(61)}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert_error(
        &app.post(
            &path,
            &writer(),
            json!({"deletionReason": "Error", "staffUserNameRequestingDeletion": "BOSS"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_eq!(app.snapshot().await, before);

    let (status, body) = app
        .post(
            &path,
            &deleter,
            json!({"deletionReason": "Error", "staffUserNameRequestingDeletion": "BOSS"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &app.get(&format!("/non-associations/{id}"), &reader()).await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    assert_error(
        &app.post(
            &path,
            &deleter,
            json!({"deletionReason": "Error", "staffUserNameRequestingDeletion": "BOSS"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
    let e = app.events().await.pop().unwrap();
    assert_eq!(e.event_type, "non-associations.deleted");
    assert_eq!(e.ordering_key.as_deref(), Some(format!("{A}/{B}").as_str()));
    assert_eq!(
        e.body["additionalInformation"],
        json!({"id": id, "nsPrisonerNumber1": B, "nsPrisonerNumber2": A, "source": "DPS"})
    );
    assert_eq!(app.row_count().await, 0);
}

async fn lists_pages_and_sorts(backend: TestBackend) {
    let app = App::new(backend).await;
    let ab = app.create(A, B).await;
    let ac = app.create(A, C).await;
    let ad = app.create(A, D).await;
    let bc = app.create(B, C).await;
    app.close(ac).await;
    let r = reader();

    let (status, page) = app.get("/non-associations", &r).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids = |p: &Value| {
        p["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page), [ab, ad, bc], "open only, by id");
    assert_eq!(page["totalElements"], 3);
    assert_eq!(page["size"], 20);
    assert_eq!(page["number"], 0);
    assert_eq!(page["first"], true);
    assert_eq!(page["last"], true);
    assert_eq!(page["pageable"]["pageSize"], 20);

    let (_, page) = app
        .get("/non-associations?includeClosed=true&size=2&page=1", &r)
        .await;
    assert_eq!(ids(&page), [ad, bc]);
    assert_eq!(page["totalElements"], 4);
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["numberOfElements"], 2);
    assert_eq!(page["last"], true);
    assert_eq!(page["first"], false);

    let (_, page) = app
        .get("/non-associations?includeOpen=false&includeClosed=true", &r)
        .await;
    assert_eq!(ids(&page), [ac]);
    let (_, page) = app
        .get("/non-associations?includeClosed=true&sort=id,desc", &r)
        .await;
    assert_eq!(ids(&page), [bc, ad, ac, ab]);
    let (_, page) = app
        .get(
            "/non-associations?includeClosed=true&sort=isClosed,desc&sort=id,desc",
            &r,
        )
        .await;
    assert_eq!(ids(&page), [ac, bc, ad, ab]);
    // Past the last page: empty; past an offset a signed 64-bit number holds (which the
    // answer's `pageable.offset` could not carry): refused, as NOMIS and mapping do.
    assert_error(
        &app.get("/non-associations?page=18446744073709551615&size=200", &r)
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    let (status, page) = app
        .get("/non-associations?page=46116860184273879&size=200", &r)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), Vec::<i64>::new());
    let (_, page) = app.get("/non-associations?page=5", &r).await;
    assert_eq!(ids(&page), Vec::<i64>::new());
    assert_eq!(page["empty"], true);

    assert_error(
        &app.get("/non-associations?includeOpen=false", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    let msg = assert_error(
        &app.get("/non-associations?sort=colour", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("sort"), "{msg}");
    assert_error(
        &app.get("/non-associations?size=201", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    let msg = assert_error(
        &app.get("/non-associations?page=-1", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("page"), "{msg}");
    // An offset past what a signed 64-bit number holds.
    let msg = assert_error(
        &app.get("/non-associations?page=18446744073709551615", &r)
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(
        msg.contains("page: 18446744073709551615 is too large"),
        "{msg}"
    );
    let msg = assert_error(
        &app.get("/non-associations?includeOpen=maybe", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("includeOpen"), "{msg}");
}

async fn between_and_involving(backend: TestBackend) {
    let app = App::new(backend).await;
    let ab = app.create(A, B).await;
    let ca = app.create(C, A).await;
    let ae = app.create(A, LEEDS).await;
    let cd = app.create(C, D).await;
    app.close(ca).await;
    let r = reader();
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };

    let (status, got) = app
        .post("/non-associations/between", &r, json!([B, A, D]))
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(ids(&got), [ab]);
    let (_, got) = app
        .post(
            "/non-associations/between?includeClosed=true",
            &r,
            json!([A, B, C]),
        )
        .await;
    assert_eq!(ids(&got), [ab, ca]);
    let (_, got) = app
        .post("/non-associations/between", &r, json!([A, LEEDS]))
        .await;
    assert_eq!(ids(&got), [ae]);
    let (_, got) = app
        .post(
            "/non-associations/between?prisonId=MDI",
            &r,
            json!([A, LEEDS, B]),
        )
        .await;
    assert_eq!(ids(&got), [ab], "both prisoners must be in the prison");

    let (_, got) = app
        .post("/non-associations/involving", &r, json!([A]))
        .await;
    assert_eq!(ids(&got), [ab, ae]);
    let (_, got) = app
        .post(
            "/non-associations/involving?includeClosed=true",
            &r,
            json!([C]),
        )
        .await;
    assert_eq!(ids(&got), [ca, cd]);
    let (_, got) = app
        .post(
            "/non-associations/involving?prisonId=MDI",
            &r,
            json!([A, D]),
        )
        .await;
    assert_eq!(ids(&got), [ab, cd]);

    assert_error(
        &app.post("/non-associations/between", &r, json!([A, A]))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert_error(
        &app.post("/non-associations/involving", &r, json!([])).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    let many: Vec<String> = (0..1001).map(|i| format!("A{i:04}AA")).collect();
    let msg = assert_error(
        &app.post("/non-associations/involving", &r, json!(many))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("at most 1000"), "{msg}");
    let msg = assert_error(
        &app.post("/non-associations/involving", &r, json!([A, "bad"]))
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("[1]"), "{msg}");
    let msg = assert_error(
        &app.post(
            "/non-associations/involving?prisonId=moorland",
            &r,
            json!([A]),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("prisonId"), "{msg}");
    assert_error(
        &app.post(
            "/non-associations/between?includeOpen=false",
            &r,
            json!([A, B]),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
}

async fn prisoner_view(backend: TestBackend) {
    let app = App::new(backend).await;
    let ab = app.create(A, B).await;
    let ca = app.create(C, A).await;
    let ae = app.create(A, LEEDS).await;
    let ad = app.create(A, D).await;
    app.close(ad).await;
    let r = reader();

    let (status, v) = app
        .get(&format!("/prisoner/{A}/non-associations"), &r)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["prisonerNumber"], A);
    assert_eq!(v["firstName"], format!("FIRST-{A}"));
    assert_eq!(v["prisonId"], "MDI");
    assert_eq!(v["openCount"], 2);
    assert_eq!(v["closedCount"], 0);
    let list = v["nonAssociations"].as_array().unwrap();
    let ids: Vec<i64> = list.iter().map(|x| x["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [ca, ab], "same prison only, newest first");
    let from_c = &list[0];
    assert_eq!(
        from_c["role"], "PERPETRATOR",
        "A is the second prisoner of C-A"
    );
    assert_eq!(from_c["roleDescription"], "Perpetrator");
    assert_eq!(from_c["authorisedBy"], USER);
    assert_eq!(from_c["otherPrisonerDetails"]["prisonerNumber"], C);
    assert_eq!(from_c["otherPrisonerDetails"]["role"], "VICTIM");
    assert_eq!(
        from_c["otherPrisonerDetails"]["lastName"],
        format!("LAST-{C}")
    );
    assert_eq!(from_c["otherPrisonerDetails"]["cellLocation"], "1-1-001");

    let (_, v) = app
        .get(
            &format!("/prisoner/{A}/non-associations?includeOtherPrisons=true&includeClosed=true&sortBy=PRISONER_NUMBER&sortDirection=ASC"),
            &r,
        )
        .await;
    let ids: Vec<i64> = v["nonAssociations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [ab, ca, ad, ae]);
    assert_eq!(v["openCount"], 3);
    assert_eq!(v["closedCount"], 1);

    assert_error(
        &app.get(&format!("/prisoner/{UNKNOWN}/non-associations"), &r)
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    let msg = assert_error(
        &app.get("/prisoner/a1234aa/non-associations", &r).await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("prisoner number"), "{msg}");
    let msg = assert_error(
        &app.get(&format!("/prisoner/{A}/non-associations?sortBy=AGE"), &r)
            .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
    assert!(msg.contains("sortBy"), "{msg}");
    assert_error(
        &app.get(
            &format!("/prisoner/{A}/non-associations?includeOpen=false"),
            &r,
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some(102),
    );
}

async fn constants_need_no_token(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, c) = app.raw(Method::GET, "/constants", None, None).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["roles"].as_array().unwrap().len(), 4);
    assert_eq!(
        c["reasons"][3],
        json!({"code": "LEGAL_REQUEST", "description": "Police or legal request"})
    );
    assert_eq!(
        c["restrictionTypes"][2],
        json!({"code": "WING", "description": "Cell, landing and wing"})
    );
}

async fn legacy_view(backend: TestBackend) {
    let app = App::new(backend).await;
    let (_, created) = app
        .post(
            "/non-associations",
            &writer(),
            json!({"firstPrisonerNumber": A, "firstPrisonerRole": "PERPETRATOR", "secondPrisonerNumber": B,
                   "secondPrisonerRole": "NOT_RELEVANT", "reason": "THREAT", "restrictionType": "LANDING",
                   "comment": "Threats made"}),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let (status, v) = app
        .get(&format!("/legacy/api/non-associations/{id}"), &syncer())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["offenderNo"], A);
    assert_eq!(v["reasonCode"], "PER");
    assert_eq!(v["reasonDescription"], "Perpetrator");
    assert_eq!(v["typeCode"], "LAND");
    assert_eq!(v["typeDescription"], "Do Not Locate on Same Landing");
    assert_eq!(
        v["effectiveDate"],
        created["whenCreated"].as_str().unwrap()[..10]
    );
    assert_eq!(v["expiryDate"], Value::Null);
    assert_eq!(v["comments"], "Threats made");
    assert_eq!(
        v["offenderNonAssociation"],
        json!({"offenderNo": B, "reasonCode": "NOT_REL", "reasonDescription": "Not relevant"})
    );

    app.put(
        &format!("/non-associations/{id}/close"),
        &writer(),
        json!({"closedReason": "x", "closedAt": "2030-01-02T03:04:05"}),
    )
    .await;
    let (_, v) = app
        .get(&format!("/legacy/api/non-associations/{id}"), &syncer())
        .await;
    assert_eq!(v["expiryDate"], "2030-01-02");

    assert_error(
        &app.get(&format!("/legacy/api/non-associations/{id}"), &reader())
            .await,
        StatusCode::FORBIDDEN,
        None,
    );
    assert_error(
        &app.get("/legacy/api/non-associations/777", &syncer()).await,
        StatusCode::NOT_FOUND,
        Some(404),
    );
}

async fn serves_health_and_openapi(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, health) = app.raw(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["components"]["db"]["status"], "UP");
    let (status, doc) = app.raw(Method::GET, "/v3/api-docs", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/non-associations",
        "/non-associations/{id}",
        "/non-associations/{id}/close",
        "/non-associations/{id}/reopen",
        "/non-associations/{id}/delete",
        "/non-associations/between",
        "/non-associations/involving",
        "/prisoner/{prisonerNumber}/non-associations",
        "/legacy/api/non-associations/{id}",
        "/constants",
        "/sync",
        "/migrate",
        "/sync/{id}",
        "/sync/id/{firstPrisonerNumber}/{secondPrisonerNumber}/{typeSequence}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let item = &doc["components"]["schemas"]["NomisNonAssociationItem"]["properties"];
    assert!(
        item["typeSequence"]["description"]
            .as_str()
            .unwrap()
            .contains("tandem addition"),
        "{item}"
    );
    assert!(
        item["id"]["description"]
            .as_str()
            .unwrap()
            .contains("mapping service"),
        "{item}"
    );
}

tandem_platform::both_backends!(
    creates_reads_and_publishes,
    rejects_bad_input_without_writing,
    one_open_per_pair,
    concurrent_creates_open_one,
    auth_is_enforced,
    patches,
    closes_and_reopens,
    deletes,
    lists_pages_and_sorts,
    between_and_involving,
    prisoner_view,
    constants_need_no_token,
    legacy_view,
    serves_health_and_openapi,
);
