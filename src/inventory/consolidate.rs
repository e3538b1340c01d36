//! The territorial view of the parties' inventories (SDSI-T): pure functions over
//! what the store loads.
//!
//! Only the parties of the GHT convention (support and parties) are consolidated:
//! they are bound by the convergent IS. The convergence target of a domain is the
//! product the parties declare as target (`convergence_target`); when they disagree,
//! the product declared by most parties wins (ties: smallest key) and the others are
//! reported as conflicts. A party is "on target" in a domain when it runs the target
//! product there; the share on target is over the parties that have an application
//! in the domain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::types::{product_key, EnumCode};
use crate::{proto, time::to_rfc3339};

/// What consolidation needs of one version, computed at push time and stored next
/// to it, so trends and totals never decode whole documents.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionSummary {
    /// Per functional domain with at least one application, in code order.
    #[prost(message, repeated, tag = "1")]
    pub domains: Vec<DomainSummary>,
    /// Staff lines as declared.
    #[prost(message, repeated, tag = "2")]
    pub staff: Vec<proto::StaffLine>,
    /// Applications per hosting mode, indexed by the `HostingMode` value.
    #[prost(uint32, repeated, tag = "3")]
    pub hosting_counts: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DomainSummary {
    /// Domain code, e.g. "DPI".
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(uint32, tag = "2")]
    pub applications: u32,
    /// Distinct product keys, sorted.
    #[prost(string, repeated, tag = "3")]
    pub products: Vec<String>,
    /// Product keys flagged as convergence target (at most one after validation).
    #[prost(string, repeated, tag = "4")]
    pub targets: Vec<String>,
}

impl VersionSummary {
    fn domain(&self, code: &str) -> Option<&DomainSummary> {
        self.domains.iter().find(|d| d.domain == code)
    }
    fn staff_fte(&self) -> f64 {
        self.staff.iter().map(|s| s.fte).sum()
    }
}

/// The summary of a canonical document.
pub fn summarize(doc: &proto::InventoryDocument) -> VersionSummary {
    let mut domains: BTreeMap<&'static str, (u32, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut hosting_counts = vec![0u32; 5];
    for a in &doc.applications {
        let key = product_key(&a.vendor, &a.name);
        let entry = domains.entry(domain_code(a.domain)).or_default();
        entry.0 += 1;
        if a.convergence_target {
            entry.2.insert(key.clone());
        }
        entry.1.insert(key);
        if let Some(c) = usize::try_from(a.hosting).ok().and_then(|h| hosting_counts.get_mut(h)) {
            *c += 1;
        }
    }
    VersionSummary {
        domains: domains
            .into_iter()
            .map(|(domain, (applications, products, targets))| DomainSummary {
                domain: domain.to_string(),
                applications,
                products: products.into_iter().collect(),
                targets: targets.into_iter().collect(),
            })
            .collect(),
        staff: doc.resources.as_ref().map(|r| r.staff.clone()).unwrap_or_default(),
        hosting_counts,
    }
}

fn domain_code(v: i32) -> &'static str {
    proto::FunctionalDomain::try_from(v).map(|d| d.code()).unwrap_or("OTHER")
}

/// An establishment of the GHT and its latest inventory version, if any.
#[derive(Debug, Clone)]
pub struct Party {
    pub id: String,
    pub name: String,
    pub role: proto::EstablishmentRole,
    pub head: Option<Head>,
}

impl Party {
    pub fn in_scope(&self) -> bool {
        matches!(self.role, proto::EstablishmentRole::Support | proto::EstablishmentRole::Partie)
    }
}

/// Metadata of a stored version (the latest one, for consolidation).
#[derive(Debug, Clone)]
pub struct Head {
    pub version: i64,
    pub pushed_at: i64,
    pub as_of: String,
    pub application_count: i64,
    pub budget_operating_eur: Option<f64>,
    pub budget_investment_eur: Option<f64>,
    /// PSSI status code (`ADOPTED`…), None when the security section is absent.
    pub pssi_status: Option<String>,
    pub summary: VersionSummary,
}

/// One application row of a latest version.
#[derive(Debug, Clone)]
pub struct AppRow {
    pub establishment_id: String,
    pub item_id: String,
    pub domain: String,
    pub product: String,
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub hosting: String,
    pub users_count: i64,
    pub is_target: bool,
    pub end_of_support: String,
}

