//! Demo inventories for `ghthub demo seed` (see `crate::demo`): every establishment of
//! the demo GHT pushes a plausible inventory through the `Inventory` service as its
//! own DSI. Products are drawn from a catalogue of software common in French
//! hospitals (vendors and names are real products, the deployments are fictional);
//! sizes, users, budgets and staff scale with beds. The GHT has chosen convergence
//! targets for some domains (the support CHU's DPI and GAM, a shared lab system, a
//! shared PACS, pharmacy, territorial PMSI); some parties are already on them. The
//! support and two thirds of the parties push two versions (the 2024 état des lieux,
//! then 2025, after migrations to targets and to shared hosting), so diffs and trends
//! show; the others joined the hub in 2025.
//!
//! Deterministic (`territory.rng("inventory")`), and safe to run again: versions
//! already stored are recognised by their content hash and not pushed twice, and the
//! last one is re-pushed, which returns the same version.

use anyhow::Context;
use rand::{rngs::StdRng, seq::SliceRandom, Rng};

use super::canonical;
use crate::{
    access::Role,
    demo::{DemoEstablishment, DemoTerritory},
    proto::{self, application_interface::Peer, EstablishmentCategory as Cat, FunctionalDomain as D, HostingMode as H},
};

/// A product of the catalogue.
#[derive(Clone, Copy)]
struct Product {
    vendor: &'static str,
    name: &'static str,
    versions: &'static [&'static str],
    /// Vendor-run only.
    saas: bool,
}

const fn p(vendor: &'static str, name: &'static str, versions: &'static [&'static str]) -> Product {
    Product { vendor, name, versions, saas: false }
}

const fn saas(vendor: &'static str, name: &'static str) -> Product {
    Product { vendor, name, versions: &[], saas: true }
}

/// A core domain: its products (the first is the GHT's target when `target`), the
/// item id used in every establishment, users per bed.
struct Core {
    id: &'static str,
    domain: D,
    products: &'static [Product],
    target: bool,
    users_per_bed: f64,
}

