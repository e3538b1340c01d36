//! The territorial identity index: upsert with automatic linking on qualified INS,
//! vigilance alerts and candidate matches; link, unlink, merge (A40) and unmerge.
//! Each function runs inside the caller's transaction, after `store::lock_index`.

use super::{
    changes::{invert, plan_join, plan_link, plan_merge, plan_unlink, Column, Decision, Val},
    matching::{differing_traits, score, Fields, CANDIDATE_THRESHOLD},
    store::{self, EventRow, IdentityRow},
    types::{transition, IdentityInput, Previous, Status, Transition},
};
use crate::{db::Tx, AppError, AppResult};

/// Candidates examined per blocking key on an upsert.
const CANDIDATES_PER_BLOCK: i64 = 50;

pub struct UpsertOutcome {
    pub row: IdentityRow,
    pub created: bool,
    pub transition: Transition,
    pub auto_linked: Vec<(String, String)>,
    pub alert_ids: Vec<String>,
    pub candidates: u32,
}

fn previous_of(r: &IdentityRow) -> Previous {
    Previous {
        status: r.status,
        ins: r.ins.clone(),
        strict_traits: [
            r.birth_name.clone(),
            r.first_given_name.clone(),
            r.birth_given_names.clone(),
            r.birth_date.clone(),
            r.sex.clone(),
            r.birth_place_code.clone(),
        ],
        merged_into_ipp: r.merged_into_ipp.clone(),
    }
}

fn key_of(r: &IdentityRow) -> (&str, &str) {
    (r.establishment_id.as_str(), r.ipp.as_str())
}

/// Creates or updates a local identity and maintains the index around it.
pub async fn upsert(
    conn: &mut impl Tx,
    ght: &str,
    input: &IdentityInput,
    author: &str,
    now: i64,
) -> AppResult<UpsertOutcome> {
    let prev = store::get(conn, &input.establishment_id, &input.ipp).await?;
    let trans = transition(prev.as_ref().map(previous_of).as_ref(), input)?;
    let keys = input.keys();
    let mut row = IdentityRow {
        establishment_id: input.establishment_id.clone(),
        ipp: input.ipp.clone(),
        ght_id: ght.to_string(),
        territorial_id: prev.as_ref().map(|p| p.territorial_id.clone()).unwrap_or_default(),
        status: trans.status,
        ins: trans.ins.clone(),
        birth_name: input.birth_name.clone(),
        first_given_name: input.first_given_name.clone(),
        birth_given_names: input.birth_given_names.clone(),
        used_name: input.used_name.clone(),
        used_given_name: input.used_given_name.clone(),
        birth_date: input.birth_date.clone(),
        sex: input.sex.clone(),
        birth_place_code: input.birth_place_code.clone(),
        document: super::types::document_str(input.document).to_string(),
        keys: keys.clone(),
        merged_into_ipp: None,
        created_at: prev.as_ref().map(|p| p.created_at).unwrap_or(now),
        updated_at: now,
        updated_by: author.to_string(),
    };

    // The same qualified INS elsewhere: the same patient when the strict traits agree
    // (unless a person decided otherwise), an identity-vigilance alert when they don't.
    let mut same = vec![];
    let mut alert_ids = vec![];
    if let (Status::Qualifiee, Some(ins)) = (trans.status, &trans.ins) {
        for other in store::with_ins(conn, ght, ins).await? {
            if key_of(&other) == key_of(&row) {
                continue;
            }
            let differing = differing_traits(&keys, &other.keys);
            if differing.is_empty() {
                if !store::pair_rejected(conn, key_of(&row), key_of(&other)).await? {
                    same.push(other);
                }
            } else {
                alert_ids.push(
                    store::raise_alert(conn, ght, ins, key_of(&row), key_of(&other), &differing, author, now).await?,
                );
            }
        }
    }

    let created = prev.is_none();
    let mut auto_linked = vec![];
    if created {
        // Join the matching patient's territorial identity directly rather than
        // creating one only to retire it.
        row.territorial_id = match same.first() {
            Some(o) => o.territorial_id.clone(),
            None => {
                let t = store::new_id('T');
                store::insert_territorial(conn, &t, ght, now).await?;
                t
            }
        };
        store::insert(conn, &row).await?;
        if let Some(o) = same.first() {
            record(
                conn,
                ght,
                "AUTO_LINK",
                author,
                now,
                "same qualified INS and strict traits",
                &[&row, o],
                &row.territorial_id,
                "",
                None,
                vec![],
            )
            .await?;
            auto_linked.push((o.establishment_id.clone(), o.ipp.clone()));
        }
    } else {
        store::update(conn, &row).await?;
    }
    for o in &same {
        // Earlier joins of this loop may have moved it: read its current identity.
        let Some(current) = store::get(conn, &o.establishment_id, &o.ipp).await? else { continue };
        if current.territorial_id == row.territorial_id {
            continue;
        }
        let from = current.territorial_id.clone();
        let locals: Vec<_> = store::locals_of(conn, &from).await?.iter().map(IdentityRow::index_local).collect();
        let changes = plan_join(&locals, &from, &row.territorial_id);
        store::apply_changes(conn, &changes).await?;
        record(
            conn,
            ght,
            "AUTO_LINK",
            author,
            now,
            "same qualified INS and strict traits",
            &[&row, &current],
            &row.territorial_id,
            &from,
            None,
            changes,
        )
        .await?;
        auto_linked.push((o.establishment_id.clone(), o.ipp.clone()));
    }

    // Candidate matches for a human: close strict traits in another territorial identity.
    let mut candidates = 0;
    for c in store::blocked(conn, ght, &keys, None, CANDIDATES_PER_BLOCK).await? {
        if key_of(&c) == key_of(&row) || c.territorial_id == row.territorial_id {
            continue;
        }
        let s = score(&keys, &c.keys, Fields::ALL);
        if s.score >= CANDIDATE_THRESHOLD && !store::pair_rejected(conn, key_of(&row), key_of(&c)).await? {
            store::upsert_candidate(conn, ght, key_of(&row), key_of(&c), s.score, &s.reasons, now).await?;
            candidates += 1;
        }
    }
    Ok(UpsertOutcome { row, created, transition: trans, auto_linked, alert_ids, candidates })
}

