//! Patient identities (INS) per establishment and the territorial identity index
//! (links, merges, identity-vigilance alerts).
//!
//! - [`ins`], [`matching`], [`types`], [`changes`]: pure logic (INS key, normalised
//!   and phonetic names, scores, RNIV status rules, reversible index changes);
//! - [`store`]: SQL; [`index`]: the index operations inside a transaction;
//! - [`service`]: the `Identity` gRPC service; [`scope`]: multi-establishment reads,
//!   shared with the movement domain.

pub mod changes;
pub mod demo;
pub mod index;
pub mod ins;
pub mod matching;
pub mod scope;
pub mod service;
pub mod store;
pub mod types;

use crate::{
    proto::identity_server::IdentityServer,
    server::{Hub, HubRouter},
};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, hub: &Hub) -> HubRouter {
    let m = hub.config.max_message_bytes;
    let svc = service::IdentityService { db: hub.db.clone(), guard: hub.guard.clone() };
    router.add_service(IdentityServer::new(svc).max_decoding_message_size(m).max_encoding_message_size(m))
}
