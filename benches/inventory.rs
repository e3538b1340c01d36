//! Inventory benchmark (issue 3), over real TLS gRPC against a hub started in-process
//! on a fresh database (a temporary SQLite file; and a fresh PostgreSQL database too
//! when DATABASE_URL points at one).
//!
//! 1. `Inventory.PushInventory` of a 2,000-application inventory (functional domains,
//!    vendors, interfaces, infrastructure, security and resources sections) as the
//!    establishment's DSI: the first push, then p50/p99 of pushes of a changed
//!    document (each one stores a new version), then of identical re-pushes (answered
//!    with the same version, nothing stored).
//! 2. A 15-establishment GHT (support CHU of 2,000 applications, parties and associés
//!    of 100 to 1,400), each with two versions (2024 and 2025): p50/p99 of
//!    `Territory.ConsolidatedInventory` and `Territory.ConvergenceMap` as the GHT's DSI.
//!
//! Latencies are measured by the client: they include encoding, TLS, the hub's
//! authentication, access decision, audit record and database work, and decoding.
//!
//! Run: `cargo bench --bench inventory` (release profile).

use std::time::{Duration, Instant};

use anyhow::Context;
use ghthub::{
    access::{Principal, Role},
    auth::TokenIssuer,
    cli::client::{connect_channel, HubClient},
    config::ServeArgs,
    proto::{
        self, application_interface::Peer, EstablishmentCategory as Cat, EstablishmentRole as R, FunctionalDomain as D,
        HostingMode as H, InterfaceStandard as I,
    },
};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use sqlx::Connection;

/// Applications of the pushed inventory.
const PUSH_APPS: usize = 2_000;
/// Timed pushes of a changed document.
const PUSHES: usize = 40;
/// Timed identical re-pushes.
const REPUSHES: usize = 20;
/// Timed calls of each territorial view.
const CALLS: usize = 60;
const PUSH_TARGET: Duration = Duration::from_millis(50);
const CONSOLIDATION_TARGET: Duration = Duration::from_millis(20);

const REGION: &str = "44";
const PUSH_GHT: &str = "540100006";
const PUSH_EST: &str = "540100014";
const GHT: &str = "540200004";

// ------------------------------------------------------------------ documents

/// Core domains: the main application of each, from the products common in French
/// hospitals (the first one is the GHT's convergence target).
const CORE: &[(D, &str, &[(&str, &str)])] = &[
    (
        D::PatientAdministration,
        "gam",
        &[
            ("Maincare", "Pastel"),
            ("InterSystems", "Clinicom"),
            ("SIB", "Sillage GAM"),
            ("Softway Medical", "Hopital Manager GAM"),
        ],
    ),
    (
        D::Dpi,
        "dpi",
        &[
            ("Dedalus", "DxCare"),
            ("Maincare", "M-Crossway"),
            ("SIB", "Sillage DPI"),
            ("Softway Medical", "Hopital Manager"),
        ],
    ),
    (D::Prescription, "prescription", &[("Computer Engineering", "Pharma"), ("Dedalus", "DxCare Prescription")]),
    (D::Lab, "sil", &[("CliniSys", "Glims"), ("CGM", "Molis"), ("Technidata", "TDNexLabs"), ("Dedalus", "Hexalis")]),
    (
        D::Imaging,
        "pacs",
        &[
            ("Fujifilm", "Synapse PACS"),
            ("Agfa HealthCare", "Enterprise Imaging"),
            ("GE HealthCare", "Centricity PACS"),
        ],
    ),
    (D::Pathology, "anapath", &[("Infologic Santé", "Diamic"), ("Dedalus", "Hexalis ACP")]),
    (D::Pharmacy, "pharmacie", &[("Computer Engineering", "Pharma"), ("Maincare", "Copilote")]),
    (D::Pmsi, "pmsi", &[("Maincare", "Cora PMSI"), ("Dedalus", "Web100T"), ("SIB", "Sillage PMSI")]),
    (D::Scheduling, "rdv", &[("Doctolib", "Doctolib Hôpital"), ("Keldoc", "Keldoc"), ("Maincare", "M-Agenda")]),
    (D::Emergency, "urgences", &[("Berger-Levrault", "ResUrgences"), ("Maincare", "Urqual")]),
    (
        D::Finance,
        "gef",
        &[("Maincare", "Magh2"), ("Cpage", "Cpage"), ("Berger-Levrault", "e.Magnus Gestion Financière")],
    ),
    (D::Hr, "paie", &[("Inetum", "Agirh"), ("Berger-Levrault", "e.Magnus GRH"), ("Cpage", "Cpage RH")]),
    (D::Procurement, "achats", &[("Maincare", "Magh2 Achats"), ("Berger-Levrault", "e.Magnus Achats")]),
    (D::Bi, "pilotage", &[("Qlik", "Qlik Sense"), ("Microsoft", "Power BI"), ("SAP", "BusinessObjects")]),
    (D::Messaging, "messagerie", &[("Microsoft", "Exchange"), ("Synacor", "Zimbra Collaboration")]),
];

