//! Publication of a batch of movements: one transaction per batch, each movement
//! checked against what is stored and what came before it in the batch.
//!
//! The checks are written once ([`publish_in`]) over [`PublishTx`], the reads and
//! writes a publication needs. PostgreSQL runs them through sqlx; SQLite through a
//! direct blocking connection in one task (see [`crate::db::SqliteDirect`]), where
//! sqlx's per-statement thread hand-offs cost more than the statements.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use sqlx::{AnyConnection, Row};

use super::{
    adt::{self, Effect, Mv},
    store::{in_chunk, mv_from_row, StoredMv, ENC_COLS, MV_COLS, N_ENC_COLS, N_MV_COLS, SAME_NATURE},
    types::{Class, MovementInput},
};
use crate::{
    db::{Db, Direct},
    identity::store::in_list,
    time::to_rfc3339,
    AppError, AppResult,
};

/// What happened to one published movement.
#[derive(Debug)]
pub enum Outcome {
    Accepted(i64),
    Duplicate(i64),
    Rejected(AppError),
}

/// A movement accepted in this batch, before its position is known.
struct NewRow<'a> {
    slot: usize,
    input: &'a MovementInput,
    position: i64,
}

/// Positions of this batch before allocation: far above any real position.
const PROVISIONAL: i64 = i64::MAX / 2;

/// An encounter: its patient (IPP) and its history, in position order.
type Cached = (String, Vec<Mv>);

/// Encounters the batch changes: (establishment, encounter) → (ipp, history).
type Touched = HashMap<(String, String), Cached>;

/// What two movements of the same nature share (IHE PAM): patient, trigger event,
/// medical unit, event time.
type NatureKey = (String, String, String, i64);

/// Most encounters one generation of the [`EncounterCache`] holds (it keeps two).
/// An encounter is ~2 KiB of history: at most ~16 MiB. The ingest benchmark keeps
/// ~1,500 encounters open at a time, a 1,000-bed hospital about as many.
const CACHED_ENCOUNTERS: usize = 4096;

/// The encounters of recent batches as committed: their patient (IPP) and history,
/// in position order, exactly as [`PublishTx::movements`] would read them back.
///
/// An encounter's next movement then finds its history here instead of reading it:
/// those rows were written batches ago, each on a page of its own, and reading them
/// was the largest of a batch's look-ups (single-stream ingest benchmark).
///
/// Valid only for the database state it has seen. It remembers the movement head
/// (position counter) after the last commit it was told of; a batch that finds
/// another head (another replica on PostgreSQL, a commit whose outcome was lost)
/// empties it before use. Publication is the only writer of movements and
/// encounters, and every publication that changes them advances the head.
/// Bounded: two generations; an encounter left unused for two is read again.
#[derive(Default)]
pub struct EncounterCache(std::sync::Mutex<Generations>);

#[derive(Default)]
struct Generations {
    head: i64,
    current: HashMap<(String, String), Cached>,
    previous: HashMap<(String, String), Cached>,
}

/// What a batch read or wrote of its encounters, for the cache once it has committed:
/// the head it started from and the head it left.
struct Kept {
    from: i64,
    to: i64,
    encounters: Vec<((String, String), Cached)>,
}

impl EncounterCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while it was held may have left it half-updated: start it over.
        self.0.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = Generations::default();
            self.0.clear_poison();
            g
        })
    }

    /// Takes out the cached encounters of `est` among `ids` (the batch gives back what
    /// it keeps after its commit). Empties the cache first when the database's head
    /// is not the one it last saw.
    fn take(&self, head: i64, est: &str, ids: &[String]) -> HashMap<String, Cached> {
        let mut g = self.lock();
        if g.head != head {
            *g = Generations { head, ..Default::default() };
        }
        let mut out = HashMap::new();
        for id in ids {
            let key = (est.to_string(), id.clone());
            if let Some(c) = g.current.remove(&key).or_else(|| g.previous.remove(&key)) {
                out.insert(id.clone(), c);
            }
        }
        out
    }

    /// After a commit: the batch's encounters as they now are. Dropped when another
    /// batch has used the cache since this one took from it (PostgreSQL publishers
    /// of one replica overlap between their commit and this call).
    fn keep(&self, kept: Kept) {
        let mut g = self.lock();
        if g.head != kept.from {
            return;
        }
        g.head = kept.to;
        for (key, c) in kept.encounters {
            if g.current.len() >= CACHED_ENCOUNTERS {
                g.previous = std::mem::take(&mut g.current);
            }
            g.current.insert(key, c);
        }
    }
}

