//! SQL of the inventory domain.
//!
//! A version is stored once and never changes (triggers refuse UPDATE and DELETE):
//! its canonical document (protobuf, the bytes the content hash covers), a small
//! summary for trends and totals, the figures the indicator facts read (budgets,
//! PSSI) as columns, and one row per application for the consolidation and facts
//! queries. `inventory_head` points at each establishment's latest version.

use prost::Message;

use super::{
    canonical::Canonical,
    consolidate::{AppRow, Head, HistoryEvent, VersionSummary},
    types::{product_key, EnumCode},
};
use crate::{
    db::{Arg, Cols, Db, Tx},
    facts::{AppFacts, TerritoryFacts},
    proto,
    time::{now_micros, to_rfc3339},
    AppError, AppResult,
};

/// Binds per application row.
const APP_COLS: usize = 12;

/// Budgets are stored in euro cents: exact sums, and no nullable float binds (sqlx's
/// `Any` driver binds a NULL float as FLOAT4 on PostgreSQL, which then refuses the
/// FLOAT8 of the next push on the cached statement).
fn to_cents(eur: f64) -> i64 {
    (eur * 100.0).round() as i64
}

fn from_cents(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// A version to store.
pub struct NewVersion<'a> {
    pub establishment_id: &'a str,
    pub ght_id: &'a str,
    pub author: &'a str,
    pub canonical: &'a Canonical,
}

/// What a push did.
pub enum PushOutcome {
    /// A new version was stored.
    Created(proto::InventoryVersionInfo),
    /// The content equals the latest version: nothing stored.
    Unchanged(proto::InventoryVersionInfo),
}

const INFO_COLUMNS: &str =
    "establishment_id, ght_id, version, pushed_at, author, content_hash, as_of, application_count";

fn info_from_row(r: &(impl Cols + ?Sized)) -> AppResult<proto::InventoryVersionInfo> {
    Ok(proto::InventoryVersionInfo {
        establishment_id: r.text(0)?,
        ght_id: r.text(1)?,
        version: u32::try_from(r.int(2)?).map_err(AppError::internal)?,
        pushed_at: to_rfc3339(r.int(3)?),
        author: r.text(4)?,
        content_hash: r.text(5)?,
        as_of: r.text(6)?,
        application_count: u32::try_from(r.int(7)?).map_err(AppError::internal)?,
    })
}

async fn version_info(
    tx: &mut impl Tx,
    establishment_id: &str,
    version: i64,
) -> AppResult<proto::InventoryVersionInfo> {
    let sql = format!("SELECT {INFO_COLUMNS} FROM inventory_version WHERE establishment_id = $1 AND version = $2");
    tx.row(&sql, &[establishment_id.into(), version.into()], |r| info_from_row(r))
        .await?
        .ok_or_else(|| AppError::internal(format!("version {version} of {establishment_id} vanished")))
}

/// Stores `v` as the establishment's next version, unless its content equals the
/// latest one. Runs inside the caller's transaction.
///
/// Version numbers: the head row is read and locked in one statement (`FOR UPDATE` on
/// PostgreSQL; SQLite has a single writer and no `FOR UPDATE`), so pushes of one
/// establishment are serialised and the next number is head + 1. (A no-op UPDATE to
/// lock, then a SELECT, could deadlock: a push whose UPDATE ran before the first head
/// existed and whose SELECT after took a number without the lock.) The first push has
/// no head row to lock: two replicas may both try version 1, the primary key refuses
/// the second, which gets `Aborted` — its transaction must roll back — and retries: it
/// then finds the head and locks it.
pub async fn push_version(tx: &mut impl Tx, v: &NewVersion<'_>) -> AppResult<PushOutcome> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT version, content_hash FROM inventory_head WHERE establishment_id = $1{lock}");
    let head = tx.row(&sql, &[v.establishment_id.into()], |r| Ok((r.int(0)?, r.text(1)?))).await?;
    if let Some((version, hash)) = &head {
        if *hash == v.canonical.hash {
            return Ok(PushOutcome::Unchanged(version_info(tx, v.establishment_id, *version).await?));
        }
    }
    let version = head.map(|(n, _)| n).unwrap_or(0) + 1;
    let doc = &v.canonical.document;
    let summary = super::consolidate::summarize(doc).encode_to_vec();
    let resources = doc.resources.as_ref();
    let pushed_at = now_micros();
    let pssi = doc.security.as_ref().map(|s| proto::PssiStatus::code_of(s.pssi_status));
    let inserted = tx
        .exec(
            "INSERT INTO inventory_version (establishment_id, version, ght_id, pushed_at, author, content_hash, as_of, \
             application_count, budget_operating_cents, budget_investment_cents, pssi_status, document, summary) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            &[
                v.establishment_id.into(),
                version.into(),
                v.ght_id.into(),
                pushed_at.into(),
                v.author.into(),
                (&v.canonical.hash).into(),
                (&doc.as_of).into(),
                (doc.applications.len() as i64).into(),
                Arg::OptInt(resources.and_then(|r| r.budget_operating_eur).map(to_cents)),
                Arg::OptInt(resources.and_then(|r| r.budget_investment_eur).map(to_cents)),
                (&pssi).into(),
                Arg::Blob(&v.canonical.bytes),
                Arg::Blob(&summary),
            ],
        )
        .await;
    match inserted {
        Err(AppError::AlreadyExists(_)) => {
            return Err(AppError::Aborted(format!(
                "version {version} of establishment {} was taken by a concurrent push",
                v.establishment_id
            )))
        }
        other => {
            other?;
        }
    }
    tx.exec(
        "INSERT INTO inventory_head (establishment_id, ght_id, version, content_hash) VALUES ($1,$2,$3,$4) \
         ON CONFLICT (establishment_id) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash",
        &[v.establishment_id.into(), v.ght_id.into(), version.into(), (&v.canonical.hash).into()],
    )
    .await?;
    insert_applications(tx, v.establishment_id, version, &doc.applications).await?;
    Ok(PushOutcome::Created(proto::InventoryVersionInfo {
        establishment_id: v.establishment_id.to_string(),
        ght_id: v.ght_id.to_string(),
        version: u32::try_from(version).map_err(AppError::internal)?,
        pushed_at: to_rfc3339(pushed_at),
        author: v.author.to_string(),
        content_hash: v.canonical.hash.clone(),
        as_of: doc.as_of.clone(),
        application_count: doc.applications.len() as u32,
    }))
}

