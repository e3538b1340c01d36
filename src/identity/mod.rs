//! Patient identities (INS) per establishment and the territorial identity index
//! (links, merges, identity-vigilance alerts).

pub mod demo;
pub mod store;

use crate::server::{Hub, HubRouter};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, _hub: &Hub) -> HubRouter {
    router
}