const CORE: &[Core] = &[
    Core {
        id: "gam",
        domain: D::PatientAdministration,
        products: &[
            p("Maincare", "Pastel", &["2023.4", "2024.2"]),
            p("InterSystems", "Clinicom", &["2022.1", "2023.1"]),
            p("SIB", "Sillage GAM", &["17.2", "18.1"]),
            p("Softway Medical", "Hopital Manager GAM", &["5.4", "6.0"]),
        ],
        target: true,
        users_per_bed: 0.3,
    },
    Core {
        id: "dpi",
        domain: D::Dpi,
        products: &[
            p("Dedalus", "DxCare", &["8.3", "8.4"]),
            p("Maincare", "M-Crossway", &["8.2", "8.3.1"]),
            p("SIB", "Sillage DPI", &["17.2", "18.1"]),
            p("Softway Medical", "Hopital Manager", &["5.4", "6.0"]),
            p("Dedalus", "Orbis", &["08.04", "08.05"]),
        ],
        target: true,
        users_per_bed: 2.6,
    },
    Core {
        id: "prescription",
        domain: D::Prescription,
        products: &[
            p("Computer Engineering", "Pharma", &["6.7", "6.8"]),
            p("Dedalus", "DxCare Prescription", &["8.3", "8.4"]),
            p("Maincare", "M-Crossway Prescription", &["8.2", "8.3"]),
        ],
        target: false,
        users_per_bed: 1.4,
    },
    Core {
        id: "sil",
        domain: D::Lab,
        products: &[
            p("CliniSys", "Glims", &["9.5", "10.2"]),
            p("CGM", "Molis", &["4.40", "4.50"]),
            p("Technidata", "TDNexLabs", &["3.1", "3.2"]),
            p("Dedalus", "Hexalis", &["6.2", "6.3"]),
        ],
        target: true,
        users_per_bed: 0.12,
    },
    Core {
        id: "pacs",
        domain: D::Imaging,
        products: &[
            p("Fujifilm", "Synapse PACS", &["5.7", "7.3"]),
            p("Agfa HealthCare", "Enterprise Imaging", &["8.2", "8.3"]),
            p("GE HealthCare", "Centricity PACS", &["7.0"]),
            p("Telemis", "Telemis-TM", &["4.8", "5.0"]),
        ],
        target: true,
        users_per_bed: 0.6,
    },
    Core {
        id: "anapath",
        domain: D::Pathology,
        products: &[p("Infologic Santé", "Diamic", &["6.1", "6.3"]), p("Dedalus", "Hexalis ACP", &["6.2"])],
        target: false,
        users_per_bed: 0.02,
    },
    Core {
        id: "pharmacie",
        domain: D::Pharmacy,
        products: &[
            p("Computer Engineering", "Pharma", &["6.7", "6.8"]),
            p("Maincare", "Copilote", &["3.2", "3.4"]),
            p("SIB", "Sillage Pharmacie", &["17.2"]),
        ],
        target: true,
        users_per_bed: 0.04,
    },
    Core {
        id: "pmsi",
        domain: D::Pmsi,
        products: &[
            p("Maincare", "Cora PMSI", &["5.1", "5.2"]),
            p("Dedalus", "Web100T", &["2023", "2024"]),
            p("SIB", "Sillage PMSI", &["17.2"]),
        ],
        target: true,
        users_per_bed: 0.03,
    },
    Core {
        id: "rdv",
        domain: D::Scheduling,
        products: &[
            saas("Doctolib", "Doctolib Hôpital"),
            saas("Keldoc", "Keldoc"),
            p("Maincare", "M-Agenda", &["2.3"]),
        ],
        target: false,
        users_per_bed: 0.2,
    },
    Core {
        id: "urgences",
        domain: D::Emergency,
        products: &[
            p("Berger-Levrault", "ResUrgences", &["2023.2", "2024.1"]),
            p("Maincare", "Urqual", &["6.1"]),
            p("Dedalus", "DxCare Urgences", &["8.3"]),
        ],
        target: false,
        users_per_bed: 0.25,
    },
    Core {
        id: "gef",
        domain: D::Finance,
        products: &[
            p("Maincare", "Magh2", &["2023.2", "2024.1"]),
            p("Cpage", "Cpage", &["7.4", "8.0"]),
            p("Berger-Levrault", "e.Magnus Gestion Financière", &["2023"]),
        ],
        target: false,
        users_per_bed: 0.15,
    },
    Core {
        id: "paie",
        domain: D::Hr,
        products: &[
            p("Inetum", "Agirh", &["4.5", "4.6"]),
            p("Berger-Levrault", "e.Magnus GRH", &["2023"]),
            p("Cpage", "Cpage RH", &["7.4"]),
        ],
        target: false,
        users_per_bed: 0.08,
    },
    Core {
        id: "achats",
        domain: D::Procurement,
        products: &[p("Maincare", "Magh2 Achats", &["2024.1"]), p("Berger-Levrault", "e.Magnus Achats", &["2023"])],
        target: false,
        users_per_bed: 0.05,
    },
    Core {
        id: "pilotage",
        domain: D::Bi,
        products: &[
            p("Qlik", "Qlik Sense", &["2024"]),
            p("Microsoft", "Power BI", &["2024"]),
            p("SAP", "BusinessObjects", &["4.3"]),
        ],
        target: false,
        users_per_bed: 0.05,
    },
    Core {
        id: "messagerie",
        domain: D::Messaging,
        products: &[
            p("Microsoft", "Exchange", &["2016", "2019"]),
            p("Synacor", "Zimbra Collaboration", &["9.0", "10.0"]),
        ],
        target: false,
        users_per_bed: 3.0,
    },
];

