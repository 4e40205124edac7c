//! STORE: the only module that speaks SQL. Synchronous rusqlite on a small
//! pool of connections to one SQLite file in WAL mode; async callers go
//! through [`Db::run`], which moves the work onto a blocking thread.
//!
//! Every ticket change is one `BEGIN IMMEDIATE` transaction ([`Db::write`]):
//! taking the write lock up front means a busy database waits
//! (`busy_timeout`) instead of failing half-way with a lock upgrade error.
//! Commits are durable (`synchronous = FULL`): a committed change survives a
//! power cut, which the mail sources rely on before they settle a message.

pub mod activity;
pub mod blobs;
pub mod imap;
pub mod inbound;
pub mod outbox;
pub mod portal;
pub mod schema;
pub mod sessions;
pub mod tickets;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use blobs::Blobs;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the database is busy")]
    Busy,
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
    #[error("the database schema is version {found}, newer than this ticketgate ({known})")]
    TooNew { found: i64, known: i64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                StoreError::Busy
            }
            e => StoreError::Sqlite(e),
        }
    }
}

impl StoreError {
    /// Worth retrying later (MTA pipes answer EX_TEMPFAIL on these).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy | StoreError::Io(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A pool of connections to one database file.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept open when idle.
const POOL_SIZE: usize = 8;

impl Db {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db> {
        Db::open_with_timeout(path, Duration::from_secs(10))
    }

    /// [`Db::open`] with how long writers wait for the lock.
    pub fn open_with_timeout(path: &Path, busy_timeout: Duration) -> Result<Db> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = connect(path, busy_timeout)?;
        schema::migrate(&mut conn)?;
        let inner = Inner { path: path.to_path_buf(), busy_timeout, idle: Mutex::new(vec![conn]) };
        Ok(Db { inner: Arc::new(inner) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Another pool on the same database whose connections wait up to
    /// `busy_timeout` for the lock: a writer that must not give up (or be
    /// starved by the others' retries) gets its own.
    pub fn with_busy_timeout(&self, busy_timeout: Duration) -> Db {
        let inner = Inner { path: self.inner.path.clone(), busy_timeout, idle: Mutex::new(Vec::new()) };
        Db { inner: Arc::new(inner) }
    }

    /// Runs `f` on a pooled connection (blocking).
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => connect(&self.inner.path, self.inner.busy_timeout)?,
        };
        let out = f(&mut conn);
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` in one immediate (write-locking) transaction, committed when
    /// `f` returns Ok and rolled back otherwise.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            Ok((|| {
                let out = f(&tx)?;
                tx.commit().map_err(StoreError::from)?;
                Ok(out)
            })())
        })?
    }

    /// Whether the database answers: a new read-only connection (a pooled
    /// one would go on answering from a file deleted underneath it) reads the
    /// schema. Blocking; waits at most `timeout` for a lock.
    pub fn ping(&self, timeout: Duration) -> Result<()> {
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(timeout)?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Writes a consistent copy of the database to `dest` (`VACUUM INTO`: one
    /// read transaction, so writers carry on meanwhile), durably, replacing
    /// any file there. Blocking.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let tmp = crate::durable::temp_beside(dest);
        let _ = std::fs::remove_file(&tmp);
        let name = tmp.to_str().ok_or_else(|| StoreError::Conflict(format!("{} is not UTF-8", tmp.display())))?;
        let copied = self.with(|c| Ok(c.execute("VACUUM INTO ?1", [name])?)).and_then(|_| {
            crate::durable::commit(&tmp, dest)?;
            Ok(())
        });
        if copied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        copied
    }

    /// [`Db::with`] on a blocking thread, for async callers.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e))))
    }
}

fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    // rusqlite keeps 16 prepared statements by default; one message uses
    // more than that, and re-preparing them cost a tenth of the pipeline.
    conn.set_prepared_statement_cache_capacity(128);
    enter_wal(&conn, busy_timeout)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )?;
    Ok(conn)
}

/// Switches the file to WAL (a no-op once it is). The switch needs the file
/// to itself, and SQLite answers it with SQLITE_BUSY at once, without the
/// busy handler, while another connection is in the file (two processes
/// opening a new database together): it is retried until `busy_timeout`, as
/// a write would wait for the lock.
fn enter_wal(conn: &Connection, busy_timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match conn.execute_batch("PRAGMA journal_mode = WAL;").map_err(StoreError::from) {
            Err(StoreError::Busy) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh database in a temp dir that lives as long as the returned guard.
    pub fn db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Db::open(&dir.path().join("t.sqlite")).unwrap(), dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_rolls_back_on_error() {
        let (db, _d) = testing::db();
        let r: Result<()> = db.write(|tx| {
            tx.execute("INSERT INTO teams(name, created_at) VALUES ('a', 0)", [])?;
            Err(StoreError::Conflict("stop".into()))
        });
        assert!(r.is_err());
        let n: i64 = db.with(|c| Ok(c.query_row("SELECT count(*) FROM teams", [], |r| r.get(0))?)).unwrap();
        assert_eq!(n, 0);
        let mode: String = db.with(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?)).unwrap();
        assert_eq!(mode, "wal");
    }
}
