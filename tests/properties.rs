//! Property tests of pure domain logic (no hub, no database):
//! - inventory: the diff between two versions and the canonical content hash;
//! - identity: sequences of merges, links and unlinks planned on the index as it is
//!   after the previous ones, then undone.

use std::collections::{BTreeMap, BTreeSet};

use ghthub::{
    identity::changes::{
        invert, plan_link, plan_merge, plan_unlink, Change, Column, Decision, IndexLocal, OpenCandidate, Val,
    },
    inventory::{canonical::canonicalize, diff::diff, types::EnumCode},
    proto::{self, application_interface::Peer, InventoryChangeKind as Kind, InventorySection as Section},
};
use proptest::prelude::*;

// ---------------------------------------------------------------- inventory

/// Every value of a proto enum but UNSPECIFIED.
fn values<E: EnumCode>() -> Vec<i32> {
    (1..=64).filter(|v| E::try_from(*v).is_ok()).collect()
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &[T]) -> impl Strategy<Value = T> {
    prop::sample::select(items.to_vec())
}

/// Names from a small pool, some equal once canonical ("Dx  Care " and "Dx Care"), so
/// that two versions share items, differ in some, and differ only in spacing.
fn name() -> impl Strategy<Value = String> {
    pick(&["DxCare", "Dx Care", " Dx  Care ", "Pastel", "Orbis"]).prop_map(String::from)
}

const APP_IDS: [&str; 5] = ["dpi", "gam", "lab", "pacs", "rh"];

fn application() -> impl Strategy<Value = proto::Application> {
    (
        name(),
        pick(&["Dedalus", "Maincare", "Dedalus "]),
        pick(&["", "1.0", "8.4"]),
        pick(&values::<proto::FunctionalDomain>()),
        pick(&values::<proto::HostingMode>()),
        0u32..3,
        prop::collection::vec(
            (
                pick(&values::<proto::InterfaceStandard>()),
                prop_oneof![
                    pick(&APP_IDS).prop_map(|id| Peer::ApplicationId(id.into())),
                    pick(&["DMP", "MSSanté", " DMP"]).prop_map(|s| Peer::ExternalSystem(s.into())),
                ],
            ),
            0..3,
        ),
        pick(&["", "2027-12-31", "2027-1-1"]),
    )
        .prop_map(|(name, vendor, version, domain, hosting, users_count, itfs, end_of_support)| {
            proto::Application {
                id: String::new(),
                name,
                vendor: vendor.into(),
                version: version.into(),
                domain,
                hosting,
                users_count,
                interfaces: itfs
                    .into_iter()
                    .map(|(standard, peer)| proto::ApplicationInterface { standard, peer: Some(peer) })
                    .collect(),
                end_of_support: end_of_support.into(),
                // One target per domain is checked by canonicalize; not what is tested here.
                convergence_target: false,
            }
        })
}

fn infrastructure() -> impl Strategy<Value = proto::Infrastructure> {
    let dc = (name(), pick(&values::<proto::DataCentreKind>()), pick(&["", "Site A"]), any::<bool>());
    let link = (
        pick(&["Site A", "Site B"]),
        pick(&["Site B", "GHT"]),
        pick(&values::<proto::NetworkLinkKind>()),
        1u32..3,
        any::<bool>(),
    );
    let backup = (pick(&values::<proto::BackupFrequency>()), any::<bool>(), pick(&["", "2025-01-01"])).prop_map(
        |(frequency, offsite_copy, last)| proto::BackupPolicy {
            frequency,
            offsite_copy,
            immutable_copy: !offsite_copy,
            last_restore_test: last.into(),
        },
    );
    let continuity = (pick(&values::<proto::ContinuityPlanStatus>()), 0u32..3).prop_map(|(pra, rto)| {
        proto::ContinuityPlans { pra, pca: pra, last_exercise: String::new(), rto_hours: rto, rpo_hours: 1 }
    });
    (
        prop::collection::btree_map(pick(&["dc1", "dc2", "dc3"]), dc, 0..3),
        prop::collection::btree_map(pick(&["l1", "l2", "l3"]), link, 0..3),
        0u32..3,
        pick(&[0.0, 12.5, -0.0]),
        prop::option::of(backup),
        prop::option::of(continuity),
    )
        .prop_map(|(dcs, links, servers, storage_tb, backup, continuity)| proto::Infrastructure {
            data_centres: dcs
                .into_iter()
                .map(|(id, (name, kind, site, hosts_production))| proto::DataCentre {
                    id: id.into(),
                    name,
                    kind,
                    site: site.into(),
                    hosts_production,
                })
                .collect(),
            physical_servers: servers,
            virtual_machines: servers * 10,
            virtualisation_platform: String::new(),
            storage_tb,
            network_links: links
                .into_iter()
                .map(|(id, (from, to, kind, bandwidth_mbps, redundant))| proto::NetworkLink {
                    id: id.into(),
                    from_site: from.into(),
                    to_site: to.into(),
                    kind,
                    bandwidth_mbps: bandwidth_mbps * 100,
                    redundant,
                })
                .collect(),
            backup,
            continuity,
        })
}

