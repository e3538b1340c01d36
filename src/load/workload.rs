//! The synthetic territory and the calls each kind of party makes.
//!
//! One GHT of `--streams` establishments. Before the clock starts every establishment
//! publishes its patients' identities (half of them shared with the other
//! establishments, so the territorial index links them), pushes its IS inventory, and the
//! GHT DSI declares two periods of convergence indicators. Then, for the duration:
//! - each establishment streams movements (admission, transfer, discharge) over one
//!   long-lived `PublishMovements` stream, keeping a window of events in flight;
//! - the DIM physician follows `SubscribeMovements` from the start;
//! - `--concurrency` workers make unary calls in the proportions of a working day:
//!   care teams reading and searching identities and séjours, identities updated, the
//!   GHT DSI reading inventories and the SDSI-T view, DSIs pushing inventories,
//!   scorecards read, and the ARS pulling its region's indicators incrementally.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use tokio::{sync::Mutex, time::Instant};

use super::{merge_into, Stats};
use crate::{
    access::{Principal, Role},
    auth::TokenIssuer,
    bench_proto::{echo_client::EchoClient, EchoMessage},
    cli::client::HubClient,
    identity::ins::{with_key, OID_TEST},
    inventory::document::{self, Format},
    proto::{self, EncounterClass, MovementTrigger},
};

/// FINESS-like ids of the synthetic territory (the 99 department does not exist).
pub const LOAD_GHT: &str = "990000010";
pub const LOAD_REGION: &str = "LD";
/// Identities published by each establishment before the run.
pub const PATIENTS: usize = 200;
/// Movements in flight on one publishing stream (sent, not yet acknowledged).
const STREAM_WINDOW: usize = 2048;

const INVENTORY: &[u8] = include_bytes!("../../examples/inventory-ch-luneville.yaml");
const BIRTH_NAMES: [&str; 12] = [
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT", "SIMON",
    "MICHEL",
];
const GIVEN_NAMES: [&str; 8] = ["MARIE", "JEAN", "NATHALIE", "PIERRE", "ISABELLE", "MICHEL", "CATHERINE", "PHILIPPE"];

pub fn establishment_id(i: usize) -> String {
    format!("9900001{:02}", i % 100)
}

/// One establishment of the synthetic territory.
pub struct Establishment {
    pub id: String,
    /// Its DSI (inventory pushes, scorecard).
    pub dsi: HubClient,
    /// A practitioner of its care team (identities and movements, published and read).
    pub practitioner: HubClient,
    /// The IPP → territorial id of its patients.
    pub patients: Vec<(String, String)>,
    /// Encounters fully published so far (their ids are `encounter_id(run, i, k)`).
    pub encounters_done: AtomicU64,
    /// Inventory pushes so far (each push changes the document, so makes a version).
    pub pushes: AtomicU64,
}

/// Clients of the synthetic parties: all on one shared HTTP/2 connection, or with
/// `--per-party-connections` each establishment's on a connection of its own and the
/// GHT DSI's, the DIM's and the ARS's each on theirs.
pub struct Env {
    pub ght_dsi: HubClient,
    pub dim: HubClient,
    pub ars: HubClient,
    pub establishments: Vec<Establishment>,
    /// Distinguishes this run's event and encounter ids from an earlier run's on the
    /// same hub (`--spawn false`).
    pub run: String,
    /// The inventory every establishment pushes (with a changing user count).
    pub inventory: proto::InventoryDocument,
    /// The ARS's incremental pull cursor.
    pub ars_cursor: AtomicI64,
    /// Unix time of this run's first movement: a day drawn between 1990 and 2020, so
    /// that runs on the same hub (`--spawn false`, a reused PostgreSQL) do not publish
    /// movements of the same patients at the same times, which IHE PAM refuses.
    pub epoch: i64,
}