/// Peripheral and specialty applications, drawn (with repetition: one instance per
/// service or site) to fill an establishment's inventory up to its size. Clinical
/// specialty software (intensive care, anaesthesia, lab middleware, imaging
/// post-processing, dispensing robots…) is filed under OTHER so the core domains show
/// the convergence of the main application. Each entry says whether only an MCO
/// hospital runs it and how many instances (services, sites) one establishment may have.
const TAIL: &[(D, Product, bool, usize)] = &[
    // Clinical specialty software, one instance per service or platform.
    (D::Other, p("Philips", "IntelliSpace Critical Care", &["J.01", "K.00"]), true, 6),
    (D::Other, p("iMDsoft", "MetaVision", &["6.12"]), true, 4),
    (D::Other, p("GE HealthCare", "Centricity High Acuity", &["8.1"]), true, 4),
    (D::Other, p("Bow Medical", "Diane", &["5.2", "6.0"]), true, 6),
    (D::Other, p("Beckman Coulter", "REMISOL Advance", &["2.0", "3.0"]), true, 4),
    (D::Other, p("Sysmex", "WAM", &["5.2"]), true, 3),
    (D::Other, p("bioMérieux", "MYLA", &["4.9"]), true, 2),
    (D::Other, p("Siemens Healthineers", "syngo.via", &["VB60", "VB80"]), true, 6),
    (D::Other, p("Philips", "IntelliSpace Portal", &["12"]), true, 4),
    (D::Other, p("Intrasense", "Myrian", &["2.10"]), true, 4),
    (D::Other, p("Olea Medical", "Olea Sphere", &["3.0"]), true, 3),
    (D::Other, p("Carestream", "Vue Motion", &["12.2"]), true, 2),
    (D::Other, p("Sectra", "Sectra Digital Pathology", &["2.3"]), true, 2),
    (D::Other, p("Omnicell", "Omnicell XT", &["20.1"]), true, 8),
    (D::Other, p("Swisslog", "PillPick", &["6.4"]), true, 2),
    (D::Other, p("Eurekam", "Drugcam", &["3.1"]), true, 2),
    (D::Other, p("Computer Engineering", "Chimio", &["6.3"]), true, 2),
    (D::Other, p("Varian", "ARIA", &["16.1", "18.0"]), true, 2),
    (D::Other, p("Elekta", "MOSAIQ", &["3.2"]), true, 2),
    (D::Other, p("GE HealthCare", "MUSE", &["9.0"]), true, 2),
    (D::Other, p("Philips", "IntelliSpace ECG", &["9.0"]), true, 2),
    (D::Other, p("Nuance", "Dragon Medical One", &["2023"]), false, 8),
    (D::Other, p("Getinge", "T-DOC", &["2000 v17"]), true, 2),
    (D::Other, p("Inlog", "EDGE", &["4.2"]), true, 1),
    (D::Other, p("OpenXtrem", "Mediboard", &["2024.06"]), true, 1),
    (D::Other, p("Evolucare", "Evolucare Dialyse", &["2.4"]), true, 1),
    (D::Other, p("Vidal", "Vidal Hoptimal", &["2024"]), false, 1),
    (D::Other, saas("Pulsy", "Pulsy Télémédecine"), false, 2),
    (D::Other, saas("Maela", "Maela"), false, 2),
    (D::Other, saas("Calmedica", "Memoquest"), false, 1),
    (D::Other, saas("Datameal", "Datameal"), false, 1),
    (D::Other, saas("BlueKanGo", "BlueKanGo Qualité"), false, 1),
    (D::Other, p("Carl Software", "CARL Source", &["5.2"]), false, 2),
    (D::Other, p("Maarch", "Maarch Courrier", &["21.03"]), false, 1),
    (D::Other, p("Alfresco", "Alfresco Content Services", &["7.4"]), false, 1),
    (D::Other, saas("Yousign", "Yousign"), false, 1),
    // Management, messaging and infrastructure software, one instance each.
    (D::Scheduling, p("Octime", "Octime Planif", &["9"]), false, 1),
    (D::Hr, p("Octime", "Octime Expresso", &["9", "10"]), false, 1),
    (D::Hr, p("Bodet Software", "Kelio", &["4.2"]), false, 1),
    (D::Bi, p("Microsoft", "SQL Server Reporting Services", &["2019", "2022"]), false, 1),
    (D::Bi, p("Salesforce", "Tableau", &["2024.1"]), false, 1),
    (D::Messaging, saas("ANS", "Mailiz"), false, 1),
    (D::Messaging, saas("Lifen", "Lifen"), false, 1),
    (D::Messaging, p("Ascom", "Unite", &["6.3"]), false, 1),
    (D::Messaging, p("Apicrypt", "Apicrypt", &["2.0"]), false, 1),
    (D::Messaging, saas("Microsoft", "Teams"), false, 1),
    (D::Infrastructure, p("Microsoft", "Active Directory", &["2019", "2022"]), false, 1),
    (D::Infrastructure, p("Evidian", "Authentication Manager", &["10.1", "10.2"]), false, 1),
    (D::Infrastructure, p("Veeam", "Veeam Backup & Replication", &["11", "12"]), false, 1),
    (D::Infrastructure, p("VMware", "vCenter Server", &["7.0", "8.0"]), false, 1),
    (D::Infrastructure, p("Centreon", "Centreon", &["23.10", "24.04"]), false, 1),
    (D::Infrastructure, p("Zabbix", "Zabbix", &["6.4"]), false, 1),
    (D::Infrastructure, p("Teclib'", "GLPI", &["10.0"]), false, 1),
    (D::Infrastructure, p("Fortinet", "FortiGate", &["7.2", "7.4"]), false, 1),
    (D::Infrastructure, p("Stormshield", "Stormshield Network Security", &["4.7"]), false, 1),
    (D::Infrastructure, p("Wallix", "Wallix Bastion", &["10.0"]), false, 1),
    (D::Infrastructure, p("Citrix", "Virtual Apps and Desktops", &["2203", "2402"]), false, 1),
    (D::Infrastructure, p("Microsoft", "Intune", &["2024"]), false, 1),
    (D::Infrastructure, p("PaperCut", "PaperCut MF", &["22.1"]), false, 1),
    (D::Infrastructure, p("Alcatel-Lucent Enterprise", "OmniPCX Enterprise", &["12.4"]), false, 1),
    (D::Infrastructure, p("NetApp", "ONTAP", &["9.13"]), false, 1),
    (D::Infrastructure, p("Enovacom", "Enovacom Integration Engine", &["4.0", "4.1"]), false, 1),
    (D::Infrastructure, p("NextGen Healthcare", "Mirth Connect", &["4.4"]), false, 1),
    (D::Infrastructure, p("InterSystems", "HealthShare Health Connect", &["2023.1"]), false, 1),
];

