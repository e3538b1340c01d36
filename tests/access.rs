//! The access policy and the audit trail, over real gRPC.
//!
//! The matrix test derives its expectations from `expected()` below: the territorial
//! DIM rules written out by hand, independently of the policy table in
//! src/access/policy.rs, so a wrong row in the table fails here.

mod common;

use common::{fixture::*, seed_territory, TestHub};
use ghthub::{
    access::{Action, DataClass, Role},
    proto,
};
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    EstablishmentDsi,
    GhtDsi,
    DimPhysician,
    DimStaffDesignated,
    DimStaffUndesignated,
    Practitioner,
    Ars,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tgt {
    /// E2, the caller's own establishment (a partie of G1).
    OwnEstablishment,
    /// E1, the support establishment of G1.
    OtherParty,
    /// E3, an associé of G1: not a party, outside the DIM's ordinary scope.
    Associe,
    /// G1 as a whole.
    GhtWide,
    /// F1, in another GHT of another region.
    OtherGht,
    /// G2 as a whole.
    OtherGhtWide,
}

const CALLERS: [Caller; 8] = [
    Caller::EstablishmentDsi,
    Caller::GhtDsi,
    Caller::DimPhysician,
    Caller::DimStaffDesignated,
    Caller::DimStaffUndesignated,
    Caller::Practitioner,
    Caller::Ars,
    Caller::Admin,
];
const TARGETS: [Tgt; 6] =
    [Tgt::OwnEstablishment, Tgt::OtherParty, Tgt::Associe, Tgt::GhtWide, Tgt::OtherGht, Tgt::OtherGhtWide];

fn target_ids(t: Tgt) -> (&'static str, &'static str) {
    match t {
        Tgt::OwnEstablishment => (G1, E2),
        Tgt::OtherParty => (G1, E1),
        Tgt::Associe => (G1, E3),
        Tgt::GhtWide => (G1, ""),
        Tgt::OtherGht => (G2, F1),
        Tgt::OtherGhtWide => (G2, ""),
    }
}

/// The rules, in words:
/// - nobody reaches another GHT, except the hub operator (never nominative) and an ARS
///   within its region (aggregates, indicators, registry);
/// - nominative identity/movement data: the care team of the establishment concerned,
///   the DIM physician for the parties of the GHT, DIM staff only while designated;
///   never the DSIs, the ARS or the operator;
/// - the GHT DSI reads every party's inventory and writes the GHT's indicators; an
///   establishment DSI reads and pushes its own inventory and declares its own HN
///   prerequisites; both read aggregates of their GHT (the establishment DSI its own
///   activity counts);
/// - the audit trail is read by the DIM physician; its integrity is checked by the
///   DIM physician or the operator.
fn expected(c: Caller, d: DataClass, a: Action, t: Tgt) -> bool {
    use Action::*;
    use DataClass::*;
    let in_g1 = matches!(t, Tgt::OwnEstablishment | Tgt::OtherParty | Tgt::Associe | Tgt::GhtWide);
    let party_or_wide = matches!(t, Tgt::OwnEstablishment | Tgt::OtherParty | Tgt::GhtWide);
    let own = t == Tgt::OwnEstablishment;
    match c {
        Caller::Admin => matches!(
            (d, a),
            (Registry, Read | Write | Admin)
                | (InventoryItem, Read | Write)
                | (InventoryAggregate, Read)
                | (Indicator, Read | Admin)
                | (MovementAggregate, Read)
                | (Audit, Admin)
        ),
        Caller::GhtDsi => {
            in_g1
                && matches!(
                    (d, a),
                    (Registry, Read | Write)
                        | (InventoryItem, Read)
                        | (InventoryAggregate, Read)
                        | (Indicator, Read | Write)
                        | (MovementAggregate, Read)
                )
        }
        Caller::EstablishmentDsi => {
            in_g1
                && (matches!((d, a), (Registry, Read) | (InventoryAggregate, Read) | (Indicator, Read))
                    || own
                        && matches!(
                            (d, a),
                            (InventoryItem, Read | Write) | (Indicator, Write) | (MovementAggregate, Read)
                        ))
        }
        Caller::DimPhysician => {
            in_g1
                && (matches!(
                    (d, a),
                    (Registry, Read)
                        | (MovementAggregate, Read)
                        | (InventoryAggregate, Read)
                        | (Indicator, Read)
                        | (Audit, Read | Admin)
                        | (IdentityNominative, Admin)
                ) || party_or_wide
                    && matches!((d, a), (IdentityNominative, Read | Write) | (MovementNominative, Read)))
        }
        Caller::DimStaffDesignated => {
            in_g1
                && (matches!((d, a), (Registry, Read) | (MovementAggregate, Read))
                    || party_or_wide
                        && matches!((d, a), (IdentityNominative, Read | Write) | (MovementNominative, Read)))
        }
        Caller::DimStaffUndesignated => in_g1 && matches!((d, a), (Registry, Read) | (MovementAggregate, Read)),
        Caller::Practitioner => {
            in_g1
                && (matches!((d, a), (Registry, Read))
                    || own && matches!((d, a), (IdentityNominative, Read | Write) | (MovementNominative, Read | Write)))
        }
        Caller::Ars => {
            in_g1
                && matches!(
                    (d, a),
                    (Registry, Read)
                        | (InventoryAggregate, Read)
                        | (Indicator, Read | Review)
                        | (MovementAggregate, Read)
                )
        }
    }
}

