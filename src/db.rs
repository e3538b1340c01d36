//! Storage: sqlx over SQLite (embedded default) or PostgreSQL (scale-out), chosen by URL.
//!
//! Queries are written once in portable SQL (`$1` placeholders, BIGINT times) and run
//! through sqlx's `Any` driver, except the hot paths on SQLite, which run the same SQL on
//! direct blocking connections (see [`SqliteDirect`]). DDL differs, so migrations live in one folder per back-end.
//! SQLite allows one writer at a time: the hub gives it a single-connection write pool so
//! writers queue in-process instead of failing with `database is locked`. The audit trail
//! lives in a second SQLite file (`<database>-audit.db`) with its own writer: the audit
//! record a nominative read waits for is then never queued behind a movement batch.
//! On PostgreSQL both are the one database (row locks let writers run concurrently).

use std::{
    str::FromStr,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, ConnectOptions, Executor,
};

use crate::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    /// Pool for reads (and for writes on PostgreSQL).
    pub read: AnyPool,
    /// Pool for writes: one connection on SQLite, the read pool on PostgreSQL. On
    /// SQLite a write through it takes the writer's turn first: use [`Db::begin_write`]
    /// or [`Db::sqlx_write_turn`].
    pub write: AnyPool,
    /// The audit trail's pools: its own file on SQLite (reads, and one writer), the
    /// main pool on PostgreSQL.
    pub audit_read: AnyPool,
    pub audit_write: AnyPool,
    pub backend: Backend,
    /// Registry facts that never change once written (see [`RegistryCache`]).
    pub registry_cache: std::sync::Arc<RegistryCache>,
    /// Blocking connections to the main SQLite file for the hot paths (see
    /// [`SqliteDirect`]); None on PostgreSQL.
    pub direct: Option<std::sync::Arc<SqliteDirect>>,
    /// The same for the audit file (its writer appends the chain).
    pub audit_direct: Option<std::sync::Arc<SqliteDirect>>,
}

/// Blocking (rusqlite) connections to the main SQLite file, for the paths where sqlx
/// costs more than the work: sqlx runs each SQLite statement on a connection's worker
/// thread and sends every row back through a channel, so a movement batch of a dozen
/// statements and hundreds of rows paid mostly thread wake-ups, allocations and the
/// `Any` driver's conversions (a profile of the ingest benchmark: over half the samples).
/// Here a whole transaction runs in one blocking task with cached prepared statements.
///
/// On the main file the writer never competes with sqlx's one write connection at the
/// SQLite level: every writer of the file, direct or through sqlx ([`Db::begin_write`]),
/// first takes the file's turn, so writers stay serialised in-process, first come first
/// served, and none waits on SQLite's file lock. The turn is an async mutex released
/// on the thread that committed. It used to be sqlx's write connection itself, held
/// idle: releasing it made sqlx ping the connection, a round trip to its worker thread
/// between every two writes while the next one waited (four streams flat out: 42,000
/// events/s with the writer idle half the time, against 46,000-47,000 with the turn).
pub struct SqliteDirect {
    writer: std::sync::Mutex<rusqlite::Connection>,
    readers: std::sync::Mutex<Vec<rusqlite::Connection>>,
    path: String,
    /// Writers wait for their turn here, asynchronously, rather than on the writer's
    /// mutex, which would block a runtime thread.
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Writers waiting for the turn.
    turn_waiters: AtomicUsize,
    /// Long writes waiting for the writer (see [`SqliteDirect::write_then`]).
    long_writes: std::sync::Mutex<LongWrites>,
    /// Dropped with this value: stops the file's checkpointer (see [`checkpointer`]).
    _checkpointer: std::sync::mpsc::Sender<()>,
    /// Raised by the checkpointer when the WAL is long: the next write finishes the
    /// checkpoint (see [`SqliteDirect::write`]).
    wal_long: std::sync::Arc<AtomicBool>,
}

/// A writer's turn on one SQLite file (see [`SqliteDirect::write_token`]).
pub type WriteToken = tokio::sync::OwnedMutexGuard<()>;

/// A long write queued for the writer: its transaction, and the reply to its caller.
type LongWrite = Box<dyn FnOnce(&SqliteDirect) + Send>;

#[derive(Default)]
struct LongWrites {
    jobs: std::collections::VecDeque<LongWrite>,
    /// A blocking task is running the queue (see [`SqliteDirect::write_then`]).
    running: bool,
}

/// Longest wait for a turn: as long as for sqlx's write connection, so a writer that
/// waits behind a stuck one fails with UNAVAILABLE instead of hanging.
const TURN_WAIT: Duration = Duration::from_secs(30);

/// Reader connections kept open between reads; more are opened under a burst and
/// closed after it.
const DIRECT_READERS_KEPT: usize = 8;

impl SqliteDirect {
    /// `wal_long` is shared with the sqlx write pool of the same file (see
    /// [`sqlite_pool`]): whichever writer releases the file next finishes the checkpoint.
    fn open(path: &str, wal_long: std::sync::Arc<AtomicBool>) -> AppResult<std::sync::Arc<SqliteDirect>> {
        Ok(std::sync::Arc::new(SqliteDirect {
            writer: std::sync::Mutex::new(direct_connection(path)?),
            readers: std::sync::Mutex::new(vec![]),
            path: path.to_string(),
            turn: Default::default(),
            turn_waiters: AtomicUsize::new(0),
            long_writes: Default::default(),
            _checkpointer: checkpointer(path, wal_long.clone())?,
            wal_long,
        }))
    }

