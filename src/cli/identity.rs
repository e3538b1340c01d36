//! `ghthub identity …`: publish a local identity (JSON file), look identities up, and
//! the identity-vigilance work of the territorial index (link, unlink, merge, unmerge,
//! candidate matches, alerts).
//!
//! # The identity file
//!
//! One local identity as JSON (example: `examples/identity-ch-luneville.json`). Field
//! names are those of `LocalIdentity` in `proto/ghthub/v1/identity.proto`, with readable
//! values: `status` PROVISOIRE, RECUPEREE, VALIDEE or QUALIFIEE; `sex` M, F or I;
//! `identity_document` NONE, CNI, PASSEPORT, TITRE_SEJOUR, LIVRET_FAMILLE or
//! ACTE_NAISSANCE; `ins` `{"matricule": "…", "oid": "…"}` (RECUPEREE, QUALIFIEE only;
//! spaces in the matricule are ignored). A `_comment` key is allowed and ignored.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;

use super::client::{Authed, ConnectArgs, HubClient};
use crate::proto::{self, identity_client::IdentityClient};

impl HubClient {
    pub fn identity(&self) -> IdentityClient<Authed> {
        IdentityClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum IdentityCommand {
    /// Create or update a local identity from a JSON file (format: examples/identity-ch-luneville.json).
    Upsert {
        file: PathBuf,
        /// Idempotency key (a retry with the same key gets the first answer); default: a new one.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// A local identity (FINESS:IPP) with its territorial identity, or a territorial identity.
    Get {
        /// FINESS:IPP of a local identity.
        #[arg(required_unless_present = "territorial", conflicts_with = "territorial")]
        local: Option<String>,
        /// A territorial identity id (T…).
        #[arg(long)]
        territorial: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Search qualified identities by INS, or identities by traits (phonetic birth name, date tolerance).
    Search {
        /// INS matricule (15 characters; spaces ignored).
        #[arg(long, conflicts_with = "birth_name", required_unless_present = "birth_name")]
        ins: Option<String>,
        /// OID of the INS assigning authority.
        #[arg(long, default_value = crate::identity::ins::OID_NIR)]
        oid: String,
        /// Birth name.
        #[arg(long)]
        birth_name: Option<String>,
        #[arg(long)]
        first_given_name: Option<String>,
        /// YYYY-MM-DD.
        #[arg(long)]
        birth_date: Option<String>,
        /// M, F or I.
        #[arg(long)]
        sex: Option<String>,
        /// INSEE code of the birth place.
        #[arg(long)]
        birth_place: Option<String>,
        /// At most 50.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Confirm that two local identities are the same patient: B's territorial identity joins A's.
    Link {
        /// FINESS:IPP.
        a: String,
        /// FINESS:IPP.
        b: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Detach a local identity (FINESS:IPP) into a new territorial identity.
    Unlink {
        identity: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Merge a duplicate IPP into the surviving IPP of the same establishment (A40).
    Merge {
        /// FINESS:IPP that stays.
        #[arg(long)]
        surviving: String,
        /// FINESS:IPP of the duplicate.
        #[arg(long)]
        merged: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Undo a merge, by its MERGE event id (E…).
    Unmerge {
        merge_event_id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Candidate matches awaiting a decision (best score first).
    Candidates {
        /// Include decided candidates (LINKED, REJECTED, MERGED).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Record that a candidate match is not the same patient.
    RejectCandidate {
        candidate_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Identity-vigilance alerts (same INS, different strict traits), newest first.
    Alerts {
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

fn rpc(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

fn request_id(r: Option<String>) -> String {
    r.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The INS as written in an identity file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsFile {
    pub matricule: String,
    pub oid: String,
}

/// A local identity as written in an identity file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    #[serde(default, rename = "_comment")]
    pub comment: Option<serde_json::Value>,
    pub establishment_id: String,
    pub ipp: String,
    pub status: String,
    #[serde(default)]
    pub ins: Option<InsFile>,
    pub birth_name: String,
    pub first_given_name: String,
    #[serde(default)]
    pub birth_given_names: String,
    #[serde(default)]
    pub used_name: String,
    #[serde(default)]
    pub used_given_name: String,
    pub birth_date: String,
    pub sex: String,
    #[serde(default)]
    pub birth_place_code: String,
    pub identity_document: String,
}

fn parse_status(s: &str) -> Option<proto::IdentityStatus> {
    use proto::IdentityStatus as S;
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "PROVISOIRE" | "PROV" => S::Provisoire,
        "RECUPEREE" | "RECUP" => S::Recuperee,
        "VALIDEE" | "VALI" => S::Validee,
        "QUALIFIEE" | "QUAL" => S::Qualifiee,
        _ => return None,
    })
}

pub fn parse_sex(s: &str) -> Option<proto::AdministrativeSex> {
    use proto::AdministrativeSex as X;
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "M" | "MALE" => X::Male,
        "F" | "FEMALE" => X::Female,
        "I" | "UNKNOWN" => X::Unknown,
        _ => return None,
    })
}

fn parse_document(s: &str) -> Option<proto::IdentityDocument> {
    let s = s.trim().to_ascii_uppercase();
    proto::IdentityDocument::from_str_name(&format!("IDENTITY_DOCUMENT_{s}"))
        .filter(|d| *d != proto::IdentityDocument::Unspecified)
}

fn status_name(s: i32) -> String {
    proto::IdentityStatus::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("IDENTITY_STATUS_").to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn sex_name(s: i32) -> &'static str {
    match proto::AdministrativeSex::try_from(s) {
        Ok(proto::AdministrativeSex::Male) => "M",
        Ok(proto::AdministrativeSex::Female) => "F",
        Ok(proto::AdministrativeSex::Unknown) => "I",
        _ => "?",
    }
}

fn document_name(d: i32) -> String {
    proto::IdentityDocument::try_from(d)
        .map(|d| d.as_str_name().trim_start_matches("IDENTITY_DOCUMENT_").to_string())
        .unwrap_or_else(|_| d.to_string())
}

fn event_kind(k: i32) -> String {
    proto::IdentityEventKind::try_from(k)
        .map(|k| k.as_str_name().trim_start_matches("IDENTITY_EVENT_KIND_").to_string())
        .unwrap_or_else(|_| k.to_string())
}

fn candidate_status(s: i32) -> String {
    proto::CandidateStatus::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("CANDIDATE_STATUS_").to_string())
        .unwrap_or_else(|_| s.to_string())
}

impl IdentityFile {
    /// The identity to upsert; the error names the field.
    pub fn to_proto(&self) -> anyhow::Result<proto::LocalIdentity> {
        let status = parse_status(&self.status)
            .with_context(|| format!("status: '{}' is not PROVISOIRE, RECUPEREE, VALIDEE or QUALIFIEE", self.status))?;
        let sex = parse_sex(&self.sex).with_context(|| format!("sex: '{}' is not M, F or I", self.sex))?;
        let document = parse_document(&self.identity_document).with_context(|| {
            format!(
                "identity_document: '{}' is not NONE, CNI, PASSEPORT, TITRE_SEJOUR, LIVRET_FAMILLE or ACTE_NAISSANCE",
                self.identity_document
            )
        })?;
        Ok(proto::LocalIdentity {
            establishment_id: self.establishment_id.clone(),
            ipp: self.ipp.clone(),
            status: status as i32,
            ins: self.ins.as_ref().map(|i| proto::InsIdentifier { matricule: i.matricule.clone(), oid: i.oid.clone() }),
            birth_name: self.birth_name.clone(),
            first_given_name: self.first_given_name.clone(),
            birth_given_names: self.birth_given_names.clone(),
            used_name: self.used_name.clone(),
            used_given_name: self.used_given_name.clone(),
            birth_date: self.birth_date.clone(),
            sex: sex as i32,
            birth_place_code: self.birth_place_code.clone(),
            identity_document: document as i32,
            ..Default::default()
        })
    }
}

/// Reads an identity file.
pub fn read_identity_file(path: &Path) -> anyhow::Result<proto::LocalIdentity> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: IdentityFile = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    f.to_proto().with_context(|| format!("{}", path.display()))
}

/// "FINESS:IPP" (an IPP may itself contain ':').
pub fn parse_ref(s: &str) -> anyhow::Result<proto::LocalIdentityRef> {
    match s.trim().split_once(':') {
        Some((e, i)) if !e.is_empty() && !i.is_empty() => {
            Ok(proto::LocalIdentityRef { establishment_id: e.to_string(), ipp: i.to_string() })
        }
        _ => bail!("'{s}' is not FINESS:IPP (e.g. 540099016:0160004211)"),
    }
}

fn show_ref(r: &proto::LocalIdentityRef) -> String {
    format!("{}:{}", r.establishment_id, r.ipp)
}

fn refs(rs: &[proto::LocalIdentityRef]) -> String {
    rs.iter().map(show_ref).collect::<Vec<_>>().join(" ")
}

fn identity_json(i: &proto::LocalIdentity) -> serde_json::Value {
    json!({
        "establishment_id": i.establishment_id,
        "ipp": i.ipp,
        "status": status_name(i.status),
        "ins": i.ins.as_ref().map(|x| json!({"matricule": x.matricule, "oid": x.oid})),
        "ins_withheld": i.ins_withheld,
        "birth_name": i.birth_name,
        "first_given_name": i.first_given_name,
        "birth_given_names": i.birth_given_names,
        "used_name": i.used_name,
        "used_given_name": i.used_given_name,
        "birth_date": i.birth_date,
        "sex": sex_name(i.sex),
        "birth_place_code": i.birth_place_code,
        "identity_document": document_name(i.identity_document),
        "territorial_id": i.territorial_id,
        "merged_into_ipp": i.merged_into_ipp,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
    })
}

fn event_json(e: &proto::IdentityEvent) -> serde_json::Value {
    json!({
        "id": e.id,
        "kind": event_kind(e.kind),
        "author": e.author,
        "at": e.at,
        "reason": e.reason,
        "identities": e.identities.iter().map(show_ref).collect::<Vec<_>>(),
        "territorial_id": e.territorial_id,
        "other_territorial_id": e.other_territorial_id,
        "related_event_id": e.related_event_id,
        "changes": e.changes,
    })
}

fn ins_text(i: &proto::LocalIdentity) -> String {
    match (&i.ins, i.ins_withheld) {
        (Some(x), _) if !x.matricule.is_empty() => x.matricule.clone(),
        (_, true) => "(withheld until qualified)".into(),
        _ => String::new(),
    }
}

fn names(i: &proto::LocalIdentity) -> String {
    let mut s = format!("{} {}", i.birth_name.to_uppercase(), i.first_given_name);
    if !i.birth_given_names.is_empty() && i.birth_given_names != i.first_given_name {
        s += &format!(" ({})", i.birth_given_names);
    }
    if !i.used_name.is_empty() {
        s += &format!(", used name {}", i.used_name);
    }
    s
}

fn identities_table(list: &[&proto::LocalIdentity]) -> comfy_table::Table {
    let mut t = super::table();
    t.set_header(["identity", "status", "INS", "names", "born", "sex", "place", "document", "merged into"]);
    for i in list {
        t.add_row([
            format!("{}:{}", i.establishment_id, i.ipp),
            status_name(i.status),
            ins_text(i),
            names(i),
            i.birth_date.clone(),
            sex_name(i.sex).to_string(),
            i.birth_place_code.clone(),
            document_name(i.identity_document),
            i.merged_into_ipp.clone(),
        ]);
    }
    t
}

fn print_event(e: &proto::IdentityEvent) {
    println!(
        "{} {} by {} at {} — {} — territorial identity {}{} ({} changes){}",
        event_kind(e.kind),
        e.id,
        e.author,
        e.at,
        refs(&e.identities),
        e.territorial_id,
        if e.other_territorial_id.is_empty() { String::new() } else { format!(" (other: {})", e.other_territorial_id) },
        e.changes,
        if e.related_event_id.is_empty() { String::new() } else { format!(", related {}", e.related_event_id) },
    );
}

fn print_get(r: &proto::GetIdentityResponse) {
    if let Some(i) = &r.identity {
        println!("{}:{} — {} — {}", i.establishment_id, i.ipp, status_name(i.status), names(i));
        println!("updated {} (created {})", i.updated_at, i.created_at);
    }
    let Some(t) = &r.territorial else { return };
    print!("territorial identity {} (GHT {}, created {})", t.id, t.ght_id, t.created_at);
    if !t.merged_into.is_empty() {
        print!(" — retired into {}", t.merged_into);
    }
    println!();
    if !t.identities.is_empty() {
        println!("{}", identities_table(&t.identities.iter().collect::<Vec<_>>()));
    }
    if !t.events.is_empty() {
        let mut tab = super::table();
        tab.set_header(["event", "kind", "at", "author", "identities", "reason"]);
        for e in &t.events {
            tab.add_row([
                e.id.clone(),
                event_kind(e.kind),
                e.at.clone(),
                e.author.clone(),
                refs(&e.identities),
                e.reason.clone(),
            ]);
        }
        println!("{tab}");
    }
}

pub async fn run(cmd: IdentityCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let hub = HubClient::connect(connect).await?;
    let mut c = hub.identity();
    match cmd {
        IdentityCommand::Upsert { file, request_id: rid } => {
            let identity = read_identity_file(&file)?;
            let r = c
                .upsert_identity(proto::UpsertIdentityRequest { identity: Some(identity), request_id: request_id(rid) })
                .await
                .map_err(rpc)?
                .into_inner();
            let i = r.identity.unwrap_or_default();
            println!(
                "{} {}:{} — {} — territorial identity {}",
                if r.created { "created" } else { "updated" },
                i.establishment_id,
                i.ipp,
                status_name(i.status),
                i.territorial_id
            );
            if r.downgraded || !r.note.is_empty() {
                println!("note: {}", r.note);
            }
            if !r.auto_linked.is_empty() {
                println!("linked automatically with {} (same qualified INS and strict traits)", refs(&r.auto_linked));
            }
            if !r.alert_ids.is_empty() {
                println!(
                    "IDENTITY-VIGILANCE ALERT {}: this INS is carried by an identity with other strict traits \
                     (ghthub identity alerts)",
                    r.alert_ids.join(" ")
                );
            }
            if r.candidate_matches > 0 {
                println!("{} candidate match(es) to decide (ghthub identity candidates)", r.candidate_matches);
            }
            Ok(())
        }
        IdentityCommand::Get { local, territorial, json } => {
            use proto::get_identity_request::Key;
            let key = match (local, territorial) {
                (Some(l), _) => Key::Local(parse_ref(&l)?),
                (None, Some(t)) => Key::TerritorialId(t),
                (None, None) => bail!("give FINESS:IPP or --territorial"),
            };
            let r = c.get_identity(proto::GetIdentityRequest { key: Some(key) }).await.map_err(rpc)?.into_inner();
            if json {
                let v = json!({
                    "identity": r.identity.as_ref().map(identity_json),
                    "territorial": r.territorial.as_ref().map(|t| json!({
                        "id": t.id,
                        "ght_id": t.ght_id,
                        "merged_into": t.merged_into,
                        "created_at": t.created_at,
                        "identities": t.identities.iter().map(identity_json).collect::<Vec<_>>(),
                        "events": t.events.iter().map(event_json).collect::<Vec<_>>(),
                    })),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_get(&r);
            }
            Ok(())
        }
        IdentityCommand::Search {
            ins,
            oid,
            birth_name,
            first_given_name,
            birth_date,
            sex,
            birth_place,
            limit,
            json,
        } => {
            use proto::search_identities_request::Query;
            let query = match (ins, birth_name) {
                (Some(m), _) => Query::Ins(proto::InsIdentifier { matricule: m, oid }),
                (None, Some(name)) => {
                    let sex = match sex {
                        Some(s) => parse_sex(&s).with_context(|| format!("--sex: '{s}' is not M, F or I"))? as i32,
                        None => 0,
                    };
                    Query::Traits(proto::IdentityTraitsQuery {
                        birth_name: name,
                        first_given_name: first_given_name.unwrap_or_default(),
                        birth_date: birth_date.unwrap_or_default(),
                        sex,
                        birth_place_code: birth_place.unwrap_or_default(),
                    })
                }
                (None, None) => bail!("give --ins or --birth-name"),
            };
            let r = c
                .search_identities(proto::SearchIdentitiesRequest { query: Some(query), limit })
                .await
                .map_err(rpc)?
                .into_inner();
            if json {
                let hits: Vec<_> = r
                    .hits
                    .iter()
                    .map(|h| json!({"score": h.score, "identity": h.identity.as_ref().map(identity_json)}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&json!({"hits": hits, "truncated": r.truncated}))?);
                return Ok(());
            }
            let mut t = super::table();
            t.set_header(["score", "identity", "status", "INS", "names", "born", "sex", "place", "territorial"]);
            for h in &r.hits {
                let i = h.identity.clone().unwrap_or_default();
                t.add_row([
                    format!("{:.2}", h.score),
                    format!("{}:{}", i.establishment_id, i.ipp),
                    status_name(i.status),
                    ins_text(&i),
                    names(&i),
                    i.birth_date.clone(),
                    sex_name(i.sex).to_string(),
                    i.birth_place_code.clone(),
                    i.territorial_id.clone(),
                ]);
            }
            println!("{t}");
            if r.truncated {
                println!("more identities matched than --limit {limit}: refine the query");
            }
            Ok(())
        }
        IdentityCommand::Link { a, b, reason, request_id: rid } => {
            let e = c
                .link_identities(proto::LinkIdentitiesRequest {
                    a: Some(parse_ref(&a)?),
                    b: Some(parse_ref(&b)?),
                    reason,
                    request_id: request_id(rid),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_event(&e);
            Ok(())
        }
        IdentityCommand::Unlink { identity, reason, request_id: rid } => {
            let e = c
                .unlink_identity(proto::UnlinkIdentityRequest {
                    identity: Some(parse_ref(&identity)?),
                    reason,
                    request_id: request_id(rid),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_event(&e);
            Ok(())
        }
        IdentityCommand::Merge { surviving, merged, reason, request_id: rid } => {
            let e = c
                .merge_identities(proto::MergeIdentitiesRequest {
                    surviving: Some(parse_ref(&surviving)?),
                    merged: Some(parse_ref(&merged)?),
                    reason,
                    request_id: request_id(rid),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_event(&e);
            println!("undo with: ghthub identity unmerge {} --reason …", e.id);
            Ok(())
        }
        IdentityCommand::Unmerge { merge_event_id, reason, request_id: rid } => {
            let e = c
                .unmerge_identities(proto::UnmergeIdentitiesRequest {
                    merge_event_id,
                    reason,
                    request_id: request_id(rid),
                })
                .await
                .map_err(rpc)?
                .into_inner();
            print_event(&e);
            Ok(())
        }
        IdentityCommand::Candidates { all, establishment, limit, json } => {
            let r = c
                .list_candidate_matches(proto::ListCandidateMatchesRequest {
                    include_decided: all,
                    establishment_id: establishment.unwrap_or_default(),
                    limit,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            if json {
                let v: Vec<_> = r
                    .candidates
                    .iter()
                    .map(|m| {
                        json!({
                            "id": m.id,
                            "a": m.a.as_ref().map(show_ref),
                            "b": m.b.as_ref().map(show_ref),
                            "score": m.score,
                            "reasons": m.reasons,
                            "status": candidate_status(m.status),
                            "same_establishment": m.same_establishment,
                            "created_at": m.created_at,
                            "decided_by": m.decided_by,
                            "decided_at": m.decided_at,
                            "decision_reason": m.decision_reason,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let mut t = super::table();
            t.set_header(["candidate", "score", "a", "b", "kind", "status", "findings"]);
            for m in &r.candidates {
                let findings: Vec<&str> =
                    m.reasons.iter().map(String::as_str).filter(|r| !r.ends_with(": same")).collect();
                t.add_row([
                    m.id.clone(),
                    format!("{:.3}", m.score),
                    m.a.as_ref().map(show_ref).unwrap_or_default(),
                    m.b.as_ref().map(show_ref).unwrap_or_default(),
                    if m.same_establishment { "duplicate (merge)" } else { "other establishment (link)" }.to_string(),
                    candidate_status(m.status),
                    if findings.is_empty() { "all strict traits equal".to_string() } else { findings.join("\n") },
                ]);
            }
            println!("{t}");
            println!("{} candidates", r.candidates.len());
            Ok(())
        }
        IdentityCommand::RejectCandidate { candidate_id, reason } => {
            let m = c
                .reject_candidate_match(proto::RejectCandidateMatchRequest { candidate_id, reason })
                .await
                .map_err(rpc)?
                .into_inner();
            println!(
                "candidate {} ({} / {}) is now {} (by {} at {})",
                m.id,
                m.a.as_ref().map(show_ref).unwrap_or_default(),
                m.b.as_ref().map(show_ref).unwrap_or_default(),
                candidate_status(m.status),
                m.decided_by,
                m.decided_at
            );
            Ok(())
        }
        IdentityCommand::Alerts { establishment, limit, json } => {
            let r = c
                .list_vigilance_alerts(proto::ListVigilanceAlertsRequest {
                    establishment_id: establishment.unwrap_or_default(),
                    limit,
                })
                .await
                .map_err(rpc)?
                .into_inner();
            if json {
                let v: Vec<_> = r
                    .alerts
                    .iter()
                    .map(|a| {
                        json!({
                            "id": a.id,
                            "kind": proto::VigilanceAlertKind::try_from(a.kind)
                                .map(|k| k.as_str_name().trim_start_matches("VIGILANCE_ALERT_KIND_").to_string())
                                .unwrap_or_default(),
                            "ins": a.ins.as_ref().map(|x| json!({"matricule": x.matricule, "oid": x.oid})),
                            "identities": a.identities.iter().map(show_ref).collect::<Vec<_>>(),
                            "differing_traits": a.differing_traits,
                            "raised_at": a.raised_at,
                            "raised_by": a.raised_by,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let mut t = super::table();
            t.set_header(["alert", "raised", "by", "INS", "identities", "differing traits"]);
            for a in &r.alerts {
                t.add_row([
                    a.id.clone(),
                    a.raised_at.clone(),
                    a.raised_by.clone(),
                    a.ins.as_ref().map(|x| x.matricule.clone()).unwrap_or_default(),
                    refs(&a.identities),
                    a.differing_traits.join(", "),
                ]);
            }
            println!("{t}");
            println!("{} alerts", r.alerts.len());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_reads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/identity-ch-luneville.json");
        let i = read_identity_file(&p).unwrap();
        assert_eq!(i.status, proto::IdentityStatus::Qualifiee as i32);
        let ins = i.ins.clone().unwrap();
        // The example's INS has a valid key.
        crate::identity::ins::validate_ins(&ins.matricule, &ins.oid).unwrap();
        crate::identity::types::validate_identity("identity", &i, chrono::Utc::now().date_naive()).unwrap();
    }

    #[test]
    fn references_and_enums_parse() {
        let r = parse_ref("540099016:IPP:7").unwrap();
        assert_eq!((r.establishment_id.as_str(), r.ipp.as_str()), ("540099016", "IPP:7"));
        assert!(parse_ref("540099016").is_err());
        assert!(parse_ref(":x").is_err());
        assert_eq!(parse_status("qual"), Some(proto::IdentityStatus::Qualifiee));
        assert_eq!(parse_sex("f"), Some(proto::AdministrativeSex::Female));
        assert_eq!(parse_document("titre_sejour"), Some(proto::IdentityDocument::TitreSejour));
        assert_eq!(parse_document("UNSPECIFIED"), None);
    }
}
