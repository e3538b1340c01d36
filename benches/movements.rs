//! Movements and identity benchmark (issue 4), over real TLS gRPC against a hub
//! started in-process on a fresh database (a temporary SQLite file; a fresh
//! PostgreSQL database too when DATABASE_URL points at one).
//!
//! 0. 1,000,000 local identities are loaded straight into the database through the
//!    identity store's bulk loader (each with its own territorial identity, matching
//!    keys computed as the service computes them), spread over the GHT's 10
//!    establishments; 70 % are QUALIFIEE (INS, identity card), 30 % PROVISOIRE.
//! 1. Movement ingest over ONE `PublishMovements` stream: 200,000 movements (A01
//!    admission, three A02 transfers, A03 discharge) of 40,000 séjours of 20,000
//!    patients of one establishment, in event-time order, published by its
//!    practitioner. A producer keeps the stream full; the client counts the
//!    acknowledgements (an ACCEPTED ack means the movement is committed). Prints
//!    acknowledged events/s.
//! 2. `Identity.SearchIdentities` as the GHT's DIM physician (entitled to the
//!    parties' identities), one call at a time: by INS, then by traits (birth name +
//!    first name + birth date). Prints p50/p99/p999.
//! 3. Memory: the hub runs in this process, so VmRSS / VmHWM of /proc/self/status
//!    cover the hub AND the benchmark's client and data generation.
//!
//! Run: `cargo bench --bench movements` (release profile).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use ghthub::{
    access::{Principal, Role},
    auth::TokenIssuer,
    cli::client::{connect_channel, HubClient},
    config::ServeArgs,
    identity::{
        ins::{with_key, OID_NIR},
        matching::MatchKeys,
        store::{self as ids, IdentityRow},
        types::Status,
    },
    proto::{
        self, search_identities_request::Query, EncounterClass as C, EstablishmentCategory as Cat,
        EstablishmentRole as R, MovementAckStatus as Ack, MovementTrigger as T,
    },
};
use sqlx::Connection;

const IDENTITIES: usize = 1_000_000;

