//! SQL of the indicators domain: catalogue versions, value revisions, workflow events
//! and the change position.
//!
//! Every writing transaction first takes its change positions from the one-row
//! `indicator_position` table (`next_positions`). On PostgreSQL the row lock makes
//! concurrent writers wait for each other, so a position is visible only after every
//! smaller position has committed (or rolled back): a pull that has seen position N
//! will never later find a committed change below N. SQLite has one writer anyway.

use prost::Message;
use sqlx::Row;

use super::{
    catalogue::ValueType,
    values::{Status, Val},
};
use crate::{
    db::{Cols, Db},
    proto,
    time::to_rfc3339,
    AppError, AppResult,
};

/// A stored catalogue version.
#[derive(Debug, Clone)]
pub struct CatalogueRow {
    pub catalogue: String,
    pub version: String,
    pub yaml: String,
    pub sha256: String,
    pub indicators: i64,
    pub loaded_by: String,
    pub loaded_at: i64,
}

const CATALOGUE_COLUMNS: &str = "catalogue, version, yaml, sha256, indicators, loaded_by, loaded_at";

fn catalogue_from_row(r: &dyn Cols) -> AppResult<CatalogueRow> {
    Ok(CatalogueRow {
        catalogue: r.text(0)?,
        version: r.text(1)?,
        yaml: r.text(2)?,
        sha256: r.text(3)?,
        indicators: r.int(4)?,
        loaded_by: r.text(5)?,
        loaded_at: r.int(6)?,
    })
}

/// Inserts a catalogue version; false when that (catalogue, version) already exists.
pub async fn insert_catalogue(conn: &mut sqlx::AnyConnection, c: &CatalogueRow) -> AppResult<bool> {
    let done = sqlx::query(
        "INSERT INTO indicator_catalogue (catalogue, version, yaml, sha256, indicators, loaded_by, loaded_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (catalogue, version) DO NOTHING",
    )
    .bind(&c.catalogue)
    .bind(&c.version)
    .bind(&c.yaml)
    .bind(&c.sha256)
    .bind(c.indicators)
    .bind(&c.loaded_by)
    .bind(c.loaded_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any version of this catalogue is stored.
pub async fn has_catalogue(conn: &mut sqlx::AnyConnection, catalogue: &str) -> AppResult<bool> {
    let row = sqlx::query("SELECT 1 FROM indicator_catalogue WHERE catalogue = $1 LIMIT 1")
        .bind(catalogue)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// One stored version; the current one (the latest loaded) when `version` is None.
pub async fn get_catalogue(db: &Db, catalogue: &str, version: Option<&str>) -> AppResult<Option<CatalogueRow>> {
    match version {
        Some(v) => {
            let sql =
                format!("SELECT {CATALOGUE_COLUMNS} FROM indicator_catalogue WHERE catalogue = $1 AND version = $2");
            db.row(&sql, &[catalogue.into(), v.into()], catalogue_from_row).await
        }
        None => {
            let sql = format!(
                "SELECT {CATALOGUE_COLUMNS} FROM indicator_catalogue WHERE catalogue = $1 \
                 ORDER BY loaded_at DESC, version DESC LIMIT 1"
            );
            db.row(&sql, &[catalogue.into()], catalogue_from_row).await
        }
    }
}

/// The name of the current version (the latest loaded).
pub async fn current_version(db: &Db, catalogue: &str) -> AppResult<Option<String>> {
    let sql =
        "SELECT version FROM indicator_catalogue WHERE catalogue = $1 ORDER BY loaded_at DESC, version DESC LIMIT 1";
    db.row(sql, &[catalogue.into()], |r| r.text(0)).await
}

/// Every version of a catalogue, oldest first.
pub async fn list_catalogue_versions(db: &Db, catalogue: &str) -> AppResult<Vec<CatalogueRow>> {
    let sql =
        format!("SELECT {CATALOGUE_COLUMNS} FROM indicator_catalogue WHERE catalogue = $1 ORDER BY loaded_at, version");
    db.rows(&sql, &[catalogue.into()], catalogue_from_row).await
}

/// Change positions handed out inside one writing transaction.
#[derive(Debug)]
pub struct Positions {
    next: i64,
}

impl Positions {
    /// The next position of this transaction.
    pub fn take(&mut self) -> i64 {
        let p = self.next;
        self.next += 1;
        p
    }
}

/// Locks the change position: must be the first statement of a writing transaction
/// (see the module comment). Pair with [`save_positions`] before committing.
pub async fn lock_positions(conn: &mut sqlx::AnyConnection) -> AppResult<Positions> {
    let row = sqlx::query("UPDATE indicator_position SET pos = pos WHERE id = 1 RETURNING pos").fetch_one(conn).await?;
    let last: i64 = row.try_get(0)?;
    Ok(Positions { next: last + 1 })
}

/// Records the positions taken (the lock is released at commit).
pub async fn save_positions(conn: &mut sqlx::AnyConnection, p: &Positions) -> AppResult<()> {
    sqlx::query("UPDATE indicator_position SET pos = $1 WHERE id = 1").bind(p.next - 1).execute(conn).await?;
    Ok(())
}

/// What names one value: GHT (or establishment) × indicator × period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueKey {
    pub ght_id: String,
    /// Empty for GHT-scope indicators.
    pub establishment_id: String,
    pub indicator_code: String,
    pub period: String,
}

impl std::fmt::Display for ValueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of GHT {}", self.indicator_code, self.ght_id)?;
        if !self.establishment_id.is_empty() {
            write!(f, " establishment {}", self.establishment_id)?;
        }
        write!(f, " for {}", self.period)
    }
}

