//! The generic store with kinds other than non-associations, as later domains will use it:
//! a string DPS id against a bigint NOMIS id (incidents), a non-unique NOMIS key
//! (adjudication hearings), and several kinds created together in one transaction.

use chrono::NaiveDateTime;
use sea_orm_migration::{MigrationTrait, SchemaManager};
use serde::{Deserialize, Serialize};
use tandem_mapping::schema::CreateMappingTable;
use tandem_mapping::{
    ColType, Created, Field, Mapping, MappingError, MappingKind, MappingType, PageRequest, Record,
};
use tandem_platform::db::testing::TestBackend;

use crate::support::App;

static INCIDENT: MappingKind = MappingKind {
    name: "Incident",
    table: "test_incident_mapping",
    dps_key: &[Field::new(
        "incident_id",
        "dpsIncidentId",
        ColType::Text(64),
    )],
    nomis_key: &[Field::new(
        "nomis_incident_id",
        "nomisIncidentId",
        ColType::BigInt,
    )],
    nomis_key_unique: true,
    label_len: 20,
};

static HEARING: MappingKind = MappingKind {
    name: "Hearing",
    table: "test_hearing_mapping",
    dps_key: &[Field::new(
        "dps_hearing_id",
        "dpsHearingId",
        ColType::Text(30),
    )],
    nomis_key: &[Field::new(
        "nomis_hearing_id",
        "nomisHearingId",
        ColType::BigInt,
    )],
    nomis_key_unique: false,
    label_len: 20,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncidentMapping {
    dps_incident_id: String,
    nomis_incident_id: i64,
    label: Option<String>,
    mapping_type: MappingType,
    when_created: Option<NaiveDateTime>,
}

impl Mapping for IncidentMapping {
    const KIND: &'static MappingKind = &INCIDENT;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HearingMapping {
    dps_hearing_id: String,
    nomis_hearing_id: i64,
    label: Option<String>,
    mapping_type: MappingType,
    when_created: Option<NaiveDateTime>,
}

impl Mapping for HearingMapping {
    const KIND: &'static MappingKind = &HEARING;
}

fn incident(dps: &str, nomis: i64, label: Option<&str>) -> IncidentMapping {
    IncidentMapping {
        dps_incident_id: dps.into(),
        nomis_incident_id: nomis,
        label: label.map(Into::into),
        mapping_type: if label.is_some() {
            MappingType::Migrated
        } else {
            MappingType::NomisCreated
        },
        when_created: None,
    }
}

fn hearing(dps: &str, nomis: i64) -> HearingMapping {
    HearingMapping {
        dps_hearing_id: dps.into(),
        nomis_hearing_id: nomis,
        label: None,
        mapping_type: MappingType::DpsCreated,
        when_created: None,
    }
}

async fn app_with_test_kinds(backend: TestBackend) -> App {
    let app = App::new(backend).await;
    for (name, kind) in [("t1_incident", &INCIDENT), ("t2_hearing", &HEARING)] {
        let m = CreateMappingTable { name, kind };
        m.up(&SchemaManager::new(app.store.db().conn()))
            .await
            .expect("create test table");
    }
    app
}

async fn another_kind_gets_the_same_semantics(backend: TestBackend) {
    let app = app_with_test_kinds(backend).await;
    let store = &app.store;
    let uuid = "0190a3c2-7b8e-7c3a-9f1e-2d4b6a8c0e12";
    assert!(matches!(
        store
            .create(&incident(uuid, 10_000_001, Some("mig-1")))
            .await
            .unwrap(),
        Created::Inserted { .. }
    ));
    assert_eq!(
        store
            .create(&incident(uuid, 10_000_001, None))
            .await
            .unwrap(),
        Created::AlreadyExisted
    );
    let got: IncidentMapping = store
        .require_by_nomis(&[10_000_001i64.into()])
        .await
        .unwrap();
    assert_eq!(got.dps_incident_id, uuid);
    assert_eq!(got.label.as_deref(), Some("mig-1"));
    assert!(got.when_created.is_some());

    match store.create(&incident("other", 10_000_001, None)).await {
        Err(MappingError::Duplicate(d)) => {
            assert_eq!(d.kind, "Incident");
            assert_eq!(d.existing.unwrap()["dpsIncidentId"], uuid);
            assert_eq!(d.duplicate["dpsIncidentId"], "other");
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let e = store
        .create(&incident(&"x".repeat(65), 1, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, MappingError::Invalid(m) if m.starts_with("dpsIncidentId")),
        "{e:?}"
    );

    store
        .create(&incident("b", 2, Some("mig-1")))
        .await
        .unwrap();
    store
        .create(&incident("c", 3, Some("mig-2")))
        .await
        .unwrap();
    let page = store
        .page_by_migration::<IncidentMapping>("mig-1", &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!((page.total_elements, page.content.len()), (2, 1));
    let latest: IncidentMapping = store.latest_migrated().await.unwrap().unwrap();
    assert_eq!(latest.dps_incident_id, "c");

    assert!(store.delete_by_dps(&INCIDENT, &["b".into()]).await.unwrap());
    assert!(!store.delete_by_dps(&INCIDENT, &["b".into()]).await.unwrap());
    assert_eq!(store.delete_all(&INCIDENT, true).await.unwrap(), 2);
    assert_eq!(store.delete_all(&INCIDENT, false).await.unwrap(), 0);
}

async fn a_non_unique_nomis_key_never_clashes(backend: TestBackend) {
    let app = app_with_test_kinds(backend).await;
    let store = &app.store;
    store.create(&hearing("h1", 55)).await.unwrap();
    store.create(&hearing("h2", 55)).await.unwrap();
    let first: HearingMapping = store.require_by_nomis(&[55i64.into()]).await.unwrap();
    assert_eq!(first.dps_hearing_id, "h1");
    // The DPS id is still the primary key.
    assert!(matches!(
        store.create(&hearing("h1", 56)).await,
        Err(MappingError::Duplicate(_))
    ));
}

async fn an_aggregate_is_created_all_or_nothing(backend: TestBackend) {
    let app = app_with_test_kinds(backend).await;
    let store = &app.store;
    let aggregate = |inc: &str, nomis: i64, hearings: &[(&str, i64)]| -> Vec<Record> {
        let mut records = vec![Record::of(&incident(inc, nomis, Some("m"))).unwrap()];
        records.extend(
            hearings
                .iter()
                .map(|(d, n)| Record::of(&hearing(d, *n)).unwrap()),
        );
        records
    };
    let first = aggregate("i1", 1, &[("h1", 100), ("h2", 101)]);
    let created = store.create_all(&first).await.unwrap();
    assert!(
        created.len() == 3
            && created
                .iter()
                .all(|c| matches!(c, Created::Inserted { .. })),
        "{created:?}"
    );
    // Re-sending the whole aggregate changes nothing.
    assert_eq!(
        store.create_all(&first).await.unwrap(),
        [Created::AlreadyExisted; 3]
    );

    // A second aggregate whose last child clashes: nothing of it is stored.
    let clashing = aggregate("i2", 2, &[("h3", 102), ("h1", 999)]);
    match store.create_all(&clashing).await {
        Err(MappingError::Duplicate(d)) => {
            assert_eq!(d.kind, "Hearing");
            assert_eq!(d.existing.unwrap()["nomisHearingId"], 100);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert!(
        store
            .get_by_dps::<IncidentMapping>(&["i2".into()])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_by_dps::<HearingMapping>(&["h3".into()])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(clashing[0].kind().name, "Incident");
    assert_eq!(clashing[0].json()["nomisIncidentId"], 2);
}

tandem_platform::both_backends!(
    another_kind_gets_the_same_semantics,
    a_non_unique_nomis_key_never_clashes,
    an_aggregate_is_created_all_or_nothing,
);
