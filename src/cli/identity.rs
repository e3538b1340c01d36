//! `ghthub identity …`.

use super::client::ConnectArgs;

#[derive(clap::Subcommand, Debug)]
pub enum IdentityCommand {}

pub async fn run(cmd: IdentityCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
