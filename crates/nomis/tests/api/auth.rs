use axum::http::{Method, StatusCode};
use serde_json::json;
use tandem_nomis::SYNC_ROLE;
use tandem_platform::{both_backends, db::testing::TestBackend};

use crate::support::{app, assert_error, token_with};

async fn every_endpoint_needs_the_sync_role(backend: TestBackend) {
    let app = app(backend).await;
    let no = app.prisoner("A", "B", "MDI").await;
    let paths = [
        (Method::GET, format!("/prisoners/{no}")),
        (Method::POST, "/prisoners".to_string()),
        (Method::POST, "/prisoners/search".to_string()),
        (Method::POST, "/non-associations".to_string()),
        (Method::GET, "/non-associations/ids".to_string()),
        (Method::GET, "/non-associations/ids/keyset".to_string()),
        (
            Method::GET,
            format!("/non-associations/offender/{no}/ns-offender/A1234BC"),
        ),
        (
            Method::GET,
            format!("/non-associations/offender/{no}/ns-offender/A1234BC/all"),
        ),
        (
            Method::DELETE,
            format!("/non-associations/offender/{no}/ns-offender/A1234BC/sequence/1"),
        ),
        (
            Method::PUT,
            format!("/non-associations/offender/{no}/ns-offender/A1234BC/sequence/1/close"),
        ),
    ];
    let wrong_role = token_with(&["ROLE_NOMIS_NON_ASSOCIATIONS"], &["read", "write"]);
    for (method, path) in &paths {
        let (status, body) = app
            .call(method.clone(), path)
            .token(None)
            .body(json!({}))
            .send()
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, &[]);
        let (status, body) = app
            .call(method.clone(), path)
            .token(Some("not-a-jwt".into()))
            .body(json!({}))
            .send()
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, &[]);
        let (status, body) = app
            .call(method.clone(), path)
            .token(Some(wrong_role.clone()))
            .body(json!({}))
            .send()
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, &[SYNC_ROLE]);
    }
}

async fn writes_need_the_write_scope(backend: TestBackend) {
    let app = app(backend).await;
    let no = app.prisoner("A", "B", "MDI").await;
    let read_only = token_with(&[SYNC_ROLE], &["read"]);
    let (status, _) = app
        .get(&format!("/prisoners/{no}"))
        .token(Some(read_only.clone()))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/prisoners",
            json!({"firstName": "A", "lastName": "B", "dateOfBirth": "1990-01-01", "prisonId": "MDI"}),
        )
        .token(Some(read_only))
        .send()
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, &["write"]);
    assert_eq!(app.count("offenders").await, 1);
}

both_backends!(
    every_endpoint_needs_the_sync_role,
    writes_need_the_write_scope
);
