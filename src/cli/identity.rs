//! `ghthub identity …`.

use super::client::{Authed, ConnectArgs, HubClient};
use crate::proto::identity_client::IdentityClient;

impl HubClient {
    pub fn identity(&self) -> IdentityClient<Authed> {
        IdentityClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum IdentityCommand {}

pub async fn run(cmd: IdentityCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
