//! The sync adapter against an in-process mini-estate (NOMIS emulator, mapping service, DPS
//! service), driving the handlers and the migration domain directly.

use std::sync::Arc;

use http::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use tandem_auth::{LocalTokenSource, LocalValidator, validator_layer};
use tandem_non_associations::sync_adapter::{
    self, DpsPrisonerEventsHandler, FromNomisHandler, MappingMergesHandler, Peers, ToNomisHandler,
    from_nomis, to_nomis,
};
use tandem_non_associations::{InMemoryPrisoners, Store};
use tandem_platform::client::{LocalApp, PeerClient, TokenSource};
use tandem_platform::db::Db;
use tandem_platform::db::testing::{TestBackend, TestStorage};
use tandem_platform::events::InboundEvent;
use tandem_platform::http::{finish, mount_service};
use tandem_sync::listeners::FeatureSwitches;
use tandem_sync::migration::{EntityError, MigrationFilter};

use crate::support::ISSUER;

const A: &str = "A1000AA";
const B: &str = "B2000BB";
const C: &str = "C3000CC";
const D: &str = "D4000DD";

struct Estate {
    peers: Peers,
    app: LocalApp,
    nomis_db: Db,
    mapping_db: Db,
    na_db: Db,
    _storage: TestStorage,
}

fn tokens(client: &str, roles: &[&str]) -> Arc<dyn TokenSource> {
    Arc::new(LocalTokenSource::new(
        ISSUER.clone(),
        client,
        roles.iter().map(|r| r.to_string()).collect(),
    ))
}

async fn count(db: &Db, sql: &str) -> i64 {
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(db.backend(), sql.to_string()))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

impl Estate {
    async fn new(backend: TestBackend) -> Self {
        let storage = TestStorage::new(backend).await;
        let nomis_db = storage.db("nomis-prisoner-api").await;
        nomis_db.migrate::<tandem_nomis::Migrator>().await.unwrap();
        let mapping_db = storage.db("nomis-mapping-api").await;
        mapping_db
            .migrate::<tandem_mapping::Migrator>()
            .await
            .unwrap();
        let na_db = storage.db("non-associations-api").await;
        na_db
            .migrate::<tandem_non_associations::Migrator>()
            .await
            .unwrap();
        let prisoners = InMemoryPrisoners::new();
        for p in [A, B, C, D, "A7777BB", "B8888CC", "C1111DD"] {
            prisoners.add(p, Some("MDI"));
        }
        let app = LocalApp::new();
        let router = axum::Router::new()
            .merge(mount_service(tandem_nomis::service(nomis_db.clone())))
            .merge(mount_service(tandem_mapping::service(mapping_db.clone())))
            .merge(mount_service(tandem_non_associations::service(
                na_db.clone(),
                Arc::new(prisoners),
            )));
        let router = finish(router).layer(validator_layer(Arc::new(LocalValidator::new(
            ISSUER.clone(),
        ))));
        app.set(router);
        let peers = Peers {
            nomis: PeerClient::in_process(
                "nomis-prisoner-api",
                app.clone(),
                tokens("sync", sync_adapter::roles::NOMIS),
            ),
            dps: PeerClient::in_process(
                "non-associations-api",
                app.clone(),
                tokens("sync", sync_adapter::roles::DPS),
            ),
            mapping: PeerClient::in_process(
                "nomis-mapping-api",
                app.clone(),
                tokens("sync", sync_adapter::roles::MAPPING),
            ),
        };
        let estate = Self {
            peers,
            app,
            nomis_db,
            mapping_db,
            na_db,
            _storage: storage,
        };
        for p in [A, B, C, D, "A7777BB", "B8888CC", "C1111DD"] {
            estate.add_prisoner(p).await;
        }
        estate
    }

