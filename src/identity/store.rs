//! SQL of the identity domain.

use crate::{db::Db, facts::TerritoryFacts, AppResult};

/// Fills `publishes_identities` per establishment and `identities_linked_across_parties`.
pub async fn fill_facts(_db: &Db, _facts: &mut TerritoryFacts) -> AppResult<()> {
    // Placeholder until identities are stored: nothing is published yet.
    Ok(())
}