/// Multi-row INSERTs: one statement per chunk instead of one per application.
async fn insert_applications(
    tx: &mut impl Tx,
    establishment_id: &str,
    version: i64,
    apps: &[proto::Application],
) -> AppResult<()> {
    for chunk in apps.chunks(crate::db::rows_per_statement(tx, APP_COLS)) {
        let mut sql = String::with_capacity(64 + chunk.len() * 64);
        sql.push_str(
            "INSERT INTO inventory_application (establishment_id, version, item_id, domain, product, vendor, name, \
             app_version, hosting, users_count, is_target, end_of_support) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * APP_COLS;
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 1..=APP_COLS {
                if c > 1 {
                    sql.push(',');
                }
                sql.push('$');
                sql.push_str(&(b + c).to_string());
            }
            sql.push(')');
        }
        // The binds computed here (codes, product keys), kept alive for the statement.
        let computed: Vec<[String; 3]> = chunk
            .iter()
            .map(|a| {
                [
                    proto::FunctionalDomain::code_of(a.domain),
                    product_key(&a.vendor, &a.name),
                    proto::HostingMode::code_of(a.hosting),
                ]
            })
            .collect();
        let mut args: Vec<Arg> = Vec::with_capacity(chunk.len() * APP_COLS);
        for (a, [domain, product, hosting]) in chunk.iter().zip(&computed) {
            args.extend::<[Arg; APP_COLS]>([
                establishment_id.into(),
                version.into(),
                (&a.id).into(),
                domain.into(),
                product.into(),
                (&a.vendor).into(),
                (&a.name).into(),
                (&a.version).into(),
                hosting.into(),
                i64::from(a.users_count).into(),
                i64::from(a.convergence_target).into(),
                (&a.end_of_support).into(),
            ]);
        }
        tx.exec(&sql, &args).await?;
    }
    Ok(())
}

/// The metadata and canonical document of version `version` (None = the latest).
pub async fn get_version(
    db: &Db,
    establishment_id: &str,
    version: Option<i64>,
) -> AppResult<Option<(proto::InventoryVersionInfo, proto::InventoryDocument)>> {
    let decode = |r: &dyn Cols| {
        let doc = proto::InventoryDocument::decode(r.blob(8)?.as_slice())
            .map_err(|e| AppError::internal(format!("stored document: {e}")))?;
        Ok((info_from_row(r)?, doc))
    };
    match version {
        Some(n) => {
            let sql = format!(
                "SELECT {INFO_COLUMNS}, document FROM inventory_version WHERE establishment_id = $1 AND version = $2"
            );
            db.row(&sql, &[establishment_id.into(), n.into()], decode).await
        }
        None => {
            let sql = format!(
                "SELECT v.{}, v.document FROM inventory_head h JOIN inventory_version v \
                 ON v.establishment_id = h.establishment_id AND v.version = h.version WHERE h.establishment_id = $1",
                INFO_COLUMNS.replace(", ", ", v.")
            );
            db.row(&sql, &[establishment_id.into()], decode).await
        }
    }
}

/// Every version of an establishment, oldest first.
pub async fn list_versions(db: &Db, establishment_id: &str) -> AppResult<Vec<proto::InventoryVersionInfo>> {
    let sql = format!("SELECT {INFO_COLUMNS} FROM inventory_version WHERE establishment_id = $1 ORDER BY version");
    db.rows(&sql, &[establishment_id.into()], |r| info_from_row(r)).await
}