/// Identities to load: 1,000,000 unless `BENCH_IDENTITIES` says fewer (a quick look at
/// ingest without the minute-and-a-half bulk load; the search figures then mean little).
fn identities() -> usize {
    std::env::var("BENCH_IDENTITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(IDENTITIES)
}
const ESTABLISHMENTS: usize = 10;
/// Identities per bulk-load transaction.
const LOAD_CHUNK: usize = 50_000;
const SEJOURS: usize = 40_000;
const PATIENTS: usize = 20_000;
/// Movements per séjour: A01, A02 ×3, A03.
const PER_SEJOUR: usize = 5;
/// Searches of each kind.
const SEARCHES: usize = 3_000;
const INGEST_TARGET: f64 = 50_000.0;
const SEARCH_TARGET: Duration = Duration::from_millis(5);

const REGION: &str = "44";
const GHT: &str = "540300002";

fn establishment(i: usize) -> String {
    format!("5403{:05}", 100 + i * 10)
}

// ------------------------------------------------------------------ people

/// splitmix64: a deterministic hash, so the traits of identity `i` can be found again.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An index in 0..n, skewed towards 0 (a few names are very common).
fn skewed(h: u64, n: usize) -> usize {
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    ((u.powf(1.4) * n as f64) as usize).min(n - 1)
}

const NAME_HEADS: &[&str] = &[
    "Mar", "Dur", "Ber", "Pet", "Rob", "Ric", "Mor", "Sim", "Lau", "Lef", "Mic", "Gar", "Dav", "Ber", "Rou", "Bon",
    "Dup", "Lam", "Fon", "Fau", "Gir", "Cha", "Bla", "Gue", "Mul", "Hen", "Rol", "Col", "Vin", "Mas", "Bou", "Per",
];
const NAME_TAILS: &[&str] = &[
    "tin", "and", "nard", "it", "ert", "hard", "eau", "on", "rent", "èvre", "hel", "cia", "id", "ger", "ssel", "net",
    "ont", "bert", "taine", "re", "ard", "rin", "anc", "rin", "ler", "ry", "land", "in", "cent", "son",
];
const MALE: &[&str] = &[
    "Jean",
    "Pierre",
    "Michel",
    "André",
    "Philippe",
    "Louis",
    "Alain",
    "Jacques",
    "Bernard",
    "Marcel",
    "Daniel",
    "Christian",
    "Patrick",
    "Nicolas",
    "Thomas",
    "Julien",
    "Lucas",
    "Hugo",
    "Gabriel",
    "Léo",
    "Paul",
    "Éric",
    "François",
    "Laurent",
    "Stéphane",
    "Olivier",
    "David",
    "Sébastien",
    "Mathieu",
    "Antoine",
];
const FEMALE: &[&str] = &[
    "Marie",
    "Jeanne",
    "Françoise",
    "Monique",
    "Catherine",
    "Nathalie",
    "Isabelle",
    "Sylvie",
    "Anne",
    "Christine",
    "Martine",
    "Nicole",
    "Sophie",
    "Valérie",
    "Sandrine",
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Emma",
    "Jade",
    "Louise",
    "Alice",
    "Céline",
    "Julie",
    "Aurélie",
    "Émilie",
    "Claire",
    "Hélène",
    "Margaux",
];

/// The traits of identity `i`: (birth name, first name, birth date, sex).
fn traits(i: usize) -> (String, &'static str, String, &'static str) {
    let h = mix(i as u64);
    let head = skewed(mix(h ^ 1), NAME_HEADS.len());
    let tail = skewed(mix(h ^ 2), NAME_TAILS.len());
    let name = format!("{}{}", NAME_HEADS[head], NAME_TAILS[tail]);
    let male = h & 1 == 0;
    let list = if male { MALE } else { FEMALE };
    let first = list[skewed(mix(h ^ 3), list.len())];
    let day = (mix(h ^ 4) % 34_000) as i64; // 1930-01-01 + up to ~93 years
    let date = (chrono::NaiveDate::from_ymd_opt(1930, 1, 1).unwrap_or_default() + chrono::Duration::days(day))
        .format("%Y-%m-%d")
        .to_string();
    (name, first, date, if male { "M" } else { "F" })
}

fn qualified(i: usize) -> bool {
    mix(i as u64 ^ 0xABCD) % 10 < 7
}

/// The INS matricule of identity `i` (unique: the index fills the serial digits).
fn matricule(i: usize, sex: &str) -> String {
    let s = if sex == "M" { 1 } else { 2 };
    let first13 = format!("{s}{:02}{:02}{:08}", 30 + i % 60, 1 + i % 12, i);
    with_key(&first13).unwrap_or_default()
}

/// Identity `i`: establishment `i % 10`, IPP `P` + its rank there.
fn identity_row(i: usize, now: i64) -> IdentityRow {
    let (name, first, date, sex) = traits(i);
    let q = qualified(i);
    let place = format!("{:05}", 54_000 + (mix(i as u64 ^ 7) % 700));
    IdentityRow {
        establishment_id: establishment(i % ESTABLISHMENTS),
        ipp: ipp(i / ESTABLISHMENTS),
        ght_id: GHT.into(),
        territorial_id: ids::new_id('T'),
        status: if q { Status::Qualifiee } else { Status::Provisoire },
        ins: q.then(|| ghthub::identity::ins::Ins { matricule: matricule(i, sex), oid: OID_NIR.into() }),
        birth_name: name.clone(),
        first_given_name: first.into(),
        birth_given_names: first.into(),
        used_name: String::new(),
        used_given_name: String::new(),
        birth_date: date.clone(),
        sex: sex.into(),
        birth_place_code: place.clone(),
        document: if q { "CNI" } else { "NONE" }.into(),
        keys: MatchKeys::new(&name, first, first, &date, sex, &place),
        merged_into_ipp: None,
        created_at: now,
        updated_at: now,
        updated_by: "bench".into(),
    }
}

fn ipp(rank: usize) -> String {
    format!("P{rank:07}")
}

// ------------------------------------------------------------------ movements

/// Movement `k` of séjour `s` (event time: séjour start + k × 6 h).
fn movement(s: usize, k: usize, t0: i64) -> proto::Movement {
    let at = t0 + s as i64 * 60 + k as i64 * 6 * 3600;
    let trigger = match k {
        0 => T::A01Admit,
        4 => T::A03Discharge,
        _ => T::A02Transfer,
    };
    let time = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default().to_rfc3339();
    proto::Movement {
        event_id: format!("EV{s:06}-{k}"),
        establishment_id: establishment(0),
        // Patient p's identity is identity p × 10 (establishment 0, rank p).
        ipp: ipp(s % PATIENTS),
        encounter_id: format!("S{s:06}"),
        trigger: trigger as i32,
        event_time: time,
        medical_unit: if k == 4 { String::new() } else { format!("UF-{}", 1000 + (s * 7 + k * 13) % 120) },
        care_unit: if k == 4 { String::new() } else { format!("UC-{}", (s + k) % 40) },
        encounter_class: if k == 0 { C::HospitalisationComplete as i32 } else { 0 },
        ..Default::default()
    }
}

/// Every movement in event-time order: at minute m, movement k of séjour m − 360k.
fn movements_in_time_order(t0: i64) -> impl Iterator<Item = proto::Movement> {
    let span = 6 * 60; // minutes between a séjour's movements
    (0..SEJOURS + (PER_SEJOUR - 1) * span).flat_map(move |m| {
        (0..PER_SEJOUR)
            .rev()
            .filter_map(move |k| m.checked_sub(k * span).filter(|s| *s < SEJOURS).map(|s| movement(s, k, t0)))
    })
}

// ------------------------------------------------------------------ harness

/// (VmRSS, VmHWM) of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mem_line(when: &str) -> String {
    let (rss, hwm) = memory();
    format!("memory {when}: VmRSS {rss:.0} MiB, VmHWM {hwm:.0} MiB (hub in-process: includes the benchmark client)")
}

