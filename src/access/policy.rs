//! The whole access policy of the hub, as one table: role × data class × action × scope.
//!
//! Deny by default: a call is allowed only if a row of [`POLICY`] names the caller's
//! role, the data class and the action, and the row's scope holds for the target.
//! The table encodes the territorial DIM rules (art. R.6113-11-3 CSP, DOMAIN.md §2):
//! nominative identity and movement data reach the care team of the establishment
//! concerned and, inside the DIM, the DIM physician and the staff they designate;
//! the GHT DSI, the ARS and the instances receive aggregates only.
//!
//! [`decide`] is pure (facts are passed in) so the table is tested exhaustively
//! without a database; [`super::Guard`] resolves the facts and audits the decision.

use std::fmt;

use crate::proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    EstablishmentDsi,
    GhtDsi,
    DimPhysician,
    DimStaff,
    Practitioner,
    Ars,
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::EstablishmentDsi,
        Role::GhtDsi,
        Role::DimPhysician,
        Role::DimStaff,
        Role::Practitioner,
        Role::Ars,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::EstablishmentDsi => "ESTABLISHMENT_DSI",
            Role::GhtDsi => "GHT_DSI",
            Role::DimPhysician => "DIM_PHYSICIAN",
            Role::DimStaff => "DIM_STAFF",
            Role::Practitioner => "PRACTITIONER",
            Role::Ars => "ARS",
            Role::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        let s = s.trim().to_ascii_uppercase().replace('-', "_");
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn to_proto(self) -> proto::PartyRole {
        match self {
            Role::EstablishmentDsi => proto::PartyRole::EstablishmentDsi,
            Role::GhtDsi => proto::PartyRole::GhtDsi,
            Role::DimPhysician => proto::PartyRole::DimPhysician,
            Role::DimStaff => proto::PartyRole::DimStaff,
            Role::Practitioner => proto::PartyRole::Practitioner,
            Role::Ars => proto::PartyRole::Ars,
            Role::Admin => proto::PartyRole::Admin,
        }
    }

    pub fn from_proto(r: proto::PartyRole) -> Option<Role> {
        Some(match r {
            proto::PartyRole::Unspecified => return None,
            proto::PartyRole::EstablishmentDsi => Role::EstablishmentDsi,
            proto::PartyRole::GhtDsi => Role::GhtDsi,
            proto::PartyRole::DimPhysician => Role::DimPhysician,
            proto::PartyRole::DimStaff => Role::DimStaff,
            proto::PartyRole::Practitioner => Role::Practitioner,
            proto::PartyRole::Ars => Role::Ars,
            proto::PartyRole::Admin => Role::Admin,
        })
    }

    /// Which attachments a token of this role must carry.
    pub fn needs_ght(self) -> bool {
        !matches!(self, Role::Ars | Role::Admin)
    }
    pub fn needs_establishment(self) -> bool {
        matches!(self, Role::EstablishmentDsi | Role::Practitioner)
    }
    pub fn needs_region(self) -> bool {
        matches!(self, Role::Ars)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    Registry,
    InventoryItem,
    InventoryAggregate,
    Indicator,
    IdentityNominative,
    MovementNominative,
    MovementAggregate,
    Audit,
}

