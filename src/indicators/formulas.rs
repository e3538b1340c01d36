//! The formulas of COMPUTED indicators: pure functions over the facts the hub holds of
//! a GHT (`crate::facts::TerritoryFacts`). The catalogue names a formula per indicator;
//! the definitions in words are in `referentials/ght-convergence-indicators.yaml` and
//! are ours (the sources name the indicators, not their computation).
//!
//! Conventions shared by every formula: parties = support + parties (associés and
//! partenaires are never counted); an establishment's data are its latest inventory's;
//! an establishment without an inventory does not meet a criterion (the hub credits
//! only what it sees).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    catalogue::{Scope, ValueType},
    values::Val,
};
use crate::facts::{PartyFacts, TerritoryFacts};

/// An inventory older than this is not current (CONV-1.1).
pub const CURRENT_INVENTORY_MAX_AGE_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;

/// Functional domains left out of CONV-4.2: a catch-all groups unrelated applications.
const CATCH_ALL_DOMAINS: [&str; 2] = ["OTHER", "AUTRE"];

/// Hosting modes CONV-4.4 counts as shared or HDS-certified.
const SHARED_OR_HDS: [&str; 2] = ["SHARED_GHT", "HDS_HOST"];

/// Stages a share-based STATUS formula yields.
const SHARE_STAGES: [&str; 3] = ["NOT_STARTED", "IN_PROGRESS", "DONE"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Formula {
    PartiesWithCurrentInventory,
    BudgetConsolidated,
    PartiesWithPssiAdopted,
    PartiesPublishingIdentities,
    DomainsWithIdenticalApplication,
    PartiesOnTargetDpi,
    ApplicationsOnSharedOrHdsHosting,
    IdentitiesLinkedAcrossParties,
}

/// A formula's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// None when the facts do not allow a value (the detail says why).
    pub value: Option<Val>,
    pub numerator: i64,
    pub denominator: i64,
    pub detail: String,
}

impl Formula {
    pub const ALL: [Formula; 8] = [
        Formula::PartiesWithCurrentInventory,
        Formula::BudgetConsolidated,
        Formula::PartiesWithPssiAdopted,
        Formula::PartiesPublishingIdentities,
        Formula::DomainsWithIdenticalApplication,
        Formula::PartiesOnTargetDpi,
        Formula::ApplicationsOnSharedOrHdsHosting,
        Formula::IdentitiesLinkedAcrossParties,
    ];

