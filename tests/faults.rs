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