/// Peripheral software families (domain, vendor, family): an establishment runs
/// modules of them per service or site ("Philips IntelliSpace Réanimation", ...).
const FAMILIES: &[(D, &str, &str)] = &[
    (D::Other, "Philips", "IntelliSpace"),
    (D::Other, "iMDsoft", "MetaVision"),
    (D::Other, "GE HealthCare", "Centricity"),
    (D::Other, "Bow Medical", "Diane"),
    (D::Other, "Beckman Coulter", "REMISOL"),
    (D::Other, "Siemens Healthineers", "syngo"),
    (D::Other, "Omnicell", "Omnicell"),
    (D::Other, "Varian", "ARIA"),
    (D::Other, "Nuance", "Dragon Medical"),
    (D::Other, "OpenXtrem", "Mediboard"),
    (D::Other, "Evolucare", "Evolucare"),
    (D::Other, "Getinge", "T-DOC"),
    (D::Lab, "Sysmex", "WAM"),
    (D::Lab, "bioMérieux", "MYLA"),
    (D::Imaging, "Intrasense", "Myrian"),
    (D::Imaging, "Olea Medical", "Olea Sphere"),
    (D::Pharmacy, "Swisslog", "PillPick"),
    (D::Scheduling, "Octime", "Octime"),
    (D::Hr, "Bodet Software", "Kelio"),
    (D::Bi, "Microsoft", "SQL Server Reporting Services"),
    (D::Bi, "Salesforce", "Tableau"),
    (D::Messaging, "Ascom", "Unite"),
    (D::Messaging, "Lifen", "Lifen"),
    (D::Infrastructure, "Microsoft", "Windows Server"),
    (D::Infrastructure, "VMware", "vSphere"),
    (D::Infrastructure, "Veeam", "Veeam Backup"),
    (D::Infrastructure, "Centreon", "Centreon"),
    (D::Infrastructure, "Fortinet", "FortiGate"),
    (D::Infrastructure, "Enovacom", "Enovacom"),
    (D::Infrastructure, "Citrix", "Virtual Apps"),
];

const MODULES: &[&str] = &[
    "Réanimation",
    "Bloc",
    "Cardiologie",
    "Néonatologie",
    "Oncologie",
    "Urgences",
    "Pédiatrie",
    "Maternité",
    "Gériatrie",
    "Psychiatrie",
    "Dialyse",
    "Consultations",
    "Radiologie",
    "Biologie",
    "Stérilisation",
    "Pharmacie",
    "Cuisine",
    "Logistique",
    "Qualité",
    "Direction",
    "Site Nord",
    "Site Sud",
    "EHPAD",
    "SSR",
    "USLD",
    "Formation",
    "Recherche",
    "Archives",
    "Accueil",
    "Sécurité",
    "Transport",
    "Brancardage",
    "Hygiène",
    "Diététique",
    "Kiné",
    "Odontologie",
    "Ophtalmologie",
    "ORL",
    "Dermatologie",
    "Neurologie",
];

const VERSIONS: &[&str] = &["2.1", "3.0", "3.4", "4.2", "5.0", "6.1", "2023.2", "2024.1", "8.3", "10.2"];

