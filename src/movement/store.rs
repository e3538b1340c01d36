//! SQL of the movement domain: batched publication, encounters, the subscription
//! feed, journeys and care relationships.

use std::collections::{HashMap, HashSet};

use sqlx::{AnyConnection, Row};

use super::{
    adt::{self, Effect, Mv},
    types::{Class, MovementInput, Trigger},
};
use crate::{
    db::Db,
    identity::store::in_list,
    proto,
    time::{opt_rfc3339, to_rfc3339},
    AppError, AppResult,
};

/// Values per IN list: as many as a statement binds cheaply (see
/// [`crate::db::rows_per_statement`]), at most 500.
fn in_chunk(conn: &AnyConnection) -> usize {
    crate::db::rows_per_statement(conn, 1).min(500)
}

const MV_COLS: &str = "position, establishment_id, event_id, ipp, encounter_id, trigger_code, event_time, \
    medical_unit, care_unit, encounter_class, target_event_id, origin_establishment_id, \
    destination_establishment_id, recorded_at, recorded_by, cancelled_by, content_hash";
const N_MV_COLS: usize = 17;

/// A stored movement.
#[derive(Debug, Clone)]
pub struct StoredMv {
    pub establishment_id: String,
    pub ipp: String,
    pub encounter_id: String,
    pub recorded_at: i64,
    pub recorded_by: String,
    pub content_hash: String,
    pub mv: Mv,
}

impl StoredMv {
    pub fn to_proto(&self, territorial_id: &str) -> proto::Movement {
        let m = &self.mv;
        proto::Movement {
            event_id: m.event_id.clone(),
            establishment_id: self.establishment_id.clone(),
            ipp: self.ipp.clone(),
            encounter_id: self.encounter_id.clone(),
            trigger: m.trigger.to_proto() as i32,
            event_time: to_rfc3339(m.event_time),
            medical_unit: m.medical_unit.clone(),
            care_unit: m.care_unit.clone(),
            encounter_class: m.class.map(|c| c.to_proto() as i32).unwrap_or(0),
            target_event_id: m.target_event_id.clone().unwrap_or_default(),
            origin_establishment_id: m.origin.clone(),
            destination_establishment_id: m.destination.clone(),
            position: m.position,
            recorded_at: to_rfc3339(self.recorded_at),
            recorded_by: self.recorded_by.clone(),
            territorial_id: territorial_id.to_string(),
            cancelled_by: m.cancelled_by.clone().unwrap_or_default(),
        }
    }
}

fn mv_from_row(r: &sqlx::any::AnyRow, offset: usize) -> AppResult<StoredMv> {
    let trigger: String = r.try_get(offset + 5)?;
    let class: String = r.try_get(offset + 9)?;
    Ok(StoredMv {
        establishment_id: r.try_get(offset + 1)?,
        ipp: r.try_get(offset + 3)?,
        encounter_id: r.try_get(offset + 4)?,
        recorded_at: r.try_get(offset + 13)?,
        recorded_by: r.try_get(offset + 14)?,
        content_hash: r.try_get(offset + 16)?,
        mv: Mv {
            position: r.try_get(offset)?,
            event_id: r.try_get(offset + 2)?,
            trigger: Trigger::parse(&trigger).ok_or_else(|| AppError::internal(format!("stored trigger {trigger}")))?,
            event_time: r.try_get(offset + 6)?,
            medical_unit: r.try_get(offset + 7)?,
            care_unit: r.try_get(offset + 8)?,
            class: Class::parse(&class),
            target_event_id: r.try_get(offset + 10)?,
            origin: r.try_get(offset + 11)?,
            destination: r.try_get(offset + 12)?,
            cancelled_by: r.try_get(offset + 15)?,
        },
    })
}

/// The condition of the same-nature index: repeated in a query, it lets the
/// planner use that partial index.
const SAME_NATURE: &str =
    "cancelled_by IS NULL AND trigger_code NOT IN ('A11', 'A12', 'A13', 'A38', 'A52', 'A53', 'Z81', 'Z99')";