impl DataClass {
    pub const ALL: [DataClass; 8] = [
        DataClass::Registry,
        DataClass::InventoryItem,
        DataClass::InventoryAggregate,
        DataClass::Indicator,
        DataClass::IdentityNominative,
        DataClass::MovementNominative,
        DataClass::MovementAggregate,
        DataClass::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Registry => "REGISTRY",
            DataClass::InventoryItem => "INVENTORY_ITEM",
            DataClass::InventoryAggregate => "INVENTORY_AGGREGATE",
            DataClass::Indicator => "INDICATOR",
            DataClass::IdentityNominative => "IDENTITY_NOMINATIVE",
            DataClass::MovementNominative => "MOVEMENT_NOMINATIVE",
            DataClass::MovementAggregate => "MOVEMENT_AGGREGATE",
            DataClass::Audit => "AUDIT",
        }
    }

    pub fn parse(s: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Nominative data: every access is audited, reads included.
    pub fn is_nominative(self) -> bool {
        matches!(self, DataClass::IdentityNominative | DataClass::MovementNominative)
    }

    pub fn to_proto(self) -> proto::DataClass {
        match self {
            DataClass::Registry => proto::DataClass::Registry,
            DataClass::InventoryItem => proto::DataClass::InventoryItem,
            DataClass::InventoryAggregate => proto::DataClass::InventoryAggregate,
            DataClass::Indicator => proto::DataClass::Indicator,
            DataClass::IdentityNominative => proto::DataClass::IdentityNominative,
            DataClass::MovementNominative => proto::DataClass::MovementNominative,
            DataClass::MovementAggregate => proto::DataClass::MovementAggregate,
            DataClass::Audit => proto::DataClass::Audit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Read,
    Write,
    Review,
    Admin,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Read, Action::Write, Action::Review, Action::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "READ",
            Action::Write => "WRITE",
            Action::Review => "REVIEW",
            Action::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn to_proto(self) -> proto::AccessAction {
        match self {
            Action::Read => proto::AccessAction::Read,
            Action::Write => proto::AccessAction::Write,
            Action::Review => proto::AccessAction::Review,
            Action::Admin => proto::AccessAction::Admin,
        }
    }
}

/// Where a rule applies, relative to the caller's token and the call's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Any target (hub operator).
    Any,
    /// Targets whose GHT is in the caller's ARS region.
    Region,
    /// Targets of the caller's GHT.
    Ght,
    /// Targets of the caller's GHT whose establishment is a party (support or partie):
    /// the territorial DIM analyses the activity of the parties, not of associés/partenaires.
    GhtParties,
    /// Targets of the caller's own establishment.
    Establishment,
    /// GhtParties, and only under a live designation by the DIM physician
    /// (restricted to one establishment when the designation says so).
    Designation,
    /// A patient of another establishment of the caller's GHT with whom the caller's
    /// establishment has a care relationship: an open encounter (séjour) there.
    CareRelationship,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Any => "ANY",
            Scope::Region => "REGION",
            Scope::Ght => "GHT",
            Scope::GhtParties => "GHT_PARTIES",
            Scope::Establishment => "ESTABLISHMENT",
            Scope::Designation => "DESIGNATION",
            Scope::CareRelationship => "CARE_RELATIONSHIP",
        }
    }
}

pub struct Rule {
    pub name: &'static str,
    pub role: Role,
    pub data: DataClass,
    pub action: Action,
    pub scope: Scope,
    pub rationale: &'static str,
}

macro_rules! rules {
    ($( $name:literal : $role:ident $data:ident $action:ident $scope:ident => $why:literal ; )*) => {
        &[ $( Rule { name: $name, role: Role::$role, data: DataClass::$data, action: Action::$action, scope: Scope::$scope, rationale: $why } ),* ]
    };
}

