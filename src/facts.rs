//! What the hub knows of a GHT that computed indicators derive from.
//!
//! This is the contract between the modules that hold data (inventory, identity)
//! and the indicators module that computes from it: the holders fill these plain
//! structs from their stores, the indicator formulas are pure functions over them.

/// The facts of one GHT at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TerritoryFacts {
    pub ght_id: String,
    /// Every establishment of the GHT, parties and others (see `PartyFacts::role`).
    pub establishments: Vec<PartyFacts>,
    /// Territorial identities whose linked local identities span at least two
    /// different establishments (filled by the identity module).
    pub identities_linked_across_parties: i64,
}

/// What is known of one establishment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartyFacts {
    pub establishment_id: String,
    /// SUPPORT, PARTIE, ASSOCIE or PARTENAIRE. Formulas count parties = SUPPORT + PARTIE.
    pub role: String,
    /// The establishment has pushed an inventory (its latest version is the one used below).
    pub has_inventory: bool,
    /// Unix microseconds of the latest inventory version, if any.
    pub inventory_at: Option<i64>,
    /// IS operating budget of the latest inventory, euros (None when not declared).
    pub is_budget_operating_eur: Option<f64>,
    /// IS investment budget of the latest inventory, euros.
    pub is_budget_investment_eur: Option<f64>,
    /// PSSI adopted per the latest inventory's security section (None when not declared).
    pub pssi_adopted: Option<bool>,
    /// Applications of the latest inventory.
    pub applications: Vec<AppFacts>,
    /// The establishment publishes patient identities to the hub's territorial index.
    pub publishes_identities: bool,
}

impl PartyFacts {
    pub fn is_party(&self) -> bool {
        self.role == "SUPPORT" || self.role == "PARTIE"
    }
}

/// One application, reduced to what convergence formulas need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFacts {
    /// Functional domain, the inventory enum's name without prefix (e.g. "DPI", "LAB").
    pub domain: String,
    /// Product identity across establishments: normalised "vendor/name" (lower case, trimmed).
    pub product: String,
    /// Declared as the GHT's convergence target for its domain.
    pub is_convergence_target: bool,
    /// Hosting mode name without prefix: ON_PREMISE, SHARED_GHT, HDS_HOST or SAAS.
    pub hosting: String,
}

/// The facts of one GHT now: its establishments from the registry, then what each
/// data-holding domain knows of them.
pub async fn load(db: &crate::db::Db, ght_id: &str) -> crate::AppResult<TerritoryFacts> {
    let establishments = crate::registry::store::list_establishments(db, ght_id)
        .await?
        .into_iter()
        .map(|e| PartyFacts {
            role: crate::registry::establishment_role_str(e.role()).to_string(),
            establishment_id: e.id,
            ..Default::default()
        })
        .collect();
    let mut facts = TerritoryFacts { ght_id: ght_id.to_string(), establishments, ..Default::default() };
    crate::inventory::store::fill_facts(db, &mut facts).await?;
    crate::identity::store::fill_facts(db, &mut facts).await?;
    Ok(facts)
}
