//! Patient movements (IHE PAM / HL7 v2 ADT semantics): publication, encounters,
//! the resumable subscription of the territorial DIM, patient journeys and aggregates.

use crate::server::{Hub, HubRouter};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, _hub: &Hub) -> HubRouter {
    router
}