    /// The name a catalogue uses.
    pub fn name(self) -> &'static str {
        match self {
            Formula::PartiesWithCurrentInventory => "share_of_parties_with_current_inventory",
            Formula::BudgetConsolidated => "is_budget_consolidated",
            Formula::PartiesWithPssiAdopted => "share_of_parties_with_pssi_adopted",
            Formula::PartiesPublishingIdentities => "share_of_parties_publishing_identities",
            Formula::DomainsWithIdenticalApplication => "share_of_domains_with_identical_application",
            Formula::PartiesOnTargetDpi => "share_of_parties_on_target_dpi",
            Formula::ApplicationsOnSharedOrHdsHosting => "share_of_applications_on_shared_or_hds_hosting",
            Formula::IdentitiesLinkedAcrossParties => "identities_linked_across_parties",
        }
    }

    pub fn parse(name: &str) -> Option<Formula> {
        Formula::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn value_type(self) -> ValueType {
        match self {
            Formula::PartiesWithCurrentInventory
            | Formula::PartiesWithPssiAdopted
            | Formula::PartiesPublishingIdentities => ValueType::Status,
            Formula::BudgetConsolidated => ValueType::Boolean,
            Formula::DomainsWithIdenticalApplication
            | Formula::PartiesOnTargetDpi
            | Formula::ApplicationsOnSharedOrHdsHosting => ValueType::Percent,
            Formula::IdentitiesLinkedAcrossParties => ValueType::Count,
        }
    }

    /// Every formula describes the GHT as a whole.
    pub fn scope(self) -> Scope {
        Scope::Ght
    }

    /// The stages a STATUS formula may yield (the catalogue must allow them).
    pub fn stages(self) -> &'static [&'static str] {
        if self.value_type() == ValueType::Status {
            &SHARE_STAGES
        } else {
            &[]
        }
    }

    /// Computes the value from the facts, `as_of` (unix µs) being the computation time.
    pub fn compute(self, facts: &TerritoryFacts, as_of: i64) -> Computed {
        let parties: Vec<&PartyFacts> = facts.establishments.iter().filter(|e| e.is_party()).collect();
        match self {
            Formula::PartiesWithCurrentInventory => {
                stage_share(&parties, "have a current inventory (under 365 days)", |p| {
                    p.has_inventory && p.inventory_at.is_some_and(|at| as_of - at <= CURRENT_INVENTORY_MAX_AGE_MICROS)
                })
            }
            Formula::PartiesWithPssiAdopted => {
                stage_share(&parties, "have adopted the PSSI", |p| p.pssi_adopted == Some(true))
            }
            Formula::PartiesPublishingIdentities => {
                stage_share(&parties, "publish identities to the territorial index", |p| p.publishes_identities)
            }
            Formula::BudgetConsolidated => budget_consolidated(&parties),
            Formula::DomainsWithIdenticalApplication => domains_with_identical_application(&parties),
            Formula::PartiesOnTargetDpi => parties_on_target_dpi(&parties),
            Formula::ApplicationsOnSharedOrHdsHosting => {
                let apps: Vec<&str> =
                    parties.iter().flat_map(|p| p.applications.iter().map(|a| a.hosting.as_str())).collect();
                let n = apps.iter().filter(|h| SHARED_OR_HDS.contains(h)).count() as i64;
                let d = apps.len() as i64;
                if d == 0 {
                    return not_computable("no party's inventory lists an application");
                }
                percent(n, d, &format!("{n} of {d} applications of the parties are on shared GHT or HDS hosting"))
            }
            Formula::IdentitiesLinkedAcrossParties => {
                let n = facts.identities_linked_across_parties;
                Computed {
                    value: Some(Val::Count(n)),
                    numerator: n,
                    denominator: 0,
                    detail: format!("{n} territorial identities are linked across at least two establishments"),
                }
            }
        }
    }
}

fn not_computable(why: &str) -> Computed {
    Computed { value: None, numerator: 0, denominator: 0, detail: format!("not computable: {why}") }
}

fn pct(n: i64, d: i64) -> f64 {
    // One decimal: the precision at which a share is read and declared.
    (n as f64 * 1000.0 / d as f64).round() / 10.0
}

fn percent(n: i64, d: i64, detail: &str) -> Computed {
    let p = pct(n, d);
    Computed { value: Some(Val::Percent(p)), numerator: n, denominator: d, detail: format!("{detail} ({p} %)") }
}

/// NOT_STARTED at 0 %, IN_PROGRESS in between, DONE at 100 % of the parties.
fn stage_share(parties: &[&PartyFacts], what: &str, meets: impl Fn(&PartyFacts) -> bool) -> Computed {
    let d = parties.len() as i64;
    if d == 0 {
        return not_computable("the GHT has no party in the registry");
    }
    let n = parties.iter().filter(|p| meets(p)).count() as i64;
    let stage = if n == 0 {
        SHARE_STAGES[0]
    } else if n < d {
        SHARE_STAGES[1]
    } else {
        SHARE_STAGES[2]
    };
    Computed {
        value: Some(Val::Status(stage.to_string())),
        numerator: n,
        denominator: d,
        detail: format!("{n} of {d} parties {what} ({} %)", pct(n, d)),
    }
}

fn budget_consolidated(parties: &[&PartyFacts]) -> Computed {
    let d = parties.len() as i64;
    if d == 0 {
        return not_computable("the GHT has no party in the registry");
    }
    let declared: Vec<&&PartyFacts> = parties
        .iter()
        .filter(|p| p.is_budget_operating_eur.is_some() && p.is_budget_investment_eur.is_some())
        .collect();
    let n = declared.len() as i64;
    let operating: f64 = declared.iter().filter_map(|p| p.is_budget_operating_eur).sum();
    let investment: f64 = declared.iter().filter_map(|p| p.is_budget_investment_eur).sum();
    Computed {
        value: Some(Val::Boolean(n == d)),
        numerator: n,
        denominator: d,
        detail: format!(
            "{n} of {d} parties declare their IS operating and investment budgets \
             (declared total: operating {operating:.0} €, investment {investment:.0} €)"
        ),
    }
}