/// A plausible inventory of `apps` applications. `revision` changes a few items
/// (versions, users, budget) so each revision is a new version of the document.
fn document(seed: u64, apps: usize, revision: u32, as_of: &str) -> proto::InventoryDocument {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut applications = Vec::with_capacity(apps);
    let beds = (apps as f64 * 0.8).max(40.0);
    for (domain, id, products) in CORE {
        // The support and half the others run the target.
        let k = if rng.gen_bool(0.5) { 0 } else { rng.gen_range(0..products.len()) };
        let (vendor, name) = products[k];
        applications.push(proto::Application {
            id: id.to_string(),
            name: name.into(),
            vendor: vendor.into(),
            version: VERSIONS.choose(&mut rng).copied().unwrap_or("1.0").into(),
            domain: *domain as i32,
            hosting: if k == 0 { H::SharedGht } else { H::OnPremise } as i32,
            users_count: (beds * rng.gen_range(0.05..2.5)) as u32 + 3,
            interfaces: vec![],
            end_of_support: if rng.gen_bool(0.3) {
                format!("{}-12-31", rng.gen_range(2026..=2030))
            } else {
                String::new()
            },
            convergence_target: k == 0,
        });
    }
    let core = applications.len();
    while applications.len() < apps {
        let i = applications.len();
        let (domain, vendor, family) = *FAMILIES.choose(&mut rng).unwrap_or(&FAMILIES[0]);
        let module = MODULES.choose(&mut rng).copied().unwrap_or("Site");
        let hosting = match rng.gen_range(0..100) {
            0..=69 => H::OnPremise,
            70..=84 => H::SharedGht,
            85..=94 => H::HdsHost,
            _ => H::Saas,
        };
        applications.push(proto::Application {
            id: format!("app-{i:05}"),
            name: format!("{family} {module}"),
            vendor: vendor.into(),
            version: VERSIONS.choose(&mut rng).copied().unwrap_or("1.0").into(),
            domain: domain as i32,
            hosting: hosting as i32,
            users_count: rng.gen_range(2..400),
            interfaces: vec![],
            end_of_support: if rng.gen_bool(0.2) {
                format!("{}-06-30", rng.gen_range(2025..=2032))
            } else {
                String::new()
            },
            convergence_target: false,
        });
    }
    // Interfaces: HL7 v2 from the GAM to the clinical applications, a few to the DPI,
    // and between peripheral applications; some to external systems.
    let ids: Vec<String> = applications.iter().map(|a| a.id.clone()).collect();
    for (i, a) in applications.iter_mut().enumerate() {
        let n = if i < core { rng.gen_range(2..6) } else { rng.gen_range(0..4) };
        let mut peers: Vec<usize> = (0..n).map(|_| rng.gen_range(0..ids.len())).filter(|&j| j != i).collect();
        peers.sort_unstable();
        peers.dedup();
        for j in peers {
            let standard =
                *[I::Hl7V2, I::Hl7V2, I::Fhir, I::Hprim, I::Dicom, I::Other].choose(&mut rng).unwrap_or(&I::Other);
            a.interfaces.push(proto::ApplicationInterface {
                standard: standard as i32,
                peer: Some(Peer::ApplicationId(ids[j].clone())),
            });
        }
        if rng.gen_bool(0.05) {
            a.interfaces.push(proto::ApplicationInterface {
                standard: I::Other as i32,
                peer: Some(Peer::ExternalSystem(
                    ["DMP", "MSSanté", "plateforme régionale d'imagerie", "ROR"]
                        .choose(&mut rng)
                        .unwrap_or(&"DMP")
                        .to_string(),
                )),
            });
        }
    }
    // The revision: a few applications upgraded, user counts updated, a new budget.
    for k in 0..revision as usize % 7 + 1 {
        let idx = (revision as usize * 37 + k * 101) % applications.len();
        applications[idx].version = format!("{}.{}", 11 + revision, k);
        applications[idx].users_count += revision;
    }
    let op = (beds * 5_200.0 * rng.gen_range(0.85..1.15)).round() + f64::from(revision) * 1_000.0;
    let fte = (beds / 14.0).max(1.0);
    let staff = [
        (proto::StaffCategory::Management, 0.06),
        (proto::StaffCategory::Project, 0.30),
        (proto::StaffCategory::Development, 0.05),
        (proto::StaffCategory::Infrastructure, 0.24),
        (proto::StaffCategory::UserSupport, 0.28),
        (proto::StaffCategory::Security, 0.03),
        (proto::StaffCategory::Other, 0.04),
    ]
    .iter()
    .map(|(c, share)| proto::StaffLine { category: *c as i32, fte: ((fte * share * 10.0).round() / 10.0).max(0.1) })
    .collect();
    let sites = (apps / 200).max(1);
    proto::InventoryDocument {
        as_of: as_of.into(),
        source: proto::InventorySource::Osis as i32,
        applications,
        infrastructure: Some(proto::Infrastructure {
            data_centres: (0..sites.min(4))
                .map(|s| proto::DataCentre {
                    id: format!("salle-{s}"),
                    name: format!("Salle serveurs {s}"),
                    kind: if s == 0 { proto::DataCentreKind::OwnDataCentre } else { proto::DataCentreKind::ServerRoom }
                        as i32,
                    site: format!("site-{s}"),
                    hosts_production: true,
                })
                .chain(std::iter::once(proto::DataCentre {
                    id: "dc-ght".into(),
                    name: "Datacenter du GHT".into(),
                    kind: proto::DataCentreKind::SharedGht as i32,
                    site: "Nancy".into(),
                    hosts_production: true,
                }))
                .collect(),
            physical_servers: (beds / 25.0).max(2.0) as u32,
            virtual_machines: (beds / 3.0).max(8.0) as u32,
            virtualisation_platform: "VMware vSphere 8".into(),
            storage_tb: (beds * 0.2).round().max(2.0),
            network_links: (0..sites)
                .map(|s| proto::NetworkLink {
                    id: format!("lien-{s}"),
                    from_site: format!("site-{s}"),
                    to_site: "Nancy".into(),
                    kind: proto::NetworkLinkKind::RegionalHealthNetwork as i32,
                    bandwidth_mbps: 1_000,
                    redundant: s % 2 == 0,
                })
                .collect(),
            backup: Some(proto::BackupPolicy {
                frequency: proto::BackupFrequency::Daily as i32,
                offsite_copy: true,
                immutable_copy: rng.gen_bool(0.6),
                last_restore_test: "2025-03-14".into(),
            }),
            continuity: Some(proto::ContinuityPlans {
                pra: proto::ContinuityPlanStatus::Documented as i32,
                pca: proto::ContinuityPlanStatus::InProgress as i32,
                last_exercise: String::new(),
                rto_hours: 12,
                rpo_hours: 24,
            }),
        }),
        security: Some(proto::SecurityPosture {
            pssi_status: proto::PssiStatus::Adopted as i32,
            pssi_adopted_on: "2024-10-15".into(),
            rssi_named: true,
            rssi_shared_with_ght: true,
            last_audit: "2024-11-05".into(),
            incidents_last_12_months: rng.gen_range(0..6),
            hds_status: proto::HdsStatus::CertifiedHostsOnly as i32,
        }),
        resources: Some(proto::IsResources {
            year: 2025,
            budget_operating_eur: Some(op),
            budget_investment_eur: Some((op * 0.4).round()),
            staff,
        }),
    }
}