fn token_for(hub: &TestHub, c: Caller) -> String {
    match c {
        Caller::EstablishmentDsi => hub.token(Role::EstablishmentDsi, "dsi-e2", Some(G1), Some(E2), None),
        Caller::GhtDsi => hub.token(Role::GhtDsi, "dsi-ght", Some(G1), None, None),
        Caller::DimPhysician => hub.token(Role::DimPhysician, "dim-phys", Some(G1), None, None),
        Caller::DimStaffDesignated => hub.token(Role::DimStaff, "tim-designated", Some(G1), None, None),
        Caller::DimStaffUndesignated => hub.token(Role::DimStaff, "tim-other", Some(G1), None, None),
        Caller::Practitioner => hub.token(Role::Practitioner, "dr-e2", Some(G1), Some(E2), None),
        Caller::Ars => hub.token(Role::Ars, "ars-ge", None, None, Some(R1)),
        Caller::Admin => hub.token(Role::Admin, "admin", None, None, None),
    }
}

async fn policy_matrix(hub: &TestHub) {
    seed_territory(hub).await;
    let dim = hub.client(&token_for(hub, Caller::DimPhysician)).await;
    dim.access()
        .designate_dim_staff(proto::DesignateDimStaffRequest {
            staff_subject: "tim-designated".into(),
            establishment_id: String::new(),
            valid_until: String::new(),
            mission: "PMSI coding quality, all parties".into(),
        })
        .await
        .unwrap();

    let mut cases = 0;
    let mut failures = vec![];
    for caller in CALLERS {
        let client = hub.client(&token_for(hub, caller)).await;
        let mut access = client.access();
        for data in DataClass::ALL {
            for action in Action::ALL {
                for t in TARGETS {
                    let (ght, est) = target_ids(t);
                    let r = access
                        .check_access(proto::CheckAccessRequest {
                            data_class: data.to_proto() as i32,
                            action: action.to_proto() as i32,
                            ght_id: ght.into(),
                            establishment_id: est.into(),
                            patient_ref: "T-no-encounter".into(),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    cases += 1;
                    if r.allowed != expected(caller, data, action, t) {
                        failures.push(format!(
                            "{caller:?} {} {} {t:?}: hub says {} ({}: {})",
                            data.as_str(),
                            action.as_str(),
                            r.allowed,
                            r.rule,
                            r.reason
                        ));
                    }
                    if !r.allowed {
                        assert!(!r.rule.is_empty(), "a refusal names its rule");
                    }
                }
            }
        }
    }
    assert_eq!(cases, 8 * 8 * 4 * 6);
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n{}", failures.len(), failures.join("\n"));
}
on_every_backend!(policy_matrix_over_grpc, policy_matrix);

async fn check(
    hub: &TestHub,
    token: &str,
    data: DataClass,
    action: Action,
    ght: &str,
    est: &str,
) -> proto::CheckAccessResponse {
    hub.client(token)
        .await
        .access()
        .check_access(proto::CheckAccessRequest {
            data_class: data.to_proto() as i32,
            action: action.to_proto() as i32,
            ght_id: ght.into(),
            establishment_id: est.into(),
            patient_ref: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn designation_lifecycle(hub: &TestHub) {
    seed_territory(hub).await;
    let dim_token = hub.token(Role::DimPhysician, "dim-phys", Some(G1), None, None);
    let staff_token = hub.token(Role::DimStaff, "tim-e1", Some(G1), None, None);
    let dim = hub.client(&dim_token).await;
    let (read, ident) = (Action::Read, DataClass::IdentityNominative);

    assert!(!check(hub, &staff_token, ident, read, G1, E1).await.allowed);
    let d = dim
        .access()
        .designate_dim_staff(proto::DesignateDimStaffRequest {
            staff_subject: "tim-e1".into(),
            establishment_id: E1.into(),
            valid_until: String::new(),
            mission: "identity-vigilance at the CHRU".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.designated_by, "dim-phys");
    assert!(check(hub, &staff_token, ident, read, G1, E1).await.allowed);
    // Restricted to E1: not E2, not GHT-wide.
    let r = check(hub, &staff_token, ident, read, G1, E2).await;
    assert!(!r.allowed);
    assert_eq!(r.rule, "dim-staff-identity-read");
    assert!(!check(hub, &staff_token, ident, read, G1, "").await.allowed);

    // Only the DIM physician designates; a designation must name a mission.
    let dsi = hub.client(&hub.token(Role::GhtDsi, "dsi-ght", Some(G1), None, None)).await;
    let refused = dsi
        .access()
        .designate_dim_staff(proto::DesignateDimStaffRequest {
            staff_subject: "friend".into(),
            mission: "curiosity".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let e = dim
        .access()
        .designate_dim_staff(proto::DesignateDimStaffRequest { staff_subject: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("mission"), "{e:?}");
    // The other GHT's DIM physician cannot revoke it.
    let other_dim = hub.client(&hub.token(Role::DimPhysician, "dim-g2", Some(G2), None, None)).await;
    let e =
        other_dim.access().revoke_designation(proto::RevokeDesignationRequest { id: d.id.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Listing: the physician sees it, the staff member sees their own.
    let listed = dim.access().list_designations(proto::ListDesignationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.designations.len(), 1);
    let own =
        hub.client(&staff_token).await.access().list_designations(proto::ListDesignationsRequest::default()).await;
    assert_eq!(own.unwrap().into_inner().designations[0].id, d.id);

    // Revocation is immediate and recorded; a second revocation is refused.
    let revoked = dim.access().revoke_designation(proto::RevokeDesignationRequest { id: d.id.clone() }).await.unwrap();
    assert!(!revoked.into_inner().revoked_at.is_empty());
    assert!(!check(hub, &staff_token, ident, read, G1, E1).await.allowed);
    let again =
        dim.access().revoke_designation(proto::RevokeDesignationRequest { id: d.id.clone() }).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let active = dim.access().list_designations(proto::ListDesignationsRequest::default()).await.unwrap().into_inner();
    assert!(active.designations.is_empty());
    let all = dim
        .access()
        .list_designations(proto::ListDesignationsRequest { include_inactive: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.designations.len(), 1);

    // A designation that has expired no longer counts.
    let past = dim
        .access()
        .designate_dim_staff(proto::DesignateDimStaffRequest {
            staff_subject: "tim-e1".into(),
            establishment_id: String::new(),
            valid_until: "2020-01-01T00:00:00Z".into(),
            mission: "old mission".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(past.code(), Code::InvalidArgument, "valid_until in the past is refused");
}
on_every_backend!(dim_staff_designation_and_revocation, designation_lifecycle);

async fn break_glass(hub: &TestHub) {
    seed_territory(hub).await;
    let dim_token = hub.token(Role::DimPhysician, "dim-phys", Some(G1), None, None);
    let dim = hub.client(&dim_token).await;
    let ident = DataClass::IdentityNominative;

    // The associé's patients are outside the DIM's ordinary scope.
    let r = check(hub, &dim_token, ident, Action::Read, G1, E3).await;
    assert!(!r.allowed);
    assert_eq!(r.rule, "dim-physician-identity-read");

    let e = dim
        .access()
        .request_break_glass(proto::BreakGlassRequest { reason: "urgent".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("reason"), "{e:?}");
    let e = dim
        .access()
        .request_break_glass(proto::BreakGlassRequest {
            reason: "patient transferred in cardiac arrest".into(),
            duration_minutes: 10_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("duration_minutes"));

    // Only the DIM physician may break the glass, and the refusal is audited.
    let dr = hub.client(&hub.token(Role::Practitioner, "dr-e2", Some(G1), Some(E2), None)).await;
    let e = dr
        .access()
        .request_break_glass(proto::BreakGlassRequest {
            reason: "I want to see everything".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let grant = dim
        .access()
        .request_break_glass(proto::BreakGlassRequest {
            reason: "patient transferred from the associé clinic in cardiac arrest".into(),
            patient_ref: String::new(),
            duration_minutes: 15,
        })
        .await
        .unwrap()
        .into_inner();
    let r = check(hub, &dim_token, ident, Action::Read, G1, E3).await;
    assert!(r.allowed && r.break_glass, "{r:?}");
    assert_eq!(r.rule, "break-glass");
    // Never another GHT.
    assert!(!check(hub, &dim_token, ident, Action::Read, G2, F1).await.allowed);

    // The grant is flagged in the audit trail for review.
    let flagged = dim
        .audit()
        .query_audit(proto::QueryAuditRequest { break_glass_only: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        flagged.iter().any(|r| r.target_ids.contains(&grant.id) && r.reason.contains("cardiac arrest")),
        "{flagged:?}"
    );
    let denials = dim
        .audit()
        .query_audit(proto::QueryAuditRequest { subject: "dr-e2".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(denials.iter().any(|r| r.decision == "DENY" && r.reason.contains("break-glass")), "{denials:?}");

    // Expiry: once the grant's time is over, the ordinary rule applies again.
    sqlx::query("UPDATE break_glass SET expires_at = $1 WHERE id = $2")
        .bind(ghthub::time::now_micros() - 1)
        .bind(&grant.id)
        .execute(&hub.db().write)
        .await
        .unwrap();
    assert!(!check(hub, &dim_token, ident, Action::Read, G1, E3).await.allowed);
}
on_every_backend!(break_glass_is_granted_flagged_and_expires, break_glass);

async fn audit_chain(hub: &TestHub) {
    seed_territory(hub).await;
    let dim_token = hub.token(Role::DimPhysician, "dim-phys", Some(G1), None, None);
    let dim = hub.client(&dim_token).await;
    // A refusal is audited with the rule's name.
    let other = hub.client(&hub.token(Role::EstablishmentDsi, "dsi-f1", Some(G2), Some(F1), None)).await;
    let e = other.registry().get_ght(proto::GetGhtRequest { id: G1.into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("est-dsi-registry-read") && !e.message().contains("Sud Lorraine"));

    let records = dim
        .audit()
        .query_audit(proto::QueryAuditRequest { target_id: G1.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let deny = records.iter().find(|r| r.subject == "dsi-f1").expect("the refusal is in the audit trail");
    assert_eq!(deny.decision, "DENY");
    assert!(deny.reason.contains("est-dsi-registry-read"));
    assert_eq!(deny.rpc, "/ghthub.v1.Registry/GetGht");
    assert!(!deny.request_id.is_empty());

    let v = dim.audit().verify_audit(proto::VerifyAuditRequest {}).await.unwrap().into_inner();
    assert!(v.ok, "{v:?}");
    assert!(v.records >= 8, "creations and the refusal are recorded: {v:?}");

    // Append-only at the database level.
    let db = hub.db();
    assert!(sqlx::query("UPDATE audit_log SET reason = 'x' WHERE seq = 2").execute(&db.audit_write).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&db.audit_write).await.is_err());

    // Someone with database access disables the protection and edits one record…
    match hub.backend {
        common::Backend::Sqlite => {
            sqlx::query("DROP TRIGGER audit_log_no_update").execute(&db.audit_write).await.unwrap();
        }
        common::Backend::Postgres => {
            sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                .execute(&db.audit_write)
                .await
                .unwrap();
        }
    }
    sqlx::query("UPDATE audit_log SET subject = 'nobody' WHERE seq = 3").execute(&db.audit_write).await.unwrap();
    // …and verification finds it.
    let v = dim.audit().verify_audit(proto::VerifyAuditRequest {}).await.unwrap().into_inner();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, 3);
    assert_eq!(v.records, 2);

    // Only the DIM physician (own GHT) reads the trail; the operator may only verify it.
    let admin = hub.admin().await;
    assert_eq!(
        admin.audit().query_audit(proto::QueryAuditRequest::default()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(!admin.audit().verify_audit(proto::VerifyAuditRequest {}).await.unwrap().into_inner().ok);
    let ars = hub.client(&hub.token(Role::Ars, "ars", None, None, Some(R1))).await;
    assert_eq!(
        ars.audit().verify_audit(proto::VerifyAuditRequest {}).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
on_every_backend!(audit_chain_verifies_and_detects_edits, audit_chain);

#[tokio::test]
async fn policy_show_lists_every_rule() {
    let hub = TestHub::start(common::Backend::Sqlite).await;
    let c = hub.client(&hub.token(Role::Ars, "ars", None, None, Some(R1))).await;
    let p = c.access().show_policy(proto::ShowPolicyRequest {}).await.unwrap().into_inner();
    assert_eq!(p.rules.len(), ghthub::access::policy::POLICY.len());
    assert_eq!(p.small_cell_threshold, 10);
    assert!(p.rules.iter().all(|r| !r.name.is_empty() && !r.rationale.is_empty()));
    let text = ghthub::access::policy::render_table();
    assert!(text.contains("dim-physician-identity-read") && text.contains("Everything not listed is denied"));
    hub.stop().await;
}
