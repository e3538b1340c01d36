//! The tamper-evident audit trail.
//!
//! Every access to nominative data, every write and every refusal appends a record.
//! Records are hash-chained: each holds the SHA-256 of the previous one, so an edit
//! or a deletion inside the chain breaks verification. The tables are append-only at
//! the database level (triggers), and this module has no UPDATE or DELETE path.
//!
//! Appends go through one writer task that commits them in batches (group commit):
//! callers wait for their record to be durable, and a burst of calls costs one
//! transaction. On PostgreSQL the batch takes an advisory lock, so several hub
//! replicas extend one chain without forking it.

pub mod service;
pub mod store;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::{db::Db, AppError, AppResult};

/// One audit record before it is placed in the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub subject: String,
    pub role: String,
    pub ght_id: String,
    pub establishment_id: String,
    pub rpc: String,
    pub data_class: String,
    pub action: String,
    pub target_ids: Vec<String>,
    pub target_ght_id: String,
    /// ALLOW, DENY or BREAK_GLASS.
    pub decision: String,
    pub reason: String,
    pub request_id: String,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record: every field, in a fixed order, separated by a unit separator.
pub fn record_hash(seq: i64, at: i64, e: &AuditEntry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        seq.to_string().as_str(),
        at.to_string().as_str(),
        &e.subject,
        &e.role,
        &e.ght_id,
        &e.establishment_id,
        &e.rpc,
        &e.data_class,
        &e.action,
        &e.target_ids.join("\u{1e}"),
        &e.target_ght_id,
        &e.decision,
        &e.reason,
        &e.request_id,
        prev_hash,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

type Pending = (AuditEntry, oneshot::Sender<AppResult<i64>>);

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
    pub db: Db,
}

/// Most records one transaction carries.
const MAX_BATCH: usize = 512;

impl AuditLog {
    pub fn start(db: Db) -> AuditLog {
        // Bounded: when the database cannot keep up, callers wait (backpressure)
        // instead of the hub buffering records in memory without limit.
        let (tx, mut rx) = mpsc::channel::<Pending>(8192);
        let writer_db = db.clone();
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let entries: Vec<&AuditEntry> = batch.iter().map(|(e, _)| e).collect();
                let result = store::append_batch(&writer_db, &entries).await;
                match result {
                    Ok(first_seq) => {
                        for (i, (_, reply)) in batch.drain(..).enumerate() {
                            let _ = reply.send(Ok(first_seq + i as i64));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "audit append failed");
                        let msg = e.to_string();
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(AppError::Unavailable(format!("audit trail: {msg}"))));
                        }
                    }
                }
            }
        });
        AuditLog { tx, db }
    }

    /// Appends one record and waits until it is committed. Fails closed: when the
    /// audit cannot be written, the caller must not serve the data.
    pub async fn append(&self, entry: AuditEntry) -> AppResult<i64> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((entry, reply)).await.map_err(|_| AppError::Unavailable("audit writer stopped".into()))?;
        rx.await.map_err(|_| AppError::Unavailable("audit writer stopped".into()))?
    }
}