#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut impl Tx,
    ght: &str,
    kind: &str,
    author: &str,
    at: i64,
    reason: &str,
    identities: &[&IdentityRow],
    territorial_id: &str,
    other_territorial_id: &str,
    related: Option<String>,
    changes: Vec<super::changes::Change>,
) -> AppResult<EventRow> {
    let e = EventRow {
        id: store::new_id('E'),
        ght_id: ght.to_string(),
        kind: kind.to_string(),
        author: author.to_string(),
        at,
        reason: reason.to_string(),
        identities: identities.iter().map(|r| (r.establishment_id.clone(), r.ipp.clone())).collect(),
        territorial_id: territorial_id.to_string(),
        other_territorial_id: other_territorial_id.to_string(),
        related_event_id: related,
        changes,
    };
    store::insert_event(conn, &e).await?;
    Ok(e)
}

async fn existing(conn: &mut impl Tx, est: &str, ipp: &str) -> AppResult<IdentityRow> {
    let row = store::get(conn, est, ipp).await?.ok_or_else(|| AppError::not_found(format!("identity {est}:{ipp}")))?;
    if let Some(into) = &row.merged_into_ipp {
        return Err(AppError::precondition(format!("identity {est}:{ipp} was merged into IPP {into}")));
    }
    Ok(row)
}

/// The territorial identity of `b` joins the one of `a`.
pub async fn link(conn: &mut impl Tx, a: (&str, &str), b: (&str, &str), d: &Decision<'_>) -> AppResult<EventRow> {
    let ra = existing(conn, a.0, a.1).await?;
    let rb = existing(conn, b.0, b.1).await?;
    if ra.territorial_id == rb.territorial_id {
        return Err(AppError::precondition(format!(
            "identities {}:{} and {}:{} are already linked (territorial identity {})",
            a.0, a.1, b.0, b.1, ra.territorial_id
        )));
    }
    let locals: Vec<_> =
        store::locals_of(conn, &rb.territorial_id).await?.iter().map(IdentityRow::index_local).collect();
    let candidate = store::candidate_for_pair(conn, a, b).await?.filter(|c| c.status == "OPEN");
    let changes = plan_link(&locals, &ra.territorial_id, &rb.territorial_id, candidate.map(|c| c.open()).as_ref(), d);
    store::apply_changes(conn, &changes).await?;
    record(
        conn,
        &ra.ght_id,
        "LINK",
        d.by,
        d.at,
        d.reason,
        &[&ra, &rb],
        &ra.territorial_id,
        &rb.territorial_id,
        None,
        changes,
    )
    .await
}

