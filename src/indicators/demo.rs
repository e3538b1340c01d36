//! Demo data of this domain for `ghthub demo seed` (see `crate::demo`).

use crate::demo::DemoTerritory;

/// Seeds this domain's part of the demo territory through the hub's gRPC services.
pub async fn seed(_territory: &DemoTerritory) -> anyhow::Result<()> {
    // Placeholder until the domain's services exist: nothing to seed yet.
    Ok(())
}