/// The identity of patient `p` as establishment `i` knows it: even-numbered patients
/// are the same people in every establishment (same qualified INS and traits, linked
/// by the territorial index), odd ones are local.
fn identity(i: usize, est: &str, p: usize) -> proto::LocalIdentity {
    let person = if p % 2 == 0 { p } else { 100_000 * (i + 1) + p };
    let sex = 1 + person % 2;
    let (yy, mm) = (40 + person % 60, 1 + person % 12);
    let first13 = format!("{sex}{yy:02}{mm:02}54395{:03}", person % 1000);
    let ins = with_key(&first13).map(|matricule| proto::InsIdentifier { matricule, oid: OID_TEST.into() });
    proto::LocalIdentity {
        establishment_id: est.into(),
        ipp: format!("IPP{p:06}"),
        status: proto::IdentityStatus::Qualifiee as i32,
        ins,
        birth_name: BIRTH_NAMES[person % BIRTH_NAMES.len()].into(),
        first_given_name: GIVEN_NAMES[(person / 12) % GIVEN_NAMES.len()].into(),
        birth_date: format!("19{yy:02}-{mm:02}-{:02}", 1 + person % 28),
        sex: if sex == 1 { proto::AdministrativeSex::Male } else { proto::AdministrativeSex::Female } as i32,
        birth_place_code: "54395".into(),
        identity_document: proto::IdentityDocument::Cni as i32,
        ..Default::default()
    }
}

fn encounter_id(run: &str, k: u64) -> String {
    format!("S{run}-{k}")
}

/// Tolerates what an earlier run on the same hub already created.
fn created_or_exists<T>(r: Result<T, tonic::Status>) -> anyhow::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s.into()),
    }
}

impl Env {
    /// Party systems, each with a connection of its own unless they share one: the
    /// establishments, the GHT DSI, the DIM and the ARS.
    pub fn party_systems(&self) -> usize {
        self.establishments.len() + 3
    }