fn security() -> impl Strategy<Value = proto::SecurityPosture> {
    (pick(&values::<proto::PssiStatus>()), pick(&values::<proto::HdsStatus>()), any::<bool>(), 0u32..3).prop_map(
        |(pssi_status, hds_status, rssi_named, incidents)| proto::SecurityPosture {
            pssi_status,
            pssi_adopted_on: String::new(),
            rssi_named,
            rssi_shared_with_ght: false,
            last_audit: String::new(),
            incidents_last_12_months: incidents,
            hds_status,
        },
    )
}

fn resources() -> impl Strategy<Value = proto::IsResources> {
    (
        2024u32..2026,
        prop::option::of(pick(&[1e6, 2.5e6])),
        prop::collection::btree_map(pick(&values::<proto::StaffCategory>()), pick(&[1.0, 2.5]), 0..3),
    )
        .prop_map(|(year, budget, staff)| proto::IsResources {
            year,
            budget_operating_eur: budget,
            budget_investment_eur: None,
            staff: staff.into_iter().map(|(category, fte)| proto::StaffLine { category, fte }).collect(),
        })
}

/// A valid document (ids unique, interfaces naming applications of the document).
fn document() -> impl Strategy<Value = proto::InventoryDocument> {
    (
        pick(&["2025-01-31", "2025-06-30", "2025-6-30"]),
        pick(&values::<proto::InventorySource>()),
        prop::collection::btree_map(pick(&APP_IDS), application(), 0..5),
        prop::option::of(infrastructure()),
        prop::option::of(security()),
        prop::option::of(resources()),
    )
        .prop_map(|(as_of, source, apps, infrastructure, security, resources)| {
            let ids: BTreeSet<&str> = apps.keys().copied().collect();
            let applications = apps
                .iter()
                .map(|(id, a)| {
                    let mut a = a.clone();
                    a.id = id.to_string();
                    a.interfaces.retain(|i| match &i.peer {
                        Some(Peer::ApplicationId(p)) => p != id && ids.contains(p.as_str()),
                        _ => true,
                    });
                    a
                })
                .collect();
            proto::InventoryDocument { as_of: as_of.into(), source, applications, infrastructure, security, resources }
        })
}

/// The same document with its item lists in another order.
fn reordered(d: &proto::InventoryDocument, k: usize) -> proto::InventoryDocument {
    fn turn<T>(v: &mut Vec<T>, k: usize) {
        if !v.is_empty() {
            let n = v.len();
            v.rotate_left(k % n);
            if k % 2 == 1 {
                v.reverse();
            }
        }
    }
    let mut d = d.clone();
    turn(&mut d.applications, k);
    for a in &mut d.applications {
        turn(&mut a.interfaces, k);
    }
    if let Some(i) = &mut d.infrastructure {
        turn(&mut i.data_centres, k);
        turn(&mut i.network_links, k + 1);
    }
    if let Some(r) = &mut d.resources {
        turn(&mut r.staff, k);
    }
    d
}

const SECTIONS: [Section; 8] = [
    Section::Document,
    Section::Applications,
    Section::DataCentres,
    Section::NetworkLinks,
    Section::Infrastructure,
    Section::Security,
    Section::Resources,
    Section::Staff,
];

