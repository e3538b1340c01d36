//! SQL of the identity domain: local identities, territorial identities, index
//! events, candidate matches and vigilance alerts.

use super::{
    changes::{Change, IndexLocal, OpenCandidate, Val},
    ins::Ins,
    matching::MatchKeys,
    types::{document_from_str, sex_from_code, Status},
};
use crate::{
    db::{Arg, Cols, Db, Reader, Tx},
    facts::TerritoryFacts,
    proto,
    time::to_rfc3339,
    AppError, AppResult,
};

/// A local identity row.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRow {
    pub establishment_id: String,
    pub ipp: String,
    pub ght_id: String,
    pub territorial_id: String,
    pub status: Status,
    pub ins: Option<Ins>,
    pub birth_name: String,
    pub first_given_name: String,
    pub birth_given_names: String,
    pub used_name: String,
    pub used_given_name: String,
    pub birth_date: String,
    pub sex: String,
    pub birth_place_code: String,
    pub document: String,
    pub keys: MatchKeys,
    pub merged_into_ipp: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

impl IdentityRow {
    /// What a reader sees: the INS only when qualified (RECUPEREE: withheld).
    pub fn to_proto(&self) -> proto::LocalIdentity {
        let carried = self.status == Status::Qualifiee;
        proto::LocalIdentity {
            establishment_id: self.establishment_id.clone(),
            ipp: self.ipp.clone(),
            status: self.status.to_proto() as i32,
            ins: self
                .ins
                .as_ref()
                .filter(|_| carried)
                .map(|i| proto::InsIdentifier { matricule: i.matricule.clone(), oid: i.oid.clone() }),
            birth_name: self.birth_name.clone(),
            first_given_name: self.first_given_name.clone(),
            birth_given_names: self.birth_given_names.clone(),
            used_name: self.used_name.clone(),
            used_given_name: self.used_given_name.clone(),
            birth_date: self.birth_date.clone(),
            sex: sex_from_code(&self.sex) as i32,
            birth_place_code: self.birth_place_code.clone(),
            identity_document: document_from_str(&self.document) as i32,
            territorial_id: self.territorial_id.clone(),
            ins_withheld: self.ins.is_some() && !carried,
            merged_into_ipp: self.merged_into_ipp.clone().unwrap_or_default(),
            created_at: to_rfc3339(self.created_at),
            updated_at: to_rfc3339(self.updated_at),
        }
    }

    pub fn index_local(&self) -> IndexLocal {
        IndexLocal {
            establishment_id: self.establishment_id.clone(),
            ipp: self.ipp.clone(),
            territorial_id: self.territorial_id.clone(),
            merged_into_ipp: self.merged_into_ipp.clone(),
        }
    }

    pub fn local_ref(&self) -> proto::LocalIdentityRef {
        proto::LocalIdentityRef { establishment_id: self.establishment_id.clone(), ipp: self.ipp.clone() }
    }

    /// "establishment:IPP", the patient reference written to the audit trail.
    pub fn audit_ref(&self) -> String {
        format!("{}:{}", self.establishment_id, self.ipp)
    }
}

const COLS: &str = "establishment_id, ipp, ght_id, territorial_id, status, ins_matricule, ins_oid, birth_name, \
    first_given_name, birth_given_names, used_name, used_given_name, birth_date, sex, birth_place_code, \
    identity_document, birth_name_norm, birth_name_phon, first_name_norm, first_name_phon, given_names_norm, \
    merged_into_ipp, created_at, updated_at, updated_by";
const N_COLS: usize = 25;

fn from_row(r: &(impl Cols + ?Sized)) -> AppResult<IdentityRow> {
    let status = r.text(4)?;
    let matricule = r.opt_text(5)?;
    let oid = r.opt_text(6)?;
    let birth_date = r.text(12)?;
    let sex = r.text(13)?;
    let place = r.text(14)?;
    Ok(IdentityRow {
        establishment_id: r.text(0)?,
        ipp: r.text(1)?,
        ght_id: r.text(2)?,
        territorial_id: r.text(3)?,
        status: Status::parse(&status).ok_or_else(|| AppError::internal(format!("bad stored status {status}")))?,
        ins: matricule.zip(oid).map(|(matricule, oid)| Ins { matricule, oid }),
        birth_name: r.text(7)?,
        first_given_name: r.text(8)?,
        birth_given_names: r.text(9)?,
        used_name: r.text(10)?,
        used_given_name: r.text(11)?,
        document: r.text(15)?,
        keys: MatchKeys {
            birth_name_norm: r.text(16)?,
            birth_name_phon: r.text(17)?,
            first_name_norm: r.text(18)?,
            first_name_phon: r.text(19)?,
            given_names_norm: r.text(20)?,
            birth_date: birth_date.clone(),
            sex: sex.clone(),
            birth_place_code: place.clone(),
        },
        birth_date,
        sex,
        birth_place_code: place,
        merged_into_ipp: r.opt_text(21)?,
        created_at: r.int(22)?,
        updated_at: r.int(23)?,
        updated_by: r.text(24)?,
    })
}

