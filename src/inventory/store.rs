//! SQL of the inventory domain.

use crate::{db::Db, facts::TerritoryFacts, AppResult};

/// Fills, for each establishment of `facts`, what its latest inventory says
/// (`has_inventory`, `inventory_at`, budgets, PSSI, applications).
pub async fn fill_facts(_db: &Db, _facts: &mut TerritoryFacts) -> AppResult<()> {
    // Placeholder until inventories are stored: no establishment has one yet.
    Ok(())
}
