//! `NomisPrisonerDirectory` against a stand-in for `nomis-prisoner-api` that answers its
//! contract (`GET /prisoners/{offenderNo}`, `POST /prisoners/search`), called in-process
//! as the composed estate calls it.

use std::sync::Arc;

use axum::{Json, Router, extract::Path, http::StatusCode, routing::get, routing::post};
use serde_json::{Value, json};
use tandem_non_associations::{NomisPrisonerDirectory, PrisonerDirectory};
use tandem_platform::client::{LocalApp, PeerClient, PeerError, TokenSource};

struct StaticToken;

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn bearer(&self) -> Result<String, PeerError> {
        Ok("token".into())
    }
}

fn prisoner(number: &str) -> Option<Value> {
    let in_prison = number != "F1234FF";
    ["A1234AA", "F1234FF"].contains(&number).then(|| {
        json!({
            "offenderNo": number, "offenderId": 1, "bookingId": 2, "firstName": "JOHN",
            "lastName": "SMITH", "dateOfBirth": "1980-01-01",
            "prisonId": if in_prison { json!("MDI") } else { Value::Null },
            "prisonName": if in_prison { json!("Moorland") } else { Value::Null },
            "cellLocation": null, "active": in_prison, "auditModuleName": "X",
            "modifyDatetime": "2024-01-01T00:00:00"
        })
    })
}

fn fake_nomis() -> Router {
    let api = Router::new()
        .route(
            "/prisoners/{number}",
            get(|Path(n): Path<String>| async move {
                match prisoner(&n) {
                    Some(p) => (StatusCode::OK, Json(p)),
                    None => (StatusCode::NOT_FOUND, Json(json!({"status": 404, "userMessage": "nope", "developerMessage": "nope"}))),
                }
            }),
        )
        .route(
            "/prisoners/search",
            post(|Json(body): Json<Value>| async move {
                let found: Vec<Value> = body["prisonerNumbers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().and_then(prisoner))
                    .collect();
                Json(Value::Array(found))
            }),
        );
    Router::new().nest("/nomis-prisoner-api", api)
}

#[tokio::test]
async fn reads_the_nomis_prisoner_api() {
    let app = LocalApp::new();
    app.set(fake_nomis());
    let client = PeerClient::in_process("nomis-prisoner-api", app, Arc::new(StaticToken));
    let dir = NomisPrisonerDirectory::new(client);

    let p = dir.find("A1234AA").await.unwrap().unwrap();
    assert_eq!(p.prisoner_number, "A1234AA");
    assert_eq!(p.prison_id.as_deref(), Some("MDI"));
    assert_eq!(p.prison_name.as_deref(), Some("Moorland"));
    assert_eq!(dir.find("F1234FF").await.unwrap().unwrap().prison_id, None);
    assert!(dir.find("Z9999ZZ").await.unwrap().is_none());

    let many = dir
        .find_many(&["A1234AA".into(), "Z9999ZZ".into(), "F1234FF".into()])
        .await
        .unwrap();
    assert_eq!(many.keys().collect::<Vec<_>>(), ["A1234AA", "F1234FF"]);

    // Not yet started: a lookup failure, not a panic.
    let client =
        PeerClient::in_process("nomis-prisoner-api", LocalApp::new(), Arc::new(StaticToken));
    assert!(
        NomisPrisonerDirectory::new(client)
            .find("A1234AA")
            .await
            .is_err()
    );
}
