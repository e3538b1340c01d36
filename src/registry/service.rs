//! The `Registry` gRPC service.

use tonic::{Request, Response, Status};

use super::store;
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Role, Target},
    db::Db,
    idempotency,
    proto::{self, registry_server},
    time::{now_micros, to_rfc3339},
    validate, AppError, AppResult,
};

pub struct RegistryService {
    pub db: Db,
    pub guard: Guard,
}

impl RegistryService {
    /// The target of a GHT-level call, with the GHT's region (for ARS rules).
    async fn ght_target(&self, ght_id: &str) -> AppResult<Target> {
        let region = store::ght_region(&self.db, ght_id).await?;
        if region.is_none() {
            return Err(AppError::not_found(format!("GHT {ght_id}")));
        }
        Ok(Target::ght(ght_id).with_region(region).with_ids([ght_id.to_string()]))
    }

    async fn create_ght(&self, ctx: CallCtx, req: proto::CreateGhtRequest) -> AppResult<proto::Ght> {
        let ght = proto::Ght {
            id: validate::finess("id", &req.id)?,
            name: validate::text("name", &req.name, 200)?,
            ars_region: validate::token("ars_region", &req.ars_region, 20)?,
            created_at: String::new(),
        };
        let target = Target::ght(&ght.id).with_region(Some(ght.ars_region.clone())).with_ids([ght.id.clone()]);
        self.guard.authorize(&ctx, DataClass::Registry, Action::Write, &target).await?;
        let mut tx = self.db.begin_write().await?;
        if let Some(prev) = idempotency::replay(&mut *tx, &ctx, &req.request_id).await? {
            return Ok(prev);
        }
        let at = now_micros();
        store::insert_ght(&mut tx, &ght, at).await?;
        let answer = proto::Ght { created_at: to_rfc3339(at), ..ght };
        idempotency::remember(&mut *tx, &ctx, &req.request_id, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn get_ght(&self, ctx: CallCtx, req: proto::GetGhtRequest) -> AppResult<proto::Ght> {
        let id = validate::finess("id", &req.id)?;
        let target = self.ght_target(&id).await?;
        self.guard.authorize(&ctx, DataClass::Registry, Action::Read, &target).await?;
        store::get_ght(&self.db, &id).await?.ok_or_else(|| AppError::not_found(format!("GHT {id}")))
    }

    async fn list_ghts(&self, ctx: CallCtx, req: proto::ListGhtsRequest) -> AppResult<proto::ListGhtsResponse> {
        let region = req.ars_region.trim();
        let all = store::list_ghts(&self.db, (!region.is_empty()).then_some(region)).await?;
        // The same policy as every call, applied per row: a caller lists what it may read.
        let ghts = all
            .into_iter()
            .filter(|g| {
                let t = Target::ght(&g.id).with_region(Some(g.ars_region.clone()));
                self.guard.permits(&ctx.principal, DataClass::Registry, Action::Read, &t)
            })
            .collect();
        Ok(proto::ListGhtsResponse { ghts })
    }

    async fn create_establishment(
        &self,
        ctx: CallCtx,
        req: proto::CreateEstablishmentRequest,
    ) -> AppResult<proto::Establishment> {
        let id = validate::finess("id", &req.id)?;
        let ght_id = validate::finess("ght_id", &req.ght_id)?;
        let name = validate::text("name", &req.name, 200)?;
        let role: proto::EstablishmentRole = validate::enum_value("role", req.role)?;
        let category: proto::EstablishmentCategory = validate::enum_value("category", req.category)?;
        let target = self.ght_target(&ght_id).await?.with_ids([id.clone()]);
        self.guard.authorize(&ctx, DataClass::Registry, Action::Write, &target).await?;
        let e = proto::Establishment {
            id,
            ght_id,
            name,
            role: role as i32,
            category: category as i32,
            created_at: String::new(),
        };
        let mut tx = self.db.begin_write().await?;
        if let Some(prev) = idempotency::replay(&mut *tx, &ctx, &req.request_id).await? {
            return Ok(prev);
        }
        let at = now_micros();
        store::insert_establishment(&mut tx, &e, at).await?;
        let answer = proto::Establishment { created_at: to_rfc3339(at), ..e };
        idempotency::remember(&mut *tx, &ctx, &req.request_id, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn get_establishment(
        &self,
        ctx: CallCtx,
        req: proto::GetEstablishmentRequest,
    ) -> AppResult<proto::Establishment> {
        let id = validate::finess("id", &req.id)?;
        let e = store::get_establishment(&self.db, &id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("establishment {id}")))?;
        let target = self.ght_target(&e.ght_id).await?;
        self.guard.authorize(&ctx, DataClass::Registry, Action::Read, &target).await?;
        Ok(e)
    }

    async fn list_establishments(
        &self,
        ctx: CallCtx,
        req: proto::ListEstablishmentsRequest,
    ) -> AppResult<proto::ListEstablishmentsResponse> {
        let ght_id = validate::finess("ght_id", &req.ght_id)?;
        let target = self.ght_target(&ght_id).await?;
        self.guard.authorize(&ctx, DataClass::Registry, Action::Read, &target).await?;
        Ok(proto::ListEstablishmentsResponse { establishments: store::list_establishments(&self.db, &ght_id).await? })
    }

    async fn create_account(
        &self,
        ctx: CallCtx,
        req: proto::CreatePartyAccountRequest,
    ) -> AppResult<proto::PartyAccount> {
        let a = req.account.ok_or_else(|| AppError::invalid("account", "is required"))?;
        let subject = validate::token("account.subject", &a.subject, 200)?;
        let role = proto::PartyRole::try_from(a.role)
            .ok()
            .and_then(Role::from_proto)
            .ok_or_else(|| AppError::invalid("account.role", "must be a known party role (not UNSPECIFIED)"))?;
        let display_name = validate::text("account.display_name", &a.display_name, 200)?;
        let ght_id = validate::opt_text("account.ght_id", &a.ght_id, 9)?;
        let establishment_id = validate::opt_text("account.establishment_id", &a.establishment_id, 9)?;
        let ars_region = validate::opt_text("account.ars_region", &a.ars_region, 20)?;
        if role.needs_ght() && ght_id.is_none() {
            return Err(AppError::invalid("account.ght_id", format!("is required for role {role}")));
        }
        if role.needs_establishment() && establishment_id.is_none() {
            return Err(AppError::invalid("account.establishment_id", format!("is required for role {role}")));
        }
        if role.needs_region() && ars_region.is_none() {
            return Err(AppError::invalid("account.ars_region", format!("is required for role {role}")));
        }
        let mut target = match &ght_id {
            Some(g) => self.ght_target(g).await?,
            None => Target { region: ars_region.clone(), ..Default::default() },
        };
        target.ids.push(subject.clone());
        if let (Some(est), Some(g)) = (&establishment_id, &ght_id) {
            if store::establishment_ght(&self.db, est).await?.as_deref() != Some(g.as_str()) {
                return Err(AppError::invalid("account.establishment_id", "is not an establishment of account.ght_id"));
            }
        }
        // Accounts without a GHT (ARS, ADMIN) are the operator's business.
        let action = if ght_id.is_some() { Action::Write } else { Action::Admin };
        self.guard.authorize(&ctx, DataClass::Registry, action, &target).await?;
        let account = proto::PartyAccount {
            subject,
            role: role.to_proto() as i32,
            ght_id: ght_id.unwrap_or_default(),
            establishment_id: establishment_id.unwrap_or_default(),
            ars_region: ars_region.unwrap_or_default(),
            display_name,
            created_at: String::new(),
        };
        let mut tx = self.db.begin_write().await?;
        let at = now_micros();
        store::insert_account(&mut tx, &account, role.as_str(), at).await?;
        tx.commit().await?;
        Ok(proto::PartyAccount { created_at: to_rfc3339(at), ..account })
    }

    async fn list_accounts(
        &self,
        ctx: CallCtx,
        req: proto::ListPartyAccountsRequest,
    ) -> AppResult<proto::ListPartyAccountsResponse> {
        let ght_id = validate::finess("ght_id", &req.ght_id)?;
        let target = self.ght_target(&ght_id).await?;
        self.guard.authorize(&ctx, DataClass::Registry, Action::Read, &target).await?;
        Ok(proto::ListPartyAccountsResponse { accounts: store::list_accounts(&self.db, &ght_id).await? })
    }
}

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn create_ght(&self, req: Request<proto::CreateGhtRequest>) -> Result<Response<proto::Ght>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.create_ght(ctx, req.into_inner()).await?))
    }
    async fn get_ght(&self, req: Request<proto::GetGhtRequest>) -> Result<Response<proto::Ght>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.get_ght(ctx, req.into_inner()).await?))
    }
    async fn list_ghts(
        &self,
        req: Request<proto::ListGhtsRequest>,
    ) -> Result<Response<proto::ListGhtsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_ghts(ctx, req.into_inner()).await?))
    }
    async fn create_establishment(
        &self,
        req: Request<proto::CreateEstablishmentRequest>,
    ) -> Result<Response<proto::Establishment>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.create_establishment(ctx, req.into_inner()).await?))
    }
    async fn get_establishment(
        &self,
        req: Request<proto::GetEstablishmentRequest>,
    ) -> Result<Response<proto::Establishment>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.get_establishment(ctx, req.into_inner()).await?))
    }
    async fn list_establishments(
        &self,
        req: Request<proto::ListEstablishmentsRequest>,
    ) -> Result<Response<proto::ListEstablishmentsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_establishments(ctx, req.into_inner()).await?))
    }
    async fn create_party_account(
        &self,
        req: Request<proto::CreatePartyAccountRequest>,
    ) -> Result<Response<proto::PartyAccount>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.create_account(ctx, req.into_inner()).await?))
    }
    async fn list_party_accounts(
        &self,
        req: Request<proto::ListPartyAccountsRequest>,
    ) -> Result<Response<proto::ListPartyAccountsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_accounts(ctx, req.into_inner()).await?))
    }
    async fn who_am_i(&self, req: Request<proto::WhoAmIRequest>) -> Result<Response<proto::WhoAmIResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        let p = ctx.principal;
        Ok(Response::new(proto::WhoAmIResponse {
            subject: p.subject,
            role: p.role.to_proto() as i32,
            ght_id: p.ght_id.unwrap_or_default(),
            establishment_id: p.establishment_id.unwrap_or_default(),
            ars_region: p.region.unwrap_or_default(),
            expires_at: to_rfc3339(p.expires_at * 1_000_000),
        }))
    }
}
