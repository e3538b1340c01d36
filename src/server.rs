//! Startup: database, TLS, token verification, services, health and reflection.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;

use crate::{
    access::{service::AccessService, Guard},
    audit::{service::AuditService, AuditLog},
    auth::{AuthConfig, AuthLayer, TokenVerifier},
    config::ServeArgs,
    db::Db,
    pki,
    proto::{access_server::AccessServer, audit_server::AuditServer, registry_server::RegistryServer},
    registry::service::RegistryService,
};

/// Everything a domain service needs, built once at startup.
#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub guard: Guard,
    pub config: Arc<ServeArgs>,
    /// Turns true when the hub starts draining: long-lived streams (subscriptions,
    /// publication streams) end themselves, so the graceful drain can complete.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// A hub that is running; used by `serve` and by the integration tests.
pub struct Running {
    pub addr: SocketAddr,
    pub health: HealthReporter,
    pub db: Db,
    shutdown: Option<oneshot::Sender<()>>,
    stopping: tokio::sync::watch::Sender<bool>,
    handle: JoinHandle<Result<(), tonic::transport::Error>>,
    grace: Duration,
}

impl Running {
    /// Graceful stop: report NOT_SERVING, wait the grace period, drain open calls.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        tokio::time::sleep(self.grace).await;
        self.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.await.context("server task")??;
        Ok(())
    }

    /// Resolves when the server task ends (after a shutdown or on error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.handle).await.context("server task")??;
        Ok(())
    }

    pub fn trigger_shutdown(&mut self) {
        self.stopping.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Parses `KID=PATH` (or `PATH`, kid "dev") verification key specs.
pub fn load_verify_keys(specs: &[String], default_path: &std::path::Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if specs.is_empty() {
        return Ok(vec![("dev".to_string(), read(default_path)?)]);
    }
    specs
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|spec| {
            let (kid, path) = spec.split_once('=').unwrap_or(("dev", spec.as_str()));
            Ok((kid.trim().to_string(), read(std::path::Path::new(path.trim()))?))
        })
        .collect()
}

/// Binds, builds and starts the hub; returns once it accepts connections.
pub async fn start(cfg: ServeArgs) -> anyhow::Result<Running> {
    let paths = cfg.dev_paths();
    let uses_dev_tls = cfg.tls_cert.is_none();
    if uses_dev_tls || cfg.token_verify_keys.is_empty() {
        if pki::ensure_dev_material(&paths, &cfg.server_names)? {
            tracing::info!(dir = %paths.dir.display(), "generated development certificates and token keys (never use them in production)");
        }
    }
    let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (read(c)?, read(k)?),
        _ => (read(&paths.server_cert())?, read(&paths.server_key())?),
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    let client_ca = match (&cfg.client_ca, cfg.require_client_cert, uses_dev_tls) {
        (Some(ca), _, _) => Some(read(ca)?),
        (None, true, true) => Some(read(&paths.ca_cert())?),
        (None, true, false) => anyhow::bail!("--require-client-cert needs --client-ca"),
        (None, false, _) => None,
    };
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(ca)).client_auth_optional(!cfg.require_client_cert);
    }

    let verifier = TokenVerifier::new(
        &cfg.token_issuer,
        &cfg.token_audience,
        load_verify_keys(&cfg.token_verify_keys, &paths.token_verify_key())?,
    )?;

    let db = Db::connect(&cfg.database_url, cfg.db_max_connections).await?;
    let audit = AuditLog::start(db.clone());
    let guard = Guard::new(db.clone(), audit.clone());
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let hub = Hub { db: db.clone(), guard: guard.clone(), config: Arc::new(cfg.clone()), stopping: stopping_rx };

    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let max = cfg.max_message_bytes;
    macro_rules! limited {
        ($server:expr) => {
            $server.max_decoding_message_size(max).max_encoding_message_size(max)
        };
    }

    let listener = TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();

    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.trim().is_empty());
    let router = Server::builder()
        .tls_config(tls)?
        .timeout(Duration::from_secs(cfg.request_timeout_secs))
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // One span per call: at INFO when traces are exported, DEBUG (free when off) otherwise.
        .trace_fn(move |req| {
            if otlp {
                tracing::info_span!("grpc", method = %req.uri().path())
            } else {
                tracing::debug_span!("grpc", method = %req.uri().path())
            }
        })
        .layer(AuthLayer::new(AuthConfig {
            verifier,
            require_client_cert: cfg.require_client_cert,
            limits: crate::auth::PartyLimits::new(
                cfg.rate_limit_per_party,
                cfg.rate_burst_per_party,
                cfg.max_in_flight_per_party,
            ),
        }))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(limited!(RegistryServer::new(RegistryService { db: db.clone(), guard: guard.clone() })))
        .add_service(limited!(AccessServer::new(AccessService { guard: guard.clone() })))
        .add_service(limited!(AuditServer::new(AuditService { guard: guard.clone() })));
    // Each domain module adds its own services (with the same message-size limits).
    let router = register_domains(router, &hub);

    // Health follows the database: NOT_SERVING while it does not answer.
    spawn_db_health(db.clone(), health.clone());

    // TCP_NODELAY: without it Nagle and delayed ACKs add ~40 ms to small replies.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let handle = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = rx.await;
    }));
    tracing::info!(%addr, backend = ?db.backend, mtls = cfg.require_client_cert, "ghthub listening (TLS)");
    Ok(Running {
        addr,
        health,
        db,
        shutdown: Some(tx),
        stopping,
        handle,
        grace: Duration::from_secs(cfg.shutdown_grace_secs),
    })
}

/// The router type every domain's `register` function extends.
pub type HubRouter =
    tonic::transport::server::Router<tower::layer::util::Stack<AuthLayer, tower::layer::util::Identity>>;

fn register_domains(router: HubRouter, hub: &Hub) -> HubRouter {
    let router = crate::inventory::register(router, hub);
    let router = crate::indicators::register(router, hub);
    let router = crate::identity::register(router, hub);
    crate::movement::register(router, hub)
}

fn spawn_db_health(db: Db, health: HealthReporter) {
    tokio::spawn(async move {
        let mut serving = true;
        loop {
            let ok = tokio::time::timeout(Duration::from_secs(3), db.ping()).await.map(|r| r.is_ok()).unwrap_or(false);
            if ok != serving {
                serving = ok;
                let status =
                    if ok { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
                tracing::warn!(?status, "database health changed");
                health.set_service_status("", status).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

/// `ghthub serve`: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(cfg: ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut running = start(cfg).await?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutdown requested: reporting NOT_SERVING, then draining open calls");
            running.stop().await
        }
        r = running.wait() => r,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