/// Domains an establishment of this category does not run (no lab, imaging or
/// emergency department in a psychiatric hospital, an EHPAD or an HAD…).
fn runs(cat: Cat, domain: D) -> bool {
    let technical = matches!(domain, D::Lab | D::Imaging | D::Emergency | D::Pathology);
    match cat {
        Cat::ChPsy | Cat::EpMedicoSocial | Cat::Had => {
            !technical && !(cat == Cat::EpMedicoSocial && domain == D::Scheduling)
        }
        Cat::Chu => true,
        _ => domain != D::Pathology,
    }
}

/// Specialty patient records that replace the generic DPI products.
fn specialty_dpi(cat: Cat) -> Option<Product> {
    match cat {
        Cat::ChPsy => Some(p("Cortexte", "Cortexte", &["6.5"])),
        Cat::EpMedicoSocial => Some(p("Malta Informatique", "Titan", &["5.0"])),
        Cat::Had => Some(p("Softway Medical", "Hopital Manager HAD", &["6.0"])),
        _ => None,
    }
}

fn scaled(rng: &mut StdRng, v: f64) -> f64 {
    v * rng.gen_range(0.85..1.15)
}

/// The establishment's inventory now (`current`) and, for some, a year earlier.
struct Plan {
    establishment: DemoEstablishment,
    documents: Vec<proto::InventoryDocument>,
}

fn application(id: String, domain: D, product: &Product, version: &str, hosting: H, users: u32) -> proto::Application {
    proto::Application {
        id,
        name: product.name.to_string(),
        vendor: product.vendor.to_string(),
        version: version.to_string(),
        domain: domain as i32,
        hosting: if product.saas { H::Saas } else { hosting } as i32,
        users_count: users,
        ..Default::default()
    }
}

fn interface(standard: proto::InterfaceStandard, to: &str) -> proto::ApplicationInterface {
    proto::ApplicationInterface { standard: standard as i32, peer: Some(Peer::ApplicationId(to.to_string())) }
}

fn external(standard: proto::InterfaceStandard, system: &str) -> proto::ApplicationInterface {
    proto::ApplicationInterface { standard: standard as i32, peer: Some(Peer::ExternalSystem(system.to_string())) }
}

