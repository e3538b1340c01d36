//! Faults: database outage, graceful shutdown, per-party limits.

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{fixture::*, seed_territory, Backend, TestHub};
use ghthub::{access::Role, cli::client::connect_channel, proto};
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::Code;

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut p = Proxy { addr, upstream, tasks: Default::default(), accept: None };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let t = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                tasks.lock().unwrap().push(t);
            }
        }));
    }

    /// The database "goes away": the port refuses connections, open ones are dropped.
    fn cut(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_unavailable_then_recovers() {
    let Some(_) = common::pg_url() else {
        eprintln!("DATABASE_URL not set: PostgreSQL outage test skipped");
        return;
    };
    let direct = common::fresh_pg_database().await;
    // Route the hub's database connections through the proxy.
    let url: url_lite::Url = url_lite::Url::parse(&direct);
    let mut proxy = Proxy::start(url.socket_addr()).await;
    let proxied = url.with_port(proxy.addr.port());
    let hub = TestHub::start_with(Backend::Postgres, |a| a.database_url = proxied.clone()).await;
    seed_territory(&hub).await;
    let admin = hub.admin().await;
    let channel = connect_channel(&hub.url(), &hub.ca_pem(), None).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);

    proxy.cut();
    let started = std::time::Instant::now();
    let mut req = tonic::Request::new(proto::ListEstablishmentsRequest { ght_id: G1.into() });
    req.set_timeout(Duration::from_secs(20));
    let err = admin.registry().list_establishments(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered without hanging: {:?}", started.elapsed());
    // Health follows: NOT_SERVING while the database is away.
    let mut not_serving = false;
    for _ in 0..40 {
        let s = health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap().into_inner().status;
        if s == tonic_health::pb::health_check_response::ServingStatus::NotServing as i32 {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(not_serving, "health reports NOT_SERVING during the outage");

    proxy.restore().await;
    let mut ok = false;
    for _ in 0..60 {
        if admin.registry().list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() }).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ok, "the hub recovers when the database returns");
    let list = admin.registry().list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() }).await;
    assert_eq!(list.unwrap().into_inner().establishments.len(), 3, "nothing was lost");
    hub.stop().await;
}

