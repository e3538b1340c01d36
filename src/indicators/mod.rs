//! The 18 GHT IS-convergence indicators and the hôpital numérique prerequisites:
//! catalogue, declared and computed values, the DRAFT → SUBMITTED → VALIDATED/REJECTED
//! workflow, and the ARS region pull.
//!
//! - [`catalogue`]: the catalogues as data (`referentials/*.yaml`), checked on load;
//! - [`values`]: periods, typed values, workflow transitions, trend and target (pure);
//! - [`formulas`]: COMPUTED indicators as pure functions over `crate::facts`;
//! - [`scorecard`]: one GHT × period, assembled from the above (pure);
//! - [`store`]: the SQL; [`service`]: the `Indicators` gRPC service;
//! - [`region_log`]: the in-memory read model region pulls are served from;
//! - [`chart`]: a GHT's trajectory per domain as SVG; [`demo`]: `ghthub demo seed`.

pub mod catalogue;
pub mod chart;
pub mod demo;
pub mod formulas;
pub mod region_log;
pub mod scorecard;
pub mod service;
pub mod store;
pub mod values;

use std::sync::Arc;

use crate::{
    proto::indicators_server::IndicatorsServer,
    server::{Hub, HubRouter},
};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, hub: &Hub) -> HubRouter {
    let m = hub.config.max_message_bytes;
    let service = service::IndicatorsService {
        db: hub.db.clone(),
        guard: hub.guard.clone(),
        catalogues: Arc::new(service::Catalogues::new(hub.db.clone())),
        region_logs: Arc::default(),
        max_message_bytes: m,
    };
    router.add_service(IndicatorsServer::new(service).max_decoding_message_size(m).max_encoding_message_size(m))
}
