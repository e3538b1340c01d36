//! `ghthub indicators …`.

use super::client::ConnectArgs;

#[derive(clap::Subcommand, Debug)]
pub enum IndicatorsCommand {}

pub async fn run(cmd: IndicatorsCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