/// `($1,…,$cols),($cols+1,…)` for a multi-row `VALUES` of `rows` rows.
pub fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", (1..=cols).map(|c| format!("${}", r * cols + c)).collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(",")
}

/// `$first, $first+1, …` for an IN list of `n` values.
pub fn in_list(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")
}

/// The binds of [`COLS`], in order.
fn identity_args(i: &IdentityRow) -> [Arg<'_>; N_COLS] {
    [
        (&i.establishment_id).into(),
        (&i.ipp).into(),
        (&i.ght_id).into(),
        (&i.territorial_id).into(),
        i.status.as_str().into(),
        i.ins.as_ref().map(|x| x.matricule.as_str()).into(),
        i.ins.as_ref().map(|x| x.oid.as_str()).into(),
        (&i.birth_name).into(),
        (&i.first_given_name).into(),
        (&i.birth_given_names).into(),
        (&i.used_name).into(),
        (&i.used_given_name).into(),
        (&i.birth_date).into(),
        (&i.sex).into(),
        (&i.birth_place_code).into(),
        (&i.document).into(),
        (&i.keys.birth_name_norm).into(),
        (&i.keys.birth_name_phon).into(),
        (&i.keys.first_name_norm).into(),
        (&i.keys.first_name_phon).into(),
        (&i.keys.given_names_norm).into(),
        (&i.merged_into_ipp).into(),
        i.created_at.into(),
        i.updated_at.into(),
        (&i.updated_by).into(),
    ]
}

/// Serialises writers of one GHT's identity index across hub replicas (PostgreSQL);
/// SQLite has a single writer already.
pub async fn lock_index(tx: &mut impl Tx, ght: &str) -> AppResult<()> {
    let key = format!("identity-index:{ght}");
    let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    crate::db::xact_lock(tx, i64::from_be_bytes(b)).await
}

pub async fn get(tx: &mut impl Reader, est: &str, ipp: &str) -> AppResult<Option<IdentityRow>> {
    let sql = format!("SELECT {COLS} FROM local_identity WHERE establishment_id = $1 AND ipp = $2");
    tx.row(&sql, &[est.into(), ipp.into()], |r| from_row(r)).await
}

pub async fn insert(tx: &mut impl Tx, i: &IdentityRow) -> AppResult<()> {
    let sql = format!("INSERT INTO local_identity ({COLS}) VALUES {}", placeholders(1, N_COLS));
    tx.exec(&sql, &identity_args(i)).await?;
    Ok(())
}

/// Rewrites the traits and status of an existing identity (its index columns are
/// changed only through [`apply_changes`]).
pub async fn update(tx: &mut impl Tx, i: &IdentityRow) -> AppResult<()> {
    // COLS without the index columns (ght, territorial identity, merge, creation),
    // which this never changes.
    let a = identity_args(i);
    let args = [
        a[0], a[1], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18],
        a[19], a[20], a[23], a[24],
    ];
    tx.exec(
        "UPDATE local_identity SET status = $3, ins_matricule = $4, ins_oid = $5, birth_name = $6, \
         first_given_name = $7, birth_given_names = $8, used_name = $9, used_given_name = $10, birth_date = $11, \
         sex = $12, birth_place_code = $13, identity_document = $14, birth_name_norm = $15, birth_name_phon = $16, \
         first_name_norm = $17, first_name_phon = $18, given_names_norm = $19, updated_at = $20, updated_by = $21 \
         WHERE establishment_id = $1 AND ipp = $2",
        &args,
    )
    .await?;
    Ok(())
}

/// A fresh territorial identity id: "T" and 16 hex digits.
pub fn new_id(prefix: char) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

pub async fn insert_territorial(tx: &mut impl Tx, id: &str, ght: &str, at: i64) -> AppResult<()> {
    tx.exec(
        "INSERT INTO territorial_identity (id, ght_id, merged_into, created_at) VALUES ($1, $2, NULL, $3)",
        &[id.into(), ght.into(), at.into()],
    )
    .await?;
    Ok(())
}

/// A territorial identity: (ght, merged_into, created_at).
pub async fn territorial(r: &mut impl Reader, id: &str) -> AppResult<Option<(String, Option<String>, i64)>> {
    let sql = "SELECT ght_id, merged_into, created_at FROM territorial_identity WHERE id = $1";
    r.row(sql, &[id.into()], |r| Ok((r.text(0)?, r.opt_text(1)?, r.int(2)?))).await
}

