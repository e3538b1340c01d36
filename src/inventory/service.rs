//! The `Inventory` and `Territory` gRPC services.
//!
//! **Push is one message, not a client stream.** An inventory is a snapshot whose
//! meaning is the whole document: it is validated as a whole (duplicate ids,
//! interfaces naming other applications, one target per domain), hashed as a whole
//! for idempotency, and stored in one transaction. A stream would have to be
//! buffered entirely on the hub before any of that, holding memory per open stream,
//! and a broken stream would leave nothing to resume. Sizes allow it: a
//! 2,000-application inventory is about 0.3 MB encoded, the hub's per-message limit
//! (`--max-message-bytes`, 16 MiB) holds tens of thousands of applications, and a
//! larger message is refused by tonic before it is read (OUT_OF_RANGE, naming the
//! size and the limit). One message also keeps the RPC usable from grpcurl.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tonic::{Request, Response, Status};

use super::{
    canonical,
    consolidate::{self, Party},
    diff, store,
};
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Target},
    db::Db,
    idempotency,
    proto::{self, inventory_server, territory_server},
    registry, validate, AppError, AppResult,
};

/// Attempts at allocating a version number before answering ABORTED.
const PUSH_ATTEMPTS: usize = 5;

pub struct InventoryService {
    pub db: Db,
    pub guard: Guard,
}

pub struct TerritoryService {
    pub db: Db,
    pub guard: Guard,
    /// Per GHT, the application rows of its parties' latest versions, keyed by those
    /// (establishment, version) pairs. Versions are immutable, so a cached entry is valid
    /// exactly while the heads read from the database are the same: a push through any
    /// replica changes a head and the next call reloads. Reading the rows is most of a
    /// consolidation's cost (thousands of rows); the heads are one small query.
    pub head_apps: Arc<Mutex<HashMap<String, HeadApps>>>,
}

/// The application rows of a set of inventory heads.
pub struct HeadApps {
    heads: Vec<(String, i64)>,
    apps: Arc<Vec<consolidate::AppRow>>,
}

/// GHTs whose rows are kept; a regional hub serves ~15.
const HEAD_APPS_GHTS: usize = 64;

/// An establishment named by a request (empty = the caller's own) and its GHT.
struct EstablishmentRef {
    id: String,
    ght_id: String,
    target: Target,
}

async fn establishment_ref(db: &Db, ctx: &CallCtx, requested: &str) -> AppResult<EstablishmentRef> {
    let id = if requested.trim().is_empty() {
        ctx.principal.establishment_id.clone().ok_or_else(|| {
            AppError::invalid("establishment_id", "is required (the caller's token names no establishment)")
        })?
    } else {
        validate::finess("establishment_id", requested)?
    };
    let ght_id = registry::store::establishment_ght(db, &id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("establishment {id}")))?;
    let region = registry::store::ght_region(db, &ght_id).await?;
    let target = Target::establishment(&ght_id, &id).with_region(region).with_ids([id.clone()]);
    Ok(EstablishmentRef { id, ght_id, target })
}

/// A GHT named by a request (empty = the caller's own) and its access target.
async fn ght_ref(db: &Db, ctx: &CallCtx, requested: &str) -> AppResult<(String, Target)> {
    let id = if requested.trim().is_empty() {
        ctx.principal
            .ght_id
            .clone()
            .ok_or_else(|| AppError::invalid("ght_id", "is required (the caller's token names no GHT)"))?
    } else {
        validate::finess("ght_id", requested)?
    };
    let region = registry::store::ght_region(db, &id).await?.ok_or_else(|| AppError::not_found(format!("GHT {id}")))?;
    let target = Target::ght(&id).with_region(Some(region)).with_ids([id.clone()]);
    Ok((id, target))
}

fn version_number(field: &str, v: u32) -> AppResult<i64> {
    if v == 0 {
        return Err(AppError::invalid(field, "must be a version number (1 or more)"));
    }
    Ok(i64::from(v))
}

