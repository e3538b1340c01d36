//! Validation of a whole inventory document and its canonical form.
//!
//! Everything is checked before anything is stored, and every error names the item
//! and field as the client sent them (`applications[12].hosting`). The canonical
//! form is what is stored and hashed: text trimmed with inner whitespace collapsed
//! (Unicode NFC), dates as YYYY-MM-DD, items sorted by id, staff by category. Item
//! order in a file, whitespace or Unicode composition therefore never change the
//! content hash, and an identical re-push is recognised as such.
//!
//! Pure functions (no I/O): `canonicalize` and `validate_bytes` are fuzz targets.

use std::collections::HashMap;

use prost::Message;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use super::types::product_key;
use crate::{
    proto::{self, application_interface::Peer},
    validate, AppError, AppResult,
};

/// Most applications one inventory may hold (a CHU declares a few hundred to a
/// thousand; the limit guards the hub, not the domain).
pub const MAX_APPLICATIONS: usize = 20_000;
/// Most interfaces one application may declare.
pub const MAX_INTERFACES: usize = 100;
/// Most data centres or network links one inventory may declare.
pub const MAX_INFRASTRUCTURE_ITEMS: usize = 1_000;
const ID_MAX: usize = 64;
const TEXT_MAX: usize = 200;
const VERSION_MAX: usize = 64;
/// Prefix of the hashed bytes: a future canonical form gets a new prefix.
const HASH_DOMAIN: &[u8] = b"ghthub.inventory.v1\n";

/// A validated document in canonical form, its protobuf encoding and content hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    pub document: proto::InventoryDocument,
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of the canonical encoding.
    pub hash: String,
}

/// Decodes a protobuf-encoded `InventoryDocument` and canonicalizes it.
pub fn validate_bytes(bytes: &[u8]) -> AppResult<Canonical> {
    let doc = proto::InventoryDocument::decode(bytes)
        .map_err(|e| AppError::invalid("document", format!("not a valid InventoryDocument encoding: {e}")))?;
    canonicalize(doc)
}

/// Validates the whole document and returns its canonical form.
pub fn canonicalize(doc: proto::InventoryDocument) -> AppResult<Canonical> {
    let document = proto::InventoryDocument {
        as_of: date("as_of", &doc.as_of)?,
        source: validate::enum_value::<proto::InventorySource>("source", doc.source)? as i32,
        applications: applications(doc.applications)?,
        infrastructure: doc
            .infrastructure
            .map(|i| infrastructure(i).map_err(|e| e.in_field("infrastructure")))
            .transpose()?,
        security: doc.security.map(|s| security(s).map_err(|e| e.in_field("security"))).transpose()?,
        resources: doc.resources.map(|r| resources(r).map_err(|e| e.in_field("resources"))).transpose()?,
    };
    let bytes = document.encode_to_vec();
    let hash = content_hash(&bytes);
    Ok(Canonical { document, bytes, hash })
}

/// The content hash of canonical bytes.
pub fn content_hash(canonical_bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(canonical_bytes);
    hex::encode(h.finalize())
}

/// NFC, trimmed, whitespace runs collapsed to one space.
fn clean(s: &str) -> String {
    s.nfc().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text(field: &str, value: &str, max: usize) -> AppResult<String> {
    validate::text(field, &clean(value), max)
}

fn opt_text(field: &str, value: &str, max: usize) -> AppResult<String> {
    Ok(validate::opt_text(field, &clean(value), max)?.unwrap_or_default())
}

/// A required calendar date, YYYY-MM-DD.
fn date(field: &str, value: &str) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, "is required (YYYY-MM-DD)"));
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| AppError::invalid(field, format!("'{v}' is not a date (YYYY-MM-DD)")))
}

/// An optional date: empty means absent.
fn opt_date(field: &str, value: &str) -> AppResult<String> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        date(field, value)
    }
}

/// A finite amount in `0..=max`; -0 becomes 0 so it encodes like 0.
fn amount(field: &str, v: f64, max: f64) -> AppResult<f64> {
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(AppError::invalid(field, format!("must be a number between 0 and {max}")));
    }
    Ok(v + 0.0)
}