/// Every permission the hub grants. Whatever is not here is denied.
pub static POLICY: &[Rule] = rules! {
    // Hub operator: runs the registry; never nominative data.
    "admin-registry-read": Admin Registry Read Any => "the operator administers the registry of every GHT";
    "admin-registry-write": Admin Registry Write Any => "the operator creates GHTs, establishments and accounts";
    "admin-registry-admin": Admin Registry Admin Any => "the operator manages party accounts";
    "admin-inventory-read": Admin InventoryItem Read Any => "the operator supports inventory exchanges";
    "admin-inventory-write": Admin InventoryItem Write Any => "the operator may push an inventory on an establishment's behalf";
    "admin-inventory-aggregate": Admin InventoryAggregate Read Any => "aggregates are not nominative";
    "admin-indicator-read": Admin Indicator Read Any => "indicators are not nominative";
    "admin-indicator-admin": Admin Indicator Admin Any => "the operator loads indicator catalogues";
    "admin-movement-aggregate": Admin MovementAggregate Read Any => "aggregates are not nominative";
    "admin-audit-verify": Admin Audit Admin Any => "the operator checks the audit chain's integrity (no content)";

    // DSI de GHT: the territorial IS master plan and the convergence indicators.
    "ght-dsi-registry-read": GhtDsi Registry Read Ght => "every party of a GHT reads its registry";
    "ght-dsi-registry-write": GhtDsi Registry Write Ght => "the DSI de GHT maintains its GHT's registry";
    "ght-dsi-inventory-read": GhtDsi InventoryItem Read Ght => "the DSI de GHT consolidates every party's inventory (SDSI-T)";
    "ght-dsi-inventory-aggregate": GhtDsi InventoryAggregate Read Ght => "the SDSI-T consolidated view";
    "ght-dsi-indicator-read": GhtDsi Indicator Read Ght => "the GHT's convergence scorecard";
    "ght-dsi-indicator-write": GhtDsi Indicator Write Ght => "the DSI de GHT declares and submits the convergence indicators";
    "ght-dsi-movement-aggregate": GhtDsi MovementAggregate Read Ght => "steering receives aggregated activity, not nominative data";

    // DSI of an establishment: its own IS.
    "est-dsi-registry-read": EstablishmentDsi Registry Read Ght => "every party of a GHT reads its registry";
    "est-dsi-inventory-read": EstablishmentDsi InventoryItem Read Establishment => "a DSI reads its own establishment's inventory";
    "est-dsi-inventory-write": EstablishmentDsi InventoryItem Write Establishment => "a DSI pushes its own establishment's inventory";
    "est-dsi-inventory-aggregate": EstablishmentDsi InventoryAggregate Read Ght => "parties see the GHT's consolidated convergence view";
    "est-dsi-indicator-read": EstablishmentDsi Indicator Read Ght => "parties read their GHT's scorecard";
    "est-dsi-indicator-write": EstablishmentDsi Indicator Write Establishment => "a DSI declares its establishment's hôpital numérique prerequisites";
    "est-dsi-movement-aggregate": EstablishmentDsi MovementAggregate Read Establishment => "a DSI sees its own establishment's activity counts";

    // DIM physician: nominative data of all parties of the GHT (art. R.6113-11-3).
    "dim-physician-registry-read": DimPhysician Registry Read Ght => "every party of a GHT reads its registry";
    "dim-physician-identity-read": DimPhysician IdentityNominative Read GhtParties => "practitioners transmit nominative data to the DIM physician";
    "dim-physician-identity-write": DimPhysician IdentityNominative Write GhtParties => "the DIM leads identity-vigilance: link, merge, unmerge";
    "dim-physician-identity-admin": DimPhysician IdentityNominative Admin Ght => "the DIM physician designates the staff under their authority";
    "dim-physician-movement-read": DimPhysician MovementNominative Read GhtParties => "the DIM analyses the activity of all parties";
    "dim-physician-movement-aggregate": DimPhysician MovementAggregate Read Ght => "aggregates are not nominative";
    "dim-physician-inventory-aggregate": DimPhysician InventoryAggregate Read Ght => "aggregates are not nominative";
    "dim-physician-indicator-read": DimPhysician Indicator Read Ght => "the DIM reports to the comité stratégique";
    "dim-physician-audit-read": DimPhysician Audit Read Ght => "the DIM physician answers for who accessed nominative data";
    "dim-physician-audit-verify": DimPhysician Audit Admin Ght => "the DIM physician checks the audit chain";

    // DIM staff: only under the physician's designation.
    "dim-staff-registry-read": DimStaff Registry Read Ght => "every party of a GHT reads its registry";
    "dim-staff-identity-read": DimStaff IdentityNominative Read Designation => "DIM staff act under the DIM physician's authority";
    "dim-staff-identity-write": DimStaff IdentityNominative Write Designation => "designated staff run identity-vigilance tasks";
    "dim-staff-movement-read": DimStaff MovementNominative Read Designation => "DIM staff act under the DIM physician's authority";
    "dim-staff-movement-aggregate": DimStaff MovementAggregate Read Ght => "aggregates are not nominative";

    // Care team of an establishment.
    "practitioner-registry-read": Practitioner Registry Read Ght => "every party of a GHT reads its registry";
    "practitioner-identity-read": Practitioner IdentityNominative Read Establishment => "the care team reads its own patients";
    "practitioner-identity-write": Practitioner IdentityNominative Write Establishment => "the establishment publishes its patients' identities";
    "practitioner-movement-read": Practitioner MovementNominative Read Establishment => "the care team reads its own patients' stays";
    "practitioner-movement-write": Practitioner MovementNominative Write Establishment => "the establishment publishes its movements";
    "practitioner-movement-care": Practitioner MovementNominative Read CareRelationship => "a patient's other stays are visible while in care at the caller's establishment";

    // ARS: indicators and aggregates of its region.
    "ars-registry-read": Ars Registry Read Region => "the ARS follows the GHTs of its region";
    "ars-inventory-aggregate": Ars InventoryAggregate Read Region => "the ARS sees consolidated inventories, not item detail";
    "ars-indicator-read": Ars Indicator Read Region => "the ARS pulls convergence indicators (oSIS)";
    "ars-indicator-review": Ars Indicator Review Region => "the ARS validates or rejects submitted indicator values";
    "ars-movement-aggregate": Ars MovementAggregate Read Region => "aggregated activity, small cells masked";
};

