//! The inventory file format of `ghthub inventory push FILE` (JSON or YAML, chosen by
//! the file extension), and its rendering by `ghthub inventory show --out FILE`.
//!
//! The file mirrors the `InventoryDocument` message field for field (same names,
//! `snake_case`); enums are written by their code, the value name without prefix
//! (`domain: DPI`, `hosting: SHARED_GHT`, case-insensitive); dates are `YYYY-MM-DD`.
//! Unknown keys are refused (a typo must not silently drop a field). Missing values
//! are left empty so the hub's validation names them (`applications[3].name`).
//! See `examples/inventory-ch-luneville.yaml` for a complete, commented example.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::types::EnumCode;
use crate::{
    proto::{self, application_interface::Peer},
    AppError, AppResult,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// `.json` → JSON, `.yaml`/`.yml` → YAML.
    pub fn from_path(path: &Path) -> AppResult<Format> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => Ok(Format::Json),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            _ => Err(AppError::invalid(
                "file",
                format!("{}: the extension must be .json, .yaml or .yml", path.display()),
            )),
        }
    }
}

/// Text that YAML may have typed as a number (`version: 8.4`) or a boolean.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Option::<Scalar>::deserialize(d)? {
        None => String::new(),
        Some(Scalar::S(s)) => s,
        Some(Scalar::I(v)) => v.to_string(),
        Some(Scalar::U(v)) => v.to_string(),
        Some(Scalar::F(v)) => v.to_string(),
        Some(Scalar::B(v)) => v.to_string(),
    })
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryFile {
    #[serde(deserialize_with = "text")]
    pub as_of: String,
    #[serde(deserialize_with = "text")]
    pub source: String,
    pub applications: Vec<ApplicationFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<InfrastructureFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplicationFile {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub vendor: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub version: String,
    #[serde(deserialize_with = "text")]
    pub domain: String,
    #[serde(deserialize_with = "text")]
    pub hosting: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub users_count: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceFile>,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub end_of_support: String,
    #[serde(skip_serializing_if = "is_false")]
    pub convergence_target: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterfaceFile {
    #[serde(deserialize_with = "text")]
    pub standard: String,
    /// Id of another application of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// A system outside the inventory (DMP, MSSanté, regional platform…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_system: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfrastructureFile {
    pub data_centres: Vec<DataCentreFile>,
    pub physical_servers: u32,
    pub virtual_machines: u32,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub virtualisation_platform: String,
    pub storage_tb: f64,
    pub network_links: Vec<NetworkLinkFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuity: Option<ContinuityFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataCentreFile {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(deserialize_with = "text")]
    pub kind: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub site: String,
    pub hosts_production: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkLinkFile {
    #[serde(deserialize_with = "text")]
    pub id: String,
    #[serde(deserialize_with = "text")]
    pub from_site: String,
    #[serde(deserialize_with = "text")]
    pub to_site: String,
    #[serde(deserialize_with = "text")]
    pub kind: String,
    pub bandwidth_mbps: u32,
    pub redundant: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupFile {
    #[serde(deserialize_with = "text")]
    pub frequency: String,
    pub offsite_copy: bool,
    pub immutable_copy: bool,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub last_restore_test: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContinuityFile {
    #[serde(deserialize_with = "text")]
    pub pra: String,
    #[serde(deserialize_with = "text")]
    pub pca: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub last_exercise: String,
    pub rto_hours: u32,
    pub rpo_hours: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityFile {
    #[serde(deserialize_with = "text")]
    pub pssi_status: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub pssi_adopted_on: String,
    pub rssi_named: bool,
    pub rssi_shared_with_ght: bool,
    #[serde(deserialize_with = "text", skip_serializing_if = "is_empty")]
    pub last_audit: String,
    pub incidents_last_12_months: u32,
    #[serde(deserialize_with = "text")]
    pub hds_status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourcesFile {
    pub year: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_operating_eur: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_investment_eur: Option<f64>,
    pub staff: Vec<StaffFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaffFile {
    #[serde(deserialize_with = "text")]
    pub category: String,
    pub fte: f64,
}

/// An enum code of the file; an empty code stays UNSPECIFIED (the hub then says the
/// field is required), an unknown one is refused here with the accepted codes.
fn code<E: EnumCode>(field: &str, value: &str) -> AppResult<i32> {
    if value.trim().is_empty() {
        return Ok(0);
    }
    E::from_code(value).map(Into::into).ok_or_else(|| {
        AppError::invalid(
            field,
            format!("unknown value '{}' (expected one of {})", value.trim(), E::codes().join(", ")),
        )
    })
}

/// Reads a file's bytes (syntax only; the hub validates the content).
pub fn read(bytes: &[u8], format: Format) -> AppResult<InventoryFile> {
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| AppError::invalid("file", format!("JSON: {e}"))),
        Format::Yaml => serde_yaml::from_slice(bytes).map_err(|e| AppError::invalid("file", format!("YAML: {e}"))),
    }
}

/// Parses a file into the document to push (fuzzable: bytes in, no I/O).
pub fn parse(bytes: &[u8], format: Format) -> AppResult<proto::InventoryDocument> {
    to_document(read(bytes, format)?, |_| {})
}

/// The document of a parsed file; `progress(n)` is called after each application.
pub fn to_document(f: InventoryFile, mut progress: impl FnMut(usize)) -> AppResult<proto::InventoryDocument> {
    let mut applications = Vec::with_capacity(f.applications.len());
    for (i, a) in f.applications.into_iter().enumerate() {
        let p = |name: &str| format!("applications[{i}].{name}");
        let interfaces = a
            .interfaces
            .into_iter()
            .enumerate()
            .map(|(j, itf)| {
                let field = p(&format!("interfaces[{j}]"));
                let peer = match (itf.application_id, itf.external_system) {
                    (Some(id), None) => Some(Peer::ApplicationId(id)),
                    (None, Some(s)) => Some(Peer::ExternalSystem(s)),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(AppError::invalid(field, "give application_id or external_system, not both"))
                    }
                };
                Ok(proto::ApplicationInterface {
                    standard: code::<proto::InterfaceStandard>(&format!("{field}.standard"), &itf.standard)?,
                    peer,
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        applications.push(proto::Application {
            domain: code::<proto::FunctionalDomain>(&p("domain"), &a.domain)?,
            hosting: code::<proto::HostingMode>(&p("hosting"), &a.hosting)?,
            id: a.id,
            name: a.name,
            vendor: a.vendor,
            version: a.version,
            users_count: a.users_count,
            interfaces,
            end_of_support: a.end_of_support,
            convergence_target: a.convergence_target,
        });
        progress(i + 1);
    }
    let infrastructure = match f.infrastructure {
        None => None,
        Some(i) => Some(proto::Infrastructure {
            data_centres: i
                .data_centres
                .into_iter()
                .enumerate()
                .map(|(k, d)| {
                    Ok(proto::DataCentre {
                        kind: code::<proto::DataCentreKind>(
                            &format!("infrastructure.data_centres[{k}].kind"),
                            &d.kind,
                        )?,
                        id: d.id,
                        name: d.name,
                        site: d.site,
                        hosts_production: d.hosts_production,
                    })
                })
                .collect::<AppResult<_>>()?,
            physical_servers: i.physical_servers,
            virtual_machines: i.virtual_machines,
            virtualisation_platform: i.virtualisation_platform,
            storage_tb: i.storage_tb,
            network_links: i
                .network_links
                .into_iter()
                .enumerate()
                .map(|(k, l)| {
                    Ok(proto::NetworkLink {
                        kind: code::<proto::NetworkLinkKind>(
                            &format!("infrastructure.network_links[{k}].kind"),
                            &l.kind,
                        )?,
                        id: l.id,
                        from_site: l.from_site,
                        to_site: l.to_site,
                        bandwidth_mbps: l.bandwidth_mbps,
                        redundant: l.redundant,
                    })
                })
                .collect::<AppResult<_>>()?,
            backup: match i.backup {
                None => None,
                Some(b) => Some(proto::BackupPolicy {
                    frequency: code::<proto::BackupFrequency>("infrastructure.backup.frequency", &b.frequency)?,
                    offsite_copy: b.offsite_copy,
                    immutable_copy: b.immutable_copy,
                    last_restore_test: b.last_restore_test,
                }),
            },
            continuity: match i.continuity {
                None => None,
                Some(c) => Some(proto::ContinuityPlans {
                    pra: code::<proto::ContinuityPlanStatus>("infrastructure.continuity.pra", &c.pra)?,
                    pca: code::<proto::ContinuityPlanStatus>("infrastructure.continuity.pca", &c.pca)?,
                    last_exercise: c.last_exercise,
                    rto_hours: c.rto_hours,
                    rpo_hours: c.rpo_hours,
                }),
            },
        }),
    };
    let security = match f.security {
        None => None,
        Some(s) => Some(proto::SecurityPosture {
            pssi_status: code::<proto::PssiStatus>("security.pssi_status", &s.pssi_status)?,
            pssi_adopted_on: s.pssi_adopted_on,
            rssi_named: s.rssi_named,
            rssi_shared_with_ght: s.rssi_shared_with_ght,
            last_audit: s.last_audit,
            incidents_last_12_months: s.incidents_last_12_months,
            hds_status: code::<proto::HdsStatus>("security.hds_status", &s.hds_status)?,
        }),
    };
    let resources = match f.resources {
        None => None,
        Some(r) => Some(proto::IsResources {
            year: r.year,
            budget_operating_eur: r.budget_operating_eur,
            budget_investment_eur: r.budget_investment_eur,
            staff: r
                .staff
                .into_iter()
                .enumerate()
                .map(|(k, s)| {
                    Ok(proto::StaffLine {
                        category: code::<proto::StaffCategory>(&format!("resources.staff[{k}].category"), &s.category)?,
                        fte: s.fte,
                    })
                })
                .collect::<AppResult<_>>()?,
        }),
    };
    Ok(proto::InventoryDocument {
        as_of: f.as_of,
        source: code::<proto::InventorySource>("source", &f.source)?,
        applications,
        infrastructure,
        security,
        resources,
    })
}

/// The file form of a stored document (what `inventory show --out` writes).
pub fn from_document(d: &proto::InventoryDocument) -> InventoryFile {
    InventoryFile {
        as_of: d.as_of.clone(),
        source: proto::InventorySource::code_of(d.source),
        applications: d
            .applications
            .iter()
            .map(|a| ApplicationFile {
                id: a.id.clone(),
                name: a.name.clone(),
                vendor: a.vendor.clone(),
                version: a.version.clone(),
                domain: proto::FunctionalDomain::code_of(a.domain),
                hosting: proto::HostingMode::code_of(a.hosting),
                users_count: a.users_count,
                interfaces: a
                    .interfaces
                    .iter()
                    .map(|i| InterfaceFile {
                        standard: proto::InterfaceStandard::code_of(i.standard),
                        application_id: match &i.peer {
                            Some(Peer::ApplicationId(s)) => Some(s.clone()),
                            _ => None,
                        },
                        external_system: match &i.peer {
                            Some(Peer::ExternalSystem(s)) => Some(s.clone()),
                            _ => None,
                        },
                    })
                    .collect(),
                end_of_support: a.end_of_support.clone(),
                convergence_target: a.convergence_target,
            })
            .collect(),
        infrastructure: d.infrastructure.as_ref().map(|i| InfrastructureFile {
            data_centres: i
                .data_centres
                .iter()
                .map(|dc| DataCentreFile {
                    id: dc.id.clone(),
                    name: dc.name.clone(),
                    kind: proto::DataCentreKind::code_of(dc.kind),
                    site: dc.site.clone(),
                    hosts_production: dc.hosts_production,
                })
                .collect(),
            physical_servers: i.physical_servers,
            virtual_machines: i.virtual_machines,
            virtualisation_platform: i.virtualisation_platform.clone(),
            storage_tb: i.storage_tb,
            network_links: i
                .network_links
                .iter()
                .map(|l| NetworkLinkFile {
                    id: l.id.clone(),
                    from_site: l.from_site.clone(),
                    to_site: l.to_site.clone(),
                    kind: proto::NetworkLinkKind::code_of(l.kind),
                    bandwidth_mbps: l.bandwidth_mbps,
                    redundant: l.redundant,
                })
                .collect(),
            backup: i.backup.as_ref().map(|b| BackupFile {
                frequency: proto::BackupFrequency::code_of(b.frequency),
                offsite_copy: b.offsite_copy,
                immutable_copy: b.immutable_copy,
                last_restore_test: b.last_restore_test.clone(),
            }),
            continuity: i.continuity.as_ref().map(|c| ContinuityFile {
                pra: proto::ContinuityPlanStatus::code_of(c.pra),
                pca: proto::ContinuityPlanStatus::code_of(c.pca),
                last_exercise: c.last_exercise.clone(),
                rto_hours: c.rto_hours,
                rpo_hours: c.rpo_hours,
            }),
        }),
        security: d.security.as_ref().map(|s| SecurityFile {
            pssi_status: proto::PssiStatus::code_of(s.pssi_status),
            pssi_adopted_on: s.pssi_adopted_on.clone(),
            rssi_named: s.rssi_named,
            rssi_shared_with_ght: s.rssi_shared_with_ght,
            last_audit: s.last_audit.clone(),
            incidents_last_12_months: s.incidents_last_12_months,
            hds_status: proto::HdsStatus::code_of(s.hds_status),
        }),
        resources: d.resources.as_ref().map(|r| ResourcesFile {
            year: r.year,
            budget_operating_eur: r.budget_operating_eur,
            budget_investment_eur: r.budget_investment_eur,
            staff: r
                .staff
                .iter()
                .map(|s| StaffFile { category: proto::StaffCategory::code_of(s.category), fte: s.fte })
                .collect(),
        }),
    }
}

/// Renders a file in the given format.
pub fn render(f: &InventoryFile, format: Format) -> AppResult<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(f)? + "\n"),
        Format::Yaml => serde_yaml::to_string(f).map_err(|e| AppError::internal(format!("yaml: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::canonical::canonicalize;

    const YAML: &str = r#"
as_of: 2025-01-31
source: manual
applications:
  - id: dpi
    name: DxCare
    vendor: Dedalus
    version: 8.4
    domain: DPI
    hosting: shared-ght
    users_count: 800
    convergence_target: true
    interfaces:
      - {standard: HL7_V2, application_id: gam}
      - {standard: FHIR, external_system: DMP}
  - {id: gam, name: Pastel, vendor: Maincare, domain: PATIENT_ADMINISTRATION, hosting: ON_PREMISE}
resources:
  year: 2025
  budget_operating_eur: 1200000
  staff:
    - {category: PROJECT, fte: 3.5}
"#;

    #[test]
    fn yaml_and_json_give_the_same_canonical_document() {
        let from_yaml = canonicalize(parse(YAML.as_bytes(), Format::Yaml).unwrap()).unwrap();
        assert_eq!(from_yaml.document.applications[0].version, "8.4");
        assert_eq!(from_yaml.document.applications[0].hosting, proto::HostingMode::SharedGht as i32);
        let json = render(&from_document(&from_yaml.document), Format::Json).unwrap();
        let from_json = canonicalize(parse(json.as_bytes(), Format::Json).unwrap()).unwrap();
        assert_eq!(from_json.hash, from_yaml.hash);
        let yaml = render(&from_document(&from_json.document), Format::Yaml).unwrap();
        assert_eq!(canonicalize(parse(yaml.as_bytes(), Format::Yaml).unwrap()).unwrap().hash, from_yaml.hash);
    }

    #[test]
    fn unknown_codes_and_keys_are_refused_with_the_path() {
        let bad = YAML.replace("hosting: shared-ght", "hosting: cloud");
        match parse(bad.as_bytes(), Format::Yaml) {
            Err(AppError::InvalidArgument { field, reason }) => {
                assert_eq!(field, "applications[0].hosting");
                assert!(reason.contains("ON_PREMISE, SHARED_GHT, HDS_HOST, SAAS"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let typo = YAML.replace("users_count: 800", "users: 800");
        match parse(typo.as_bytes(), Format::Yaml) {
            Err(AppError::InvalidArgument { field, reason }) => {
                assert_eq!(field, "file");
                assert!(reason.contains("unknown field `users`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(Format::from_path(Path::new("x.txt")).is_err());
        assert_eq!(Format::from_path(Path::new("X.YML")).unwrap(), Format::Yaml);
    }
}
