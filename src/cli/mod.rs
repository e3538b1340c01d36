//! The `ghthub` command line: the hub itself (`serve`), development tooling
//! (`certs`, `token`) and a client for every service.

pub mod client;
pub mod demo;
pub mod identity;
pub mod indicators;
pub mod inventory;
pub mod movements;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use crate::{
    access::{policy, Principal, Role},
    auth::TokenIssuer,
    config::ServeArgs,
    pki::{self, DevPaths},
    proto,
    telemetry::LogFormat,
};
use client::{ConnectArgs, HubClient};

#[derive(Parser, Debug)]
#[command(
    name = "ghthub",
    version,
    about = "TLS gRPC data-exchange hub for a GHT (groupement hospitalier de territoire)"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "GHTHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the hub.
    Serve(ServeArgs),
    /// Generate a development CA, server certificate, token keys and client certificates.
    Certs {
        /// Output folder.
        #[arg(long, default_value = "data/certs")]
        out: PathBuf,
        /// Issue a client certificate (CN = subject) for each of these party subjects.
        #[arg(long = "client")]
        clients: Vec<String>,
        /// Extra DNS names for the server certificate.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
    },
    /// Issue a signed party token (development key by default).
    Token(TokenArgs),
    /// Ask the hub's gRPC health service.
    Health,
    /// Show who the hub sees in your token.
    Whoami,
    /// GHTs of the registry.
    #[command(subcommand)]
    Ght(GhtCommand),
    /// Establishments (parties, associés, partenaires) of a GHT.
    #[command(subcommand)]
    Parties(PartiesCommand),
    /// Party accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The access policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// DIM staff designations and break-glass (DIM physician).
    #[command(subcommand)]
    Dim(DimCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Establishment IS inventories: push, show, versions, diff.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// The GHT's consolidated SDSI-T view of every party's inventory.
    #[command(subcommand)]
    Territory(inventory::TerritoryCommand),
    /// The 18 GHT convergence indicators: catalogue, declare, submit, review, scorecard, region pull.
    #[command(subcommand)]
    Indicators(indicators::IndicatorsCommand),
    /// Patient identities (INS) and the territorial identity index.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Patient movements: publish (JSONL), follow the stream, encounters, journeys.
    #[command(subcommand)]
    Movements(movements::MovementsCommand),
    /// Sample data: a plausible GHT with inventories, identities, movements and indicators.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// Drive a mixed workload against a hub and print throughput and latency percentiles.
    Load(crate::load::LoadArgs),
    /// The bare TLS echo server `load --compare-echo` measures against.
    #[command(hide = true)]
    BenchEcho {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Subject (the party account; the CN of its client certificate under mTLS).
    #[arg(long)]
    pub sub: String,
    /// ESTABLISHMENT_DSI, GHT_DSI, DIM_PHYSICIAN, DIM_STAFF, PRACTITIONER, ARS or ADMIN.
    #[arg(long)]
    pub role: String,
    /// GHT id (all roles but ARS and ADMIN).
    #[arg(long)]
    pub ght: Option<String>,
    /// Establishment id (ESTABLISHMENT_DSI, PRACTITIONER).
    #[arg(long)]
    pub establishment: Option<String>,
    /// ARS region (ARS).
    #[arg(long)]
    pub region: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 8 * 3600)]
    pub ttl: i64,
    /// Ed25519 signing key (PKCS#8 PEM).
    #[arg(long, env = "GHTHUB_TOKEN_SIGNING_KEY", default_value = "data/certs/token-signing.key.pem")]
    pub signing_key: PathBuf,
    /// Key id put in the token header.
    #[arg(long, default_value = "dev")]
    pub kid: String,
    #[arg(long, env = "GHTHUB_TOKEN_ISSUER", default_value = "ghthub-dev")]
    pub issuer: String,
    #[arg(long, env = "GHTHUB_TOKEN_AUDIENCE", default_value = "ghthub")]
    pub audience: String,
}

