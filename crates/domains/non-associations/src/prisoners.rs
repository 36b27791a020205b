//! Where prisoners are looked up: who they are and which prison they are in.
//!
//! The real service asks prisoner-search; in tandem the NOMIS side answers
//! (`nomis-prisoner-api`: `GET /prisoners/{offenderNo}`, `POST /prisoners/search`). The
//! lookup sits behind [`PrisonerDirectory`] so tests (and a demo) can use
//! [`InMemoryPrisoners`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tandem_platform::client::{PeerClient, PeerError};
use tandem_platform::ids::PrisonerNumber;

/// What this service needs to know about a prisoner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prisoner {
    #[serde(rename = "offenderNo")]
    pub prisoner_number: String,
    pub first_name: String,
    pub last_name: String,
    /// `None` when the prisoner is not in a prison (released, or never received).
    #[serde(default)]
    pub prison_id: Option<String>,
    #[serde(default)]
    pub prison_name: Option<String>,
    #[serde(default)]
    pub cell_location: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("prisoner lookup failed: {0}")]
    Unavailable(String),
}

impl From<PeerError> for DirectoryError {
    fn from(e: PeerError) -> Self {
        DirectoryError::Unavailable(e.to_string())
    }
}

/// Finds prisoners by number.
#[async_trait::async_trait]
pub trait PrisonerDirectory: Send + Sync {
    /// One prisoner, or `None` when nobody has that number.
    async fn find(&self, number: &str) -> Result<Option<Prisoner>, DirectoryError>;

    /// Every prisoner of `numbers` that exists, keyed by number (unknown ones are absent).
    async fn find_many(
        &self,
        numbers: &[String],
    ) -> Result<BTreeMap<String, Prisoner>, DirectoryError>;
}

/// The NOMIS Prisoner API as the directory.
pub struct NomisPrisonerDirectory {
    client: PeerClient,
}

/// The most numbers sent in one `POST /prisoners/search`.
const SEARCH_BATCH: usize = 500;

impl NomisPrisonerDirectory {
    /// `client` must point at `nomis-prisoner-api` (see `config::services::NOMIS_PRISONER_API`).
    pub fn new(client: PeerClient) -> Self {
        Self { client }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest<'a> {
    prisoner_numbers: &'a [String],
}

#[async_trait::async_trait]
impl PrisonerDirectory for NomisPrisonerDirectory {
    async fn find(&self, number: &str) -> Result<Option<Prisoner>, DirectoryError> {
        // Only well-formed numbers reach here, so the path segment needs no escaping.
        if !PrisonerNumber::looks_like(number) {
            return Ok(None);
        }
        Ok(self
            .client
            .find_json(format!("/prisoners/{number}"))
            .await?)
    }

    async fn find_many(
        &self,
        numbers: &[String],
    ) -> Result<BTreeMap<String, Prisoner>, DirectoryError> {
        let mut found = BTreeMap::new();
        for chunk in numbers.chunks(SEARCH_BATCH) {
            let prisoners: Vec<Prisoner> = self
                .client
                .request(http::Method::POST, "/prisoners/search")
                .json(&SearchRequest {
                    prisoner_numbers: chunk,
                })
                .send()
                .await?
                .ok()?
                .json()?;
            for p in prisoners {
                found.insert(p.prisoner_number.clone(), p);
            }
        }
        Ok(found)
    }
}

/// A directory held in memory: for tests and demos.
#[derive(Clone, Default)]
pub struct InMemoryPrisoners {
    prisoners: Arc<RwLock<BTreeMap<String, Prisoner>>>,
}

impl InMemoryPrisoners {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a prisoner.
    pub fn insert(&self, prisoner: Prisoner) {
        if let Ok(mut map) = self.prisoners.write() {
            map.insert(prisoner.prisoner_number.clone(), prisoner);
        }
    }

    /// Adds a prisoner in `prison_id` (or in no prison) with made-up names.
    pub fn add(&self, number: &str, prison_id: Option<&str>) {
        self.insert(Prisoner {
            prisoner_number: number.to_string(),
            first_name: format!("FIRST-{number}"),
            last_name: format!("LAST-{number}"),
            prison_id: prison_id.map(str::to_string),
            prison_name: prison_id.map(|p| format!("{p} (HMP)")),
            cell_location: prison_id.map(|_| "1-1-001".to_string()),
        });
    }
}

#[async_trait::async_trait]
impl PrisonerDirectory for InMemoryPrisoners {
    async fn find(&self, number: &str) -> Result<Option<Prisoner>, DirectoryError> {
        let map = self
            .prisoners
            .read()
            .map_err(|_| DirectoryError::Unavailable("directory lock poisoned".into()))?;
        Ok(map.get(number).cloned())
    }

    async fn find_many(
        &self,
        numbers: &[String],
    ) -> Result<BTreeMap<String, Prisoner>, DirectoryError> {
        let map = self
            .prisoners
            .read()
            .map_err(|_| DirectoryError::Unavailable("directory lock poisoned".into()))?;
        Ok(numbers
            .iter()
            .filter_map(|n| map.get(n).map(|p| (n.clone(), p.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_nomis_prisoner_contract() {
        let body = serde_json::json!({
            "offenderNo": "A1234BC", "offenderId": 1, "bookingId": 2, "firstName": "JOHN",
            "lastName": "SMITH", "dateOfBirth": "1980-01-01", "prisonId": null, "prisonName": null,
            "cellLocation": null, "active": false, "auditModuleName": "X", "modifyDatetime": null
        });
        let p: Prisoner = serde_json::from_value(body).unwrap();
        assert_eq!(p.prisoner_number, "A1234BC");
        assert_eq!(p.prison_id, None);
        let body = serde_json::json!({
            "offenderNo": "A1234BC", "firstName": "JOHN", "lastName": "SMITH",
            "prisonId": "MDI", "prisonName": "Moorland", "cellLocation": "A-1-1"
        });
        let p: Prisoner = serde_json::from_value(body).unwrap();
        assert_eq!(p.prison_id.as_deref(), Some("MDI"));
    }
}