/// Movements of one establishment whose `column` is in `values` (and `extra` holds).
async fn movements_where(
    conn: &mut AnyConnection,
    est: &str,
    column: &str,
    values: &[String],
    extra: &str,
) -> AppResult<Vec<StoredMv>> {
    let mut out = vec![];
    for chunk in values.chunks(in_chunk(conn)) {
        let sql = format!(
            "SELECT {MV_COLS} FROM movement WHERE establishment_id = $1 AND {column} IN ({}){extra} ORDER BY position",
            in_list(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(est);
        for v in chunk {
            q = q.bind(v);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.push(mv_from_row(&r, 0)?);
        }
    }
    Ok(out)
}

/// What happened to one published movement.
#[derive(Debug)]
pub enum Outcome {
    Accepted(i64),
    Duplicate(i64),
    Rejected(AppError),
}

/// A movement accepted in this batch, before its position is known.
struct NewRow {
    slot: usize,
    input: MovementInput,
    position: i64,
}

/// Positions of this batch before allocation: far above any real position.
const PROVISIONAL: i64 = i64::MAX / 2;

/// Commits a batch of validated movements in one transaction and returns each one's
/// outcome (in the order given). An invalid movement is rejected alone; a database
/// failure fails the whole batch (nothing committed).
pub async fn publish_batch(db: &Db, batch: &[MovementInput], author: &str, now: i64) -> AppResult<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    let _turn = db.bulk_write_turn().await;
    let mut tx = db.write.begin().await?;
    if db.is_postgres() {
        // Serialises publishers across replicas from the start: their checks see
        // every committed movement, and positions follow commit order.
        sqlx::query("SELECT position FROM movement_head WHERE id = 1 FOR UPDATE").execute(&mut *tx).await?;
    }
    let mut new_rows: Vec<NewRow> = vec![];
    let mut cancels: Vec<(String, String, String)> = vec![];
    // (establishment, encounter) → (ipp, history)
    let mut touched: HashMap<(String, String), (String, Vec<Mv>)> = HashMap::new();
    // Duplicates inside the batch: (establishment, event id) → index in new_rows.
    let mut in_batch: HashMap<(String, String), usize> = HashMap::new();
    let mut pending_dups: Vec<(usize, usize)> = vec![];

    let mut groups: Vec<(&str, Vec<usize>)> = vec![];
    for (i, m) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(e, _)| *e == m.establishment_id) {
            Some((_, v)) => v.push(i),
            None => groups.push((&m.establishment_id, vec![i])),
        }
    }
    for (est, slots) in groups {
        let distinct = |f: &dyn Fn(&MovementInput) -> Option<String>| -> Vec<String> {
            let set: HashSet<String> = slots.iter().filter_map(|&i| f(&batch[i])).collect();
            set.into_iter().collect()
        };
        let event_ids = distinct(&|m| Some(m.event_id.clone()));
        let mut wanted = event_ids.clone();
        wanted.extend(distinct(&|m| m.target_event_id.clone()));
        let known: HashMap<String, StoredMv> = movements_where(&mut tx, est, "event_id", &wanted, "")
            .await?
            .into_iter()
            .map(|s| (s.mv.event_id.clone(), s))
            .collect();
        let ipps = distinct(&|m| Some(m.ipp.clone()));
        let identities = identity_status(&mut tx, est, &ipps).await?;
        let encounter_ids = distinct(&|m| Some(m.encounter_id.clone()));
        let mut histories: HashMap<String, Vec<Mv>> = HashMap::new();
        let mut owners: HashMap<String, String> = encounter_owners(&mut tx, est, &encounter_ids).await?;
        for s in movements_where(&mut tx, est, "encounter_id", &encounter_ids, "").await? {
            owners.entry(s.encounter_id.clone()).or_insert_with(|| s.ipp.clone());
            histories.entry(s.encounter_id.clone()).or_default().push(s.mv);
        }
        // Active movements of these patients at these times (IHE PAM same-nature rule).
        // The rule compares exact event times, so only the batch's time span is read:
        // a patient's whole history would make every batch slower as the history grows.
        let times = slots.iter().map(|&i| batch[i].event_time);
        let (from, to) = (times.clone().min().unwrap_or(0), times.max().unwrap_or(0));
        let mut same_nature: HashMap<(String, String, String, i64), String> = HashMap::new();
        let span = format!(" AND {SAME_NATURE} AND event_time >= {from} AND event_time <= {to}");
        for s in movements_where(&mut tx, est, "ipp", &ipps, &span).await? {
            same_nature.insert(nature_key(&s.ipp, &s.mv), s.mv.event_id.clone());
        }

        for slot in slots {
            let m = &batch[slot];
            let key = (est.to_string(), m.event_id.clone());
            if let Some(s) = known.get(&m.event_id) {
                outcomes[slot] = Some(if s.content_hash == m.content_hash {
                    Outcome::Duplicate(s.mv.position)
                } else {
                    Outcome::Rejected(reused(m))
                });
                continue;
            }
            if let Some(&k) = in_batch.get(&key) {
                if new_rows[k].input.content_hash == m.content_hash {
                    pending_dups.push((slot, k));
                } else {
                    outcomes[slot] = Some(Outcome::Rejected(reused(m)));
                }
                continue;
            }
            match check_one(m, est, &identities, &owners, &known, &new_rows, &mut touched, &mut histories, &same_nature)
            {
                Err(e) => outcomes[slot] = Some(Outcome::Rejected(e)),
                Ok((mv, effect)) => {
                    let enc = (est.to_string(), m.encounter_id.clone());
                    let (_, history) =
                        touched.get_mut(&enc).ok_or_else(|| AppError::internal("encounter not loaded"))?;
                    if let Effect::Cancel { target } = &effect {
                        if let Some(t) = history.iter_mut().find(|x| &x.event_id == target) {
                            t.cancelled_by = Some(m.event_id.clone());
                            same_nature.remove(&nature_key(&m.ipp, t));
                        }
                        cancels.push((est.to_string(), target.clone(), m.event_id.clone()));
                    }
                    if effect == Effect::Insert {
                        same_nature.insert(nature_key(&m.ipp, &mv), m.event_id.clone());
                    }
                    history.push(mv);
                    owners.insert(m.encounter_id.clone(), m.ipp.clone());
                    in_batch.insert(key, new_rows.len());
                    new_rows.push(NewRow { slot, input: m.clone(), position: 0 });
                }
            }
        }
    }

    if !new_rows.is_empty() {
        let n = new_rows.len() as i64;
        let row = sqlx::query("UPDATE movement_head SET position = position + $1 WHERE id = 1 RETURNING position")
            .bind(n)
            .fetch_one(&mut *tx)
            .await?;
        let first = row.try_get::<i64, _>(0)? - n + 1;
        for (k, r) in new_rows.iter_mut().enumerate() {
            r.position = first + k as i64;
            outcomes[r.slot] = Some(Outcome::Accepted(r.position));
        }
        for (_, history) in touched.values_mut() {
            for m in history.iter_mut().filter(|m| m.position >= PROVISIONAL) {
                m.position = first + (m.position - PROVISIONAL);
            }
        }
        insert_movements(&mut tx, &new_rows, author, now).await?;
        for (est, target, by) in &cancels {
            sqlx::query(
                "UPDATE movement SET cancelled_by = $1 WHERE establishment_id = $2 AND event_id = $3 AND cancelled_by IS NULL",
            )
            .bind(by)
            .bind(est)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        }
        upsert_encounters(&mut tx, &touched, now).await?;
        if db.is_postgres() {
            // Delivered at commit: wakes the subscribers of every replica.
            sqlx::query("SELECT pg_notify('ghthub_movements', '')").execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    for (slot, k) in pending_dups {
        outcomes[slot] = Some(Outcome::Duplicate(new_rows[k].position));
    }
    outcomes.into_iter().map(|o| o.ok_or_else(|| AppError::internal("movement without an outcome"))).collect()
}

fn reused(m: &MovementInput) -> AppError {
    AppError::AlreadyExists(format!(
        "movement event id {} of establishment {} was already published with different content; \
         a correction is a new movement (Z99, or a cancellation and a new event)",
        m.event_id, m.establishment_id
    ))
}

fn nature_key(ipp: &str, m: &Mv) -> (String, String, String, i64) {
    (ipp.to_string(), m.trigger.code().to_string(), m.medical_unit.clone(), m.event_time)
}

/// The checks of one movement against what is known; on success, the movement as
/// it joins its encounter's history and what it does.
#[allow(clippy::too_many_arguments)]
fn check_one(
    m: &MovementInput,
    est: &str,
    identities: &HashMap<String, Option<String>>,
    owners: &HashMap<String, String>,
    known: &HashMap<String, StoredMv>,
    new_rows: &[NewRow],
    touched: &mut HashMap<(String, String), (String, Vec<Mv>)>,
    histories: &mut HashMap<String, Vec<Mv>>,
    same_nature: &HashMap<(String, String, String, i64), String>,
) -> AppResult<(Mv, Effect)> {
    match identities.get(&m.ipp) {
        None => {
            return Err(AppError::precondition(format!(
                "identity {est}:{} is not published: publish it first (UpsertIdentity)",
                m.ipp
            )))
        }
        Some(Some(into)) => {
            return Err(AppError::precondition(format!(
                "IPP {} was merged (A40) into IPP {into}: publish with the surviving IPP",
                m.ipp
            )))
        }
        Some(None) => {}
    }
    if let Some(owner) = owners.get(&m.encounter_id).filter(|o| **o != m.ipp) {
        return Err(AppError::precondition(format!(
            "encounter {} belongs to another patient (IPP {owner}), not IPP {}",
            m.encounter_id, m.ipp
        )));
    }
    if let Some(t) = &m.target_event_id {
        let elsewhere = known
            .get(t)
            .map(|s| s.encounter_id.clone())
            .or_else(|| new_rows.iter().find(|r| &r.input.event_id == t).map(|r| r.input.encounter_id.clone()));
        if let Some(enc) = elsewhere.filter(|e| *e != m.encounter_id) {
            return Err(AppError::precondition(format!(
                "movement {t} belongs to encounter {enc}, not to encounter {}",
                m.encounter_id
            )));
        }
    }
    let enc = (est.to_string(), m.encounter_id.clone());
    let entry =
        touched.entry(enc).or_insert_with(|| (m.ipp.clone(), histories.remove(&m.encounter_id).unwrap_or_default()));
    let mv = Mv {
        position: PROVISIONAL + new_rows.len() as i64,
        event_id: m.event_id.clone(),
        trigger: m.trigger,
        event_time: m.event_time,
        medical_unit: m.medical_unit.clone(),
        care_unit: m.care_unit.clone(),
        class: m.class,
        target_event_id: m.target_event_id.clone(),
        origin: m.origin_establishment_id.clone(),
        destination: m.destination_establishment_id.clone(),
        cancelled_by: None,
    };
    let effect = adt::check(&entry.1, &mv)?;
    if effect == Effect::Insert {
        if let Some(other) = same_nature.get(&nature_key(&m.ipp, &mv)) {
            return Err(AppError::precondition(format!(
                "movement {other} already records a {} for this patient in unit '{}' at {} \
                 (IHE PAM: two movements of the same nature cannot share patient, unit and time)",
                m.trigger.code(),
                m.medical_unit,
                to_rfc3339(m.event_time)
            )));
        }
    }
    Ok((mv, effect))
}

/// For each IPP of an establishment: absent (not published), or published with the
/// IPP it was merged into, if any.
async fn identity_status(
    conn: &mut AnyConnection,
    est: &str,
    ipps: &[String],
) -> AppResult<HashMap<String, Option<String>>> {
    let mut out = HashMap::new();
    for chunk in ipps.chunks(in_chunk(conn)) {
        let sql = format!(
            "SELECT ipp, merged_into_ipp FROM local_identity WHERE establishment_id = $1 AND ipp IN ({})",
            in_list(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(est);
        for v in chunk {
            q = q.bind(v);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.try_get::<String, _>(0)?, r.try_get::<Option<String>, _>(1)?);
        }
    }
    Ok(out)
}

async fn encounter_owners(conn: &mut AnyConnection, est: &str, ids: &[String]) -> AppResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(in_chunk(conn)) {
        let sql = format!(
            "SELECT encounter_id, ipp FROM encounter WHERE establishment_id = $1 AND encounter_id IN ({})",
            in_list(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(est);
        for v in chunk {
            q = q.bind(v);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
        }
    }
    Ok(out)
}

async fn insert_movements(conn: &mut AnyConnection, rows: &[NewRow], author: &str, now: i64) -> AppResult<()> {
    for chunk in rows.chunks(crate::db::rows_per_statement(conn, N_MV_COLS)) {
        let values = (0..chunk.len())
            .map(|r| format!("({})", in_list(r * N_MV_COLS + 1, N_MV_COLS)))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("INSERT INTO movement ({MV_COLS}) VALUES {values}");
        let mut q = sqlx::query(&sql);
        for r in chunk {
            let m = &r.input;
            q = q
                .bind(r.position)
                .bind(&m.establishment_id)
                .bind(&m.event_id)
                .bind(&m.ipp)
                .bind(&m.encounter_id)
                .bind(m.trigger.code())
                .bind(m.event_time)
                .bind(&m.medical_unit)
                .bind(&m.care_unit)
                .bind(m.class.map(Class::code).unwrap_or(""))
                .bind(&m.target_event_id)
                .bind(&m.origin_establishment_id)
                .bind(&m.destination_establishment_id)
                .bind(now)
                .bind(author)
                .bind(Option::<String>::None)
                .bind(&m.content_hash);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

const ENC_COLS: &str = "establishment_id, encounter_id, ipp, status, encounter_class, medical_unit, care_unit, \
    admitted_at, discharged_at, origin_establishment_id, destination_establishment_id, anomalies, first_event_at, updated_at";
const N_ENC_COLS: usize = 14;

async fn upsert_encounters(
    conn: &mut AnyConnection,
    touched: &HashMap<(String, String), (String, Vec<Mv>)>,
    now: i64,
) -> AppResult<()> {
    let all: Vec<_> = touched.iter().collect();
    for chunk in all.chunks(crate::db::rows_per_statement(conn, N_ENC_COLS)) {
        let values = (0..chunk.len())
            .map(|r| format!("({})", in_list(r * N_ENC_COLS + 1, N_ENC_COLS)))
            .collect::<Vec<_>>()
            .join(",");
        let updates =
            ENC_COLS.split(", ").skip(2).map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO encounter ({ENC_COLS}) VALUES {values} ON CONFLICT (establishment_id, encounter_id) DO UPDATE SET {updates}"
        );
        let mut q = sqlx::query(&sql);
        for ((est, enc), (ipp, history)) in chunk {
            let s = adt::fold(history);
            q = q
                .bind(est)
                .bind(enc)
                .bind(ipp)
                .bind(s.status.as_str())
                .bind(s.class.map(Class::code).unwrap_or(""))
                .bind(s.medical_unit)
                .bind(s.care_unit)
                .bind(s.admitted_at)
                .bind(s.discharged_at)
                .bind(s.origin)
                .bind(s.destination)
                .bind(s.anomalies.join("\n"))
                .bind(s.first_event_at)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One row of the subscription feed: the movement and its patient's territorial identity.
pub struct FeedRow {
    pub movement: StoredMv,
    pub territorial_id: String,
}

/// Committed movements after `position`, in position order.
pub async fn feed_after(db: &Db, position: i64, limit: i64) -> AppResult<Vec<FeedRow>> {
    let cols = MV_COLS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let rows = sqlx::query(&format!(
        "SELECT {cols}, COALESCE(l.territorial_id, '') FROM movement m \
         LEFT JOIN local_identity l ON l.establishment_id = m.establishment_id AND l.ipp = m.ipp \
         WHERE m.position > $1 ORDER BY m.position LIMIT {limit}"
    ))
    .bind(position)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(|r| Ok(FeedRow { movement: mv_from_row(r, 0)?, territorial_id: r.try_get(N_MV_COLS)? })).collect()
}

/// An encounter row.
#[derive(Debug, Clone)]
pub struct EncounterRow {
    pub establishment_id: String,
    pub encounter_id: String,
    pub ipp: String,
    pub status: String,
    pub class: String,
    pub medical_unit: String,
    pub care_unit: String,
    pub admitted_at: Option<i64>,
    pub discharged_at: Option<i64>,
    pub origin: String,
    pub destination: String,
    pub anomalies: String,
    pub first_event_at: i64,
}

fn encounter_from_row(r: &sqlx::any::AnyRow) -> AppResult<EncounterRow> {
    Ok(EncounterRow {
        establishment_id: r.try_get(0)?,
        encounter_id: r.try_get(1)?,
        ipp: r.try_get(2)?,
        status: r.try_get(3)?,
        class: r.try_get(4)?,
        medical_unit: r.try_get(5)?,
        care_unit: r.try_get(6)?,
        admitted_at: r.try_get(7)?,
        discharged_at: r.try_get(8)?,
        origin: r.try_get(9)?,
        destination: r.try_get(10)?,
        anomalies: r.try_get(11)?,
        first_event_at: r.try_get(12)?,
    })
}

pub async fn encounter(db: &Db, est: &str, encounter_id: &str) -> AppResult<Option<EncounterRow>> {
    let row =
        sqlx::query(&format!("SELECT {ENC_COLS} FROM encounter WHERE establishment_id = $1 AND encounter_id = $2"))
            .bind(est)
            .bind(encounter_id)
            .fetch_optional(&db.read)
            .await?;
    row.as_ref().map(encounter_from_row).transpose()
}

/// Encounters of one local identity, by first event.
pub async fn encounters_of_patient(db: &Db, est: &str, ipp: &str) -> AppResult<Vec<EncounterRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENC_COLS} FROM encounter WHERE establishment_id = $1 AND ipp = $2 ORDER BY first_event_at, encounter_id"
    ))
    .bind(est)
    .bind(ipp)
    .fetch_all(&db.read)
    .await?;
    rows.iter().map(encounter_from_row).collect()
}

/// The whole history of an encounter, in event-time order.
pub async fn history(db: &Db, est: &str, encounter_id: &str) -> AppResult<Vec<StoredMv>> {
    let mut conn = db.read.acquire().await?;
    let mut h = movements_where(&mut conn, est, "encounter_id", &[encounter_id.to_string()], "").await?;
    h.sort_by_key(|s| (s.mv.event_time, s.mv.position));
    Ok(h)
}

/// The territorial identity of a local identity (empty if unknown).
pub async fn territorial_of(db: &Db, est: &str, ipp: &str) -> AppResult<String> {
    let row = sqlx::query("SELECT territorial_id FROM local_identity WHERE establishment_id = $1 AND ipp = $2")
        .bind(est)
        .bind(ipp)
        .fetch_optional(&db.read)
        .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => String::new(),
    })
}

impl EncounterRow {
    pub fn to_proto(&self, territorial_id: &str, movements: Vec<proto::Movement>) -> proto::Encounter {
        let status = proto::EncounterStatus::from_str_name(&format!("ENCOUNTER_STATUS_{}", self.status))
            .unwrap_or(proto::EncounterStatus::Unspecified);
        proto::Encounter {
            establishment_id: self.establishment_id.clone(),
            encounter_id: self.encounter_id.clone(),
            ipp: self.ipp.clone(),
            territorial_id: territorial_id.to_string(),
            status: status as i32,
            encounter_class: Class::parse(&self.class).map(|c| c.to_proto() as i32).unwrap_or(0),
            medical_unit: self.medical_unit.clone(),
            care_unit: self.care_unit.clone(),
            admitted_at: opt_rfc3339(self.admitted_at),
            discharged_at: opt_rfc3339(self.discharged_at),
            origin_establishment_id: self.origin.clone(),
            destination_establishment_id: self.destination.clone(),
            movements,
            anomalies: self.anomalies.split('\n').filter(|s| !s.is_empty()).map(String::from).collect(),
        }
    }
}

/// Care relationship: the territorial identity `patient` (followed if retired) has a
/// local identity with an open encounter (admitted or on leave: not pre-admitted,
/// discharged or cancelled) at `establishment`.
pub async fn has_open_encounter(db: &Db, establishment: &str, patient: &str) -> AppResult<bool> {
    let mut conn = db.read.acquire().await?;
    let Some(live) = crate::identity::store::resolve_territorial(&mut conn, patient).await? else {
        return Ok(false);
    };
    let row = sqlx::query(
        "SELECT 1 FROM local_identity l JOIN encounter e ON e.establishment_id = l.establishment_id AND e.ipp = l.ipp \
         WHERE l.territorial_id = $1 AND l.establishment_id = $2 AND e.status IN ('ADMITTED', 'ON_LEAVE') LIMIT 1",
    )
    .bind(&live)
    .bind(establishment)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}
