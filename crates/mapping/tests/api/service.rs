//! The conventions every service has: health and the OpenAPI document.

use axum::http::{Method, StatusCode};
use tandem_platform::db::testing::TestBackend;

use crate::support::App;

async fn health_reports_the_database(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, body) = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "UP");
    assert_eq!(body["components"]["db"]["status"], "UP");
}

async fn openapi_documents_every_endpoint(backend: TestBackend) {
    let app = App::new(backend).await;
    let (status, doc) = app.call(Method::GET, "/v3/api-docs", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    let base = "/mapping/non-associations";
    for (path, methods) in [
        (base.to_string(), &["post", "delete"][..]),
        (
            format!(
                "{base}/first-offender-no/{{firstOffenderNo}}/second-offender-no/{{secondOffenderNo}}/type-sequence/{{typeSequence}}"
            ),
            &["get"],
        ),
        (
            format!("{base}/non-association-id/{{nonAssociationId}}"),
            &["get", "delete"],
        ),
        (format!("{base}/migration-id/{{migrationId}}"), &["get"]),
        (format!("{base}/migrated/latest"), &["get"]),
        (
            format!("{base}/find/common-between/{{oldOffenderNo}}/and/{{newOffenderNo}}"),
            &["get"],
        ),
        (
            format!("{base}/merge/from/{{oldOffenderNo}}/to/{{newOffenderNo}}"),
            &["put"],
        ),
        (
            format!("{base}/update-list/from/{{oldOffenderNo}}/to/{{newOffenderNo}}"),
            &["put"],
        ),
        (
            format!("{base}/non-association-id/{{nonAssociationId}}/sequence/{{newSequence}}"),
            &["put"],
        ),
        (format!("{base}/pairs"), &["post"]),
        (format!("{base}/batch"), &["post"]),
    ] {
        let item = paths
            .get(&path)
            .unwrap_or_else(|| panic!("{path} not documented"));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path} not documented");
        }
    }
    assert_eq!(paths.len(), 11, "{:?}", paths.keys().collect::<Vec<_>>());
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in ["NonAssociationMapping", "MappingType", "ErrorResponse"] {
        assert!(
            schemas.contains_key(name),
            "schema {name} missing: {:?}",
            schemas.keys().collect::<Vec<_>>()
        );
    }
    // Operation ids stay unique when more kinds join the same document.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (13, 13), "{ids:?}");
    assert!(
        ids.iter().all(|id| id.contains("NonAssociation")),
        "{ids:?}"
    );
    let params = &paths[&format!("{base}/migration-id/{{migrationId}}")]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in ["migrationId", "page", "size", "sort"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
}

tandem_platform::both_backends!(
    health_reports_the_database,
    openapi_documents_every_endpoint
);