impl InventoryService {
    async fn push(&self, ctx: CallCtx, req: proto::PushInventoryRequest) -> AppResult<proto::PushInventoryResponse> {
        let document = req.document.ok_or_else(|| AppError::invalid("document", "is required"))?;
        let request_id = validate::opt_text("request_id", &req.request_id, 200)?.unwrap_or_default();
        // The whole document is validated before anything is looked up or stored.
        let canonical = canonical::canonicalize(document)?;
        let est = establishment_ref(&self.db, &ctx, &req.establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::InventoryItem, Action::Write, &est.target).await?;
        let new = store::NewVersion {
            establishment_id: &est.id,
            ght_id: &est.ght_id,
            author: &ctx.principal.subject,
            canonical: &canonical,
        };
        for _ in 0..PUSH_ATTEMPTS {
            // Thousands of application rows: milliseconds of SQLite work.
            let pushed = crate::write_tx!(@long self.db, |tx| {
                if let Some(prev) = idempotency::replay(tx, &ctx, &request_id).await? {
                    return Ok(prev);
                }
                let answer = match store::push_version(tx, &new).await? {
                    store::PushOutcome::Created(v) => proto::PushInventoryResponse { version: Some(v), created: true },
                    store::PushOutcome::Unchanged(v) => {
                        proto::PushInventoryResponse { version: Some(v), created: false }
                    }
                };
                idempotency::remember(tx, &ctx, &request_id, &answer).await?;
                Ok(answer)
            });
            match pushed {
                // The number was taken by a concurrent push, or the database aborted
                // this transaction to let another through (serialization, deadlock);
                // the transaction has rolled back.
                Err(AppError::Aborted(_)) => {
                    tracing::debug!(establishment = %est.id, "version number taken by a concurrent push; retrying");
                }
                other => return other,
            }
        }
        Err(AppError::Aborted(format!(
            "concurrent pushes for establishment {} kept taking the next version number; retry",
            est.id
        )))
    }

    async fn get(&self, ctx: CallCtx, req: proto::GetInventoryRequest) -> AppResult<proto::InventoryVersion> {
        let version = if req.version == 0 { None } else { Some(i64::from(req.version)) };
        let est = establishment_ref(&self.db, &ctx, &req.establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::InventoryItem, Action::Read, &est.target).await?;
        let (info, document) = store::get_version(&self.db, &est.id, version).await?.ok_or_else(|| match version {
            Some(n) => AppError::not_found(format!("version {n} of establishment {}'s inventory", est.id)),
            None => AppError::not_found(format!("an inventory of establishment {}", est.id)),
        })?;
        Ok(proto::InventoryVersion { info: Some(info), document: Some(document) })
    }

    async fn list(
        &self,
        ctx: CallCtx,
        req: proto::ListInventoryVersionsRequest,
    ) -> AppResult<proto::ListInventoryVersionsResponse> {
        let est = establishment_ref(&self.db, &ctx, &req.establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::InventoryItem, Action::Read, &est.target).await?;
        Ok(proto::ListInventoryVersionsResponse { versions: store::list_versions(&self.db, &est.id).await? })
    }

    async fn diff(&self, ctx: CallCtx, req: proto::DiffInventoryVersionsRequest) -> AppResult<proto::InventoryDiff> {
        let from = version_number("from_version", req.from_version)?;
        let to = version_number("to_version", req.to_version)?;
        let est = establishment_ref(&self.db, &ctx, &req.establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::InventoryItem, Action::Read, &est.target).await?;
        let load = |n: i64| {
            let est_id = est.id.clone();
            async move {
                store::get_version(&self.db, &est_id, Some(n))
                    .await?
                    .map(|(_, d)| d)
                    .ok_or_else(|| AppError::not_found(format!("version {n} of establishment {est_id}'s inventory")))
            }
        };
        let (old, new) = (load(from).await?, load(to).await?);
        let changes = diff::diff(&old, &new);
        let count = |k: proto::InventoryChangeKind| changes.iter().filter(|c| c.kind == k as i32).count() as u32;
        Ok(proto::InventoryDiff {
            establishment_id: est.id,
            from_version: req.from_version,
            to_version: req.to_version,
            added: count(proto::InventoryChangeKind::Added),
            removed: count(proto::InventoryChangeKind::Removed),
            changed: count(proto::InventoryChangeKind::Changed),
            changes,
        })
    }
}

