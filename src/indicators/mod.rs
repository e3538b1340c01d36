//! The 18 GHT IS-convergence indicators and the hôpital numérique prerequisites:
//! catalogue, declared and computed values, the DRAFT → SUBMITTED → VALIDATED/REJECTED
//! workflow, and the ARS region pull.

pub mod demo;

use crate::server::{Hub, HubRouter};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, _hub: &Hub) -> HubRouter {
    router
}
