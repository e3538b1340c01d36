//! The `Access` gRPC service: the policy table, DIM staff designations, break-glass.

use tonic::{Request, Response, Status};

use super::{policy, store, Action, CallCtx, DataClass, Guard, Role, Target};
use crate::{
    proto::{self, access_server},
    time::{now_micros, opt_rfc3339, parse_rfc3339, to_rfc3339},
    validate, AppError, AppResult,
};

pub struct AccessService {
    pub guard: Guard,
}

fn designation_to_proto(d: store::DesignationRow) -> proto::Designation {
    proto::Designation {
        id: d.id,
        ght_id: d.ght_id,
        staff_subject: d.staff_subject,
        establishment_id: d.establishment_id.unwrap_or_default(),
        designated_by: d.designated_by,
        valid_from: to_rfc3339(d.valid_from),
        valid_until: opt_rfc3339(d.valid_until),
        revoked_at: opt_rfc3339(d.revoked_at),
        revoked_by: d.revoked_by.unwrap_or_default(),
        mission: d.mission,
    }
}

/// Longest break-glass grant, in minutes: emergency access is short by design.
pub const BREAK_GLASS_MAX_MINUTES: u32 = 240;

impl AccessService {
    fn db(&self) -> &crate::db::Db {
        &self.guard.audit().db
    }

    /// The caller's GHT, required for DIM acts.
    fn own_ght(ctx: &CallCtx) -> AppResult<String> {
        ctx.principal
            .ght_id
            .clone()
            .ok_or_else(|| AppError::denied("deny-by-default", "the caller's token names no GHT"))
    }

    async fn designate(&self, ctx: CallCtx, req: proto::DesignateDimStaffRequest) -> AppResult<proto::Designation> {
        let ght = Self::own_ght(&ctx)?;
        let staff = validate::token("staff_subject", &req.staff_subject, 200)?;
        let mission = validate::text("mission", &req.mission, 500)?;
        let establishment = validate::opt_text("establishment_id", &req.establishment_id, 9)?;
        let valid_until = match req.valid_until.trim() {
            "" => None,
            s => Some(parse_rfc3339("valid_until", s)?),
        };
        let now = now_micros();
        if valid_until.is_some_and(|u| u <= now) {
            return Err(AppError::invalid("valid_until", "must be in the future"));
        }
        let mut target = Target::ght(&ght).with_ids([staff.clone()]);
        target.establishment_id = establishment.clone();
        // Designating is the DIM physician's act over the nominative data of the GHT.
        self.guard.authorize(&ctx, DataClass::IdentityNominative, Action::Admin, &target).await?;
        if let Some(est) = &establishment {
            let est_ght = crate::registry::store::establishment_ght(self.db(), est).await?;
            if est_ght.as_deref() != Some(ght.as_str()) {
                return Err(AppError::invalid("establishment_id", "is not an establishment of the caller's GHT"));
            }
        }
        let row = store::DesignationRow {
            id: uuid::Uuid::new_v4().to_string(),
            ght_id: ght,
            staff_subject: staff,
            establishment_id: establishment,
            designated_by: ctx.principal.subject.clone(),
            mission,
            valid_from: now,
            valid_until,
            revoked_at: None,
            revoked_by: None,
        };
        store::insert_designation(self.db(), &row).await?;
        Ok(designation_to_proto(row))
    }

    async fn revoke(&self, ctx: CallCtx, req: proto::RevokeDesignationRequest) -> AppResult<proto::Designation> {
        let id = validate::token("id", &req.id, 64)?;
        let d = store::get_designation(self.db(), &id).await?;
        let target = Target::ght(&d.ght_id).with_ids([d.staff_subject.clone(), d.id.clone()]);
        self.guard.authorize(&ctx, DataClass::IdentityNominative, Action::Admin, &target).await?;
        let d = store::revoke_designation(self.db(), &id, &ctx.principal.subject).await?;
        Ok(designation_to_proto(d))
    }

    async fn list(
        &self,
        ctx: CallCtx,
        req: proto::ListDesignationsRequest,
    ) -> AppResult<proto::ListDesignationsResponse> {
        let ght = Self::own_ght(&ctx)?;
        let staff = match ctx.principal.role {
            Role::DimPhysician => None,
            Role::DimStaff => Some(ctx.principal.subject.clone()),
            _ => {
                return Err(AppError::denied(
                    "deny-by-default",
                    "designations are listed by the DIM physician, or by the staff member designated",
                ))
            }
        };
        let rows = store::list_designations(self.db(), &ght, staff.as_deref(), req.include_inactive).await?;
        Ok(proto::ListDesignationsResponse { designations: rows.into_iter().map(designation_to_proto).collect() })
    }