/// The column a movement lookup selects on.
#[derive(Clone, Copy)]
enum Key {
    EventId,
    EncounterId,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::EventId => "event_id",
            Key::EncounterId => "encounter_id",
        }
    }
}

/// The reads and writes of a publication, inside its transaction.
trait PublishTx {
    /// The movement head (last position committed). On PostgreSQL it also takes the
    /// head's row lock, which serialises publishers across replicas from the start:
    /// their checks see every committed movement, and positions follow commit order.
    async fn head(&mut self) -> AppResult<i64>;
    /// Movements of `est` whose `key` is one of `values`, in position order per value.
    async fn movements(&mut self, est: &str, key: Key, values: &[String]) -> AppResult<Vec<StoredMv>>;
    /// The active movements of `est` (subject to the same-nature rule) that have one
    /// of these natures: nature → event id.
    async fn same_nature(&mut self, est: &str, keys: &[NatureKey]) -> AppResult<HashMap<NatureKey, String>>;
    /// For each IPP: absent (not published), or published with the IPP it was merged
    /// into, if any.
    async fn identity_status(&mut self, est: &str, ipps: &[String]) -> AppResult<HashMap<String, Option<String>>>;
    /// Advances the position counter by `n`; returns the new head.
    async fn advance_head(&mut self, n: i64) -> AppResult<i64>;
    async fn insert_movements(&mut self, rows: &[NewRow<'_>], author: &str, now: i64) -> AppResult<()>;
    async fn cancel(&mut self, est: &str, target: &str, by: &str) -> AppResult<()>;
    /// Stores the state of the batch's encounters. Those with a movement before
    /// position `first` (this batch's first) have a row: every stored movement's
    /// encounter has one.
    async fn upsert_encounters(&mut self, touched: &Touched, first: i64, now: i64) -> AppResult<()>;
}

/// Commits a batch of validated movements in one transaction and returns each one's
/// outcome (in the order given). An invalid movement is rejected alone; a database
/// failure fails the whole batch (nothing committed).
pub async fn publish_batch(
    db: &Db,
    cache: &std::sync::Arc<EncounterCache>,
    batch: std::sync::Arc<[MovementInput]>,
    author: &str,
    now: i64,
) -> AppResult<Vec<Outcome>> {
    if let Some(direct) = &db.direct {
        let (author, cache, kept_by) = (author.to_string(), cache.clone(), cache.clone());
        // The cache takes the batch's encounters before the next batch may start.
        let keep = move |(outcomes, kept)| {
            kept_by.keep(kept);
            outcomes
        };
        return direct
            .write_then(move |tx| crate::db::ready(publish_in(&mut Direct(tx), &cache, &batch, &author, now)), keep)
            .await;
    }
    let mut tx = db.begin_write().await?;
    let (outcomes, kept) = publish_in(&mut *tx, cache, &batch, author, now).await?;
    if outcomes.iter().any(|o| matches!(o, Outcome::Accepted(_))) {
        // Delivered at commit: wakes the subscribers of every replica.
        sqlx::query("SELECT pg_notify('ghthub_movements', '')").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    cache.keep(kept);
    Ok(outcomes)
}

/// The checks and writes of a batch, inside the caller's transaction.
async fn publish_in(
    tx: &mut impl PublishTx,
    cache: &EncounterCache,
    batch: &[MovementInput],
    author: &str,
    now: i64,
) -> AppResult<(Vec<Outcome>, Kept)> {
    let head = tx.head().await?;
    let mut kept = Kept { from: head, to: head, encounters: vec![] };
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    let mut new_rows: Vec<NewRow> = vec![];
    let mut cancels: Vec<(String, String, String)> = vec![];
    let mut touched: Touched = HashMap::new();
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
        let mut wanted = distinct(&|m| Some(m.event_id.clone()));
        wanted.extend(distinct(&|m| m.target_event_id.clone()));
        let known: HashMap<String, StoredMv> =
            tx.movements(est, Key::EventId, &wanted).await?.into_iter().map(|s| (s.mv.event_id.clone(), s)).collect();
        let ipps = distinct(&|m| Some(m.ipp.clone()));
        let identities = tx.identity_status(est, &ipps).await?;
        let encounter_ids = distinct(&|m| Some(m.encounter_id.clone()));
        let mut histories: HashMap<String, Vec<Mv>> = HashMap::new();
        // An encounter's patient is the IPP of its movements: publication is the only
        // writer of movements and encounters, it stores an encounter only with an
        // accepted movement, and it accepts only the owner's movements.
        let mut owners: HashMap<String, String> = HashMap::new();
        let cached = cache.take(head, est, &encounter_ids);
        let unknown: Vec<String> = encounter_ids.iter().filter(|e| !cached.contains_key(*e)).cloned().collect();
        if cfg!(debug_assertions) {
            same_as_stored(tx, est, &cached).await?;
        }
        for (enc, (ipp, history)) in cached {
            owners.insert(enc.clone(), ipp);
            histories.insert(enc, history);
        }
        for s in tx.movements(est, Key::EncounterId, &unknown).await? {
            owners.entry(s.encounter_id.clone()).or_insert_with(|| s.ipp.clone());
            histories.entry(s.encounter_id.clone()).or_default().push(s.mv);
        }
        // Active movements of the batch's natures (IHE PAM same-nature rule: patient,
        // trigger, unit and exact event time), each found by one probe of the rule's
        // index, which is ordered by time first.
        let natures: HashSet<NatureKey> = slots
            .iter()
            .map(|&i| {
                let m = &batch[i];
                (m.ipp.clone(), m.trigger.code().to_string(), m.medical_unit.clone(), m.event_time)
            })
            .collect();
        let mut same_nature = tx.same_nature(est, &natures.into_iter().collect::<Vec<_>>()).await?;

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
                    new_rows.push(NewRow { slot, input: m, position: 0 });
                }
            }
        }
        // The encounters read and left unchanged go back to the cache as they were.
        for (enc, history) in histories {
            if let Some(ipp) = owners.remove(&enc) {
                kept.encounters.push(((est.to_string(), enc), (ipp, history)));
            }
        }
    }

    if !new_rows.is_empty() {
        let n = new_rows.len() as i64;
        let first = tx.advance_head(n).await? - n + 1;
        for (k, r) in new_rows.iter_mut().enumerate() {
            r.position = first + k as i64;
            outcomes[r.slot] = Some(Outcome::Accepted(r.position));
        }
        for (_, history) in touched.values_mut() {
            for m in history.iter_mut().filter(|m| m.position >= PROVISIONAL) {
                m.position = first + (m.position - PROVISIONAL);
            }
        }
        tx.insert_movements(&new_rows, author, now).await?;
        for (est, target, by) in &cancels {
            tx.cancel(est, target, by).await?;
        }
        tx.upsert_encounters(&touched, first, now).await?;
        kept.to = first + n - 1;
        kept.encounters.extend(touched);
    }
    for (slot, k) in pending_dups {
        outcomes[slot] = Some(Outcome::Duplicate(new_rows[k].position));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| AppError::internal("movement without an outcome")))
        .collect::<AppResult<_>>()?;
    Ok((outcomes, kept))
}