    /// Runs `f` in one transaction on the direct writer, on a blocking thread; commits
    /// when `f` succeeds, rolls back otherwise. For long transactions (movement batches).
    pub async fn write<T, F>(self: &std::sync::Arc<Self>, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> AppResult<T> + Send + 'static,
    {
        self.write_then(f, |out| out).await
    }

    /// [`SqliteDirect::write`], then `then` on the committed result before any other
    /// write starts (the movement writer's encounter cache must see its batch before
    /// the next one reads it).
    ///
    /// Long writes queue, and one blocking task runs the queue: the write that finds it
    /// idle takes the writer's turn and starts the task, which runs every queued write
    /// in order, so a batch starts as soon as the one before it commits. Each hand-off
    /// otherwise cost a wake-up of the next batch's task, then of a blocking thread, the
    /// writer idle meanwhile (four streams flat out: the writer was busy half the time).
    /// After each write the task hands the turn over when a short write waits for it
    /// (an identity upsert, an inventory push: FIFO), so one waits for one batch at most.
    pub async fn write_then<T, U, F>(
        self: &std::sync::Arc<Self>,
        f: F,
        then: impl FnOnce(T) -> U + Send + 'static,
    ) -> AppResult<U>
    where
        U: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> AppResult<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: LongWrite = Box::new(move |this: &SqliteDirect| {
            let _ = reply.send(this.commit(f).map(then));
        });
        let start = {
            let mut q = self.long_writes();
            q.jobs.push_back(job);
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            // The task takes the turn itself: were this caller cancelled while waiting
            // for it, the queue would be left marked running with no one to run it.
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.run_long_writes());
        }
        answer.await.map_err(|_| AppError::Unavailable("the database writer is busy or stopped: retry".into()))?
    }

    fn long_writes(&self) -> std::sync::MutexGuard<'_, LongWrites> {
        // Its critical sections only push and pop: a poisoned lock holds a sound queue.
        self.long_writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue of long writes, on a blocking thread. It takes the turn before a
    /// write when it does not hold it, and gives it up after one when another writer
    /// waits for it (back in line behind that writer: the turn is FIFO).
    fn run_long_writes(&self) {
        let mut held: Option<WriteToken> = None;
        loop {
            let job = {
                let mut q = self.long_writes();
                match q.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        q.running = false;
                        return;
                    }
                }
            };
            let token = match held.take() {
                Some(t) => t,
                None => match tokio::runtime::Handle::current().block_on(self.write_token()) {
                    Ok(t) => t,
                    // No turn: this write and the queued ones fail (dropped, their
                    // callers get UNAVAILABLE).
                    Err(_) => {
                        let mut q = self.long_writes();
                        q.jobs.clear();
                        q.running = false;
                        return;
                    }
                },
            };
            // A write that panics fails alone: its caller's reply is dropped.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(self)));
            self.finish_checkpoint();
            if self.turn_waiters.load(Ordering::Acquire) == 0 {
                held = Some(token);
            }
        }
    }

    /// [`SqliteDirect::write`] on the calling task's thread (an audit batch, an identity
    /// upsert: less than a hand-off to a blocking thread and back, see
    /// [`SqliteDirect::read`]). With `long`, for a transaction that may run for
    /// milliseconds (an inventory of thousands of applications), a multi-threaded
    /// runtime's worker first hands its other tasks to another thread
    /// (`block_in_place`), so they do not wait behind it; short transactions skip that
    /// hand-off, which costs a thread wake-up.
    ///
    /// A checkpoint that falls due runs afterwards on a blocking thread, holding the
    /// write token: it fsyncs (tens to hundreds of milliseconds on a busy disk), which
    /// on this thread stalled a runtime worker and every call queued on it (the load
    /// mix: identity upserts' p99 at 290 ms, and a third of the unary throughput).
    pub async fn write_here<T>(
        self: &std::sync::Arc<Self>,
        long: bool,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> AppResult<T>,
    ) -> AppResult<T> {
        let token = self.write_token().await?;
        let out = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread if long => tokio::task::block_in_place(|| self.commit(f)),
            _ => self.commit(f),
        };
        self.release(token);
        out
    }

    /// Ends an inline write: a checkpoint that fell due runs on a blocking thread that
    /// holds the token until it is done; otherwise the token is released now.
    fn release(self: &std::sync::Arc<Self>, token: WriteToken) {
        if self.wal_long.load(Ordering::Relaxed) {
            let this = self.clone();
            // Not awaited: the next writer waits for the token, not this caller.
            tokio::task::spawn_blocking(move || {
                this.finish_checkpoint();
                drop(token);
            });
        }
    }

    /// Held until the commit (and its checkpoint): no other write runs meanwhile, so
    /// the connections never wait on SQLite's file lock for each other.
    pub async fn write_token(&self) -> AppResult<WriteToken> {
        // Counted while waiting (and on a cancelled wait), for the long writes' task.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.turn_waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.turn_waiters);
        tokio::time::timeout(TURN_WAIT, self.turn.clone().lock_owned())
            .await
            .map_err(|_| AppError::Unavailable("the database writer is busy: retry later".into()))
    }

    /// The writer's connection. A write that panicked poisoned its lock, but its
    /// transaction rolled back as the panic unwound (rusqlite's `Transaction` drop):
    /// the connection is sound, and the next write may use it.
    fn writer(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> AppResult<T>) -> AppResult<T> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// SQLite starts the WAL over only when a write begins after a checkpoint that
    /// copied every frame. Under continuous writes the checkpointer's PASSIVE
    /// checkpoints never end in that state, so the WAL would grow for as long as the
    /// writes go on, each new frame extending the file (the file system zeroing its
    /// blocks: a sixth of the writer's time in the ingest benchmark). Run by a writer
    /// that holds the token, when the checkpointer has found the WAL long: it copies
    /// the frames the checkpointer has not (few), and the next write starts the WAL
    /// over.
    fn finish_checkpoint(&self) {
        if !self.wal_long.swap(false, Ordering::Relaxed) {
            return;
        }
        let conn = self.writer();
        if let Err(e) = passive_checkpoint(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint after a write failed");
        }
    }

    /// Runs `f` on a direct reader, on the calling task's thread.
    ///
    /// Reads are index look-ups and bounded scans over a file mostly in the page
    /// cache: tens to hundreds of microseconds, less than the two context switches a
    /// hand-off to a blocking thread costs on a small machine (the read-only load mix:
    /// +28 % RPC/s when the identity reads stopped handing off). In WAL mode a reader
    /// never waits for the writer or a checkpoint, so this never blocks on a lock.
    pub fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> AppResult<T>) -> AppResult<T> {
        let taken = self.readers.lock().map_err(|_| AppError::internal("direct SQLite readers poisoned"))?.pop();
        let conn = match taken {
            Some(c) => c,
            None => direct_connection(&self.path)?,
        };
        let out = f(&conn);
        if let Ok(mut kept) = self.readers.lock() {
            if kept.len() < DIRECT_READERS_KEPT {
                kept.push(conn);
            }
        }
        out
    }
}