/// A version in the GHT's history, for trends.
#[derive(Debug, Clone)]
pub struct HistoryEvent {
    pub establishment_id: String,
    pub version: i64,
    /// The date the version describes, YYYY-MM-DD (so dates sort as text).
    pub as_of: String,
    pub summary: VersionSummary,
}

/// The figures of one domain over a set of parties' summaries.
#[derive(Debug, Clone, Default, PartialEq)]
struct DomainFigures {
    applications: u32,
    products: BTreeSet<String>,
    target: String,
    conflicts: Vec<String>,
    in_domain: Vec<String>,
    on_target: Vec<String>,
    without: Vec<String>,
}

impl DomainFigures {
    fn share(&self) -> f64 {
        if self.in_domain.is_empty() {
            0.0
        } else {
            self.on_target.len() as f64 / self.in_domain.len() as f64
        }
    }
}

/// `states`: (party id, summary of its latest version), parties with an inventory only.
fn figures(states: &[(&str, &VersionSummary)], domain: &str) -> DomainFigures {
    let mut f = DomainFigures::default();
    let mut declared: BTreeMap<&str, usize> = BTreeMap::new();
    for (party, s) in states {
        match s.domain(domain) {
            Some(d) => {
                f.applications += d.applications;
                f.products.extend(d.products.iter().cloned());
                f.in_domain.push(party.to_string());
                for t in &d.targets {
                    *declared.entry(t.as_str()).or_default() += 1;
                }
            }
            None => f.without.push(party.to_string()),
        }
    }
    // Most declarations first; BTreeMap order makes the smallest key win ties.
    if let Some((target, _)) = declared.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
        f.target = target.to_string();
        f.conflicts = declared.keys().filter(|k| **k != *target).map(|k| k.to_string()).collect();
        for (party, s) in states {
            if s.domain(domain).is_some_and(|d| d.products.iter().any(|p| p == target)) {
                f.on_target.push(party.to_string());
            }
        }
    }
    f
}

fn all_domains<'a>(summaries: impl Iterator<Item = &'a VersionSummary>) -> Vec<String> {
    let set: BTreeSet<&str> = summaries.flat_map(|s| s.domains.iter().map(|d| d.domain.as_str())).collect();
    let mut v: Vec<String> = set.into_iter().map(String::from).collect();
    v.sort_by_key(|d| domain_value(d));
    v
}

fn domain_value(code: &str) -> i32 {
    proto::FunctionalDomain::from_code(code).map(|d| d as i32).unwrap_or(i32::MAX)
}

fn totals(parties: &[Party]) -> proto::TerritoryTotals {
    let mut t = proto::TerritoryTotals {
        establishments: parties.len() as u32,
        parties: parties.iter().filter(|p| p.in_scope()).count() as u32,
        ..Default::default()
    };
    let mut staff: BTreeMap<i32, f64> = BTreeMap::new();
    let mut products: BTreeSet<(&str, &str)> = BTreeSet::new();
    let (mut hosted_shared, mut hosted_all) = (0u64, 0u64);
    for p in parties.iter().filter(|p| p.in_scope()) {
        let Some(h) = &p.head else { continue };
        t.parties_with_inventory += 1;
        t.applications += h.application_count as u32;
        t.budget_operating_eur += h.budget_operating_eur.unwrap_or(0.0);
        t.budget_investment_eur += h.budget_investment_eur.unwrap_or(0.0);
        if h.budget_operating_eur.is_some() && h.budget_investment_eur.is_some() {
            t.parties_with_budget += 1;
        }
        if h.pssi_status.as_deref() == Some(proto::PssiStatus::Adopted.code()) {
            t.parties_with_pssi_adopted += 1;
        }
        for s in &h.summary.staff {
            *staff.entry(s.category).or_default() += s.fte;
        }
        for d in &h.summary.domains {
            products.extend(d.products.iter().map(|p| (d.domain.as_str(), p.as_str())));
        }
        for (mode, n) in h.summary.hosting_counts.iter().enumerate() {
            hosted_all += u64::from(*n);
            if mode == proto::HostingMode::SharedGht as usize || mode == proto::HostingMode::HdsHost as usize {
                hosted_shared += u64::from(*n);
            }
        }
    }
    t.distinct_products = products.len() as u32;
    t.staff = staff.into_iter().map(|(category, fte)| proto::StaffTotal { category, fte }).collect();
    t.staff_fte = t.staff.iter().map(|s| s.fte).sum();
    t.shared_or_hds_hosting_share = if hosted_all == 0 { 0.0 } else { hosted_shared as f64 / hosted_all as f64 };
    t
}

