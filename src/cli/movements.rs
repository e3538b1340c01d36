//! `ghthub movements …`: publish a JSONL file of movements, follow the movement stream,
//! show an encounter or a patient's journey.
//!
//! # The JSON line format
//!
//! One movement per line (JSONL); blank lines are skipped. Field names are those of
//! `Movement` in `proto/ghthub/v1/movement.proto`, with readable values:
//!
//! ```json
//! {"event_id":"LUN-MV-0001","establishment_id":"540099016","ipp":"0160004211","encounter_id":"V25000871",
//!  "trigger":"A01","event_time":"2026-03-02T09:40:00+01:00","medical_unit":"UF2110","care_unit":"US2110",
//!  "class":"HOSPITALISATION_COMPLETE"}
//! ```
//!
//! - `trigger`: the HL7 v2 / IHE PAM France code (`A01` … `A53`, `Z80`, `Z81`, `Z99`);
//! - `class`: `HOSPITALISATION_COMPLETE`, `AMBULATOIRE`, `URGENCES`, `CONSULTATION_EXTERNE`
//!   or `HAD` (A01, A04, A05, A06, A07 only);
//! - `event_time`: RFC 3339 with its offset;
//! - optional: `care_unit`, `target_event_id` (cancellations, Z99), `origin_establishment_id`
//!   (admissions), `destination_establishment_id` (A03).
//!
//! `follow --json` prints the same format plus the hub's output fields (`position`,
//! `recorded_at`, `recorded_by`, `territorial_id`, `cancelled_by`): a publish ignores them,
//! so a followed stream can be published again elsewhere.