// ------------------------------------------------------------------ harness

struct Bench {
    hub: ghthub::server::Running,
    issuer: TokenIssuer,
    ca: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(database_url: Option<String>) -> anyhow::Result<Bench> {
        let dir = tempfile::tempdir()?;
        let url = database_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
        let args = ServeArgs::for_data_dir(dir.path().join("data"), url);
        let hub = ghthub::server::start(args.clone()).await?;
        let pem = std::fs::read(args.dev_paths().token_signing_key())?;
        let issuer = TokenIssuer::new(&pem, "dev", &args.token_issuer, &args.token_audience)?;
        let ca = std::fs::read(args.dev_paths().ca_cert())?;
        Ok(Bench { hub, issuer, ca, _dir: dir })
    }

    async fn client(
        &self,
        role: Role,
        subject: &str,
        ght: Option<&str>,
        est: Option<&str>,
    ) -> anyhow::Result<HubClient> {
        let token = self.issuer.issue(
            &Principal {
                subject: subject.into(),
                role,
                ght_id: ght.map(String::from),
                establishment_id: est.map(String::from),
                region: None,
                expires_at: 0,
            },
            3600,
        )?;
        let channel = connect_channel(&format!("https://localhost:{}", self.hub.addr.port()), &self.ca, None).await?;
        HubClient::from_channel(channel, Some(&token))
    }
}

