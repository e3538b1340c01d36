//! `ghthub demo …`: sample data for newcomers.

use super::client::{ConnectArgs, HubClient};

#[derive(clap::Subcommand, Debug)]
pub enum DemoCommand {
    /// Create a plausible GHT (a support CHU, 5–12 parties, an associé) with inventories,
    /// identities, a year of movements and convergence indicators, through the hub's
    /// services. Run it as often as you like: what exists is kept.
    Seed(crate::demo::SeedArgs),
}

pub async fn run(cmd: DemoCommand, connect: &ConnectArgs) -> anyhow::Result<()> {
    match cmd {
        DemoCommand::Seed(args) => {
            // The seed mints its own party tokens; the connection needs none.
            let mut connect = connect.clone();
            connect.token = None;
            let hub = HubClient::connect(&connect).await?;
            crate::demo::seed(args, &hub).await
        }
    }
}
