//! `ghthub inventory …` and `ghthub territory …`.

use super::client::ConnectArgs;

#[derive(clap::Subcommand, Debug)]
pub enum InventoryCommand {}

#[derive(clap::Subcommand, Debug)]
pub enum TerritoryCommand {}

pub async fn run_inventory(cmd: InventoryCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}

pub async fn run_territory(cmd: TerritoryCommand, _connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {}
}