impl TerritoryService {
    /// Every establishment of the GHT with its latest inventory version.
    async fn parties(&self, ght_id: &str) -> AppResult<Vec<Party>> {
        let mut heads: std::collections::HashMap<String, consolidate::Head> =
            store::heads(&self.db, ght_id).await?.into_iter().collect();
        Ok(registry::store::list_establishments(&self.db, ght_id)
            .await?
            .into_iter()
            .map(|e| Party { role: e.role(), head: heads.remove(&e.id), id: e.id, name: e.name })
            .collect())
    }

    /// The application rows of the parties' heads, from the cache when the heads are
    /// those it was filled with.
    async fn head_applications(&self, ght_id: &str, parties: &[Party]) -> AppResult<Arc<Vec<consolidate::AppRow>>> {
        let mut heads: Vec<(String, i64)> =
            parties.iter().filter_map(|p| p.head.as_ref().map(|h| (p.id.clone(), h.version))).collect();
        heads.sort();
        if let Some(hit) = self.head_apps.lock().map_err(|_| AppError::internal("cache poisoned"))?.get(ght_id) {
            if hit.heads == heads {
                return Ok(hit.apps.clone());
            }
        }
        // A push committed between the heads query and this one makes these rows newer
        // than `heads`; cached under the older heads, they are never served again, as
        // heads only move forward.
        let apps = Arc::new(store::head_applications(&self.db, ght_id).await?);
        let mut cache = self.head_apps.lock().map_err(|_| AppError::internal("cache poisoned"))?;
        if cache.len() >= HEAD_APPS_GHTS && !cache.contains_key(ght_id) {
            cache.clear();
        }
        cache.insert(ght_id.to_string(), HeadApps { heads, apps: apps.clone() });
        Ok(apps)
    }

    async fn consolidated(
        &self,
        ctx: CallCtx,
        req: proto::ConsolidatedInventoryRequest,
    ) -> AppResult<proto::ConsolidatedInventoryResponse> {
        let (ght_id, target) = ght_ref(&self.db, &ctx, &req.ght_id).await?;
        // Item-level data of every party: the same class as reading each inventory.
        self.guard.authorize(&ctx, DataClass::InventoryItem, Action::Read, &target).await?;
        let parties = self.parties(&ght_id).await?;
        let apps = self.head_applications(&ght_id, &parties).await?;
        Ok(consolidate::consolidated(&ght_id, &parties, &apps, self.guard.now()))
    }

    async fn convergence_map(
        &self,
        ctx: CallCtx,
        req: proto::ConvergenceMapRequest,
    ) -> AppResult<proto::ConvergenceMapResponse> {
        let (ght_id, target) = ght_ref(&self.db, &ctx, &req.ght_id).await?;
        self.guard.authorize(&ctx, DataClass::InventoryAggregate, Action::Read, &target).await?;
        let parties = self.parties(&ght_id).await?;
        let history = store::history(&self.db, &ght_id).await?;
        Ok(consolidate::convergence_map(&ght_id, &parties, &history, self.guard.now()))
    }
}

#[tonic::async_trait]
impl inventory_server::Inventory for InventoryService {
    async fn push_inventory(
        &self,
        req: Request<proto::PushInventoryRequest>,
    ) -> Result<Response<proto::PushInventoryResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.push(ctx, req.into_inner()).await?))
    }
    async fn get_inventory(
        &self,
        req: Request<proto::GetInventoryRequest>,
    ) -> Result<Response<proto::InventoryVersion>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.get(ctx, req.into_inner()).await?))
    }
    async fn list_versions(
        &self,
        req: Request<proto::ListInventoryVersionsRequest>,
    ) -> Result<Response<proto::ListInventoryVersionsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list(ctx, req.into_inner()).await?))
    }
    async fn diff_versions(
        &self,
        req: Request<proto::DiffInventoryVersionsRequest>,
    ) -> Result<Response<proto::InventoryDiff>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.diff(ctx, req.into_inner()).await?))
    }
}

#[tonic::async_trait]
impl territory_server::Territory for TerritoryService {
    async fn consolidated_inventory(
        &self,
        req: Request<proto::ConsolidatedInventoryRequest>,
    ) -> Result<Response<proto::ConsolidatedInventoryResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.consolidated(ctx, req.into_inner()).await?))
    }
    async fn convergence_map(
        &self,
        req: Request<proto::ConvergenceMapRequest>,
    ) -> Result<Response<proto::ConvergenceMapResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.convergence_map(ctx, req.into_inner()).await?))
    }
}
