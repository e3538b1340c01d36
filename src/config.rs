//! Settings of `ghthub serve`: every one a flag and an environment variable.

use std::{net::SocketAddr, path::PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GHTHUB_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Database: sqlite://PATH (embedded default) or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/ghthub.db")]
    pub database_url: String,
    /// Folder for generated development material (certificates, token keys).
    #[arg(long, env = "GHTHUB_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Server certificate (PEM). Without it, dev certificates are generated in DATA_DIR/certs.
    #[arg(long, env = "GHTHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "GHTHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA that signs client certificates (PEM). Enables mTLS (optional unless --require-client-cert).
    #[arg(long, env = "GHTHUB_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Require a client certificate whose CN equals the token subject.
    #[arg(long, env = "GHTHUB_REQUIRE_CLIENT_CERT")]
    pub require_client_cert: bool,
    /// Expected token issuer (`iss`).
    #[arg(long, env = "GHTHUB_TOKEN_ISSUER", default_value = "ghthub-dev")]
    pub token_issuer: String,
    /// Expected token audience (`aud`).
    #[arg(long, env = "GHTHUB_TOKEN_AUDIENCE", default_value = "ghthub")]
    pub token_audience: String,
    /// Token verification keys, `KID=PATH` (Ed25519 public key PEM); repeat or comma-separate
    /// for rotation. Default: the generated DATA_DIR/certs/token-verify.pem with kid "dev".
    #[arg(long = "token-verify-key", env = "GHTHUB_TOKEN_VERIFY_KEYS", value_delimiter = ',')]
    pub token_verify_keys: Vec<String>,
    /// Database connections in the pool.
    #[arg(long, env = "GHTHUB_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Deadline applied to every unary call (clients may ask for less with grpc-timeout).
    #[arg(long, env = "GHTHUB_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Largest message accepted or sent, in bytes.
    #[arg(long, env = "GHTHUB_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "GHTHUB_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// Calls per second allowed to one party (token subject); 0 = unlimited.
    #[arg(long, env = "GHTHUB_RATE_LIMIT_PER_PARTY", default_value_t = 20_000)]
    pub rate_limit_per_party: u32,
    /// Burst above the per-party rate.
    #[arg(long, env = "GHTHUB_RATE_BURST_PER_PARTY", default_value_t = 40_000)]
    pub rate_burst_per_party: u32,
    /// Calls and streams one party may have open at once; 0 = unlimited.
    #[arg(long, env = "GHTHUB_MAX_IN_FLIGHT_PER_PARTY", default_value_t = 256)]
    pub max_in_flight_per_party: usize,
    /// Extra DNS names for the generated dev server certificate.
    #[arg(long, env = "GHTHUB_SERVER_NAMES", value_delimiter = ',')]
    pub server_names: Vec<String>,
    /// Seconds between reporting NOT_SERVING and closing, on SIGTERM.
    #[arg(long, env = "GHTHUB_SHUTDOWN_GRACE_SECS", default_value_t = 2)]
    pub shutdown_grace_secs: u64,
}

impl ServeArgs {
    /// Defaults for an embedded hub rooted in `data_dir` (tests, demos).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>, database_url: impl Into<String>) -> ServeArgs {
        let data_dir = data_dir.into();
        ServeArgs {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            database_url: database_url.into(),
            data_dir,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            require_client_cert: false,
            token_issuer: "ghthub-dev".into(),
            token_audience: "ghthub".into(),
            token_verify_keys: vec![],
            db_max_connections: 8,
            request_timeout_secs: 30,
            max_message_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 256,
            rate_limit_per_party: 20_000,
            rate_burst_per_party: 40_000,
            max_in_flight_per_party: 256,
            server_names: vec![],
            shutdown_grace_secs: 0,
        }
    }

    pub fn dev_paths(&self) -> crate::pki::DevPaths {
        crate::pki::DevPaths::new(self.data_dir.join("certs"))
    }
}