fn decode_summary(bytes: &[u8]) -> AppResult<VersionSummary> {
    VersionSummary::decode(bytes).map_err(|e| AppError::internal(format!("stored summary: {e}")))
}

/// The latest version of each establishment of the GHT that has one, by establishment id.
pub async fn heads(db: &Db, ght_id: &str) -> AppResult<Vec<(String, Head)>> {
    let sql =
        "SELECT v.establishment_id, v.version, v.pushed_at, v.as_of, v.application_count, v.budget_operating_cents, \
         v.budget_investment_cents, v.pssi_status, v.summary FROM inventory_head h JOIN inventory_version v \
         ON v.establishment_id = h.establishment_id AND v.version = h.version WHERE h.ght_id = $1";
    db.rows(sql, &[ght_id.into()], |r| {
        Ok((
            r.text(0)?,
            Head {
                version: r.int(1)?,
                pushed_at: r.int(2)?,
                as_of: r.text(3)?,
                application_count: r.int(4)?,
                budget_operating_eur: r.opt_int(5)?.map(from_cents),
                budget_investment_eur: r.opt_int(6)?.map(from_cents),
                pssi_status: r.opt_text(7)?,
                summary: decode_summary(&r.blob(8)?)?,
            },
        ))
    })
    .await
}

/// The applications of the latest versions of the GHT's establishments.
pub async fn head_applications(db: &Db, ght_id: &str) -> AppResult<Vec<AppRow>> {
    let sql = "SELECT a.establishment_id, a.item_id, a.domain, a.product, a.vendor, a.name, a.app_version, a.hosting, \
         a.users_count, a.is_target, a.end_of_support FROM inventory_head h JOIN inventory_application a \
         ON a.establishment_id = h.establishment_id AND a.version = h.version WHERE h.ght_id = $1";
    db.rows(sql, &[ght_id.into()], |r| {
        Ok(AppRow {
            establishment_id: r.text(0)?,
            item_id: r.text(1)?,
            domain: r.text(2)?,
            product: r.text(3)?,
            vendor: r.text(4)?,
            name: r.text(5)?,
            version: r.text(6)?,
            hosting: r.text(7)?,
            users_count: r.int(8)?,
            is_target: r.int(9)? != 0,
            end_of_support: r.text(10)?,
        })
    })
    .await
}

/// The versions of the GHT's establishments (summaries only), for trends.
///
/// Only the latest version of each establishment and `as_of` date: the trends take,
/// at each date, each party's highest version describing that date or before, and a
/// lower version of the same date is never that one. Re-pushes of one date (the
/// corrections of a month) then cost nothing here; each summary read and decoded
/// did (the load mix: decoding was half of `ConvergenceMap`'s time).
pub async fn history(db: &Db, ght_id: &str) -> AppResult<Vec<HistoryEvent>> {
    let sql = "SELECT v.establishment_id, v.version, v.as_of, v.summary FROM \
         (SELECT establishment_id, as_of, MAX(version) AS version FROM inventory_version WHERE ght_id = $1 \
          GROUP BY establishment_id, as_of) latest \
         CROSS JOIN inventory_version v WHERE v.establishment_id = latest.establishment_id AND v.version = latest.version";
    db.rows(sql, &[ght_id.into()], |r| {
        Ok(HistoryEvent {
            establishment_id: r.text(0)?,
            version: r.int(1)?,
            as_of: r.text(2)?,
            summary: decode_summary(&r.blob(3)?)?,
        })
    })
    .await
}

/// Fills, for each establishment of `facts`, what its latest inventory says
/// (`has_inventory`, `inventory_at`, budgets, PSSI, applications).
pub async fn fill_facts(db: &Db, facts: &mut TerritoryFacts) -> AppResult<()> {
    let mut heads: std::collections::HashMap<String, Head> = heads(db, &facts.ght_id).await?.into_iter().collect();
    let mut apps: std::collections::HashMap<String, Vec<AppFacts>> = std::collections::HashMap::new();
    for a in head_applications(db, &facts.ght_id).await? {
        apps.entry(a.establishment_id).or_default().push(AppFacts {
            domain: a.domain,
            product: a.product,
            is_convergence_target: a.is_target,
            hosting: a.hosting,
        });
    }
    let adopted = proto::PssiStatus::Adopted.code();
    for e in &mut facts.establishments {
        let Some(h) = heads.remove(&e.establishment_id) else { continue };
        e.has_inventory = true;
        e.inventory_at = Some(h.pushed_at);
        e.is_budget_operating_eur = h.budget_operating_eur;
        e.is_budget_investment_eur = h.budget_investment_eur;
        e.pssi_adopted = h.pssi_status.map(|s| s == adopted);
        let mut list = apps.remove(&e.establishment_id).unwrap_or_default();
        list.sort_by(|x, y| (&x.domain, &x.product).cmp(&(&y.domain, &y.product)));
        e.applications = list;
    }
    Ok(())
}
