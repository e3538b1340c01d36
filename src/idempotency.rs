//! Idempotent retries: a write carrying a request id stores its answer in the same
//! transaction, so a client that retries after a lost reply gets the first answer
//! and nothing is written twice.

use crate::{
    access::CallCtx,
    db::{Arg, Tx},
    time::now_micros,
    AppError, AppResult,
};
use prost::Message;

/// The earlier answer to this (caller, method, request id), if any.
pub async fn replay<M: Message + Default>(tx: &mut impl Tx, ctx: &CallCtx, request_id: &str) -> AppResult<Option<M>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let stored = tx
        .row(
            "SELECT response FROM idempotency WHERE subject = $1 AND method = $2 AND request_id = $3",
            &[ctx.principal.subject.as_str().into(), ctx.rpc.as_str().into(), request_id.into()],
            |r| r.blob(0),
        )
        .await?;
    match stored {
        Some(bytes) => {
            Ok(Some(M::decode(bytes.as_slice()).map_err(|e| AppError::internal(format!("stored answer: {e}")))?))
        }
        None => Ok(None),
    }
}

/// Remembers the answer to this (caller, method, request id), in the same transaction
/// as the write it answers.
pub async fn remember<M: Message>(tx: &mut impl Tx, ctx: &CallCtx, request_id: &str, answer: &M) -> AppResult<()> {
    if request_id.is_empty() {
        return Ok(());
    }
    let response = answer.encode_to_vec();
    tx.exec(
        "INSERT INTO idempotency (subject, method, request_id, response, created_at) VALUES ($1,$2,$3,$4,$5)",
        &[
            ctx.principal.subject.as_str().into(),
            ctx.rpc.as_str().into(),
            request_id.into(),
            Arg::Blob(&response),
            now_micros().into(),
        ],
    )
    .await?;
    Ok(())
}
