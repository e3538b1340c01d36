//! `ghthub indicators …`: catalogue, declare, submit, review, scorecard, history, the
//! ARS region pull (CSV/JSON) and the trajectory chart.

use std::{io::Write, path::PathBuf};

use anyhow::{bail, Context};
use futures::StreamExt;

use super::client::{Authed, ConnectArgs, HubClient};
use crate::{
    indicators::{catalogue, chart, values::Val},
    proto::{self, indicators_client::IndicatorsClient},
};

impl HubClient {
    pub fn indicators(&self) -> IndicatorsClient<Authed> {
        // A region pull streams batches of up to 5,000 values.
        IndicatorsClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    Validate,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullFormat {
    Csv,
    Json,
}

#[derive(clap::Subcommand, Debug)]
pub enum IndicatorsCommand {
    /// Show a catalogue: the convergence indicators (default) or the HN prerequisites.
    Catalogue {
        /// Catalogue id: ght-convergence or hn-prerequisites.
        #[arg(long, default_value = catalogue::GHT_CONVERGENCE)]
        catalogue: String,
        /// A stored version (default: the current one).
        #[arg(long)]
        version: Option<String>,
        /// List the stored versions instead of the indicators.
        #[arg(long)]
        versions: bool,
    },
    /// Load a catalogue file (YAML, format of referentials/*.yaml) as a new version (ADMIN).
    LoadCatalogue {
        /// The catalogue file.
        file: PathBuf,
    },
    /// Declare a value (DRAFT) for a GHT — or, with --establishment, an HN prerequisite.
    Declare {
        #[arg(long)]
        ght: String,
        /// Establishment (HN prerequisites only).
        #[arg(long)]
        establishment: Option<String>,
        /// Indicator code, e.g. CONV-1.2 or P1.1.
        #[arg(long)]
        code: String,
        /// 2026, 2026-S1 or 2026-S2.
        #[arg(long)]
        period: String,
        /// The value: true/false, a percentage (87.5), a count, a date (YYYY-MM-DD) or a stage (IN_PROGRESS).
        #[arg(long)]
        value: String,
        /// What supports the value.
        #[arg(long, default_value = "")]
        evidence: String,
        /// Evidence reference (document id, URL, minutes).
        #[arg(long, default_value = "")]
        evidence_ref: String,
    },
    /// Submit a period's DRAFT values to the ARS.
    Submit {
        #[arg(long)]
        ght: String,
        /// Submit this establishment's HN prerequisites instead of the GHT's indicators.
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        period: String,
    },
    /// Validate or reject a submitted value (ARS), by --id or by --ght/--code/--period.
    Review {
        /// Value revision id (from `pull` or `history`).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        ght: Option<String>,
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        period: Option<String>,
        #[arg(long, value_enum)]
        decision: Decision,
        /// Required to reject.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// A GHT's scorecard for a period (or an establishment's HN prerequisites).
    Scorecard {
        #[arg(long)]
        ght: String,
        /// Default: the latest period with a value.
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        establishment: Option<String>,
    },
    /// Every revision and workflow step of one value.
    History {
        #[arg(long)]
        ght: String,
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        code: String,
        #[arg(long)]
        period: String,
    },
    /// ARS: pull every value of the region's GHTs (CSV or JSON); --since for the changes after a cursor.
    Pull {
        /// ARS region (default: the token's).
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        period: Option<String>,
        /// Domain 1–5.
        #[arg(long)]
        domain: Option<u32>,
        /// DRAFT, SUBMITTED, VALIDATED or REJECTED.
        #[arg(long)]
        status: Option<String>,
        /// ght-convergence or hn-prerequisites (default: both).
        #[arg(long)]
        catalogue: Option<String>,
        /// Cursor printed by the previous pull: only the changes after it.
        #[arg(long, default_value_t = 0)]
        since: i64,
        #[arg(long, value_enum, default_value_t = PullFormat::Csv)]
        format: PullFormat,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An SVG chart of a GHT's trajectory per domain over the periods.
    Chart {
        #[arg(long)]
        ght: String,
        /// Last period drawn (default: the latest with a value).
        #[arg(long)]
        period: Option<String>,
        /// Chart an establishment's HN prerequisites instead.
        #[arg(long)]
        establishment: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

/// A value as a person reads it.
pub fn show_value(v: Option<&proto::Value>) -> String {
    use proto::value::Kind;
    match v.and_then(|v| v.kind.as_ref()) {
        Some(Kind::Boolean(true)) => "yes".into(),
        Some(Kind::Boolean(false)) => "no".into(),
        Some(Kind::Percent(p)) => format!("{p} %"),
        Some(Kind::Count(c)) => c.to_string(),
        Some(Kind::Date(d)) => d.clone(),
        Some(Kind::Status(s)) => s.clone(),
        None => "—".into(),
    }
}

fn status_name(s: i32) -> String {
    proto::ValueStatus::try_from(s)
        .map(|s| s.as_str_name().trim_start_matches("VALUE_STATUS_").to_string())
        .unwrap_or_else(|_| "?".into())
}

fn trend_arrow(t: i32) -> &'static str {
    match proto::Trend::try_from(t) {
        Ok(proto::Trend::Up) => "↗",
        Ok(proto::Trend::Down) => "↘",
        Ok(proto::Trend::Stable) => "→",
        _ => "",
    }
}

fn reached(t: i32) -> &'static str {
    match proto::TargetReached::try_from(t) {
        Ok(proto::TargetReached::Yes) => "yes",
        Ok(proto::TargetReached::No) => "no",
        _ => "?",
    }
}

/// One row of a region pull, as exported.
#[derive(serde::Serialize)]
struct PullRow<'a> {
    ght_id: &'a str,
    establishment_id: &'a str,
    catalogue: &'a str,
    catalogue_version: &'a str,
    indicator_code: &'a str,
    domain: u32,
    period: &'a str,
    revision: u32,
    value: &'a str,
    status: String,
    evidence_note: &'a str,
    evidence_ref: &'a str,
    declared_by: &'a str,
    declared_at: &'a str,
    submitted_by: &'a str,
    submitted_at: &'a str,
    reviewed_by: &'a str,
    reviewed_at: &'a str,
    review_comment: &'a str,
    updated_at: &'a str,
    change_seq: i64,
    id: &'a str,
}

impl<'a> PullRow<'a> {
    fn of(v: &'a proto::IndicatorValue) -> PullRow<'a> {
        PullRow {
            ght_id: &v.ght_id,
            establishment_id: &v.establishment_id,
            catalogue: &v.catalogue,
            catalogue_version: &v.catalogue_version,
            indicator_code: &v.indicator_code,
            domain: v.domain,
            period: &v.period,
            revision: v.revision,
            value: &v.value_text,
            status: status_name(v.status),
            evidence_note: &v.evidence_note,
            evidence_ref: &v.evidence_ref,
            declared_by: &v.declared_by,
            declared_at: &v.declared_at,
            submitted_by: &v.submitted_by,
            submitted_at: &v.submitted_at,
            reviewed_by: &v.reviewed_by,
            reviewed_at: &v.reviewed_at,
            review_comment: &v.review_comment,
            updated_at: &v.updated_at,
            change_seq: v.change_seq,
            id: &v.id,
        }
    }
}

/// A table that wraps to the terminal (160 columns when there is none).
fn table() -> comfy_table::Table {
    let mut t = super::table();
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if t.width().is_none() {
        t.set_width(160);
    }
    t
}

/// Output cut short by the reader (`| head`) is not an error.
fn quiet_broken_pipe(r: anyhow::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        Err(e)
            if e.downcast_ref::<csv::Error>().is_some_and(
                |c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe),
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn opt(s: Option<String>) -> String {
    s.unwrap_or_default()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn print_value(v: &proto::IndicatorValue) {
    let whose =
        if v.establishment_id.is_empty() { String::new() } else { format!(" establishment {}", v.establishment_id) };
    println!(
        "{} GHT {}{whose} {} = {} — {} (revision {}, catalogue {} {})",
        v.indicator_code,
        v.ght_id,
        v.period,
        show_value(v.value.as_ref()),
        status_name(v.status),
        v.revision,
        v.catalogue,
        v.catalogue_version
    );
    if !v.review_comment.is_empty() {
        println!("  ARS comment ({}): {}", v.reviewed_by, v.review_comment);
    }
}

pub async fn run(cmd: IndicatorsCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    let hub = HubClient::connect(connect).await?;
    let mut c = hub.indicators();
    match cmd {
        IndicatorsCommand::Catalogue { catalogue, version, versions } => {
            let r =
                c.list_catalogue(proto::ListCatalogueRequest { catalogue, version: opt(version) }).await?.into_inner();
            let cat = r.catalogue.context("the hub sent no catalogue")?;
            if versions {
                let mut t = table();
                t.set_header(["version", "current", "indicators", "loaded", "by", "sha256"]);
                for v in r.versions {
                    t.add_row([
                        v.version,
                        if v.current { "yes".into() } else { String::new() },
                        v.indicators.to_string(),
                        v.loaded_at,
                        v.loaded_by,
                        v.sha256.chars().take(12).collect(),
                    ]);
                }
                println!("{t}");
                return Ok(());
            }
            println!(
                "{} — {} (version {}, loaded {} by {})",
                cat.id, cat.title_fr, cat.version, cat.loaded_at, cat.loaded_by
            );
            let mut t = table();
            t.set_header(["code", "domain", "indicator", "type", "obtained", "target", "provisional"]);
            for d in &cat.indicators {
                let ty = proto::ValueType::try_from(d.value_type)
                    .map(|t| t.as_str_name().trim_start_matches("VALUE_TYPE_").to_string())
                    .unwrap_or_default();
                let ty =
                    if d.allowed_values.is_empty() { ty } else { format!("{ty} ({})", d.allowed_values.join(" → ")) };
                let obtained =
                    if d.formula.is_empty() { "declared".to_string() } else { format!("computed: {}", d.formula) };
                t.add_row([
                    d.code.clone(),
                    d.domain.to_string(),
                    format!("{}\n{}", d.label_fr, d.label_en),
                    ty,
                    obtained,
                    show_value(d.target.as_ref()),
                    if d.provisional { "yes".into() } else { "no".into() },
                ]);
            }
            println!("{t}");
            for d in &cat.domains {
                println!("domain {}: {} / {}", d.number, d.label_fr, d.label_en);
            }
        }
        IndicatorsCommand::LoadCatalogue { file } => {
            let yaml = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let r = c.load_catalogue(proto::LoadCatalogueRequest { yaml }).await?.into_inner();
            if r.already_loaded {
                println!("{} version {} was already loaded with this content: nothing changed", r.catalogue, r.version);
            } else {
                println!("loaded {} version {} ({} indicators), now current", r.catalogue, r.version, r.indicators);
            }
        }
        IndicatorsCommand::Declare { ght, establishment, code, period, value, evidence, evidence_ref } => {
            let id = if establishment.is_some() { catalogue::HN_PREREQUISITES } else { catalogue::GHT_CONVERGENCE };
            let cat = c
                .list_catalogue(proto::ListCatalogueRequest { catalogue: id.into(), version: String::new() })
                .await?
                .into_inner()
                .catalogue
                .context("the hub sent no catalogue")?;
            let Some(def) = cat.indicators.iter().find(|d| d.code == code) else {
                let codes: Vec<&str> = cat.indicators.iter().map(|d| d.code.as_str()).collect();
                bail!("{code} is not in catalogue {id} (codes: {})", codes.join(", "));
            };
            let ty = proto::ValueType::try_from(def.value_type)
                .ok()
                .and_then(|t| catalogue::ValueType::parse(t.as_str_name().trim_start_matches("VALUE_TYPE_")))
                .context("the catalogue entry has no value type")?;
            let parsed = Val::parse_text(ty, &value).map_err(|e| anyhow::anyhow!("{code}: {e}"))?;
            let v = c
                .declare_value(proto::DeclareValueRequest {
                    ght_id: ght,
                    establishment_id: opt(establishment),
                    indicator_code: code,
                    period,
                    value: Some(parsed.to_proto()),
                    evidence_note: evidence,
                    evidence_ref,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            print_value(&v);
        }
        IndicatorsCommand::Submit { ght, establishment, period } => {
            let r = c
                .submit_period(proto::SubmitPeriodRequest {
                    ght_id: ght,
                    establishment_id: opt(establishment),
                    period,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            println!("submitted {} values to the ARS", r.submitted);
            for v in &r.values {
                print_value(v);
            }
        }
        IndicatorsCommand::Review { id, ght, establishment, code, period, decision, comment } => {
            let v = c
                .review_value(proto::ReviewValueRequest {
                    value_id: opt(id),
                    ght_id: opt(ght),
                    establishment_id: opt(establishment),
                    indicator_code: opt(code),
                    period: opt(period),
                    decision: match decision {
                        Decision::Validate => proto::ReviewDecision::Validate,
                        Decision::Reject => proto::ReviewDecision::Reject,
                    } as i32,
                    comment,
                    request_id: request_id(),
                })
                .await?
                .into_inner();
            print_value(&v);
        }
        IndicatorsCommand::Scorecard { ght, period, establishment } => {
            let card = c
                .get_ght_scorecard(proto::GetGhtScorecardRequest {
                    ght_id: ght,
                    period: opt(period),
                    establishment_id: opt(establishment),
                })
                .await?
                .into_inner();
            print_scorecard(&card);
        }
        IndicatorsCommand::History { ght, establishment, code, period } => {
            let h = c
                .history(proto::HistoryRequest {
                    ght_id: ght,
                    establishment_id: opt(establishment),
                    indicator_code: code,
                    period,
                })
                .await?
                .into_inner();
            let mut t = table();
            t.set_header(["#", "rev", "step", "status", "value", "evidence", "by", "at", "comment"]);
            for e in h.events {
                let evidence = [e.evidence_note.as_str(), e.evidence_ref.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" — ");
                t.add_row([
                    e.change_seq.to_string(),
                    e.revision.to_string(),
                    e.action,
                    status_name(e.status),
                    show_value(e.value.as_ref()),
                    evidence,
                    format!("{} ({})", e.actor, e.actor_role),
                    e.at,
                    e.comment,
                ]);
            }
            println!("{t}");
        }
        IndicatorsCommand::Pull { region, period, domain, status, catalogue, since, format, out } => {
            let status = match status {
                None => 0,
                Some(s) => {
                    proto::ValueStatus::from_str_name(&format!("VALUE_STATUS_{}", s.trim().to_ascii_uppercase()))
                        .with_context(|| format!("unknown status {s} (DRAFT, SUBMITTED, VALIDATED or REJECTED)"))?
                        as i32
                }
            };
            let req = proto::PullRegionRequest {
                ars_region: opt(region),
                period: opt(period),
                domain: domain.unwrap_or(0),
                status,
                catalogue: opt(catalogue),
                since,
                batch_size: 0,
            };
            quiet_broken_pipe(pull(&mut c, req, format, out).await)?;
        }
        IndicatorsCommand::Chart { ght, period, establishment, out } => {
            let card = c
                .get_ght_scorecard(proto::GetGhtScorecardRequest {
                    ght_id: ght,
                    period: opt(period),
                    establishment_id: opt(establishment),
                })
                .await?
                .into_inner();
            let svg = chart::render_svg(&card)?;
            std::fs::write(&out, svg).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({} periods up to {})", out.display(), chart::trajectories(&card).0.len(), card.period);
        }
    }
    Ok(())
}

/// The columns of a pull export, in order (the fields of [`PullRow`]).
const PULL_COLUMNS: [&str; 22] = [
    "ght_id",
    "establishment_id",
    "catalogue",
    "catalogue_version",
    "indicator_code",
    "domain",
    "period",
    "revision",
    "value",
    "status",
    "evidence_note",
    "evidence_ref",
    "declared_by",
    "declared_at",
    "submitted_by",
    "submitted_at",
    "reviewed_by",
    "reviewed_at",
    "review_comment",
    "updated_at",
    "change_seq",
    "id",
];

/// Streams a region pull to a file or standard output as CSV or JSON, as it arrives;
/// prints the cursor for the next pull on standard error.
async fn pull(
    c: &mut IndicatorsClient<Authed>,
    req: proto::PullRegionRequest,
    format: PullFormat,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let since = req.since;
    let mut stream = c.pull_region(req).await?.into_inner();
    let sink: Box<dyn Write> = match &out {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::new(sink);
    let (mut count, mut cursor) = (0usize, since);
    match format {
        PullFormat::Csv => {
            // The header is written even for an empty pull, so a spreadsheet still opens it.
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(&mut sink);
            w.write_record(PULL_COLUMNS)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                for v in &batch.values {
                    w.serialize(PullRow::of(v))?;
                }
                count += batch.values.len();
                cursor = batch.cursor;
            }
            w.flush()?;
        }
        PullFormat::Json => {
            // {"values": [...], "cursor": N}, written as the batches arrive.
            write!(sink, "{{\"values\":[")?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                for v in &batch.values {
                    if count > 0 {
                        write!(sink, ",")?;
                    }
                    serde_json::to_writer(&mut sink, &PullRow::of(v))?;
                    count += 1;
                }
                cursor = batch.cursor;
            }
            writeln!(sink, "],\"cursor\":{cursor}}}")?;
        }
    }
    sink.flush()?;
    eprintln!("{count} values; cursor {cursor} (next time: --since {cursor})");
    Ok(())
}

fn print_scorecard(card: &proto::Scorecard) {
    let whose = if card.establishment_id.is_empty() {
        format!("GHT {}", card.ght_id)
    } else {
        format!("establishment {} (GHT {})", card.establishment_id, card.ght_id)
    };
    println!("{whose} — period {} — {} {}", card.period, card.catalogue, card.catalogue_version);
    if card.computed_shown {
        println!("computed values: from the hub's data as of {}", card.computed_at);
    } else {
        println!("computed values: not shown (the period has ended; the hub's data describe the present)");
    }
    let mut t = table();
    t.set_header([
        "code",
        "indicator",
        "declared",
        "status",
        "computed",
        "≠",
        "previous",
        "trend",
        "target",
        "reached",
    ]);
    for r in &card.rows {
        let Some(d) = &r.indicator else { continue };
        let (declared, status) = match &r.declared {
            Some(v) => {
                let mut s = status_name(v.status);
                if v.revision > 1 {
                    s.push_str(&format!(" (rev {})", v.revision));
                }
                if let Some(valid) = &r.validated {
                    s.push_str(&format!("\nvalidated: {}", show_value(valid.value.as_ref())));
                }
                (show_value(v.value.as_ref()), s)
            }
            None => ("—".into(), String::new()),
        };
        let computed = match &r.computed {
            Some(c) if c.computable && c.denominator > 0 => {
                format!("{} ({}/{})", show_value(c.value.as_ref()), c.numerator, c.denominator)
            }
            Some(c) if c.computable => show_value(c.value.as_ref()),
            Some(_) => "n/a".into(),
            None => String::new(),
        };
        let previous =
            r.previous.last().map(|p| format!("{}: {}", p.period, show_value(p.value.as_ref()))).unwrap_or_default();
        t.add_row([
            d.code.clone(),
            d.label_fr.clone(),
            declared,
            status,
            computed,
            if r.disagreement { "≠".into() } else { String::new() },
            previous,
            trend_arrow(r.trend).into(),
            show_value(d.target.as_ref()),
            reached(r.target_reached).into(),
        ]);
    }
    println!("{t}");
    let mut t = table();
    t.set_header(["domain", "indicators", "valued", "validated", "targets reached", "attainment"]);
    for d in &card.domains {
        t.add_row([
            format!("{} {}", d.number, d.label_fr),
            d.indicators.to_string(),
            d.valued.to_string(),
            d.validated.to_string(),
            d.targets_reached.to_string(),
            if d.attainment < 0.0 { "—".into() } else { format!("{:.0} %", d.attainment) },
        ]);
    }
    println!("{t}");
    if card.rows.iter().any(|r| r.disagreement) {
        println!("≠: the declared value differs from the one the hub computes from its data.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_columns_follow_the_row() {
        let v = proto::IndicatorValue { indicator_code: "CONV-1.1".into(), ..Default::default() };
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(PullRow::of(&v)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), PULL_COLUMNS.join(","));
    }

    #[test]
    fn values_read_as_people_write_them() {
        use proto::value::Kind;
        let v = |k| Some(proto::Value { kind: Some(k) });
        assert_eq!(show_value(v(Kind::Boolean(true)).as_ref()), "yes");
        assert_eq!(show_value(v(Kind::Percent(62.5)).as_ref()), "62.5 %");
        assert_eq!(show_value(None), "—");
    }
}