/// A bind value of a statement (see [`Db::rows`], [`Tx::exec`]).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    /// Text or NULL; typed, because PostgreSQL refuses an untyped NULL's type guess.
    OptText(Option<&'a str>),
    OptInt(Option<i64>),
    Float(f64),
    Blob(&'a [u8]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Float(v)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Blob(v)
    }
}

/// One statement on a direct SQLite connection, prepared once per connection, with
/// its binds. Binds go by name (`$n`), so a statement may use its parameters in any
/// order, and more than once; a bind the statement does not name is an error, never a
/// shifted value.
fn direct_statement<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> AppResult<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let positional = stmt.parameter_count() == args.len() && binds_in_order(sql, args.len());
    for (i, a) in args.iter().enumerate() {
        let idx = if positional {
            i + 1
        } else {
            match stmt.parameter_index(&format!("${}", i + 1))? {
                Some(idx) => idx,
                None => return Err(AppError::internal(format!("statement has no parameter ${}: {sql}", i + 1))),
            }
        };
        match *a {
            Arg::Text(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Int(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::OptText(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::OptInt(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Float(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Blob(v) => stmt.raw_bind_parameter(idx, v)?,
        }
    }
    Ok(stmt)
}

/// Whether the `$k` of `sql` first appear in the order `$1`, `$2`, …, `$n` (a later
/// repeat of an earlier one aside). SQLite numbers `$` parameters in order of first
/// appearance, so `$k` is then parameter k and binds go by position. Looking a name up
/// scans the statement's list of names: a multi-row INSERT of P binds paid O(P²)
/// comparisons (an inventory of 2,000 applications: millions), where this scan is one
/// pass over the text.
fn binds_in_order(sql: &str, n: usize) -> bool {
    let b = sql.as_bytes();
    let (mut next, mut i) = (1usize, 0usize);
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        match sql[start..i].parse::<usize>() {
            Ok(k) if k == next => next += 1,
            Ok(k) if k >= 1 && k < next => {}
            // Out of order, `$0`, or a `$` that is not a parameter: look names up.
            _ => return false,
        }
    }
    next == n + 1
}

/// Runs one read statement on a direct SQLite connection (see [`direct_statement`]).
pub fn direct_rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    decode: impl Fn(&dyn Cols) -> AppResult<T>,
) -> AppResult<Vec<T>> {
    let mut stmt = direct_statement(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        out.push(decode(r)?);
    }
    Ok(out)
}

/// The same statement through sqlx, with the same binds.
fn sqlx_query<'q>(sql: &'q str, args: &[Arg<'q>]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match *a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v),
        };
    }
    q
}

/// Where a read runs: the database ([`Db::reader`]: the direct reader on SQLite, the
/// pool on PostgreSQL) or a connection (inside a transaction, or a held connection).
/// Reads that run in both places are written once over it.
// Only used within the crate, on concrete types: their futures' `Send` is known.
#[allow(async_fn_in_trait)]
pub trait Reader {
    /// The rows of one read statement, decoded (see [`Db::rows`]).
    async fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Vec<T>>;

    /// The first row of one read statement, if any.
    async fn row<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Option<T>> {
        Ok(self.rows(sql, args, decode).await?.into_iter().next())
    }
}

/// See [`Db::reader`].
pub struct DbReader<'a> {
    db: &'a Db,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl Reader for DbReader<'_> {
    async fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Vec<T>> {
        if let Some(d) = &self.db.direct {
            return d.read(|conn| direct_rows(conn, sql, args, decode));
        }
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.db.read.acquire().await?),
        };
        conn.rows(sql, args, decode).await
    }
}

impl Reader for sqlx::AnyConnection {
    async fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Vec<T>> {
        sqlx_query(sql, args).fetch_all(&mut *self).await?.iter().map(|r| decode(r)).collect()
    }
}

/// The writes of a transaction of either back-end: an sqlx transaction (PostgreSQL,
/// and SQLite's rare paths), or the direct SQLite writer ([`Direct`]). Writes that run
/// in both are written once over it, and run in one with [`write_tx!`].
#[allow(async_fn_in_trait)]
pub trait Tx: Reader {
    /// Runs one write statement; returns the rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> AppResult<u64>;
    /// PostgreSQL's statements (advisory locks, NOTIFY) are skipped elsewhere.
    fn is_postgres(&self) -> bool;
}

impl Tx for sqlx::AnyConnection {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> AppResult<u64> {
        Ok(sqlx_query(sql, args).execute(&mut *self).await?.rows_affected())
    }

    fn is_postgres(&self) -> bool {
        self.backend_name() != "SQLite"
    }
}

/// A transaction on the direct SQLite writer (see [`SqliteDirect::write`]). Its
/// futures never wait: every statement blocks and returns, so code written over
/// [`Tx`] runs here to completion in one poll (see [`ready`]).
pub struct Direct<'c>(pub &'c rusqlite::Connection);

impl Reader for Direct<'_> {
    async fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Vec<T>> {
        direct_rows(self.0, sql, args, decode)
    }
}

impl Tx for Direct<'_> {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> AppResult<u64> {
        Ok(direct_statement(self.0, sql, args)?.raw_execute()? as u64)
    }

    fn is_postgres(&self) -> bool {
        false
    }
}

/// A PostgreSQL transaction-scoped advisory lock on `key`, held until the transaction
/// ends: serialises writers across hub replicas. Nothing on SQLite, whose one writer
/// already serialises them.
pub async fn xact_lock(tx: &mut impl Tx, key: i64) -> AppResult<()> {
    if tx.is_postgres() {
        // A SELECT: read as a row (the lock function's own column is void).
        tx.rows("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) l", &[key.into()], |_| Ok(())).await?;
    }
    Ok(())
}