fn domains_with_identical_application(parties: &[&PartyFacts]) -> Computed {
    // domain → party → products it runs there.
    let mut by_domain: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for p in parties {
        for a in &p.applications {
            let domain = a.domain.trim();
            if domain.is_empty() || CATCH_ALL_DOMAINS.contains(&domain) {
                continue;
            }
            let products = by_domain.entry(domain).or_default().entry(p.establishment_id.as_str()).or_default();
            if !a.product.trim().is_empty() {
                products.insert(a.product.trim());
            }
        }
    }
    let mut counted = 0i64;
    let mut not_converged: Vec<&str> = Vec::new();
    for (domain, per_party) in &by_domain {
        if per_party.len() < 2 {
            continue;
        }
        counted += 1;
        let mut sets = per_party.values();
        let first = sets.next().cloned().unwrap_or_default();
        let common = sets.fold(first, |acc, s| acc.intersection(s).copied().collect());
        if common.is_empty() {
            not_converged.push(domain);
        }
    }
    if counted == 0 {
        return not_computable("no functional domain is used by two parties or more");
    }
    let n = counted - not_converged.len() as i64;
    let rest =
        if not_converged.is_empty() { String::new() } else { format!("; not converged: {}", not_converged.join(", ")) };
    percent(n, counted, &format!("{n} of {counted} functional domains run one product at every party using them{rest}"))
}

