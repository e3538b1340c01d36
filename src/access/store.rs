//! Facts the policy depends on, and the acts that create them: DIM staff
//! designations and break-glass grants.

use crate::{
    db::{Cols, Db},
    time::now_micros,
    AppError, AppResult,
};

/// The GHT of an establishment and whether it is a party (support or partie) of it.
pub async fn establishment_facts(db: &Db, establishment_id: &str) -> AppResult<(String, bool)> {
    match crate::registry::store::establishment_ght_role(db, establishment_id).await? {
        Some((ght, role)) => Ok((ght, role == "SUPPORT" || role == "PARTIE")),
        None => Err(AppError::not_found(format!("establishment {establishment_id}"))),
    }
}

/// A live designation of `subject` in `ght`, covering `establishment` when one is named
/// (a GHT-wide call needs a designation that is not restricted to one establishment).
pub async fn has_live_designation(db: &Db, subject: &str, ght: &str, establishment: Option<&str>) -> AppResult<bool> {
    let now = now_micros();
    let sql = "SELECT 1 FROM dim_designation WHERE staff_subject = $1 AND ght_id = $2 AND revoked_at IS NULL \
         AND valid_from <= $3 AND (valid_until IS NULL OR valid_until > $3) \
         AND (establishment_id IS NULL OR establishment_id = $4) LIMIT 1";
    let args = [subject.into(), ght.into(), now.into(), establishment.unwrap_or("").into()];
    Ok(db.row(sql, &args, |_| Ok(())).await?.is_some())
}

/// Care relationship: the caller's establishment has an open encounter (séjour) for
/// the patient. `patient` is a territorial identity id; the relationship holds when
/// one of its linked local identities has an encounter at `own_establishment` that is
/// not discharged or cancelled.
pub async fn has_care_relationship(db: &Db, own_establishment: &str, patient: &str) -> AppResult<bool> {
    crate::movement::store::has_open_encounter(db, own_establishment, patient).await
}

/// The id of a live break-glass grant of `subject` over `ght` (and `patient`, if the grant is restricted).
pub async fn live_break_glass(db: &Db, subject: &str, ght: &str, patient: Option<&str>) -> AppResult<Option<String>> {
    let sql = "SELECT id FROM break_glass WHERE subject = $1 AND ght_id = $2 AND expires_at > $3 \
         AND (patient_ref IS NULL OR patient_ref = $4) ORDER BY expires_at DESC LIMIT 1";
    let args = [subject.into(), ght.into(), now_micros().into(), patient.unwrap_or("").into()];
    db.row(sql, &args, |r| r.text(0)).await
}

#[derive(Debug, Clone)]
pub struct DesignationRow {
    pub id: String,
    pub ght_id: String,
    pub staff_subject: String,
    pub establishment_id: Option<String>,
    pub designated_by: String,
    pub mission: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

const DESIGNATION_COLUMNS: &str =
    "id, ght_id, staff_subject, establishment_id, designated_by, mission, valid_from, valid_until, revoked_at, revoked_by";

fn designation_from_row(r: &dyn Cols) -> AppResult<DesignationRow> {
    Ok(DesignationRow {
        id: r.text(0)?,
        ght_id: r.text(1)?,
        staff_subject: r.text(2)?,
        establishment_id: r.opt_text(3)?,
        designated_by: r.text(4)?,
        mission: r.text(5)?,
        valid_from: r.int(6)?,
        valid_until: r.opt_int(7)?,
        revoked_at: r.opt_int(8)?,
        revoked_by: r.opt_text(9)?,
    })
}

pub async fn insert_designation(db: &Db, d: &DesignationRow) -> AppResult<()> {
    let _turn = db.sqlx_write_turn().await?;
    sqlx::query(&format!(
        "INSERT INTO dim_designation ({DESIGNATION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
    ))
    .bind(&d.id)
    .bind(&d.ght_id)
    .bind(&d.staff_subject)
    .bind(&d.establishment_id)
    .bind(&d.designated_by)
    .bind(&d.mission)
    .bind(d.valid_from)
    .bind(d.valid_until)
    .bind(d.revoked_at)
    .bind(&d.revoked_by)
    .execute(&db.write)
    .await?;
    Ok(())
}

pub async fn get_designation(db: &Db, id: &str) -> AppResult<DesignationRow> {
    db.row(
        &format!("SELECT {DESIGNATION_COLUMNS} FROM dim_designation WHERE id = $1"),
        &[id.into()],
        designation_from_row,
    )
    .await?
    .ok_or_else(|| AppError::not_found(format!("designation {id}")))
}

/// Revokes once: a second revocation is a FAILED_PRECONDITION, the first one stands.
pub async fn revoke_designation(db: &Db, id: &str, by: &str) -> AppResult<DesignationRow> {
    let n = {
        let _turn = db.sqlx_write_turn().await?;
        sqlx::query("UPDATE dim_designation SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(by)
            .bind(id)
            .execute(&db.write)
            .await?
            .rows_affected()
    };
    if n == 0 {
        let d = get_designation(db, id).await?;
        if d.revoked_at.is_some() {
            return Err(AppError::precondition(format!("designation {id} is already revoked")));
        }
    }
    get_designation(db, id).await
}

pub async fn list_designations(
    db: &Db,
    ght: &str,
    staff: Option<&str>,
    include_inactive: bool,
) -> AppResult<Vec<DesignationRow>> {
    let now = now_micros();
    let mut sql = format!(
        "SELECT {DESIGNATION_COLUMNS} FROM dim_designation WHERE ght_id = $1 AND ($2 = '' OR staff_subject = $2)"
    );
    if !include_inactive {
        sql.push_str(" AND revoked_at IS NULL AND (valid_until IS NULL OR valid_until > $3)");
    } else {
        sql.push_str(" AND $3 = $3");
    }
    sql.push_str(" ORDER BY valid_from, id");
    db.rows(&sql, &[ght.into(), staff.unwrap_or("").into(), now.into()], designation_from_row).await
}

#[derive(Debug, Clone)]
pub struct BreakGlassRow {
    pub id: String,
    pub subject: String,
    pub ght_id: String,
    pub patient_ref: Option<String>,
    pub reason: String,
    pub granted_at: i64,
    pub expires_at: i64,
}

pub async fn insert_break_glass(db: &Db, b: &BreakGlassRow) -> AppResult<()> {
    let _turn = db.sqlx_write_turn().await?;
    sqlx::query(
        "INSERT INTO break_glass (id, subject, ght_id, patient_ref, reason, granted_at, expires_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&b.id)
    .bind(&b.subject)
    .bind(&b.ght_id)
    .bind(&b.patient_ref)
    .bind(&b.reason)
    .bind(b.granted_at)
    .bind(b.expires_at)
    .execute(&db.write)
    .await?;
    Ok(())
}
