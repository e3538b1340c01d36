//! Differences between two versions of an inventory: items added, removed and
//! changed (by item id, per section), with the changed fields named. Pure.

use std::collections::BTreeMap;

use super::types::EnumCode;
use crate::proto::{self, application_interface::Peer, InventoryChangeKind as Kind, InventorySection as Section};

/// An item reduced to its label and its fields rendered as text, in a fixed order.
struct Item {
    label: String,
    fields: Vec<(&'static str, String)>,
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn num(v: f64) -> String {
    format!("{v}")
}

fn opt_num(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

fn interfaces(a: &proto::Application) -> String {
    a.interfaces
        .iter()
        .map(|i| {
            let peer = match &i.peer {
                Some(Peer::ApplicationId(id)) => id.clone(),
                // A space never occurs in an application id: no external system can
                // read as one (an id may well be `external:DMP`).
                Some(Peer::ExternalSystem(s)) => format!("external system {s}"),
                None => String::new(),
            };
            format!("{}→{peer}", proto::InterfaceStandard::code_of(i.standard))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn application(a: &proto::Application) -> Item {
    // "Dedalus DxCare 8.4"; "Octime Planif 9" when the name already says the vendor.
    let product = if a.name.to_lowercase().starts_with(&a.vendor.to_lowercase()) {
        a.name.clone()
    } else {
        format!("{} {}", a.vendor, a.name)
    };
    Item {
        label: format!("{product} {}", a.version).trim_end().to_string(),
        fields: vec![
            ("name", a.name.clone()),
            ("vendor", a.vendor.clone()),
            ("version", a.version.clone()),
            ("domain", proto::FunctionalDomain::code_of(a.domain)),
            ("hosting", proto::HostingMode::code_of(a.hosting)),
            ("users_count", a.users_count.to_string()),
            ("interfaces", interfaces(a)),
            ("end_of_support", a.end_of_support.clone()),
            ("convergence_target", yes(a.convergence_target)),
        ],
    }
}

fn data_centre(d: &proto::DataCentre) -> Item {
    Item {
        label: d.name.clone(),
        fields: vec![
            ("name", d.name.clone()),
            ("kind", proto::DataCentreKind::code_of(d.kind)),
            ("site", d.site.clone()),
            ("hosts_production", yes(d.hosts_production)),
        ],
    }
}

fn network_link(l: &proto::NetworkLink) -> Item {
    Item {
        label: format!("{} – {}", l.from_site, l.to_site),
        fields: vec![
            ("from_site", l.from_site.clone()),
            ("to_site", l.to_site.clone()),
            ("kind", proto::NetworkLinkKind::code_of(l.kind)),
            ("bandwidth_mbps", l.bandwidth_mbps.to_string()),
            ("redundant", yes(l.redundant)),
        ],
    }
}

fn header(d: &proto::InventoryDocument) -> Item {
    Item {
        label: "document".into(),
        fields: vec![("as_of", d.as_of.clone()), ("source", proto::InventorySource::code_of(d.source))],
    }
}

fn infrastructure(i: &proto::Infrastructure) -> Item {
    let b = i.backup.clone().unwrap_or_default();
    let c = i.continuity.clone().unwrap_or_default();
    let has_b = i.backup.is_some();
    let has_c = i.continuity.is_some();
    let when = |present: bool, v: String| if present { v } else { String::new() };
    Item {
        label: "infrastructure".into(),
        fields: vec![
            ("physical_servers", i.physical_servers.to_string()),
            ("virtual_machines", i.virtual_machines.to_string()),
            ("virtualisation_platform", i.virtualisation_platform.clone()),
            ("storage_tb", num(i.storage_tb)),
            ("backup.frequency", when(has_b, proto::BackupFrequency::code_of(b.frequency))),
            ("backup.offsite_copy", when(has_b, yes(b.offsite_copy))),
            ("backup.immutable_copy", when(has_b, yes(b.immutable_copy))),
            ("backup.last_restore_test", b.last_restore_test),
            ("continuity.pra", when(has_c, proto::ContinuityPlanStatus::code_of(c.pra))),
            ("continuity.pca", when(has_c, proto::ContinuityPlanStatus::code_of(c.pca))),
            ("continuity.last_exercise", c.last_exercise),
            ("continuity.rto_hours", when(has_c, c.rto_hours.to_string())),
            ("continuity.rpo_hours", when(has_c, c.rpo_hours.to_string())),
        ],
    }
}

fn security(s: &proto::SecurityPosture) -> Item {
    Item {
        label: "security".into(),
        fields: vec![
            ("pssi_status", proto::PssiStatus::code_of(s.pssi_status)),
            ("pssi_adopted_on", s.pssi_adopted_on.clone()),
            ("rssi_named", yes(s.rssi_named)),
            ("rssi_shared_with_ght", yes(s.rssi_shared_with_ght)),
            ("last_audit", s.last_audit.clone()),
            ("incidents_last_12_months", s.incidents_last_12_months.to_string()),
            ("hds_status", proto::HdsStatus::code_of(s.hds_status)),
        ],
    }
}

fn resources(r: &proto::IsResources) -> Item {
    Item {
        label: "resources".into(),
        fields: vec![
            ("year", r.year.to_string()),
            ("budget_operating_eur", opt_num(r.budget_operating_eur)),
            ("budget_investment_eur", opt_num(r.budget_investment_eur)),
        ],
    }
}

fn staff(s: &proto::StaffLine) -> Item {
    Item { label: proto::StaffCategory::code_of(s.category), fields: vec![("fte", num(s.fte))] }
}

/// Compares two keyed item collections of one section.
fn compare(
    section: Section,
    old: BTreeMap<String, Item>,
    mut new: BTreeMap<String, Item>,
    out: &mut Vec<proto::InventoryItemChange>,
) {
    let mut changes: BTreeMap<String, proto::InventoryItemChange> = BTreeMap::new();
    let change = |id: &str, kind: Kind, label: String, fields| proto::InventoryItemChange {
        section: section as i32,
        item_id: id.to_string(),
        kind: kind as i32,
        label,
        fields,
    };
    for (id, before) in old {
        match new.remove(&id) {
            None => {
                changes.insert(id.clone(), change(&id, Kind::Removed, before.label, Vec::new()));
            }
            Some(after) => {
                let fields: Vec<proto::InventoryFieldChange> = before
                    .fields
                    .into_iter()
                    .zip(after.fields)
                    .filter(|((_, b), (_, a))| a != b)
                    .map(|((field, b), (_, a))| proto::InventoryFieldChange {
                        field: field.to_string(),
                        before: b,
                        after: a,
                    })
                    .collect();
                if !fields.is_empty() {
                    changes.insert(id.clone(), change(&id, Kind::Changed, after.label, fields));
                }
            }
        }
    }
    for (id, after) in new {
        changes.insert(id.clone(), change(&id, Kind::Added, after.label, Vec::new()));
    }
    out.extend(changes.into_values());
}

fn keyed<T>(items: &[T], id: impl Fn(&T) -> String, item: impl Fn(&T) -> Item) -> BTreeMap<String, Item> {
    items.iter().map(|t| (id(t), item(t))).collect()
}

fn single<T>(v: Option<&T>, id: &str, item: impl Fn(&T) -> Item) -> BTreeMap<String, Item> {
    v.map(|t| (id.to_string(), item(t))).into_iter().collect()
}

/// The changes from `old` to `new`, by section then item id.
pub fn diff(old: &proto::InventoryDocument, new: &proto::InventoryDocument) -> Vec<proto::InventoryItemChange> {
    let mut out = Vec::new();
    compare(Section::Document, single(Some(old), "document", header), single(Some(new), "document", header), &mut out);
    compare(
        Section::Applications,
        keyed(&old.applications, |a| a.id.clone(), application),
        keyed(&new.applications, |a| a.id.clone(), application),
        &mut out,
    );
    let no_infra = proto::Infrastructure::default();
    let (oi, ni) = (old.infrastructure.as_ref().unwrap_or(&no_infra), new.infrastructure.as_ref().unwrap_or(&no_infra));
    compare(
        Section::DataCentres,
        keyed(&oi.data_centres, |d| d.id.clone(), data_centre),
        keyed(&ni.data_centres, |d| d.id.clone(), data_centre),
        &mut out,
    );
    compare(
        Section::NetworkLinks,
        keyed(&oi.network_links, |l| l.id.clone(), network_link),
        keyed(&ni.network_links, |l| l.id.clone(), network_link),
        &mut out,
    );
    compare(
        Section::Infrastructure,
        single(old.infrastructure.as_ref(), "infrastructure", infrastructure),
        single(new.infrastructure.as_ref(), "infrastructure", infrastructure),
        &mut out,
    );
    compare(
        Section::Security,
        single(old.security.as_ref(), "security", security),
        single(new.security.as_ref(), "security", security),
        &mut out,
    );
    compare(
        Section::Resources,
        single(old.resources.as_ref(), "resources", resources),
        single(new.resources.as_ref(), "resources", resources),
        &mut out,
    );
    let no_staff = Vec::new();
    let staff_of = |d: &proto::InventoryDocument| -> BTreeMap<String, Item> {
        let lines = d.resources.as_ref().map(|r| &r.staff).unwrap_or(&no_staff);
        keyed(lines, |s| proto::StaffCategory::code_of(s.category), staff)
    };
    compare(Section::Staff, staff_of(old), staff_of(new), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, name: &str, hosting: proto::HostingMode) -> proto::Application {
        proto::Application {
            id: id.into(),
            name: name.into(),
            vendor: "V".into(),
            domain: proto::FunctionalDomain::Lab as i32,
            hosting: hosting as i32,
            ..Default::default()
        }
    }

    #[test]
    fn added_removed_changed_with_fields() {
        let old = proto::InventoryDocument {
            as_of: "2024-01-01".into(),
            applications: vec![
                app("a", "A", proto::HostingMode::OnPremise),
                app("b", "B", proto::HostingMode::OnPremise),
            ],
            ..Default::default()
        };
        let mut new = old.clone();
        new.as_of = "2025-01-01".into();
        new.applications = vec![app("b", "B", proto::HostingMode::SharedGht), app("c", "C", proto::HostingMode::Saas)];
        new.security = Some(proto::SecurityPosture { pssi_status: 3, hds_status: 1, ..Default::default() });
        let changes = diff(&old, &new);
        let summary: Vec<(i32, &str, i32)> = changes.iter().map(|c| (c.section, c.item_id.as_str(), c.kind)).collect();
        assert_eq!(
            summary,
            vec![
                (Section::Document as i32, "document", Kind::Changed as i32),
                (Section::Applications as i32, "a", Kind::Removed as i32),
                (Section::Applications as i32, "b", Kind::Changed as i32),
                (Section::Applications as i32, "c", Kind::Added as i32),
                (Section::Security as i32, "security", Kind::Added as i32),
            ]
        );
        let b = &changes[2];
        assert_eq!(b.fields.len(), 1);
        assert_eq!(
            (b.fields[0].field.as_str(), b.fields[0].before.as_str(), b.fields[0].after.as_str()),
            ("hosting", "ON_PREMISE", "SHARED_GHT")
        );
        assert!(diff(&new, &new).is_empty());
    }
}