/// Follows `merged_into` from a (possibly retired) territorial identity to the live one.
pub async fn resolve_territorial(conn: &mut impl Reader, id: &str) -> AppResult<Option<String>> {
    let mut current = id.to_string();
    // Retirements form chains (a link retires one identity into another); a loop
    // cannot be written by the index, the bound only guards against corruption.
    for _ in 0..32 {
        match territorial(conn, &current).await? {
            None => return Ok(None),
            Some((_, None, _)) => return Ok(Some(current)),
            Some((_, Some(next), _)) => current = next,
        }
    }
    Err(AppError::internal(format!("territorial identity chain from {id} does not end")))
}

pub async fn locals_of(r: &mut impl Reader, territorial_id: &str) -> AppResult<Vec<IdentityRow>> {
    let sql = format!("SELECT {COLS} FROM local_identity WHERE territorial_id = $1 ORDER BY establishment_id, ipp");
    r.rows(&sql, &[territorial_id.into()], |r| from_row(r)).await
}

/// Runs read statements that select [`COLS`] with text binds (`$n` in order), each
/// returning its identities, on one reader (see [`Db::reader`]) or in a transaction.
async fn read_identities(
    reader: &mut impl Reader,
    statements: Vec<(String, Vec<String>)>,
) -> AppResult<Vec<Vec<IdentityRow>>> {
    let mut out = Vec::with_capacity(statements.len());
    for (sql, binds) in &statements {
        let args: Vec<Arg> = binds.iter().map(Arg::from).collect();
        out.push(reader.rows(sql, &args, |r| from_row(r)).await?);
    }
    Ok(out)
}

/// An identity and every local identity of its territorial identity (itself included),
/// read together.
pub async fn get_with_locals(db: &Db, est: &str, ipp: &str) -> AppResult<Option<(IdentityRow, Vec<IdentityRow>)>> {
    let get = format!("SELECT {COLS} FROM local_identity WHERE establishment_id = $1 AND ipp = $2");
    let locals = format!(
        "SELECT {COLS} FROM local_identity WHERE territorial_id = \
         (SELECT territorial_id FROM local_identity WHERE establishment_id = $1 AND ipp = $2) \
         ORDER BY establishment_id, ipp"
    );
    let binds = vec![est.to_string(), ipp.to_string()];
    let mut found = read_identities(&mut db.reader(), vec![(get, binds.clone()), (locals, binds)]).await?.into_iter();
    let row = found.next().and_then(|mut v| v.pop());
    let locals = found.next().unwrap_or_default();
    Ok(row.map(|r| (r, locals)))
}

/// Qualified, unmerged identities of the GHT carrying this INS.
pub async fn with_ins(tx: &mut impl Reader, ght: &str, ins: &Ins) -> AppResult<Vec<IdentityRow>> {
    let sql = format!(
        "SELECT {COLS} FROM local_identity WHERE ins_matricule = $1 AND ins_oid = $2 AND ght_id = $3 \
         AND status = 'QUALIFIEE' AND merged_into_ipp IS NULL ORDER BY created_at, establishment_id, ipp LIMIT 100"
    );
    tx.rows(&sql, &[(&ins.matricule).into(), (&ins.oid).into(), ght.into()], |r| from_row(r)).await
}

/// Unmerged identities of the GHT that may match `keys`, by three blocking keys:
/// phonetic birth name + phonetic first name, phonetic birth name + birth date,
/// birth date + phonetic first name (a typo in one of them still finds the pair).
/// `establishments` restricts to those (None = all). At most `per_block` per block.
pub async fn blocked(
    conn: &mut impl Reader,
    ght: &str,
    keys: &MatchKeys,
    establishments: Option<&[String]>,
    per_block: i64,
) -> AppResult<Vec<IdentityRow>> {
    Ok(distinct_rows(read_identities(conn, block_statements(ght, keys, establishments, per_block)).await?))
}

/// [`blocked`] outside a transaction (a search), on the read side.
pub async fn blocked_read(
    db: &Db,
    ght: &str,
    keys: &MatchKeys,
    establishments: Option<&[String]>,
    per_block: i64,
) -> AppResult<Vec<IdentityRow>> {
    blocked(&mut db.reader(), ght, keys, establishments, per_block).await
}