    /// `channel` carries the set-up (the registry's admin); `connector` opens the
    /// parties' connections.
    pub async fn prepare(
        channel: tonic::transport::Channel,
        connector: &super::Connector,
        signing_key: &Path,
        n: usize,
    ) -> anyhow::Result<Env> {
        let pem = std::fs::read(signing_key).with_context(|| format!("reading {}", signing_key.display()))?;
        let issuer = TokenIssuer::new(&pem, "dev", "ghthub-dev", "ghthub")?;
        let token = |role, sub: &str, ght: Option<&str>, est: Option<&str>, region: Option<&str>| {
            issuer.issue(
                &Principal {
                    subject: sub.into(),
                    role,
                    ght_id: ght.map(String::from),
                    establishment_id: est.map(String::from),
                    region: region.map(String::from),
                    expires_at: 0,
                },
                24 * 3600,
            )
        };
        let on = |ch: &tonic::transport::Channel, t: String| HubClient::from_channel(ch.clone(), Some(&t));
        let admin = on(&channel, token(Role::Admin, "load-admin", None, None, None)?)?;
        let mut reg = admin.registry();
        created_or_exists(
            reg.create_ght(proto::CreateGhtRequest {
                id: LOAD_GHT.into(),
                name: "GHT de charge".into(),
                ars_region: LOAD_REGION.into(),
                request_id: "load-ght".into(),
            })
            .await,
        )?;
        let mut inventory = document::parse(INVENTORY, Format::Yaml).context("the example inventory")?;
        if let Some(a) = inventory.applications.first_mut() {
            a.users_count = 1;
        }
        let mut establishments = vec![];
        for i in 0..n {
            let id = establishment_id(i);
            let role = if i == 0 { proto::EstablishmentRole::Support } else { proto::EstablishmentRole::Partie };
            created_or_exists(
                reg.create_establishment(proto::CreateEstablishmentRequest {
                    id: id.clone(),
                    ght_id: LOAD_GHT.into(),
                    name: format!("Établissement de charge {i}"),
                    role: role as i32,
                    category: proto::EstablishmentCategory::Ch as i32,
                    request_id: format!("load-est-{i}"),
                })
                .await,
            )?;
            let ch = connector.channel().await?;
            let dsi =
                on(&ch, token(Role::EstablishmentDsi, &format!("load-dsi-{i}"), Some(LOAD_GHT), Some(&id), None)?)?;
            let practitioner =
                on(&ch, token(Role::Practitioner, &format!("load-dr-{i}"), Some(LOAD_GHT), Some(&id), None)?)?;
            dsi.inventory()
                .push_inventory(proto::PushInventoryRequest {
                    establishment_id: id.clone(),
                    document: Some(inventory.clone()),
                    request_id: String::new(),
                })
                .await
                .with_context(|| format!("pushing the inventory of {id}"))?;
            let mut patients = Vec::with_capacity(PATIENTS);
            let mut ident = practitioner.identity();
            for p in 0..PATIENTS {
                let r = ident
                    .upsert_identity(proto::UpsertIdentityRequest {
                        identity: Some(identity(i, &id, p)),
                        request_id: String::new(),
                    })
                    .await
                    .with_context(|| format!("publishing identity {p} of {id}"))?
                    .into_inner();
                let t = r.identity.map(|l| l.territorial_id).unwrap_or_default();
                patients.push((format!("IPP{p:06}"), t));
            }
            establishments.push(Establishment {
                id,
                dsi,
                practitioner,
                patients,
                encounters_done: AtomicU64::new(0),
                pushes: AtomicU64::new(0),
            });
        }
        let ght_dsi =
            on(&connector.channel().await?, token(Role::GhtDsi, "load-ght-dsi", Some(LOAD_GHT), None, None)?)?;
        declare_indicators(&ght_dsi, n).await?;
        let now = crate::time::now_micros();
        let run = format!("{:x}", now % 0xffff_ffff);
        let day = (now as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let epoch = 631_152_000 + (day % 10_950) as i64 * 86_400;
        Ok(Env {
            ght_dsi,
            dim: on(&connector.channel().await?, token(Role::DimPhysician, "load-dim", Some(LOAD_GHT), None, None)?)?,
            ars: on(&connector.channel().await?, token(Role::Ars, "load-ars", None, None, Some(LOAD_REGION))?)?,
            establishments,
            run,
            inventory,
            ars_cursor: AtomicI64::new(0),
            epoch,
        })
    }
}

/// Two periods of the 18 convergence indicators, so the ARS has values to pull.
async fn declare_indicators(ght_dsi: &HubClient, parties: usize) -> anyhow::Result<()> {
    let mut ind = ght_dsi.indicators();
    let cat = ind
        .list_catalogue(proto::ListCatalogueRequest::default())
        .await?
        .into_inner()
        .catalogue
        .context("the hub sent no catalogue")?;
    for (i, period) in ["2024", "2025"].iter().enumerate() {
        for def in &cat.indicators {
            let kind = crate::indicators::demo::trajectory(&def.code, i + 2, parties, 0.0);
            ind.declare_value(proto::DeclareValueRequest {
                ght_id: LOAD_GHT.into(),
                indicator_code: def.code.clone(),
                period: period.to_string(),
                value: Some(proto::Value { kind: Some(kind) }),
                request_id: format!("load-ind-{}-{period}", def.code),
                ..Default::default()
            })
            .await
            .with_context(|| format!("declaring {} for {period}", def.code))?;
        }
    }
    Ok(())
}

fn record(stats: &mut Stats, name: &'static str, started: Instant, result: Result<(), String>, items: u64) {
    let s = stats.entry(name).or_default();
    match result {
        Ok(()) => {
            let _ = s.hist.record(started.elapsed().as_micros().max(1) as u64);
            s.items += items;
        }
        Err(e) => {
            s.errors += 1;
            s.first_error.get_or_insert(e);
        }
    }
}

fn outcome<T>(r: &Result<T, tonic::Status>) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// One unary (or short server-streamed) call of the mix, chosen by `slot` out of 100;
/// `n` varies the patient, encounter and document.
async fn mixed_call(env: &Env, worker: usize, slot: u64, n: u64, stats: &mut Stats) {
    let i = worker % env.establishments.len();
    let est = &env.establishments[i];
    let p = (n as usize * 7919 + worker) % PATIENTS;
    let started = Instant::now();
    match slot {
        0..=19 => {
            let r = est
                .practitioner
                .identity()
                .get_identity(proto::GetIdentityRequest {
                    key: Some(proto::get_identity_request::Key::Local(proto::LocalIdentityRef {
                        establishment_id: est.id.clone(),
                        ipp: est.patients[p].0.clone(),
                    })),
                })
                .await;
            record(stats, "Identity/GetIdentity", started, outcome(&r), 1);
        }
        20..=34 => {
            let id = identity(i, &est.id, p);
            let r = est
                .practitioner
                .identity()
                .search_identities(proto::SearchIdentitiesRequest {
                    query: Some(proto::search_identities_request::Query::Traits(proto::IdentityTraitsQuery {
                        birth_name: id.birth_name,
                        first_given_name: id.first_given_name,
                        birth_date: id.birth_date,
                        ..Default::default()
                    })),
                    limit: 10,
                })
                .await;
            record(stats, "Identity/SearchIdentities (traits)", started, outcome(&r), 1);
        }
        35..=39 => {
            let id = identity(i, &est.id, p);
            let r = env
                .dim
                .identity()
                .search_identities(proto::SearchIdentitiesRequest {
                    query: id.ins.map(proto::search_identities_request::Query::Ins),
                    limit: 10,
                })
                .await;
            record(stats, "Identity/SearchIdentities (INS, DIM)", started, outcome(&r), 1);
        }
        40..=47 => {
            // A used name added or removed: a real write (new row version, audit, no relink).
            let mut id = identity(i, &est.id, p);
            if n % 2 == 0 {
                id.used_name = "LOAD".into();
            }
            let r = est
                .practitioner
                .identity()
                .upsert_identity(proto::UpsertIdentityRequest { identity: Some(id), request_id: String::new() })
                .await;
            record(stats, "Identity/UpsertIdentity", started, outcome(&r), 1);
        }
        48..=57 => {
            let done = est.encounters_done.load(Ordering::Relaxed);
            if done == 0 {
                return;
            }
            let k = (n * 31) % done;
            let r = est
                .practitioner
                .movements()
                .get_encounter(proto::GetEncounterRequest {
                    establishment_id: est.id.clone(),
                    encounter_id: encounter_id(&env.run, k),
                })
                .await;
            record(stats, "Movements/GetEncounter", started, outcome(&r), 1);
        }
        58..=59 => {
            let r = env
                .dim
                .movements()
                .patient_journey(proto::PatientJourneyRequest { territorial_id: est.patients[p].1.clone() })
                .await;
            record(stats, "Movements/PatientJourney (DIM)", started, outcome(&r), 1);
        }
        60..=69 => {
            let r = est.practitioner.registry().who_am_i(proto::WhoAmIRequest {}).await;
            record(stats, "Registry/WhoAmI", started, outcome(&r), 1);
        }
        70..=74 => {
            let r = env
                .ght_dsi
                .inventory()
                .get_inventory(proto::GetInventoryRequest { establishment_id: est.id.clone(), version: 0 })
                .await;
            record(stats, "Inventory/GetInventory (GHT DSI)", started, outcome(&r), 1);
        }
        75..=77 => {
            let r = env.ars.territory().convergence_map(proto::ConvergenceMapRequest { ght_id: LOAD_GHT.into() }).await;
            record(stats, "Territory/ConvergenceMap (ARS)", started, outcome(&r), 1);
        }
        78..=79 => {
            let r = env
                .ght_dsi
                .territory()
                .consolidated_inventory(proto::ConsolidatedInventoryRequest { ght_id: LOAD_GHT.into() })
                .await;
            record(stats, "Territory/ConsolidatedInventory", started, outcome(&r), 1);
        }
        80..=87 => {
            let r = est
                .dsi
                .indicators()
                .get_ght_scorecard(proto::GetGhtScorecardRequest {
                    ght_id: LOAD_GHT.into(),
                    period: "2025".into(),
                    establishment_id: String::new(),
                })
                .await;
            record(stats, "Indicators/GetGhtScorecard", started, outcome(&r), 1);
        }
        88..=89 => {
            let mut doc = env.inventory.clone();
            let version = est.pushes.fetch_add(1, Ordering::Relaxed) + 2;
            if let Some(a) = doc.applications.first_mut() {
                a.users_count = version as u32;
            }
            let r = est
                .dsi
                .inventory()
                .push_inventory(proto::PushInventoryRequest {
                    establishment_id: est.id.clone(),
                    document: Some(doc),
                    request_id: String::new(),
                })
                .await;
            record(stats, "Inventory/PushInventory", started, outcome(&r), 1);
        }
        90..=94 => {
            let r = env
                .ght_dsi
                .registry()
                .list_establishments(proto::ListEstablishmentsRequest { ght_id: LOAD_GHT.into() })
                .await;
            record(stats, "Registry/ListEstablishments", started, outcome(&r), 1);
        }
        _ => {
            let since = env.ars_cursor.load(Ordering::Relaxed);
            let r = ars_pull(env, since).await;
            let result = match r {
                Ok((cursor, values)) => {
                    env.ars_cursor.fetch_max(cursor, Ordering::Relaxed);
                    let s = stats.entry("stream:Indicators/PullRegion (ARS)").or_default();
                    s.items += values;
                    Ok(())
                }
                Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
            };
            record(stats, "stream:Indicators/PullRegion (ARS)", started, result, 0);
        }
    }
}

/// An incremental region pull read to its end: (last cursor, values received).
async fn ars_pull(env: &Env, since: i64) -> Result<(i64, u64), tonic::Status> {
    let mut s =
        env.ars.indicators().pull_region(proto::PullRegionRequest { since, ..Default::default() }).await?.into_inner();
    let (mut cursor, mut values) = (since, 0u64);
    while let Some(m) = s.message().await? {
        cursor = cursor.max(m.cursor);
        values += m.values.len() as u64;
    }
    Ok((cursor, values))
}

/// The `j`-th movement of encounter `k` of establishment `est` (admission, transfer,
/// discharge), its patient cycling through the establishment's identities.
fn movement(env: &Env, est: &Establishment, k: u64, j: u64) -> proto::Movement {
    // A patient's stays are PATIENTS encounters apart and ten minutes apart, so the next
    // one starts after the last ended; a ten-second run spans hours, not months.
    let offset = (k / est.patients.len().max(1) as u64) * 600 + j * 60;
    let at = chrono::DateTime::from_timestamp(env.epoch + offset as i64, 0).unwrap_or_default();
    let (trigger, class, unit) = match j {
        0 => (MovementTrigger::A01Admit, EncounterClass::HospitalisationComplete as i32, "UF-MED"),
        1 => (MovementTrigger::A02Transfer, 0, "UF-CHIR"),
        _ => (MovementTrigger::A03Discharge, 0, ""),
    };
    proto::Movement {
        event_id: format!("E{}-{k}-{j}", env.run),
        establishment_id: est.id.clone(),
        ipp: est.patients[(k as usize) % est.patients.len()].0.clone(),
        encounter_id: encounter_id(&env.run, k),
        trigger: trigger as i32,
        event_time: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        medical_unit: unit.into(),
        encounter_class: class,
        ..Default::default()
    }
}

/// Establishment `i` streams movements until the deadline over one `PublishMovements`
/// stream; each event's latency runs from its send to its (durable) acknowledgement.
/// With `rate` > 0, event `n` is sent at `n / rate` seconds, not before.
async fn publish_stream(env: Arc<Env>, i: usize, deadline: Instant, rate: f64) -> Stats {
    let mut stats = Stats::new();
    let est = &env.establishments[i];
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::PublishMovementsRequest>(STREAM_WINDOW);
    let window = Arc::new(tokio::sync::Semaphore::new(STREAM_WINDOW));
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let producer = {
        let (env, window, sent) = (env.clone(), window.clone(), sent.clone());
        tokio::spawn(async move {
            let est = &env.establishments[i];
            let (mut k, mut n, start) = (0u64, 0u64, Instant::now());
            'run: while Instant::now() < deadline {
                for j in 0..3 {
                    if rate > 0.0 {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
                        n += 1;
                    }
                    let Ok(permit) = window.clone().acquire_owned().await else { break 'run };
                    permit.forget();
                    let m = movement(&env, est, k, j);
                    sent.lock().await.insert(m.event_id.clone(), Instant::now());
                    if tx.send(proto::PublishMovementsRequest { movement: Some(m) }).await.is_err() {
                        break 'run;
                    }
                }
                k += 1;
            }
        })
    };
    let acks = est.practitioner.movements().publish_movements(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    let mut acks = match acks {
        Ok(a) => a.into_inner(),
        Err(s) => {
            record(&mut stats, "stream:Movements/Publish", Instant::now(), outcome::<()>(&Err(s)), 0);
            producer.abort();
            return stats;
        }
    };
    loop {
        let ack = match acks.message().await {
            Ok(Some(a)) => a,
            _ => break,
        };
        window.add_permits(1);
        let started = sent.lock().await.remove(&ack.event_id);
        let ok = ack.status == proto::MovementAckStatus::Accepted as i32;
        let result = if ok { Ok(()) } else { Err(format!("{} (code {}): {}", ack.event_id, ack.code, ack.message)) };
        if ok && ack.event_id.ends_with("-2") {
            // The discharge acknowledged: the whole encounter can be read back.
            est.encounters_done.fetch_add(1, Ordering::Relaxed);
        }
        match started {
            Some(t) => record(&mut stats, "stream:Movements/Publish", t, result, 1),
            None => stats.entry("stream:Movements/Publish").or_default().errors += 1,
        }
        if producer.is_finished() && sent.lock().await.is_empty() {
            break;
        }
    }
    producer.abort();
    stats
}

/// The DIM physician follows every movement of the GHT from the start; the latency
/// recorded is the delivery lag (commit on the hub to receipt here).
async fn dim_subscriber(env: Arc<Env>, deadline: Instant) -> Stats {
    let mut stats = Stats::new();
    let name = "stream:Movements/Subscribe (DIM)";
    let stream = env
        .dim
        .movements()
        .subscribe_movements(proto::SubscribeMovementsRequest { since: 0, follow: true, ..Default::default() })
        .await;
    let mut stream = match stream {
        Ok(s) => s.into_inner(),
        Err(s) => {
            record(&mut stats, name, Instant::now(), outcome::<()>(&Err(s)), 0);
            return stats;
        }
    };
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        let Ok(Ok(Some(m))) = next else { break };
        let Some(mv) = m.movement else { continue };
        let s = stats.entry(name).or_default();
        s.items += 1;
        if let Ok(t) = crate::time::parse_rfc3339("recorded_at", &mv.recorded_at) {
            let lag = (crate::time::now_micros() - t).max(1) as u64;
            let _ = s.hist.record(lag);
        }
    }
    stats
}

fn progress_bar(duration: Duration, label: &str) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let progress = indicatif::ProgressBar::new(duration.as_secs());
    progress.set_style(
        indicatif::ProgressStyle::with_template(&format!("{{spinner}} {label} [{{bar:30}}] {{pos}}/{{len}} s"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.inc(1);
            }
        })
    };
    (progress, ticker)
}