/// One revision of a value, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    pub id: String,
    pub key: ValueKey,
    /// The GHT's ARS region (immutable in the registry), for region pulls.
    pub ars_region: String,
    pub catalogue: String,
    pub catalogue_version: String,
    pub domain: i64,
    pub period_key: i64,
    pub revision: i64,
    pub value_type: String,
    pub value_text: String,
    pub evidence_note: String,
    pub evidence_ref: String,
    pub status: Status,
    pub declared_by: String,
    pub declared_at: i64,
    pub submitted_by: String,
    pub submitted_at: i64,
    pub reviewed_by: String,
    pub reviewed_at: i64,
    pub review_comment: String,
    pub updated_at: i64,
    pub change_seq: i64,
}

const VALUE_COLUMNS: &str =
    "v.id, v.ght_id, v.ars_region, v.establishment_id, v.catalogue, v.catalogue_version, v.indicator_code, \
     v.domain, v.period, v.period_key, v.revision, v.value_type, v.value_text, v.evidence_note, v.evidence_ref, \
     v.status, v.declared_by, v.declared_at, v.submitted_by, v.submitted_at, v.reviewed_by, v.reviewed_at, \
     v.review_comment, v.updated_at, v.change_seq";

fn value_from_row(r: &(impl Cols + ?Sized)) -> AppResult<ValueRow> {
    let status = r.text(15)?;
    Ok(ValueRow {
        id: r.text(0)?,
        key: ValueKey {
            ght_id: r.text(1)?,
            establishment_id: r.text(3)?,
            indicator_code: r.text(6)?,
            period: r.text(8)?,
        },
        ars_region: r.text(2)?,
        catalogue: r.text(4)?,
        catalogue_version: r.text(5)?,
        domain: r.int(7)?,
        period_key: r.int(9)?,
        revision: r.int(10)?,
        value_type: r.text(11)?,
        value_text: r.text(12)?,
        evidence_note: r.text(13)?,
        evidence_ref: r.text(14)?,
        status: Status::parse(&status).ok_or_else(|| AppError::internal(format!("stored status {status}")))?,
        declared_by: r.text(16)?,
        declared_at: r.int(17)?,
        submitted_by: r.text(18)?,
        submitted_at: r.int(19)?,
        reviewed_by: r.text(20)?,
        reviewed_at: r.int(21)?,
        review_comment: r.text(22)?,
        updated_at: r.int(23)?,
        change_seq: r.int(24)?,
    })
}

fn opt_time(micros: i64) -> String {
    if micros == 0 {
        String::new()
    } else {
        to_rfc3339(micros)
    }
}