/// The statements of the three blocks (a block whose keys are unknown is skipped).
fn block_statements(
    ght: &str,
    keys: &MatchKeys,
    establishments: Option<&[String]>,
    per_block: i64,
) -> Vec<(String, Vec<String>)> {
    let est_filter = match establishments {
        Some(e) => format!(" AND establishment_id IN ({})", in_list(4, e.len())),
        None => String::new(),
    };
    let blocks: [(&str, &str); 3] =
        [("birth_name_phon", "first_name_phon"), ("birth_name_phon", "birth_date"), ("birth_date", "first_name_phon")];
    let mut out = vec![];
    for (c1, c2) in blocks {
        let v = |c: &str| match c {
            "birth_name_phon" => keys.birth_name_phon.clone(),
            "first_name_phon" => keys.first_name_phon.clone(),
            _ => keys.birth_date.clone(),
        };
        let (v1, v2) = (v(c1), v(c2));
        if v1.is_empty() || v2.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {COLS} FROM local_identity WHERE ght_id = $1 AND {c1} = $2 AND {c2} = $3 \
             AND merged_into_ipp IS NULL{est_filter} LIMIT {per_block}"
        );
        let mut binds = vec![ght.to_string(), v1, v2];
        binds.extend(establishments.unwrap_or_default().iter().cloned());
        out.push((sql, binds));
    }
    out
}

/// The rows of several statements, each identity once (first seen first).
fn distinct_rows(found: Vec<Vec<IdentityRow>>) -> Vec<IdentityRow> {
    let mut seen = std::collections::HashSet::new();
    found.into_iter().flatten().filter(|r| seen.insert((r.establishment_id.clone(), r.ipp.clone()))).collect()
}

/// Identities with the same phonetic birth name (a search without date or first name).
pub async fn by_phonetic_name(
    db: &Db,
    ght: &str,
    phon: &str,
    establishments: &[String],
    limit: i64,
) -> AppResult<Vec<IdentityRow>> {
    let sql = format!(
        "SELECT {COLS} FROM local_identity WHERE ght_id = $1 AND birth_name_phon = $2 AND merged_into_ipp IS NULL \
         AND establishment_id IN ({}) LIMIT {limit}",
        in_list(3, establishments.len())
    );
    let mut binds = vec![ght.to_string(), phon.to_string()];
    binds.extend(establishments.iter().cloned());
    Ok(read_identities(&mut db.reader(), vec![(sql, binds)]).await?.into_iter().flatten().collect())
}

/// Qualified identities carrying this INS in these establishments.
pub async fn search_ins(
    db: &Db,
    ght: &str,
    ins: &Ins,
    establishments: &[String],
    limit: i64,
) -> AppResult<Vec<IdentityRow>> {
    let sql = format!(
        "SELECT {COLS} FROM local_identity WHERE ins_matricule = $1 AND ins_oid = $2 AND ght_id = $3 \
         AND status = 'QUALIFIEE' AND establishment_id IN ({}) ORDER BY establishment_id, ipp LIMIT {limit}",
        in_list(4, establishments.len())
    );
    let mut binds = vec![ins.matricule.clone(), ins.oid.clone(), ght.to_string()];
    binds.extend(establishments.iter().cloned());
    Ok(read_identities(&mut db.reader(), vec![(sql, binds)]).await?.into_iter().flatten().collect())
}

/// Applies changes with optimistic checks: each row must hold the `before` value,
/// otherwise the change is refused (the caller's transaction rolls back).
pub async fn apply_changes(tx: &mut impl Tx, changes: &[Change]) -> AppResult<()> {
    for c in changes {
        let (table, column, keys) = c.column.sql();
        let mut sql = format!("UPDATE {table} SET {column} = $1 WHERE ");
        let mut conds: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} = ${}", i + 2)).collect();
        let next = keys.len() + 2;
        conds.push(match c.before {
            Val::Null => format!("{column} IS NULL"),
            _ => format!("{column} = ${next}"),
        });
        sql.push_str(&conds.join(" AND "));
        fn value(v: &Val, int: bool) -> Arg<'_> {
            match v {
                Val::Null if int => Arg::OptInt(None),
                Val::Null => Arg::OptText(None),
                Val::Text(s) => Arg::Text(s),
                Val::Int(i) => Arg::Int(*i),
            }
        }
        let mut args = vec![value(&c.after, c.column.is_int())];
        args.extend(c.key.iter().map(Arg::from));
        if !matches!(c.before, Val::Null) {
            args.push(value(&c.before, c.column.is_int()));
        }
        let n = tx.exec(&sql, &args).await?;
        if n != 1 {
            return Err(AppError::precondition(format!(
                "{table} {} changed since (its {column} is no longer {:?})",
                c.key.join(":"),
                c.before
            )));
        }
    }
    Ok(())
}

