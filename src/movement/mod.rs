//! Patient movements (IHE PAM / HL7 v2 ADT semantics): publication, encounters,
//! the resumable subscription of the territorial DIM, and patient journeys.
//!
//! - [`types`]: triggers, classes and the input validator; [`adt`]: the encounter
//!   state machine (pure);
//! - [`publish`]: batched publication in one transaction per batch;
//! - [`store`]: the feed, encounters, journeys;
//! - [`service`]: the `Movements` gRPC service; [`bus`]: wakes subscribers on commits.

pub mod adt;
pub mod bus;
pub mod publish;
pub mod service;
pub mod store;
pub mod types;

use crate::{
    proto::movements_server::MovementsServer,
    server::{Hub, HubRouter},
};

/// Adds this domain's gRPC services to the hub's router.
pub fn register(router: HubRouter, hub: &Hub) -> HubRouter {
    let m = hub.config.max_message_bytes;
    let postgres = hub.db.is_postgres().then_some(hub.config.database_url.as_str());
    let svc = service::MovementService {
        db: hub.db.clone(),
        guard: hub.guard.clone(),
        bus: bus::Bus::new(postgres),
        encounters: Default::default(),
        stopping: hub.stopping.clone(),
    };
    router.add_service(MovementsServer::new(svc).max_decoding_message_size(m).max_encoding_message_size(m))
}
