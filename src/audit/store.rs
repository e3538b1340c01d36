//! SQL of the audit trail: append (chained), query, verify.

use std::sync::LazyLock;

use sqlx::Row;

use super::{record_hash, AuditEntry, AuditRecord};
use crate::{
    db::{Arg, Db, Reader, Tx},
    identity::store::placeholders,
    time::now_micros,
    AppResult,
};

/// Arbitrary constant naming the advisory lock that serialises chain extension
/// across hub replicas on PostgreSQL.
const AUDIT_CHAIN_LOCK: i64 = 0x6768_7468_7562; // "ghthub"

const HEAD_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
const INSERT_HEAD: &str = "INSERT INTO audit_log (seq, at, subject, role, ght_id, establishment_id, rpc, data_class, \
     action, target_ids, target_ght_id, decision, reason, request_id, prev_hash, hash)";
const AUDIT_COLS: usize = 16;
const TARGET_HEAD: &str = "INSERT INTO audit_target (target_id, seq)";
/// The one-row statements of the SQLite path, built once: it commits thousands of
/// batches a second under load.
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| format!("{INSERT_HEAD} VALUES {}", placeholders(1, AUDIT_COLS)));
static TARGET_ONE: LazyLock<String> = LazyLock::new(|| format!("{TARGET_HEAD} VALUES {}", placeholders(1, 2)));

/// The distinct, non-empty target ids of an entry (one index row each).
fn targets(e: &AuditEntry) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    e.target_ids.iter().map(String::as_str).filter(|t| !t.is_empty() && seen.insert(*t)).collect()
}

/// Appends entries in one transaction; returns the seq of the first.
///
/// On SQLite the batch runs on the audit file's direct writer, on the audit task's own
/// thread (see [`crate::db::SqliteDirect::write_here`]): no thread hand-off at all, and
/// every nominative read waits for this commit.
pub async fn append_batch(db: &Db, entries: &[&AuditEntry]) -> AppResult<i64> {
    crate::write_tx!(@on &db.audit_direct, &db.audit_write, false, |tx| {
        // Serialises chain extension across replicas.
        crate::db::xact_lock(tx, AUDIT_CHAIN_LOCK).await?;
        let head = tx.row(HEAD_SQL, &[], |r| Ok((r.int(0)?, r.text(1)?))).await?;
        let (mut seq, mut prev) = head.unwrap_or((0, String::new()));
        let first = seq + 1;
        // One time for the batch: strictly increasing seqs keep the chain's order.
        let at = now_micros();
        let mut chained = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let hash = record_hash(seq, at, e, &prev);
            chained.push(Chained { seq, at, entry: e, target_ids: e.target_ids.join("\n"), prev_hash: prev, hash: hash.clone() });
            prev = hash;
        }
        if tx.is_postgres() {
            // A statement per table and chunk: a batch of a few dozen records was as
            // many round trips, one after the other, while every nominative read of the
            // batch waited for the commit (GetIdentity p50 9-20 ms in the load mix).
            for chunk in chained.chunks(crate::db::rows_per_statement(tx, AUDIT_COLS)) {
                let sql = format!("{INSERT_HEAD} VALUES {}", placeholders(chunk.len(), AUDIT_COLS));
                let args: Vec<Arg> = chunk.iter().flat_map(Chained::args).collect();
                tx.exec(&sql, &args).await?;
            }
            let targets: Vec<(&str, i64)> =
                chained.iter().flat_map(|c| targets(c.entry).into_iter().map(move |t| (t, c.seq))).collect();
            for chunk in targets.chunks(crate::db::rows_per_statement(tx, 2)) {
                let sql = format!("{TARGET_HEAD} VALUES {}", placeholders(chunk.len(), 2));
                let args: Vec<Arg> = chunk.iter().flat_map(|(t, seq)| [Arg::from(*t), Arg::from(*seq)]).collect();
                tx.exec(&sql, &args).await?;
            }
        } else {
            // SQLite, in-process: one prepared statement per row is the cheapest.
            for c in &chained {
                tx.exec(&INSERT_ONE, &c.args()).await?;
                for t in targets(c.entry) {
                    tx.exec(&TARGET_ONE, &[t.into(), c.seq.into()]).await?;
                }
            }
        }
        Ok(first)
    })
}

/// An entry with its place in the chain, as appended.
struct Chained<'a> {
    seq: i64,
    at: i64,
    entry: &'a AuditEntry,
    target_ids: String,
    prev_hash: String,
    hash: String,
}