/// Debug builds (the test suites) check every cached history against the database.
async fn same_as_stored(tx: &mut impl PublishTx, est: &str, cached: &HashMap<String, Cached>) -> AppResult<()> {
    let ids: Vec<String> = cached.keys().cloned().collect();
    let mut stored: HashMap<String, Cached> = HashMap::new();
    for s in tx.movements(est, Key::EncounterId, &ids).await? {
        stored.entry(s.encounter_id.clone()).or_insert_with(|| (s.ipp.clone(), vec![])).1.push(s.mv);
    }
    for (id, c) in cached {
        if stored.get(id) != Some(c) {
            return Err(AppError::internal(format!(
                "encounter cache: {est}:{id} differs from the database: {c:?} / {:?}",
                stored.get(id)
            )));
        }
    }
    Ok(())
}

fn reused(m: &MovementInput) -> AppError {
    AppError::AlreadyExists(format!(
        "movement event id {} of establishment {} was already published with different content; \
         a correction is a new movement (Z99, or a cancellation and a new event)",
        m.event_id, m.establishment_id
    ))
}

fn nature_key(ipp: &str, m: &Mv) -> NatureKey {
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
    new_rows: &[NewRow<'_>],
    touched: &mut Touched,
    histories: &mut HashMap<String, Vec<Mv>>,
    same_nature: &HashMap<NatureKey, String>,
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
    let history = match touched.get(&enc) {
        Some((_, h)) => h.as_slice(),
        None => histories.get(&m.encounter_id).map_or(&[][..], Vec::as_slice),
    };
    let effect = adt::check(history, &mv)?;
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
    // Only an accepted movement claims its encounter: a rejected first movement of an
    // unknown encounter must not leave an encounter row (with its patient) behind.
    touched.entry(enc).or_insert_with(|| (m.ipp.clone(), histories.remove(&m.encounter_id).unwrap_or_default()));
    Ok((mv, effect))
}

/// The `SET` list of an encounter's update, each column given `value(its place in
/// ENC_COLS, its name)`. It leaves the key and the patient (`ipp`) alone: an
/// encounter's patient never changes (a movement of another patient is refused), and a
/// column in the SET list makes SQLite rewrite its index entries (`encounter_by_patient`:
/// one page written at a random place per encounter and batch).
fn encounter_updates(value: impl Fn(usize, &str) -> String) -> String {
    ENC_COLS
        .split(", ")
        .enumerate()
        .filter(|(_, c)| !matches!(*c, "establishment_id" | "encounter_id" | "ipp"))
        .map(|(i, c)| format!("{c} = {}", value(i, c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO encounter … VALUES <values> ON CONFLICT … DO UPDATE` (both back-ends).
fn upsert_encounter_sql(values: &str) -> String {
    let updates = encounter_updates(|_, c| format!("excluded.{c}"));
    format!(
        "INSERT INTO encounter ({ENC_COLS}) VALUES {values} ON CONFLICT (establishment_id, encounter_id) DO UPDATE SET {updates}"
    )
}

/// `UPDATE encounter SET … WHERE <key>` (SQLite), with the parameters of
/// [`upsert_encounter_sql`] in the same order (`?N`: the patient, `?3`, is bound and
/// unused). For the encounters known to have a row: the upsert would first try an
/// insert (a new rowid, every index's key built, the conflict found) before updating.
static UPDATE_ENCOUNTER_SQL: LazyLock<String> = LazyLock::new(|| {
    let updates = encounter_updates(|i, _| format!("?{}", i + 1));
    format!("UPDATE encounter SET {updates} WHERE establishment_id = ?1 AND encounter_id = ?2")
});

/// The look-up of one establishment's identities by IPP (`… AND ipp IN (…)`, on
/// PostgreSQL): the IPP and the IPP it was merged into, if any.
const IDENTITY_STATUS_SQL: &str = "SELECT ipp, merged_into_ipp FROM local_identity WHERE establishment_id = $1 AND ipp";

/// The active movements of one establishment subject to the same-nature rule
/// (`… AND <natures>`): nature and event id. The condition repeats the index's, so
/// the planner can use it.
static SAME_NATURE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT ipp, trigger_code, medical_unit, event_time, event_id FROM movement \
         WHERE establishment_id = $1 AND {SAME_NATURE}"
    )
});

const CANCEL_SQL: &str =
    "UPDATE movement SET cancelled_by = $1 WHERE establishment_id = $2 AND event_id = $3 AND cancelled_by IS NULL";
const ADVANCE_SQL: &str = "UPDATE movement_head SET position = position + $1 WHERE id = 1 RETURNING position";

// ------------------------------------------------------------------ sqlx (PostgreSQL)

/// `select` (the look-up above) for every value, by IN lists: key → value.
async fn pairs(
    conn: &mut AnyConnection,
    select: &str,
    est: &str,
    values: &[String],
) -> AppResult<HashMap<String, Option<String>>> {
    let mut out = HashMap::new();
    for chunk in values.chunks(in_chunk(conn)) {
        let sql = format!("{select} IN ({})", in_list(2, chunk.len()));
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

impl PublishTx for AnyConnection {
    async fn head(&mut self) -> AppResult<i64> {
        let row =
            sqlx::query("SELECT position FROM movement_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *self).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn movements(&mut self, est: &str, key: Key, values: &[String]) -> AppResult<Vec<StoredMv>> {
        let mut out = vec![];
        for chunk in values.chunks(in_chunk(self)) {
            let sql = format!(
                "SELECT {MV_COLS} FROM movement WHERE establishment_id = $1 AND {} IN ({}) ORDER BY position",
                key.column(),
                in_list(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(est);
            for v in chunk {
                q = q.bind(v);
            }
            for r in q.fetch_all(&mut *self).await? {
                out.push(mv_from_row(&r, 0)?);
            }
        }
        Ok(out)
    }

    async fn same_nature(&mut self, est: &str, keys: &[NatureKey]) -> AppResult<HashMap<NatureKey, String>> {
        // By patient over the batch's time span (one statement per IN list, where
        // SQLite probes each nature): a range of the index, ordered by time. Written as
        // an OR of the natures, the planner took their common terms as the index
        // condition and read every movement of the establishment (ingest fell to
        // ~1,100 events/s and kept falling as the table grew); as a UNION ALL of
        // probes, the round trips and plans cost more than the old look-up by patient.
        let mut out = HashMap::new();
        let ipps: Vec<&String> = keys.iter().map(|k| &k.0).collect::<HashSet<_>>().into_iter().collect();
        let from = keys.iter().map(|k| k.3).min().unwrap_or(0);
        let to = keys.iter().map(|k| k.3).max().unwrap_or(0);
        for chunk in ipps.chunks(in_chunk(self)) {
            let sql = format!(
                "{} AND event_time >= $2 AND event_time <= $3 AND ipp IN ({})",
                *SAME_NATURE_SQL,
                in_list(4, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(est).bind(from).bind(to);
            for ipp in chunk {
                q = q.bind(*ipp);
            }
            for r in q.fetch_all(&mut *self).await? {
                let nature = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                out.insert(nature, r.try_get::<String, _>(4)?);
            }
        }
        Ok(out)
    }

    async fn identity_status(&mut self, est: &str, ipps: &[String]) -> AppResult<HashMap<String, Option<String>>> {
        pairs(self, IDENTITY_STATUS_SQL, est, ipps).await
    }

    async fn advance_head(&mut self, n: i64) -> AppResult<i64> {
        let row = sqlx::query(ADVANCE_SQL).bind(n).fetch_one(&mut *self).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn insert_movements(&mut self, rows: &[NewRow<'_>], author: &str, now: i64) -> AppResult<()> {
        for chunk in rows.chunks(crate::db::rows_per_statement(self, N_MV_COLS)) {
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
            q.execute(&mut *self).await?;
        }
        Ok(())
    }

    async fn cancel(&mut self, est: &str, target: &str, by: &str) -> AppResult<()> {
        sqlx::query(CANCEL_SQL).bind(by).bind(est).bind(target).execute(&mut *self).await?;
        Ok(())
    }

    async fn upsert_encounters(&mut self, touched: &Touched, _first: i64, now: i64) -> AppResult<()> {
        // Upserts for all, many rows per statement: on PostgreSQL the round trips cost
        // more than the conflict checks.
        let all: Vec<_> = touched.iter().collect();
        for chunk in all.chunks(crate::db::rows_per_statement(self, N_ENC_COLS)) {
            let values = (0..chunk.len())
                .map(|r| format!("({})", in_list(r * N_ENC_COLS + 1, N_ENC_COLS)))
                .collect::<Vec<_>>()
                .join(",");
            let sql = upsert_encounter_sql(&values);
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
            q.execute(&mut *self).await?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ direct SQLite

/// One nature's probe on SQLite.
static SAME_NATURE_ONE: LazyLock<String> = LazyLock::new(|| {
    format!("{} AND event_time = $2 AND ipp = $3 AND trigger_code = $4 AND medical_unit = $5", *SAME_NATURE_SQL)
});

// On the direct SQLite transaction ([`Direct`]): one row per statement, each statement
// prepared once per connection; the whole publication runs in one blocking task.

impl PublishTx for Direct<'_> {
    async fn head(&mut self) -> AppResult<i64> {
        Ok(self.0.prepare_cached("SELECT position FROM movement_head WHERE id = 1")?.query_row([], |r| r.get(0))?)
    }

    async fn movements(&mut self, est: &str, key: Key, values: &[String]) -> AppResult<Vec<StoredMv>> {
        // No ORDER BY: the indexes give the rows of one value in another order, and
        // SQLite would build a temporary B-tree for each look-up (hundreds per batch);
        // the few rows of one value are sorted here instead.
        let sql = format!("SELECT {MV_COLS} FROM movement WHERE establishment_id = $1 AND {} = $2", key.column());
        let mut stmt = self.0.prepare_cached(&sql)?;
        let mut out = vec![];
        for v in values {
            let mut rows = stmt.query(rusqlite::params![est, v])?;
            let first = out.len();
            while let Some(r) = rows.next()? {
                out.push(mv_from_row(r, 0)?);
            }
            out[first..].sort_unstable_by_key(|s: &StoredMv| s.mv.position);
        }
        Ok(out)
    }

    async fn same_nature(&mut self, est: &str, keys: &[NatureKey]) -> AppResult<HashMap<NatureKey, String>> {
        let mut stmt = self.0.prepare_cached(&SAME_NATURE_ONE)?;
        let mut out = HashMap::new();
        for key in keys {
            let (ipp, trigger, unit, at) = key;
            let mut rows = stmt.query(rusqlite::params![est, at, ipp, trigger, unit])?;
            if let Some(r) = rows.next()? {
                out.insert(key.clone(), r.get::<_, String>(4)?);
            }
        }
        Ok(out)
    }

    async fn identity_status(&mut self, est: &str, ipps: &[String]) -> AppResult<HashMap<String, Option<String>>> {
        // Two index probes per patient, neither reading the table: its rows are
        // scattered over millions of identities, and a row read was a random page
        // read per patient and batch (the ingest benchmark at 1 M identities).
        // INDEXED BY: the planner, without statistics, would take the table's key.
        let mut stmt = self.0.prepare_cached(
            "SELECT (SELECT 1 FROM local_identity WHERE establishment_id = $1 AND ipp = $2), \
             (SELECT merged_into_ipp FROM local_identity INDEXED BY local_identity_merged \
              WHERE establishment_id = $1 AND ipp = $2 AND merged_into_ipp IS NOT NULL)",
        )?;
        let mut out = HashMap::new();
        for v in ipps {
            let (known, merged_into) =
                stmt.query_row(rusqlite::params![est, v], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get(1)?)))?;
            if known.is_some() {
                out.insert(v.clone(), merged_into);
            }
        }
        Ok(out)
    }

    async fn advance_head(&mut self, n: i64) -> AppResult<i64> {
        Ok(self.0.prepare_cached(ADVANCE_SQL)?.query_row([n], |r| r.get(0))?)
    }

    async fn insert_movements(&mut self, rows: &[NewRow<'_>], author: &str, now: i64) -> AppResult<()> {
        let mut stmt =
            self.0.prepare_cached(&format!("INSERT INTO movement ({MV_COLS}) VALUES ({})", in_list(1, N_MV_COLS)))?;
        for r in rows {
            let m = &r.input;
            stmt.execute(rusqlite::params![
                r.position,
                m.establishment_id,
                m.event_id,
                m.ipp,
                m.encounter_id,
                m.trigger.code(),
                m.event_time,
                m.medical_unit,
                m.care_unit,
                m.class.map(Class::code).unwrap_or(""),
                m.target_event_id,
                m.origin_establishment_id,
                m.destination_establishment_id,
                now,
                author,
                Option::<String>::None,
                m.content_hash,
            ])?;
        }
        Ok(())
    }

    async fn cancel(&mut self, est: &str, target: &str, by: &str) -> AppResult<()> {
        self.0.prepare_cached(CANCEL_SQL)?.execute(rusqlite::params![by, est, target])?;
        Ok(())
    }

    async fn upsert_encounters(&mut self, touched: &Touched, first: i64, now: i64) -> AppResult<()> {
        let mut update = self.0.prepare_cached(&UPDATE_ENCOUNTER_SQL)?;
        let mut upsert = self.0.prepare_cached(&upsert_encounter_sql(&format!("({})", in_list(1, N_ENC_COLS))))?;
        for ((est, enc), (ipp, history)) in touched {
            let s = adt::fold(history);
            let params = rusqlite::params![
                est,
                enc,
                ipp,
                s.status.as_str(),
                s.class.map(Class::code).unwrap_or(""),
                s.medical_unit,
                s.care_unit,
                s.admitted_at,
                s.discharged_at,
                s.origin,
                s.destination,
                s.anomalies.join("\n"),
                s.first_event_at,
                now,
            ];
            // The row exists (see the trait): a plain update, unless it changed nothing,
            // which the upsert then repairs rather than losing the state.
            let stored = history.first().is_some_and(|m| m.position < first) && update.execute(params)? == 1;
            if !stored {
                upsert.execute(params)?;
            }
        }
        Ok(())
    }
}