/// A stored value text as a typed value (None only if the row was written by a
/// version of the hub with other types).
pub fn stored_value(value_type: &str, text: &str) -> Option<Val> {
    ValueType::parse(value_type).and_then(|t| Val::parse_text(t, text).ok())
}

impl ValueRow {
    pub fn value(&self) -> Option<Val> {
        stored_value(&self.value_type, &self.value_text)
    }

    pub fn to_proto(&self) -> proto::IndicatorValue {
        proto::IndicatorValue {
            id: self.id.clone(),
            ght_id: self.key.ght_id.clone(),
            establishment_id: self.key.establishment_id.clone(),
            catalogue: self.catalogue.clone(),
            catalogue_version: self.catalogue_version.clone(),
            indicator_code: self.key.indicator_code.clone(),
            domain: self.domain as u32,
            period: self.key.period.clone(),
            revision: self.revision as u32,
            value: self.value().map(|v| v.to_proto()),
            value_text: self.value_text.clone(),
            evidence_note: self.evidence_note.clone(),
            evidence_ref: self.evidence_ref.clone(),
            status: self.status.to_proto() as i32,
            declared_by: self.declared_by.clone(),
            declared_at: opt_time(self.declared_at),
            submitted_by: self.submitted_by.clone(),
            submitted_at: opt_time(self.submitted_at),
            reviewed_by: self.reviewed_by.clone(),
            reviewed_at: opt_time(self.reviewed_at),
            review_comment: self.review_comment.clone(),
            updated_at: opt_time(self.updated_at),
            change_seq: self.change_seq,
        }
    }
}

pub async fn insert_value(conn: &mut sqlx::AnyConnection, v: &ValueRow) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO indicator_value (id, ght_id, ars_region, establishment_id, catalogue, catalogue_version, \
         indicator_code, domain, period, period_key, revision, value_type, value_text, evidence_note, evidence_ref, \
         status, declared_by, declared_at, submitted_by, submitted_at, reviewed_by, reviewed_at, review_comment, \
         updated_at, change_seq, record) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26)",
    )
    .bind(&v.id)
    .bind(&v.key.ght_id)
    .bind(&v.ars_region)
    .bind(&v.key.establishment_id)
    .bind(&v.catalogue)
    .bind(&v.catalogue_version)
    .bind(&v.key.indicator_code)
    .bind(v.domain)
    .bind(&v.key.period)
    .bind(v.period_key)
    .bind(v.revision)
    .bind(&v.value_type)
    .bind(&v.value_text)
    .bind(&v.evidence_note)
    .bind(&v.evidence_ref)
    .bind(v.status.as_str())
    .bind(&v.declared_by)
    .bind(v.declared_at)
    .bind(&v.submitted_by)
    .bind(v.submitted_at)
    .bind(&v.reviewed_by)
    .bind(v.reviewed_at)
    .bind(&v.review_comment)
    .bind(v.updated_at)
    .bind(v.change_seq)
    .bind(v.to_proto().encode_to_vec())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the mutable part of an open revision (re-declaration, submission, review).
/// The database refuses it for a VALIDATED row.
pub async fn update_value(conn: &mut sqlx::AnyConnection, v: &ValueRow) -> AppResult<()> {
    let done = sqlx::query(
        "UPDATE indicator_value SET catalogue = $2, catalogue_version = $3, domain = $4, value_type = $5, \
         value_text = $6, evidence_note = $7, evidence_ref = $8, status = $9, declared_by = $10, declared_at = $11, \
         submitted_by = $12, submitted_at = $13, reviewed_by = $14, reviewed_at = $15, review_comment = $16, \
         updated_at = $17, change_seq = $18, record = $19 WHERE id = $1",
    )
    .bind(&v.id)
    .bind(&v.catalogue)
    .bind(&v.catalogue_version)
    .bind(v.domain)
    .bind(&v.value_type)
    .bind(&v.value_text)
    .bind(&v.evidence_note)
    .bind(&v.evidence_ref)
    .bind(v.status.as_str())
    .bind(&v.declared_by)
    .bind(v.declared_at)
    .bind(&v.submitted_by)
    .bind(v.submitted_at)
    .bind(&v.reviewed_by)
    .bind(v.reviewed_at)
    .bind(&v.review_comment)
    .bind(v.updated_at)
    .bind(v.change_seq)
    .bind(v.to_proto().encode_to_vec())
    .execute(conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::internal(format!("indicator value {} vanished", v.id)));
    }
    Ok(())
}