/// The output of a future that never waits (one written over [`Tx`], run on
/// [`Direct`]), without an executor. A future that does wait — it awaited real I/O,
/// which has no place inside a direct transaction — is an error, not a blocked thread.
pub fn ready<T>(f: impl std::future::Future<Output = AppResult<T>>) -> AppResult<T> {
    let f = std::pin::pin!(f);
    match f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(AppError::internal("a direct SQLite transaction awaited I/O")),
    }
}

/// Pins a block's output type to [`AppResult`] so `?` converts into it (see [`write_tx!`]).
pub fn app_result<T, F: std::future::Future<Output = AppResult<T>>>(f: F) -> F {
    f
}

/// Runs `$body` in one write transaction, with `$tx` bound to it (`&mut impl Tx`):
/// on SQLite on the direct writer, on the calling thread (see
/// [`SqliteDirect::write_here`]), on PostgreSQL in a pool transaction. Commits when
/// the body returns `Ok`, rolls back otherwise. The body is an async block's body
/// that evaluates to an [`AppResult`]; it is compiled once for each back-end, and on
/// SQLite must await nothing but its `Tx` (see [`ready`]). The body blocks a runtime
/// thread for its duration: `write_tx!(@long db, |tx| …)` for bodies that may take
/// milliseconds (see [`SqliteDirect::write_here`]).
#[macro_export]
macro_rules! write_tx {
    ($db:expr, |$tx:ident| $body:block) => {{
        let db: &$crate::db::Db = &$db;
        $crate::write_tx!(@on &db.direct, &db.write, false, |$tx| $body)
    }};
    // A body that may run for milliseconds (see `SqliteDirect::write_here`).
    (@long $db:expr, |$tx:ident| $body:block) => {{
        let db: &$crate::db::Db = &$db;
        $crate::write_tx!(@on &db.direct, &db.write, true, |$tx| $body)
    }};
    // On another file's writers: `$direct` (Option<Arc<SqliteDirect>>), else `$pool`;
    // `$long` as in `SqliteDirect::write_here`.
    (@on $direct:expr, $pool:expr, $long:expr, |$tx:ident| $body:block) => {{
        let (direct, pool): (&Option<std::sync::Arc<$crate::db::SqliteDirect>>, &sqlx::AnyPool) = ($direct, $pool);
        match direct {
            Some(direct) => {
                direct
                    .write_here($long, |t| {
                        let $tx = &mut $crate::db::Direct(t);
                        $crate::db::ready($crate::db::app_result(async { $body }))
                    })
                    .await
            }
            None => {
                $crate::db::app_result(async {
                    let mut t = pool.begin().await?;
                    let out = {
                        let $tx: &mut sqlx::AnyConnection = &mut *t;
                        $crate::db::app_result(async { $body }).await?
                    };
                    t.commit().await?;
                    Ok(out)
                })
                .await
            }
        }
    }};
}

/// How often a file's checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Starts the thread that checkpoints one SQLite file's WAL; it stops when the returned
/// sender is dropped. It raises `finish` when the WAL has grown long (see
/// [`SqliteDirect::write`]).
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages:
/// that commit copies 4 MiB into the database file and fsyncs twice (with
/// synchronous=NORMAL those are the only fsyncs), while it holds the one writer. Every
/// writer behind it waited — a movement batch, or the audit record a search returns
/// after — and those waits were the tails of the latency figures. Every connection
/// therefore has `wal_autocheckpoint=0`, and this thread runs PASSIVE checkpoints on its
/// own connection: they never wait for, nor block, the writer or readers, and they
/// back-fill what is committed up to then. Durability is unchanged: a commit is in the
/// WAL (crash of the process: kept), and the WAL is fsynced here as it was in the
/// commit before.
fn checkpointer(path: &str, finish: std::sync::Arc<AtomicBool>) -> AppResult<std::sync::mpsc::Sender<()>> {
    let conn = direct_connection(path)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Ends when the sender is dropped (Disconnected); nothing is ever sent.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                match passive_checkpoint(&conn) {
                    Ok(log) if log >= WAL_RESTART_PAGES => finish.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retried"),
                }
            }
        })
        .map_err(|e| AppError::internal(format!("cannot start the SQLite checkpointer: {e}")))?;
    Ok(stop)
}

/// The checkpoint of every path here: it never waits for, nor blocks, other connections.
const PASSIVE_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// A PASSIVE checkpoint on a direct connection; returns the WAL's length in pages.
fn passive_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row(PASSIVE_CHECKPOINT, [], |r| r.get::<_, i64>(1))
}

/// WAL length (pages of 4 KiB) from which the writer finishes a checkpoint so that the
/// WAL starts over.
const WAL_RESTART_PAGES: i64 = 4_096;

/// Process-wide SQLite settings, before its first connection (sqlx's and the direct
/// ones share one library).
///
/// MEMSTATUS off: with it on (SQLite's default), every allocation and free inside
/// SQLite takes a global mutex to keep memory statistics the hub never reads; in the
/// movement writer those lock/unlock pairs were a seventh of its time, and every
/// connection's allocations contended on the one mutex.
///
/// Two glibc malloc arenas at most: SQLite allocates with the C library's malloc (the
/// hub's own allocations go to mimalloc), and glibc gives each thread that mallocs at
/// the same time as another an arena of its own, up to eight per core, each keeping
/// the largest page cache that ran on it. The writers run on whichever blocking thread
/// is free, so under the flat-out load mix six arenas held 63 MiB of the hub's
/// 146-163 MiB; with two, 134 MiB at the same throughput.
fn sqlite_global_config() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            const M_ARENA_MAX: std::ffi::c_int = -8;
            // SAFETY: mallopt only sets a glibc tunable; it takes effect for arenas
            // created afterwards, and this runs before SQLite's first allocation. An
            // operator's MALLOC_ARENA_MAX is left alone.
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                unsafe { mallopt(M_ARENA_MAX, 2) };
            }
        }
        // SAFETY: sqlite3_config must run before SQLite initialises; Once runs it
        // first, before any connection of this process. If something else (a test
        // harness) initialised SQLite already, SQLite refuses with SQLITE_MISUSE and
        // changes nothing.
        let rc = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised before the hub: memory statistics stay on");
        }
    });
}