fn states(parties: &[Party]) -> Vec<(&str, &VersionSummary)> {
    parties
        .iter()
        .filter(|p| p.in_scope())
        .filter_map(|p| p.head.as_ref().map(|h| (p.id.as_str(), &h.summary)))
        .collect()
}

/// The item-level consolidated view. `apps`: application rows of the latest
/// versions of the GHT's establishments (rows of out-of-scope establishments are ignored).
pub fn consolidated(
    ght_id: &str,
    parties: &[Party],
    apps: &[AppRow],
    now: i64,
) -> proto::ConsolidatedInventoryResponse {
    let in_scope: HashMap<&str, &Party> =
        parties.iter().filter(|p| p.in_scope() && p.head.is_some()).map(|p| (p.id.as_str(), p)).collect();
    let states = states(parties);
    // domain → product → deployments
    let mut by_domain: BTreeMap<&str, BTreeMap<&str, Vec<&AppRow>>> = BTreeMap::new();
    for a in apps.iter().filter(|a| in_scope.contains_key(a.establishment_id.as_str())) {
        by_domain.entry(a.domain.as_str()).or_default().entry(a.product.as_str()).or_default().push(a);
    }
    let mut domains = Vec::new();
    let mut common_products = Vec::new();
    for domain in all_domains(states.iter().map(|(_, s)| *s)) {
        let f = figures(&states, &domain);
        let mut products: Vec<proto::ProductUsage> = by_domain
            .get(domain.as_str())
            .map(|m| {
                m.iter()
                    .map(|(product, rows)| {
                        let mut rows = rows.clone();
                        rows.sort_by(|x, y| (&x.establishment_id, &x.item_id).cmp(&(&y.establishment_id, &y.item_id)));
                        let establishments: BTreeSet<&str> = rows.iter().map(|r| r.establishment_id.as_str()).collect();
                        proto::ProductUsage {
                            product: product.to_string(),
                            vendor: rows[0].vendor.clone(),
                            name: rows[0].name.clone(),
                            is_target: *product == f.target,
                            establishment_count: establishments.len() as u32,
                            deployments: rows.iter().map(|r| deployment(r)).collect(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        products.sort_by(|x, y| y.establishment_count.cmp(&x.establishment_count).then(x.product.cmp(&y.product)));
        let domain_enum = domain_value(&domain);
        for p in products.iter().filter(|p| p.establishment_count >= 2) {
            let ids: BTreeSet<&str> = p.deployments.iter().map(|d| d.establishment_id.as_str()).collect();
            common_products.push(proto::CommonProduct {
                product: p.product.clone(),
                domain: domain_enum,
                establishment_ids: ids.into_iter().map(String::from).collect(),
            });
        }
        let has_target = !f.target.is_empty();
        domains.push(proto::DomainConsolidation {
            domain: domain_enum,
            overlap: f.products.len() > 1,
            parties_not_on_target: if has_target {
                f.in_domain.iter().filter(|p| !f.on_target.contains(p)).cloned().collect()
            } else {
                Vec::new()
            },
            products,
            target_product: f.target,
            conflicting_targets: f.conflicts,
            parties_on_target: f.on_target,
            parties_without_application: f.without,
        });
    }
    common_products.sort_by(|x, y| (x.domain, &x.product).cmp(&(y.domain, &y.product)));
    let establishments = parties
        .iter()
        .map(|p| {
            let mut s = proto::EstablishmentInventoryStatus {
                establishment_id: p.id.clone(),
                name: p.name.clone(),
                role: p.role as i32,
                in_scope: p.in_scope(),
                ..Default::default()
            };
            if let Some(h) = &p.head {
                s.has_inventory = true;
                s.version = h.version as u32;
                s.pushed_at = to_rfc3339(h.pushed_at);
                s.as_of = h.as_of.clone();
                s.application_count = h.application_count as u32;
                s.budget_operating_eur = h.budget_operating_eur;
                s.budget_investment_eur = h.budget_investment_eur;
                s.staff_fte = h.summary.staff_fte();
                s.pssi_status = h
                    .pssi_status
                    .as_deref()
                    .and_then(proto::PssiStatus::from_code)
                    .map(|x| x as i32)
                    .unwrap_or_default();
            }
            s
        })
        .collect();
    proto::ConsolidatedInventoryResponse {
        ght_id: ght_id.to_string(),
        generated_at: to_rfc3339(now),
        establishments,
        domains,
        common_products,
        totals: Some(totals(parties)),
    }
}

fn deployment(r: &AppRow) -> proto::ApplicationDeployment {
    proto::ApplicationDeployment {
        establishment_id: r.establishment_id.clone(),
        application_id: r.item_id.clone(),
        name: r.name.clone(),
        vendor: r.vendor.clone(),
        version: r.version.clone(),
        hosting: proto::HostingMode::from_code(&r.hosting).map(|h| h as i32).unwrap_or_default(),
        users_count: u32::try_from(r.users_count).unwrap_or(u32::MAX),
        end_of_support: r.end_of_support.clone(),
        convergence_target: r.is_target,
    }
}

fn trend_point(as_of: &str, f: &DomainFigures) -> proto::DomainTrendPoint {
    proto::DomainTrendPoint {
        as_of: as_of.to_string(),
        distinct_products: f.products.len() as u32,
        parties_in_domain: f.in_domain.len() as u32,
        parties_on_target: f.on_target.len() as u32,
        share_on_target: f.share(),
        target_product: f.target.clone(),
    }
}

/// The aggregate convergence map. `history`: every version of the GHT's
/// establishments (any order). The current figures use each party's latest version;
/// the trend replays the history by the dates the versions describe (`as_of`), so a
/// correction pushed later for an earlier date lands at its date. Nothing in the
/// result names an establishment.
pub fn convergence_map(
    ght_id: &str,
    parties: &[Party],
    history: &[HistoryEvent],
    now: i64,
) -> proto::ConvergenceMapResponse {
    let in_scope: BTreeSet<&str> = parties.iter().filter(|p| p.in_scope()).map(|p| p.id.as_str()).collect();
    let events: Vec<&HistoryEvent> =
        history.iter().filter(|e| in_scope.contains(e.establishment_id.as_str())).collect();
    let current = states(parties);
    let domains = all_domains(events.iter().map(|e| &e.summary).chain(current.iter().map(|(_, s)| *s)));
    let dates: BTreeSet<&str> = events.iter().map(|e| e.as_of.as_str()).collect();
    let mut last: HashMap<&str, DomainFigures> = HashMap::new();
    let mut trends: HashMap<&str, Vec<proto::DomainTrendPoint>> = HashMap::new();
    for date in dates {
        // Each party's latest version describing its IS at `date` or before.
        let mut at: BTreeMap<&str, &HistoryEvent> = BTreeMap::new();
        for e in events.iter().filter(|e| e.as_of.as_str() <= date) {
            let slot = at.entry(e.establishment_id.as_str()).or_insert(e);
            if e.version > slot.version {
                *slot = e;
            }
        }
        let snapshot: Vec<(&str, &VersionSummary)> = at.iter().map(|(k, e)| (*k, &e.summary)).collect();
        for d in &domains {
            let f = figures(&snapshot, d);
            // No point before the domain first appears, none when nothing changed.
            if (f.in_domain.is_empty() && !last.contains_key(d.as_str())) || last.get(d.as_str()) == Some(&f) {
                continue;
            }
            trends.entry(d.as_str()).or_default().push(trend_point(date, &f));
            last.insert(d.as_str(), f);
        }
    }
    let domains = domains
        .iter()
        .map(|d| {
            let f = figures(&current, d);
            proto::DomainConvergence {
                domain: domain_value(d),
                applications: f.applications,
                distinct_products: f.products.len() as u32,
                parties_in_domain: f.in_domain.len() as u32,
                parties_on_target: f.on_target.len() as u32,
                share_on_target: f.share(),
                target_product: f.target,
                trend: trends.remove(d.as_str()).unwrap_or_default(),
            }
        })
        .collect();
    proto::ConvergenceMapResponse {
        ght_id: ght_id.to_string(),
        generated_at: to_rfc3339(now),
        domains,
        totals: Some(totals(parties)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{FunctionalDomain as D, HostingMode as H};

    fn app(id: &str, vendor: &str, name: &str, domain: D, hosting: H, target: bool) -> proto::Application {
        proto::Application {
            id: id.into(),
            name: name.into(),
            vendor: vendor.into(),
            domain: domain as i32,
            hosting: hosting as i32,
            convergence_target: target,
            ..Default::default()
        }
    }

    fn party(id: &str, role: proto::EstablishmentRole, version: i64, at: i64, apps: Vec<proto::Application>) -> Party {
        let doc = proto::InventoryDocument { applications: apps, ..Default::default() };
        Party {
            id: id.into(),
            name: id.into(),
            role,
            head: Some(Head {
                version,
                pushed_at: at,
                as_of: "2025-01-01".into(),
                application_count: doc.applications.len() as i64,
                budget_operating_eur: Some(100.0),
                budget_investment_eur: None,
                pssi_status: Some("ADOPTED".into()),
                summary: summarize(&doc),
            }),
        }
    }

    #[test]
    fn target_majority_and_conflicts() {
        use proto::EstablishmentRole::{Associe, Partie, Support};
        let parties = vec![
            party("A", Support, 1, 1, vec![app("d", "Dedalus", "DxCare", D::Dpi, H::SharedGht, true)]),
            party("B", Partie, 1, 2, vec![app("d", "dedalus", "dxcare", D::Dpi, H::OnPremise, true)]),
            party("C", Partie, 1, 3, vec![app("d", "Maincare", "Crossway", D::Dpi, H::OnPremise, true)]),
            party("D", Partie, 1, 4, vec![app("l", "CliniSys", "Glims", D::Lab, H::OnPremise, false)]),
            // An associé is not consolidated even if it runs the same products.
            party("E", Associe, 1, 5, vec![app("d", "Maincare", "Crossway", D::Dpi, H::OnPremise, true)]),
        ];
        let states = states(&parties);
        let f = figures(&states, "DPI");
        assert_eq!(f.target, "dedalus/dxcare");
        assert_eq!(f.conflicts, vec!["maincare/crossway"]);
        assert_eq!(f.on_target, vec!["A", "B"]);
        assert_eq!(f.in_domain, vec!["A", "B", "C"]);
        assert_eq!(f.without, vec!["D"]);
        assert!((f.share() - 2.0 / 3.0).abs() < 1e-9);
        let t = totals(&parties);
        assert_eq!((t.establishments, t.parties, t.parties_with_inventory, t.applications), (5, 4, 4, 4));
        assert_eq!(t.distinct_products, 3);
        assert_eq!(t.parties_with_budget, 0);
        assert!((t.budget_operating_eur - 400.0).abs() < 1e-9);
        assert!((t.shared_or_hds_hosting_share - 0.25).abs() < 1e-9);
    }

    #[test]
    fn trend_keeps_points_that_change() {
        use proto::EstablishmentRole::{Partie, Support};
        let a1 = summarize(&proto::InventoryDocument {
            applications: vec![app("d", "Dedalus", "DxCare", D::Dpi, H::SharedGht, true)],
            ..Default::default()
        });
        let b1 = summarize(&proto::InventoryDocument {
            applications: vec![app("d", "Maincare", "Crossway", D::Dpi, H::OnPremise, false)],
            ..Default::default()
        });
        let b2 = summarize(&proto::InventoryDocument {
            applications: vec![app("d", "Dedalus", "DxCare", D::Dpi, H::SharedGht, true)],
            ..Default::default()
        });
        let history = vec![
            HistoryEvent { establishment_id: "B".into(), version: 2, as_of: "2025-01-01".into(), summary: b2.clone() },
            HistoryEvent { establishment_id: "A".into(), version: 1, as_of: "2023-01-01".into(), summary: a1.clone() },
            HistoryEvent { establishment_id: "B".into(), version: 1, as_of: "2024-01-01".into(), summary: b1 },
        ];
        let mk = |id: &str, role, version, summary: VersionSummary| Party {
            id: id.into(),
            name: id.into(),
            role,
            head: Some(Head {
                version,
                pushed_at: 0,
                as_of: String::new(),
                application_count: 1,
                budget_operating_eur: None,
                budget_investment_eur: None,
                pssi_status: None,
                summary,
            }),
        };
        let parties = vec![mk("A", Support, 1, a1), mk("B", Partie, 2, b2)];
        let map = convergence_map("G", &parties, &history, 40);
        assert_eq!(map.domains.len(), 1);
        let dpi = &map.domains[0];
        assert_eq!((dpi.distinct_products, dpi.parties_in_domain, dpi.parties_on_target), (1, 2, 2));
        let shares: Vec<(&str, u32, f64)> =
            dpi.trend.iter().map(|p| (p.as_of.as_str(), p.distinct_products, p.share_on_target)).collect();
        assert_eq!(shares, vec![("2023-01-01", 1, 1.0), ("2024-01-01", 2, 0.5), ("2025-01-01", 1, 1.0)]);
    }
}