impl Chained<'_> {
    /// The binds of its `audit_log` row, in [`INSERT_HEAD`]'s column order.
    fn args(&self) -> [Arg<'_>; AUDIT_COLS] {
        let e = self.entry;
        [
            self.seq.into(),
            self.at.into(),
            (&e.subject).into(),
            (&e.role).into(),
            (&e.ght_id).into(),
            (&e.establishment_id).into(),
            (&e.rpc).into(),
            (&e.data_class).into(),
            (&e.action).into(),
            (&self.target_ids).into(),
            (&e.target_ght_id).into(),
            (&e.decision).into(),
            (&e.reason).into(),
            (&e.request_id).into(),
            (&self.prev_hash).into(),
            (&self.hash).into(),
        ]
    }
}

const COLUMNS: &str = "a.seq, a.at, a.subject, a.role, a.ght_id, a.establishment_id, a.rpc, a.data_class, a.action, \
                       a.target_ids, a.target_ght_id, a.decision, a.reason, a.request_id, a.prev_hash, a.hash";

fn from_row(row: &sqlx::any::AnyRow) -> AppResult<AuditRecord> {
    let targets: String = row.try_get(9)?;
    Ok(AuditRecord {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        entry: AuditEntry {
            subject: row.try_get(2)?,
            role: row.try_get(3)?,
            ght_id: row.try_get(4)?,
            establishment_id: row.try_get(5)?,
            rpc: row.try_get(6)?,
            data_class: row.try_get(7)?,
            action: row.try_get(8)?,
            target_ids: if targets.is_empty() { vec![] } else { targets.split('\n').map(String::from).collect() },
            target_ght_id: row.try_get(10)?,
            decision: row.try_get(11)?,
            reason: row.try_get(12)?,
            request_id: row.try_get(13)?,
        },
        prev_hash: row.try_get(14)?,
        hash: row.try_get(15)?,
    })
}

#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Records about this GHT (as caller's GHT or target GHT); None = all.
    pub ght_id: Option<String>,
    pub target_id: Option<String>,
    pub subject: Option<String>,
    pub break_glass_only: bool,
    pub after_seq: i64,
    pub limit: i64,
}

pub async fn query(db: &Db, q: &AuditQuery) -> AppResult<Vec<AuditRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log a");
    let mut binds: Vec<String> = Vec::new();
    let mut conds = vec![format!("a.seq > {}", q.after_seq.max(0))];
    if let Some(t) = &q.target_id {
        binds.push(t.clone());
        sql.push_str(&format!(" JOIN audit_target t ON t.seq = a.seq AND t.target_id = ${}", binds.len()));
    }
    if let Some(g) = &q.ght_id {
        binds.push(g.clone());
        let n = binds.len();
        conds.push(format!("(a.ght_id = ${n} OR a.target_ght_id = ${n})"));
    }
    if let Some(s) = &q.subject {
        binds.push(s.clone());
        conds.push(format!("a.subject = ${}", binds.len()));
    }
    if q.break_glass_only {
        conds.push("a.decision = 'BREAK_GLASS'".into());
    }
    sql.push_str(" WHERE ");
    sql.push_str(&conds.join(" AND "));
    sql.push_str(&format!(" ORDER BY a.seq LIMIT {}", q.limit.clamp(1, 1000)));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&db.audit_read).await?;
    rows.iter().map(from_row).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub ok: bool,
    pub records: i64,
    pub first_bad_seq: i64,
    pub detail: String,
}

/// Walks the whole chain in seq order, recomputing every hash and link.
pub async fn verify(db: &Db) -> AppResult<Verification> {
    let mut prev_hash = String::new();
    let mut expected_seq = 1i64;
    let mut count = 0i64;
    loop {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log a WHERE a.seq >= $1 ORDER BY a.seq LIMIT 5000"))
                .bind(expected_seq)
                .fetch_all(&db.audit_read)
                .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let r = from_row(row)?;
            let bad = |detail: String| Verification { ok: false, records: count, first_bad_seq: r.seq, detail };
            if r.seq != expected_seq {
                return Ok(bad(format!("record {expected_seq} is missing (next is {})", r.seq)));
            }
            if r.prev_hash != prev_hash {
                return Ok(bad("prev_hash does not match the previous record's hash".into()));
            }
            let recomputed = record_hash(r.seq, r.at, &r.entry, &r.prev_hash);
            if recomputed != r.hash {
                return Ok(bad("record content does not match its hash (edited)".into()));
            }
            prev_hash = r.hash;
            expected_seq += 1;
            count += 1;
        }
    }
    Ok(Verification { ok: true, records: count, first_bad_seq: 0, detail: String::new() })
}
