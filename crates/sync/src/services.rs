//! The two services that host the sync machinery: `prisoner-from-nomis` (migrations and
//! NOMIS → DPS listeners) and `prisoner-to-nomis` (DPS → NOMIS listeners).

use std::sync::Arc;

use tandem_bus::{EventBus, QueueHealth, admin_routes};
use tandem_platform::{
    config::services,
    db::Db,
    http::{DbHealth, Service},
};
use utoipa_axum::router::OpenApiRouter;

use crate::listeners::Listener;
use crate::migration::{MigrationEngine, api};

fn queue_names(listeners: &[Listener]) -> Vec<String> {
    listeners
        .iter()
        .map(|l| l.subscription.queue.clone())
        .collect()
}

/// `/prisoner-from-nomis`: the migration API over `engine`, and queue admin for `listeners`.
pub fn from_nomis_service(
    db: Db,
    engine: Arc<MigrationEngine>,
    bus: Arc<dyn EventBus>,
    listeners: &[Listener],
) -> Service {
    let queues = queue_names(listeners);
    let router = api::routes(engine).merge(admin_routes(bus.clone(), queues.clone()));
    Service::new(
        services::PRISONER_FROM_NOMIS,
        "Prisoner from NOMIS: migration and NOMIS to DPS sync",
        router,
    )
    .with_health(Arc::new(DbHealth(db)))
    .with_health(Arc::new(QueueHealth::new(bus, queues)))
}

/// `/prisoner-to-nomis`: queue admin for the DPS → NOMIS `listeners`.
pub fn to_nomis_service(bus: Arc<dyn EventBus>, listeners: &[Listener]) -> Service {
    let queues = queue_names(listeners);
    let router = OpenApiRouter::new().merge(admin_routes(bus.clone(), queues.clone()));
    Service::new(
        services::PRISONER_TO_NOMIS,
        "Prisoner to NOMIS: DPS to NOMIS updates",
        router,
    )
    .with_health(Arc::new(QueueHealth::new(bus, queues)))
}
