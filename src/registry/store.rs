//! SQL of the registry.

use sqlx::Row;

use super::{category_str, establishment_role_str, parse_category, parse_establishment_role};
use crate::{
    db::{Cols, Db},
    proto,
    time::to_rfc3339,
    AppError, AppResult,
};

fn ght_from_row(r: &dyn Cols) -> AppResult<proto::Ght> {
    Ok(proto::Ght { id: r.text(0)?, name: r.text(1)?, ars_region: r.text(2)?, created_at: to_rfc3339(r.int(3)?) })
}

fn establishment_from_row(r: &dyn Cols) -> AppResult<proto::Establishment> {
    Ok(proto::Establishment {
        id: r.text(0)?,
        ght_id: r.text(1)?,
        name: r.text(2)?,
        role: parse_establishment_role(&r.text(3)?) as i32,
        category: parse_category(&r.text(4)?) as i32,
        created_at: to_rfc3339(r.int(5)?),
    })
}

pub async fn insert_ght(tx: &mut sqlx::AnyConnection, g: &proto::Ght, at: i64) -> AppResult<()> {
    sqlx::query("INSERT INTO ght (id, name, ars_region, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.ars_region)
        .bind(at)
        .execute(tx)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::AlreadyExists(_) => AppError::AlreadyExists(format!("GHT {}", g.id)),
            other => other,
        })?;
    Ok(())
}

pub async fn get_ght(db: &Db, id: &str) -> AppResult<Option<proto::Ght>> {
    db.row("SELECT id, name, ars_region, created_at FROM ght WHERE id = $1", &[id.into()], ght_from_row).await
}

pub async fn list_ghts(db: &Db, region: Option<&str>) -> AppResult<Vec<proto::Ght>> {
    let sql = "SELECT id, name, ars_region, created_at FROM ght WHERE ($1 = '' OR ars_region = $1) ORDER BY id";
    db.rows(sql, &[region.unwrap_or("").into()], ght_from_row).await
}

/// The ARS region of a GHT (None when the GHT is unknown).
pub async fn ght_region(db: &Db, ght_id: &str) -> AppResult<Option<String>> {
    if let Some(r) = db.registry_cache.ght_region.read().ok().and_then(|c| c.get(ght_id).cloned()) {
        return Ok(Some(r));
    }
    let region = db.row("SELECT ars_region FROM ght WHERE id = $1", &[ght_id.into()], |r| r.text(0)).await?;
    if let (Some(r), Ok(mut cache)) = (&region, db.registry_cache.ght_region.write()) {
        cache.insert(ght_id.to_string(), r.clone());
    }
    Ok(region)
}

/// An establishment's (GHT, role in the GHT), cached: neither ever changes.
pub async fn establishment_ght_role(db: &Db, establishment_id: &str) -> AppResult<Option<(String, String)>> {
    if let Some(v) = db.registry_cache.establishment.read().ok().and_then(|c| c.get(establishment_id).cloned()) {
        return Ok(Some(v));
    }
    let sql = "SELECT ght_id, role FROM establishment WHERE id = $1";
    let v = db.row(sql, &[establishment_id.into()], |r| Ok((r.text(0)?, r.text(1)?))).await?;
    if let (Some(v), Ok(mut cache)) = (&v, db.registry_cache.establishment.write()) {
        cache.insert(establishment_id.to_string(), v.clone());
    }
    Ok(v)
}

/// The GHT of an establishment (None when the establishment is unknown).
pub async fn establishment_ght(db: &Db, establishment_id: &str) -> AppResult<Option<String>> {
    Ok(establishment_ght_role(db, establishment_id).await?.map(|(ght, _)| ght))
}

pub async fn insert_establishment(tx: &mut sqlx::AnyConnection, e: &proto::Establishment, at: i64) -> AppResult<()> {
    let role = proto::EstablishmentRole::try_from(e.role).unwrap_or_default();
    let category = proto::EstablishmentCategory::try_from(e.category).unwrap_or_default();
    if role == proto::EstablishmentRole::Support {
        let existing = sqlx::query("SELECT id FROM establishment WHERE ght_id = $1 AND role = 'SUPPORT'")
            .bind(&e.ght_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = existing {
            let id: String = r.try_get(0)?;
            return Err(AppError::precondition(format!("GHT {} already has a support establishment ({id})", e.ght_id)));
        }
    }
    sqlx::query("INSERT INTO establishment (id, ght_id, name, role, category, created_at) VALUES ($1,$2,$3,$4,$5,$6)")
        .bind(&e.id)
        .bind(&e.ght_id)
        .bind(&e.name)
        .bind(establishment_role_str(role))
        .bind(category_str(category))
        .bind(at)
        .execute(tx)
        .await
        .map_err(|err| match AppError::from(err) {
            AppError::AlreadyExists(_) => AppError::AlreadyExists(format!("establishment {}", e.id)),
            other => other,
        })?;
    Ok(())
}

pub async fn get_establishment(db: &Db, id: &str) -> AppResult<Option<proto::Establishment>> {
    let sql = "SELECT id, ght_id, name, role, category, created_at FROM establishment WHERE id = $1";
    db.row(sql, &[id.into()], establishment_from_row).await
}

pub async fn list_establishments(db: &Db, ght_id: &str) -> AppResult<Vec<proto::Establishment>> {
    let sql = "SELECT id, ght_id, name, role, category, created_at FROM establishment WHERE ght_id = $1 ORDER BY id";
    db.rows(sql, &[ght_id.into()], establishment_from_row).await
}

fn account_from_row(r: &dyn Cols) -> AppResult<proto::PartyAccount> {
    Ok(proto::PartyAccount {
        subject: r.text(0)?,
        role: crate::access::Role::parse(&r.text(1)?).map(|r| r.to_proto() as i32).unwrap_or(0),
        ght_id: r.opt_text(2)?.unwrap_or_default(),
        establishment_id: r.opt_text(3)?.unwrap_or_default(),
        ars_region: r.opt_text(4)?.unwrap_or_default(),
        display_name: r.text(5)?,
        created_at: to_rfc3339(r.int(6)?),
    })
}

pub async fn insert_account(
    tx: &mut sqlx::AnyConnection,
    a: &proto::PartyAccount,
    role: &str,
    at: i64,
) -> AppResult<()> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    sqlx::query(
        "INSERT INTO party_account (subject, role, ght_id, establishment_id, ars_region, display_name, created_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&a.subject)
    .bind(role)
    .bind(opt(&a.ght_id))
    .bind(opt(&a.establishment_id))
    .bind(opt(&a.ars_region))
    .bind(&a.display_name)
    .bind(at)
    .execute(tx)
    .await
    .map_err(|err| match AppError::from(err) {
        AppError::AlreadyExists(_) => AppError::AlreadyExists(format!("party account {}", a.subject)),
        other => other,
    })?;
    Ok(())
}

pub async fn list_accounts(db: &Db, ght_id: &str) -> AppResult<Vec<proto::PartyAccount>> {
    let sql = "SELECT subject, role, ght_id, establishment_id, ars_region, display_name, created_at \
         FROM party_account WHERE ght_id = $1 ORDER BY subject";
    db.rows(sql, &[ght_id.into()], account_from_row).await
}
