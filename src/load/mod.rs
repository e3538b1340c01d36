//! `ghthub load`: drives a realistic mixed workload against a hub and prints per-RPC
//! throughput and latency percentiles (HDR histograms). With `--compare-echo` the same
//! client drives a bare tonic echo server with the same TLS, so the hub's overhead is
//! reported as a ratio to that ceiling, measured in the same run.
//!
//! With `--spawn` (the default when no server is reachable) the hub runs as a child
//! process on a temporary database, so its resident memory is measured on its own.

pub mod echo;
mod workload;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::cli::client::connect_channel;

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Concurrent unary callers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Movements each stream publishes per second; 0: as fast as the hub acknowledges
    /// (2,048 in flight). A region's real flow is a few events per second per
    /// establishment; a paced rate measures the unary calls beside a steady ingest
    /// rather than beside streams that take all the writer and CPU they can.
    #[arg(long, default_value_t = 0.0)]
    pub stream_rate: f64,
    /// Concurrent movement-publishing streams (one per establishment).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Run against a hub spawned as a child process on a temporary database
    /// (default) instead of the one at --server.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub spawn: bool,
    /// Database of the spawned hub (default: a temporary SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Also measure a bare echo server with the same TLS and report the ratio.
    #[arg(long)]
    pub compare_echo: bool,
    /// Workload: `mixed` (all RPC families) or `unary` (unary calls only).
    #[arg(long, default_value = "mixed")]
    pub workload: String,
    /// Signing key for the synthetic parties' tokens (when targeting --server).
    #[arg(long, default_value = "data/certs/token-signing.key.pem")]
    pub signing_key: PathBuf,
    /// A connection per party system (each establishment's clients, the GHT DSI, the
    /// DIM, the ARS), as separate client systems would hold, and as many for the echo
    /// client, instead of one shared HTTP/2 connection. One connection is served by one
    /// task on each side: the bare echo server's ceiling is that task's (2026-12-06:
    /// ~30,000 RPC/s on one connection, ~52,000 on seven); the hub's figures moved
    /// within a few per cent.
    #[arg(long)]
    pub per_party_connections: bool,
}

/// Opens the connections of the synthetic parties: one per party system (an
/// establishment's clients, the GHT DSI, the DIM, the ARS), or the one shared.
#[derive(Clone)]
pub struct Connector {
    url: String,
    ca: Vec<u8>,
    shared: Option<tonic::transport::Channel>,
}

impl Connector {
    /// `first` is the connection already open to `url`: the one shared when `shared`.
    fn new(url: String, ca: Vec<u8>, first: &tonic::transport::Channel, shared: bool) -> Connector {
        Connector { url, ca, shared: shared.then(|| first.clone()) }
    }

    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        match &self.shared {
            Some(ch) => Ok(ch.clone()),
            None => connect_channel(&self.url, &self.ca, None).await,
        }
    }
}

/// Latencies and counts of one RPC family.
pub struct RpcStats {
    pub hist: Histogram<u64>,
    pub errors: u64,
    /// Items acknowledged (events for streams; 1 per call for unary).
    pub items: u64,
    /// The first error seen, to say why calls failed.
    pub first_error: Option<String>,
}