fn parties_on_target_dpi(parties: &[&PartyFacts]) -> Computed {
    let d = parties.len() as i64;
    if d == 0 {
        return not_computable("the GHT has no party in the registry");
    }
    let is_dpi = |domain: &str| domain.trim() == "DPI";
    let targets: BTreeSet<&str> = parties
        .iter()
        .flat_map(|p| p.applications.iter())
        .filter(|a| is_dpi(&a.domain) && a.is_convergence_target && !a.product.trim().is_empty())
        .map(|a| a.product.trim())
        .collect();
    let n = parties
        .iter()
        .filter(|p| p.applications.iter().any(|a| is_dpi(&a.domain) && targets.contains(a.product.trim())))
        .count() as i64;
    let which = if targets.is_empty() {
        "no party's inventory flags a target DPI".to_string()
    } else {
        format!("target DPI: {}", targets.into_iter().collect::<Vec<_>>().join(", "))
    };
    percent(n, d, &format!("{n} of {d} parties run the target DPI; {which}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::AppFacts;

    const DAY: i64 = 24 * 3600 * 1_000_000;
    const NOW: i64 = 1_800_000_000_000_000;

    fn app(domain: &str, product: &str, target: bool, hosting: &str) -> AppFacts {
        AppFacts {
            domain: domain.into(),
            product: product.into(),
            is_convergence_target: target,
            hosting: hosting.into(),
        }
    }

    fn party(id: &str, role: &str) -> PartyFacts {
        PartyFacts { establishment_id: id.into(), role: role.into(), ..Default::default() }
    }

    fn with_inventory(mut p: PartyFacts, age_days: i64, apps: Vec<AppFacts>) -> PartyFacts {
        p.has_inventory = true;
        p.inventory_at = Some(NOW - age_days * DAY);
        p.applications = apps;
        p
    }

    /// The fixed territory the expectations below were computed by hand on:
    /// - S (support): inventory 10 days old; budgets 1 000 000 / 200 000; PSSI adopted;
    ///   publishes identities; DPI "acme/dpi" (flagged target, HDS), LAB "lab/one"
    ///   (shared GHT), PHARMACY "ph/a" (on premise), OTHER "misc/x" (SaaS).
    /// - A (partie): inventory 400 days old (not current); operating budget only; PSSI
    ///   not adopted; publishes identities; DPI "acme/dpi" (on premise), LAB "lab/one" and
    ///   "lab/two" (on premise), OTHER "misc/y" (shared).
    /// - B (partie): inventory 100 days old; both budgets (0 investment); PSSI unknown;
    ///   DPI "other/dpi" (on premise), PHARMACY "ph/b" (HDS), IMAGING "pacs/z" (SaaS).
    /// - C (partie): no inventory, publishes nothing.
    /// - X (associé): everything converged and shared — must change nothing.
    fn territory() -> TerritoryFacts {
        let mut s = with_inventory(
            party("S", "SUPPORT"),
            10,
            vec![
                app("DPI", "acme/dpi", true, "HDS_HOST"),
                app("LAB", "lab/one", false, "SHARED_GHT"),
                app("PHARMACY", "ph/a", false, "ON_PREMISE"),
                app("OTHER", "misc/x", false, "SAAS"),
            ],
        );
        s.is_budget_operating_eur = Some(1_000_000.0);
        s.is_budget_investment_eur = Some(200_000.0);
        s.pssi_adopted = Some(true);
        s.publishes_identities = true;
        let mut a = with_inventory(
            party("A", "PARTIE"),
            400,
            vec![
                app("DPI", "acme/dpi", false, "ON_PREMISE"),
                app("LAB", "lab/one", false, "ON_PREMISE"),
                app("LAB", "lab/two", false, "ON_PREMISE"),
                app("OTHER", "misc/y", false, "SHARED_GHT"),
            ],
        );
        a.is_budget_operating_eur = Some(300_000.0);
        a.pssi_adopted = Some(false);
        a.publishes_identities = true;
        let mut b = with_inventory(
            party("B", "PARTIE"),
            100,
            vec![
                app("DPI", "other/dpi", false, "ON_PREMISE"),
                app("PHARMACY", "ph/b", false, "HDS_HOST"),
                app("IMAGING", "pacs/z", false, "SAAS"),
            ],
        );
        b.is_budget_operating_eur = Some(500_000.0);
        b.is_budget_investment_eur = Some(0.0);
        let c = party("C", "PARTIE");
        let mut x = with_inventory(
            party("X", "ASSOCIE"),
            1,
            vec![app("DPI", "acme/dpi", true, "SHARED_GHT"), app("IMAGING", "pacs/z", true, "SHARED_GHT")],
        );
        x.pssi_adopted = Some(true);
        x.publishes_identities = true;
        x.is_budget_operating_eur = Some(1.0);
        x.is_budget_investment_eur = Some(1.0);
        TerritoryFacts {
            ght_id: "G".into(),
            establishments: vec![s, a, b, c, x],
            identities_linked_across_parties: 1234,
        }
    }

    fn run(f: Formula) -> Computed {
        f.compute(&territory(), NOW)
    }

    fn status(s: &str) -> Option<Val> {
        Some(Val::Status(s.into()))
    }

    #[test]
    fn conv_1_1_current_inventories() {
        // S (10 days) and B (100 days) are current; A is 400 days old; C has none.
        let c = run(Formula::PartiesWithCurrentInventory);
        assert_eq!((c.value, c.numerator, c.denominator), (status("IN_PROGRESS"), 2, 4));
        assert!(c.detail.contains("2 of 4 parties") && c.detail.contains("(50 %)"), "{}", c.detail);
        // Exactly 365 days old is still current; one day more is not.
        let mut t = territory();
        t.establishments[1].inventory_at = Some(NOW - 365 * DAY);
        assert_eq!(Formula::PartiesWithCurrentInventory.compute(&t, NOW).numerator, 3);
        t.establishments[1].inventory_at = Some(NOW - 366 * DAY);
        assert_eq!(Formula::PartiesWithCurrentInventory.compute(&t, NOW).numerator, 2);
    }

    #[test]
    fn conv_2_4_budget() {
        // S and B declare both budgets (B's investment 0 counts); A lacks investment; C nothing.
        let c = run(Formula::BudgetConsolidated);
        assert_eq!((c.value, c.numerator, c.denominator), (Some(Val::Boolean(false)), 2, 4));
        assert!(c.detail.contains("operating 1500000 €, investment 200000 €"), "{}", c.detail);
    }

    #[test]
    fn conv_3_2_pssi() {
        let c = run(Formula::PartiesWithPssiAdopted);
        assert_eq!((c.value, c.numerator, c.denominator), (status("IN_PROGRESS"), 1, 4));
    }

    #[test]
    fn conv_4_1_identities() {
        let c = run(Formula::PartiesPublishingIdentities);
        assert_eq!((c.value, c.numerator, c.denominator), (status("IN_PROGRESS"), 2, 4));
    }

    #[test]
    fn conv_4_2_identical_applications() {
        // Domains used by ≥ 2 parties: DPI (S, A, B) → no common product; LAB (S, A) →
        // lab/one common; PHARMACY (S, B) → none. IMAGING: B only; OTHER: left out.
        let c = run(Formula::DomainsWithIdenticalApplication);
        assert_eq!((c.numerator, c.denominator), (1, 3));
        assert_eq!(c.value, Some(Val::Percent(33.3)));
        assert!(c.detail.contains("not converged: DPI, PHARMACY"), "{}", c.detail);
    }

    #[test]
    fn conv_4_3_target_dpi() {
        // Target DPI flagged by S: acme/dpi; S and A run it; B and C do not.
        let c = run(Formula::PartiesOnTargetDpi);
        assert_eq!((c.value, c.numerator, c.denominator), (Some(Val::Percent(50.0)), 2, 4));
        assert!(c.detail.contains("target DPI: acme/dpi"), "{}", c.detail);
    }

    #[test]
    fn conv_4_4_hosting() {
        // Party applications: S 4 (HDS, shared, on-prem, SaaS), A 4 (on-prem ×3, shared),
        // B 3 (on-prem, HDS, SaaS) = 11; shared or HDS: S 2 + A 1 + B 1 = 4 → 36.4 %.
        let c = run(Formula::ApplicationsOnSharedOrHdsHosting);
        assert_eq!((c.value, c.numerator, c.denominator), (Some(Val::Percent(36.4)), 4, 11));
    }

    #[test]
    fn conv_5_2_linked_identities() {
        let c = run(Formula::IdentitiesLinkedAcrossParties);
        assert_eq!(c.value, Some(Val::Count(1234)));
    }

    #[test]
    fn all_converged_reaches_the_last_stage() {
        let mut t = territory();
        t.establishments.retain(|e| e.establishment_id == "S" || e.establishment_id == "X");
        let c = Formula::PartiesWithCurrentInventory.compute(&t, NOW);
        assert_eq!((c.value, c.numerator, c.denominator), (status("DONE"), 1, 1));
        assert_eq!(Formula::BudgetConsolidated.compute(&t, NOW).value, Some(Val::Boolean(true)));
        assert_eq!(Formula::PartiesOnTargetDpi.compute(&t, NOW).value, Some(Val::Percent(100.0)));
        // One party: no domain is shared by two parties.
        assert_eq!(Formula::DomainsWithIdenticalApplication.compute(&t, NOW).value, None);
    }

    #[test]
    fn registry_only_facts() {
        // What the hub knows before any inventory or identity: parties, nothing else.
        let t = TerritoryFacts {
            ght_id: "G".into(),
            establishments: vec![party("S", "SUPPORT"), party("A", "PARTIE"), party("X", "ASSOCIE")],
            identities_linked_across_parties: 0,
        };
        let c = |f: Formula| f.compute(&t, NOW);
        let r = c(Formula::PartiesWithCurrentInventory);
        assert_eq!((r.value, r.numerator, r.denominator), (status("NOT_STARTED"), 0, 2));
        assert!(r.detail.contains("(0 %)"), "{}", r.detail);
        assert_eq!(c(Formula::PartiesWithPssiAdopted).value, status("NOT_STARTED"));
        assert_eq!(c(Formula::PartiesPublishingIdentities).value, status("NOT_STARTED"));
        assert_eq!(c(Formula::BudgetConsolidated).value, Some(Val::Boolean(false)));
        assert_eq!(c(Formula::PartiesOnTargetDpi).value, Some(Val::Percent(0.0)));
        assert!(c(Formula::PartiesOnTargetDpi).detail.contains("no party's inventory flags a target DPI"));
        assert_eq!(c(Formula::DomainsWithIdenticalApplication).value, None);
        assert_eq!(c(Formula::ApplicationsOnSharedOrHdsHosting).value, None);
        assert_eq!(c(Formula::IdentitiesLinkedAcrossParties).value, Some(Val::Count(0)));
        // No party at all: share formulas cannot be computed.
        let empty = TerritoryFacts::default();
        for f in Formula::ALL.into_iter().filter(|f| *f != Formula::IdentitiesLinkedAcrossParties) {
            assert_eq!(f.compute(&empty, NOW).value, None, "{}", f.name());
        }
    }

    #[test]
    fn every_formula_yields_its_declared_type() {
        for f in Formula::ALL {
            assert_eq!(Formula::parse(f.name()), Some(f));
            if let Some(v) = f.compute(&territory(), NOW).value {
                assert_eq!(v.value_type(), f.value_type(), "{}", f.name());
                if let Val::Status(s) = &v {
                    assert!(f.stages().contains(&s.as_str()));
                }
            }
        }
    }
}
