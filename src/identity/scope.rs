//! Access decisions for nominative reads that span several establishments (a
//! territorial identity, a search, a patient journey, a subscription): each
//! establishment is decided by the one policy with its facts, and the call writes
//! one audit record naming what it returned.

use crate::{
    access::{policy::Decision, Action, CallCtx, DataClass, Guard, Target},
    db::Db,
    AppError, AppResult,
};

/// The GHT of an establishment (from the registry, never from the caller).
pub async fn ght_of(db: &Db, establishment_id: &str) -> AppResult<String> {
    crate::registry::store::establishment_ght_role(db, establishment_id)
        .await?
        .map(|(ght, _)| ght)
        .ok_or_else(|| AppError::not_found(format!("establishment {establishment_id}")))
}

/// Authorizes (and audits) one call on one establishment's nominative data; returns its GHT.
pub async fn authorize_at(
    guard: &Guard,
    db: &Db,
    ctx: &CallCtx,
    data: DataClass,
    action: Action,
    establishment_id: &str,
    patient_ref: Option<&str>,
    ids: Vec<String>,
) -> AppResult<String> {
    let ght = ght_of(db, establishment_id).await?;
    let mut target = Target::establishment(&ght, establishment_id).with_ids(ids);
    target.patient_ref = patient_ref.map(String::from);
    guard.authorize(ctx, data, action, &target).await?;
    Ok(ght)
}

/// The establishments a read may cover, decided but not yet audited: call
/// [`ReadScope::record`] with what is returned, before returning it.
#[must_use = "a read scope must record what the call returns"]
pub struct ReadScope {
    pub allowed: Vec<String>,
    data: DataClass,
    target: Target,
    verdict: &'static str,
    reason: String,
}

impl ReadScope {
    pub fn allows(&self, establishment_id: &str) -> bool {
        self.allowed.iter().any(|e| e == establishment_id)
    }

    /// Writes the call's one audit record: the ids it returns (patients, identities,
    /// encounters) and the rule that allowed each establishment.
    pub async fn record(self, guard: &Guard, ctx: &CallCtx, ids: Vec<String>) -> AppResult<()> {
        let target = self.target.with_ids(ids);
        guard.record(ctx, self.data, Action::Read, &target, self.verdict, &self.reason).await?;
        Ok(())
    }
}

/// Decides a read of `data` over `establishments` of `ght` (about `patient_ref`, if
/// any). When none is allowed the refusal is audited and returned as PERMISSION_DENIED;
/// with no establishment at all, the GHT-wide rule decides.
pub async fn read_scope(
    guard: &Guard,
    ctx: &CallCtx,
    data: DataClass,
    ght: &str,
    establishments: &[String],
    patient_ref: Option<&str>,
) -> AppResult<ReadScope> {
    let base =
        Target { ght_id: Some(ght.to_string()), patient_ref: patient_ref.map(String::from), ..Default::default() };
    let mut allowed = vec![];
    let mut rules = vec![];
    let mut break_glass = false;
    let mut refusal: Option<Decision> = None;
    for e in establishments {
        let target = Target { establishment_id: Some(e.clone()), ..base.clone() };
        let (d, bg) = guard.evaluate(&ctx.principal, data, Action::Read, &target).await?;
        if d.allowed {
            allowed.push(e.clone());
            rules.push(format!("{e}: {}", d.rule));
            break_glass |= bg;
        } else if refusal.is_none() {
            refusal = Some(d);
        }
    }
    if establishments.is_empty() {
        let (d, bg) = guard.evaluate(&ctx.principal, data, Action::Read, &base).await?;
        if d.allowed {
            rules.push(d.rule.to_string());
            break_glass = bg;
        } else {
            refusal = Some(d);
        }
    }
    if allowed.is_empty() {
        if let Some(d) = refusal {
            guard.record(ctx, data, Action::Read, &base, "DENY", &format!("{}: {}", d.rule, d.reason)).await?;
            return Err(AppError::denied(d.rule, d.reason));
        }
    }
    Ok(ReadScope {
        allowed,
        data,
        target: base,
        verdict: if break_glass { "BREAK_GLASS" } else { "ALLOW" },
        reason: rules.join("; "),
    })
}