/// Minimal URL surgery for the proxy test (host:port of a postgres URL).
mod url_lite {
    pub struct Url(String);
    impl Url {
        pub fn parse(s: &str) -> Url {
            Url(s.to_string())
        }
        fn host_port(&self) -> (String, u16) {
            let after = self.0.split_once("://").unwrap().1;
            let authority = after.split('/').next().unwrap();
            let hostport = authority.rsplit('@').next().unwrap();
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().unwrap()),
                None => (hostport.to_string(), 5432),
            }
        }
        pub fn socket_addr(&self) -> std::net::SocketAddr {
            let (h, p) = self.host_port();
            let h = if h == "localhost" { "127.0.0.1".to_string() } else { h };
            format!("{h}:{p}").parse().unwrap()
        }
        pub fn with_port(&self, port: u16) -> String {
            let (scheme, after) = self.0.split_once("://").unwrap();
            let (authority, rest) = after.split_once('/').unwrap();
            let (userinfo, _) = match authority.rsplit_once('@') {
                Some((u, hp)) => (format!("{u}@"), hp),
                None => (String::new(), authority),
            };
            format!("{scheme}://{userinfo}127.0.0.1:{port}/{rest}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reports_not_serving_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ghthub"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--shutdown-grace-secs", "2"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("hub.db").display()))
        .env_remove("DATABASE_URL")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ca_path = dir.path().join("data/certs/ca.pem");
    let url = format!("https://localhost:{port}");
    let mut health = None;
    for _ in 0..100 {
        if let Ok(ca) = std::fs::read(&ca_path) {
            if let Ok(ch) = connect_channel(&url, &ca, None).await {
                health = Some(tonic_health::pb::health_client::HealthClient::new(ch));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut health = health.expect("hub started");
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(
        health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap().into_inner().status,
        serving
    );

    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // During the grace period the hub still answers, and says NOT_SERVING.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = health.check(tonic_health::pb::HealthCheckRequest::default()).await.unwrap().into_inner().status;
    assert_eq!(s, tonic_health::pb::health_check_response::ServingStatus::NotServing as i32);
    // Then it exits on its own, successfully.
    let mut exited = None;
    for _ in 0..100 {
        if let Some(st) = child.try_wait().unwrap() {
            exited = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("hub did not exit after SIGTERM")
    });
    assert!(st.success(), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_party_rate_limit_refuses_with_resource_exhausted() {
    let hub = TestHub::start_with(Backend::Sqlite, |a| {
        a.rate_limit_per_party = 5;
        a.rate_burst_per_party = 5;
    })
    .await;
    let greedy = hub.client(&hub.token(Role::Ars, "ars-greedy", None, None, Some(R1))).await;
    let mut codes = vec![];
    for _ in 0..8 {
        codes.push(
            greedy
                .registry()
                .list_ghts(proto::ListGhtsRequest::default())
                .await
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        );
    }
    assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 5, "{codes:?}");
    assert!(codes[5..].iter().all(|c| *c == Code::ResourceExhausted), "{codes:?}");
    // Another party is not affected.
    let other = hub.client(&hub.token(Role::Ars, "ars-polite", None, None, Some(R1))).await;
    other.registry().list_ghts(proto::ListGhtsRequest::default()).await.unwrap();
    hub.stop().await;
}

/// A hub in a child process (`ghthub serve`) on an SQLite file, to kill and restart.
mod child_hub {
    use std::{path::PathBuf, process::Child, time::Duration};

    use ghthub::{
        access::{Principal, Role},
        auth::TokenIssuer,
        cli::client::{connect_channel, HubClient},
        proto,
    };

    pub const G: &str = "540000213";
    pub const E: &str = "540000049";

    pub struct ChildHub {
        pub child: Child,
        pub dir: PathBuf,
        pub port: u16,
    }

    impl ChildHub {
        pub async fn start(dir: PathBuf, port: u16) -> ChildHub {
            ChildHub::start_with_grace(dir, port, 0).await
        }

        /// With `grace` seconds for open calls to finish after SIGTERM.
        pub async fn start_with_grace(dir: PathBuf, port: u16, grace: u64) -> ChildHub {
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_ghthub"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--shutdown-grace-secs", &grace.to_string()])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--database-url")
                .arg(format!("sqlite://{}", dir.join("hub.db").display()))
                .env_remove("DATABASE_URL")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let hub = ChildHub { child, dir, port };
            for _ in 0..200 {
                if let Ok(ca) = std::fs::read(hub.dir.join("data/certs/ca.pem")) {
                    if let Ok(ch) = connect_channel(&hub.url(), &ca, None).await {
                        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
                        if h.check(tonic_health::pb::HealthCheckRequest::default()).await.is_ok() {
                            return hub;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("child hub did not start");
        }

        pub fn url(&self) -> String {
            format!("https://localhost:{}", self.port)
        }

        pub async fn client(&self, role: Role, sub: &str, est: Option<&str>) -> HubClient {
            let pem = std::fs::read(self.dir.join("data/certs/token-signing.key.pem")).unwrap();
            let issuer = TokenIssuer::new(&pem, "dev", "ghthub-dev", "ghthub").unwrap();
            let p = Principal {
                subject: sub.into(),
                role,
                ght_id: role.needs_ght().then(|| G.to_string()),
                establishment_id: est.map(String::from),
                region: None,
                expires_at: 0,
            };
            let token = issuer.issue(&p, 3600).unwrap();
            let ca = std::fs::read(self.dir.join("data/certs/ca.pem")).unwrap();
            let channel = connect_channel(&self.url(), &ca, None).await.unwrap();
            HubClient::from_channel(channel, Some(&token)).unwrap()
        }

        /// A GHT with one support establishment and one patient published there.
        pub async fn seed(&self) {
            let admin = self.client(Role::Admin, "admin", None).await;
            let mut reg = admin.registry();
            reg.create_ght(proto::CreateGhtRequest {
                id: G.into(),
                name: "GHT".into(),
                ars_region: "44".into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
            reg.create_establishment(proto::CreateEstablishmentRequest {
                id: E.into(),
                ght_id: G.into(),
                name: "CHU".into(),
                role: proto::EstablishmentRole::Support as i32,
                category: proto::EstablishmentCategory::Chu as i32,
                request_id: String::new(),
            })
            .await
            .unwrap();
            let dr = self.client(Role::Practitioner, "dr", Some(E)).await;
            dr.identity()
                .upsert_identity(proto::UpsertIdentityRequest {
                    identity: Some(proto::LocalIdentity {
                        establishment_id: E.into(),
                        ipp: "P1".into(),
                        status: proto::IdentityStatus::Provisoire as i32,
                        birth_name: "Durand".into(),
                        first_given_name: "Claude".into(),
                        birth_date: "1960-05-06".into(),
                        sex: proto::AdministrativeSex::Female as i32,
                        identity_document: proto::IdentityDocument::None as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .unwrap();
        }

        /// Resident memory of the hub process, KiB.
        pub fn rss_kib(&self) -> u64 {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        }

        pub fn kill9(&mut self) {
            let st = std::process::Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
            assert!(st.success());
            let _ = self.child.wait();
        }
    }

    impl Drop for ChildHub {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// One outpatient registration per movement, each its own encounter.
    pub fn movement(k: usize) -> proto::Movement {
        proto::Movement {
            event_id: format!("ev-{k}"),
            establishment_id: E.into(),
            ipp: "P1".into(),
            encounter_id: format!("V{k}"),
            trigger: proto::MovementTrigger::A04RegisterOutpatient as i32,
            // One second apart: never the same nature, patient, unit and time (IHE PAM).
            event_time: format!(
                "2025-01-{:02}T{:02}:{:02}:{:02}Z",
                1 + k / 86_400,
                k / 3_600 % 24,
                k / 60 % 60,
                k % 60
            ),
            medical_unit: format!("UF{}", k % 1000),
            care_unit: format!("BOX{}", k / 1000),
            encounter_class: proto::EncounterClass::Urgences as i32,
            ..Default::default()
        }
    }

    /// Publishes `range` over one stream; returns the acks received.
    pub async fn publish(c: &HubClient, range: std::ops::Range<usize>) -> Vec<proto::MovementAck> {
        let reqs = range.map(|k| proto::PublishMovementsRequest { movement: Some(movement(k)) });
        let mut acks = c.movements().publish_movements(tokio_stream::iter(reqs)).await.unwrap().into_inner();
        let mut out = vec![];
        while let Some(a) = acks.message().await.unwrap() {
            out.push(a);
        }
        out
    }

    /// Every movement the feed holds, from the start, until caught up.
    pub async fn feed(c: &HubClient) -> Vec<(i64, String)> {
        let req = proto::SubscribeMovementsRequest { since: 0, establishment_ids: vec![], follow: false };
        let mut s = c.movements().subscribe_movements(req).await.unwrap().into_inner();
        let mut out = vec![];
        while let Some(m) = s.message().await.unwrap() {
            if let Some(mv) = m.movement {
                out.push((m.cursor, mv.event_id));
            }
        }
        out
    }
}

/// SIGKILL in the middle of a movement stream: every acknowledged movement survives,
/// and the client's retry of everything it sent creates no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_movement_and_retries_make_no_duplicates() {
    use child_hub::*;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut hub = ChildHub::start(dir.path().to_path_buf(), port).await;
    hub.seed().await;
    const N: usize = 30_000;
    let dr = hub.client(Role::Practitioner, "dr", Some(E)).await;
    // Feed the stream from a channel so the hub is killed while movements are in flight.
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let sender = tokio::spawn(async move {
        for k in 0..N {
            if tx.send(proto::PublishMovementsRequest { movement: Some(movement(k)) }).await.is_err() {
                break;
            }
        }
    });
    let mut acks =
        dr.movements().publish_movements(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut acked = std::collections::HashSet::new();
    while acked.len() < 3_000 {
        let a = acks.message().await.unwrap().expect("acks until the kill");
        assert_eq!(a.status, proto::MovementAckStatus::Accepted as i32, "{a:?}");
        acked.insert(a.event_id);
    }
    hub.kill9();
    // Whatever was in flight: the stream ends with an error or early, never with a lie.
    while let Ok(Some(a)) = acks.message().await {
        acked.insert(a.event_id);
    }
    sender.abort();
    assert!(acked.len() < N, "killed mid-stream");

    let hub = ChildHub::start(dir.path().to_path_buf(), port).await;
    let dim = hub.client(Role::DimPhysician, "dim", None).await;
    let stored: std::collections::HashSet<String> = feed(&dim).await.into_iter().map(|(_, e)| e).collect();
    let lost: Vec<&String> = acked.iter().filter(|e| !stored.contains(*e)).collect();
    assert!(lost.is_empty(), "{} acknowledged movements lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);

    // The client retries everything it sent (acknowledged or not).
    let dr = hub.client(Role::Practitioner, "dr", Some(E)).await;
    let retry = publish(&dr, 0..N).await;
    assert_eq!(retry.len(), N);
    let dup = retry.iter().filter(|a| a.status == proto::MovementAckStatus::Duplicate as i32).count();
    let acc = retry.iter().filter(|a| a.status == proto::MovementAckStatus::Accepted as i32).count();
    assert_eq!(dup + acc, N, "no rejection on retry");
    assert_eq!(dup, stored.len(), "exactly what was committed before the kill is a duplicate");
    let after = feed(&dim).await;
    assert_eq!(after.len(), N, "each movement stored once");
    assert_eq!(after.iter().map(|(p, _)| *p).collect::<Vec<_>>(), (1..=N as i64).collect::<Vec<_>>());
    let distinct: std::collections::HashSet<&String> = after.iter().map(|(_, e)| e).collect();
    assert_eq!(distinct.len(), N);
}

/// A subscriber that stops reading does not make the hub buffer the feed: its memory
/// stays flat while movements pile up, publishers are not held back, and the
/// subscriber gets every movement once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_does_not_grow_hub_memory_and_misses_nothing() {
    use child_hub::*;
    let dir = tempfile::tempdir().unwrap();
    let hub = ChildHub::start(dir.path().to_path_buf(), free_port()).await;
    hub.seed().await;
    let dr = hub.client(Role::Practitioner, "dr", Some(E)).await;
    const N: usize = 30_000;
    assert!(publish(&dr, 0..N).await.iter().all(|a| a.status == proto::MovementAckStatus::Accepted as i32));
    // The feed read once to its end first: what a first read costs once (the reader
    // connection's page cache, the allocator's heaps on the threads serving it) is in
    // `before`, and the growth measured below is what the stalled follower holds.
    let dim = hub.client(Role::DimPhysician, "dim", None).await;
    assert_eq!(feed(&dim).await.len(), N);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = hub.rss_kib();
    // A follower that does not read. Buffered without bound, 30,000 movements would
    // take tens of MiB in the hub (decoded rows, messages and their encodings).
    let req = proto::SubscribeMovementsRequest { since: 0, establishment_ids: vec![], follow: true };
    let mut stalled = dim.movements().subscribe_movements(req).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled_rss = hub.rss_kib();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = hub.rss_kib();
    let growth_mib = later.max(stalled_rss).saturating_sub(before) as f64 / 1024.0;
    eprintln!("hub RSS {before} KiB before the stalled subscriber, {stalled_rss} then {later} KiB with it");
    assert!(growth_mib < 8.0, "hub memory grew by {growth_mib:.1} MiB with a stalled subscriber");
    // Publishers are not held back by it.
    let started = std::time::Instant::now();
    assert!(publish(&dr, N..N + 5_000).await.iter().all(|a| a.status == proto::MovementAckStatus::Accepted as i32));
    assert!(started.elapsed() < Duration::from_secs(60), "publishing is not held back: {:?}", started.elapsed());
    // Reading again: everything, in order, once.
    let mut got = 0i64;
    while got < (N + 5_000) as i64 {
        let m = tokio::time::timeout(Duration::from_secs(30), stalled.message())
            .await
            .expect("delivery resumes")
            .unwrap()
            .unwrap();
        got += 1;
        assert_eq!(m.cursor, got);
    }
}

/// SIGTERM while a publishing stream is open and idle (its movement acknowledged, the
/// client sending nothing more): the hub keeps serving through the grace period (so a
/// load balancer can take it out of rotation), then ends the stream with UNAVAILABLE
/// (resend what was not acknowledged) instead of waiting for a client that may never
/// send again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_idle_publishing_stream_after_the_grace_period() {
    use child_hub::*;
    let dir = tempfile::tempdir().unwrap();
    let hub = ChildHub::start_with_grace(dir.path().to_path_buf(), free_port(), 1).await;
    hub.seed().await;
    let dr = hub.client(Role::Practitioner, "dr", Some(E)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(proto::PublishMovementsRequest { movement: Some(movement(0)) }).await.unwrap();
    let mut acks =
        dr.movements().publish_movements(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let first = acks.message().await.unwrap().expect("an ack");
    assert_eq!(first.status, proto::MovementAckStatus::Accepted as i32, "{first:?}");

    let st = std::process::Command::new("kill").args(["-TERM", &hub.child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let sigterm = std::time::Instant::now();
    let end = match tokio::time::timeout(Duration::from_secs(15), acks.message()).await {
        Ok(Ok(m)) => panic!("expected the stream to end with a status, got {m:?}"),
        Ok(Err(s)) => s,
        Err(_) => panic!("the publishing stream is still open 15 s after SIGTERM"),
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    let after = sigterm.elapsed();
    assert!(after >= Duration::from_millis(900), "ended during the grace period, after {after:?}");
    assert!(after < Duration::from_secs(8), "ended {after:?} after SIGTERM");
    // The client kept its side open all along.
    drop(tx);
}