#[derive(Subcommand, Debug)]
pub enum GhtCommand {
    /// Create a GHT.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// ARS region code (INSEE, e.g. 44 Grand Est, 76 Occitanie).
        #[arg(long)]
        region: String,
    },
    /// List the GHTs you may see.
    List {
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PartiesCommand {
    /// Add an establishment to a GHT.
    Add {
        /// FINESS number.
        #[arg(long)]
        id: String,
        #[arg(long)]
        ght: String,
        #[arg(long)]
        name: String,
        /// SUPPORT, PARTIE, ASSOCIE or PARTENAIRE.
        #[arg(long)]
        role: String,
        /// CHU, CH, CH_PSY, EP_MEDICO_SOCIAL, HOPITAL_ARMEES, HAD or ES_PRIVE.
        #[arg(long, default_value = "CH")]
        category: String,
    },
    /// List the establishments of a GHT.
    List {
        #[arg(long)]
        ght: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Record a party account.
    Add {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        ght: Option<String>,
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
    /// List the accounts of a GHT.
    List {
        #[arg(long)]
        ght: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the policy table (role × data class × action × scope). Local; --remote asks the hub.
    Show {
        #[arg(long)]
        remote: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DimCommand {
    /// Designate a DIM staff member.
    Designate {
        #[arg(long)]
        staff: String,
        #[arg(long)]
        mission: String,
        #[arg(long)]
        establishment: Option<String>,
        /// RFC 3339 end of validity.
        #[arg(long)]
        until: Option<String>,
    },
    /// Revoke a designation.
    Revoke {
        #[arg(long)]
        id: String,
    },
    /// List designations.
    Designations {
        #[arg(long)]
        all: bool,
    },
    /// Emergency access outside the ordinary rule (audited, time-limited).
    BreakGlass {
        #[arg(long)]
        reason: String,
        #[arg(long)]
        patient: Option<String>,
        #[arg(long, default_value_t = 60)]
        minutes: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain.
    Verify,
    /// Who accessed what (DIM physician).
    Query {
        /// A patient (territorial identity or IPP) or any target id.
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        break_glass: bool,
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t
}

fn role_name(v: i32) -> String {
    proto::PartyRole::try_from(v)
        .ok()
        .and_then(Role::from_proto)
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| "?".into())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let connect = cli.connect.clone();
    match cli.command {
        Command::Serve(args) => crate::server::serve(args).await,
        Command::Load(args) => crate::load::run(args, &connect).await,
        Command::Inventory(cmd) => inventory::run_inventory(cmd, &connect).await,
        Command::Territory(cmd) => inventory::run_territory(cmd, &connect).await,
        Command::Indicators(cmd) => indicators::run(cmd, &connect).await,
        Command::Identity(cmd) => identity::run(cmd, &connect).await,
        Command::Movements(cmd) => movements::run(cmd, &connect).await,
        Command::Demo(cmd) => demo::run(cmd, &connect).await,
        Command::BenchEcho { listen, data_dir } => crate::load::echo::serve(listen, &data_dir).await,
        Command::Certs { out, clients, server_names } => {
            let paths = DevPaths::new(&out);
            pki::ensure_dev_material(&paths, &server_names)?;
            println!("CA:           {}", paths.ca_cert().display());
            println!("server:       {}", paths.server_cert().display());
            println!("token keys:   {} / {}", paths.token_signing_key().display(), paths.token_verify_key().display());
            for c in clients {
                let (cert, key) = pki::issue_client_cert(&paths, &c)?;
                println!("client {c}: {} / {}", cert.display(), key.display());
            }
            Ok(())
        }
        Command::Token(t) => {
            let role = Role::parse(&t.role).with_context(|| format!("unknown role {}", t.role))?;
            let pem = std::fs::read(&t.signing_key).with_context(|| {
                format!("reading {} (run `ghthub certs` or start `ghthub serve` once)", t.signing_key.display())
            })?;
            let issuer = TokenIssuer::new(&pem, &t.kid, &t.issuer, &t.audience)?;
            let p = Principal {
                subject: t.sub,
                role,
                ght_id: t.ght,
                establishment_id: t.establishment,
                region: t.region,
                expires_at: 0,
            };
            println!("{}", issuer.issue(&p, t.ttl)?);
            Ok(())
        }
        Command::Health => {
            let c = HubClient::connect(&connect).await?;
            let mut h = tonic_health::pb::health_client::HealthClient::new(c.channel.clone());
            let r = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?.into_inner();
            let status = tonic_health::pb::health_check_response::ServingStatus::try_from(r.status)
                .map(|s| s.as_str_name().to_string())
                .unwrap_or_else(|_| r.status.to_string());
            println!("{status}");
            if status != "SERVING" {
                bail!("hub is not serving");
            }
            Ok(())
        }
        Command::Whoami => {
            let c = HubClient::connect(&connect).await?;
            let w = c.registry().who_am_i(proto::WhoAmIRequest {}).await?.into_inner();
            println!("subject:       {}", w.subject);
            println!("role:          {}", role_name(w.role));
            println!("GHT:           {}", w.ght_id);
            println!("establishment: {}", w.establishment_id);
            println!("ARS region:    {}", w.ars_region);
            println!("expires:       {}", w.expires_at);
            Ok(())
        }
        Command::Ght(cmd) => {
            let c = HubClient::connect(&connect).await?;
            match cmd {
                GhtCommand::Add { id, name, region } => {
                    let g = c
                        .registry()
                        .create_ght(proto::CreateGhtRequest {
                            id,
                            name,
                            ars_region: region,
                            request_id: uuid::Uuid::new_v4().to_string(),
                        })
                        .await?
                        .into_inner();
                    println!("created GHT {} ({}), region {}", g.id, g.name, g.ars_region);
                }
                GhtCommand::List { region } => {
                    let r = c
                        .registry()
                        .list_ghts(proto::ListGhtsRequest { ars_region: region.unwrap_or_default() })
                        .await?
                        .into_inner();
                    let mut t = table();
                    t.set_header(["id", "name", "ARS region", "created"]);
                    for g in r.ghts {
                        t.add_row([g.id, g.name, g.ars_region, g.created_at]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
        Command::Parties(cmd) => {
            let c = HubClient::connect(&connect).await?;
            match cmd {
                PartiesCommand::Add { id, ght, name, role, category } => {
                    let e = c
                        .registry()
                        .create_establishment(proto::CreateEstablishmentRequest {
                            id,
                            ght_id: ght,
                            name,
                            role: crate::registry::parse_establishment_role(&role) as i32,
                            category: crate::registry::parse_category(&category) as i32,
                            request_id: uuid::Uuid::new_v4().to_string(),
                        })
                        .await?
                        .into_inner();
                    println!("added establishment {} ({}) to GHT {}", e.id, e.name, e.ght_id);
                }
                PartiesCommand::List { ght } => {
                    let r = c
                        .registry()
                        .list_establishments(proto::ListEstablishmentsRequest { ght_id: ght })
                        .await?
                        .into_inner();
                    let mut t = table();
                    t.set_header(["FINESS", "name", "role", "category"]);
                    for e in r.establishments {
                        let (role, category) = (e.role(), e.category());
                        t.add_row([
                            e.id,
                            e.name,
                            crate::registry::establishment_role_str(role).to_string(),
                            crate::registry::category_str(category).to_string(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
        Command::Accounts(cmd) => {
            let c = HubClient::connect(&connect).await?;
            match cmd {
                AccountsCommand::Add { sub, role, name, ght, establishment, region } => {
                    let role = Role::parse(&role).with_context(|| format!("unknown role {role}"))?;
                    let a = c
                        .registry()
                        .create_party_account(proto::CreatePartyAccountRequest {
                            account: Some(proto::PartyAccount {
                                subject: sub,
                                role: role.to_proto() as i32,
                                ght_id: ght.unwrap_or_default(),
                                establishment_id: establishment.unwrap_or_default(),
                                ars_region: region.unwrap_or_default(),
                                display_name: name,
                                created_at: String::new(),
                            }),
                        })
                        .await?
                        .into_inner();
                    println!("recorded account {} ({})", a.subject, role_name(a.role));
                }
                AccountsCommand::List { ght } => {
                    let r = c
                        .registry()
                        .list_party_accounts(proto::ListPartyAccountsRequest { ght_id: ght })
                        .await?
                        .into_inner();
                    let mut t = table();
                    t.set_header(["subject", "role", "establishment", "name"]);
                    for a in r.accounts {
                        t.add_row([a.subject.clone(), role_name(a.role), a.establishment_id, a.display_name]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
        Command::Policy(PolicyCommand::Show { remote }) => {
            if !remote {
                print!("{}", policy::render_table());
                return Ok(());
            }
            let c = HubClient::connect(&connect).await?;
            let r = c.access().show_policy(proto::ShowPolicyRequest {}).await?.into_inner();
            let mut t = table();
            t.set_header(["role", "data class", "action", "scope", "rule"]);
            for rule in r.rules {
                t.add_row([
                    role_name(rule.role),
                    rule.data_class().as_str_name().trim_start_matches("DATA_CLASS_").to_string(),
                    rule.action().as_str_name().trim_start_matches("ACCESS_ACTION_").to_string(),
                    rule.scope,
                    rule.name,
                ]);
            }
            println!("{t}\nsmall-cell threshold: {}", r.small_cell_threshold);
            Ok(())
        }
        Command::Dim(cmd) => {
            let c = HubClient::connect(&connect).await?;
            let show = |d: proto::Designation| {
                println!(
                    "{}  {} designated by {} for '{}' (establishment: {}) from {} until {}{}",
                    d.id,
                    d.staff_subject,
                    d.designated_by,
                    d.mission,
                    if d.establishment_id.is_empty() { "all parties" } else { &d.establishment_id },
                    d.valid_from,
                    if d.valid_until.is_empty() { "revoked" } else { &d.valid_until },
                    if d.revoked_at.is_empty() { String::new() } else { format!(" — REVOKED {}", d.revoked_at) }
                )
            };
            match cmd {
                DimCommand::Designate { staff, mission, establishment, until } => {
                    let d = c
                        .access()
                        .designate_dim_staff(proto::DesignateDimStaffRequest {
                            staff_subject: staff,
                            establishment_id: establishment.unwrap_or_default(),
                            valid_until: until.unwrap_or_default(),
                            mission,
                        })
                        .await?
                        .into_inner();
                    show(d);
                }
                DimCommand::Revoke { id } => {
                    show(c.access().revoke_designation(proto::RevokeDesignationRequest { id }).await?.into_inner())
                }
                DimCommand::Designations { all } => {
                    let r = c
                        .access()
                        .list_designations(proto::ListDesignationsRequest { include_inactive: all })
                        .await?
                        .into_inner();
                    r.designations.into_iter().for_each(show);
                }
                DimCommand::BreakGlass { reason, patient, minutes } => {
                    let g = c
                        .access()
                        .request_break_glass(proto::BreakGlassRequest {
                            reason,
                            patient_ref: patient.unwrap_or_default(),
                            duration_minutes: minutes,
                        })
                        .await?
                        .into_inner();
                    println!(
                        "break-glass grant {} until {} (flagged in the audit trail for review)",
                        g.id, g.expires_at
                    );
                }
            }
            Ok(())
        }
        Command::Audit(cmd) => {
            let c = HubClient::connect(&connect).await?;
            match cmd {
                AuditCommand::Verify => {
                    let v = c.audit().verify_audit(proto::VerifyAuditRequest {}).await?.into_inner();
                    if v.ok {
                        println!("audit chain OK: {} records", v.records);
                    } else {
                        bail!(
                            "audit chain BROKEN at seq {}: {} ({} records verified before it)",
                            v.first_bad_seq,
                            v.detail,
                            v.records
                        );
                    }
                }
                AuditCommand::Query { target, subject, break_glass, after, limit } => {
                    let r = c
                        .audit()
                        .query_audit(proto::QueryAuditRequest {
                            target_id: target.unwrap_or_default(),
                            subject: subject.unwrap_or_default(),
                            break_glass_only: break_glass,
                            after_seq: after,
                            limit,
                        })
                        .await?
                        .into_inner();
                    let mut t = table();
                    t.set_header(["seq", "at", "subject", "role", "rpc", "decision", "targets", "reason"]);
                    for a in r.records {
                        t.add_row([
                            a.seq.to_string(),
                            a.at.clone(),
                            a.subject.clone(),
                            role_name(a.role),
                            a.rpc.rsplit('/').next().unwrap_or_default().to_string(),
                            a.decision.clone(),
                            a.target_ids.join(" "),
                            a.reason.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
    }
}