/// Merged IPPs that are not in the territorial identity of the IPP they were merged
/// into, where either side is in one of `territorial_ids`: (establishment, merged IPP,
/// surviving IPP). The index never leaves such a pair; an unmerge checks it.
pub async fn merged_apart(
    tx: &mut impl Reader,
    territorial_ids: &[String],
) -> AppResult<Vec<(String, String, String)>> {
    if territorial_ids.is_empty() {
        return Ok(vec![]);
    }
    // `$n` may appear twice: both sides test the same list.
    let ids = in_list(1, territorial_ids.len());
    let sql = format!(
        "SELECT m.establishment_id, m.ipp, m.merged_into_ipp FROM local_identity m \
         JOIN local_identity s ON s.establishment_id = m.establishment_id AND s.ipp = m.merged_into_ipp \
         WHERE m.territorial_id <> s.territorial_id AND (m.territorial_id IN ({ids}) OR s.territorial_id IN ({ids})) \
         ORDER BY m.establishment_id, m.ipp"
    );
    let args: Vec<Arg> = territorial_ids.iter().map(Arg::from).collect();
    tx.rows(&sql, &args, |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?))).await
}

/// The encounter ids held by a local identity (for a merge).
pub async fn encounters_of(tx: &mut impl Reader, est: &str, ipp: &str) -> AppResult<Vec<String>> {
    let sql = "SELECT encounter_id FROM encounter WHERE establishment_id = $1 AND ipp = $2 ORDER BY encounter_id";
    tx.rows(sql, &[est.into(), ipp.into()], |r| r.text(0)).await
}

/// A pair in canonical order (a < b), as candidate and alert rows store it.
pub fn ordered<'a>(a: (&'a str, &'a str), b: (&'a str, &'a str)) -> ((&'a str, &'a str), (&'a str, &'a str)) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// A candidate row.
#[derive(Debug, Clone)]
pub struct CandidateRow {
    pub id: String,
    pub a: (String, String),
    pub b: (String, String),
    pub score: f64,
    pub reasons: Vec<String>,
    pub status: String,
    pub created_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
}

impl CandidateRow {
    pub fn to_proto(&self) -> proto::CandidateMatch {
        let status = proto::CandidateStatus::from_str_name(&format!("CANDIDATE_STATUS_{}", self.status))
            .unwrap_or(proto::CandidateStatus::Unspecified);
        proto::CandidateMatch {
            id: self.id.clone(),
            a: Some(proto::LocalIdentityRef { establishment_id: self.a.0.clone(), ipp: self.a.1.clone() }),
            b: Some(proto::LocalIdentityRef { establishment_id: self.b.0.clone(), ipp: self.b.1.clone() }),
            score: self.score,
            reasons: self.reasons.clone(),
            status: status as i32,
            same_establishment: self.a.0 == self.b.0,
            created_at: to_rfc3339(self.created_at),
            decided_by: self.decided_by.clone().unwrap_or_default(),
            decided_at: self.decided_at.map(to_rfc3339).unwrap_or_default(),
            decision_reason: self.decision_reason.clone().unwrap_or_default(),
        }
    }

    pub fn open(&self) -> OpenCandidate {
        OpenCandidate {
            id: self.id.clone(),
            status: self.status.clone(),
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at,
            decision_reason: self.decision_reason.clone(),
        }
    }
}

const CAND_COLS: &str =
    "id, a_establishment_id, a_ipp, b_establishment_id, b_ipp, score, reasons, status, created_at, \
                         decided_by, decided_at, decision_reason";

fn candidate_from_row(r: &(impl Cols + ?Sized)) -> AppResult<CandidateRow> {
    let reasons = r.text(6)?;
    Ok(CandidateRow {
        id: r.text(0)?,
        a: (r.text(1)?, r.text(2)?),
        b: (r.text(3)?, r.text(4)?),
        score: r.float(5)?,
        reasons: reasons.split('\n').filter(|s| !s.is_empty()).map(String::from).collect(),
        status: r.text(7)?,
        created_at: r.int(8)?,
        decided_by: r.opt_text(9)?,
        decided_at: r.opt_int(10)?,
        decision_reason: r.opt_text(11)?,
    })
}

pub async fn candidate_for_pair(
    tx: &mut impl Reader,
    a: (&str, &str),
    b: (&str, &str),
) -> AppResult<Option<CandidateRow>> {
    let (a, b) = ordered(a, b);
    let sql = format!(
        "SELECT {CAND_COLS} FROM candidate_match WHERE a_establishment_id = $1 AND a_ipp = $2 \
         AND b_establishment_id = $3 AND b_ipp = $4"
    );
    tx.row(&sql, &[a.0.into(), a.1.into(), b.0.into(), b.1.into()], |r| candidate_from_row(r)).await
}

pub async fn candidate(tx: &mut impl Reader, id: &str) -> AppResult<Option<CandidateRow>> {
    let sql = format!("SELECT {CAND_COLS} FROM candidate_match WHERE id = $1");
    tx.row(&sql, &[id.into()], |r| candidate_from_row(r)).await
}