    async fn add_prisoner(&self, no: &str) {
        let resp = self
            .peers
            .nomis
            .request(Method::POST, "/prisoners")
            .json(
                &json!({"firstName": "JOHN", "lastName": "SMITH", "dateOfBirth": "1980-01-01",
                "prisonId": "MDI", "offenderNo": no}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::CREATED, "{:?}", resp.body);
    }

    /// A NOMIS user's (or, with `module` DPS_SYNCHRONISATION, the sync's) write.
    async fn nomis(
        &self,
        method: Method,
        path: &str,
        module: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .peers
            .nomis
            .request(method, path)
            .header("x-audit-module", module);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let v = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        (resp.status, v)
    }

    /// Creates a NOMIS non-association as a NOMIS user; returns its type sequence.
    async fn nomis_create(&self, a: &str, b: &str, effective: &str) -> i32 {
        let (s, v) = self
            .nomis(
                Method::POST,
                "/non-associations",
                "OIDSENAD",
                Some(json!({"offenderNo": a, "nsOffenderNo": b, "reason": "VIC", "recipReason": "PER",
                    "type": "WING", "effectiveDate": effective, "comment": "from NOMIS"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["typeSequence"].as_i64().unwrap() as i32
    }

    async fn nomis_update(
        &self,
        a: &str,
        b: &str,
        seq: i32,
        effective: &str,
        expiry: Option<&str>,
        module: &str,
    ) {
        let (s, v) = self
            .nomis(
                Method::PUT,
                &format!("/non-associations/offender/{a}/ns-offender/{b}/sequence/{seq}"),
                module,
                Some(json!({"reason": "VIC", "recipReason": "PER", "type": "CELL",
                    "effectiveDate": effective, "expiryDate": expiry, "comment": "changed in NOMIS"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn nomis_records(&self, a: &str, b: &str) -> Vec<Value> {
        let (_, v) = self
            .nomis(
                Method::GET,
                &format!("/non-associations/offender/{a}/ns-offender/{b}/all"),
                "OIDSENAD",
                None,
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Events in `db`'s outbox after position `after`, as consumers receive them.
    async fn events(&self, db: &Db, after: usize) -> Vec<InboundEvent> {
        let rows = db
            .conn()
            .query_all_raw(Statement::from_string(
                db.backend(),
                "SELECT event_type, body FROM outbox ORDER BY seq",
            ))
            .await
            .unwrap();
        rows.iter()
            .skip(after)
            .map(|r| InboundEvent {
                event_type: r.try_get("", "event_type").unwrap(),
                body: serde_json::from_str(&r.try_get::<String>("", "body").unwrap()).unwrap(),
            })
            .collect()
    }

    async fn outbox_len(&self, db: &Db) -> usize {
        count(db, "SELECT COUNT(*) AS n FROM outbox").await as usize
    }

    async fn dps_rows(&self) -> i64 {
        count(&self.na_db, "SELECT COUNT(*) AS n FROM non_association").await
    }

    async fn mappings(&self) -> i64 {
        count(
            &self.mapping_db,
            "SELECT COUNT(*) AS n FROM non_association_mapping",
        )
        .await
    }

    async fn mapping_by_id(&self, id: i64) -> Option<Value> {
        self.peers
            .mapping
            .find_json(format!("/mapping/non-associations/non-association-id/{id}"))
            .await
            .unwrap()
    }

    fn nomis_handler(&self) -> FromNomisHandler {
        FromNomisHandler::new(self.peers.clone(), FeatureSwitches::default())
    }

    fn dps_handler(&self) -> ToNomisHandler {
        ToNomisHandler::new(self.peers.clone())
    }

    /// A NOMIS pair set: (A,B) one closed, an older open and a latest open; (A,C) one open.
    async fn seed_nomis(&self) {
        let s1 = self.nomis_create(A, B, "2020-01-01").await;
        self.nomis_update(A, B, s1, "2020-01-01", Some("2021-01-01"), "OIDSENAD")
            .await;
        self.nomis_create(A, B, "2021-06-01").await;
        // NOMIS refuses a second open one while one is open both ways, so close and reopen
        // the second around creating the third, as NOMIS data ends up in practice.
        self.nomis_update(A, B, 2, "2021-06-01", Some("2021-12-01"), "OIDSENAD")
            .await;
        let (s, v) = self
            .nomis(
                Method::POST,
                "/non-associations",
                "OIDSENAD",
                Some(json!({"offenderNo": B, "nsOffenderNo": A, "reason": "PER", "recipReason": "VIC",
                    "type": "LAND", "effectiveDate": "2022-03-01"})),
            )
            .await;
        if s != StatusCode::CREATED {
            panic!("{v}");
        }
        // Re-opened afterwards (NOMIS allows it on update): two open records in the pair.
        self.nomis_update(A, B, 2, "2021-06-01", Some("2099-01-01"), "OIDSENAD")
            .await;
        self.nomis_create(A, C, "2023-01-01").await;
    }
}

async fn migrate_gives_one_record_and_mapping_per_selected_record(backend: TestBackend) {
    let e = Estate::new(backend).await;
    e.seed_nomis().await;
    let before = e.outbox_len(&e.na_db).await;
    let domain = sync_adapter::migration_domain(
        e.peers.nomis.clone(),
        e.peers.dps.clone(),
        e.peers.mapping.clone(),
    );
    let filter = MigrationFilter::default();
    assert_eq!(domain.estimate(&filter).await.unwrap(), 2);
    let keys = domain.next_keys(&filter, None, 10).await.unwrap();
    assert_eq!(keys, vec![format!("{A}/{B}"), format!("{A}/{C}")]);
    assert!(
        domain
            .next_keys(&filter, Some(&keys[1]), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // (A,B): the closed one and the latest open one (seq 3); seq 2 (open, older) is ignored.
    let out = domain.migrate("2026-01-01T10:00:00.000", &keys).await;
    assert_eq!(out, vec![Ok(2), Ok(1)]);
    assert_eq!(e.dps_rows().await, 3);
    assert_eq!(e.mappings().await, 3);
    for seq in [1, 3] {
        let m: Value = e
            .peers
            .mapping
            .get_json(format!("/mapping/non-associations/first-offender-no/{A}/second-offender-no/{B}/type-sequence/{seq}"))
            .await
            .unwrap();
        assert_eq!(m["label"], "2026-01-01T10:00:00.000");
        assert_eq!(m["mappingType"], "MIGRATED");
    }
    assert_eq!(
        e.outbox_len(&e.na_db).await,
        before,
        "migration raises no DPS events"
    );

    // The same migration handed the keys again (after a crash) counts the same, writes nothing.
    let again = domain.migrate("2026-01-01T10:00:00.000", &keys).await;
    assert_eq!(again, vec![Ok(2), Ok(1)]);
    // A second migration migrates nothing new.
    let second = domain.migrate("2026-01-02T10:00:00.000", &keys).await;
    assert_eq!(second, vec![Ok(0), Ok(0)]);
    assert_eq!((e.dps_rows().await, e.mappings().await), (3, 3));

    // A malformed key is a permanent failure of that key only.
    let bad = domain
        .migrate(
            "2026-01-03T10:00:00.000",
            &["nonsense".to_string(), keys[1].clone()],
        )
        .await;
    assert!(matches!(bad[0], Err(EntityError::Permanent(_))), "{bad:?}");
    assert_eq!(bad[1], Ok(0));
}

async fn a_lost_dps_response_recovers_without_a_duplicate(backend: TestBackend) {
    let e = Estate::new(backend).await;
    e.seed_nomis().await;
    // An earlier attempt wrote DPS but its response (and so the mappings) never came.
    let records: Vec<Value> = e.nomis_records(A, C).await;
    assert_eq!(records.len(), 1);
    let (s, _) = (
        e.peers
            .dps
            .request(Method::POST, "/migrate")
            .json(&json!({"prisonerNumber": A, "nonAssociations": [{
                "typeSequence": records[0]["typeSequence"], "reasonCode": "VIC", "typeCode": "WING",
                "effectiveDate": "2023-01-01",
                "prisonerNonAssociation": {"prisonerNumber": C, "reasonCode": "PER"}}]}))
            .send()
            .await
            .unwrap()
            .status,
        (),
    );
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(e.dps_rows().await, 1);
    let domain = sync_adapter::migration_domain(
        e.peers.nomis.clone(),
        e.peers.dps.clone(),
        e.peers.mapping.clone(),
    );
    let out = domain
        .migrate("m1", &[format!("{A}/{B}"), format!("{A}/{C}")])
        .await;
    assert_eq!(out, vec![Ok(2), Ok(1)]);
    assert_eq!((e.dps_rows().await, e.mappings().await), (3, 3));
}

async fn a_mapping_clash_is_a_reported_permanent_failure(backend: TestBackend) {
    let e = Estate::new(backend).await;
    let seq = e.nomis_create(A, D, "2023-01-01").await;
    // The NOMIS record is already mapped to some other DPS id.
    let resp = e
        .peers
        .mapping
        .request(Method::POST, "/mapping/non-associations")
        .json(
            &json!({"nonAssociationId": 999, "firstOffenderNo": A, "secondOffenderNo": D,
            "nomisTypeSequence": seq, "mappingType": "NOMIS_CREATED"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::CREATED);
    // Another record of the pair is new, so the pair has work to do; the DPS record it writes
    // is fine, but DPS also holds a record for the mapped one under another id.
    let domain = sync_adapter::migration_domain(
        e.peers.nomis.clone(),
        e.peers.dps.clone(),
        e.peers.mapping.clone(),
    );
    // Mapped: skipped, counted 0 (its label is not this migration's).
    assert_eq!(
        domain.migrate("m1", &[format!("{A}/{D}")]).await,
        vec![Ok(0)]
    );
    assert_eq!(e.dps_rows().await, 0);

    // A DPS record migrated from another NOMIS record already holds DPS id 1; a mapping
    // naming DPS id 1 for a different NOMIS record is then a clash.
    let seq2 = e.nomis_create(B, C, "2023-01-01").await;
    let resp = e
        .peers
        .mapping
        .request(Method::POST, "/mapping/non-associations")
        .json(
            &json!({"nonAssociationId": 1, "firstOffenderNo": A, "secondOffenderNo": B,
            "nomisTypeSequence": 7, "mappingType": "NOMIS_CREATED"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::CREATED);
    let out = domain.migrate("m1", &[format!("{B}/{C}")]).await;
    match &out[0] {
        Err(EntityError::Permanent(m)) => assert!(m.contains("duplicate mapping"), "{m}"),
        other => panic!("expected a permanent duplicate, got {other:?} (seq {seq2})"),
    }
}

async fn nomis_changes_reach_dps_once_and_echoes_are_skipped(backend: TestBackend) {
    let e = Estate::new(backend).await;
    let h = e.nomis_handler();
    let mark = e.outbox_len(&e.nomis_db).await;
    let seq = e.nomis_create(A, D, "2024-01-01").await;
    let events = e.events(&e.nomis_db, mark).await;
    assert_eq!(events.len(), 2, "one event per direction");
    let mut outcomes = Vec::new();
    for ev in &events {
        outcomes.push(h.apply(ev).await.unwrap());
    }
    let id = outcomes
        .iter()
        .find_map(|o| match o {
            from_nomis::Handled::Created(id) => Some(*id),
            _ => None,
        })
        .expect("created");
    assert!(outcomes.contains(&from_nomis::Handled::NotPrimary));
    assert_eq!((e.dps_rows().await, e.mappings().await), (1, 1));
    let m = e.mapping_by_id(id).await.unwrap();
    assert_eq!(m["mappingType"], "NOMIS_CREATED");
    assert_eq!(m["nomisTypeSequence"], seq);

    // Delivered twice: nothing changes (an update to the same state raises no DPS event).
    let dps_events = e.outbox_len(&e.na_db).await;
    for ev in &events {
        h.apply(ev).await.unwrap();
    }
    assert_eq!((e.dps_rows().await, e.mappings().await), (1, 1));
    assert_eq!(e.outbox_len(&e.na_db).await, dps_events);

    // A NOMIS user's update reaches DPS.
    let mark = e.outbox_len(&e.nomis_db).await;
    e.nomis_update(A, D, seq, "2024-01-01", Some("2024-02-01"), "OIDSENAD")
        .await;
    for ev in e.events(&e.nomis_db, mark).await {
        h.apply(&ev).await.unwrap();
    }
    let dps: Value = e
        .peers
        .dps
        .get_json(format!("/sync/id/{A}/{D}/{seq}"))
        .await
        .unwrap();
    assert_eq!(dps["restrictionType"], "CELL");
    assert_eq!(dps["isClosed"], true);

    // The echo of a DPS → NOMIS write is skipped.
    let mark = e.outbox_len(&e.nomis_db).await;
    e.nomis_update(A, D, seq, "2024-01-01", None, "DPS_SYNCHRONISATION")
        .await;
    for ev in e.events(&e.nomis_db, mark).await {
        let o = h.apply(&ev).await.unwrap();
        assert!(
            matches!(
                o,
                from_nomis::Handled::Echo | from_nomis::Handled::NotPrimary
            ),
            "{o:?}"
        );
    }
    let dps: Value = e
        .peers
        .dps
        .get_json(format!("/sync/id/{A}/{D}/{seq}"))
        .await
        .unwrap();
    assert_eq!(dps["isClosed"], true, "the echo was not applied");

    // Delete, twice.
    let mark = e.outbox_len(&e.nomis_db).await;
    let (s, _) = e
        .nomis(
            Method::DELETE,
            &format!("/non-associations/offender/{A}/ns-offender/{D}/sequence/{seq}"),
            "OIDSENAD",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let deletes = e.events(&e.nomis_db, mark).await;
    let mut got = Vec::new();
    for ev in &deletes {
        got.push(h.apply(ev).await.unwrap());
    }
    assert!(got.contains(&from_nomis::Handled::Deleted(id)), "{got:?}");
    assert_eq!((e.dps_rows().await, e.mappings().await), (0, 0));
    for ev in &deletes {
        let o = h.apply(ev).await.unwrap();
        assert!(
            matches!(
                o,
                from_nomis::Handled::NothingToDo | from_nomis::Handled::NotPrimary
            ),
            "{o:?}"
        );
    }

    // A switched-off event type is dropped.
    let off = FromNomisHandler::new(
        e.peers.clone(),
        FeatureSwitches::default().with(from_nomis::UPSERTED, false),
    );
    let mark = e.outbox_len(&e.nomis_db).await;
    e.nomis_create(B, C, "2024-01-01").await;
    for ev in e.events(&e.nomis_db, mark).await {
        assert_eq!(
            off.apply(&ev).await.unwrap(),
            from_nomis::Handled::SwitchedOff
        );
    }
    assert_eq!(e.dps_rows().await, 0);
}

async fn an_update_before_its_create_is_retried(backend: TestBackend) {
    let e = Estate::new(backend).await;
    let h = e.nomis_handler();
    let mark = e.outbox_len(&e.nomis_db).await;
    let seq = e.nomis_create(A, B, "2024-01-01").await;
    let creates = e.events(&e.nomis_db, mark).await;
    let mark = e.outbox_len(&e.nomis_db).await;
    e.nomis_update(A, B, seq, "2024-01-01", None, "OIDSENAD")
        .await;
    let updates = e.events(&e.nomis_db, mark).await;
    let primary = |evs: &[InboundEvent]| {
        evs.iter()
            .find(|ev| ev.body["offenderIdDisplay"] == A)
            .cloned()
            .unwrap()
    };
    match h.apply(&primary(&updates)).await {
        Err(tandem_bus::HandlerError::Retry(m)) => assert!(m.contains("before its create"), "{m}"),
        other => panic!("expected Retry, got {other:?}"),
    }
    assert_eq!(e.dps_rows().await, 0);
    assert!(matches!(
        h.apply(&primary(&creates)).await.unwrap(),
        from_nomis::Handled::Created(_)
    ));
    assert!(matches!(
        h.apply(&primary(&updates)).await.unwrap(),
        from_nomis::Handled::Updated(_)
    ));
    assert_eq!((e.dps_rows().await, e.mappings().await), (1, 1));
}

async fn dps_changes_reach_nomis_once_and_echoes_are_skipped(backend: TestBackend) {
    let e = Estate::new(backend).await;
    let h = e.dps_handler();
    let mark = e.outbox_len(&e.na_db).await;
    let id = create_in_dps(&e, A, B).await;
    let created = e.events(&e.na_db, mark).await;
    assert_eq!(created.len(), 1);
    let seq = match h.apply(&created[0]).await.unwrap() {
        to_nomis::Handled::Created(seq) => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        h.apply(&created[0]).await.unwrap(),
        to_nomis::Handled::AlreadyMapped
    );
    let records = e.nomis_records(A, B).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["auditModuleName"], "DPS_SYNCHRONISATION");
    assert_eq!(records[0]["type"], "CELL");
    let m = e.mapping_by_id(id).await.unwrap();
    assert_eq!(m["mappingType"], "DPS_CREATED");

    // Lost mapping write: the redelivery adopts the NOMIS record instead of creating another.
    let resp = e
        .peers
        .mapping
        .request(
            Method::DELETE,
            format!("/mapping/non-associations/non-association-id/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.apply(&created[0]).await.unwrap(),
        to_nomis::Handled::Adopted(seq)
    );
    assert_eq!(e.nomis_records(A, B).await.len(), 1);

    // Amend and close.
    let mark = e.outbox_len(&e.na_db).await;
    dps_as_user(
        &e,
        Method::PATCH,
        &format!("/non-associations/{id}"),
        json!({"restrictionType": "LANDING"}),
    )
    .await;
    dps_as_user(
        &e,
        Method::PUT,
        &format!("/non-associations/{id}/close"),
        json!({"closedReason": "done"}),
    )
    .await;
    let changes = e.events(&e.na_db, mark).await;
    assert_eq!(changes.len(), 2);
    for ev in &changes {
        for _ in 0..2 {
            assert_eq!(h.apply(ev).await.unwrap(), to_nomis::Handled::Updated(seq));
        }
    }
    let records = e.nomis_records(A, B).await;
    assert_eq!(records[0]["type"], "LAND");
    assert!(records[0]["expiryDate"].is_string(), "{}", records[0]);

    // An event that came from NOMIS is an echo.
    let mut echo = changes[0].clone();
    echo.body["additionalInformation"]["source"] = json!("NOMIS");
    assert_eq!(h.apply(&echo).await.unwrap(), to_nomis::Handled::Echo);

    // Delete, twice.
    let mark = e.outbox_len(&e.na_db).await;
    dps_as_user(
        &e,
        Method::POST,
        &format!("/non-associations/{id}/delete"),
        json!({"deletionReason": "mistake", "staffUserNameRequestingDeletion": "ME"}),
    )
    .await;
    let deleted = e.events(&e.na_db, mark).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        h.apply(&deleted[0]).await.unwrap(),
        to_nomis::Handled::Deleted(seq)
    );
    assert_eq!(
        h.apply(&deleted[0]).await.unwrap(),
        to_nomis::Handled::NothingToDo
    );
    assert!(e.nomis_records(A, B).await.is_empty());
    assert_eq!(e.mappings().await, 0);

    // An amend whose create has not been synchronised is retried.
    let other = create_in_dps(&e, C, D).await;
    let amend = InboundEvent {
        event_type: "non-associations.amended".into(),
        body: json!({"eventType": "non-associations.amended", "additionalInformation": {"id": other, "source": "DPS"}}),
    };
    assert!(matches!(
        h.apply(&amend).await,
        Err(tandem_bus::HandlerError::Retry(_))
    ));
}

async fn create_in_dps(e: &Estate, a: &str, b: &str) -> i64 {
    dps_as_user(
        e,
        Method::POST,
        "/non-associations",
        crate::support::create_body(a, b),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// A DPS user's request, through the estate's router with a user token.
async fn dps_as_user(e: &Estate, method: Method, path: &str, body: Value) -> Value {
    let user = PeerClient::in_process(
        "non-associations-api",
        e.app.clone(),
        Arc::new(FixedToken(crate::support::token(
            &[
                tandem_auth::roles::READ_NON_ASSOCIATIONS,
                tandem_auth::roles::WRITE_NON_ASSOCIATIONS,
                tandem_auth::roles::DELETE_NON_ASSOCIATIONS,
            ],
            Some(crate::support::USER),
            true,
        ))),
    );
    let resp = user.request(method, path).json(&body).send().await.unwrap();
    assert!(
        resp.status.is_success(),
        "{} {:?}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
}

struct FixedToken(String);

#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn bearer(&self) -> Result<String, tandem_platform::client::PeerError> {
        Ok(self.0.clone())
    }
}

async fn merge_and_booking_move_fixtures_replayed(backend: TestBackend) {
    let e = Estate::new(backend).await;
    // DPS: A7777BB–C1111DD open, A7777BB–B8888CC open, B8888CC–C1111DD open.
    let migrate = |first: &str, second: &str, seq: i32, effective: &str| {
        json!({"prisonerNumber": first, "nonAssociations": [{
            "typeSequence": seq, "reasonCode": "VIC", "typeCode": "WING", "effectiveDate": effective,
            "prisonerNonAssociation": {"prisonerNumber": second, "reasonCode": "PER"}}]})
    };
    for body in [
        migrate("A7777BB", "C1111DD", 2, "2020-01-01"),
        migrate("A7777BB", "B8888CC", 1, "2020-01-01"),
        migrate("B8888CC", "C1111DD", 1, "2020-01-01"),
    ] {
        let r = e.peers.dps_migrate(&body).await.unwrap();
        for x in r {
            let (lo, hi) = tandem_non_associations::nomis_codes::ordered_pair(
                &x.first_prisoner_number,
                &x.second_prisoner_number,
            );
            let m = json!({"nonAssociationId": x.id, "firstOffenderNo": lo, "secondOffenderNo": hi,
                "nomisTypeSequence": x.type_sequence, "mappingType": "MIGRATED", "label": "m"});
            let resp = e
                .peers
                .mapping
                .request(Method::POST, "/mapping/non-associations")
                .json(&m)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status, StatusCode::CREATED);
        }
    }
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/fixtures/domains/hmpps-non-associations-api/messages/prison-offender-events.prisoner.merged.json"
    ))
    .unwrap();
    let merged = InboundEvent::parse(&raw, None).unwrap();
    let dps = DpsPrisonerEventsHandler::new(Store::new(e.na_db.clone()));
    let events_before = e.outbox_len(&e.na_db).await;
    let mut results = dps.apply(&merged).await.unwrap();
    results.sort_by_key(|r| r.0);
    use tandem_non_associations::store::MergeResult::*;
    assert_eq!(results, vec![(1, Closed), (2, Deleted)]);
    assert!(dps.apply(&merged).await.unwrap().is_empty(), "idempotent");
    assert_eq!(
        e.outbox_len(&e.na_db).await,
        events_before,
        "no domain events"
    );
    assert_eq!(e.dps_rows().await, 2);

    let maps = MappingMergesHandler::new(e.peers.clone());
    maps.apply(&merged).await.unwrap();
    maps.apply(&merged).await.unwrap();
    let m1 = e.mapping_by_id(1).await.unwrap();
    assert_eq!(
        (
            m1["firstOffenderNo"].as_str(),
            m1["secondOffenderNo"].as_str()
        ),
        (Some("B8888CC"), Some("C1111DD"))
    );

    // Booking move: records of A7777BB created while the booking was his move to B8888CC.
    let r = e
        .peers
        .dps_migrate(&migrate("A7777BB", "D4000DD", 1, "2023-07-14"))
        .await
        .unwrap();
    let moved_id = r[0].id;
    let early = e
        .peers
        .dps_migrate(&migrate("A7777BB", A, 1, "2023-07-01"))
        .await
        .unwrap()[0]
        .id;
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/fixtures/domains/hmpps-non-associations-api/messages/prison-offender-events.prisoner.booking.moved.json"
    ))
    .unwrap();
    let moved = InboundEvent::parse(&raw, None).unwrap();
    let results = dps.apply(&moved).await.unwrap();
    assert_eq!(results, vec![(moved_id, Merged)]);
    assert!(dps.apply(&moved).await.unwrap().is_empty());
    let store = Store::new(e.na_db.clone());
    let na = store.get(moved_id).await.unwrap().unwrap();
    assert_eq!(na.first_prisoner_number, "B8888CC");
    let na = store.get(early).await.unwrap().unwrap();
    assert_eq!(
        na.first_prisoner_number, "A7777BB",
        "created before the booking started"
    );
}

tandem_platform::both_backends!(
    migrate_gives_one_record_and_mapping_per_selected_record,
    a_lost_dps_response_recovers_without_a_duplicate,
    a_mapping_clash_is_a_reported_permanent_failure,
    nomis_changes_reach_dps_once_and_echoes_are_skipped,
    an_update_before_its_create_is_retried,
    dps_changes_reach_nomis_once_and_echoes_are_skipped,
    merge_and_booking_move_fixtures_replayed,
);