/// A step of a value's workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub change_seq: i64,
    pub value_id: String,
    pub revision: i64,
    pub action: String,
    pub status: Status,
    pub value_type: String,
    pub value_text: String,
    pub evidence_note: String,
    pub evidence_ref: String,
    pub actor: String,
    pub actor_role: String,
    pub at: i64,
    pub comment: String,
}

impl EventRow {
    /// The event recording `v`'s state after a step.
    pub fn of(v: &ValueRow, action: &str, actor: &str, actor_role: &str, comment: &str) -> EventRow {
        EventRow {
            change_seq: v.change_seq,
            value_id: v.id.clone(),
            revision: v.revision,
            action: action.to_string(),
            status: v.status,
            value_type: v.value_type.clone(),
            value_text: v.value_text.clone(),
            evidence_note: v.evidence_note.clone(),
            evidence_ref: v.evidence_ref.clone(),
            actor: actor.to_string(),
            actor_role: actor_role.to_string(),
            at: v.updated_at,
            comment: comment.to_string(),
        }
    }

    pub fn to_proto(&self) -> proto::HistoryEvent {
        proto::HistoryEvent {
            revision: self.revision as u32,
            action: self.action.clone(),
            status: self.status.to_proto() as i32,
            value: stored_value(&self.value_type, &self.value_text).map(|v| v.to_proto()),
            value_text: self.value_text.clone(),
            evidence_note: self.evidence_note.clone(),
            evidence_ref: self.evidence_ref.clone(),
            actor: self.actor.clone(),
            actor_role: self.actor_role.clone(),
            at: to_rfc3339(self.at),
            comment: self.comment.clone(),
            change_seq: self.change_seq,
        }
    }
}

pub async fn insert_event(conn: &mut sqlx::AnyConnection, e: &EventRow) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO indicator_event (change_seq, value_id, revision, action, status, value_type, value_text, \
         evidence_note, evidence_ref, actor, actor_role, at, comment) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
    )
    .bind(e.change_seq)
    .bind(&e.value_id)
    .bind(e.revision)
    .bind(&e.action)
    .bind(e.status.as_str())
    .bind(&e.value_type)
    .bind(&e.value_text)
    .bind(&e.evidence_note)
    .bind(&e.evidence_ref)
    .bind(&e.actor)
    .bind(&e.actor_role)
    .bind(e.at)
    .bind(&e.comment)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest revision of a value.
pub async fn latest_revision(conn: &mut sqlx::AnyConnection, k: &ValueKey) -> AppResult<Option<ValueRow>> {
    let row = sqlx::query(&format!(
        "SELECT {VALUE_COLUMNS} FROM indicator_value v WHERE v.ght_id = $1 AND v.establishment_id = $2 \
         AND v.indicator_code = $3 AND v.period = $4 ORDER BY v.revision DESC LIMIT 1"
    ))
    .bind(&k.ght_id)
    .bind(&k.establishment_id)
    .bind(&k.indicator_code)
    .bind(&k.period)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(value_from_row).transpose()
}

pub async fn get_value(conn: &mut sqlx::AnyConnection, id: &str) -> AppResult<Option<ValueRow>> {
    let row = sqlx::query(&format!("SELECT {VALUE_COLUMNS} FROM indicator_value v WHERE v.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(value_from_row).transpose()
}

/// The DRAFT values of a GHT (establishment_id '') or of one establishment, for a period.
pub async fn drafts(
    conn: &mut sqlx::AnyConnection,
    ght_id: &str,
    establishment_id: &str,
    period: &str,
) -> AppResult<Vec<ValueRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {VALUE_COLUMNS} FROM indicator_value v WHERE v.ght_id = $1 AND v.establishment_id = $2 \
         AND v.period = $3 AND v.status = 'DRAFT' ORDER BY v.indicator_code"
    ))
    .bind(ght_id)
    .bind(establishment_id)
    .bind(period)
    .fetch_all(conn)
    .await?;
    rows.iter().map(value_from_row).collect()
}

