//! IS inventories and the SDSI-T view: push, versions, diff, access, consolidation,
//! convergence map, indicator facts, over real TLS on every back-end.

mod common;

use std::collections::BTreeSet;

use common::{fixture::*, seed_territory, Backend, TestHub};
use ghthub::{
    access::Role,
    cli::client::HubClient,
    facts::AppFacts,
    inventory::{
        canonical,
        document::{self, Format},
    },
    proto::{
        self, application_interface::Peer, FunctionalDomain as D, HostingMode as H, InventoryChangeKind as K,
        InventorySection as S,
    },
};
use tonic::Code;

// ------------------------------------------------------------------ helpers

fn app(id: &str, vendor: &str, name: &str, domain: D, hosting: H, target: bool) -> proto::Application {
    proto::Application {
        id: id.into(),
        name: name.into(),
        vendor: vendor.into(),
        version: "1.0".into(),
        domain: domain as i32,
        hosting: hosting as i32,
        users_count: 100,
        convergence_target: target,
        ..Default::default()
    }
}

fn doc(as_of: &str, applications: Vec<proto::Application>) -> proto::InventoryDocument {
    proto::InventoryDocument {
        as_of: as_of.into(),
        source: proto::InventorySource::Manual as i32,
        applications,
        ..Default::default()
    }
}

fn security(pssi: proto::PssiStatus) -> Option<proto::SecurityPosture> {
    Some(proto::SecurityPosture {
        pssi_status: pssi as i32,
        rssi_named: true,
        hds_status: proto::HdsStatus::CertifiedHostsOnly as i32,
        ..Default::default()
    })
}

fn resources(op: Option<f64>, inv: Option<f64>, staff: &[(proto::StaffCategory, f64)]) -> Option<proto::IsResources> {
    Some(proto::IsResources {
        year: 2025,
        budget_operating_eur: op,
        budget_investment_eur: inv,
        staff: staff.iter().map(|(c, fte)| proto::StaffLine { category: *c as i32, fte: *fte }).collect(),
    })
}

async fn as_role(
    hub: &TestHub,
    role: Role,
    sub: &str,
    ght: Option<&str>,
    est: Option<&str>,
    region: Option<&str>,
) -> HubClient {
    hub.client(&hub.token(role, sub, ght, est, region)).await
}

async fn est_dsi(hub: &TestHub, ght: &str, est: &str) -> HubClient {
    as_role(hub, Role::EstablishmentDsi, &format!("dsi-{est}"), Some(ght), Some(est), None).await
}

async fn ght_dsi(hub: &TestHub, ght: &str) -> HubClient {
    as_role(hub, Role::GhtDsi, &format!("dsi-ght-{ght}"), Some(ght), None, None).await
}

