//! Idempotent retries: a write carrying a request id stores its answer in the same
//! transaction, so a client that retries after a lost reply gets the first answer
//! and nothing is written twice.

use prost::Message;
use sqlx::Row;

use crate::{access::CallCtx, time::now_micros, AppError, AppResult};

/// The earlier answer to this (caller, method, request id), if any.
pub async fn replay<M: Message + Default>(
    conn: &mut sqlx::AnyConnection,
    ctx: &CallCtx,
    request_id: &str,
) -> AppResult<Option<M>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    match lookup(conn, &ctx.principal.subject, &ctx.rpc, request_id).await? {
        Some(bytes) => {
            Ok(Some(M::decode(bytes.as_slice()).map_err(|e| AppError::internal(format!("stored answer: {e}")))?))
        }
        None => Ok(None),
    }
}

/// Remembers the answer to this (caller, method, request id).
pub async fn remember<M: Message>(
    conn: &mut sqlx::AnyConnection,
    ctx: &CallCtx,
    request_id: &str,
    answer: &M,
) -> AppResult<()> {
    if request_id.is_empty() {
        return Ok(());
    }
    store(conn, &ctx.principal.subject, &ctx.rpc, request_id, &answer.encode_to_vec(), now_micros()).await
}

/// Idempotency: the stored answer of an earlier call with the same request id.
async fn lookup(
    conn: &mut sqlx::AnyConnection,
    subject: &str,
    method: &str,
    request_id: &str,
) -> AppResult<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT response FROM idempotency WHERE subject = $1 AND method = $2 AND request_id = $3")
        .bind(subject)
        .bind(method)
        .bind(request_id)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Records the answer in the same transaction as the write it answers.
async fn store(
    conn: &mut sqlx::AnyConnection,
    subject: &str,
    method: &str,
    request_id: &str,
    response: &[u8],
    at: i64,
) -> AppResult<()> {
    sqlx::query("INSERT INTO idempotency (subject, method, request_id, response, created_at) VALUES ($1,$2,$3,$4,$5)")
        .bind(subject)
        .bind(method)
        .bind(request_id)
        .bind(response.to_vec())
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
