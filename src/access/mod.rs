//! Access control: the one policy ([`policy`]), the guard every service asks before
//! touching data, DIM staff designations and break-glass grants ([`store`]), and the
//! `Access` gRPC service ([`service`]).
//!
//! Services never check roles themselves: they name the data class, the action and
//! the target, and call [`Guard::authorize`]. The guard resolves the few facts the
//! table depends on, decides, and writes the audit record (every nominative access,
//! every write, every refusal) before the service touches the data.

pub mod policy;
pub mod service;
pub mod store;

pub use policy::{Action, DataClass, Principal, Role, Target};

use policy::{Decision, Facts};

use crate::{
    audit::{AuditEntry, AuditLog},
    db::Db,
    time::now_micros,
    AppError, AppResult,
};

/// Who is calling which RPC, taken from the request the auth layer let through.
#[derive(Debug, Clone)]
pub struct CallCtx {
    pub principal: Principal,
    pub rpc: String,
    pub request_id: String,
}

/// The request id of a call: the client's `x-request-id`, or one the hub generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The gRPC method path, recorded by the auth layer.
#[derive(Debug, Clone)]
pub struct RpcPath(pub String);

impl CallCtx {
    pub fn from_request<T>(req: &tonic::Request<T>) -> AppResult<CallCtx> {
        let principal = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| AppError::Unauthenticated("no verified party token".into()))?;
        let rpc = req.extensions().get::<RpcPath>().map(|r| r.0.clone()).unwrap_or_default();
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        Ok(CallCtx { principal, rpc, request_id })
    }
}

/// What the guard granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub rule: &'static str,
    /// Allowed only through a DIM physician's break-glass grant.
    pub break_glass: bool,
}

#[derive(Clone)]
pub struct Guard {
    db: Db,
    audit: AuditLog,
}

impl Guard {
    pub fn new(db: Db, audit: AuditLog) -> Guard {
        Guard { db, audit }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Decides whether the caller may do `action` on `data` for `target`, audits the
    /// decision when the policy requires it, and returns PERMISSION_DENIED naming the
    /// rule on refusal.
    pub async fn authorize(&self, ctx: &CallCtx, data: DataClass, action: Action, target: &Target) -> AppResult<Grant> {
        let (decision, break_glass) = self.evaluate(&ctx.principal, data, action, target).await?;
        if !decision.allowed || data.is_nominative() || action != Action::Read || break_glass {
            let verdict = match (decision.allowed, break_glass) {
                (false, _) => "DENY",
                (true, true) => "BREAK_GLASS",
                (true, false) => "ALLOW",
            };
            self.record(ctx, data, action, target, verdict, &format!("{}: {}", decision.rule, decision.reason)).await?;
        }
        if decision.allowed {
            Ok(Grant { rule: decision.rule, break_glass })
        } else {
            Err(AppError::denied(decision.rule, decision.reason))
        }
    }

    /// The decision with every fact resolved, and whether only break-glass allows it.
    /// Writes nothing: `authorize` audits, `CheckAccess` explains.
    pub async fn evaluate(
        &self,
        p: &Principal,
        data: DataClass,
        action: Action,
        target: &Target,
    ) -> AppResult<(Decision, bool)> {
        let needs = policy::fact_needs(p, data, action, target);
        let mut facts = Facts::default();
        if let Some(est) = &target.establishment_id {
            // The establishment's GHT comes from the registry, never from the caller:
            // a target pairing a GHT with another GHT's establishment is refused.
            let (est_ght, is_party) = store::establishment_facts(&self.db, est).await?;
            if target.ght_id.as_deref().is_some_and(|g| g != est_ght) {
                return Ok((
                    Decision {
                        allowed: false,
                        rule: "target-consistency",
                        reason: "the target establishment does not belong to the target GHT".into(),
                    },
                    false,
                ));
            }
            if needs.party_status {
                facts.target_is_party = Some(is_party);
            }
        }
        if needs.designation {
            if let Some(ght) = &target.ght_id {
                facts.designation =
                    store::has_live_designation(&self.db, &p.subject, ght, target.establishment_id.as_deref()).await?;
            }
        }
        if needs.care_relationship {
            if let (Some(own), Some(patient)) = (&p.establishment_id, &target.patient_ref) {
                facts.care_relationship = store::has_care_relationship(&self.db, own, patient).await?;
            }
        }
        let decision = policy::decide(p, data, action, target, &facts);
        // Break-glass: a DIM physician's live grant opens nominative data of the GHT
        // outside the ordinary rule (e.g. an associé's patients); never another GHT.
        if !decision.allowed && p.role == Role::DimPhysician && data.is_nominative() && target.ght_id == p.ght_id {
            if let Some(ght) = &target.ght_id {
                if let Some(grant_id) =
                    store::live_break_glass(&self.db, &p.subject, ght, target.patient_ref.as_deref()).await?
                {
                    return Ok((
                        Decision {
                            allowed: true,
                            rule: "break-glass",
                            reason: format!("break-glass grant {grant_id} (outside rule '{}')", decision.rule),
                        },
                        true,
                    ));
                }
            }
        }
        Ok((decision, false))
    }

    /// The pure policy answer for list filtering (no facts, no audit): used to keep
    /// rows of a listing the caller may read, with the same table as `authorize`.
    pub fn permits(&self, p: &Principal, data: DataClass, action: Action, target: &Target) -> bool {
        policy::decide(p, data, action, target, &Facts::default()).allowed
    }

    /// Appends an audit record for this call (e.g. the ids a search returned).
    pub async fn record(
        &self,
        ctx: &CallCtx,
        data: DataClass,
        action: Action,
        target: &Target,
        decision: &str,
        reason: &str,
    ) -> AppResult<i64> {
        let p = &ctx.principal;
        self.audit
            .append(AuditEntry {
                subject: p.subject.clone(),
                role: p.role.as_str().to_string(),
                ght_id: p.ght_id.clone().unwrap_or_default(),
                establishment_id: p.establishment_id.clone().unwrap_or_default(),
                rpc: ctx.rpc.clone(),
                data_class: data.as_str().to_string(),
                action: action.as_str().to_string(),
                target_ids: target.ids.clone(),
                target_ght_id: target.ght_id.clone().unwrap_or_default(),
                decision: decision.to_string(),
                reason: reason.to_string(),
                request_id: ctx.request_id.clone(),
            })
            .await
    }

    pub fn now(&self) -> i64 {
        now_micros()
    }
}
