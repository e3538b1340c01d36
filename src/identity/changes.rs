//! Exact, reversible changes to the territorial index.
//!
//! A merge (A40) is planned as a list of column changes, each with the value before
//! and after. The list is applied with optimistic checks (a row whose value is not
//! the expected "before" aborts the whole transaction) and stored in the event, so
//! an unmerge applies its inverse: the state the merge changed comes back exactly,
//! or nothing happens when those rows changed again since. Links and unlinks use the
//! same machinery, so every index event records precisely what it did.

use serde::{Deserialize, Serialize};

/// A column value (the index only changes text columns and one time column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Val {
    Null,
    Text(String),
    Int(i64),
}

impl Val {
    pub fn text(s: impl Into<String>) -> Val {
        Val::Text(s.into())
    }
    pub fn opt_text(s: Option<impl Into<String>>) -> Val {
        s.map(|s| Val::Text(s.into())).unwrap_or(Val::Null)
    }
    pub fn opt_int(i: Option<i64>) -> Val {
        i.map(Val::Int).unwrap_or(Val::Null)
    }
}

/// The columns the index may change, each with its table and key columns. A closed
/// set: changes read back from an event can only ever name these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Column {
    /// local_identity.territorial_id, key (establishment_id, ipp).
    LocalTerritorial,
    /// local_identity.merged_into_ipp, key (establishment_id, ipp).
    LocalMergedInto,
    /// territorial_identity.merged_into, key (id).
    TerritorialMergedInto,
    /// encounter.ipp, key (establishment_id, encounter_id).
    EncounterIpp,
    /// candidate_match.status / decided_by / decided_at / decision_reason, key (id).
    CandidateStatus,
    CandidateDecidedBy,
    CandidateDecidedAt,
    CandidateReason,
}

impl Column {
    /// The column holds a BIGINT (a NULL is bound with that type: PostgreSQL checks it).
    pub fn is_int(self) -> bool {
        self == Column::CandidateDecidedAt
    }

    /// (table, column, key columns)
    pub fn sql(self) -> (&'static str, &'static str, &'static [&'static str]) {
        const LOCAL: &[&str] = &["establishment_id", "ipp"];
        const ID: &[&str] = &["id"];
        const ENC: &[&str] = &["establishment_id", "encounter_id"];
        match self {
            Column::LocalTerritorial => ("local_identity", "territorial_id", LOCAL),
            Column::LocalMergedInto => ("local_identity", "merged_into_ipp", LOCAL),
            Column::TerritorialMergedInto => ("territorial_identity", "merged_into", ID),
            Column::EncounterIpp => ("encounter", "ipp", ENC),
            Column::CandidateStatus => ("candidate_match", "status", ID),
            Column::CandidateDecidedBy => ("candidate_match", "decided_by", ID),
            Column::CandidateDecidedAt => ("candidate_match", "decided_at", ID),
            Column::CandidateReason => ("candidate_match", "decision_reason", ID),
        }
    }
}

/// One column of one row, from `before` to `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub column: Column,
    pub key: Vec<String>,
    pub before: Val,
    pub after: Val,
}

/// The changes that undo `changes`: reversed order, before and after swapped.
pub fn invert(changes: &[Change]) -> Vec<Change> {
    changes
        .iter()
        .rev()
        .map(|c| Change { column: c.column, key: c.key.clone(), before: c.after.clone(), after: c.before.clone() })
        .collect()
}

/// A local identity as the index sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLocal {
    pub establishment_id: String,
    pub ipp: String,
    pub territorial_id: String,
    pub merged_into_ipp: Option<String>,
}

/// An open candidate match concerned by a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCandidate {
    pub id: String,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
}

/// Who decided, when and why (closes candidates).
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub by: &'a str,
    pub at: i64,
    pub reason: &'a str,
}

fn close_candidate(c: &OpenCandidate, status: &str, d: &Decision, out: &mut Vec<Change>) {
    let key = vec![c.id.clone()];
    let mut push = |column, before: Val, after: Val| {
        if before != after {
            out.push(Change { column, key: key.clone(), before, after })
        }
    };
    push(Column::CandidateStatus, Val::text(&c.status), Val::text(status));
    push(Column::CandidateDecidedBy, Val::opt_text(c.decided_by.clone()), Val::text(d.by));
    push(Column::CandidateDecidedAt, Val::opt_int(c.decided_at), Val::Int(d.at));
    push(Column::CandidateReason, Val::opt_text(c.decision_reason.clone()), Val::text(d.reason));
}

