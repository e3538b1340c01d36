//! Connecting to a hub as a party: TLS channel, bearer token on every call.

use std::path::PathBuf;

use anyhow::Context;
use tonic::{
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::proto::{access_client::AccessClient, audit_client::AuditClient, registry_client::RegistryClient};

/// Where the hub is and who we are.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Hub address.
    #[arg(long, env = "GHTHUB_SERVER", default_value = "https://localhost:50051", global = true)]
    pub server: String,
    /// CA certificate that signed the hub's certificate.
    #[arg(long, env = "GHTHUB_CA", default_value = "data/certs/ca.pem", global = true)]
    pub ca: PathBuf,
    /// Party token (see `ghthub token`).
    #[arg(long, env = "GHTHUB_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate for mTLS.
    #[arg(long, env = "GHTHUB_CLIENT_CERT", global = true, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client key for mTLS.
    #[arg(long, env = "GHTHUB_CLIENT_KEY", global = true, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer {
    value: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.value {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// A connection to the hub with one party's token.
#[derive(Clone)]
pub struct HubClient {
    pub channel: Channel,
    bearer: Bearer,
}

impl HubClient {
    pub async fn connect(args: &ConnectArgs) -> anyhow::Result<HubClient> {
        let ca = std::fs::read(&args.ca).with_context(|| format!("reading CA {}", args.ca.display()))?;
        let identity = match (&args.client_cert, &args.client_key) {
            (Some(c), Some(k)) => Some(Identity::from_pem(std::fs::read(c)?, std::fs::read(k)?)),
            _ => None,
        };
        let channel = connect_channel(&args.server, &ca, identity).await?;
        Ok(HubClient::from_channel(channel, args.token.as_deref())?)
    }

    pub fn from_channel(channel: Channel, token: Option<&str>) -> anyhow::Result<HubClient> {
        let value = match token {
            Some(t) => Some(format!("Bearer {}", t.trim()).parse().context("token is not valid ASCII metadata")?),
            None => None,
        };
        Ok(HubClient { channel, bearer: Bearer { value } })
    }

    /// The same connection with another party's token.
    pub fn with_token(&self, token: &str) -> anyhow::Result<HubClient> {
        HubClient::from_channel(self.channel.clone(), Some(token))
    }

    /// The bearer interceptor of this connection, for any generated client
    /// (`XClient::with_interceptor(hub.channel.clone(), hub.interceptor())`).
    pub fn interceptor(&self) -> Bearer {
        self.bearer.clone()
    }

    pub fn registry(&self) -> RegistryClient<Authed> {
        RegistryClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
    pub fn access(&self) -> AccessClient<Authed> {
        AccessClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
    pub fn audit(&self) -> AuditClient<Authed> {
        AuditClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

/// A TLS channel to `server`, trusting `ca_pem`.
pub async fn connect_channel(server: &str, ca_pem: &[u8], identity: Option<Identity>) -> anyhow::Result<Channel> {
    let uri: http::Uri = server.parse().with_context(|| format!("bad server address {server}"))?;
    let host = uri.host().unwrap_or("localhost").to_string();
    let domain = if host.parse::<std::net::IpAddr>().is_ok() { "localhost".to_string() } else { host };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name(domain);
    if let Some(id) = identity {
        tls = tls.identity(id);
    }
    let channel = Endpoint::from_shared(server.to_string())?
        .tls_config(tls)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(channel)
}
