//! The one error type of the hub, mapped to `tonic::Status` in exactly one place.

use tonic::{Code, Status};

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: names the field (with its path for nested items) and the reason.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Names the policy rule that refused, never the data.
    #[error("denied by access rule '{rule}': {detail}")]
    PermissionDenied { rule: String, detail: String },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Aborted(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::InvalidArgument { field: field.into(), reason: reason.into() }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::NotFound(what.into())
    }
    pub fn denied(rule: impl Into<String>, detail: impl Into<String>) -> Self {
        AppError::PermissionDenied { rule: rule.into(), detail: detail.into() }
    }
    pub fn precondition(msg: impl Into<String>) -> Self {
        AppError::FailedPrecondition(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        AppError::Internal(msg.to_string())
    }

    /// Prefix a field path, so nested validation errors read `items[3].name`.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            AppError::InvalidArgument { field, reason } => {
                AppError::InvalidArgument { field: format!("{prefix}.{field}"), reason }
            }
            other => other,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            AppError::InvalidArgument { .. } => Code::InvalidArgument,
            AppError::NotFound(_) => Code::NotFound,
            AppError::AlreadyExists(_) => Code::AlreadyExists,
            AppError::FailedPrecondition(_) => Code::FailedPrecondition,
            AppError::PermissionDenied { .. } => Code::PermissionDenied,
            AppError::Unauthenticated(_) => Code::Unauthenticated,
            AppError::ResourceExhausted(_) => Code::ResourceExhausted,
            AppError::Aborted(_) => Code::Aborted,
            AppError::Unavailable(_) => Code::Unavailable,
            AppError::Internal(_) => Code::Internal,
        }
    }
}

impl From<AppError> for Status {
    fn from(e: AppError) -> Status {
        if let AppError::Internal(detail) = &e {
            // Internal details go to the log, not to the client.
            tracing::error!(%detail, "internal error");
            return Status::internal("internal error (see hub logs)");
        }
        Status::new(e.code(), e.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                AppError::Unavailable(format!("database: {e}"))
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => AppError::AlreadyExists("record".into()),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                AppError::FailedPrecondition("a referenced record does not exist".into())
            }
            sqlx::Error::Database(db) => {
                let msg = db.message().to_string();
                // SQLite busy / PostgreSQL serialization failure or deadlock: retryable.
                if msg.contains("database is locked") || matches!(db.code().as_deref(), Some("40001" | "40P01")) {
                    AppError::Aborted(format!("concurrent write, retry: {msg}"))
                } else if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03" | "08006" | "08001")) {
                    AppError::Unavailable(format!("database: {msg}"))
                } else {
                    AppError::Internal(format!("database: {msg}"))
                }
            }
            _ => AppError::Internal(format!("database: {e}")),
        }
    }
}

/// The direct SQLite connections' errors (see `db::SqliteDirect`), read as sqlx's are.
impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::ConstraintViolation) => {
                let msg = e.to_string();
                if msg.contains("FOREIGN KEY") {
                    AppError::FailedPrecondition("a referenced record does not exist".into())
                } else if msg.contains("UNIQUE") {
                    AppError::AlreadyExists("record".into())
                } else {
                    AppError::Internal(format!("database: {msg}"))
                }
            }
            Some(C::DatabaseBusy | C::DatabaseLocked) => AppError::Aborted(format!("concurrent write, retry: {e}")),
            Some(C::CannotOpen | C::DiskFull | C::SystemIoFailure) => AppError::Unavailable(format!("database: {e}")),
            _ => AppError::Internal(format!("database: {e}")),
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Internal(format!("json: {e}"))
    }
}