/// A blocking connection with the pool's settings (see [`sqlite_pragmas`]).
fn direct_connection(path: &str) -> AppResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(SQLITE_PRAGMAS)?;
    // Every statement of the hot paths is prepared once per connection.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Facts of the registry that the hub never updates once written — a GHT's ARS region,
/// an establishment's GHT and role — remembered so the access checks on every call do
/// not query them again. Only found rows are cached, so a replica that has not yet
/// seen a new row simply asks the database. If an update path is ever added for these
/// fields, it must clear this cache (and other replicas' — i.e. drop the cache).
#[derive(Default)]
pub struct RegistryCache {
    pub ght_region: std::sync::RwLock<std::collections::HashMap<String, String>>,
    pub establishment: std::sync::RwLock<std::collections::HashMap<String, (String, String)>>,
}

/// A result row of either back-end (sqlx's `Any` row, or a direct SQLite row; see
/// [`SqliteDirect`]), read by column index, so decoders are written once.
pub trait Cols {
    fn text(&self, i: usize) -> AppResult<String>;
    fn opt_text(&self, i: usize) -> AppResult<Option<String>>;
    fn int(&self, i: usize) -> AppResult<i64>;
    fn opt_int(&self, i: usize) -> AppResult<Option<i64>>;
    fn blob(&self, i: usize) -> AppResult<Vec<u8>>;
    fn float(&self, i: usize) -> AppResult<f64>;
}

impl Cols for sqlx::any::AnyRow {
    fn text(&self, i: usize) -> AppResult<String> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn opt_text(&self, i: usize) -> AppResult<Option<String>> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn int(&self, i: usize) -> AppResult<i64> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn opt_int(&self, i: usize) -> AppResult<Option<i64>> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn blob(&self, i: usize) -> AppResult<Vec<u8>> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
    fn float(&self, i: usize) -> AppResult<f64> {
        Ok(sqlx::Row::try_get(self, i)?)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> AppResult<String> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> AppResult<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> AppResult<i64> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> AppResult<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn blob(&self, i: usize) -> AppResult<Vec<u8>> {
        Ok(self.get(i)?)
    }
    fn float(&self, i: usize) -> AppResult<f64> {
        Ok(self.get(i)?)
    }
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_AUDIT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite-audit");

/// Rows per multi-row statement (INSERT … VALUES, IN lists) of `cols` binds each.
///
/// sqlx binds every SQLite parameter through `sqlite3_bind_parameter_name`, which
/// scans the statement's list of `$N` names from the start: a statement of P binds
/// costs O(P²) (6,000 binds: tens of milliseconds, most of an inventory push). SQLite
/// statements therefore stay near 256 binds, where that cost is below the per-statement
/// overhead; PostgreSQL has no such cost and saves round trips with large statements
/// (its limit is 65,535 binds). The direct SQLite connections bind these statements by
/// position (see [`binds_in_order`]); the same size serves them, each statement also
/// being one entry of their prepared-statement cache.
pub fn rows_per_statement(tx: &impl Tx, cols: usize) -> usize {
    let binds = if tx.is_postgres() { 8_192 } else { 256 };
    (binds / cols.max(1)).max(1)
}

/// A write transaction through sqlx ([`Db::begin_write`]): the connection, and on
/// SQLite the writer's turn, released after the transaction (fields drop in order).
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<WriteToken>,
}

impl WriteTx {
    pub async fn commit(self) -> AppResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

pub fn backend_of(url: &str) -> AppResult<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(AppError::invalid("database_url", "must start with sqlite: or postgres:"))
    }
}

impl Db {
    /// Connects, creating the SQLite file (and its folder) if needed, and runs migrations.
    pub async fn connect(url: &str, max_connections: u32) -> AppResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let db = match backend {
            Backend::Sqlite => {
                sqlite_global_config();
                let url = sqlite_url_with_create(url)?;
                let (main_wal_long, audit_wal_long) = Default::default();
                let write = sqlite_pool(&url, 1, 30, Some(&main_wal_long)).await?;
                SQLITE_MIGRATOR.run(&write).await.map_err(|e| AppError::Internal(format!("migrations: {e}")))?;
                let read = sqlite_pool(&url, max_connections.max(2), 10, None).await?;
                let audit_url = audit_file_url(&url);
                let audit_write = sqlite_pool(&audit_url, 1, 30, Some(&audit_wal_long)).await?;
                SQLITE_AUDIT_MIGRATOR
                    .run(&audit_write)
                    .await
                    .map_err(|e| AppError::Internal(format!("audit migrations: {e}")))?;
                carry_over_audit(&audit_write, &url).await?;
                let audit_read = sqlite_pool(&audit_url, 2, 10, None).await?;
                let direct = SqliteDirect::open(sqlite_path(&url), main_wal_long)?;
                let audit_direct = SqliteDirect::open(sqlite_path(&audit_url), audit_wal_long)?;
                Db {
                    read,
                    write,
                    audit_read,
                    audit_write,
                    backend,
                    registry_cache: Default::default(),
                    direct: Some(direct),
                    audit_direct: Some(audit_direct),
                }
            }
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url)
                    .map_err(|e| AppError::invalid("database_url", e.to_string()))?
                    .disable_statement_logging();
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .after_connect(postgres_session)
                    .connect_with(opts)
                    .await
                    .map_err(|e| AppError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
                // Replicas may start together: the migrator takes an advisory lock.
                POSTGRES_MIGRATOR.run(&pool).await.map_err(|e| AppError::Internal(format!("migrations: {e}")))?;
                Db {
                    read: pool.clone(),
                    write: pool.clone(),
                    audit_read: pool.clone(),
                    audit_write: pool,
                    backend,
                    registry_cache: Default::default(),
                    direct: None,
                    audit_direct: None,
                }
            }
        };
        Ok(db)
    }

    /// The writer's turn for a write through sqlx on SQLite (see [`SqliteDirect`]);
    /// None on PostgreSQL, where transactions lock rows, not the file.
    pub async fn sqlx_write_turn(&self) -> AppResult<Option<WriteToken>> {
        match &self.direct {
            Some(direct) => Ok(Some(direct.write_token().await?)),
            None => Ok(None),
        }
    }

    /// A transaction on the write pool, with the writer's turn on SQLite.
    pub async fn begin_write(&self) -> AppResult<WriteTx> {
        let turn = self.sqlx_write_turn().await?;
        Ok(WriteTx { tx: self.write.begin().await?, _turn: turn })
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// The rows of one read statement (portable SQL, `$n` binds), decoded once for
    /// both back-ends. On SQLite it runs on a direct reader on the calling thread (see
    /// [`SqliteDirect::read`]); sqlx would hand the statement to its connection's
    /// worker thread and every row back, a context switch each.
    pub async fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Vec<T>> {
        self.reader().rows(sql, args, decode).await
    }

    /// The first row of one read statement, if any (see [`Db::rows`]).
    pub async fn row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        decode: impl Fn(&dyn Cols) -> AppResult<T>,
    ) -> AppResult<Option<T>> {
        self.reader().row(sql, args, decode).await
    }

    /// This database as a [`Reader`], for reads written once for a transaction and
    /// for the pool. On PostgreSQL its statements share one pooled connection, taken at
    /// the first: each release of a pooled connection costs a round trip (sqlx pings it).
    pub fn reader(&self) -> DbReader<'_> {
        DbReader { db: self, conn: None }
    }

    /// Cheap liveness probe used by health reporting.
    pub async fn ping(&self) -> AppResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