/// Samples VmRSS every 100 ms while `running`; returns the largest seen.
fn sample_rss(running: Arc<AtomicBool>) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut max: f64 = 0.0;
        while running.load(Ordering::Relaxed) {
            max = max.max(memory().0);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        max
    })
}

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

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let p99 = pct(&v, 0.99);
    format!(
        "p50 {}, p99 {}, p999 {}, max {} ({} calls); target p99 <= {}: {}",
        ms(pct(&v, 0.50)),
        ms(p99),
        ms(pct(&v, 0.999)),
        ms(v[v.len() - 1]),
        v.len(),
        ms(SEARCH_TARGET),
        if p99 <= SEARCH_TARGET { "met" } else { "NOT met" }
    )
}

async fn seed_registry(admin: &HubClient) -> anyhow::Result<()> {
    admin
        .registry()
        .create_ght(proto::CreateGhtRequest {
            id: GHT.into(),
            name: "GHT bench".into(),
            ars_region: REGION.into(),
            request_id: String::new(),
        })
        .await?;
    for i in 0..ESTABLISHMENTS {
        let (role, cat) = match i {
            0 => (R::Support, Cat::Chu),
            1..=7 => (R::Partie, Cat::Ch),
            _ => (R::Associe, Cat::EsPrive),
        };
        admin
            .registry()
            .create_establishment(proto::CreateEstablishmentRequest {
                id: establishment(i),
                ght_id: GHT.into(),
                name: format!("Établissement {i}"),
                role: role as i32,
                category: cat as i32,
                request_id: String::new(),
            })
            .await?;
    }
    Ok(())
}

async fn load_identities(db: &ghthub::db::Db) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let now = ghthub::time::now_micros();
    for first in (0..identities()).step_by(LOAD_CHUNK) {
        let rows: Vec<IdentityRow> =
            (first..(first + LOAD_CHUNK).min(identities())).map(|i| identity_row(i, now)).collect();
        ids::bulk_insert(db, &rows).await?;
    }
    Ok(start.elapsed())
}