    async fn break_glass(&self, ctx: CallCtx, req: proto::BreakGlassRequest) -> AppResult<proto::BreakGlassGrant> {
        let reason = validate::text("reason", &req.reason, 1000)?;
        if reason.chars().count() < 10 {
            return Err(AppError::invalid("reason", "must explain the emergency (at least 10 characters)"));
        }
        let minutes = match req.duration_minutes {
            0 => 60,
            m if m > BREAK_GLASS_MAX_MINUTES => {
                return Err(AppError::invalid("duration_minutes", format!("at most {BREAK_GLASS_MAX_MINUTES}")))
            }
            m => m,
        };
        if ctx.principal.role != Role::DimPhysician {
            let t = Target::default();
            self.guard
                .record(
                    &ctx,
                    DataClass::IdentityNominative,
                    Action::Admin,
                    &t,
                    "DENY",
                    "break-glass: only the DIM physician may break the glass",
                )
                .await?;
            return Err(AppError::denied("break-glass", "only the DIM physician may break the glass"));
        }
        let ght = Self::own_ght(&ctx)?;
        let patient = validate::opt_text("patient_ref", &req.patient_ref, 200)?;
        let now = now_micros();
        let row = store::BreakGlassRow {
            id: uuid::Uuid::new_v4().to_string(),
            subject: ctx.principal.subject.clone(),
            ght_id: ght.clone(),
            patient_ref: patient.clone(),
            reason: reason.clone(),
            granted_at: now,
            expires_at: now + i64::from(minutes) * 60_000_000,
        };
        store::insert_break_glass(self.db(), &row).await?;
        let mut target = Target::ght(&ght).with_ids([row.id.clone()]);
        if let Some(p) = &patient {
            target.ids.push(p.clone());
        }
        self.guard
            .record(
                &ctx,
                DataClass::IdentityNominative,
                Action::Admin,
                &target,
                "BREAK_GLASS",
                &format!("break-glass requested: {reason}"),
            )
            .await?;
        Ok(proto::BreakGlassGrant {
            id: row.id,
            subject: row.subject,
            ght_id: row.ght_id,
            patient_ref: row.patient_ref.unwrap_or_default(),
            reason: row.reason,
            granted_at: to_rfc3339(row.granted_at),
            expires_at: to_rfc3339(row.expires_at),
        })
    }
}

impl AccessService {
    async fn check(&self, ctx: CallCtx, req: proto::CheckAccessRequest) -> AppResult<proto::CheckAccessResponse> {
        let data = proto::DataClass::try_from(req.data_class)
            .ok()
            .and_then(data_from_proto)
            .ok_or_else(|| AppError::invalid("data_class", "must be a known data class (not UNSPECIFIED)"))?;
        let action = proto::AccessAction::try_from(req.action)
            .ok()
            .and_then(action_from_proto)
            .ok_or_else(|| AppError::invalid("action", "must be a known action (not UNSPECIFIED)"))?;
        let ght = validate::opt_text("ght_id", &req.ght_id, 9)?;
        let region = match &ght {
            Some(g) => crate::registry::store::ght_region(self.db(), g).await?,
            None => None,
        };
        let target = Target {
            ght_id: ght,
            establishment_id: validate::opt_text("establishment_id", &req.establishment_id, 9)?,
            region,
            patient_ref: validate::opt_text("patient_ref", &req.patient_ref, 200)?,
            ids: vec![],
        };
        let (d, break_glass) = self.guard.evaluate(&ctx.principal, data, action, &target).await?;
        Ok(proto::CheckAccessResponse { allowed: d.allowed, rule: d.rule.to_string(), reason: d.reason, break_glass })
    }
}

fn data_from_proto(d: proto::DataClass) -> Option<DataClass> {
    DataClass::ALL.into_iter().find(|x| x.to_proto() == d)
}

fn action_from_proto(a: proto::AccessAction) -> Option<Action> {
    Action::ALL.into_iter().find(|x| x.to_proto() == a)
}

pub fn policy_to_proto() -> proto::ShowPolicyResponse {
    proto::ShowPolicyResponse {
        rules: policy::POLICY
            .iter()
            .map(|r| proto::PolicyRule {
                name: r.name.to_string(),
                role: r.role.to_proto() as i32,
                data_class: r.data.to_proto() as i32,
                action: r.action.to_proto() as i32,
                scope: r.scope.as_str().to_string(),
                rationale: r.rationale.to_string(),
            })
            .collect(),
        small_cell_threshold: policy::SMALL_CELL_THRESHOLD as u32,
    }
}

#[tonic::async_trait]
impl access_server::Access for AccessService {
    async fn show_policy(
        &self,
        req: Request<proto::ShowPolicyRequest>,
    ) -> Result<Response<proto::ShowPolicyResponse>, Status> {
        CallCtx::from_request(&req)?;
        Ok(Response::new(policy_to_proto()))
    }

    async fn designate_dim_staff(
        &self,
        req: Request<proto::DesignateDimStaffRequest>,
    ) -> Result<Response<proto::Designation>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.designate(ctx, req.into_inner()).await?))
    }

    async fn revoke_designation(
        &self,
        req: Request<proto::RevokeDesignationRequest>,
    ) -> Result<Response<proto::Designation>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.revoke(ctx, req.into_inner()).await?))
    }

    async fn list_designations(
        &self,
        req: Request<proto::ListDesignationsRequest>,
    ) -> Result<Response<proto::ListDesignationsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list(ctx, req.into_inner()).await?))
    }

    async fn check_access(
        &self,
        req: Request<proto::CheckAccessRequest>,
    ) -> Result<Response<proto::CheckAccessResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.check(ctx, req.into_inner()).await?))
    }

    async fn request_break_glass(
        &self,
        req: Request<proto::BreakGlassRequest>,
    ) -> Result<Response<proto::BreakGlassGrant>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.break_glass(ctx, req.into_inner()).await?))
    }
}