/// Counts below this are masked in every aggregate (small-cell suppression).
pub const SMALL_CELL_THRESHOLD: i64 = 10;

/// The authenticated caller, from the verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub ght_id: Option<String>,
    pub establishment_id: Option<String>,
    pub region: Option<String>,
    /// Token expiry, unix seconds.
    pub expires_at: i64,
}

/// What a call touches. Unknown parts are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub ght_id: Option<String>,
    pub establishment_id: Option<String>,
    /// ARS region of the target's GHT.
    pub region: Option<String>,
    /// A patient reference (territorial identity id or `establishment:IPP`).
    pub patient_ref: Option<String>,
    /// Identifiers recorded in the audit trail.
    pub ids: Vec<String>,
}

impl Target {
    pub fn ght(ght_id: impl Into<String>) -> Self {
        Target { ght_id: Some(ght_id.into()), ..Default::default() }
    }
    pub fn establishment(ght_id: impl Into<String>, establishment_id: impl Into<String>) -> Self {
        Target { ght_id: Some(ght_id.into()), establishment_id: Some(establishment_id.into()), ..Default::default() }
    }
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }
    pub fn with_patient(mut self, patient_ref: impl Into<String>) -> Self {
        self.patient_ref = Some(patient_ref.into());
        self
    }
    pub fn with_ids(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.ids.extend(ids);
        self
    }
}

/// Facts from the database that some scopes depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The target establishment is a party (SUPPORT or PARTIE) of its GHT; `None`
    /// when the target names no establishment (a GHT-wide call).
    pub target_is_party: Option<bool>,
    /// The caller holds a live DIM designation covering the target.
    pub designation: bool,
    /// The caller's establishment has an open encounter with the target patient.
    pub care_relationship: bool,
}

/// Which facts a decision needs, so the guard queries only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactNeeds {
    pub party_status: bool,
    pub designation: bool,
    pub care_relationship: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that allowed, or the rule (or default) that refused.
    pub rule: &'static str,
    /// Why, in words that name the rule, never the data.
    pub reason: String,
}

pub fn rules_for(role: Role, data: DataClass, action: Action) -> impl Iterator<Item = &'static Rule> {
    POLICY.iter().filter(move |r| r.role == role && r.data == data && r.action == action)
}

pub fn fact_needs(p: &Principal, data: DataClass, action: Action, target: &Target) -> FactNeeds {
    let mut needs = FactNeeds::default();
    for r in rules_for(p.role, data, action) {
        match r.scope {
            Scope::GhtParties => needs.party_status = target.establishment_id.is_some(),
            Scope::Designation => {
                needs.party_status = target.establishment_id.is_some();
                needs.designation = true;
            }
            Scope::CareRelationship => needs.care_relationship = target.patient_ref.is_some(),
            _ => {}
        }
    }
    needs
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x == y)
}

/// Does `scope` hold for this caller and target, given the facts?
fn scope_holds(scope: Scope, p: &Principal, t: &Target, f: &Facts) -> Result<(), &'static str> {
    let same_ght = || if same(&p.ght_id, &t.ght_id) { Ok(()) } else { Err("the target is outside the caller's GHT") };
    let party = || {
        if f.target_is_party == Some(false) {
            Err("the target establishment is not a party of the GHT (associé/partenaire data stay outside the DIM)")
        } else {
            Ok(())
        }
    };
    match scope {
        Scope::Any => Ok(()),
        Scope::Region => {
            if same(&p.region, &t.region) {
                Ok(())
            } else {
                Err("the target GHT is outside the caller's ARS region")
            }
        }
        Scope::Ght => same_ght(),
        Scope::GhtParties => same_ght().and_then(|_| party()),
        Scope::Establishment => {
            same_ght()?;
            if same(&p.establishment_id, &t.establishment_id) {
                Ok(())
            } else {
                Err("the target is outside the caller's establishment")
            }
        }
        Scope::Designation => {
            same_ght()?;
            party()?;
            if f.designation {
                Ok(())
            } else {
                Err("no live DIM designation covers the target")
            }
        }
        Scope::CareRelationship => {
            same_ght()?;
            if t.patient_ref.is_some() && f.care_relationship {
                Ok(())
            } else {
                Err("no open encounter at the caller's establishment for this patient")
            }
        }
    }
}