/// Records a candidate pair, or refreshes the score of an open one; decided pairs keep their decision.
pub async fn upsert_candidate(
    tx: &mut impl Tx,
    ght: &str,
    a: (&str, &str),
    b: (&str, &str),
    score: f64,
    reasons: &[String],
    at: i64,
) -> AppResult<()> {
    let (a, b) = ordered(a, b);
    let (id, reasons) = (new_id('C'), reasons.join("\n"));
    tx.exec(
        "INSERT INTO candidate_match (id, ght_id, a_establishment_id, a_ipp, b_establishment_id, b_ipp, score, reasons, \
         status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', $9) \
         ON CONFLICT (a_establishment_id, a_ipp, b_establishment_id, b_ipp) DO UPDATE \
         SET score = excluded.score, reasons = excluded.reasons WHERE candidate_match.status = 'OPEN'",
        &[(&id).into(), ght.into(), a.0.into(), a.1.into(), b.0.into(), b.1.into(), score.into(), (&reasons).into(), at.into()],
    )
    .await?;
    Ok(())
}

/// Records that a pair is not the same patient (creating the candidate row if needed).
#[allow(clippy::too_many_arguments)]
pub async fn reject_pair(
    tx: &mut impl Tx,
    ght: &str,
    a: (&str, &str),
    b: (&str, &str),
    score: f64,
    by: &str,
    reason: &str,
    at: i64,
) -> AppResult<()> {
    let (a, b) = ordered(a, b);
    let id = new_id('C');
    tx.exec(
        "INSERT INTO candidate_match (id, ght_id, a_establishment_id, a_ipp, b_establishment_id, b_ipp, score, reasons, \
         status, created_at, decided_by, decided_at, decision_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '', 'REJECTED', $8, $9, $8, $10) \
         ON CONFLICT (a_establishment_id, a_ipp, b_establishment_id, b_ipp) DO UPDATE \
         SET status = 'REJECTED', decided_by = excluded.decided_by, decided_at = excluded.decided_at, \
         decision_reason = excluded.decision_reason",
        &[(&id).into(), ght.into(), a.0.into(), a.1.into(), b.0.into(), b.1.into(), score.into(), at.into(), by.into(), reason.into()],
    )
    .await?;
    Ok(())
}

pub async fn pair_rejected(tx: &mut impl Reader, a: (&str, &str), b: (&str, &str)) -> AppResult<bool> {
    Ok(candidate_for_pair(tx, a, b).await?.is_some_and(|c| c.status == "REJECTED"))
}

/// Candidates among these establishments, best first; OPEN ones whose two
/// identities are now in the same territorial identity are left out (decided by a link).
pub async fn list_candidates(
    db: &Db,
    ght: &str,
    establishments: &[String],
    include_decided: bool,
    limit: i64,
) -> AppResult<Vec<CandidateRow>> {
    let n = establishments.len();
    let cols = CAND_COLS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {cols} FROM candidate_match c \
         JOIN local_identity la ON la.establishment_id = c.a_establishment_id AND la.ipp = c.a_ipp \
         JOIN local_identity lb ON lb.establishment_id = c.b_establishment_id AND lb.ipp = c.b_ipp \
         WHERE c.ght_id = $1 AND c.a_establishment_id IN ({}) AND c.b_establishment_id IN ({}) \
         AND ({} OR (c.status = 'OPEN' AND la.territorial_id <> lb.territorial_id \
                     AND la.merged_into_ipp IS NULL AND lb.merged_into_ipp IS NULL)) \
         ORDER BY c.score DESC, c.created_at, c.id LIMIT {limit}",
        in_list(2, n),
        in_list(2 + n, n),
        if include_decided { "c.status <> 'OPEN'" } else { "1 = 0" },
    );
    let mut args = vec![Arg::from(ght)];
    args.extend(establishments.iter().chain(establishments).map(Arg::from));
    db.rows(&sql, &args, |r| candidate_from_row(r)).await
}

/// Raises an INS collision alert once per pair; returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn raise_alert(
    tx: &mut impl Tx,
    ght: &str,
    ins: &Ins,
    a: (&str, &str),
    b: (&str, &str),
    differing: &[&str],
    by: &str,
    at: i64,
) -> AppResult<String> {
    let (a, b) = ordered(a, b);
    let (id, differing) = (new_id('V'), differing.join(","));
    tx.exec(
        "INSERT INTO vigilance_alert (id, ght_id, kind, ins_matricule, ins_oid, a_establishment_id, a_ipp, \
         b_establishment_id, b_ipp, differing_traits, raised_at, raised_by) \
         VALUES ($1, $2, 'INS_COLLISION', $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (kind, a_establishment_id, a_ipp, b_establishment_id, b_ipp) DO NOTHING",
        &[
            (&id).into(),
            ght.into(),
            (&ins.matricule).into(),
            (&ins.oid).into(),
            a.0.into(),
            a.1.into(),
            b.0.into(),
            b.1.into(),
            (&differing).into(),
            at.into(),
            by.into(),
        ],
    )
    .await?;
    let sql = "SELECT id FROM vigilance_alert WHERE kind = 'INS_COLLISION' AND a_establishment_id = $1 AND a_ipp = $2 \
         AND b_establishment_id = $3 AND b_ipp = $4";
    tx.row(sql, &[a.0.into(), a.1.into(), b.0.into(), b.1.into()], |r| r.text(0))
        .await?
        .ok_or_else(|| AppError::internal("vigilance alert vanished"))
}