/// Every revision of every value of a GHT (or of one establishment) in one catalogue.
pub async fn values_of_scope(
    db: &Db,
    ght_id: &str,
    establishment_id: &str,
    catalogue: &str,
) -> AppResult<Vec<ValueRow>> {
    let sql = format!(
        "SELECT {VALUE_COLUMNS} FROM indicator_value v WHERE v.ght_id = $1 AND v.establishment_id = $2 \
         AND v.catalogue = $3 ORDER BY v.indicator_code, v.period_key, v.revision"
    );
    db.rows(&sql, &[ght_id.into(), establishment_id.into(), catalogue.into()], |r| value_from_row(r)).await
}

/// Every revision of one value (oldest first) and every step of its workflow.
pub async fn history(db: &Db, k: &ValueKey) -> AppResult<(Vec<ValueRow>, Vec<EventRow>)> {
    let rows = sqlx::query(&format!(
        "SELECT {VALUE_COLUMNS} FROM indicator_value v WHERE v.ght_id = $1 AND v.establishment_id = $2 \
         AND v.indicator_code = $3 AND v.period = $4 ORDER BY v.revision"
    ))
    .bind(&k.ght_id)
    .bind(&k.establishment_id)
    .bind(&k.indicator_code)
    .bind(&k.period)
    .fetch_all(&db.read)
    .await?;
    let revisions = rows.iter().map(value_from_row).collect::<AppResult<Vec<_>>>()?;
    let events = sqlx::query(
        "SELECT e.change_seq, e.value_id, e.revision, e.action, e.status, e.value_type, e.value_text, \
         e.evidence_note, e.evidence_ref, e.actor, e.actor_role, e.at, e.comment \
         FROM indicator_event e JOIN indicator_value v ON v.id = e.value_id \
         WHERE v.ght_id = $1 AND v.establishment_id = $2 AND v.indicator_code = $3 AND v.period = $4 \
         ORDER BY e.change_seq",
    )
    .bind(&k.ght_id)
    .bind(&k.establishment_id)
    .bind(&k.indicator_code)
    .bind(&k.period)
    .fetch_all(&db.read)
    .await?;
    let events = events
        .iter()
        .map(|r| {
            let status: String = r.try_get(4)?;
            Ok(EventRow {
                change_seq: r.try_get(0)?,
                value_id: r.try_get(1)?,
                revision: r.try_get(2)?,
                action: r.try_get(3)?,
                status: Status::parse(&status).ok_or_else(|| AppError::internal(format!("stored status {status}")))?,
                value_type: r.try_get(5)?,
                value_text: r.try_get(6)?,
                evidence_note: r.try_get(7)?,
                evidence_ref: r.try_get(8)?,
                actor: r.try_get(9)?,
                actor_role: r.try_get(10)?,
                at: r.try_get(11)?,
                comment: r.try_get(12)?,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok((revisions, events))
}

/// What a region pull selects.
#[derive(Debug, Clone, Default)]
pub struct PullFilter {
    pub region: String,
    pub since: i64,
    /// Empty = every period.
    pub period: String,
    /// 0 = every domain.
    pub domain: i64,
    /// Empty = every status.
    pub status: String,
    /// Empty = every catalogue.
    pub catalogue: String,
}

/// The value revisions of a region's GHTs changed after `since`, each in its latest
/// state, in change order, as a stream: one range of the (ars_region, change_seq)
/// index, reading the `record` column only (per-column decoding is what a large read
/// spends its time on).
pub fn changes_since<'a>(
    db: &'a Db,
    region: &'a str,
    since: i64,
) -> impl futures::Stream<Item = AppResult<proto::IndicatorValue>> + Send + 'a {
    use futures::StreamExt;
    sqlx::query(
        "SELECT v.record FROM indicator_value v WHERE v.ars_region = $1 AND v.change_seq > $2 ORDER BY v.change_seq",
    )
    .bind(region)
    .bind(since)
    .fetch(&db.read)
    .map(|r| {
        let bytes: Vec<u8> = r?.try_get(0)?;
        proto::IndicatorValue::decode(bytes.as_slice()).map_err(|e| AppError::internal(format!("stored record: {e}")))
    })
}
