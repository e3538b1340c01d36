//! The `Audit` gRPC service: who accessed what, and is the chain intact.

use tonic::{Request, Response, Status};

use super::store::{self, AuditQuery};
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Role, Target},
    proto::{self, audit_server},
    time::to_rfc3339,
    AppError, AppResult,
};

pub struct AuditService {
    pub guard: Guard,
}

fn to_proto(r: super::AuditRecord) -> proto::AuditRecord {
    let role = crate::access::Role::parse(&r.entry.role).map(|r| r.to_proto() as i32).unwrap_or(0);
    let data = crate::access::DataClass::parse(&r.entry.data_class).map(|d| d.to_proto() as i32).unwrap_or(0);
    let action = crate::access::Action::parse(&r.entry.action).map(|a| a.to_proto() as i32).unwrap_or(0);
    proto::AuditRecord {
        seq: r.seq,
        at: to_rfc3339(r.at),
        subject: r.entry.subject,
        role,
        ght_id: r.entry.ght_id,
        establishment_id: r.entry.establishment_id,
        rpc: r.entry.rpc,
        data_class: data,
        action,
        target_ids: r.entry.target_ids,
        decision: r.entry.decision,
        reason: r.entry.reason,
        request_id: r.entry.request_id,
        prev_hash: r.prev_hash,
        hash: r.hash,
        target_ght_id: r.entry.target_ght_id,
    }
}

impl AuditService {
    async fn query(&self, ctx: CallCtx, req: proto::QueryAuditRequest) -> AppResult<proto::QueryAuditResponse> {
        let ght = ctx.principal.ght_id.clone();
        let target = Target { ght_id: ght.clone(), ids: vec![req.target_id.clone()], ..Default::default() };
        self.guard.authorize(&ctx, DataClass::Audit, Action::Read, &target).await?;
        let q = AuditQuery {
            ght_id: ght,
            target_id: (!req.target_id.trim().is_empty()).then(|| req.target_id.trim().to_string()),
            subject: (!req.subject.trim().is_empty()).then(|| req.subject.trim().to_string()),
            break_glass_only: req.break_glass_only,
            after_seq: req.after_seq,
            limit: if req.limit == 0 { 100 } else { i64::from(req.limit.min(1000)) },
        };
        // Reading the audit trail is itself recorded: it names patients.
        self.guard.record(&ctx, DataClass::Audit, Action::Read, &target, "ALLOW", "dim-physician-audit-read").await?;
        let records = store::query(&self.guard.audit().db, &q).await?;
        Ok(proto::QueryAuditResponse { records: records.into_iter().map(to_proto).collect() })
    }

    async fn verify(&self, ctx: CallCtx) -> AppResult<proto::VerifyAuditResponse> {
        let target = match ctx.principal.role {
            Role::Admin => Target::default(),
            _ => Target { ght_id: ctx.principal.ght_id.clone(), ..Default::default() },
        };
        self.guard.authorize(&ctx, DataClass::Audit, Action::Admin, &target).await?;
        let v = store::verify(&self.guard.audit().db).await?;
        if !v.ok {
            tracing::error!(seq = v.first_bad_seq, detail = %v.detail, "audit chain verification FAILED");
        }
        Ok(proto::VerifyAuditResponse {
            ok: v.ok,
            records: v.records,
            first_bad_seq: v.first_bad_seq,
            detail: v.detail,
        })
    }
}

#[tonic::async_trait]
impl audit_server::Audit for AuditService {
    async fn query_audit(
        &self,
        req: Request<proto::QueryAuditRequest>,
    ) -> Result<Response<proto::QueryAuditResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.query(ctx, req.into_inner()).await?))
    }

    async fn verify_audit(
        &self,
        req: Request<proto::VerifyAuditRequest>,
    ) -> Result<Response<proto::VerifyAuditResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.verify(ctx).await.map_err(|e: AppError| e)?))
    }
}