/// Interfaces between core applications, where both ends exist.
fn wire(apps: &mut [proto::Application]) {
    use proto::InterfaceStandard::{Dicom, Fhir, Hl7V2, Hprim, Other};
    let has = |apps: &[proto::Application], id: &str| apps.iter().any(|a| a.id == id);
    let links: &[(&str, proto::InterfaceStandard, &str)] = &[
        ("gam", Hl7V2, "dpi"),
        ("gam", Hl7V2, "pmsi"),
        ("gam", Hl7V2, "urgences"),
        ("gam", Hl7V2, "sil"),
        ("gam", Other, "gef"),
        ("dpi", Hl7V2, "gam"),
        ("dpi", Hl7V2, "prescription"),
        ("sil", Hprim, "dpi"),
        ("pacs", Hl7V2, "dpi"),
        ("urgences", Hl7V2, "dpi"),
        ("rdv", Fhir, "gam"),
        ("prescription", Hl7V2, "pharmacie"),
        ("pmsi", Other, "gef"),
    ];
    let present: Vec<bool> = links.iter().map(|(from, _, to)| has(apps, from) && has(apps, to)).collect();
    for a in apps.iter_mut() {
        for ((from, standard, to), ok) in links.iter().zip(&present) {
            if *ok && a.id == *from {
                a.interfaces.push(interface(*standard, to));
            }
        }
        match a.id.as_str() {
            "dpi" => a.interfaces.push(external(Other, "DMP")),
            "pacs" => a.interfaces.push(external(Dicom, "plateforme régionale d'imagerie")),
            _ => {}
        }
    }
}