pub async fn list_alerts(
    db: &Db,
    ght: &str,
    establishments: &[String],
    limit: i64,
) -> AppResult<Vec<proto::VigilanceAlert>> {
    let n = establishments.len();
    let sql = format!(
        "SELECT id, kind, ins_matricule, ins_oid, a_establishment_id, a_ipp, b_establishment_id, b_ipp, \
         differing_traits, raised_at, raised_by FROM vigilance_alert WHERE ght_id = $1 \
         AND a_establishment_id IN ({}) AND b_establishment_id IN ({}) ORDER BY raised_at DESC, id LIMIT {limit}",
        in_list(2, n),
        in_list(2 + n, n)
    );
    let mut args = vec![Arg::from(ght)];
    args.extend(establishments.iter().chain(establishments).map(Arg::from));
    db.rows(&sql, &args, |r| {
        let differing = r.text(8)?;
        Ok(proto::VigilanceAlert {
            id: r.text(0)?,
            kind: proto::VigilanceAlertKind::InsCollision as i32,
            ins: Some(proto::InsIdentifier { matricule: r.text(2)?, oid: r.text(3)? }),
            identities: vec![
                proto::LocalIdentityRef { establishment_id: r.text(4)?, ipp: r.text(5)? },
                proto::LocalIdentityRef { establishment_id: r.text(6)?, ipp: r.text(7)? },
            ],
            differing_traits: differing.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            raised_at: to_rfc3339(r.int(9)?),
            raised_by: r.text(10)?,
        })
    })
    .await
}

/// An index event as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub ght_id: String,
    pub kind: String,
    pub author: String,
    pub at: i64,
    pub reason: String,
    pub identities: Vec<(String, String)>,
    pub territorial_id: String,
    pub other_territorial_id: String,
    pub related_event_id: Option<String>,
    pub changes: Vec<Change>,
}

impl EventRow {
    pub fn to_proto(&self) -> proto::IdentityEvent {
        let kind = proto::IdentityEventKind::from_str_name(&format!("IDENTITY_EVENT_KIND_{}", self.kind))
            .unwrap_or(proto::IdentityEventKind::Unspecified);
        proto::IdentityEvent {
            id: self.id.clone(),
            kind: kind as i32,
            author: self.author.clone(),
            at: to_rfc3339(self.at),
            reason: self.reason.clone(),
            identities: self
                .identities
                .iter()
                .map(|(e, i)| proto::LocalIdentityRef { establishment_id: e.clone(), ipp: i.clone() })
                .collect(),
            territorial_id: self.territorial_id.clone(),
            other_territorial_id: self.other_territorial_id.clone(),
            related_event_id: self.related_event_id.clone().unwrap_or_default(),
            changes: self.changes.len() as u32,
        }
    }
}

pub async fn insert_event(tx: &mut impl Tx, e: &EventRow) -> AppResult<()> {
    let identities = e.identities.iter().map(|(est, ipp)| format!("{est}:{ipp}")).collect::<Vec<_>>().join(" ");
    let changes = serde_json::to_string(&e.changes)?;
    tx.exec(
        "INSERT INTO identity_event (id, ght_id, kind, author, at, reason, identities, territorial_id, \
         other_territorial_id, related_event_id, changes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
        &[
            (&e.id).into(),
            (&e.ght_id).into(),
            (&e.kind).into(),
            (&e.author).into(),
            e.at.into(),
            (&e.reason).into(),
            (&identities).into(),
            (&e.territorial_id).into(),
            (&e.other_territorial_id).into(),
            (&e.related_event_id).into(),
            (&changes).into(),
        ],
    )
    .await?;
    for t in [&e.territorial_id, &e.other_territorial_id] {
        if !t.is_empty() {
            tx.exec(
                "INSERT INTO identity_event_ref (territorial_id, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[t.into(), (&e.id).into()],
            )
            .await?;
        }
    }
    Ok(())
}

const EVENT_COLS: &str = "e.id, e.ght_id, e.kind, e.author, e.at, e.reason, e.identities, e.territorial_id, \
                          e.other_territorial_id, e.related_event_id, e.changes";

