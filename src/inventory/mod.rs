//! Establishment IS inventories (versioned snapshots pushed by establishment DSIs) and
//! the GHT DSI's consolidated territorial view (SDSI-T, `Territory` service).
//!
//! - [`types`]: enum codes (`DPI`, `SHARED_GHT`…) and the product key that makes one
//!   product match across establishments.
//! - [`canonical`]: validation of a whole document and its canonical form and content
//!   hash (pure, fuzzable).
//! - [`document`]: the JSON/YAML file format of `ghthub inventory push`.
//! - [`diff`]: added/removed/changed items between two versions (pure).
//! - [`consolidate`]: the consolidated view and the convergence map (pure).
//! - [`service`], [`store`]: the gRPC services and their SQL.

pub mod canonical;
pub mod consolidate;
pub mod demo;
pub mod diff;
pub mod document;
pub mod service;
pub mod store;
pub mod types;

use crate::{
    proto::{inventory_server::InventoryServer, territory_server::TerritoryServer},
    server::{Hub, HubRouter},
};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, hub: &Hub) -> HubRouter {
    let m = hub.config.max_message_bytes;
    let inventory = service::InventoryService { db: hub.db.clone(), guard: hub.guard.clone() };
    let territory =
        service::TerritoryService { db: hub.db.clone(), guard: hub.guard.clone(), head_apps: Default::default() };
    router
        .add_service(InventoryServer::new(inventory).max_decoding_message_size(m).max_encoding_message_size(m))
        .add_service(TerritoryServer::new(territory).max_decoding_message_size(m).max_encoding_message_size(m))
}
