//! Region pull benchmark: 200 GHTs × 18 indicators × 10 periods (36,000 values) on
//! SQLite, pulled by the region's ARS over real TLS gRPC from a hub started in-process.
//! Prints the time to the first and to the last message of the cold pull (the hub's
//! region log is empty: everything is read from the database), of each following full
//! pull and their p50, and of an incremental pull of the last 1 % of the changes.
//!
//! Run: `cargo bench --bench indicators` (release profile).

use std::time::{Duration, Instant};

use futures::StreamExt;
use ghthub::{
    access::{Principal, Role},
    auth::TokenIssuer,
    cli::client::{connect_channel, HubClient},
    config::ServeArgs,
    indicators::{
        catalogue::{self, ValueType},
        store::{self, ValueKey, ValueRow},
        values::{Period, Status, Val},
    },
    proto,
};

const GHTS: usize = 200;
const PERIODS: [&str; 10] =
    ["2021-S1", "2021-S2", "2022-S1", "2022-S2", "2023-S1", "2023-S2", "2024-S1", "2024-S2", "2025-S1", "2025-S2"];
const REGION: &str = "44";
const RUNS: usize = 7;

/// A plausible value of each type, varying with the GHT and period.
fn value(t: ValueType, allowed: &[String], g: usize, p: usize) -> Val {
    match t {
        ValueType::Boolean => Val::Boolean((g + p) % 3 != 0),
        ValueType::Percent => Val::Percent(((g * 7 + p * 9) % 1000) as f64 / 10.0),
        ValueType::Count => Val::Count((g * 13 + p * 101) as i64),
        ValueType::Date => Val::Date(chrono::NaiveDate::from_ymd_opt(2021 + (p / 2) as i32, 1, 1).unwrap_or_default()),
        ValueType::Status => Val::Status(allowed[(g + p) % allowed.len()].clone()),
    }
}

/// 200 GHTs of one region and their 36,000 values, in one transaction through the stores.
async fn seed(db: &ghthub::db::Db) -> anyhow::Result<usize> {
    let cat = catalogue::parse(catalogue::EMBEDDED[0])?;
    let mut tx = db.write.begin().await?;
    let mut positions = store::lock_positions(&mut tx).await?;
    let now = ghthub::time::now_micros();
    let mut n = 0;
    for g in 0..GHTS {
        let ght_id = format!("{:09}", 100_000_000 + g * 10);
        ghthub::registry::store::insert_ght(
            &mut tx,
            &proto::Ght {
                id: ght_id.clone(),
                name: format!("GHT bench {g}"),
                ars_region: REGION.into(),
                created_at: String::new(),
            },
            now,
        )
        .await?;
        for (p, period) in PERIODS.iter().enumerate() {
            let per = Period::parse("period", period)?;
            for def in &cat.indicators {
                let v = value(def.value_type, &def.allowed_values, g, p);
                let status = if p < PERIODS.len() - 1 { Status::Validated } else { Status::Submitted };
                store::insert_value(
                    &mut tx,
                    &ValueRow {
                        id: uuid::Uuid::new_v4().to_string(),
                        key: ValueKey {
                            ght_id: ght_id.clone(),
                            establishment_id: String::new(),
                            indicator_code: def.code.clone(),
                            period: per.to_string(),
                        },
                        ars_region: REGION.into(),
                        catalogue: cat.id.clone(),
                        catalogue_version: cat.version.clone(),
                        domain: i64::from(def.domain),
                        period_key: per.key(),
                        revision: 1,
                        value_type: def.value_type.as_str().into(),
                        value_text: v.text(),
                        evidence_note: format!("Comité de pilotage SI, bilan {period}"),
                        evidence_ref: format!("CR-COPIL-{g}-{period}"),
                        status,
                        declared_by: format!("dsi@ght-{g}"),
                        declared_at: now,
                        submitted_by: format!("dsi@ght-{g}"),
                        submitted_at: now,
                        reviewed_by: if status == Status::Validated { "cmsi@ars-44".into() } else { String::new() },
                        reviewed_at: if status == Status::Validated { now } else { 0 },
                        review_comment: String::new(),
                        updated_at: now,
                        change_seq: positions.take(),
                    },
                )
                .await?;
                n += 1;
            }
        }
    }
    store::save_positions(&mut tx, &positions).await?;
    tx.commit().await?;
    Ok(n)
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let args = ServeArgs::for_data_dir(dir.path().join("data"), url);
    let hub = ghthub::server::start(args.clone()).await?;

    let t = Instant::now();
    let n = seed(&hub.db).await?;
    println!("seeded {GHTS} GHTs × 18 indicators × {} periods = {n} values in {}", PERIODS.len(), ms(t.elapsed()));

    let pem = std::fs::read(args.dev_paths().token_signing_key())?;
    let issuer = TokenIssuer::new(&pem, "dev", &args.token_issuer, &args.token_audience)?;
    let token = issuer.issue(
        &Principal {
            subject: "cmsi@ars-44".into(),
            role: Role::Ars,
            ght_id: None,
            establishment_id: None,
            region: Some(REGION.into()),
            expires_at: 0,
        },
        3600,
    )?;
    let ca = std::fs::read(args.dev_paths().ca_cert())?;
    let channel = connect_channel(&format!("https://localhost:{}", hub.addr.port()), &ca, None).await?;
    let client = HubClient::from_channel(channel, Some(&token))?;

    let pull = |since: i64| {
        let mut c = client.indicators();
        async move {
            let start = Instant::now();
            let mut stream =
                c.pull_region(proto::PullRegionRequest { since, ..Default::default() }).await?.into_inner();
            let (mut first, mut values, mut messages, mut cursor) = (None, 0usize, 0usize, 0i64);
            while let Some(m) = stream.next().await {
                let m = m?;
                first.get_or_insert_with(|| start.elapsed());
                values += m.values.len();
                messages += 1;
                cursor = m.cursor;
            }
            anyhow::Ok((first.unwrap_or_default(), start.elapsed(), values, messages, cursor))
        }
    };

    // The first pull after the hub starts reads the whole region from the database
    // into the hub's region log; later pulls read only the changes since.
    let (first, last, values, messages, cursor) = pull(0).await?;
    println!(
        "cold pull (region log empty, every value read from SQLite): first message {}, last message {} \
         ({values} values in {messages} messages, cursor {cursor})",
        ms(first),
        ms(last)
    );
    anyhow::ensure!(values == n, "pulled {values} of {n} values");

    let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let (first, last, values, _, _) = pull(0).await?;
        println!("run {run}: first message {:>9}, last message {:>9}  ({values} values)", ms(first), ms(last));
        firsts.push(first);
        lasts.push(last);
    }
    let (f, l) = (p50(firsts), p50(lasts));
    println!(
        "full region pull of {n} values over TLS gRPC (SQLite), p50 of {RUNS} runs: first message {}, \
         last message {} ({:.0} values/s); target < 200 ms: {}",
        ms(f),
        ms(l),
        n as f64 / l.as_secs_f64(),
        if l < Duration::from_millis(200) { "met" } else { "NOT met" }
    );

    // An incremental pull of the last 1 % of the changes.
    let since = cursor - (n as i64 / 100);
    let mut incr = Vec::new();
    for _ in 0..RUNS {
        let (_, last, values, _, _) = pull(since).await?;
        anyhow::ensure!(values == n / 100, "incremental pull returned {values}");
        incr.push(last);
    }
    println!("incremental pull of the last {} changes (--since {since}): p50 {}", n / 100, ms(p50(incr)));
    hub.stop().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}