/// The items of one section, by item id, each reduced to what the diff compares
/// (an item without its sub-item lists, which are sections of their own).
fn items(d: &proto::InventoryDocument, section: Section) -> BTreeMap<String, String> {
    let infra = d.infrastructure.clone();
    match section {
        Section::Document => [("document".to_string(), format!("{} {}", d.as_of, d.source))].into(),
        Section::Applications => d.applications.iter().map(|a| (a.id.clone(), format!("{a:?}"))).collect(),
        Section::DataCentres => {
            infra.iter().flat_map(|i| &i.data_centres).map(|x| (x.id.clone(), format!("{x:?}"))).collect()
        }
        Section::NetworkLinks => {
            infra.iter().flat_map(|i| &i.network_links).map(|x| (x.id.clone(), format!("{x:?}"))).collect()
        }
        Section::Infrastructure => infra
            .map(|mut i| {
                i.data_centres.clear();
                i.network_links.clear();
                ("infrastructure".to_string(), format!("{i:?}"))
            })
            .into_iter()
            .collect(),
        Section::Security => d.security.iter().map(|s| ("security".to_string(), format!("{s:?}"))).collect(),
        Section::Resources => d
            .resources
            .clone()
            .map(|mut r| {
                r.staff.clear();
                ("resources".to_string(), format!("{r:?}"))
            })
            .into_iter()
            .collect(),
        Section::Staff => d
            .resources
            .iter()
            .flat_map(|r| &r.staff)
            .map(|s| (proto::StaffCategory::code_of(s.category), format!("{s:?}")))
            .collect(),
        Section::Unspecified => BTreeMap::new(),
    }
}

