//! `ghthub movements …`.

use super::client::{Authed, ConnectArgs, HubClient};
use crate::proto::movements_client::MovementsClient;

impl HubClient {
    pub fn movements(&self) -> MovementsClient<Authed> {
        MovementsClient::with_interceptor(self.channel.clone(), self.interceptor())
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum MovementsCommand {}

pub async fn run(cmd: MovementsCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
