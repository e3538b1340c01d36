//! `ghthub inventory …` (an establishment's versioned IS inventory) and
//! `ghthub territory …` (the GHT's consolidated SDSI-T view).

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Context;
use serde_json::{json, Value};

use super::{
    client::{Authed, ConnectArgs, HubClient},
    table,
};
use crate::{
    inventory::{
        canonical,
        document::{self, Format},
        types::EnumCode,
    },
    proto::{self, inventory_client::InventoryClient, territory_client::TerritoryClient},
};

/// Replies of the inventory services can be large (a whole document, a GHT's
/// consolidation); the hub's own limit (`--max-message-bytes`) is what binds.
const CLIENT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// From this many applications a push shows a progress bar.
const LARGE_PUSH: usize = 200;

impl HubClient {
    pub fn inventory(&self) -> InventoryClient<Authed> {
        InventoryClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
    }
    pub fn territory(&self) -> TerritoryClient<Authed> {
        TerritoryClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum InventoryCommand {
    /// Push an inventory file (JSON or YAML by extension; format: examples/inventory-ch-luneville.yaml).
    /// An identical re-push returns the same version.
    Push {
        /// The inventory file (.json, .yaml or .yml).
        file: PathBuf,
        /// Establishment (FINESS); default: the one in your token.
        #[arg(long)]
        establishment: Option<String>,
        /// Idempotency key (a retry with the same key gets the first answer); default: a new one.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Show the latest inventory (or version N); --out writes it as a JSON/YAML file you can edit and push.
    Show {
        #[arg(long)]
        establishment: Option<String>,
        /// Version number (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// Write the document to this file (.json, .yaml or .yml) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the versions of an establishment's inventory.
    Versions {
        #[arg(long)]
        establishment: Option<String>,
    },
    /// Items added, removed and changed between two versions.
    Diff {
        #[arg(long)]
        establishment: Option<String>,
        /// The older version.
        #[arg(long)]
        from: u32,
        /// The newer version.
        #[arg(long)]
        to: u32,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum TerritoryCommand {
    /// The consolidated view (GHT DSI): per functional domain, who runs what, overlaps,
    /// convergence target and who is not on it, totals.
    Show {
        /// GHT (FINESS); default: the one in your token.
        #[arg(long)]
        ght: Option<String>,
        /// Only this functional domain (e.g. DPI, LAB).
        #[arg(long)]
        domain: Option<String>,
    },
    /// The convergence map (aggregates; GHT DSI, establishment DSIs, DIM physician, ARS):
    /// distinct products, share of parties on the target and its trend, per domain.
    Convergence {
        #[arg(long)]
        ght: Option<String>,
    },
    /// Export the consolidated view (or the convergence map) as CSV or JSON.
    Export {
        #[arg(long)]
        ght: Option<String>,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Which view: the item-level consolidation (GHT DSI) or the aggregate convergence map.
        #[arg(long, value_enum, default_value_t = ExportView::Consolidated)]
        view: ExportView,
        /// Output file; default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One row per deployment (consolidated) or per domain (convergence).
    Csv,
    /// The whole view.
    Json,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportView {
    Consolidated,
    Convergence,
}

/// A readable error for a refused call (and a hint for a push above the hub's limit).
fn rpc(s: tonic::Status) -> anyhow::Error {
    let hint = if s.code() == tonic::Code::OutOfRange {
        "\n(the inventory is larger than the hub accepts in one message: its --max-message-bytes)"
    } else {
        ""
    };
    anyhow::anyhow!("{:?}: {}{hint}", s.code(), s.message())
}

fn opt(s: Option<String>) -> String {
    s.unwrap_or_default()
}

fn share(v: f64) -> String {
    format!("{:.0} %", v * 100.0)
}

fn euros(v: Option<f64>) -> String {
    v.map(|e| format!("{:.0} k€", e / 1000.0)).unwrap_or_else(|| "—".into())
}

pub async fn run_inventory(cmd: InventoryCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let hub = HubClient::connect(connect).await?;
    let mut client = hub.inventory();
    match cmd {
        InventoryCommand::Push { file, establishment, request_id } => {
            push(&mut client, &file, opt(establishment), request_id).await
        }
        InventoryCommand::Show { establishment, version, out } => {
            let v = client
                .get_inventory(proto::GetInventoryRequest {
                    establishment_id: opt(establishment),
                    version: version.unwrap_or(0),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let info = v.info.unwrap_or_default();
            let doc = v.document.unwrap_or_default();
            match out {
                Some(path) => {
                    let text = document::render(&document::from_document(&doc), Format::from_path(&path)?)?;
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote version {} of {} to {}", info.version, info.establishment_id, path.display());
                }
                None => print_document(&info, &doc),
            }
            Ok(())
        }
        InventoryCommand::Versions { establishment } => {
            let r = client
                .list_versions(proto::ListInventoryVersionsRequest { establishment_id: opt(establishment) })
                .await
                .map_err(rpc)?
                .into_inner();
            let mut t = table();
            t.set_header(["version", "pushed at", "author", "as of", "applications", "content hash"]);
            for v in &r.versions {
                t.add_row([
                    v.version.to_string(),
                    v.pushed_at.clone(),
                    v.author.clone(),
                    v.as_of.clone(),
                    v.application_count.to_string(),
                    v.content_hash.chars().take(16).collect(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        InventoryCommand::Diff { establishment, from, to } => {
            let d = client
                .diff_versions(proto::DiffInventoryVersionsRequest {
                    establishment_id: opt(establishment),
                    from_version: from,
                    to_version: to,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            println!(
                "{}: version {} → {}: {} added, {} removed, {} changed",
                d.establishment_id, d.from_version, d.to_version, d.added, d.removed, d.changed
            );
            if d.changes.is_empty() {
                return Ok(());
            }
            let mut t = table();
            t.set_header(["section", "item", "change", "label", "fields (before → after)"]);
            for c in &d.changes {
                let fields = c
                    .fields
                    .iter()
                    .map(|f| format!("{}: {} → {}", f.field, f.before, f.after))
                    .collect::<Vec<_>>()
                    .join("\n");
                t.add_row([
                    proto::InventorySection::code_of(c.section),
                    c.item_id.clone(),
                    proto::InventoryChangeKind::code_of(c.kind),
                    c.label.clone(),
                    fields,
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

async fn push(
    client: &mut InventoryClient<Authed>,
    file: &std::path::Path,
    establishment_id: String,
    request_id: Option<String>,
) -> anyhow::Result<()> {
    let format = Format::from_path(file)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = document::read(&bytes, format).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let n = parsed.applications.len();
    let bar = if n >= LARGE_PUSH { indicatif::ProgressBar::new(n as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} applications")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("checking");
    let doc = document::to_document(parsed, |i| bar.set_position(i as u64))
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // The hub's own validation, run here first: errors appear before any upload and
    // name the same fields.
    let canonical = canonical::canonicalize(doc).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("pushing {n} applications ({} KiB)", canonical.bytes.len() / 1024));
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = client
        .push_inventory(proto::PushInventoryRequest {
            establishment_id,
            document: Some(canonical.document),
            request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        })
        .await;
    bar.finish_and_clear();
    let r = result.map_err(rpc)?.into_inner();
    let v = r.version.unwrap_or_default();
    if r.created {
        println!(
            "stored version {} of {}'s inventory ({} applications)",
            v.version, v.establishment_id, v.application_count
        );
    } else {
        println!(
            "unchanged: identical to version {} of {}'s inventory (nothing stored)",
            v.version, v.establishment_id
        );
    }
    println!("content hash {}", v.content_hash);
    Ok(())
}

fn print_document(info: &proto::InventoryVersionInfo, doc: &proto::InventoryDocument) {
    println!(
        "{} — version {} (as of {}, source {}), pushed {} by {}\ncontent hash {}",
        info.establishment_id,
        info.version,
        doc.as_of,
        proto::InventorySource::code_of(doc.source),
        info.pushed_at,
        info.author,
        info.content_hash
    );
    let mut t = table();
    t.set_header([
        "id",
        "domain",
        "vendor",
        "name",
        "version",
        "hosting",
        "users",
        "target",
        "end of support",
        "interfaces",
    ]);
    for a in &doc.applications {
        t.add_row([
            a.id.clone(),
            proto::FunctionalDomain::code_of(a.domain),
            a.vendor.clone(),
            a.name.clone(),
            a.version.clone(),
            proto::HostingMode::code_of(a.hosting),
            a.users_count.to_string(),
            if a.convergence_target { "✓".into() } else { String::new() },
            a.end_of_support.clone(),
            a.interfaces.len().to_string(),
        ]);
    }
    println!("{t}");
    if let Some(i) = &doc.infrastructure {
        println!(
            "infrastructure: {} data centre(s), {} physical servers, {} VMs ({}), {} TB, {} network link(s); backup {}; PRA {}, PCA {}",
            i.data_centres.len(),
            i.physical_servers,
            i.virtual_machines,
            if i.virtualisation_platform.is_empty() { "no virtualisation" } else { &i.virtualisation_platform },
            i.storage_tb,
            i.network_links.len(),
            i.backup.as_ref().map(|b| proto::BackupFrequency::code_of(b.frequency)).unwrap_or_else(|| "—".into()),
            i.continuity.as_ref().map(|c| proto::ContinuityPlanStatus::code_of(c.pra)).unwrap_or_else(|| "—".into()),
            i.continuity.as_ref().map(|c| proto::ContinuityPlanStatus::code_of(c.pca)).unwrap_or_else(|| "—".into()),
        );
    }
    if let Some(s) = &doc.security {
        println!(
            "security: PSSI {}, RSSI {}{}, last audit {}, {} incident(s) in 12 months, HDS {}",
            proto::PssiStatus::code_of(s.pssi_status),
            if s.rssi_named { "named" } else { "not named" },
            if s.rssi_shared_with_ght { " (shared with the GHT)" } else { "" },
            if s.last_audit.is_empty() { "—" } else { &s.last_audit },
            s.incidents_last_12_months,
            proto::HdsStatus::code_of(s.hds_status),
        );
    }
    if let Some(r) = &doc.resources {
        let staff = r
            .staff
            .iter()
            .map(|s| format!("{} {}", proto::StaffCategory::code_of(s.category), s.fte))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "resources {}: operating {}, investment {}; staff (FTE) {}",
            r.year,
            euros(r.budget_operating_eur),
            euros(r.budget_investment_eur),
            if staff.is_empty() { "—".into() } else { staff }
        );
    }
}

pub async fn run_territory(cmd: TerritoryCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let hub = HubClient::connect(connect).await?;
    let mut client = hub.territory();
    match cmd {
        TerritoryCommand::Show { ght, domain } => {
            let only = match domain {
                Some(d) => Some(proto::FunctionalDomain::from_code(&d).with_context(|| {
                    format!("unknown domain {d} (one of {})", proto::FunctionalDomain::codes().join(", "))
                })? as i32),
                None => None,
            };
            let v = client
                .consolidated_inventory(proto::ConsolidatedInventoryRequest { ght_id: opt(ght) })
                .await
                .map_err(rpc)?
                .into_inner();
            print_consolidated(&v, only);
            Ok(())
        }
        TerritoryCommand::Convergence { ght } => {
            let m = client
                .convergence_map(proto::ConvergenceMapRequest { ght_id: opt(ght) })
                .await
                .map_err(rpc)?
                .into_inner();
            print_convergence(&m);
            Ok(())
        }
        TerritoryCommand::Export { ght, format, view, out } => {
            let text = match view {
                ExportView::Consolidated => {
                    let v = client
                        .consolidated_inventory(proto::ConsolidatedInventoryRequest { ght_id: opt(ght) })
                        .await
                        .map_err(rpc)?
                        .into_inner();
                    match format {
                        ExportFormat::Csv => consolidated_csv(&v)?,
                        ExportFormat::Json => serde_json::to_string_pretty(&consolidated_json(&v))? + "\n",
                    }
                }
                ExportView::Convergence => {
                    let m = client
                        .convergence_map(proto::ConvergenceMapRequest { ght_id: opt(ght) })
                        .await
                        .map_err(rpc)?
                        .into_inner();
                    match format {
                        ExportFormat::Csv => convergence_csv(&m)?,
                        ExportFormat::Json => serde_json::to_string_pretty(&convergence_json(&m))? + "\n",
                    }
                }
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => {
                    use std::io::Write;
                    match std::io::stdout().write_all(text.as_bytes()) {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                        other => other?,
                    }
                }
            }
            Ok(())
        }
    }
}

fn role(v: i32) -> &'static str {
    proto::EstablishmentRole::try_from(v).map(crate::registry::establishment_role_str).unwrap_or("?")
}

/// "Pastel (Maincare)"; "Octime Planif" when the name already says the vendor.
fn product_label(vendor: &str, name: &str) -> String {
    if name.to_lowercase().starts_with(&vendor.to_lowercase()) {
        name.to_string()
    } else {
        format!("{name} ({vendor})")
    }
}

fn print_consolidated(v: &proto::ConsolidatedInventoryResponse, only: Option<i32>) {
    let names: HashMap<&str, &str> =
        v.establishments.iter().map(|e| (e.establishment_id.as_str(), e.name.as_str())).collect();
    let name = |id: &str| names.get(id).copied().unwrap_or(id).to_string();
    println!("GHT {} — consolidated IS inventory (SDSI-T), {}", v.ght_id, v.generated_at);
    let mut t = table();
    t.set_header([
        "FINESS",
        "establishment",
        "role",
        "version",
        "as of",
        "apps",
        "IS operating",
        "IS investment",
        "IS FTE",
        "PSSI",
    ]);
    for e in &v.establishments {
        let scope = if e.in_scope { "" } else { " (not consolidated)" };
        t.add_row([
            e.establishment_id.clone(),
            e.name.clone(),
            format!("{}{scope}", role(e.role)),
            if e.has_inventory { e.version.to_string() } else { "no inventory".into() },
            e.as_of.clone(),
            e.application_count.to_string(),
            euros(e.budget_operating_eur),
            euros(e.budget_investment_eur),
            format!("{:.1}", e.staff_fte),
            if e.pssi_status == 0 { "—".into() } else { proto::PssiStatus::code_of(e.pssi_status) },
        ]);
    }
    println!("{t}");
    let mut t = table();
    t.set_header(["domain", "product", "run by (version)", "target"]);
    for d in v.domains.iter().filter(|d| only.is_none_or(|o| o == d.domain)) {
        let code = proto::FunctionalDomain::code_of(d.domain);
        let heading = if d.overlap { format!("{code}\n{} products", d.products.len()) } else { code };
        for (i, p) in d.products.iter().enumerate() {
            // One line per establishment: its versions, and how many instances it runs.
            let mut per_est: Vec<(&str, Vec<&str>)> = Vec::new();
            for x in &p.deployments {
                let version = x.version.as_str();
                match per_est.iter_mut().find(|(id, _)| *id == x.establishment_id) {
                    Some((_, versions)) => versions.push(version),
                    None => per_est.push((x.establishment_id.as_str(), vec![version])),
                }
            }
            let runs = per_est
                .into_iter()
                .map(|(id, mut versions)| {
                    let n = versions.len();
                    versions.sort_unstable();
                    versions.dedup();
                    versions.retain(|v| !v.is_empty());
                    let times = if n > 1 { format!(" ×{n}") } else { String::new() };
                    if versions.is_empty() {
                        format!("{}{times}", name(id))
                    } else {
                        format!("{} ({}){times}", name(id), versions.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            t.add_row([
                if i == 0 { heading.clone() } else { String::new() },
                product_label(&p.vendor, &p.name),
                runs,
                if p.is_target { "TARGET".into() } else { String::new() },
            ]);
        }
        if !d.target_product.is_empty() && !d.parties_not_on_target.is_empty() {
            let names = d.parties_not_on_target.iter().map(|id| name(id)).collect::<Vec<_>>().join("\n");
            t.add_row([String::new(), "not yet on target".into(), names, String::new()]);
        }
        if !d.conflicting_targets.is_empty() {
            t.add_row([String::new(), "conflicting targets".into(), d.conflicting_targets.join("\n"), String::new()]);
        }
    }
    println!("{t}");
    if !v.common_products.is_empty() && only.is_none() {
        println!("{} products are run by two parties or more.", v.common_products.len());
    }
    if let Some(t) = &v.totals {
        print_totals(t);
    }
}

fn print_totals(t: &proto::TerritoryTotals) {
    println!(
        "parties with an inventory: {}/{} ({} establishments in the GHT); {} applications, {} distinct products; \
         {} on shared GHT or HDS hosting",
        t.parties_with_inventory,
        t.parties,
        t.establishments,
        t.applications,
        t.distinct_products,
        share(t.shared_or_hds_hosting_share)
    );
    println!(
        "IS budget: operating {}, investment {} (both declared by {}/{} parties); PSSI adopted by {}/{} parties",
        euros(Some(t.budget_operating_eur)),
        euros(Some(t.budget_investment_eur)),
        t.parties_with_budget,
        t.parties,
        t.parties_with_pssi_adopted,
        t.parties
    );
    let staff = t
        .staff
        .iter()
        .map(|s| format!("{} {:.1}", proto::StaffCategory::code_of(s.category), s.fte))
        .collect::<Vec<_>>()
        .join(", ");
    println!("IS staff: {:.1} FTE ({staff})", t.staff_fte);
}

fn print_convergence(m: &proto::ConvergenceMapResponse) {
    println!("GHT {} — convergence map, {}", m.ght_id, m.generated_at);
    let mut t = table();
    t.set_header(["domain", "apps", "products", "parties", "target", "on target", "share", "share by inventory date"]);
    for d in &m.domains {
        let trend = d
            .trend
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(|p| format!("{} {}", p.as_of, share(p.share_on_target)))
            .collect::<Vec<_>>()
            .join("\n");
        t.add_row([
            proto::FunctionalDomain::code_of(d.domain),
            d.applications.to_string(),
            d.distinct_products.to_string(),
            d.parties_in_domain.to_string(),
            if d.target_product.is_empty() { "—".into() } else { d.target_product.clone() },
            d.parties_on_target.to_string(),
            share(d.share_on_target),
            trend,
        ]);
    }
    println!("{t}");
    if let Some(t) = &m.totals {
        print_totals(t);
    }
}

fn csv_text(w: csv::Writer<Vec<u8>>) -> anyhow::Result<String> {
    Ok(String::from_utf8(w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?)?)
}

/// One row per deployment: the flat table a spreadsheet pivots.
fn consolidated_csv(v: &proto::ConsolidatedInventoryResponse) -> anyhow::Result<String> {
    let names: HashMap<&str, (&str, i32)> =
        v.establishments.iter().map(|e| (e.establishment_id.as_str(), (e.name.as_str(), e.role))).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "ght_id",
        "domain",
        "product",
        "vendor",
        "name",
        "version",
        "establishment_id",
        "establishment",
        "role",
        "application_id",
        "hosting",
        "users_count",
        "end_of_support",
        "is_target_product",
        "domain_target_product",
        "domain_overlap",
    ])?;
    for d in &v.domains {
        for p in &d.products {
            for x in &p.deployments {
                let (name, r) = names.get(x.establishment_id.as_str()).copied().unwrap_or(("", 0));
                w.write_record([
                    v.ght_id.as_str(),
                    proto::FunctionalDomain::code_of(d.domain).as_str(),
                    p.product.as_str(),
                    x.vendor.as_str(),
                    x.name.as_str(),
                    x.version.as_str(),
                    x.establishment_id.as_str(),
                    name,
                    role(r),
                    x.application_id.as_str(),
                    proto::HostingMode::code_of(x.hosting).as_str(),
                    x.users_count.to_string().as_str(),
                    x.end_of_support.as_str(),
                    if p.is_target { "true" } else { "false" },
                    d.target_product.as_str(),
                    if d.overlap { "true" } else { "false" },
                ])?;
            }
        }
    }
    csv_text(w)
}

fn convergence_csv(m: &proto::ConvergenceMapResponse) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "ght_id",
        "domain",
        "applications",
        "distinct_products",
        "parties_in_domain",
        "target_product",
        "parties_on_target",
        "share_on_target",
    ])?;
    for d in &m.domains {
        w.write_record([
            m.ght_id.clone(),
            proto::FunctionalDomain::code_of(d.domain),
            d.applications.to_string(),
            d.distinct_products.to_string(),
            d.parties_in_domain.to_string(),
            d.target_product.clone(),
            d.parties_on_target.to_string(),
            format!("{:.4}", d.share_on_target),
        ])?;
    }
    csv_text(w)
}

fn totals_json(t: &proto::TerritoryTotals) -> Value {
    json!({
        "establishments": t.establishments,
        "parties": t.parties,
        "parties_with_inventory": t.parties_with_inventory,
        "applications": t.applications,
        "distinct_products": t.distinct_products,
        "budget_operating_eur": t.budget_operating_eur,
        "budget_investment_eur": t.budget_investment_eur,
        "parties_with_budget": t.parties_with_budget,
        "staff": t.staff.iter().map(|s| json!({"category": proto::StaffCategory::code_of(s.category), "fte": s.fte})).collect::<Vec<_>>(),
        "staff_fte": t.staff_fte,
        "parties_with_pssi_adopted": t.parties_with_pssi_adopted,
        "shared_or_hds_hosting_share": t.shared_or_hds_hosting_share,
    })
}

fn consolidated_json(v: &proto::ConsolidatedInventoryResponse) -> Value {
    json!({
        "ght_id": v.ght_id,
        "generated_at": v.generated_at,
        "establishments": v.establishments.iter().map(|e| json!({
            "establishment_id": e.establishment_id,
            "name": e.name,
            "role": role(e.role),
            "in_scope": e.in_scope,
            "has_inventory": e.has_inventory,
            "version": e.version,
            "pushed_at": e.pushed_at,
            "as_of": e.as_of,
            "application_count": e.application_count,
            "budget_operating_eur": e.budget_operating_eur,
            "budget_investment_eur": e.budget_investment_eur,
            "staff_fte": e.staff_fte,
            "pssi_status": (e.pssi_status != 0).then(|| proto::PssiStatus::code_of(e.pssi_status)),
        })).collect::<Vec<_>>(),
        "domains": v.domains.iter().map(|d| json!({
            "domain": proto::FunctionalDomain::code_of(d.domain),
            "overlap": d.overlap,
            "target_product": d.target_product,
            "conflicting_targets": d.conflicting_targets,
            "parties_on_target": d.parties_on_target,
            "parties_not_on_target": d.parties_not_on_target,
            "parties_without_application": d.parties_without_application,
            "products": d.products.iter().map(|p| json!({
                "product": p.product,
                "vendor": p.vendor,
                "name": p.name,
                "is_target": p.is_target,
                "establishment_count": p.establishment_count,
                "deployments": p.deployments.iter().map(|x| json!({
                    "establishment_id": x.establishment_id,
                    "application_id": x.application_id,
                    "name": x.name,
                    "vendor": x.vendor,
                    "version": x.version,
                    "hosting": proto::HostingMode::code_of(x.hosting),
                    "users_count": x.users_count,
                    "end_of_support": x.end_of_support,
                    "convergence_target": x.convergence_target,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "common_products": v.common_products.iter().map(|c| json!({
            "product": c.product,
            "domain": proto::FunctionalDomain::code_of(c.domain),
            "establishment_ids": c.establishment_ids,
        })).collect::<Vec<_>>(),
        "totals": v.totals.as_ref().map(totals_json),
    })
}

fn convergence_json(m: &proto::ConvergenceMapResponse) -> Value {
    json!({
        "ght_id": m.ght_id,
        "generated_at": m.generated_at,
        "domains": m.domains.iter().map(|d| json!({
            "domain": proto::FunctionalDomain::code_of(d.domain),
            "applications": d.applications,
            "distinct_products": d.distinct_products,
            "parties_in_domain": d.parties_in_domain,
            "target_product": d.target_product,
            "parties_on_target": d.parties_on_target,
            "share_on_target": d.share_on_target,
            "trend": d.trend.iter().map(|p| json!({
                "as_of": p.as_of,
                "distinct_products": p.distinct_products,
                "parties_in_domain": p.parties_in_domain,
                "parties_on_target": p.parties_on_target,
                "share_on_target": p.share_on_target,
                "target_product": p.target_product,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "totals": m.totals.as_ref().map(totals_json),
    })
}
