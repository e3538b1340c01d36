//! SQL of the movement domain: batched publication, encounters, the subscription
//! feed, journeys and care relationships.

use sqlx::AnyConnection;

use super::{
    adt::Mv,
    types::{Class, Trigger},
};
use crate::{
    db::{Cols, Db, Reader},
    proto,
    time::{opt_rfc3339, to_rfc3339},
    AppError, AppResult,
};

/// Values per IN list: as many as a statement binds cheaply (see
/// [`crate::db::rows_per_statement`]), at most 500.
pub(super) fn in_chunk(conn: &AnyConnection) -> usize {
    crate::db::rows_per_statement(conn, 1).min(500)
}

pub(super) const MV_COLS: &str = "position, establishment_id, event_id, ipp, encounter_id, trigger_code, event_time, \
    medical_unit, care_unit, encounter_class, target_event_id, origin_establishment_id, \
    destination_establishment_id, recorded_at, recorded_by, cancelled_by, content_hash";
pub(super) const N_MV_COLS: usize = 17;

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

pub(super) fn mv_from_row(r: &(impl crate::db::Cols + ?Sized), offset: usize) -> AppResult<StoredMv> {
    let trigger = r.text(offset + 5)?;
    let class = r.text(offset + 9)?;
    Ok(StoredMv {
        establishment_id: r.text(offset + 1)?,
        ipp: r.text(offset + 3)?,
        encounter_id: r.text(offset + 4)?,
        recorded_at: r.int(offset + 13)?,
        recorded_by: r.text(offset + 14)?,
        content_hash: r.text(offset + 16)?,
        mv: Mv {
            position: r.int(offset)?,
            event_id: r.text(offset + 2)?,
            trigger: Trigger::parse(&trigger).ok_or_else(|| AppError::internal(format!("stored trigger {trigger}")))?,
            event_time: r.int(offset + 6)?,
            medical_unit: r.text(offset + 7)?,
            care_unit: r.text(offset + 8)?,
            class: Class::parse(&class),
            target_event_id: r.opt_text(offset + 10)?,
            origin: r.text(offset + 11)?,
            destination: r.text(offset + 12)?,
            cancelled_by: r.opt_text(offset + 15)?,
        },
    })
}

/// The condition of the same-nature index: repeated in a query, it lets the
/// planner use that partial index. Comparisons rather than `NOT IN (…)`: SQLite
/// evaluates an IN list of more than two values through a temporary B-tree built
/// for every execution (every probe, and every insert into the index).
pub(super) const SAME_NATURE: &str = "cancelled_by IS NULL \
    AND trigger_code <> 'A11' AND trigger_code <> 'A12' AND trigger_code <> 'A13' AND trigger_code <> 'A38' \
    AND trigger_code <> 'A52' AND trigger_code <> 'A53' AND trigger_code <> 'Z81' AND trigger_code <> 'Z99'";

pub(super) const ENC_COLS: &str = "establishment_id, encounter_id, ipp, status, encounter_class, medical_unit, care_unit, \
    admitted_at, discharged_at, origin_establishment_id, destination_establishment_id, anomalies, first_event_at, updated_at";
pub(super) const N_ENC_COLS: usize = 14;

/// One row of the subscription feed: the movement and its patient's territorial identity.
pub struct FeedRow {
    pub movement: StoredMv,
    pub territorial_id: String,
}

/// Committed movements after `position`, in position order.
pub async fn feed_after(db: &Db, position: i64, limit: i64) -> AppResult<Vec<FeedRow>> {
    let cols = MV_COLS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {cols}, COALESCE(l.territorial_id, '') FROM movement m \
         LEFT JOIN local_identity l ON l.establishment_id = m.establishment_id AND l.ipp = m.ipp \
         WHERE m.position > $1 ORDER BY m.position LIMIT {limit}"
    );
    db.rows(&sql, &[position.into()], |r| {
        Ok(FeedRow { movement: mv_from_row(r, 0)?, territorial_id: r.text(N_MV_COLS)? })
    })
    .await
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

fn encounter_from_row(r: &dyn Cols) -> AppResult<EncounterRow> {
    Ok(EncounterRow {
        establishment_id: r.text(0)?,
        encounter_id: r.text(1)?,
        ipp: r.text(2)?,
        status: r.text(3)?,
        class: r.text(4)?,
        medical_unit: r.text(5)?,
        care_unit: r.text(6)?,
        admitted_at: r.opt_int(7)?,
        discharged_at: r.opt_int(8)?,
        origin: r.text(9)?,
        destination: r.text(10)?,
        anomalies: r.text(11)?,
        first_event_at: r.int(12)?,
    })
}

pub async fn encounter(db: &Db, est: &str, encounter_id: &str) -> AppResult<Option<EncounterRow>> {
    let sql = format!("SELECT {ENC_COLS} FROM encounter WHERE establishment_id = $1 AND encounter_id = $2");
    db.row(&sql, &[est.into(), encounter_id.into()], encounter_from_row).await
}

/// Encounters of one local identity, by first event.
pub async fn encounters_of_patient(db: &Db, est: &str, ipp: &str) -> AppResult<Vec<EncounterRow>> {
    let sql = format!(
        "SELECT {ENC_COLS} FROM encounter WHERE establishment_id = $1 AND ipp = $2 ORDER BY first_event_at, encounter_id"
    );
    db.rows(&sql, &[est.into(), ipp.into()], encounter_from_row).await
}

/// The whole history of an encounter, in event-time order.
pub async fn history(db: &Db, est: &str, encounter_id: &str) -> AppResult<Vec<StoredMv>> {
    // No ORDER BY: the rows are sorted here (see the publication's look-ups).
    let sql = format!("SELECT {MV_COLS} FROM movement WHERE establishment_id = $1 AND encounter_id = $2");
    let mut h = db.rows(&sql, &[est.into(), encounter_id.into()], |r| mv_from_row(r, 0)).await?;
    h.sort_by_key(|s| (s.mv.event_time, s.mv.position));
    Ok(h)
}

/// The territorial identity of a local identity (empty if unknown).
pub async fn territorial_of(db: &Db, est: &str, ipp: &str) -> AppResult<String> {
    let sql = "SELECT territorial_id FROM local_identity WHERE establishment_id = $1 AND ipp = $2";
    Ok(db.row(sql, &[est.into(), ipp.into()], |r| r.text(0)).await?.unwrap_or_default())
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
    let mut reader = db.reader();
    let Some(live) = crate::identity::store::resolve_territorial(&mut reader, patient).await? else {
        return Ok(false);
    };
    // CROSS JOIN fixes the join order on SQLite (its planner keeps the tables in the
    // order written): the patient's local identities first, then their open
    // encounters through `encounter_open`. Left to choose on a database without
    // statistics, it read every open encounter of the establishment per check.
    // PostgreSQL plans the CROSS JOIN with its WHERE as the inner join it is.
    let sql = "SELECT 1 FROM local_identity l CROSS JOIN encounter e \
         WHERE l.territorial_id = $1 AND l.establishment_id = $2 \
         AND e.establishment_id = l.establishment_id AND e.ipp = l.ipp AND e.status IN ('ADMITTED', 'ON_LEAVE') LIMIT 1";
    Ok(reader.row(sql, &[live.as_str().into(), establishment.into()], |_| Ok(())).await?.is_some())
}