/// (section, item id) → change kind.
fn kinds(changes: &[proto::InventoryItemChange]) -> BTreeMap<(i32, String), i32> {
    changes.iter().map(|c| ((c.section, c.item_id.clone()), c.kind)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// diff(a, a) is empty, and diff(a, b) sorts every item of either version into
    /// exactly one of added, removed, changed and unchanged: added ∪ changed ∪
    /// unchanged are b's items, removed ∪ changed ∪ unchanged are a's, and changed
    /// are exactly the items of both whose content differs.
    #[test]
    fn diff_partitions_the_items(a in document(), b in document()) {
        let (a, b) = (canonicalize(a).unwrap().document, canonicalize(b).unwrap().document);
        prop_assert!(diff(&a, &a).is_empty());
        let changes = diff(&a, &b);
        prop_assert_eq!(kinds(&changes).len(), changes.len(), "one change per item");
        for section in SECTIONS {
            let (ia, ib) = (items(&a, section), items(&b, section));
            let of_kind = |k: Kind| -> BTreeSet<String> {
                changes.iter().filter(|c| c.section == section as i32 && c.kind == k as i32).map(|c| c.item_id.clone()).collect()
            };
            let (added, removed, changed) = (of_kind(Kind::Added), of_kind(Kind::Removed), of_kind(Kind::Changed));
            let both: BTreeSet<String> = ia.keys().filter(|k| ib.contains_key(*k)).cloned().collect();
            let differing: BTreeSet<String> = both.iter().filter(|k| ia[*k] != ib[*k]).cloned().collect();
            let unchanged: BTreeSet<String> = both.difference(&changed).cloned().collect();
            prop_assert_eq!(&changed, &differing, "{:?}", section);
            prop_assert!(added.is_disjoint(&changed) && removed.is_disjoint(&changed) && added.is_disjoint(&removed));
            let in_b: BTreeSet<String> = added.union(&changed).chain(unchanged.iter()).cloned().collect();
            let in_a: BTreeSet<String> = removed.union(&changed).chain(unchanged.iter()).cloned().collect();
            prop_assert_eq!(in_b, ib.keys().cloned().collect::<BTreeSet<_>>(), "{:?}", section);
            prop_assert_eq!(in_a, ia.keys().cloned().collect::<BTreeSet<_>>(), "{:?}", section);
        }
        for c in changes.iter().filter(|c| c.kind == Kind::Changed as i32) {
            prop_assert!(!c.fields.is_empty());
            prop_assert!(c.fields.iter().all(|f| f.before != f.after), "{:?}", c);
        }
    }

    /// diff(b, a) is diff(a, b) with added and removed swapped and every changed
    /// field's before and after swapped.
    #[test]
    fn diff_is_antisymmetric(a in document(), b in document()) {
        let (a, b) = (canonicalize(a).unwrap().document, canonicalize(b).unwrap().document);
        let forward = diff(&a, &b);
        let backward = diff(&b, &a);
        prop_assert_eq!(forward.len(), backward.len());
        let back: BTreeMap<(i32, String), &proto::InventoryItemChange> =
            backward.iter().map(|c| ((c.section, c.item_id.clone()), c)).collect();
        for f in &forward {
            let r = back.get(&(f.section, f.item_id.clone()));
            prop_assert!(r.is_some(), "{:?} missing backwards", f);
            let r = r.unwrap();
            let swapped = match Kind::try_from(f.kind).unwrap() {
                Kind::Added => Kind::Removed,
                Kind::Removed => Kind::Added,
                k => k,
            };
            prop_assert_eq!(r.kind, swapped as i32);
            let flipped: Vec<(String, String, String)> =
                f.fields.iter().map(|x| (x.field.clone(), x.after.clone(), x.before.clone())).collect();
            let fields: Vec<(String, String, String)> =
                r.fields.iter().map(|x| (x.field.clone(), x.before.clone(), x.after.clone())).collect();
            prop_assert_eq!(fields, flipped);
        }
    }

    /// The content hash does not depend on item order, spacing or an unpadded date;
    /// two canonical documents have the same hash exactly when they are equal, which
    /// is exactly when their diff is empty.
    #[test]
    fn canonical_hash_is_the_identity_of_the_content(a in document(), b in document(), k in 0usize..8) {
        let ca = canonicalize(a.clone()).unwrap();
        let cb = canonicalize(b).unwrap();
        let shuffled = canonicalize(reordered(&a, k)).unwrap();
        prop_assert_eq!(&shuffled, &ca);
        prop_assert_eq!(canonicalize(ca.document.clone()).unwrap(), ca.clone(), "idempotent");
        prop_assert_eq!(ca.hash == cb.hash, ca.document == cb.document);
        prop_assert_eq!(ca.document == cb.document, diff(&ca.document, &cb.document).is_empty());
    }
}

// ---------------------------------------------------------------- identity index

/// The index as a map of (column, key) → value, as the identity store holds it.
type Model = BTreeMap<(Column, Vec<String>), Val>;

/// Applies changes all or nothing, with the store's optimistic check: a row whose value
/// is not the expected "before" aborts the whole change list (one transaction).
fn apply(model: &mut Model, changes: &[Change]) -> Result<(), String> {
    let mut next = model.clone();
    for c in changes {
        let slot = next.get_mut(&(c.column, c.key.clone())).ok_or_else(|| format!("no row {c:?}"))?;
        if *slot != c.before {
            return Err(format!("stale: {c:?} found {slot:?}"));
        }
        *slot = c.after.clone();
    }
    *model = next;
    Ok(())
}

const ESTABLISHMENTS: usize = 2;
const LOCALS: usize = 6;

fn local_key(i: usize) -> Vec<String> {
    vec![format!("E{}", i % ESTABLISHMENTS), format!("P{i}")]
}

/// The index state of local identity `i`, read from the model.
fn local(model: &Model, i: usize) -> IndexLocal {
    let k = local_key(i);
    let text = |v: &Val| match v {
        Val::Text(s) => Some(s.clone()),
        _ => None,
    };
    IndexLocal {
        establishment_id: k[0].clone(),
        ipp: k[1].clone(),
        territorial_id: text(&model[&(Column::LocalTerritorial, k.clone())]).unwrap_or_default(),
        merged_into_ipp: text(&model[&(Column::LocalMergedInto, k)]),
    }
}

fn locals_of_t(model: &Model, t: &str) -> Vec<IndexLocal> {
    (0..LOCALS).map(|i| local(model, i)).filter(|l| l.territorial_id == t).collect()
}

fn encounters_of(model: &Model, l: &IndexLocal) -> Vec<String> {
    model
        .iter()
        .filter(|((c, k), v)| {
            *c == Column::EncounterIpp && k[0] == l.establishment_id && **v == Val::text(l.ipp.as_str())
        })
        .map(|((_, k), _)| k[1].clone())
        .collect()
}

fn open_candidate(model: &Model) -> Option<OpenCandidate> {
    let k = vec!["C1".to_string()];
    (model[&(Column::CandidateStatus, k)] == Val::text("OPEN")).then(|| OpenCandidate {
        id: "C1".into(),
        status: "OPEN".into(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    })
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Merge(usize, usize),
    Link(usize, usize),
    Unlink(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..LOCALS, 0..LOCALS).prop_map(|(a, b)| Op::Merge(a, b)),
        (0..LOCALS, 0..LOCALS).prop_map(|(a, b)| Op::Link(a, b)),
        (0..LOCALS).prop_map(Op::Unlink),
    ]
}

/// A territory: each local identity in one of a few territorial identities (plus the
/// ones unlinks will create, pre-provisioned), encounters owned by random locals.
fn start(territorial: &[usize], owners: &[usize], ops: usize) -> Model {
    let mut m = Model::new();
    for (i, t) in territorial.iter().enumerate() {
        m.insert((Column::LocalTerritorial, local_key(i)), Val::text(format!("T{t}")));
        m.insert((Column::LocalMergedInto, local_key(i)), Val::Null);
    }
    for t in 0..LOCALS {
        m.insert((Column::TerritorialMergedInto, vec![format!("T{t}")]), Val::Null);
    }
    for n in 0..ops {
        m.insert((Column::TerritorialMergedInto, vec![format!("N{n}")]), Val::Null);
    }
    for (k, owner) in owners.iter().enumerate() {
        let o = local_key(*owner);
        m.insert((Column::EncounterIpp, vec![o[0].clone(), format!("V{k}")]), Val::text(o[1].as_str()));
    }
    for (c, v) in [
        (Column::CandidateStatus, Val::text("OPEN")),
        (Column::CandidateDecidedBy, Val::Null),
        (Column::CandidateDecidedAt, Val::Null),
        (Column::CandidateReason, Val::Null),
    ] {
        m.insert((c, vec!["C1".into()]), v);
    }
    m
}

/// The plan of `op` on the index as it is, or None where the hub refuses the operation
/// (same preconditions as `identity::index` and the service).
fn plan(model: &Model, op: Op, step: usize) -> Option<Vec<Change>> {
    let d = Decision { by: "dim", at: step as i64, reason: "test" };
    match op {
        Op::Merge(s, m) => {
            let (sv, mg) = (local(model, s), local(model, m));
            if s == m || sv.establishment_id != mg.establishment_id {
                return None;
            }
            if sv.merged_into_ipp.is_some() || mg.merged_into_ipp.is_some() {
                return None;
            }
            let of_mt = locals_of_t(model, &mg.territorial_id);
            Some(plan_merge(&sv, &mg, &of_mt, &encounters_of(model, &mg), open_candidate(model).as_ref(), &d))
        }
        Op::Link(a, b) => {
            let (la, lb) = (local(model, a), local(model, b));
            if la.merged_into_ipp.is_some() || lb.merged_into_ipp.is_some() || la.territorial_id == lb.territorial_id {
                return None;
            }
            let of_bt = locals_of_t(model, &lb.territorial_id);
            Some(plan_link(&of_bt, &la.territorial_id, &lb.territorial_id, open_candidate(model).as_ref(), &d))
        }
        Op::Unlink(x) => {
            let lx = local(model, x);
            if lx.merged_into_ipp.is_some() {
                return None;
            }
            let of_t = locals_of_t(model, &lx.territorial_id);
            let follows = |l: &IndexLocal| {
                (l.establishment_id == lx.establishment_id && l.ipp == lx.ipp)
                    || (l.establishment_id == lx.establishment_id && l.merged_into_ipp.as_deref() == Some(&lx.ipp))
            };
            if !of_t.iter().any(|l| !follows(l) && l.merged_into_ipp.is_none()) {
                return None;
            }
            Some(plan_unlink(&lx, &of_t, &format!("N{step}")))
        }
    }
}

/// What must hold of the index after any sequence of operations.
fn consistent(model: &Model) -> Result<(), String> {
    for i in 0..LOCALS {
        let l = local(model, i);
        // No identity sits in a retired territorial identity.
        if model[&(Column::TerritorialMergedInto, vec![l.territorial_id.clone()])] != Val::Null {
            return Err(format!("{l:?} is in a retired territorial identity"));
        }
        // A merged IPP stays with the identity it was merged into.
        if let Some(into) = &l.merged_into_ipp {
            let survivor = (0..LOCALS)
                .map(|j| local(model, j))
                .find(|s| s.establishment_id == l.establishment_id && &s.ipp == into)
                .ok_or_else(|| format!("{l:?} merged into an unknown IPP"))?;
            if survivor.territorial_id != l.territorial_id {
                return Err(format!("{l:?} is not in the territorial identity of {survivor:?}"));
            }
            if !encounters_of(model, &l).is_empty() {
                return Err(format!("{l:?} is merged but still owns encounters"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of merges, links and unlinks, each planned on the index as the
    /// previous ones left it: every plan applies, the index stays consistent, and
    /// undoing the plans in reverse order (unmerge applies the inverse of the merge's
    /// changes) gives back each earlier state exactly, down to the first.
    #[test]
    fn operations_then_undo_in_reverse_restore_every_state(
        territorial in prop::collection::vec(0usize..3, LOCALS),
        owners in prop::collection::vec(0usize..LOCALS, 0..6),
        ops in prop::collection::vec(op(), 1..10),
    ) {
        let mut model = start(&territorial, &owners, ops.len());
        prop_assert!(consistent(&model).is_ok());
        let mut done: Vec<(Op, Vec<Change>, Model)> = vec![];
        for (step, op) in ops.iter().enumerate() {
            let Some(changes) = plan(&model, *op, step) else { continue };
            let before = model.clone();
            prop_assert!(apply(&mut model, &changes).is_ok(), "{:?} does not apply: {:?}", op, apply(&mut model.clone(), &changes));
            prop_assert!(consistent(&model).is_ok(), "after {:?}: {:?}", op, consistent(&model));
            done.push((*op, changes, before));
        }
        for (op, changes, before) in done.iter().rev() {
            let undo = invert(changes);
            prop_assert!(apply(&mut model, &undo).is_ok(), "undo of {:?}", op);
            prop_assert_eq!(&model, before, "undo of {:?}", op);
            // An undo never applies twice.
            prop_assert!(changes.is_empty() || apply(&mut model.clone(), &undo).is_err());
        }
    }

    /// Undoing one merge out of order (later operations not undone) either restores
    /// every row it changed exactly or changes nothing at all: the hub then asks for
    /// the later events to be undone first.
    #[test]
    fn an_out_of_order_unmerge_is_exact_or_refused(
        territorial in prop::collection::vec(0usize..3, LOCALS),
        owners in prop::collection::vec(0usize..LOCALS, 0..6),
        ops in prop::collection::vec(op(), 2..10),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut model = start(&territorial, &owners, ops.len());
        let mut merges: Vec<Vec<Change>> = vec![];
        for (step, op) in ops.iter().enumerate() {
            let Some(changes) = plan(&model, *op, step) else { continue };
            apply(&mut model, &changes).unwrap();
            if matches!(op, Op::Merge(..)) {
                merges.push(changes);
            }
        }
        prop_assume!(!merges.is_empty());
        let merge = &merges[pick.index(merges.len())];
        let after = model.clone();
        match unmerge(&mut model, merge) {
            Err(_) => prop_assert_eq!(&model, &after, "a refused unmerge changes nothing"),
            Ok(()) => {
                prop_assert!(consistent(&model).is_ok());
                for c in merge {
                    prop_assert_eq!(&model[&(c.column, c.key.clone())], &c.before);
                }
                let touched: BTreeSet<(Column, Vec<String>)> = merge.iter().map(|c| (c.column, c.key.clone())).collect();
                for (k, v) in &model {
                    if !touched.contains(k) {
                        prop_assert_eq!(v, &after[k]);
                    }
                }
            }
        }
    }
}

/// Runs `ops` from a territory, returning the first inconsistency.
fn run(territorial: &[usize], ops: &[Op]) -> Result<Model, String> {
    let mut model = start(territorial, &[], ops.len());
    for (step, op) in ops.iter().enumerate() {
        let changes = plan(&model, *op, step).ok_or_else(|| format!("{op:?} refused"))?;
        apply(&mut model, &changes)?;
        consistent(&model).map_err(|e| format!("after {op:?}: {e}"))?;
    }
    Ok(model)
}

#[test]
fn unlinking_the_end_of_a_merge_chain() {
    // P2 merged into P0, then P0 into P4 (one establishment), then P4 unlinked.
    let r = run(&[0; LOCALS], &[Op::Merge(0, 2), Op::Merge(4, 0), Op::Unlink(4)]);
    assert!(r.is_ok(), "{r:?}");
}

/// An unmerge as `index::unmerge` does it: the inverse of the merge's changes under the
/// optimistic check of the rows the merge wrote, then refused (nothing changed) when a
/// merged IPP would end up outside its survivor's territorial identity.
fn unmerge(model: &mut Model, merge: &[Change]) -> Result<(), String> {
    let mut next = model.clone();
    apply(&mut next, &invert(merge))?;
    consistent(&next)?;
    *model = next;
    Ok(())
}

/// P1 is merged into P3, which moves T0 (P0, P1, P5) into P3's T1; then P5 is merged
/// into P3 with no territorial change (already in T1). The first merge's inverse alone
/// passes the check of the rows it wrote and would move P5 back to T0, away from P3,
/// the identity it is merged into: the unmerge is refused. (The hub's own refusal is
/// tested end to end in `tests/identity.rs`, `an_unmerge_out_of_order_is_refused`.)
#[test]
fn an_out_of_order_unmerge_keeps_merged_ipps_with_their_survivor() {
    let territorial = [0, 0, 2, 1, 1, 0];
    let mut model = start(&territorial, &[], 2);
    let first = plan(&model, Op::Merge(3, 1), 0).unwrap();
    apply(&mut model, &first).unwrap();
    let second = plan(&model, Op::Merge(3, 5), 1).unwrap();
    apply(&mut model, &second).unwrap();
    consistent(&model).unwrap();
    assert!(apply(&mut model.clone(), &invert(&first)).is_ok(), "the rows the first merge wrote are unchanged");
    let after = model.clone();
    assert!(unmerge(&mut model, &first).is_err());
    assert_eq!(model, after);
    unmerge(&mut model, &second).unwrap();
    unmerge(&mut model, &first).unwrap();
    assert_eq!(model, start(&territorial, &[], 2));
}

/// A pre-admitted encounter (A05) that receives a leave (A21) and a return (A22) stays
/// pre-admitted, with the anomalies recorded (it used to fold to ADMITTED without an
/// admission).
#[test]
fn a_leave_and_return_do_not_admit_a_pre_admitted_patient() {
    use ghthub::movement::{
        adt::{check, fold, Effect, Mv, Status},
        types::{Class, Trigger},
    };
    let mv = |i: i64, t: Trigger| Mv {
        position: i,
        event_id: format!("e{i}"),
        trigger: t,
        event_time: i * 3_600_000_000,
        medical_unit: "UF1".into(),
        care_unit: String::new(),
        class: (t == Trigger::A05).then_some(Class::HospitalisationComplete),
        target_event_id: None,
        origin: String::new(),
        destination: String::new(),
        cancelled_by: None,
    };
    let mut h = vec![];
    for (i, t) in [Trigger::A05, Trigger::A21, Trigger::A22].into_iter().enumerate() {
        let m = mv(i as i64, t);
        assert_eq!(check(&h, &m).unwrap(), Effect::Insert);
        h.push(m);
    }
    let s = fold(&h);
    assert!(s.status != Status::Admitted || s.admitted_at.is_some(), "{s:?}");
}

/// An application id may be `external:DMP` (ids allow `:`): re-pointing an interface
/// from the external system DMP to that application changes the document, and the
/// diff must show it (it once rendered both peers as `external:DMP`).
#[test]
fn the_diff_tells_an_external_system_from_an_application() {
    let app = |id: &str, peer: Option<Peer>| proto::Application {
        id: id.into(),
        name: "X".into(),
        vendor: "V".into(),
        domain: proto::FunctionalDomain::Lab as i32,
        hosting: proto::HostingMode::OnPremise as i32,
        interfaces: peer
            .map(|p| proto::ApplicationInterface { standard: proto::InterfaceStandard::Fhir as i32, peer: Some(p) })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let doc = |peer: Peer| proto::InventoryDocument {
        as_of: "2025-01-31".into(),
        source: proto::InventorySource::Manual as i32,
        applications: vec![app("external:DMP", None), app("lab", Some(peer))],
        ..Default::default()
    };
    let a = canonicalize(doc(Peer::ExternalSystem("DMP".into()))).unwrap();
    let b = canonicalize(doc(Peer::ApplicationId("external:DMP".into()))).unwrap();
    assert_ne!(a.hash, b.hash);
    assert!(!diff(&a.document, &b.document).is_empty(), "a real change, invisible in the diff");
}
