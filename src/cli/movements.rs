//! `ghthub movements …`.

use super::client::ConnectArgs;

#[derive(clap::Subcommand, Debug)]
pub enum MovementsCommand {}

pub async fn run(cmd: MovementsCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