impl RpcStats {
    pub fn new() -> RpcStats {
        RpcStats {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"),
            errors: 0,
            items: 0,
            first_error: None,
        }
    }
    pub fn merge(&mut self, other: &RpcStats) {
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        self.items += other.items;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

impl Default for RpcStats {
    fn default() -> Self {
        RpcStats::new()
    }
}

pub type Stats = BTreeMap<&'static str, RpcStats>;

pub fn merge_into(total: &mut Stats, part: Stats) {
    for (k, v) in part {
        total.entry(k).or_default().merge(&v);
    }
}

/// A child process (hub or echo server) killed on drop.
pub struct ChildProc {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildProc {
    /// (current, peak) resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first connection to a starting server, and the connector for more.
async fn wait_serving(
    port: u16,
    ca_path: &Path,
    shared: bool,
) -> anyhow::Result<(tonic::transport::Channel, Connector)> {
    let url = format!("https://localhost:{port}");
    for _ in 0..200 {
        if let Ok(ca) = std::fs::read(ca_path) {
            if let Ok(ch) = connect_channel(&url, &ca, None).await {
                let connector = Connector::new(url, ca, &ch, shared);
                return Ok((ch, connector));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("server on port {port} did not start")
}

/// Spawns `ghthub serve` on a fresh data dir with limits off (the load generator is one party).
pub async fn spawn_hub(
    database_url: Option<&str>,
    dir: &Path,
    shared: bool,
) -> anyhow::Result<(ChildProc, tonic::transport::Channel, Connector)> {
    let port = free_port()?;
    let db = database_url.map(String::from).unwrap_or_else(|| format!("sqlite://{}", dir.join("hub.db").display()));
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &db])
        .args(["--rate-limit-per-party", "0", "--max-in-flight-per-party", "0", "--shutdown-grace-secs", "0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning the hub")?;
    let proc = ChildProc { child, port, dir: dir.to_path_buf() };
    let (ch, connector) = wait_serving(port, &dir.join("data/certs/ca.pem"), shared).await?;
    Ok((proc, ch, connector))
}

/// Spawns the bare echo server with the same dev TLS material.
pub async fn spawn_echo(dir: &Path, shared: bool) -> anyhow::Result<(ChildProc, Connector)> {
    let port = free_port()?;
    let child = Command::new(std::env::current_exe()?)
        .args(["bench-echo", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning the echo server")?;
    let proc = ChildProc { child, port, dir: dir.to_path_buf() };
    let (_, connector) = wait_serving(port, &dir.join("data/certs/ca.pem"), shared).await?;
    Ok((proc, connector))
}

pub fn print_stats(title: &str, stats: &Stats, elapsed: Duration) {
    let mut t = crate::cli::table();
    t.set_header(["rpc", "calls", "items", "errors", "items/s", "p50 ms", "p99 ms", "p999 ms", "max ms"]);
    let secs = elapsed.as_secs_f64().max(1e-9);
    for (name, s) in stats {
        let ms = |q: f64| format!("{:.2}", s.hist.value_at_quantile(q) as f64 / 1000.0);
        t.add_row([
            name.to_string(),
            s.hist.len().to_string(),
            s.items.to_string(),
            s.errors.to_string(),
            format!("{:.0}", s.items as f64 / secs),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            format!("{:.2}", s.hist.max() as f64 / 1000.0),
        ]);
    }
    println!("\n{title} ({:.1} s)\n{t}", elapsed.as_secs_f64());
    for (name, s) in stats {
        if let Some(e) = &s.first_error {
            println!("  {name}: first error: {e}");
        }
    }
}

pub fn unary_rate(stats: &Stats, elapsed: Duration, filter: impl Fn(&str) -> bool) -> (f64, Histogram<u64>) {
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
    let mut calls = 0u64;
    for (_, s) in stats.iter().filter(|(n, _)| filter(n)) {
        let _ = h.add(&s.hist);
        calls += s.hist.len();
    }
    (calls as f64 / elapsed.as_secs_f64().max(1e-9), h)
}

/// ANALYZE on the spawned hub's PostgreSQL database once the territory is seeded: what
/// autovacuum does on a server where it runs (it is off on some test servers), so the
/// planner sees the seeded tables rather than empty ones.
async fn analyze(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.context("connecting to analyse the database")?;
    sqlx::query("ANALYZE").execute(&mut conn).await.context("ANALYZE")?;
    println!("analysed the PostgreSQL database after seeding");
    Ok(())
}

pub async fn run(args: LoadArgs, connect: &crate::cli::client::ConnectArgs) -> anyhow::Result<()> {
    if !(args.stream_rate.is_finite() && args.stream_rate >= 0.0) {
        bail!("--stream-rate must be 0 (as fast as acknowledged) or a positive number of events per second");
    }
    let tmp = tempfile::tempdir().context("temp dir")?;
    let duration = Duration::from_secs(args.duration_secs.max(1));
    let shared = !args.per_party_connections;
    let (hub_proc, channel, connector, signing_key) = if args.spawn {
        let (p, ch, connector) = spawn_hub(args.database_url.as_deref(), tmp.path(), shared).await?;
        let key = tmp.path().join("data/certs/token-signing.key.pem");
        println!(
            "spawned hub pid {} on port {} ({})",
            p.child.id(),
            p.port,
            args.database_url.as_deref().unwrap_or("SQLite")
        );
        (Some(p), ch, connector, key)
    } else {
        let ca = std::fs::read(&connect.ca).with_context(|| format!("reading {}", connect.ca.display()))?;
        let ch = connect_channel(&connect.server, &ca, None).await?;
        let connector = Connector::new(connect.server.clone(), ca, &ch, shared);
        (None, ch, connector, args.signing_key.clone())
    };
    let env =
        std::sync::Arc::new(workload::Env::prepare(channel, &connector, &signing_key, args.streams.max(1)).await?);
    let connections = if shared { 1 } else { env.party_systems() };
    println!("{connections} connection(s) to the hub");
    if let (true, Some(url)) = (args.spawn, args.database_url.as_deref().filter(|u| u.starts_with("postgres"))) {
        analyze(url).await?;
    }

    // Phase 1: the hub under the mixed (or unary) workload.
    let started = Instant::now();
    let stats = workload::run_hub(env.clone(), &args, duration).await;
    let elapsed = started.elapsed();
    print_stats("hub", &stats, elapsed);
    let (unary_rps, unary_hist) = unary_rate(&stats, elapsed, |n| !n.starts_with("stream:"));
    println!(
        "hub unary: {:.0} RPC/s, p50 {:.2} ms, p99 {:.2} ms",
        unary_rps,
        unary_hist.value_at_quantile(0.5) as f64 / 1000.0,
        unary_hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    if let Some(publish) = stats.get("stream:Movements/Publish") {
        println!(
            "movement ingest: {:.0} events/s acknowledged over {} streams{} (ack p99 {:.2} ms), {} errors",
            publish.items as f64 / elapsed.as_secs_f64().max(1e-9),
            env.establishments.len(),
            if args.stream_rate > 0.0 {
                format!(" paced at {} events/s each", args.stream_rate)
            } else {
                String::new()
            },
            publish.hist.value_at_quantile(0.99) as f64 / 1000.0,
            publish.errors
        );
    }
    if let Some(p) = &hub_proc {
        if let Some((rss, peak)) = p.rss_kib() {
            println!("hub memory: RSS {:.1} MiB, peak {:.1} MiB", rss as f64 / 1024.0, peak as f64 / 1024.0);
        }
    }

    if args.compare_echo {
        // Phase 2: the same unary client shape against the bare echo server.
        let echo_dir = tempfile::tempdir()?;
        // Same TLS material as the hub: copy the dev certificates.
        let src = if args.spawn {
            tmp.path().join("data/certs")
        } else {
            connect.ca.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        copy_dir(&src, &echo_dir.path().join("data/certs"))?;
        let (echo_proc, echo_connector) = spawn_echo(echo_dir.path(), shared).await?;
        // As many connections as the hub's clients held, the workers spread over them.
        let mut echo_channels = vec![];
        for _ in 0..connections {
            echo_channels.push(echo_connector.channel().await?);
        }
        let started = Instant::now();
        let echo_stats = workload::run_echo(&echo_channels, args.concurrency, duration).await;
        let e_elapsed = started.elapsed();
        print_stats("bare tonic echo (same TLS, same client)", &echo_stats, e_elapsed);
        let (echo_rps, echo_hist) = unary_rate(&echo_stats, e_elapsed, |_| true);
        println!(
            "echo: {:.0} RPC/s, p50 {:.2} ms, p99 {:.2} ms",
            echo_rps,
            echo_hist.value_at_quantile(0.5) as f64 / 1000.0,
            echo_hist.value_at_quantile(0.99) as f64 / 1000.0
        );
        println!("hub/echo unary throughput ratio: {:.1} %", 100.0 * unary_rps / echo_rps.max(1e-9));
        drop(echo_proc);
    }
    drop(hub_proc);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
