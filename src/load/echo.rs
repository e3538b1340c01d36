//! The bare echo server: tonic + the same rustls TLS as the hub, nothing else.

use std::net::SocketAddr;

use anyhow::Context;
use tonic::{
    transport::{Identity, Server, ServerTlsConfig},
    Request, Response, Status,
};

use crate::bench_proto::{
    echo_server::{Echo, EchoServer},
    EchoMessage,
};

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, req: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(req.into_inner()))
    }
}

pub async fn serve(listen: SocketAddr, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let paths = crate::pki::DevPaths::new(data_dir.join("certs"));
    crate::pki::ensure_dev_material(&paths, &[])?;
    let cert = std::fs::read(paths.server_cert()).context("server cert")?;
    let key = std::fs::read(paths.server_key()).context("server key")?;
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?
        .add_service(EchoServer::new(EchoService))
        .serve(listen)
        .await?;
    Ok(())
}