/// Builds an establishment's current inventory and, when `history`, the one a year
/// earlier (before its migrations to the GHT's targets and shared hosting).
fn plan(rng: &mut StdRng, e: &DemoEstablishment, support: bool, history: bool) -> Plan {
    let beds = f64::from(e.beds);
    let mut current = Vec::new();
    let mut previous = Vec::new();
    for core in CORE {
        if !runs(e.category, core.domain) {
            continue;
        }
        let users = |rng: &mut StdRng| scaled(rng, beds * core.users_per_bed).max(3.0) as u32;
        let specialty = (core.domain == D::Dpi).then(|| specialty_dpi(e.category)).flatten();
        let legacy_idx = rng.gen_range(1..core.products.len());
        // The support runs the targets; another party is on target with probability 1/2
        // (and was not yet, a year earlier, when it has a history); associés never are.
        let on_target = core.target && specialty.is_none() && e.is_party() && (support || rng.gen_bool(0.5));
        let product = match (&specialty, on_target) {
            (Some(s), _) => *s,
            (None, true) => core.products[0],
            (None, false) => core.products[legacy_idx],
        };
        let n = users(rng);
        let version = product.versions.last().copied().unwrap_or("");
        let shared = on_target || (support && core.target);
        let hosting = if shared {
            H::SharedGht
        } else if rng.gen_bool(0.12) {
            H::HdsHost
        } else {
            H::OnPremise
        };
        let mut now = application(core.id.to_string(), core.domain, &product, version, hosting, n);
        now.convergence_target = on_target;
        now.end_of_support =
            if rng.gen_bool(0.3) { format!("{}-12-31", rng.gen_range(2026..=2030)) } else { String::new() };
        let mut before = now.clone();
        if on_target && !support {
            // A year earlier: still on the legacy product, on premise, older version.
            let legacy = core.products[legacy_idx];
            before = application(
                core.id.to_string(),
                core.domain,
                &legacy,
                legacy.versions.first().copied().unwrap_or(""),
                H::OnPremise,
                n,
            );
        } else if let Some(v) = product.versions.first() {
            before.version = v.to_string();
        }
        current.push(now);
        previous.push(before);
    }
    // Peripheral applications up to the establishment's size.
    let wanted = (beds / 9.0) as usize + rng.gen_range(10..20);
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    let mut added = 0;
    for _ in 0..wanted * 3 {
        if added == wanted {
            break;
        }
        let (domain, product, mco_only, max_instances) = TAIL.choose(rng).copied().unwrap_or(TAIL[0]);
        let k = counts.entry(product.name).or_default();
        if *k == max_instances || (mco_only && !matches!(e.category, Cat::Chu | Cat::Ch | Cat::EsPrive)) {
            continue;
        }
        *k += 1;
        added += 1;
        let slug: String =
            product.name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let id = format!("{}-{}", slug.trim_matches('-'), k);
        let users = scaled(rng, beds * 0.05).max(2.0) as u32;
        let hosting = if rng.gen_bool(0.15) { H::HdsHost } else { H::OnPremise };
        let version = product.versions.choose(rng).copied().unwrap_or("");
        let a = application(id, domain, &product, version, hosting, users);
        // About one in ten peripheral applications arrived during the last year.
        if !rng.gen_bool(0.1) {
            previous.push(a.clone());
        }
        current.push(a);
    }
    wire(&mut current);
    wire(&mut previous);

    let op = scaled(rng, beds * 5_200.0).round();
    let inv = (op * rng.gen_range(0.3..0.5)).round();
    let fte = scaled(rng, beds / 14.0).max(1.0);
    let split = [
        (proto::StaffCategory::Management, 0.06),
        (proto::StaffCategory::Project, 0.30),
        (proto::StaffCategory::Development, 0.05),
        (proto::StaffCategory::Infrastructure, 0.24),
        (proto::StaffCategory::UserSupport, 0.28),
        (proto::StaffCategory::Security, 0.03),
        (proto::StaffCategory::Other, 0.04),
    ];
    let staff: Vec<proto::StaffLine> = split
        .iter()
        .map(|(c, share)| proto::StaffLine { category: *c as i32, fte: (fte * share * 10.0).round() / 10.0 })
        .filter(|s| s.fte > 0.0)
        .collect();
    let pssi = if support {
        proto::PssiStatus::Adopted
    } else {
        *[proto::PssiStatus::Adopted, proto::PssiStatus::InProgress, proto::PssiStatus::None]
            .choose(rng)
            .unwrap_or(&proto::PssiStatus::InProgress)
    };
    let town = e.name.rsplit(' ').next().unwrap_or("site").to_string();
    let mut data_centres = vec![proto::DataCentre {
        id: "salle-1".into(),
        name: format!("Salle serveurs {town}"),
        kind: if e.beds > 1000 { proto::DataCentreKind::OwnDataCentre } else { proto::DataCentreKind::ServerRoom }
            as i32,
        site: town.clone(),
        hosts_production: true,
    }];
    if support {
        data_centres.push(proto::DataCentre {
            id: "dc-secours".into(),
            name: "Datacenter de secours".into(),
            kind: proto::DataCentreKind::HdsProvider as i32,
            site: "Strasbourg".into(),
            hosts_production: false,
        });
    } else {
        data_centres.push(proto::DataCentre {
            id: "dc-ght".into(),
            name: "Datacenter du GHT".into(),
            kind: proto::DataCentreKind::SharedGht as i32,
            site: "Nancy".into(),
            hosts_production: true,
        });
    }
    let infrastructure = proto::Infrastructure {
        data_centres,
        physical_servers: (scaled(rng, beds / 25.0).max(2.0)) as u32,
        virtual_machines: (scaled(rng, beds / 3.0).max(8.0)) as u32,
        virtualisation_platform: "VMware vSphere 8".into(),
        storage_tb: (scaled(rng, beds * 0.2)).round().max(2.0),
        network_links: vec![proto::NetworkLink {
            id: "lien-ght".into(),
            from_site: town,
            to_site: if support { "Strasbourg".into() } else { "Nancy".into() },
            kind: if support {
                proto::NetworkLinkKind::DedicatedFibre
            } else {
                proto::NetworkLinkKind::RegionalHealthNetwork
            } as i32,
            bandwidth_mbps: if support { 10_000 } else { 1_000 },
            redundant: support || rng.gen_bool(0.5),
        }],
        backup: Some(proto::BackupPolicy {
            frequency: proto::BackupFrequency::Daily as i32,
            offsite_copy: true,
            immutable_copy: support || rng.gen_bool(0.6),
            last_restore_test: format!("2025-{:02}-{:02}", rng.gen_range(1..=5), rng.gen_range(1..=28)),
        }),
        continuity: Some(proto::ContinuityPlans {
            pra: if support { proto::ContinuityPlanStatus::Tested } else { proto::ContinuityPlanStatus::Documented }
                as i32,
            pca: proto::ContinuityPlanStatus::InProgress as i32,
            last_exercise: String::new(),
            rto_hours: if support { 4 } else { 12 },
            rpo_hours: if support { 1 } else { 24 },
        }),
    };
    let security = proto::SecurityPosture {
        pssi_status: pssi as i32,
        pssi_adopted_on: if pssi == proto::PssiStatus::Adopted { "2024-10-15".into() } else { String::new() },
        rssi_named: true,
        rssi_shared_with_ght: !support,
        last_audit: format!("2024-{:02}-{:02}", rng.gen_range(1..=12), rng.gen_range(1..=28)),
        incidents_last_12_months: rng.gen_range(0..6),
        hds_status: if support { proto::HdsStatus::CertifiedHost } else { proto::HdsStatus::CertifiedHostsOnly } as i32,
    };
    let doc = |as_of: &str, applications: Vec<proto::Application>, year: u32, factor: f64, pssi: proto::PssiStatus| {
        proto::InventoryDocument {
            as_of: as_of.into(),
            source: proto::InventorySource::Osis as i32,
            applications,
            infrastructure: Some(infrastructure.clone()),
            security: Some(proto::SecurityPosture { pssi_status: pssi as i32, ..security.clone() }),
            resources: Some(proto::IsResources {
                year,
                budget_operating_eur: Some((op * factor).round()),
                budget_investment_eur: Some((inv * factor).round()),
                staff: staff.clone(),
            }),
        }
    };
    let mut documents = Vec::new();
    if history {
        let was = if pssi == proto::PssiStatus::Adopted { proto::PssiStatus::InProgress } else { pssi };
        let mut previous_doc = doc("2024-06-30", previous, 2024, 0.96, was);
        if let Some(s) = previous_doc.security.as_mut() {
            s.pssi_adopted_on.clear();
        }
        documents.push(previous_doc);
    }
    documents.push(doc("2025-06-30", current, 2025, 1.0, pssi));
    Plan { establishment: e.clone(), documents }
}

