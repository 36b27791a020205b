//! The HTTP API: the DPS endpoints of reference §3.3 and the NOMIS sync/migrate contract
//! of seed 002. Handlers parse and authorise, then call the [`Store`]; the rules live
//! there.

mod dps;
pub mod dto;
mod nomis;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;
use tandem_auth::{role, roles};
use tandem_platform::ApiError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::validation_code;
use crate::prisoners::PrisonerDirectory;
use crate::store::Store;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub prisoners: Arc<dyn PrisonerDirectory>,
}

role!(pub Read, [roles::READ_NON_ASSOCIATIONS]);
role!(pub Write, [roles::WRITE_NON_ASSOCIATIONS], write);
role!(pub Reopen, [roles::REOPEN_NON_ASSOCIATIONS], write);
role!(pub Delete, [roles::DELETE_NON_ASSOCIATIONS], write);
role!(pub NomisSync, [roles::NON_ASSOCIATIONS_SYNC]);
role!(pub NomisMigrate, [roles::NON_ASSOCIATIONS_MIGRATE]);
role!(pub ReadOrSync, [roles::READ_NON_ASSOCIATIONS, roles::NON_ASSOCIATIONS_SYNC]);
role!(pub NomisSyncOrMigrate, [roles::NON_ASSOCIATIONS_SYNC, roles::NON_ASSOCIATIONS_MIGRATE]);

/// A JSON body (the shared extractor), with this service's validation `errorCode` (102).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        tandem_platform::http::Json::<T>::from_request(req, state)
            .await
            .map(|j| Body(j.0))
            .map_err(validation_code)
    }
}

/// Path parameters (the shared extractor), with errorCode 102 on a bad one.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        tandem_platform::http::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(validation_code)
    }
}

/// Query parameters (the shared extractor), with errorCode 102 on a bad one.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        tandem_platform::http::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(validation_code)
    }
}

/// The routes, relative to the service prefix.
pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(dps::create, dps::list))
        .routes(routes!(dps::get_by_id_or_prisoner, dps::patch))
        .routes(routes!(dps::between))
        .routes(routes!(dps::involving))
        .routes(routes!(dps::close))
        .routes(routes!(dps::reopen))
        .routes(routes!(dps::delete))
        .routes(routes!(dps::prisoner_view))
        .routes(routes!(dps::constants))
        .routes(routes!(nomis::legacy))
        .routes(routes!(nomis::sync))
        .routes(routes!(nomis::migrate))
        .routes(routes!(nomis::migrate_batch))
        .routes(routes!(nomis::delete_synced))
        .routes(routes!(nomis::find_by_nomis_key))
        .with_state(state)
}