async fn push(
    c: &HubClient,
    est: &str,
    d: proto::InventoryDocument,
    request_id: &str,
) -> Result<proto::PushInventoryResponse, tonic::Status> {
    c.inventory()
        .push_inventory(proto::PushInventoryRequest {
            establishment_id: est.into(),
            document: Some(d),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get(c: &HubClient, est: &str, version: u32) -> Result<proto::InventoryVersion, tonic::Status> {
    c.inventory()
        .get_inventory(proto::GetInventoryRequest { establishment_id: est.into(), version })
        .await
        .map(|r| r.into_inner())
}

async fn versions(c: &HubClient, est: &str) -> Result<Vec<proto::InventoryVersionInfo>, tonic::Status> {
    c.inventory()
        .list_versions(proto::ListInventoryVersionsRequest { establishment_id: est.into() })
        .await
        .map(|r| r.into_inner().versions)
}

async fn consolidated(c: &HubClient, ght: &str) -> Result<proto::ConsolidatedInventoryResponse, tonic::Status> {
    c.territory()
        .consolidated_inventory(proto::ConsolidatedInventoryRequest { ght_id: ght.into() })
        .await
        .map(|r| r.into_inner())
}

async fn convergence(c: &HubClient, ght: &str) -> Result<proto::ConvergenceMapResponse, tonic::Status> {
    c.territory().convergence_map(proto::ConvergenceMapRequest { ght_id: ght.into() }).await.map(|r| r.into_inner())
}

fn denied<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    match r {
        Err(s) => assert_eq!(s.code(), Code::PermissionDenied, "{}", s.message()),
        Ok(v) => panic!("expected PERMISSION_DENIED, got {v:?}"),
    }
}

/// The INVALID_ARGUMENT message of a refused push.
fn invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> String {
    match r {
        Err(s) => {
            assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
            s.message().to_string()
        }
        Ok(v) => panic!("expected INVALID_ARGUMENT, got {v:?}"),
    }
}

fn v1_e2() -> proto::InventoryDocument {
    let mut dpi = app("dpi", "Maincare", "M-Crossway", D::Dpi, H::OnPremise, false);
    dpi.interfaces.push(proto::ApplicationInterface {
        standard: proto::InterfaceStandard::Hl7V2 as i32,
        peer: Some(Peer::ApplicationId("gam".into())),
    });
    let mut d = doc(
        "2024-06-30",
        vec![
            dpi,
            app("gam", "Maincare", "Pastel", D::PatientAdministration, H::OnPremise, false),
            app("lab", "CGM", "Molis", D::Lab, H::OnPremise, false),
        ],
    );
    d.security = security(proto::PssiStatus::InProgress);
    d
}

// ------------------------------------------------------------------ scenarios

async fn push_get_diff_round_trip(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi = est_dsi(hub, G1, E2).await;
    let first = push(&dsi, E2, v1_e2(), "").await.unwrap();
    assert!(first.created);
    let info = first.version.unwrap();
    assert_eq!((info.version, info.establishment_id.as_str(), info.ght_id.as_str()), (1, E2, G1));
    assert_eq!(info.author, format!("dsi-{E2}"));
    assert_eq!(info.application_count, 3);
    assert_eq!(info.content_hash, canonical::canonicalize(v1_e2()).unwrap().hash);

    // Empty establishment id = the caller's own; version 0 = the latest.
    let got = get(&dsi, "", 0).await.unwrap();
    assert_eq!(got.info.as_ref().unwrap(), &info);
    assert_eq!(got.document.unwrap(), canonical::canonicalize(v1_e2()).unwrap().document);

    // Version 2: the lab converges to the target, the DPI moves to shared hosting,
    // the GAM is replaced, the PSSI is adopted.
    let mut v2 = v1_e2();
    v2.as_of = "2025-06-30".into();
    v2.applications[0].hosting = H::SharedGht as i32;
    v2.applications[0].version = "2.1".into();
    v2.applications.retain(|a| a.id != "lab");
    v2.applications.push(app("lab-glims", "CliniSys", "Glims", D::Lab, H::SharedGht, true));
    v2.security = security(proto::PssiStatus::Adopted);
    let second = push(&dsi, E2, v2, "").await.unwrap();
    assert!(second.created);
    assert_eq!(second.version.as_ref().unwrap().version, 2);

    let listed = versions(&dsi, E2).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
    // Version 1 is unchanged by the second push.
    assert_eq!(get(&dsi, E2, 1).await.unwrap().document.unwrap().applications.len(), 3);

    let d = dsi
        .inventory()
        .diff_versions(proto::DiffInventoryVersionsRequest {
            establishment_id: E2.into(),
            from_version: 1,
            to_version: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let changes: Vec<(S, &str, K)> = d
        .changes
        .iter()
        .map(|c| (S::try_from(c.section).unwrap(), c.item_id.as_str(), K::try_from(c.kind).unwrap()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (S::Document, "document", K::Changed),
            (S::Applications, "dpi", K::Changed),
            (S::Applications, "lab", K::Removed),
            (S::Applications, "lab-glims", K::Added),
            (S::Security, "security", K::Changed),
        ]
    );
    assert_eq!((d.added, d.removed, d.changed), (1, 1, 3));
    let dpi: Vec<(&str, &str, &str)> =
        d.changes[1].fields.iter().map(|f| (f.field.as_str(), f.before.as_str(), f.after.as_str())).collect();
    assert_eq!(dpi, vec![("version", "1.0", "2.1"), ("hosting", "ON_PREMISE", "SHARED_GHT")]);
    assert_eq!(d.changes[4].fields[0].field, "pssi_status");

    // Unknown versions and version 0.
    let missing = dsi
        .inventory()
        .diff_versions(proto::DiffInventoryVersionsRequest {
            establishment_id: E2.into(),
            from_version: 1,
            to_version: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(get(&dsi, E2, 3).await.unwrap_err().code(), Code::NotFound);
    let zero = dsi
        .inventory()
        .diff_versions(proto::DiffInventoryVersionsRequest {
            establishment_id: E2.into(),
            from_version: 0,
            to_version: 1,
        })
        .await;
    assert!(invalid(zero).contains("from_version"));
}
on_every_backend!(round_trip, push_get_diff_round_trip);

async fn identical_repush_returns_the_same_version(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi = est_dsi(hub, G1, E2).await;
    let first = push(&dsi, E2, v1_e2(), "").await.unwrap();
    // Same content, items in another order, extra whitespace: the same version.
    let mut shuffled = v1_e2();
    shuffled.applications.reverse();
    shuffled.applications[0].name = format!("  {}\t", shuffled.applications[0].name);
    shuffled.applications[1].vendor = shuffled.applications[1].vendor.replace(' ', "   ");
    let again = push(&dsi, E2, shuffled, "").await.unwrap();
    assert!(!again.created);
    assert_eq!(again.version, first.version);
    assert_eq!(versions(&dsi, E2).await.unwrap().len(), 1);

    // A retried request id gets the first answer, and stores nothing twice.
    let mut v2 = v1_e2();
    v2.applications[0].users_count = 250;
    let a = push(&dsi, E2, v2.clone(), "req-42").await.unwrap();
    let b = push(&dsi, E2, v2, "req-42").await.unwrap();
    assert!(a.created);
    assert_eq!(a, b);
    assert_eq!(versions(&dsi, E2).await.unwrap().len(), 2);

    // Pushing v1 again after v2 is a new state of the establishment: version 3.
    let back = push(&dsi, E2, v1_e2(), "").await.unwrap();
    assert!(back.created);
    assert_eq!(back.version.unwrap().version, 3);
}
on_every_backend!(idempotent_repush, identical_repush_returns_the_same_version);

async fn access_follows_the_policy(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi_e2 = est_dsi(hub, G1, E2).await;
    let dsi_e1 = est_dsi(hub, G1, E1).await;
    let dsi_f1 = est_dsi(hub, G2, F1).await;
    push(&dsi_e2, E2, v1_e2(), "").await.unwrap();
    push(&dsi_f1, F1, v1_e2(), "").await.unwrap();

    // A DSI pushes and reads its own establishment only.
    let refused = push(&dsi_e2, E1, v1_e2(), "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("est-dsi-inventory-write"), "{}", refused.message());
    denied(get(&dsi_e2, E1, 0).await);
    denied(versions(&dsi_e2, E1).await);
    denied(get(&dsi_e1, E2, 0).await);
    // Nothing was stored for E1 by the refused push.
    let admin = hub.admin().await;
    assert!(versions(&admin, E1).await.unwrap().is_empty());
    // …nor across GHTs.
    denied(get(&dsi_f1, E2, 0).await);
    denied(push(&dsi_f1, E2, v1_e2(), "").await);
    denied(convergence(&dsi_f1, G1).await);
    denied(consolidated(&dsi_f1, G1).await);

    // The GHT DSI reads every establishment of its GHT (associé included) but pushes none.
    let g1 = ght_dsi(hub, G1).await;
    assert_eq!(get(&g1, E2, 0).await.unwrap().info.unwrap().version, 1);
    assert!(versions(&g1, E3).await.unwrap().is_empty());
    assert_eq!(get(&g1, E1, 0).await.unwrap_err().code(), Code::NotFound);
    denied(push(&g1, E2, v1_e2(), "").await);
    consolidated(&g1, "").await.unwrap();
    convergence(&g1, "").await.unwrap();
    // …and nothing of another GHT.
    let g2 = ght_dsi(hub, G2).await;
    denied(get(&g2, E2, 0).await);
    denied(consolidated(&g2, G1).await);

    // The operator may push on an establishment's behalf.
    assert!(push(&admin, E1, v1_e2(), "").await.unwrap().created);

    // Establishment DSIs and the DIM physician see the aggregates, not the item-level view.
    convergence(&dsi_e2, G1).await.unwrap();
    denied(consolidated(&dsi_e2, G1).await);
    let dim = as_role(hub, Role::DimPhysician, "dim", Some(G1), None, None).await;
    convergence(&dim, G1).await.unwrap();
    denied(consolidated(&dim, G1).await);
    denied(get(&dim, E2, 0).await);
    let practitioner = as_role(hub, Role::Practitioner, "doc", Some(G1), Some(E2), None).await;
    denied(get(&practitioner, E2, 0).await);
    denied(push(&practitioner, E2, v1_e2(), "").await);
    denied(convergence(&practitioner, G1).await);
}
on_every_backend!(access_rules, access_follows_the_policy);

async fn ars_reads_aggregates_of_its_region_only(hub: &TestHub) {
    seed_territory(hub).await;
    push(&est_dsi(hub, G1, E1).await, E1, v1_e2(), "").await.unwrap();
    push(&est_dsi(hub, G2, F1).await, F1, v1_e2(), "").await.unwrap();
    let ars44 = as_role(hub, Role::Ars, "ars-44", None, None, Some(R1)).await;
    let map = convergence(&ars44, G1).await.unwrap();
    assert_eq!(map.totals.as_ref().unwrap().parties_with_inventory, 1);
    assert_eq!(map.domains.len(), 3);
    // Aggregates name no establishment.
    let text = format!("{map:?}");
    for id in [E1, E2, E3, F1] {
        assert!(!text.contains(id), "the ARS view names establishment {id}");
    }
    denied(convergence(&ars44, G2).await);
    denied(consolidated(&ars44, G1).await);
    denied(get(&ars44, E1, 0).await);
    denied(versions(&ars44, E1).await);
    // An ARS has no GHT of its own: it must name one.
    assert!(invalid(convergence(&ars44, "").await).contains("ght_id"));
    let ars76 = as_role(hub, Role::Ars, "ars-76", None, None, Some(R2)).await;
    assert_eq!(convergence(&ars76, G2).await.unwrap().totals.unwrap().parties_with_inventory, 1);
    denied(convergence(&ars76, G1).await);
}
on_every_backend!(ars_region_aggregates, ars_reads_aggregates_of_its_region_only);

/// A fixed dataset whose consolidation was computed by hand:
/// - E1 (support): DPI dedalus/dxcare, GAM maincare/pastel, LAB clinisys/glims (all
///   three declared targets, shared GHT hosting), PMSI dedalus/web100t on premise;
///   budgets 8 M€ + 3 M€; staff PROJECT 30, INFRASTRUCTURE 20; PSSI adopted.
/// - E2 (partie), version 1: DPI maincare/m-crossway, LAB cgm/molis; version 2: the
///   same plus GAM "MAINCARE / Pastel " (same product as E1's), LAB glims, BI qlik
///   (SaaS); operating budget only (1 M€); staff PROJECT 4, USER_SUPPORT 3.5; PSSI in progress.
/// - E3 (associé): runs m-crossway too, but is not consolidated.
/// E2's first inventory (2024-01-31): M-Crossway, Molis.
fn e2_doc_v1() -> proto::InventoryDocument {
    let mut d = doc(
        "2024-01-31",
        vec![
            app("dpi", "Maincare", "M-Crossway", D::Dpi, H::OnPremise, false),
            app("molis", "CGM", "Molis", D::Lab, H::OnPremise, false),
        ],
    );
    d.security = security(proto::PssiStatus::InProgress);
    d
}

/// E2's second inventory (2025-01-31): the first one plus Pastel, Glims, Qlik.
fn e2_doc_v2() -> proto::InventoryDocument {
    let mut d = e2_doc_v1();
    d.as_of = "2025-01-31".into();
    d.applications.extend([
        app("gam", "MAINCARE ", " Pastel", D::PatientAdministration, H::OnPremise, false),
        app("glims", "CliniSys", "Glims", D::Lab, H::OnPremise, false),
        app("bi", "Qlik", "Qlik Sense", D::Bi, H::Saas, false),
    ]);
    d.resources = resources(
        Some(1_000_000.0),
        None,
        &[(proto::StaffCategory::Project, 4.0), (proto::StaffCategory::UserSupport, 3.5)],
    );
    d
}

async fn dataset(hub: &TestHub) {
    let mut e1 = doc(
        "2025-01-31",
        vec![
            app("dpi", "Dedalus", "DxCare", D::Dpi, H::SharedGht, true),
            app("gam", "Maincare", "Pastel", D::PatientAdministration, H::SharedGht, true),
            app("sil", "CliniSys", "Glims", D::Lab, H::SharedGht, true),
            app("pmsi", "Dedalus", "Web100T", D::Pmsi, H::OnPremise, false),
        ],
    );
    e1.security = security(proto::PssiStatus::Adopted);
    e1.resources = resources(
        Some(8_000_000.0),
        Some(3_000_000.0),
        &[(proto::StaffCategory::Project, 30.0), (proto::StaffCategory::Infrastructure, 20.0)],
    );
    let e2_v1 = e2_doc_v1();
    let e2_v2 = e2_doc_v2();
    let e3 = doc("2025-01-31", vec![app("dpi", "Maincare", "M-Crossway", D::Dpi, H::OnPremise, true)]);
    push(&est_dsi(hub, G1, E1).await, E1, e1, "").await.unwrap();
    let dsi_e2 = est_dsi(hub, G1, E2).await;
    push(&dsi_e2, E2, e2_v1, "").await.unwrap();
    push(&dsi_e2, E2, e2_v2, "").await.unwrap();
    push(&est_dsi(hub, G1, E3).await, E3, e3, "").await.unwrap();
}

async fn consolidation_matches_hand_computed_counts(hub: &TestHub) {
    seed_territory(hub).await;
    dataset(hub).await;
    let g1 = ght_dsi(hub, G1).await;
    let v = consolidated(&g1, G1).await.unwrap();

    let status: Vec<(&str, bool, bool, u32, u32)> = v
        .establishments
        .iter()
        .map(|e| (e.establishment_id.as_str(), e.in_scope, e.has_inventory, e.version, e.application_count))
        .collect();
    assert_eq!(status, vec![(E1, true, true, 1, 4), (E2, true, true, 2, 5), (E3, false, true, 1, 1)]);
    assert_eq!(v.establishments[1].budget_investment_eur, None);
    assert_eq!(v.establishments[1].staff_fte, 7.5);
    assert_eq!(v.establishments[0].pssi_status, proto::PssiStatus::Adopted as i32);

    let t = v.totals.clone().unwrap();
    assert_eq!((t.establishments, t.parties, t.parties_with_inventory), (3, 2, 2));
    assert_eq!((t.applications, t.distinct_products), (9, 7));
    assert_eq!((t.budget_operating_eur, t.budget_investment_eur, t.parties_with_budget), (9_000_000.0, 3_000_000.0, 1));
    let staff: Vec<(i32, f64)> = t.staff.iter().map(|s| (s.category, s.fte)).collect();
    assert_eq!(
        staff,
        vec![
            (proto::StaffCategory::Project as i32, 34.0),
            (proto::StaffCategory::Infrastructure as i32, 20.0),
            (proto::StaffCategory::UserSupport as i32, 3.5)
        ]
    );
    assert_eq!(t.staff_fte, 57.5);
    assert_eq!(t.parties_with_pssi_adopted, 1);
    assert!((t.shared_or_hds_hosting_share - 3.0 / 9.0).abs() < 1e-9);

    let domains: Vec<i32> = v.domains.iter().map(|d| d.domain).collect();
    assert_eq!(
        domains,
        vec![D::PatientAdministration as i32, D::Dpi as i32, D::Lab as i32, D::Pmsi as i32, D::Bi as i32]
    );
    let by = |d: D| v.domains.iter().find(|x| x.domain == d as i32).unwrap();

    let gam = by(D::PatientAdministration);
    assert!(!gam.overlap);
    assert_eq!(gam.products.len(), 1);
    assert_eq!((gam.products[0].product.as_str(), gam.products[0].establishment_count), ("maincare/pastel", 2));
    assert_eq!(gam.target_product, "maincare/pastel");
    assert_eq!(gam.parties_on_target, vec![E1, E2]);
    assert!(gam.parties_not_on_target.is_empty());

    let dpi = by(D::Dpi);
    assert!(dpi.overlap);
    let products: Vec<(&str, u32, bool)> =
        dpi.products.iter().map(|p| (p.product.as_str(), p.establishment_count, p.is_target)).collect();
    // E3 (associé) runs m-crossway and declares it as target: neither counts.
    assert_eq!(products, vec![("dedalus/dxcare", 1, true), ("maincare/m-crossway", 1, false)]);
    assert_eq!(dpi.target_product, "dedalus/dxcare");
    assert!(dpi.conflicting_targets.is_empty());
    assert_eq!(dpi.parties_on_target, vec![E1]);
    assert_eq!(dpi.parties_not_on_target, vec![E2]);
    let crossway = &dpi.products[1].deployments;
    assert_eq!(crossway.len(), 1);
    assert_eq!((crossway[0].establishment_id.as_str(), crossway[0].application_id.as_str()), (E2, "dpi"));
    assert_eq!(crossway[0].hosting, H::OnPremise as i32);

    let lab = by(D::Lab);
    assert!(lab.overlap);
    let products: Vec<(&str, u32)> = lab.products.iter().map(|p| (p.product.as_str(), p.establishment_count)).collect();
    assert_eq!(products, vec![("clinisys/glims", 2), ("cgm/molis", 1)]);
    assert_eq!(lab.parties_on_target, vec![E1, E2]);
    assert!(lab.parties_not_on_target.is_empty());

    let pmsi = by(D::Pmsi);
    assert_eq!(pmsi.target_product, "");
    assert!(pmsi.parties_not_on_target.is_empty());
    assert_eq!(pmsi.parties_without_application, vec![E2]);
    assert_eq!(by(D::Bi).parties_without_application, vec![E1]);

    let common: Vec<(i32, &str, Vec<&str>)> = v
        .common_products
        .iter()
        .map(|c| (c.domain, c.product.as_str(), c.establishment_ids.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        common,
        vec![
            (D::PatientAdministration as i32, "maincare/pastel", vec![E1, E2]),
            (D::Lab as i32, "clinisys/glims", vec![E1, E2])
        ]
    );

    // The convergence map: the same figures as aggregates, with their trend.
    let m = convergence(&g1, G1).await.unwrap();
    assert_eq!(m.totals, v.totals);
    let row = |d: D| m.domains.iter().find(|x| x.domain == d as i32).unwrap();
    let dpi = row(D::Dpi);
    assert_eq!((dpi.applications, dpi.distinct_products, dpi.parties_in_domain, dpi.parties_on_target), (2, 2, 2, 1));
    assert_eq!(dpi.share_on_target, 0.5);
    assert_eq!(dpi.target_product, "dedalus/dxcare");
    // By inventory date: on 2024-01-31 only E2's version 1 describes the territory
    // (molis, no target declared yet); on 2025-01-31 E1 and E2's version 2 (both on glims).
    let lab = row(D::Lab);
    let trend: Vec<(&str, u32, u32, f64, &str)> = lab
        .trend
        .iter()
        .map(|p| {
            (p.as_of.as_str(), p.distinct_products, p.parties_in_domain, p.share_on_target, p.target_product.as_str())
        })
        .collect();
    assert_eq!(trend, vec![("2024-01-31", 1, 1, 0.0, ""), ("2025-01-31", 2, 2, 1.0, "clinisys/glims")]);
    assert_eq!(lab.share_on_target, 1.0);
    // GAM appears on 2025-01-31 only.
    let gam = row(D::PatientAdministration);
    let trend: Vec<(&str, u32)> = gam.trend.iter().map(|p| (p.as_of.as_str(), p.parties_on_target)).collect();
    assert_eq!(trend, vec![("2025-01-31", 2)]);

    // A correction of the same date (E2's version 3, as of 2025-01-31, Molis retired)
    // replaces version 2 in the trend: one lab product left on that date.
    let mut e2_v3 = e2_doc_v2();
    e2_v3.applications.retain(|a| a.id != "molis");
    push(&est_dsi(hub, G1, E2).await, E2, e2_v3, "").await.unwrap();
    let lab = convergence(&g1, G1).await.unwrap().domains.into_iter().find(|x| x.domain == D::Lab as i32).unwrap();
    let trend: Vec<(&str, u32, u32)> =
        lab.trend.iter().map(|p| (p.as_of.as_str(), p.distinct_products, p.parties_in_domain)).collect();
    assert_eq!(trend, vec![("2024-01-31", 1, 1), ("2025-01-31", 1, 2)]);
}
on_every_backend!(consolidation_counts, consolidation_matches_hand_computed_counts);

async fn malformed_input_is_refused_and_stores_nothing(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi = est_dsi(hub, G1, E2).await;

    let mut d = v1_e2();
    d.applications[1].hosting = 42;
    let m = invalid(push(&dsi, E2, d, "").await);
    assert!(m.contains("applications[1].hosting") && m.contains("unknown enum value 42"), "{m}");

    let mut d = v1_e2();
    d.applications[2].domain = 0;
    let m = invalid(push(&dsi, E2, d, "").await);
    assert!(m.contains("applications[2].domain") && m.contains("UNSPECIFIED is refused"), "{m}");

    let mut d = v1_e2();
    d.applications[0].name = "   ".into();
    assert!(invalid(push(&dsi, E2, d, "").await).contains("applications[0].name: must not be empty"));

    let mut d = v1_e2();
    d.applications.push(app("gam", "SIB", "Sillage", D::PatientAdministration, H::OnPremise, false));
    let m = invalid(push(&dsi, E2, d, "").await);
    assert!(m.contains("applications[3].id") && m.contains("duplicate id 'gam' (also applications[1])"), "{m}");

    let mut d = v1_e2();
    d.security.as_mut().unwrap().pssi_status = 7;
    assert!(invalid(push(&dsi, E2, d, "").await).contains("security.pssi_status"));

    let mut d = v1_e2();
    d.resources = resources(Some(-5.0), None, &[]);
    assert!(invalid(push(&dsi, E2, d, "").await).contains("resources.budget_operating_eur"));

    let m = invalid(
        dsi.inventory()
            .push_inventory(proto::PushInventoryRequest {
                establishment_id: E2.into(),
                document: None,
                request_id: String::new(),
            })
            .await,
    );
    assert!(m.contains("document"), "{m}");

    // More applications than an inventory may hold: refused whole, with the limit.
    let many = (0..=canonical::MAX_APPLICATIONS)
        .map(|i| app(&format!("a{i}"), "V", &format!("N{i}"), D::Other, H::OnPremise, false))
        .collect();
    let m = invalid(push(&dsi, E2, doc("2025-01-01", many), "").await);
    assert!(m.contains("applications") && m.contains("at most 20000"), "{m}");

    // Nothing was stored by any of these.
    assert!(versions(&dsi, E2).await.unwrap().is_empty());
    assert_eq!(get(&dsi, E2, 0).await.unwrap_err().code(), Code::NotFound);
}
on_every_backend!(malformed_input, malformed_input_is_refused_and_stores_nothing);

/// A push larger than the hub's --max-message-bytes is refused before it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_push_is_refused_with_the_limit() {
    for backend in common::backends() {
        let hub = TestHub::start_with(backend, |a| a.max_message_bytes = 64 * 1024).await;
        seed_territory(&hub).await;
        let dsi = est_dsi(&hub, G1, E2).await;
        let apps = (0..2_000)
            .map(|i| app(&format!("app-{i}"), "Vendor", &format!("Application {i}"), D::Other, H::OnPremise, false))
            .collect();
        let s = push(&dsi, E2, doc("2025-01-01", apps), "").await.unwrap_err();
        assert_eq!(s.code(), Code::OutOfRange, "{}", s.message());
        assert!(s.message().contains("the limit is: 65536 bytes"), "{}", s.message());
        assert!(versions(&dsi, E2).await.unwrap().is_empty());
        hub.stop().await;
    }
}

/// Concurrent pushes for one establishment get distinct, consecutive version numbers
/// (on PostgreSQL through two hub replicas on one database), and concurrent identical
/// pushes create one version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_get_distinct_versions() {
    for backend in common::backends() {
        let hub = TestHub::start(backend).await;
        let replica = match backend {
            Backend::Postgres => {
                let (url, data_dir) = (hub.database_url.clone(), hub.args.data_dir.clone());
                Some(
                    TestHub::start_with(Backend::Postgres, move |a| {
                        a.database_url = url;
                        a.data_dir = data_dir;
                    })
                    .await,
                )
            }
            Backend::Sqlite => None,
        };
        seed_territory(&hub).await;
        let token = hub.token(Role::EstablishmentDsi, "dsi-e2", Some(G1), Some(E2), None);
        let a = hub.client(&token).await;
        let b = match &replica {
            Some(r) => r.client(&token).await,
            None => hub.client(&token).await,
        };
        // Distinct contents, first pushes of the establishment (no head row yet).
        let pushes = (0..12u32).map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            let mut d = v1_e2();
            d.applications[0].users_count = 1_000 + i;
            async move { push(&c, E2, d, "").await }
        });
        let results = futures::future::join_all(pushes).await;
        let mut numbers: Vec<u32> = results.into_iter().map(|r| r.unwrap().version.unwrap().version).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "{backend:?}");
        assert_eq!(versions(&a, E2).await.unwrap().len(), 12);

        // Identical concurrent pushes for E1 (first push there too): one version.
        let token = hub.token(Role::EstablishmentDsi, "dsi-e1", Some(G1), Some(E1), None);
        let (a, b) = (
            hub.client(&token).await,
            match &replica {
                Some(r) => r.client(&token).await,
                None => hub.client(&token).await,
            },
        );
        let same = (0..6).map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { push(&c, E1, v1_e2(), "").await }
        });
        let results: Vec<proto::PushInventoryResponse> =
            futures::future::join_all(same).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(results.iter().filter(|r| r.created).count(), 1, "{backend:?}");
        let numbers: BTreeSet<u32> = results.iter().map(|r| r.version.as_ref().unwrap().version).collect();
        assert_eq!(numbers.into_iter().collect::<Vec<_>>(), vec![1]);

        // The consolidated view follows a push made through the other replica (the
        // hub keeps the rows of the latest versions between calls).
        let dsi = ght_dsi(&hub, G1).await;
        for _ in 0..2 {
            let before = consolidated(&dsi, G1).await.unwrap();
            assert!(!format!("{:?}", before.domains).contains("Glims"), "{backend:?}");
        }
        let mut d = v1_e2();
        let lab = d.applications.iter_mut().find(|a| a.id == "lab").unwrap();
        (lab.vendor, lab.name) = ("MIPS".into(), "Glims".into());
        let pushed = push(&b, E1, d, "").await.unwrap();
        assert_eq!(pushed.version.unwrap().version, 2);
        let after = consolidated(&dsi, G1).await.unwrap();
        assert!(format!("{:?}", after.domains).contains("Glims"), "{backend:?}: {:?}", after.domains);
        let e1 = after.establishments.iter().find(|e| e.establishment_id == E1).unwrap();
        assert_eq!(e1.version, 2);

        if let Some(r) = replica {
            r.stop().await;
        }
        hub.stop().await;
    }
}

async fn facts_follow_the_latest_inventory(hub: &TestHub) {
    seed_territory(hub).await;
    let mut e1 = doc(
        "2025-01-31",
        vec![
            app("dpi", " Dedalus ", "Dx  Care", D::Dpi, H::SharedGht, true),
            app("pacs", "Fujifilm", "Synapse", D::Imaging, H::HdsHost, false),
            app("rdv", "Doctolib", "Doctolib", D::Scheduling, H::Saas, false),
        ],
    );
    e1.security = security(proto::PssiStatus::Adopted);
    e1.resources = resources(Some(8_200_000.0), Some(3_100_000.0), &[]);
    let dsi = est_dsi(hub, G1, E1).await;
    push(&dsi, E1, doc("2024-01-01", vec![app("old", "X", "Y", D::Other, H::OnPremise, false)]), "").await.unwrap();
    let latest = push(&dsi, E1, e1, "").await.unwrap().version.unwrap();
    // E2: no security or resources section.
    push(
        &est_dsi(hub, G1, E2).await,
        E2,
        doc("2025-01-31", vec![app("dpi", "Maincare", "M-Crossway", D::Dpi, H::OnPremise, false)]),
        "",
    )
    .await
    .unwrap();

    let facts = ghthub::facts::load(hub.db(), G1).await.unwrap();
    assert_eq!(facts.ght_id, G1);
    let e = |id: &str| facts.establishments.iter().find(|p| p.establishment_id == id).unwrap();
    let f1 = e(E1);
    assert_eq!(f1.role, "SUPPORT");
    assert!(f1.has_inventory);
    let at = chrono::DateTime::parse_from_rfc3339(&latest.pushed_at).unwrap().timestamp_micros();
    assert_eq!(f1.inventory_at, Some(at));
    assert_eq!(f1.is_budget_operating_eur, Some(8_200_000.0));
    assert_eq!(f1.is_budget_investment_eur, Some(3_100_000.0));
    assert_eq!(f1.pssi_adopted, Some(true));
    let af = |domain: &str, product: &str, target: bool, hosting: &str| AppFacts {
        domain: domain.into(),
        product: product.into(),
        is_convergence_target: target,
        hosting: hosting.into(),
    };
    assert_eq!(
        f1.applications,
        vec![
            af("DPI", "dedalus/dx care", true, "SHARED_GHT"),
            af("IMAGING", "fujifilm/synapse", false, "HDS_HOST"),
            af("SCHEDULING", "doctolib/doctolib", false, "SAAS"),
        ]
    );
    let f2 = e(E2);
    assert_eq!(f2.role, "PARTIE");
    assert!(f2.has_inventory);
    assert_eq!((f2.is_budget_operating_eur, f2.is_budget_investment_eur, f2.pssi_adopted), (None, None, None));
    assert_eq!(f2.applications, vec![af("DPI", "maincare/m-crossway", false, "ON_PREMISE")]);
    let f3 = e(E3);
    assert_eq!(f3.role, "ASSOCIE");
    assert!(!f3.has_inventory);
    assert_eq!(f3.inventory_at, None);
    assert!(f3.applications.is_empty());

    // A PSSI in progress is "not adopted", not "unknown".
    let mut e2 = doc("2025-02-01", vec![]);
    e2.security = security(proto::PssiStatus::InProgress);
    push(&est_dsi(hub, G1, E2).await, E2, e2, "").await.unwrap();
    let facts = ghthub::facts::load(hub.db(), G1).await.unwrap();
    assert_eq!(facts.establishments.iter().find(|p| p.establishment_id == E2).unwrap().pssi_adopted, Some(false));
}
on_every_backend!(facts_contract, facts_follow_the_latest_inventory);

/// The documented example files parse, validate and push; the YAML and the JSON
/// example hold the same inventory, so the second push changes nothing.
async fn example_files_push(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi = est_dsi(hub, G1, E2).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let yaml = dir.join("inventory-ch-luneville.yaml");
    let json = dir.join("inventory-ch-luneville.json");
    let parse =
        |p: &std::path::Path| document::parse(&std::fs::read(p).unwrap(), Format::from_path(p).unwrap()).unwrap();
    let first = push(&dsi, E2, parse(&yaml), "").await.unwrap();
    assert!(first.created);
    assert!(first.version.as_ref().unwrap().application_count >= 20);
    let second = push(&dsi, E2, parse(&json), "").await.unwrap();
    assert!(!second.created, "the JSON example differs from the YAML one");
    assert_eq!(second.version, first.version);
}
on_every_backend!(examples_push, example_files_push);

/// `ghthub demo seed --only inventory`: hundreds of applications through the service,
/// targets with parties not yet on them, two versions for some parties; a second run
/// stores nothing new.
async fn demo_seed_is_realistic_and_idempotent(hub: &TestHub) {
    use ghthub::demo::{self, SeedArgs, SeedPart, DEMO_GHT};
    let args = SeedArgs {
        only: SeedPart::Inventory,
        parties: 8,
        seed: 2017,
        patients: 0,
        signing_key: hub.args.dev_paths().token_signing_key(),
        issuer: hub.args.token_issuer.clone(),
        audience: hub.args.token_audience.clone(),
    };
    let client = hub.admin().await;
    demo::seed(args.clone(), &client).await.unwrap();
    let g = ght_dsi(hub, DEMO_GHT).await;
    let first = consolidated(&g, DEMO_GHT).await.unwrap();
    let t = first.totals.clone().unwrap();
    assert_eq!((t.parties, t.parties_with_inventory), (9, 9));
    assert!(t.applications >= 500, "{} applications", t.applications);
    assert!(t.budget_operating_eur > 10_000_000.0 && t.staff_fte > 100.0, "{t:?}");
    assert!(first.establishments.iter().all(|e| e.has_inventory));
    assert!(first.establishments.iter().any(|e| e.version == 2), "some parties have a history");
    let dpi = first.domains.iter().find(|d| d.domain == D::Dpi as i32).unwrap();
    assert!(dpi.overlap && !dpi.target_product.is_empty() && !dpi.parties_not_on_target.is_empty(), "{dpi:?}");
    assert!(!first.common_products.is_empty());
    let map = convergence(&g, DEMO_GHT).await.unwrap();
    assert!(map.domains.iter().any(|d| d.trend.len() >= 2), "trends show");

    demo::seed(args, &client).await.unwrap();
    let second = consolidated(&g, DEMO_GHT).await.unwrap();
    let versions = |v: &proto::ConsolidatedInventoryResponse| {
        v.establishments.iter().map(|e| (e.establishment_id.clone(), e.version)).collect::<Vec<_>>()
    };
    assert_eq!(versions(&second), versions(&first));
    assert_eq!(second.domains, first.domains);
}
on_every_backend!(demo_seed, demo_seed_is_realistic_and_idempotent);