/// Seeds this domain's part of the demo territory through the hub's gRPC services.
pub async fn seed(territory: &DemoTerritory) -> anyhow::Result<()> {
    let mut rng = territory.rng("inventory");
    let support_id =
        territory.establishments.iter().find(|e| e.role == proto::EstablishmentRole::Support).map(|e| e.id.clone());
    // Everything is generated before anything is pushed, so the data do not depend
    // on what a previous run already stored.
    let plans: Vec<Plan> = territory
        .establishments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let support = Some(&e.id) == support_id.as_ref();
            plan(&mut rng, e, support, support || (e.is_party() && i % 3 != 0))
        })
        .collect();
    let (mut applications, mut created, mut kept) = (0usize, 0usize, 0usize);
    for plan in plans {
        let e = &plan.establishment;
        let dsi = territory.client(Role::EstablishmentDsi, &format!("dsi@{}", e.id), Some(&e.id))?;
        let mut client = dsi.inventory();
        let stored: Vec<String> = client
            .list_versions(proto::ListInventoryVersionsRequest { establishment_id: e.id.clone() })
            .await?
            .into_inner()
            .versions
            .into_iter()
            .map(|v| v.content_hash)
            .collect();
        let last = plan.documents.len() - 1;
        for (i, document) in plan.documents.into_iter().enumerate() {
            let canonical = canonical::canonicalize(document).with_context(|| format!("demo inventory of {}", e.id))?;
            // An earlier version already stored is not pushed again (it would become
            // a new latest version); the last one is, and comes back unchanged.
            if i < last && stored.contains(&canonical.hash) {
                continue;
            }
            let r = client
                .push_inventory(proto::PushInventoryRequest {
                    establishment_id: e.id.clone(),
                    document: Some(canonical.document),
                    request_id: String::new(),
                })
                .await
                .with_context(|| format!("pushing the inventory of {}", e.id))?
                .into_inner();
            if r.created {
                created += 1;
            } else {
                kept += 1;
            }
            if i == last {
                applications += r.version.map(|v| v.application_count as usize).unwrap_or_default();
            }
        }
    }
    println!(
        "inventory: {applications} applications in {} establishments ({created} versions stored, {kept} already there)",
        territory.establishments.len()
    );
    Ok(())
}