/// Moves every local identity of territorial identity `from` into `into` and retires
/// `from` (link, auto-link, and the territorial side of a merge).
pub fn plan_join(locals_of_from: &[IndexLocal], from: &str, into: &str) -> Vec<Change> {
    let mut out: Vec<Change> = locals_of_from
        .iter()
        .filter(|l| l.territorial_id == from)
        .map(|l| Change {
            column: Column::LocalTerritorial,
            key: vec![l.establishment_id.clone(), l.ipp.clone()],
            before: Val::text(from),
            after: Val::text(into),
        })
        .collect();
    out.push(Change {
        column: Column::TerritorialMergedInto,
        key: vec![from.to_string()],
        before: Val::Null,
        after: Val::text(into),
    });
    out
}

/// Link: the territorial identity of `b` joins the one of `a`; the candidate between
/// them (if any) is closed as LINKED.
pub fn plan_link(
    locals_of_b: &[IndexLocal],
    t_a: &str,
    t_b: &str,
    candidate: Option<&OpenCandidate>,
    d: &Decision,
) -> Vec<Change> {
    let mut out = plan_join(locals_of_b, t_b, t_a);
    if let Some(c) = candidate {
        close_candidate(c, "LINKED", d, &mut out);
    }
    out
}

/// Unlink: `x` and the IPPs merged into it leave their territorial identity for `new_t`.
/// Merges chain (an IPP that absorbed others may itself be merged later), so the IPPs
/// merged into those leave too: a merged IPP always stays with its survivor.
pub fn plan_unlink(x: &IndexLocal, locals_of_t: &[IndexLocal], new_t: &str) -> Vec<Change> {
    let same_est: Vec<&IndexLocal> = locals_of_t.iter().filter(|l| l.establishment_id == x.establishment_id).collect();
    let mut leaving: Vec<&str> = vec![x.ipp.as_str()];
    loop {
        let more: Vec<&str> = same_est
            .iter()
            .filter(|l| !leaving.contains(&l.ipp.as_str()))
            .filter(|l| l.merged_into_ipp.as_deref().is_some_and(|into| leaving.contains(&into)))
            .map(|l| l.ipp.as_str())
            .collect();
        if more.is_empty() {
            break;
        }
        leaving.extend(more);
    }
    same_est
        .into_iter()
        .filter(|l| leaving.contains(&l.ipp.as_str()))
        .map(|l| Change {
            column: Column::LocalTerritorial,
            key: vec![l.establishment_id.clone(), l.ipp.clone()],
            before: Val::text(&l.territorial_id),
            after: Val::text(new_t),
        })
        .collect()
}