fn event_from_row(r: &(impl Cols + ?Sized)) -> AppResult<EventRow> {
    let identities = r.text(6)?;
    let changes = r.text(10)?;
    Ok(EventRow {
        id: r.text(0)?,
        ght_id: r.text(1)?,
        kind: r.text(2)?,
        author: r.text(3)?,
        at: r.int(4)?,
        reason: r.text(5)?,
        identities: identities
            .split(' ')
            .filter_map(|s| s.split_once(':').map(|(e, i)| (e.to_string(), i.to_string())))
            .collect(),
        territorial_id: r.text(7)?,
        other_territorial_id: r.text(8)?,
        related_event_id: r.opt_text(9)?,
        changes: serde_json::from_str(&changes)?,
    })
}

pub async fn event(tx: &mut impl Reader, id: &str) -> AppResult<Option<EventRow>> {
    let sql = format!("SELECT {EVENT_COLS} FROM identity_event e WHERE e.id = $1");
    tx.row(&sql, &[id.into()], |r| event_from_row(r)).await
}

/// The UNMERGE event that undid a merge, if any.
pub async fn undone_by(tx: &mut impl Reader, merge_id: &str) -> AppResult<Option<String>> {
    let sql = "SELECT id FROM identity_event WHERE kind = 'UNMERGE' AND related_event_id = $1";
    tx.row(sql, &[merge_id.into()], |r| r.text(0)).await
}

/// Events concerning a territorial identity, newest first (at most 50); a MERGE
/// shows the UNMERGE that undid it.
pub async fn events_of(db: &Db, territorial_id: &str) -> AppResult<Vec<proto::IdentityEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM identity_event e JOIN identity_event_ref r ON r.event_id = e.id \
         WHERE r.territorial_id = $1 ORDER BY e.at DESC, e.id LIMIT 50"
    );
    let mut events = db.rows(&sql, &[territorial_id.into()], |r| event_from_row(r)).await?;
    let undo: std::collections::HashMap<String, String> = events
        .iter()
        .filter(|e| e.kind == "UNMERGE")
        .filter_map(|e| e.related_event_id.clone().map(|m| (m, e.id.clone())))
        .collect();
    for e in events.iter_mut().filter(|e| e.kind == "MERGE") {
        if let Some(u) = undo.get(&e.id) {
            e.related_event_id = Some(u.clone());
        }
    }
    Ok(events.iter().map(EventRow::to_proto).collect())
}

/// Identity facts of a GHT for the computed indicators (CONV-4.1, CONV-5.2).
pub async fn fill_facts(db: &Db, facts: &mut TerritoryFacts) -> AppResult<()> {
    // One index probe per establishment (local_identity's key starts with it).
    let sql = "SELECT e.id FROM establishment e WHERE e.ght_id = $1 \
         AND EXISTS (SELECT 1 FROM local_identity l WHERE l.establishment_id = e.id)";
    let publishing: std::collections::HashSet<String> =
        db.rows(sql, &[facts.ght_id.as_str().into()], |r| r.text(0)).await?.into_iter().collect();
    for e in &mut facts.establishments {
        e.publishes_identities = publishing.contains(&e.establishment_id);
    }
    let sql = "SELECT COUNT(*) FROM (SELECT l.territorial_id FROM local_identity l \
         JOIN establishment e ON e.id = l.establishment_id \
         WHERE l.ght_id = $1 AND e.role IN ('SUPPORT', 'PARTIE') \
         GROUP BY l.territorial_id HAVING COUNT(DISTINCT l.establishment_id) >= 2) linked";
    facts.identities_linked_across_parties =
        db.row(sql, &[facts.ght_id.as_str().into()], |r| r.int(0)).await?.unwrap_or(0);
    Ok(())
}

/// Loads identities straight into the store in large transactions, each with its own
/// territorial identity (benchmarks and bulk imports; no matching, no events).
pub async fn bulk_insert(db: &Db, rows: &[IdentityRow]) -> AppResult<()> {
    let mut tx = db.begin_write().await?;
    let per_statement = crate::db::rows_per_statement(&*tx, N_COLS);
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO territorial_identity (id, ght_id, merged_into, created_at) VALUES {}",
            (0..chunk.len())
                .map(|i| format!("(${}, ${}, NULL, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect::<Vec<_>>()
                .join(",")
        );
        let args: Vec<Arg> =
            chunk.iter().flat_map(|r| [(&r.territorial_id).into(), (&r.ght_id).into(), r.created_at.into()]).collect();
        tx.exec(&sql, &args).await?;
        let sql = format!("INSERT INTO local_identity ({COLS}) VALUES {}", placeholders(chunk.len(), N_COLS));
        let args: Vec<Arg> = chunk.iter().flat_map(identity_args).collect();
        tx.exec(&sql, &args).await?;
    }
    tx.commit().await?;
    Ok(())
}