use std::{
    collections::BTreeMap,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{Authed, ConnectArgs, HubClient};
use crate::proto::{self, movements_client::MovementsClient};

/// From this many lines a publish shows a progress bar.
const LARGE_PUBLISH: usize = 2_000;
/// Movements in flight on a publish stream (the hub commits up to 4096 per batch).
const PUBLISH_WINDOW: usize = 8_192;
/// Waits before reconnecting a followed stream, doubling up to the last.
const RECONNECT_BACKOFF: [u64; 5] = [250, 500, 1_000, 2_000, 5_000];

impl HubClient {
    pub fn movements(&self) -> MovementsClient<Authed> {
        MovementsClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum MovementsCommand {
    /// Publish a JSONL file of movements (one per line; format: examples/movements-ch-luneville.jsonl).
    /// Resending a file is safe: movements already stored are acknowledged DUPLICATE.
    /// Exits non-zero if any line was refused.
    Publish {
        /// The JSONL file ("-" for standard input).
        file: PathBuf,
        /// Print every acknowledgement, not only the refused lines.
        #[arg(long)]
        verbose: bool,
    },
    /// Print the movements committed after a cursor, then (by default) new ones as they
    /// are committed; reconnects on its own, resuming from the last cursor. Ctrl-C stops.
    Follow {
        /// Start after this cursor (0 = from the beginning).
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// Only these establishments (repeatable).
        #[arg(long = "establishment")]
        establishments: Vec<String>,
        /// Stop once caught up instead of waiting for new movements.
        #[arg(long)]
        no_follow: bool,
        /// Print JSON lines (the publish format plus cursor and hub fields).
        #[arg(long)]
        json: bool,
    },
    /// One encounter (séjour): its state and its movement history.
    Encounter {
        /// Encounter id (visit number).
        encounter_id: String,
        /// The establishment (FINESS) of the encounter.
        #[arg(long)]
        establishment: String,
        #[arg(long)]
        json: bool,
    },
    /// A patient's encounters across the establishments you may see.
    Journey {
        /// Territorial identity (see `ghthub identity get`).
        territorial_id: String,
        /// Print each encounter's movements too.
        #[arg(long)]
        movements: bool,
        #[arg(long)]
        json: bool,
    },
}

fn rpc(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// A movement as a JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MovementLine {
    /// `follow --json` only: the cursor of this movement.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cursor: i64,
    pub event_id: String,
    pub establishment_id: String,
    pub ipp: String,
    pub encounter_id: String,
    /// IHE PAM code, e.g. "A01".
    pub trigger: String,
    /// RFC 3339.
    pub event_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub medical_unit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub care_unit: String,
    /// E.g. "HOSPITALISATION_COMPLETE".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_event_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin_establishment_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination_establishment_id: String,
    // Output fields of the hub (ignored by a publish).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub position: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recorded_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub territorial_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cancelled_by: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The proto trigger of an IHE PAM code ("A01", "Z99"; case-insensitive).
pub fn trigger_from_code(code: &str) -> Option<proto::MovementTrigger> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != 3 {
        return None;
    }
    (1..100)
        .filter_map(|n| proto::MovementTrigger::try_from(n).ok())
        .find(|t| t.as_str_name().get(17..20) == Some(code.as_str()))
}

/// The IHE PAM code of a proto trigger ("A01"), or its number if unknown.
pub fn trigger_code(t: i32) -> String {
    proto::MovementTrigger::try_from(t)
        .ok()
        .and_then(|t| t.as_str_name().get(17..20).map(String::from))
        .unwrap_or_else(|| t.to_string())
}

fn class_from_name(s: &str) -> Option<proto::EncounterClass> {
    let s = s.trim().to_ascii_uppercase();
    proto::EncounterClass::from_str_name(&format!("ENCOUNTER_CLASS_{s}"))
        .filter(|c| *c != proto::EncounterClass::Unspecified)
}

fn class_name(c: i32) -> String {
    match proto::EncounterClass::try_from(c) {
        Ok(proto::EncounterClass::Unspecified) => String::new(),
        Ok(c) => c.as_str_name().trim_start_matches("ENCOUNTER_CLASS_").to_string(),
        Err(_) => c.to_string(),
    }
}

fn encounter_status(s: i32) -> String {
    proto::EncounterStatus::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("ENCOUNTER_STATUS_").to_string())
        .unwrap_or_else(|_| s.to_string())
}

impl MovementLine {
    /// The movement to publish; the error names the field.
    pub fn to_proto(&self) -> anyhow::Result<proto::Movement> {
        let trigger = trigger_from_code(&self.trigger)
            .with_context(|| format!("trigger: unknown IHE PAM trigger '{}' (e.g. A01, A02, A03)", self.trigger))?;
        let encounter_class = match self.class.trim() {
            "" => 0,
            c => class_from_name(c).with_context(|| {
                format!(
                    "class: unknown '{c}' (HOSPITALISATION_COMPLETE, AMBULATOIRE, URGENCES, CONSULTATION_EXTERNE, HAD)"
                )
            })? as i32,
        };
        Ok(proto::Movement {
            event_id: self.event_id.clone(),
            establishment_id: self.establishment_id.clone(),
            ipp: self.ipp.clone(),
            encounter_id: self.encounter_id.clone(),
            trigger: trigger as i32,
            event_time: self.event_time.clone(),
            medical_unit: self.medical_unit.clone(),
            care_unit: self.care_unit.clone(),
            encounter_class,
            target_event_id: self.target_event_id.clone(),
            origin_establishment_id: self.origin_establishment_id.clone(),
            destination_establishment_id: self.destination_establishment_id.clone(),
            ..Default::default()
        })
    }

    pub fn from_proto(m: &proto::Movement, cursor: i64) -> MovementLine {
        MovementLine {
            cursor,
            event_id: m.event_id.clone(),
            establishment_id: m.establishment_id.clone(),
            ipp: m.ipp.clone(),
            encounter_id: m.encounter_id.clone(),
            trigger: trigger_code(m.trigger),
            event_time: m.event_time.clone(),
            medical_unit: m.medical_unit.clone(),
            care_unit: m.care_unit.clone(),
            class: class_name(m.encounter_class),
            target_event_id: m.target_event_id.clone(),
            origin_establishment_id: m.origin_establishment_id.clone(),
            destination_establishment_id: m.destination_establishment_id.clone(),
            position: m.position,
            recorded_at: m.recorded_at.clone(),
            recorded_by: m.recorded_by.clone(),
            territorial_id: m.territorial_id.clone(),
            cancelled_by: m.cancelled_by.clone(),
        }
    }
}

/// A line that was not stored: its number in the file, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub line: usize,
    pub event_id: String,
    /// The gRPC code of the hub's refusal, or "INVALID_LINE" for a line that was not sent.
    pub code: String,
    pub message: String,
}

/// What a publish did.
#[derive(Debug, Clone, Default)]
pub struct PublishSummary {
    /// Movements sent.
    pub sent: usize,
    pub accepted: usize,
    pub duplicate: usize,
    /// Refused by the hub, and lines that could not be read (not sent), by line number.
    pub refused: Vec<Refused>,
    /// Highest position acknowledged.
    pub last_position: i64,
}

impl PublishSummary {
    pub fn rejected(&self) -> usize {
        self.refused.len()
    }
}

/// Publishes a JSONL file (or any reader) over one PublishMovements stream; one ack per
/// movement, matched to its line. Lines that do not parse are reported, not sent.
pub async fn publish_reader<R: BufRead + Send + 'static>(
    hub: &HubClient,
    reader: R,
    mut on_ack: impl FnMut(usize, &proto::MovementAck),
) -> anyhow::Result<PublishSummary> {
    let (req_tx, req_rx) = tokio::sync::mpsc::channel::<proto::PublishMovementsRequest>(PUBLISH_WINDOW);
    let (slot_tx, mut slot_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    // Reading and parsing run on a blocking thread so a large file streams while acks
    // come back; the bounded channel keeps memory flat.
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Refused>> {
        let mut invalid = vec![];
        for (i, line) in reader.lines().enumerate() {
            let n = i + 1;
            let line = line.with_context(|| format!("reading line {n}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<MovementLine>(&line)
                .map_err(anyhow::Error::from)
                .and_then(|l| l.to_proto().map(|m| (l, m)));
            match parsed {
                Ok((_, m)) => {
                    if slot_tx.send(n).is_err()
                        || req_tx.blocking_send(proto::PublishMovementsRequest { movement: Some(m) }).is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let event_id = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v.get("event_id").and_then(|x| x.as_str()).map(String::from))
                        .unwrap_or_default();
                    invalid.push(Refused { line: n, event_id, code: "INVALID_LINE".into(), message: format!("{e:#}") });
                }
            }
        }
        Ok(invalid)
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(req_rx);
    let mut acks = hub.movements().publish_movements(stream).await.map_err(rpc)?.into_inner();
    let mut s = PublishSummary::default();
    loop {
        let ack = match acks.message().await {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(e) => {
                producer.abort();
                bail!(
                    "the stream broke after {} acknowledged movements ({}); publish the file again: \
                     movements already stored are acknowledged DUPLICATE",
                    s.accepted + s.duplicate + s.refused.len(),
                    rpc(e)
                );
            }
        };
        let Some(line) = slot_rx.recv().await else {
            bail!("the hub sent more acknowledgements than movements");
        };
        s.sent += 1;
        on_ack(line, &ack);
        match proto::MovementAckStatus::try_from(ack.status) {
            Ok(proto::MovementAckStatus::Accepted) => s.accepted += 1,
            Ok(proto::MovementAckStatus::Duplicate) => s.duplicate += 1,
            _ => s.refused.push(Refused {
                line,
                event_id: ack.event_id.clone(),
                code: format!("{:?}", tonic::Code::from(ack.code)),
                message: ack.message.clone(),
            }),
        }
        s.last_position = s.last_position.max(ack.position);
    }
    let invalid = producer.await.context("reading the file")??;
    if slot_rx.try_recv().is_ok() {
        bail!("the hub closed the stream before acknowledging every movement; publish the file again");
    }
    s.refused.extend(invalid);
    s.refused.sort_by_key(|r| r.line);
    Ok(s)
}

/// Publishes a JSONL file with a progress bar for large files.
pub async fn publish_file(hub: &HubClient, file: &Path, verbose: bool) -> anyhow::Result<PublishSummary> {
    let (reader, total): (Box<dyn BufRead + Send>, usize) = if file.as_os_str() == "-" {
        (Box::new(std::io::BufReader::new(std::io::stdin())), 0)
    } else {
        let count =
            std::io::BufReader::new(std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?)
                .lines()
                .count();
        (Box::new(std::io::BufReader::new(std::fs::File::open(file)?)), count)
    };
    let bar = if total >= LARGE_PUBLISH {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} lines {per_sec} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let r = publish_reader(hub, reader, |line, ack| {
        bar.set_position(line as u64);
        if verbose {
            let status = proto::MovementAckStatus::try_from(ack.status)
                .map(|s| s.as_str_name().trim_start_matches("MOVEMENT_ACK_STATUS_").to_string())
                .unwrap_or_default();
            bar.suspend(|| println!("line {line}: {} {status} position {}", ack.event_id, ack.position));
        }
    })
    .await;
    bar.finish_and_clear();
    r
}

fn print_summary(file: &Path, s: &PublishSummary) {
    let invalid = s.refused.iter().filter(|r| r.code == "INVALID_LINE").count();
    println!(
        "{}: {} sent — {} accepted, {} duplicate, {} rejected{}{}",
        file.display(),
        s.sent,
        s.accepted,
        s.duplicate,
        s.refused.len() - invalid,
        if invalid > 0 { format!(", {invalid} unreadable lines not sent") } else { String::new() },
        if s.last_position > 0 { format!(" (last position {})", s.last_position) } else { String::new() }
    );
    if s.refused.is_empty() {
        return;
    }
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &s.refused {
        *by_code.entry(&r.code).or_default() += 1;
    }
    let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("refused: {}", codes.join(", "));
    for r in &s.refused {
        let id = if r.event_id.is_empty() { String::new() } else { format!(" {}", r.event_id) };
        println!("  line {}{id}: {} {}", r.line, r.code, r.message);
    }
}

/// What `follow` asks for.
#[derive(Debug, Clone, Default)]
pub struct FollowArgs {
    pub since: i64,
    pub establishments: Vec<String>,
    /// Keep the stream open (false: stop once caught up).
    pub follow: bool,
    pub json: bool,
}

/// One movement as a line of text.
pub fn movement_text(m: &proto::Movement) -> String {
    let mut s = format!(
        "{:>8}  {}  {} {}  IPP {}  enc {}",
        m.position,
        m.event_time,
        m.establishment_id,
        trigger_code(m.trigger),
        m.ipp,
        m.encounter_id
    );
    let class = class_name(m.encounter_class);
    if !class.is_empty() {
        s += &format!("  {class}");
    }
    if !m.medical_unit.is_empty() || !m.care_unit.is_empty() {
        s += &format!("  UF {}", m.medical_unit);
        if !m.care_unit.is_empty() {
            s += &format!("/{}", m.care_unit);
        }
    }
    if !m.target_event_id.is_empty() {
        s += &format!("  → {}", m.target_event_id);
    }
    if !m.origin_establishment_id.is_empty() {
        s += &format!("  from {}", m.origin_establishment_id);
    }
    if !m.destination_establishment_id.is_empty() {
        s += &format!("  to {}", m.destination_establishment_id);
    }
    s += &format!("  [{}] {}", m.event_id, m.territorial_id);
    s
}

/// Streams movements after `args.since` to `out` until caught up (or, following, until
/// `stop` completes); reconnects on UNAVAILABLE from the last cursor received. Returns
/// the last cursor and the number of movements written.
pub async fn follow<W: Write>(
    hub: &HubClient,
    args: &FollowArgs,
    out: &mut W,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<(i64, usize)> {
    tokio::pin!(stop);
    let mut cursor = args.since;
    let mut written = 0usize;
    let mut failures = 0usize;
    loop {
        let req = proto::SubscribeMovementsRequest {
            since: cursor,
            establishment_ids: args.establishments.clone(),
            follow: args.follow,
        };
        let mut client = hub.movements();
        let opened = tokio::select! {
            r = client.subscribe_movements(req) => r,
            _ = &mut stop => return Ok((cursor, written)),
        };
        let result = match opened {
            Ok(r) => {
                let mut stream = r.into_inner();
                loop {
                    let next = tokio::select! {
                        m = stream.message() => m,
                        _ = &mut stop => return Ok((cursor, written)),
                    };
                    match next {
                        Ok(Some(item)) => {
                            failures = 0;
                            if let Some(m) = &item.movement {
                                if args.json {
                                    serde_json::to_writer(&mut *out, &MovementLine::from_proto(m, item.cursor))?;
                                    writeln!(out)?;
                                } else {
                                    writeln!(out, "{}", movement_text(m))?;
                                }
                                out.flush()?;
                                written += 1;
                            }
                            cursor = item.cursor;
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) if !args.follow => return Ok((cursor, written)),
            // A following stream that ends was closed by the hub (a drain): resume.
            Ok(()) => {}
            Err(e) if matches!(e.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) => {
                let wait = RECONNECT_BACKOFF[failures.min(RECONNECT_BACKOFF.len() - 1)];
                failures += 1;
                eprintln!("stream interrupted ({}): reconnecting from cursor {cursor}", e.message());
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = &mut stop => return Ok((cursor, written)),
                }
            }
            Err(e) => return Err(rpc(e).context(format!("at cursor {cursor}"))),
        }
    }
}

fn encounter_json(e: &proto::Encounter) -> serde_json::Value {
    json!({
        "establishment_id": e.establishment_id,
        "encounter_id": e.encounter_id,
        "ipp": e.ipp,
        "territorial_id": e.territorial_id,
        "status": encounter_status(e.status),
        "class": class_name(e.encounter_class),
        "medical_unit": e.medical_unit,
        "care_unit": e.care_unit,
        "admitted_at": e.admitted_at,
        "discharged_at": e.discharged_at,
        "origin_establishment_id": e.origin_establishment_id,
        "destination_establishment_id": e.destination_establishment_id,
        "anomalies": e.anomalies,
        "movements": e.movements.iter().map(|m| MovementLine::from_proto(m, 0)).collect::<Vec<_>>(),
    })
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "—".into()
    } else {
        s.to_string()
    }
}

fn print_encounter(e: &proto::Encounter) {
    println!(
        "encounter {} of {} — IPP {} — patient {}\n{} {} — UF {}{}",
        e.encounter_id,
        e.establishment_id,
        e.ipp,
        e.territorial_id,
        encounter_status(e.status),
        class_name(e.encounter_class),
        or_dash(&e.medical_unit),
        if e.care_unit.is_empty() { String::new() } else { format!(" / {}", e.care_unit) },
    );
    println!(
        "admitted {}{} — discharged {}{}",
        or_dash(&e.admitted_at),
        if e.origin_establishment_id.is_empty() {
            String::new()
        } else {
            format!(" from {}", e.origin_establishment_id)
        },
        or_dash(&e.discharged_at),
        if e.destination_establishment_id.is_empty() {
            String::new()
        } else {
            format!(" to {}", e.destination_establishment_id)
        },
    );
    for a in &e.anomalies {
        println!("anomaly: {a}");
    }
    print_history(&e.movements);
}

fn print_history(movements: &[proto::Movement]) {
    let mut t = super::table();
    t.set_header(["event time", "trigger", "event id", "class", "UF médicale", "UF soins", "refers to", "note"]);
    for m in movements {
        let mut note = vec![];
        if !m.cancelled_by.is_empty() {
            note.push(format!("cancelled by {}", m.cancelled_by));
        }
        if !m.origin_establishment_id.is_empty() {
            note.push(format!("from {}", m.origin_establishment_id));
        }
        if !m.destination_establishment_id.is_empty() {
            note.push(format!("to {}", m.destination_establishment_id));
        }
        t.add_row([
            m.event_time.clone(),
            trigger_code(m.trigger),
            m.event_id.clone(),
            class_name(m.encounter_class),
            m.medical_unit.clone(),
            m.care_unit.clone(),
            m.target_event_id.clone(),
            note.join(", "),
        ]);
    }
    println!("{t}");
}

pub async fn run(cmd: MovementsCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let hub = HubClient::connect(connect).await?;
    match cmd {
        MovementsCommand::Publish { file, verbose } => {
            let s = publish_file(&hub, &file, verbose).await?;
            print_summary(&file, &s);
            if !s.refused.is_empty() {
                bail!("{} of the file's movements were not stored", s.refused.len());
            }
            Ok(())
        }
        MovementsCommand::Follow { since, establishments, no_follow, json } => {
            let args = FollowArgs { since, establishments, follow: !no_follow, json };
            let mut out = std::io::LineWriter::new(std::io::stdout().lock());
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            match follow(&hub, &args, &mut out, stop).await {
                Ok((cursor, n)) => {
                    eprintln!("{n} movements; last cursor {cursor} (resume with --since {cursor})");
                    Ok(())
                }
                // `| head` closing the pipe ends the command quietly.
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        MovementsCommand::Encounter { encounter_id, establishment, json } => {
            let e = hub
                .movements()
                .get_encounter(proto::GetEncounterRequest { establishment_id: establishment, encounter_id })
                .await
                .map_err(rpc)?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&encounter_json(&e))?);
            } else {
                print_encounter(&e);
            }
            Ok(())
        }
        MovementsCommand::Journey { territorial_id, movements, json } => {
            let j = hub
                .movements()
                .patient_journey(proto::PatientJourneyRequest { territorial_id })
                .await
                .map_err(rpc)?
                .into_inner();
            if json {
                let v = json!({
                    "territorial_id": j.territorial_id,
                    "encounters": j.encounters.iter().map(encounter_json).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("patient {} — {} encounters you may see", j.territorial_id, j.encounters.len());
            let mut t = super::table();
            t.set_header([
                "establishment",
                "encounter",
                "IPP",
                "class",
                "status",
                "admitted",
                "discharged",
                "UF",
                "from / to",
            ]);
            for e in &j.encounters {
                let route = match (e.origin_establishment_id.as_str(), e.destination_establishment_id.as_str()) {
                    ("", "") => String::new(),
                    (o, "") => format!("from {o}"),
                    ("", d) => format!("to {d}"),
                    (o, d) => format!("from {o} to {d}"),
                };
                t.add_row([
                    e.establishment_id.clone(),
                    e.encounter_id.clone(),
                    e.ipp.clone(),
                    class_name(e.encounter_class),
                    encounter_status(e.status),
                    e.admitted_at.clone(),
                    e.discharged_at.clone(),
                    e.medical_unit.clone(),
                    route,
                ]);
            }
            println!("{t}");
            if movements {
                for e in &j.encounters {
                    println!("\n{} {}:", e.establishment_id, e.encounter_id);
                    print_history(&e.movements);
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_round_trip_by_code() {
        for code in
            ["A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A13", "A21", "A22", "A53", "Z80", "Z99"]
        {
            let t = trigger_from_code(code).unwrap();
            assert_eq!(trigger_code(t as i32), code);
        }
        assert_eq!(trigger_from_code("a02"), Some(proto::MovementTrigger::A02Transfer));
        assert!(trigger_from_code("A99").is_none());
        assert!(trigger_from_code("ADMIT").is_none());
    }

    #[test]
    fn a_line_maps_to_the_proto_and_back() {
        let line = r#"{"event_id":"E1","establishment_id":"540099016","ipp":"1","encounter_id":"V1","trigger":"A01",
            "event_time":"2026-03-02T09:40:00+01:00","medical_unit":"UF2110","class":"hospitalisation_complete"}"#
            .replace('\n', "");
        let l: MovementLine = serde_json::from_str(&line).unwrap();
        let m = l.to_proto().unwrap();
        assert_eq!(m.trigger, proto::MovementTrigger::A01Admit as i32);
        assert_eq!(m.encounter_class, proto::EncounterClass::HospitalisationComplete as i32);
        let back = MovementLine::from_proto(&m, 0);
        assert_eq!(back.class, "HOSPITALISATION_COMPLETE");
        assert_eq!(back.trigger, "A01");
        // Unknown fields are typos, not silently dropped.
        let e = serde_json::from_str::<MovementLine>(r#"{"event_id":"E1","establishment":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("establishment"), "{e}");
        let mut bad = l.clone();
        bad.class = "HOSPIT".into();
        assert!(bad.to_proto().unwrap_err().to_string().starts_with("class:"));
    }
}
