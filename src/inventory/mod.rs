//! Establishment IS inventories (versioned snapshots pushed by establishment DSIs) and
//! the GHT DSI's consolidated territorial view (SDSI-T, `Territory` service).

pub mod demo;
pub mod store;

use crate::server::{Hub, HubRouter};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, _hub: &Hub) -> HubRouter {
    router
}