pub async fn run_hub(env: Arc<Env>, args: &super::LoadArgs, duration: Duration) -> Stats {
    let deadline = Instant::now() + duration;
    let (progress, ticker) = progress_bar(duration, "hub load");
    let mixed = args.workload != "unary";
    let mut handles = vec![];
    if mixed {
        for i in 0..env.establishments.len() {
            handles.push(tokio::spawn(publish_stream(env.clone(), i, deadline, args.stream_rate)));
        }
        handles.push(tokio::spawn(dim_subscriber(env.clone(), deadline)));
    }
    for w in 0..args.concurrency.max(1) {
        let env = env.clone();
        handles.push(tokio::spawn(async move {
            let mut stats = Stats::new();
            let mut n = w as u64;
            while Instant::now() < deadline {
                let slot = if mixed {
                    // 37 is prime to 100: consecutive calls of a worker walk the whole mix.
                    (n * 37 + w as u64 * 13) % 100
                } else {
                    // Unary-only: the read calls of the mix (audit records are the only writes).
                    [0, 20, 60, 70, 80, 90][(n % 6) as usize]
                };
                mixed_call(&env, w, slot, n, &mut stats).await;
                n += 1;
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for h in handles {
        if let Ok(part) = h.await {
            merge_into(&mut total, part);
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    total
}

pub async fn run_echo(channels: &[tonic::transport::Channel], concurrency: usize, duration: Duration) -> Stats {
    let deadline = Instant::now() + duration;
    let (progress, ticker) = progress_bar(duration, "echo");
    let handles: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let mut client = EchoClient::new(channels[w % channels.len().max(1)].clone());
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let payload = vec![7u8; 64];
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let r = client.unary(EchoMessage { payload: payload.clone() }).await;
                    record(&mut stats, "Echo/Unary", started, outcome(&r), 1);
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for h in handles {
        if let Ok(part) = h.await {
            merge_into(&mut total, part);
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    total
}