fn count_limit(field: &str, n: usize, max: usize) -> AppResult<()> {
    if n > max {
        return Err(AppError::invalid(field, format!("{n} items; at most {max} are accepted")));
    }
    Ok(())
}

/// Refuses a second item with the same id; returns the id.
fn unique_id(
    field: &str,
    section: &str,
    id: &str,
    index: usize,
    seen: &mut HashMap<String, usize>,
) -> AppResult<String> {
    let id = validate::token(field, id, ID_MAX)?;
    if let Some(first) = seen.insert(id.clone(), index) {
        return Err(AppError::invalid(field, format!("duplicate id '{id}' (also {section}[{first}])")));
    }
    Ok(id)
}

fn applications(apps: Vec<proto::Application>) -> AppResult<Vec<proto::Application>> {
    count_limit("applications", apps.len(), MAX_APPLICATIONS)?;
    let mut ids = HashMap::with_capacity(apps.len());
    // (domain → (target product, index)): one target product per domain.
    let mut targets: HashMap<i32, (String, usize)> = HashMap::new();
    let mut out = Vec::with_capacity(apps.len());
    for (i, a) in apps.into_iter().enumerate() {
        let f = |name: &str| format!("applications[{i}].{name}");
        let id = unique_id(&f("id"), "applications", &a.id, i, &mut ids)?;
        let name = text(&f("name"), &a.name, TEXT_MAX)?;
        let vendor = text(&f("vendor"), &a.vendor, TEXT_MAX)?;
        let version = opt_text(&f("version"), &a.version, VERSION_MAX)?;
        let domain = validate::enum_value::<proto::FunctionalDomain>(&f("domain"), a.domain)?;
        let hosting = validate::enum_value::<proto::HostingMode>(&f("hosting"), a.hosting)?;
        count_limit(&f("interfaces"), a.interfaces.len(), MAX_INTERFACES)?;
        let mut interfaces = a
            .interfaces
            .into_iter()
            .enumerate()
            .map(|(j, itf)| interface(&f(&format!("interfaces[{j}]")), itf))
            .collect::<AppResult<Vec<_>>>()?;
        interfaces.sort_by(|x, y| interface_sort_key(x).cmp(&interface_sort_key(y)));
        let end_of_support = opt_date(&f("end_of_support"), &a.end_of_support)?;
        if a.convergence_target {
            let key = product_key(&vendor, &name);
            match targets.get(&(domain as i32)) {
                Some((other, j)) if *other != key => {
                    return Err(AppError::invalid(
                        f("convergence_target"),
                        format!(
                            "domain {} already has target product '{other}' (applications[{j}]); \
                             an inventory names at most one target per domain",
                            domain.as_str_name().trim_start_matches("FUNCTIONAL_DOMAIN_")
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    targets.insert(domain as i32, (key, i));
                }
            }
        }
        out.push(proto::Application {
            id,
            name,
            vendor,
            version,
            domain: domain as i32,
            hosting: hosting as i32,
            users_count: a.users_count,
            interfaces,
            end_of_support,
            convergence_target: a.convergence_target,
        });
    }
    // Interfaces name other applications of the same inventory: check once every id is known.
    let positions: HashMap<&str, usize> = ids.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    for a in &out {
        let i = positions.get(a.id.as_str()).copied().unwrap_or_default();
        for itf in &a.interfaces {
            if let Some(Peer::ApplicationId(peer)) = &itf.peer {
                if peer == &a.id {
                    return Err(AppError::invalid(
                        format!("applications[{i}].interfaces"),
                        format!("application '{peer}' has an interface with itself"),
                    ));
                }
                if !positions.contains_key(peer.as_str()) {
                    return Err(AppError::invalid(
                        format!("applications[{i}].interfaces"),
                        format!("application_id '{peer}' is not an application of this inventory"),
                    ));
                }
            }
        }
    }
    out.sort_by(|x, y| x.id.cmp(&y.id));
    Ok(out)
}

fn interface(field: &str, itf: proto::ApplicationInterface) -> AppResult<proto::ApplicationInterface> {
    let standard = validate::enum_value::<proto::InterfaceStandard>(&format!("{field}.standard"), itf.standard)?;
    let peer = match itf.peer {
        Some(Peer::ApplicationId(id)) => {
            Peer::ApplicationId(validate::token(&format!("{field}.application_id"), &id, ID_MAX)?)
        }
        Some(Peer::ExternalSystem(s)) => Peer::ExternalSystem(text(&format!("{field}.external_system"), &s, TEXT_MAX)?),
        None => return Err(AppError::invalid(field, "a peer is required: application_id or external_system")),
    };
    Ok(proto::ApplicationInterface { standard: standard as i32, peer: Some(peer) })
}

fn interface_sort_key(i: &proto::ApplicationInterface) -> (u8, &str, i32) {
    match &i.peer {
        Some(Peer::ApplicationId(s)) => (0, s.as_str(), i.standard),
        Some(Peer::ExternalSystem(s)) => (1, s.as_str(), i.standard),
        None => (2, "", i.standard),
    }
}

fn infrastructure(i: proto::Infrastructure) -> AppResult<proto::Infrastructure> {
    count_limit("data_centres", i.data_centres.len(), MAX_INFRASTRUCTURE_ITEMS)?;
    count_limit("network_links", i.network_links.len(), MAX_INFRASTRUCTURE_ITEMS)?;
    let mut seen = HashMap::new();
    let mut data_centres = Vec::with_capacity(i.data_centres.len());
    for (k, dc) in i.data_centres.into_iter().enumerate() {
        let f = |name: &str| format!("data_centres[{k}].{name}");
        data_centres.push(proto::DataCentre {
            id: unique_id(&f("id"), "data_centres", &dc.id, k, &mut seen)?,
            name: text(&f("name"), &dc.name, TEXT_MAX)?,
            kind: validate::enum_value::<proto::DataCentreKind>(&f("kind"), dc.kind)? as i32,
            site: opt_text(&f("site"), &dc.site, TEXT_MAX)?,
            hosts_production: dc.hosts_production,
        });
    }
    data_centres.sort_by(|x, y| x.id.cmp(&y.id));
    let mut seen = HashMap::new();
    let mut network_links = Vec::with_capacity(i.network_links.len());
    for (k, l) in i.network_links.into_iter().enumerate() {
        let f = |name: &str| format!("network_links[{k}].{name}");
        if l.bandwidth_mbps == 0 {
            return Err(AppError::invalid(f("bandwidth_mbps"), "must be at least 1 Mbit/s"));
        }
        network_links.push(proto::NetworkLink {
            id: unique_id(&f("id"), "network_links", &l.id, k, &mut seen)?,
            from_site: text(&f("from_site"), &l.from_site, TEXT_MAX)?,
            to_site: text(&f("to_site"), &l.to_site, TEXT_MAX)?,
            kind: validate::enum_value::<proto::NetworkLinkKind>(&f("kind"), l.kind)? as i32,
            bandwidth_mbps: l.bandwidth_mbps,
            redundant: l.redundant,
        });
    }
    network_links.sort_by(|x, y| x.id.cmp(&y.id));
    let backup = match i.backup {
        Some(b) => Some(proto::BackupPolicy {
            frequency: validate::enum_value::<proto::BackupFrequency>("backup.frequency", b.frequency)? as i32,
            offsite_copy: b.offsite_copy,
            immutable_copy: b.immutable_copy,
            last_restore_test: opt_date("backup.last_restore_test", &b.last_restore_test)?,
        }),
        None => None,
    };
    let continuity = match i.continuity {
        Some(c) => Some(proto::ContinuityPlans {
            pra: validate::enum_value::<proto::ContinuityPlanStatus>("continuity.pra", c.pra)? as i32,
            pca: validate::enum_value::<proto::ContinuityPlanStatus>("continuity.pca", c.pca)? as i32,
            last_exercise: opt_date("continuity.last_exercise", &c.last_exercise)?,
            rto_hours: c.rto_hours,
            rpo_hours: c.rpo_hours,
        }),
        None => None,
    };
    Ok(proto::Infrastructure {
        data_centres,
        physical_servers: i.physical_servers,
        virtual_machines: i.virtual_machines,
        virtualisation_platform: opt_text("virtualisation_platform", &i.virtualisation_platform, TEXT_MAX)?,
        storage_tb: amount("storage_tb", i.storage_tb, 1e6)?,
        network_links,
        backup,
        continuity,
    })
}

fn security(s: proto::SecurityPosture) -> AppResult<proto::SecurityPosture> {
    Ok(proto::SecurityPosture {
        pssi_status: validate::enum_value::<proto::PssiStatus>("pssi_status", s.pssi_status)? as i32,
        pssi_adopted_on: opt_date("pssi_adopted_on", &s.pssi_adopted_on)?,
        rssi_named: s.rssi_named,
        rssi_shared_with_ght: s.rssi_shared_with_ght,
        last_audit: opt_date("last_audit", &s.last_audit)?,
        incidents_last_12_months: s.incidents_last_12_months,
        hds_status: validate::enum_value::<proto::HdsStatus>("hds_status", s.hds_status)? as i32,
    })
}

fn resources(r: proto::IsResources) -> AppResult<proto::IsResources> {
    if !(2000..=2100).contains(&r.year) {
        return Err(AppError::invalid("year", "must be a budget year between 2000 and 2100"));
    }
    let mut seen: HashMap<i32, usize> = HashMap::new();
    let mut staff = Vec::with_capacity(r.staff.len());
    for (k, s) in r.staff.into_iter().enumerate() {
        let field = format!("staff[{k}].category");
        let category = validate::enum_value::<proto::StaffCategory>(&field, s.category)?;
        if let Some(first) = seen.insert(category as i32, k) {
            return Err(AppError::invalid(
                field,
                format!("category {} is already declared (staff[{first}])", category.as_str_name()),
            ));
        }
        staff.push(proto::StaffLine {
            category: category as i32,
            fte: amount(&format!("staff[{k}].fte"), s.fte, 10_000.0)?,
        });
    }
    staff.sort_by_key(|s| s.category);
    Ok(proto::IsResources {
        year: r.year,
        budget_operating_eur: r.budget_operating_eur.map(|v| amount("budget_operating_eur", v, 1e10)).transpose()?,
        budget_investment_eur: r.budget_investment_eur.map(|v| amount("budget_investment_eur", v, 1e10)).transpose()?,
        staff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, name: &str, domain: proto::FunctionalDomain) -> proto::Application {
        proto::Application {
            id: id.into(),
            name: name.into(),
            vendor: "Dedalus".into(),
            version: "1.0".into(),
            domain: domain as i32,
            hosting: proto::HostingMode::OnPremise as i32,
            users_count: 10,
            ..Default::default()
        }
    }

    fn doc(apps: Vec<proto::Application>) -> proto::InventoryDocument {
        proto::InventoryDocument {
            as_of: "2025-01-31".into(),
            source: proto::InventorySource::Manual as i32,
            applications: apps,
            ..Default::default()
        }
    }

    fn err(d: proto::InventoryDocument) -> (String, String) {
        match canonicalize(d) {
            Err(AppError::InvalidArgument { field, reason }) => (field, reason),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_item_and_field() {
        let mut a = app("gam", "Pastel", proto::FunctionalDomain::PatientAdministration);
        a.hosting = 0;
        let d = doc(vec![app("dpi", "DxCare", proto::FunctionalDomain::Dpi), a]);
        assert_eq!(err(d).0, "applications[1].hosting");

        let mut a = app("gam", "Pastel", proto::FunctionalDomain::PatientAdministration);
        a.domain = 99;
        let (field, reason) = err(doc(vec![a]));
        assert_eq!(field, "applications[0].domain");
        assert!(reason.contains("unknown enum value 99"), "{reason}");

        let d = doc(vec![app("dpi", " ", proto::FunctionalDomain::Dpi)]);
        assert_eq!(err(d), ("applications[0].name".into(), "must not be empty".into()));

        let d = doc(vec![
            app("dpi", "A", proto::FunctionalDomain::Dpi),
            app("lab", "B", proto::FunctionalDomain::Lab),
            app("dpi", "C", proto::FunctionalDomain::Dpi),
        ]);
        let (field, reason) = err(d);
        assert_eq!(field, "applications[2].id");
        assert!(reason.contains("duplicate id 'dpi' (also applications[0])"), "{reason}");

        let mut d = doc(vec![]);
        d.resources = Some(proto::IsResources {
            year: 2025,
            staff: vec![proto::StaffLine { category: proto::StaffCategory::Project as i32, fte: f64::NAN }],
            ..Default::default()
        });
        assert_eq!(err(d).0, "resources.staff[0].fte");

        let mut d = doc(vec![]);
        d.as_of = "31/01/2025".into();
        assert_eq!(err(d).0, "as_of");
    }

    #[test]
    fn interfaces_must_name_a_known_application() {
        let mut a = app("dpi", "DxCare", proto::FunctionalDomain::Dpi);
        a.interfaces.push(proto::ApplicationInterface {
            standard: proto::InterfaceStandard::Hl7V2 as i32,
            peer: Some(Peer::ApplicationId("gam".into())),
        });
        let (field, reason) = err(doc(vec![a.clone()]));
        assert_eq!(field, "applications[0].interfaces");
        assert!(reason.contains("'gam'"), "{reason}");
        let ok = canonicalize(doc(vec![a, app("gam", "Pastel", proto::FunctionalDomain::PatientAdministration)]));
        assert!(ok.is_ok(), "{ok:?}");
        let mut b = app("x", "X", proto::FunctionalDomain::Other);
        b.interfaces.push(proto::ApplicationInterface { standard: proto::InterfaceStandard::Fhir as i32, peer: None });
        assert_eq!(err(doc(vec![b])).0, "applications[0].interfaces[0]");
    }

    #[test]
    fn one_target_product_per_domain() {
        let mut a = app("dpi1", "DxCare", proto::FunctionalDomain::Dpi);
        a.convergence_target = true;
        let mut b = app("dpi2", "Orbis", proto::FunctionalDomain::Dpi);
        b.convergence_target = true;
        assert_eq!(err(doc(vec![a.clone(), b])).0, "applications[1].convergence_target");
        // The same product twice (two instances) is fine.
        let mut c = app("dpi3", " dxcare ", proto::FunctionalDomain::Dpi);
        c.convergence_target = true;
        assert!(canonicalize(doc(vec![a, c])).is_ok());
    }

    #[test]
    fn canonical_form_ignores_order_and_whitespace() {
        let a = app("b-app", "Dx  Care", proto::FunctionalDomain::Dpi);
        let b = app("a-app", "Pastel", proto::FunctionalDomain::PatientAdministration);
        let one = canonicalize(doc(vec![a.clone(), b.clone()])).unwrap();
        let mut a2 = a;
        a2.name = "  Dx Care\t".into();
        let two = canonicalize(doc(vec![b, a2])).unwrap();
        assert_eq!(one.hash, two.hash);
        assert_eq!(one.document.applications[0].id, "a-app");
        assert_eq!(one.document.applications[1].name, "Dx Care");
        // A real change changes the hash.
        let mut d = one.document.clone();
        d.applications[0].users_count += 1;
        assert_ne!(canonicalize(d).unwrap().hash, one.hash);
        // Canonicalizing is idempotent and survives an encoding round trip.
        assert_eq!(validate_bytes(&one.bytes).unwrap(), one);
    }

    #[test]
    fn too_many_applications_is_refused() {
        let apps = (0..=MAX_APPLICATIONS).map(|i| app(&format!("a{i}"), "X", proto::FunctionalDomain::Other)).collect();
        let (field, reason) = err(doc(apps));
        assert_eq!(field, "applications");
        assert!(reason.contains("at most 20000"), "{reason}");
    }
}