/// Publishes every movement over one stream; returns (accepted, elapsed).
async fn ingest(c: &HubClient) -> anyhow::Result<(u64, Duration)> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2025-01-06T00:00:00Z")?.timestamp();
    // The producer runs ahead of the hub: the channel (and tonic's buffers) stay full.
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::PublishMovementsRequest>(16_384);
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for m in movements_in_time_order(t0) {
                if tx.send(proto::PublishMovementsRequest { movement: Some(m) }).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let start = Instant::now();
    let mut acks = c.movements().publish_movements(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let (mut accepted, mut other, mut first_refusal) = (0u64, 0u64, None);
    let mut next_report = Instant::now() + Duration::from_secs(5);
    while let Some(a) = acks.message().await? {
        if a.status == Ack::Accepted as i32 {
            accepted += 1;
        } else {
            other += 1;
            first_refusal.get_or_insert_with(|| format!("{} {}: {}", a.event_id, a.code, a.message));
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(5);
            println!(
                "  … {accepted} acknowledged after {:.1} s ({:.0} events/s), {}",
                start.elapsed().as_secs_f64(),
                accepted as f64 / start.elapsed().as_secs_f64(),
                mem_line("now")
            );
        }
    }
    let elapsed = start.elapsed();
    producer.await?;
    if let Some(r) = first_refusal {
        anyhow::bail!("{other} movements not accepted; first: {r}");
    }
    anyhow::ensure!(
        accepted == sent.load(Ordering::Relaxed),
        "{accepted} acks for {} sent",
        sent.load(Ordering::Relaxed)
    );
    Ok((accepted, elapsed))
}

async fn search(c: &HubClient, q: Query) -> anyhow::Result<(Duration, usize)> {
    let mut identity = c.identity();
    let start = Instant::now();
    let r = identity.search_identities(proto::SearchIdentitiesRequest { query: Some(q), limit: 0 }).await?.into_inner();
    Ok((start.elapsed(), r.hits.len()))
}

async fn run(backend: &str, database_url: Option<String>) -> anyhow::Result<()> {
    println!("== {backend}");
    let bench = Bench::start(database_url).await?;
    println!("{}", mem_line("after the hub started"));
    let admin = bench.client(Role::Admin, "admin", None, None).await?;
    seed_registry(&admin).await?;

    let took = load_identities(&bench.hub.db).await?;
    println!(
        "bulk-loaded {} local identities ({ESTABLISHMENTS} establishments, 70 % QUALIFIEE) in {:.1} s",
        identities(),
        took.as_secs_f64()
    );
    println!("{}", mem_line("after the bulk load"));
    // The ingest figure is the hub's steady state: the bulk load (hundreds of MiB on
    // SQLite) leaves its WAL for the checkpointer to copy into the database file, a
    // cost of the load that would otherwise land in the first seconds of ingest.
    if backend == "SQLite" {
        let t = Instant::now();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&bench.hub.db.write).await?;
        println!(
            "checkpointed the bulk load's WAL in {:.1} s (before the ingest clock starts)",
            t.elapsed().as_secs_f64()
        );
    } else {
        // What autovacuum does after a bulk load, and what PostgreSQL's documentation asks
        // for after one: without statistics the planner took the GHT's index (every one
        // of the million rows) beside the INS index for an INS search (35 ms a search).
        let t = Instant::now();
        sqlx::query("ANALYZE").execute(&bench.hub.db.write).await?;
        println!("analysed the database after the bulk load in {:.1} s", t.elapsed().as_secs_f64());
    }

    // 1. Ingest over one stream.
    let dr = bench.client(Role::Practitioner, "dr@bench", Some(GHT), Some(&establishment(0))).await?;
    let running = Arc::new(AtomicBool::new(true));
    let sampler = sample_rss(running.clone());
    let (accepted, elapsed) = ingest(&dr).await?;
    running.store(false, Ordering::Relaxed);
    let peak = sampler.await?;
    let rate = accepted as f64 / elapsed.as_secs_f64();
    println!(
        "movement ingest over ONE PublishMovements stream: {accepted} movements ({SEJOURS} séjours, {PATIENTS} patients) \
         acknowledged (committed) in {:.2} s = {rate:.0} events/s; target >= {INGEST_TARGET:.0}: {}",
        elapsed.as_secs_f64(),
        if rate >= INGEST_TARGET { "met" } else { "NOT met" }
    );
    println!("{}; largest VmRSS sampled during ingest {peak:.0} MiB", mem_line("after ingest"));

    // 2. Searches as the DIM physician.
    let dim = bench.client(Role::DimPhysician, "dim@bench", Some(GHT), None).await?;
    let running = Arc::new(AtomicBool::new(true));
    let sampler = sample_rss(running.clone());
    let pick = |k: usize, salt: u64| (mix(k as u64 ^ salt) % identities() as u64) as usize;
    // Warm-up (connection, statement caches).
    for k in 0..50 {
        let i = pick(k, 99);
        let (name, first, date, _) = traits(i);
        search(
            &dim,
            Query::Traits(proto::IdentityTraitsQuery {
                birth_name: name,
                first_given_name: first.into(),
                birth_date: date,
                ..Default::default()
            }),
        )
        .await?;
    }
    let mut times = Vec::with_capacity(SEARCHES);
    let (mut found, mut k) = (0usize, 0usize);
    while times.len() < SEARCHES {
        let i = pick(k, 1);
        k += 1;
        if !qualified(i) {
            continue;
        }
        let (_, _, _, sex) = traits(i);
        let q = Query::Ins(proto::InsIdentifier { matricule: matricule(i, sex), oid: OID_NIR.into() });
        let (t, hits) = search(&dim, q).await?;
        // Associés' identities are outside the DIM's scope (establishments 8 and 9).
        found += usize::from(hits > 0);
        times.push(t);
    }
    println!("SearchIdentities by INS ({found} of {SEARCHES} found; the others are associés'): {}", summary(times));
    let mut times = Vec::with_capacity(SEARCHES);
    let mut hits_total = 0;
    for k in 0..SEARCHES {
        let i = pick(k, 2);
        let (name, first, date, _) = traits(i);
        let q = Query::Traits(proto::IdentityTraitsQuery {
            birth_name: name,
            first_given_name: first.into(),
            birth_date: date,
            ..Default::default()
        });
        let (t, hits) = search(&dim, q).await?;
        hits_total += hits;
        times.push(t);
    }
    println!(
        "SearchIdentities by traits (birth name + first name + birth date; {:.1} hits on average): {}",
        hits_total as f64 / SEARCHES as f64,
        summary(times)
    );
    running.store(false, Ordering::Relaxed);
    let peak = sampler.await?;
    println!("{}; largest VmRSS sampled during searches {peak:.0} MiB", mem_line("after searches"));
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