/// `x` (with the IPPs merged into it) leaves its territorial identity for a new one,
/// and is recorded as not the same patient as the identities it leaves.
pub async fn unlink(conn: &mut impl Tx, x: (&str, &str), d: &Decision<'_>) -> AppResult<EventRow> {
    let rx = existing(conn, x.0, x.1).await?;
    let locals = store::locals_of(conn, &rx.territorial_id).await?;
    let follows =
        |l: &IdentityRow| key_of(l) == x || (l.establishment_id == x.0 && l.merged_into_ipp.as_deref() == Some(x.1));
    let staying: Vec<&IdentityRow> = locals.iter().filter(|l| !follows(l) && l.merged_into_ipp.is_none()).collect();
    if staying.is_empty() {
        return Err(AppError::precondition(format!(
            "identity {}:{} is the only identity of territorial identity {}: nothing to unlink",
            x.0, x.1, rx.territorial_id
        )));
    }
    let new_t = store::new_id('T');
    store::insert_territorial(conn, &new_t, &rx.ght_id, d.at).await?;
    let index: Vec<_> = locals.iter().map(IdentityRow::index_local).collect();
    let changes = plan_unlink(&rx.index_local(), &index, &new_t);
    store::apply_changes(conn, &changes).await?;
    for o in staying {
        let s = score(&rx.keys, &o.keys, Fields::ALL);
        store::reject_pair(conn, &rx.ght_id, x, key_of(o), s.score, d.by, d.reason, d.at).await?;
    }
    record(conn, &rx.ght_id, "UNLINK", d.by, d.at, d.reason, &[&rx], &new_t, &rx.territorial_id, None, changes).await
}

/// Merges the duplicate IPP `merged` into `surviving` (same establishment, A40).
pub async fn merge(
    conn: &mut impl Tx,
    surviving: (&str, &str),
    merged: (&str, &str),
    d: &Decision<'_>,
) -> AppResult<EventRow> {
    let rs = existing(conn, surviving.0, surviving.1).await?;
    let rm = existing(conn, merged.0, merged.1).await?;
    let locals: Vec<_> =
        store::locals_of(conn, &rm.territorial_id).await?.iter().map(IdentityRow::index_local).collect();
    let encounters = store::encounters_of(conn, merged.0, merged.1).await?;
    let candidate = store::candidate_for_pair(conn, surviving, merged).await?.filter(|c| c.status == "OPEN");
    let changes =
        plan_merge(&rs.index_local(), &rm.index_local(), &locals, &encounters, candidate.map(|c| c.open()).as_ref(), d);
    store::apply_changes(conn, &changes).await?;
    let other = if rm.territorial_id != rs.territorial_id { rm.territorial_id.as_str() } else { "" };
    record(conn, &rs.ght_id, "MERGE", d.by, d.at, d.reason, &[&rs, &rm], &rs.territorial_id, other, None, changes).await
}

/// Undoes a merge exactly, or refuses when rows it changed were changed since.
pub async fn unmerge(conn: &mut impl Tx, merge: &EventRow, d: &Decision<'_>) -> AppResult<EventRow> {
    if merge.kind != "MERGE" {
        return Err(AppError::precondition(format!("event {} is a {}, not a MERGE", merge.id, merge.kind)));
    }
    if let Some(u) = store::undone_by(conn, &merge.id).await? {
        return Err(AppError::precondition(format!("merge {} was already undone by {u}", merge.id)));
    }
    let inverse = invert(&merge.changes);
    store::apply_changes(conn, &inverse).await.map_err(|e| match e {
        AppError::FailedPrecondition(m) => AppError::precondition(format!(
            "cannot undo merge {} exactly: {m}; undo the later link/merge events first",
            merge.id
        )),
        other => other,
    })?;
    // The rows the merge wrote are back as they were, but a later merge may rest on them
    // without having written them: an IPP merged since into a survivor of the moved
    // group would be left in another territorial identity than its survivor. Refused
    // (the transaction rolls back): the later merge must be undone first.
    let mut moved: Vec<String> = inverse
        .iter()
        .filter(|c| c.column == Column::LocalTerritorial)
        .flat_map(|c| [&c.before, &c.after])
        .filter_map(|v| match v {
            Val::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    moved.sort();
    moved.dedup();
    if let Some((est, ipp, into)) = store::merged_apart(conn, &moved).await?.into_iter().next() {
        return Err(AppError::precondition(format!(
            "cannot undo merge {} exactly: identity {est}:{ipp}, merged into IPP {into} since, would be separated \
             from it; undo that later merge first",
            merge.id
        )));
    }
    let e = EventRow {
        id: store::new_id('E'),
        ght_id: merge.ght_id.clone(),
        kind: "UNMERGE".into(),
        author: d.by.to_string(),
        at: d.at,
        reason: d.reason.to_string(),
        identities: merge.identities.clone(),
        territorial_id: merge.territorial_id.clone(),
        other_territorial_id: merge.other_territorial_id.clone(),
        related_event_id: Some(merge.id.clone()),
        changes: inverse,
    };
    store::insert_event(conn, &e).await?;
    Ok(e)
}