/// What a merge of `merged` into `surviving` (same establishment) changes:
/// `merged` points to `surviving`; its encounters move to `surviving`; when the two
/// are in different territorial identities, the merged one's joins the survivor's;
/// the candidate between them (if any) is closed as MERGED.
pub fn plan_merge(
    surviving: &IndexLocal,
    merged: &IndexLocal,
    locals_of_merged_t: &[IndexLocal],
    encounters_of_merged: &[String],
    candidate: Option<&OpenCandidate>,
    d: &Decision,
) -> Vec<Change> {
    let mut out = vec![Change {
        column: Column::LocalMergedInto,
        key: vec![merged.establishment_id.clone(), merged.ipp.clone()],
        before: Val::opt_text(merged.merged_into_ipp.clone()),
        after: Val::text(&surviving.ipp),
    }];
    for e in encounters_of_merged {
        out.push(Change {
            column: Column::EncounterIpp,
            key: vec![merged.establishment_id.clone(), e.clone()],
            before: Val::text(&merged.ipp),
            after: Val::text(&surviving.ipp),
        });
    }
    if merged.territorial_id != surviving.territorial_id {
        out.extend(plan_join(locals_of_merged_t, &merged.territorial_id, &surviving.territorial_id));
    }
    if let Some(c) = candidate {
        close_candidate(c, "MERGED", d, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The index as a map of (column, key) → value, to check plans without a database.
    type Model = BTreeMap<(Column, Vec<String>), Val>;

    fn apply(model: &mut Model, changes: &[Change]) -> Result<(), String> {
        for c in changes {
            let slot = model.get_mut(&(c.column, c.key.clone())).ok_or_else(|| format!("no row {c:?}"))?;
            if *slot != c.before {
                return Err(format!("stale: {c:?} found {slot:?}"));
            }
            *slot = c.after.clone();
        }
        Ok(())
    }

    /// A random territory: locals of two establishments spread over a few territorial
    /// identities, encounters owned by random locals, one open candidate.
    fn territory() -> impl Strategy<Value = (Vec<IndexLocal>, Vec<(String, usize)>, usize, usize)> {
        (2usize..8, proptest::collection::vec((0usize..2, 0usize..4), 8), proptest::collection::vec(0usize..8, 0..10))
            .prop_flat_map(|(n, slots, encs)| {
                let locals: Vec<IndexLocal> = (0..n)
                    .map(|i| IndexLocal {
                        establishment_id: format!("E{}", slots[i].0),
                        ipp: format!("P{i}"),
                        territorial_id: format!("T{}", slots[i].1),
                        merged_into_ipp: None,
                    })
                    .collect();
                let encounters: Vec<(String, usize)> =
                    encs.iter().enumerate().map(|(k, owner)| (format!("V{k}"), owner % n)).collect();
                (Just(locals), Just(encounters), 0..n, 0..n)
            })
    }

    fn model_of(locals: &[IndexLocal], encounters: &[(String, usize)]) -> Model {
        let mut m = Model::new();
        for l in locals {
            let k = vec![l.establishment_id.clone(), l.ipp.clone()];
            m.insert((Column::LocalTerritorial, k.clone()), Val::text(&l.territorial_id));
            m.insert((Column::LocalMergedInto, k), Val::opt_text(l.merged_into_ipp.clone()));
        }
        for t in 0..4 {
            m.insert((Column::TerritorialMergedInto, vec![format!("T{t}")]), Val::Null);
        }
        for (e, owner) in encounters {
            let o = &locals[*owner];
            m.insert((Column::EncounterIpp, vec![o.establishment_id.clone(), e.clone()]), Val::text(&o.ipp));
        }
        m.insert((Column::CandidateStatus, vec!["C1".into()]), Val::text("OPEN"));
        m.insert((Column::CandidateDecidedBy, vec!["C1".into()]), Val::Null);
        m.insert((Column::CandidateDecidedAt, vec!["C1".into()]), Val::Null);
        m.insert((Column::CandidateReason, vec!["C1".into()]), Val::Null);
        m
    }

    proptest! {
        /// Merge then unmerge restores the index exactly, whatever the territory.
        #[test]
        fn merge_then_unmerge_restores_exactly((locals, encounters, s, m) in territory()) {
            prop_assume!(s != m);
            let (sv, mg) = (&locals[s], &locals[m]);
            prop_assume!(sv.establishment_id == mg.establishment_id);
            let original = model_of(&locals, &encounters);
            let mut model = original.clone();
            let of_mt: Vec<IndexLocal> = locals.iter().filter(|l| l.territorial_id == mg.territorial_id).cloned().collect();
            let encs: Vec<String> = encounters.iter().filter(|(_, o)| *o == m).map(|(e, _)| e.clone()).collect();
            let cand = OpenCandidate { id: "C1".into(), status: "OPEN".into(), decided_by: None, decided_at: None, decision_reason: None };
            let d = Decision { by: "dim", at: 42, reason: "doublon" };
            let plan = plan_merge(sv, mg, &of_mt, &encs, Some(&cand), &d);
            apply(&mut model, &plan).unwrap();
            // After the merge: the duplicate points to the survivor, its encounters and
            // every identity of its territorial identity moved to the survivor's.
            let key = |l: &IndexLocal| vec![l.establishment_id.clone(), l.ipp.clone()];
            prop_assert_eq!(&model[&(Column::LocalMergedInto, key(mg))], &Val::text(&sv.ipp));
            for l in &of_mt {
                prop_assert_eq!(&model[&(Column::LocalTerritorial, key(l))], &Val::text(&sv.territorial_id));
            }
            for e in &encs {
                prop_assert_eq!(&model[&(Column::EncounterIpp, vec![mg.establishment_id.clone(), e.clone()])], &Val::text(&sv.ipp));
            }
            prop_assert_eq!(&model[&(Column::CandidateStatus, vec!["C1".to_string()])], &Val::text("MERGED"));
            // The inverse restores every value.
            apply(&mut model, &invert(&plan)).unwrap();
            prop_assert_eq!(&model, &original);
            // And the inverse cannot apply twice (stale check).
            prop_assert!(plan.is_empty() || apply(&mut model, &invert(&plan)).is_err());
        }

        /// Joining then inverting is exact too; the joined identity is retired.
        #[test]
        fn join_is_exactly_reversible((locals, encounters, a, b) in territory()) {
            let (ta, tb) = (locals[a].territorial_id.clone(), locals[b].territorial_id.clone());
            prop_assume!(ta != tb);
            let original = model_of(&locals, &encounters);
            let mut model = original.clone();
            let plan = plan_join(&locals, &tb, &ta);
            apply(&mut model, &plan).unwrap();
            prop_assert!(locals.iter().all(|l| model[&(Column::LocalTerritorial, vec![l.establishment_id.clone(), l.ipp.clone()])] != Val::text(&tb)));
            prop_assert_eq!(&model[&(Column::TerritorialMergedInto, vec![tb.clone()])], &Val::text(&ta));
            apply(&mut model, &invert(&plan)).unwrap();
            prop_assert_eq!(model, original);
        }
    }

    #[test]
    fn changes_round_trip_through_json() {
        let c = vec![Change {
            column: Column::EncounterIpp,
            key: vec!["E1".into(), "V1".into()],
            before: Val::text("P1"),
            after: Val::Null,
        }];
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Change>>(&j).unwrap(), c);
    }
}