/// A pool of connections to one SQLite file. A write pool gets the file's `wal_long`
/// flag: a write connection coming back to it finishes the checkpoint when the flag is
/// up, as the direct writer does (see [`SqliteDirect::write`]), so a long run of sqlx
/// writes (a bulk load) does not grow the WAL either.
async fn sqlite_pool(
    url: &str,
    connections: u32,
    acquire_secs: u64,
    wal_long: Option<&std::sync::Arc<AtomicBool>>,
) -> AppResult<AnyPool> {
    let opts = AnyConnectOptions::from_str(url)
        .map_err(|e| AppError::invalid("database_url", e.to_string()))?
        .disable_statement_logging();
    let pool = AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(acquire_secs))
        // sqlx pings a connection before handing it out, by default: for an embedded
        // SQLite connection that is one more round trip to its worker thread on every
        // acquire (every call, every movement batch's write token) and it checks
        // nothing a statement would not.
        .test_before_acquire(false)
        .after_connect(sqlite_pragmas);
    let pool = match wal_long.cloned() {
        None => pool,
        Some(flag) => pool.after_release(move |conn, _meta| {
            let flag = flag.clone();
            Box::pin(async move {
                if flag.swap(false, Ordering::Relaxed) {
                    if let Err(e) = sqlx::query(PASSIVE_CHECKPOINT).execute(&mut *conn).await {
                        tracing::warn!(error = %e, "WAL checkpoint after a write failed");
                    }
                }
                Ok(true)
            })
        }),
    };
    pool.connect_with(opts).await.map_err(|e| AppError::Unavailable(format!("cannot open {url}: {e}")))
}

/// The audit file's URL: `sqlite://data/ghthub.db?mode=rwc` → `sqlite://data/ghthub-audit.db?mode=rwc`.
pub fn audit_file_url(url: &str) -> String {
    let (path, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
    // Only the file name's last extension is replaced: a dot in a folder name stays.
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let audit = match path[name_start..].rfind('.') {
        Some(dot) if dot > 0 => format!("{}-audit{}", &path[..name_start + dot], &path[name_start + dot..]),
        _ => format!("{path}-audit"),
    };
    match query {
        Some(q) => format!("{audit}?{q}"),
        None => audit,
    }
}

/// Before the audit trail had its own file, its records were in the main file. The
/// first start with an empty audit file copies them over (same seq, same hashes, so the
/// chain verifies unchanged and goes on from its last record). The main file's tables
/// stay as they are: they are append-only, and the hub no longer writes to them.
async fn carry_over_audit(audit_write: &AnyPool, main_url: &str) -> AppResult<()> {
    let mut conn = audit_write.acquire().await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log").fetch_one(&mut *conn).await?;
    if n > 0 {
        return Ok(());
    }
    sqlx::query("ATTACH DATABASE $1 AS legacy").bind(sqlite_path(main_url)).execute(&mut *conn).await?;
    let copied = async {
        let has: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM legacy.sqlite_master WHERE type = 'table' AND name = 'audit_log'")
                .fetch_one(&mut *conn)
                .await?;
        if has.0 == 0 {
            return Ok::<u64, AppError>(0);
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let n = sqlx::query("INSERT INTO main.audit_log SELECT * FROM legacy.audit_log ORDER BY seq")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("INSERT INTO main.audit_target SELECT * FROM legacy.audit_target").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }
    .await;
    // Detached whatever happened: the connection goes back to the pool.
    sqlx::query("DETACH DATABASE legacy").execute(&mut *conn).await?;
    let n = copied?;
    if n > 0 {
        tracing::info!(records = n, "audit trail carried over from the main database file to its own file");
    }
    Ok(())
}

/// WAL: readers never block the writer. synchronous=NORMAL: a committed transaction
/// survives a crash of the hub process (the WAL is in the OS page cache and is
/// fsynced at checkpoints); only a power loss may lose the last commits.
/// cache_size: 16 MiB of pages per connection, so at most ~190 MiB over the twelve
/// connections (8 reads, the writer, the audit file's three); pages beyond it come
/// from the OS page cache. At 64 MiB each, searches over 1 M identities took the hub
/// to 470 MiB (`cargo bench --bench movements`); at 16 MiB, 225 MiB with the same
/// latencies.
fn sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute(SQLITE_PRAGMAS).await?;
        Ok(())
    })
}

/// Session settings of every PostgreSQL connection.
///
/// plan_cache_mode=force_custom_plan: sqlx prepares each statement once per connection,
/// and after five executions PostgreSQL may switch to a generic plan, made without the
/// values. For the movement batches' look-ups (`establishment_id = $1 AND event_id IN
/// ($2 … $1025)`) on a table not yet analysed, that plan read every movement of the
/// establishment through the first index column and compared each with the 1,024 values
/// (1.4 s per look-up at 84,000 movements; one stream's ingest fell below 600 events/s
/// and kept falling). A custom plan, made with the values, costs a planning per
/// execution (a few milliseconds for 1,024 values, tens of microseconds otherwise).
fn postgres_session(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        conn.execute("SET plan_cache_mode = force_custom_plan").await?;
        Ok(())
    })
}