/// The decision for one call. Pure: the same inputs always give the same answer.
pub fn decide(p: &Principal, data: DataClass, action: Action, target: &Target, facts: &Facts) -> Decision {
    let mut last_refusal: Option<(&'static str, &'static str)> = None;
    for r in rules_for(p.role, data, action) {
        match scope_holds(r.scope, p, target, facts) {
            Ok(()) => return Decision { allowed: true, rule: r.name, reason: r.rationale.to_string() },
            Err(why) => last_refusal = Some((r.name, why)),
        }
    }
    match last_refusal {
        Some((rule, why)) => Decision { allowed: false, rule, reason: why.to_string() },
        None => Decision {
            allowed: false,
            rule: "deny-by-default",
            reason: format!("no rule grants {} {} on {}", p.role, action.as_str(), data.as_str()),
        },
    }
}

/// The table as text, for `ghthub policy show`.
pub fn render_table() -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["role", "data class", "action", "scope", "rule", "why"]);
    for r in POLICY {
        t.add_row([r.role.as_str(), r.data.as_str(), r.action.as_str(), r.scope.as_str(), r.name, r.rationale]);
    }
    format!("{t}\nEverything not listed is denied. Aggregate counts below {SMALL_CELL_THRESHOLD} are masked.\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            subject: "s".into(),
            role,
            ght_id: role.needs_ght().then(|| "G1".to_string()),
            establishment_id: matches!(role, Role::EstablishmentDsi | Role::Practitioner).then(|| "E1".to_string()),
            region: (role == Role::Ars).then(|| "R1".to_string()),
            expires_at: 0,
        }
    }

    #[test]
    fn rule_names_are_unique_and_no_duplicate_triples() {
        let mut names = std::collections::HashSet::new();
        for r in POLICY {
            assert!(names.insert(r.name), "duplicate rule name {}", r.name);
        }
    }

    #[test]
    fn ars_and_dsi_never_reach_nominative_data() {
        for role in [Role::Ars, Role::GhtDsi, Role::EstablishmentDsi, Role::Admin] {
            for data in [DataClass::IdentityNominative, DataClass::MovementNominative] {
                for action in Action::ALL {
                    assert_eq!(rules_for(role, data, action).count(), 0, "{role} {data:?} {action:?}");
                }
            }
        }
    }

    #[test]
    fn designation_is_required_for_dim_staff() {
        let p = principal(Role::DimStaff);
        let t = Target::establishment("G1", "E2");
        let mut f = Facts { target_is_party: Some(true), ..Default::default() };
        assert!(!decide(&p, DataClass::IdentityNominative, Action::Read, &t, &f).allowed);
        f.designation = true;
        assert!(decide(&p, DataClass::IdentityNominative, Action::Read, &t, &f).allowed);
        f.target_is_party = Some(false);
        assert!(!decide(&p, DataClass::IdentityNominative, Action::Read, &t, &f).allowed);
    }

    #[test]
    fn practitioner_sees_other_establishment_only_with_care_relationship() {
        let p = principal(Role::Practitioner);
        let t = Target::establishment("G1", "E2").with_patient("T1");
        let f = Facts::default();
        let d = decide(&p, DataClass::MovementNominative, Action::Read, &t, &f);
        assert!(!d.allowed);
        assert_eq!(d.rule, "practitioner-movement-care");
        let f = Facts { care_relationship: true, ..Default::default() };
        assert!(decide(&p, DataClass::MovementNominative, Action::Read, &t, &f).allowed);
        // Never across GHTs, care relationship or not.
        let t = Target::establishment("G2", "E9").with_patient("T1");
        assert!(!decide(&p, DataClass::MovementNominative, Action::Read, &t, &f).allowed);
    }

    #[test]
    fn unknown_triple_is_denied_by_default() {
        let p = principal(Role::Ars);
        let d = decide(&p, DataClass::Audit, Action::Read, &Target::ght("G1"), &Facts::default());
        assert_eq!(d.rule, "deny-by-default");
        assert!(!d.allowed);
    }
}
