//! Test harness: starts the real hub over real TLS on an ephemeral port, with a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database when DATABASE_URL
//! points at one), and hands out generated clients carrying party tokens.
#![allow(dead_code)]

use std::path::PathBuf;

use ghthub::{
    access::{Principal, Role},
    auth::TokenIssuer,
    cli::client::{connect_channel, HubClient},
    config::ServeArgs,
    server::{self, Running},
};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when DATABASE_URL is a postgres URL.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if pg_url().is_some() {
        v.push(Backend::Postgres);
    }
    v
}

pub fn pg_url() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn fresh_pg_database() -> String {
    let base = pg_url().expect("DATABASE_URL");
    let name = format!("ghthub_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let _ = conn.close().await;
    // Replace the database name (last path segment) of the URL.
    let (prefix, rest) = base.rsplit_once('/').expect("URL with a database");
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{prefix}/{name}{query}")
}

pub struct TestHub {
    pub backend: Backend,
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub args: ServeArgs,
    issuer: TokenIssuer,
}

impl TestHub {
    pub async fn start(backend: Backend) -> TestHub {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServeArgs)) -> TestHub {
        // The hub's warnings and errors go to the test's captured output: a failing test
        // shows what the hub logged (an INTERNAL status only says "see hub logs").
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("ghthub=warn"))
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("hub.db").display()),
            Backend::Postgres => fresh_pg_database().await,
        };
        let mut args = ServeArgs::for_data_dir(dir.path().join("data"), database_url.clone());
        tweak(&mut args);
        let running = server::start(args.clone()).await.expect("hub starts");
        let pem = std::fs::read(args.dev_paths().token_signing_key()).expect("signing key");
        let issuer = TokenIssuer::new(&pem, "dev", &args.token_issuer, &args.token_audience).expect("issuer");
        TestHub { backend, running: Some(running), dir, database_url, args, issuer }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").addr
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr().port())
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.args.dev_paths().ca_cert()).expect("CA")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.args.dev_paths().dir
    }

    pub fn db(&self) -> &ghthub::db::Db {
        &self.running.as_ref().expect("running").db
    }

    /// The development token issuer of this hub (for crafting bad tokens too).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    pub fn token(&self, role: Role, sub: &str, ght: Option<&str>, est: Option<&str>, region: Option<&str>) -> String {
        let p = Principal {
            subject: sub.into(),
            role,
            ght_id: ght.map(String::from),
            establishment_id: est.map(String::from),
            region: region.map(String::from),
            expires_at: 0,
        };
        self.issuer.issue(&p, 3600).expect("token")
    }

    pub async fn client(&self, token: &str) -> HubClient {
        let channel = connect_channel(&self.url(), &self.ca_pem(), None).await.expect("TLS channel");
        HubClient::from_channel(channel, Some(token)).expect("client")
    }

    pub async fn admin(&self) -> HubClient {
        self.client(&self.token(Role::Admin, "admin", None, None, None)).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// Runs an async scenario against every available back-end.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in $crate::common::backends() {
                eprintln!("--- {} on {:?}", stringify!($name), backend);
                let hub = $crate::common::TestHub::start(backend).await;
                $scenario(&hub).await;
                hub.stop().await;
            }
        }
    };
}

/// A small territory: GHT G1 (region 44) with support E1 (CHU), partie E2, associé E3;
/// GHT G2 (region 76) with support F1.
pub mod fixture {
    pub const G1: &str = "540000213";
    pub const E1: &str = "540000049";
    pub const E2: &str = "540000056";
    pub const E3: &str = "540000064";
    pub const R1: &str = "44";
    pub const G2: &str = "310000014";
    pub const F1: &str = "310000022";
    pub const R2: &str = "76";
}

pub async fn seed_territory(hub: &TestHub) {
    use fixture::*;
    use ghthub::proto::{
        CreateEstablishmentRequest, CreateGhtRequest, EstablishmentCategory as C, EstablishmentRole as R,
    };
    let admin = hub.admin().await;
    let mut reg = admin.registry();
    for (id, name, region) in [(G1, "GHT Sud Lorraine", R1), (G2, "GHT Haute-Garonne", R2)] {
        reg.create_ght(CreateGhtRequest {
            id: id.into(),
            name: name.into(),
            ars_region: region.into(),
            request_id: String::new(),
        })
        .await
        .expect("create GHT");
    }
    for (id, ght, name, role, cat) in [
        (E1, G1, "CHRU de Nancy", R::Support, C::Chu),
        (E2, G1, "CH de Lunéville", R::Partie, C::Ch),
        (E3, G1, "Clinique associée", R::Associe, C::EsPrive),
        (F1, G2, "CHU de Toulouse", R::Support, C::Chu),
    ] {
        reg.create_establishment(CreateEstablishmentRequest {
            id: id.into(),
            ght_id: ght.into(),
            name: name.into(),
            role: role as i32,
            category: cat as i32,
            request_id: String::new(),
        })
        .await
        .expect("create establishment");
    }
}