/// wal_autocheckpoint=0: checkpoints run off the write path (see [`checkpointer`]);
/// journal_size_limit: a WAL grown by a burst is truncated back to 64 MiB when reset.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; \
     PRAGMA busy_timeout=10000; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY; \
     PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;";

/// The file path of an `sqlite:` URL (without its query string).
fn sqlite_path(url: &str) -> &str {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    path.split('?').next().unwrap_or_default()
}

fn sqlite_url_with_create(url: &str) -> AppResult<String> {
    let path = sqlite_path(url);
    if path.is_empty() || path == ":memory:" {
        return Err(AppError::invalid("database_url", "an SQLite file path is required"));
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| AppError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    Ok(if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{
        store::{append_batch, verify},
        AuditEntry,
    };

    async fn close(db: &Db) {
        for pool in [&db.read, &db.write, &db.audit_read, &db.audit_write] {
            pool.close().await;
        }
    }

    #[test]
    fn the_audit_file_sits_beside_the_database() {
        assert_eq!(audit_file_url("sqlite://data/ghthub.db?mode=rwc"), "sqlite://data/ghthub-audit.db?mode=rwc");
        assert_eq!(audit_file_url("sqlite:///var/lib/v1.2/hub"), "sqlite:///var/lib/v1.2/hub-audit");
        assert_eq!(audit_file_url("sqlite:hub.sqlite3"), "sqlite:hub-audit.sqlite3");
    }

    /// `Db::rows` binds `$n` by name on the direct reader: a statement may use its
    /// parameters in any order and more than once; a bind the statement does not name
    /// is an error, never a silently shifted value. A write through sqlx is seen by the
    /// next direct read.
    #[tokio::test]
    async fn direct_reads_bind_by_name_and_see_committed_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&format!("sqlite://{}/hub.db", dir.path().display()), 2).await.expect("open");
        let text = |r: &dyn Cols| r.text(0);
        let got = db.rows("SELECT $2 || '-' || $1 || '-' || $2", &["a".into(), "b".into()], text).await;
        assert_eq!(got.expect("read"), vec!["b-a-b".to_string()]);
        assert!(db.rows("SELECT $1", &["a".into(), "b".into()], text).await.is_err());
        let at = 7_i64;
        sqlx::query("INSERT INTO ght (id, name, ars_region, created_at) VALUES ($1, $2, $3, $4)")
            .bind("540300002")
            .bind("GHT test")
            .bind("44")
            .bind(at)
            .execute(&db.write)
            .await
            .expect("write");
        let sql = "SELECT name, created_at FROM ght WHERE id = $1";
        let row = db.row(sql, &["540300002".into()], |r| Ok((r.text(0)?, r.int(1)?))).await.expect("read");
        assert_eq!(row, Some(("GHT test".to_string(), at)));
        close(&db).await;
    }

    #[test]
    fn binds_go_by_position_only_when_first_seen_in_order() {
        assert!(binds_in_order("INSERT INTO t VALUES ($1,$2),($3,$4)", 4));
        assert!(binds_in_order("SELECT $1 WHERE a = $2 OR b = $1 OR c IN ($3, $2)", 3));
        assert!(binds_in_order("SELECT 1", 0));
        assert!(binds_in_order("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11", 11));
        assert!(!binds_in_order("SELECT $2, $1", 2));
        assert!(!binds_in_order("SELECT $1, $3", 2));
        assert!(!binds_in_order("SELECT $1", 2));
        assert!(!binds_in_order("SELECT $1, $2", 1));
        assert!(!binds_in_order("SELECT '$' || $1", 1));
        assert!(!binds_in_order("SELECT $0", 0));
    }

    /// `write_tx!` commits the body's writes when it returns Ok and keeps none of them
    /// when it fails half-way; NULLs, floats and blobs bind on both back-ends; a body
    /// over the direct writer that awaits real I/O is refused, not blocked on.
    async fn write_tx_commits_or_keeps_nothing(db: &Db, ght: &str) {
        let insert = "INSERT INTO ght (id, name, ars_region, created_at) VALUES ($1, $2, $3, $4)";
        let count = "SELECT COUNT(*) FROM ght WHERE id = $1";
        let failed: AppResult<()> = crate::write_tx!(db, |tx| {
            tx.exec(insert, &[ght.into(), "half".into(), "44".into(), 1_i64.into()]).await?;
            tx.exec(insert, &[ght.into(), "again".into(), "44".into(), 2_i64.into()]).await?;
            Ok(())
        });
        assert!(failed.is_err(), "the duplicate key fails the body");
        assert_eq!(db.row(count, &[ght.into()], |r| r.int(0)).await.expect("read"), Some(0));
        let seen = crate::write_tx!(db, |tx| {
            tx.exec(insert, &[ght.into(), "GHT".into(), "44".into(), 3_i64.into()]).await?;
            let sql = "SELECT CAST(CASE WHEN CAST($1 AS TEXT) IS NULL THEN 1 ELSE 0 END AS BIGINT), \
                       CAST($2 AS DOUBLE PRECISION), $3";
            let args = [Arg::OptText(None), Arg::Float(0.5), Arg::Blob(b"ab")];
            tx.row(sql, &args, |r| Ok((r.int(0)? != 0, r.float(1)?, r.blob(2)?))).await
        });
        assert_eq!(seen.expect("write"), Some((true, 0.5, b"ab".to_vec())));
        assert_eq!(db.row(count, &[ght.into()], |r| r.int(0)).await.expect("read"), Some(1));
        if db.direct.is_some() {
            let waited: AppResult<()> = crate::write_tx!(db, |tx| {
                tx.exec(insert, &[(&format!("{ght}x")).into(), "x".into(), "44".into(), 4_i64.into()]).await?;
                tokio::task::yield_now().await;
                Ok(())
            });
            assert!(waited.is_err());
            let n = db.row(count, &[(&format!("{ght}x")).into()], |r| r.int(0)).await.expect("read");
            assert_eq!(n, Some(0), "rolled back");
        }
    }

    #[tokio::test]
    async fn write_tx_commits_or_keeps_nothing_on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&format!("sqlite://{}/hub.db", dir.path().display()), 2).await.expect("open");
        write_tx_commits_or_keeps_nothing(&db, "540300003").await;
        close(&db).await;
    }

    #[tokio::test]
    async fn write_tx_commits_or_keeps_nothing_on_postgres() {
        let Ok(url) = std::env::var("DATABASE_URL") else { return };
        let db = Db::connect(&url, 2).await.expect("open");
        // A fresh id per run: the shared test database keeps earlier runs' rows.
        let ght = format!("9{:08}", std::process::id() % 100_000_000);
        write_tx_commits_or_keeps_nothing(&db, &ght).await;
        close(&db).await;
    }

    /// A database from before the split holds its audit records in the main file: the
    /// first start copies them to the audit file, the chain verifies and goes on, and a
    /// second start copies nothing again.
    #[tokio::test]
    async fn audit_records_of_the_main_file_carry_over_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/hub.db", dir.path().display());
        let entry = |s: &str| AuditEntry { subject: s.into(), decision: "ALLOW".into(), ..Default::default() };
        let db = Db::connect(&url, 2).await.expect("open");
        // The hub as it was: the audit pools were the main file's.
        let before = Db {
            audit_read: db.read.clone(),
            audit_write: db.write.clone(),
            audit_direct: db.direct.clone(),
            ..db.clone()
        };
        append_batch(&before, &[&entry("a"), &entry("b")]).await.expect("legacy append");
        close(&db).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("hub-audit.db{suffix}")));
        }

        let db = Db::connect(&url, 2).await.expect("reopen");
        let v = verify(&db).await.expect("verify");
        assert!(v.ok && v.records == 2, "{v:?}");
        assert_eq!(append_batch(&db, &[&entry("c")]).await.expect("append"), 3);
        close(&db).await;
        let db = Db::connect(&url, 2).await.expect("third start");
        let v = verify(&db).await.expect("verify");
        assert!(v.ok && v.records == 3, "{v:?}");
    }

    /// Long writes queued together run one after the other in the order they were
    /// queued, each its own transaction; a short write that asks for the turn meanwhile
    /// runs after the batch in progress, not after the whole queue; a long write that
    /// panics fails alone, and the queue goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_writes_run_in_order_and_let_short_writes_through() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&format!("sqlite://{}/hub.db", dir.path().display()), 2).await.expect("open");
        let direct = db.direct.clone().expect("SQLite has a direct writer");
        direct.write(|tx| Ok(tx.execute_batch("CREATE TABLE seen (n INTEGER, what TEXT)")?)).await.expect("create");
        let long = |n: i64| {
            let direct = direct.clone();
            tokio::spawn(async move {
                direct
                    .write(move |tx| {
                        if n == 3 {
                            panic!("a broken batch");
                        }
                        // Holds the writer long enough for the short write to queue.
                        std::thread::sleep(Duration::from_millis(30));
                        tx.execute("INSERT INTO seen (n, what) VALUES (?1, 'long')", [n])?;
                        Ok(n)
                    })
                    .await
            })
        };
        let mut batches = vec![];
        for n in 0..8 {
            batches.push(long(n));
            // Queued in this order (the first starts the queue's task).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let short = direct
            .write_here(false, |tx| Ok(tx.execute("INSERT INTO seen (n, what) VALUES (100, 'short')", [])?))
            .await;
        assert!(short.is_ok(), "{short:?}");
        let mut results = vec![];
        for b in batches {
            results.push(b.await.expect("join"));
        }
        for (n, r) in results.iter().enumerate() {
            if n == 3 {
                assert!(matches!(r, Err(AppError::Unavailable(_))), "the panicking batch fails: {r:?}");
            } else {
                assert_eq!(r.as_ref().ok(), Some(&(n as i64)), "batch {n}: {r:?}");
            }
        }
        let order = db.rows("SELECT n FROM seen ORDER BY rowid", &[], |r| r.int(0)).await.expect("read");
        let short_at = order.iter().position(|&n| n == 100).expect("the short write committed");
        let longs: Vec<i64> = order.iter().copied().filter(|&n| n != 100).collect();
        assert_eq!(longs, vec![0, 1, 2, 4, 5, 6, 7], "long writes commit in queue order");
        assert!(short_at <= 3, "the short write waited for one batch, not the queue: {order:?}");
        // The queue is idle again and takes new writes.
        assert_eq!(direct.write(|_| Ok(9)).await.expect("after"), 9);
        close(&db).await;
    }

    /// Continuous writes, with no pause for a checkpoint to catch up: the WAL still
    /// starts over (without the writer finishing the checkpoint, it grows with every
    /// write, past 100 MiB here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/hub.db", dir.path().display());
        let db = Db::connect(&url, 2).await.expect("open");
        let direct = db.direct.clone().expect("SQLite has a direct writer");
        direct.write(|tx| Ok(tx.execute_batch("CREATE TABLE filler (b BLOB)")?)).await.expect("create");
        let wal = dir.path().join("hub.db-wal");
        let (mut written, mut largest) = (0u64, 0u64);
        let started = std::time::Instant::now();
        while written < 128 << 20 {
            // Both writers of the file, one after the other: sqlx's (a bulk load, and
            // everything but the hot paths), then the direct one (movement batches,
            // audit appends).
            if written >= 64 << 20 {
                direct
                    .write(|tx| Ok(tx.execute("INSERT INTO filler (b) VALUES (zeroblob(65536))", [])?))
                    .await
                    .expect("direct write");
            } else {
                sqlx::query("INSERT INTO filler (b) VALUES (zeroblob(65536))").execute(&db.write).await.expect("write");
            }
            written += 64 << 10;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            // At most 64 MiB/s: a few MiB between two looks of the checkpointer.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // 16 MiB before the checkpointer raises the flag, plus what is written in the
        // 100 ms before it looks, and the frames' headers.
        assert!(largest < 48 << 20, "WAL grew to {} MiB over {} MiB written", largest >> 20, written >> 20);
        assert!(started.elapsed() >= Duration::from_secs(1), "written faster than paced");
        close(&db).await;
    }
}