/// A fresh, empty PostgreSQL database next to the one DATABASE_URL names.
async fn fresh_pg_database(base: &str) -> anyhow::Result<String> {
    let name = format!("ghthub_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(base).await.context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    let _ = conn.close().await;
    let (prefix, rest) = base.rsplit_once('/').context("DATABASE_URL names no database")?;
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    Ok(format!("{prefix}/{name}{query}"))
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// "p50 x, p99 y, max z (n calls)" and whether p99 meets `target`.
fn summary(mut v: Vec<Duration>, target: Option<Duration>) -> String {
    v.sort();
    let (p50, p99) = (pct(&v, 0.50), pct(&v, 0.99));
    let verdict = match target {
        Some(t) => format!("; target p99 <= {}: {}", ms(t), if p99 <= t { "met" } else { "NOT met" }),
        None => String::new(),
    };
    format!("p50 {}, p99 {}, max {} ({} calls){verdict}", ms(p50), ms(p99), ms(v[v.len() - 1]), v.len())
}

async fn create_ght(admin: &HubClient, id: &str, name: &str) -> anyhow::Result<()> {
    admin
        .registry()
        .create_ght(proto::CreateGhtRequest {
            id: id.into(),
            name: name.into(),
            ars_region: REGION.into(),
            request_id: String::new(),
        })
        .await?;
    Ok(())
}

async fn create_establishment(
    admin: &HubClient,
    id: &str,
    ght: &str,
    name: &str,
    role: R,
    cat: Cat,
) -> anyhow::Result<()> {
    admin
        .registry()
        .create_establishment(proto::CreateEstablishmentRequest {
            id: id.into(),
            ght_id: ght.into(),
            name: name.into(),
            role: role as i32,
            category: cat as i32,
            request_id: String::new(),
        })
        .await?;
    Ok(())
}

async fn push(
    c: &HubClient,
    est: &str,
    document: proto::InventoryDocument,
) -> anyhow::Result<(Duration, proto::PushInventoryResponse)> {
    let mut inv = c.inventory();
    let start = Instant::now();
    let r = inv
        .push_inventory(proto::PushInventoryRequest {
            establishment_id: est.into(),
            document: Some(document),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    Ok((start.elapsed(), r))
}

async fn run(backend: &str, database_url: Option<String>) -> anyhow::Result<()> {
    println!("== {backend}");
    let bench = Bench::start(database_url).await?;
    let admin = bench.client(Role::Admin, "admin", None, None).await?;

    // 1. Pushes of a 2,000-application inventory.
    create_ght(&admin, PUSH_GHT, "GHT bench push").await?;
    create_establishment(&admin, PUSH_EST, PUSH_GHT, "CHU bench", R::Support, Cat::Chu).await?;
    let dsi = bench.client(Role::EstablishmentDsi, "dsi@chu-bench", Some(PUSH_GHT), Some(PUSH_EST)).await?;
    let docs: Vec<proto::InventoryDocument> =
        (0..=PUSHES as u32).map(|r| document(7, PUSH_APPS, r, "2025-06-30")).collect();
    let interfaces: usize = docs[0].applications.iter().map(|a| a.interfaces.len()).sum();
    let bytes = prost::Message::encoded_len(&docs[0]);
    let (first, r) = push(&dsi, PUSH_EST, docs[0].clone()).await?;
    anyhow::ensure!(r.created, "the first push did not create a version");
    println!(
        "inventory of {PUSH_APPS} applications ({interfaces} interfaces, {:.0} KiB encoded): first push {}",
        bytes as f64 / 1024.0,
        ms(first)
    );
    let mut times = Vec::new();
    let mut last = None;
    for d in docs.iter().skip(1) {
        let (t, r) = push(&dsi, PUSH_EST, d.clone()).await?;
        anyhow::ensure!(r.created, "a changed document did not create a version");
        times.push(t);
        last = r.version;
    }
    let last = last.context("no version")?;
    println!(
        "push of a changed document (new version each, up to v{}): {}",
        last.version,
        summary(times, Some(PUSH_TARGET))
    );
    let mut times = Vec::new();
    for _ in 0..REPUSHES {
        let (t, r) = push(&dsi, PUSH_EST, docs[PUSHES].clone()).await?;
        anyhow::ensure!(!r.created && r.version.as_ref().map(|v| v.version) == Some(last.version), "re-push stored");
        times.push(t);
    }
    println!("idempotent re-push of the same document (same version back): {}", summary(times, Some(PUSH_TARGET)));

    // 2. A 15-establishment GHT.
    create_ght(&admin, GHT, "GHT bench territoire").await?;
    let sizes: [(usize, R, Cat); 15] = [
        (2_000, R::Support, Cat::Chu),
        (1_400, R::Partie, Cat::Ch),
        (900, R::Partie, Cat::Ch),
        (700, R::Partie, Cat::Ch),
        (600, R::Partie, Cat::Ch),
        (450, R::Partie, Cat::Ch),
        (400, R::Partie, Cat::ChPsy),
        (300, R::Partie, Cat::Ch),
        (250, R::Partie, Cat::Ch),
        (200, R::Partie, Cat::EpMedicoSocial),
        (150, R::Partie, Cat::Had),
        (120, R::Partie, Cat::EpMedicoSocial),
        (500, R::Associe, Cat::EsPrive),
        (300, R::Associe, Cat::EsPrive),
        (100, R::Associe, Cat::HopitalArmees),
    ];
    let t = Instant::now();
    let mut total = 0;
    for (i, (apps, role, cat)) in sizes.iter().enumerate() {
        let id = format!("5402{:05}", 100 + i * 10);
        create_establishment(&admin, &id, GHT, &format!("Établissement {i}"), *role, *cat).await?;
        let c = bench.client(Role::EstablishmentDsi, &format!("dsi@{id}"), Some(GHT), Some(&id)).await?;
        let seed = 1_000 + i as u64;
        push(&c, &id, document(seed, apps * 9 / 10, 0, "2024-06-30")).await?;
        push(&c, &id, document(seed, *apps, 1, "2025-06-30")).await?;
        total += apps;
    }
    println!(
        "GHT of {} establishments, {total} applications in their latest versions (2 versions each), seeded in {}",
        sizes.len(),
        ms(t.elapsed())
    );

    let ght_dsi = bench.client(Role::GhtDsi, "dsi@ght-bench", Some(GHT), None).await?;
    let mut territory = ght_dsi.territory();
    let mut times = Vec::new();
    let mut shape = (0, 0, 0);
    for _ in 0..CALLS + 3 {
        let start = Instant::now();
        let r = territory
            .consolidated_inventory(proto::ConsolidatedInventoryRequest { ght_id: GHT.into() })
            .await?
            .into_inner();
        times.push(start.elapsed());
        let deployments: usize = r.domains.iter().flat_map(|d| d.products.iter()).map(|p| p.deployments.len()).sum();
        let products: usize = r.domains.iter().map(|d| d.products.len()).sum();
        shape = (r.domains.len(), products, deployments);
    }
    times.drain(..3); // warm-up
    println!(
        "Territory.ConsolidatedInventory ({} domains, {} products, {} deployments): {}",
        shape.0,
        shape.1,
        shape.2,
        summary(times, Some(CONSOLIDATION_TARGET))
    );
    // Where a consolidation's time goes, on the hub's side (same calls as the service).
    {
        use ghthub::inventory::{consolidate, store};
        let db = &bench.hub.db;
        let (mut t_heads, mut t_apps, mut t_cons, mut t_enc) = (vec![], vec![], vec![], vec![]);
        for _ in 0..20 {
            let t = Instant::now();
            let heads = store::heads(db, GHT).await?;
            t_heads.push(t.elapsed());
            let t = Instant::now();
            let apps = store::head_applications(db, GHT).await?;
            t_apps.push(t.elapsed());
            let ests = ghthub::registry::store::list_establishments(db, GHT).await?;
            let mut heads: std::collections::HashMap<_, _> = heads.into_iter().collect();
            let parties: Vec<consolidate::Party> = ests
                .into_iter()
                .map(|e| consolidate::Party { role: e.role(), head: heads.remove(&e.id), id: e.id, name: e.name })
                .collect();
            let t = Instant::now();
            let r = consolidate::consolidated(GHT, &parties, &apps, 0);
            t_cons.push(t.elapsed());
            let t = Instant::now();
            let n = prost::Message::encode_to_vec(&r).len();
            t_enc.push(t.elapsed());
            shape.0 = n;
        }
        let p50 = |mut v: Vec<Duration>| {
            v.sort();
            ms(pct(&v, 0.5))
        };
        println!(
            "  breakdown (p50 of 20, in-process): heads {}, head_applications {}, consolidate {}, encode {} ({} KiB)",
            p50(t_heads),
            p50(t_apps),
            p50(t_cons),
            p50(t_enc),
            shape.0 / 1024
        );
    }
    let mut times = Vec::new();
    let mut shape = 0;
    for _ in 0..CALLS + 3 {
        let start = Instant::now();
        let r = territory.convergence_map(proto::ConvergenceMapRequest { ght_id: GHT.into() }).await?.into_inner();
        times.push(start.elapsed());
        shape = r.domains.len();
    }
    times.drain(..3);
    println!("Territory.ConvergenceMap ({shape} domains): {}", summary(times, Some(CONSOLIDATION_TARGET)));
    bench.hub.stop().await?;
    Ok(())
}

async fn main_async() -> anyhow::Result<()> {
    run("SQLite", None).await?;
    match std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
        Some(base) => run("PostgreSQL", Some(fresh_pg_database(&base).await?)).await?,
        None => println!("(PostgreSQL skipped: set DATABASE_URL=postgres://… to measure it too)"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(main_async())
}
