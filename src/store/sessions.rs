//! Portal sessions and the failed-login ledger. A session row is keyed by the
//! SHA-256 of the cookie value, so a copy of the database does not hand out
//! live cookies; the CSRF token lives beside it. Failed logins are counted
//! per key (`user:<email>`, `addr:<ip>`, and for password-reset requests
//! `reset:user:<email>`, `reset:addr:<ip>`) inside a sliding window. A draft
//! typed while a session ran out waits here for the session that logs in next.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::id::UserId;

/// A live session: who, and the CSRF token their forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub csrf: String,
    pub expires_at: i64,
}

pub fn create(c: &Connection, id_hash: &str, user_id: UserId, csrf: &str, now: i64, expires_at: i64) -> Result<()> {
    c.prepare_cached("INSERT INTO sessions(id, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![id_hash, user_id, csrf, now, expires_at])?;
    Ok(())
}

/// The session named by `id_hash` unless it has expired.
pub fn get(c: &Connection, id_hash: &str, now: i64) -> Result<Option<Session>> {
    Ok(c.prepare_cached("SELECT user_id, csrf, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2")?
        .query_row(params![id_hash, now], |r| {
            Ok(Session { user_id: r.get(0)?, csrf: r.get(1)?, expires_at: r.get(2)? })
        })
        .optional()?)
}

pub fn delete(c: &Connection, id_hash: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM sessions WHERE id = ?1")?.execute([id_hash])?;
    Ok(())
}

/// Drops expired sessions and failures older than `failures_before`.
pub fn purge(c: &Connection, now: i64, failures_before: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?.execute([now])?;
    c.prepare_cached("DELETE FROM login_failures WHERE at < ?1")?.execute([failures_before])?;
    Ok(())
}

/// A typed text kept for session `id_hash`, until the page `path` shows it.
pub fn save_draft(c: &Connection, id_hash: &str, path: &str, subject: &str, body: &str, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT OR REPLACE INTO drafts(session, path, subject, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id_hash, path, subject, body, now])?;
    Ok(())
}

/// The draft (subject, body) kept for this session and page, removed as it is read.
pub fn take_draft(c: &Connection, id_hash: &str, path: &str) -> Result<Option<(String, String)>> {
    Ok(c.prepare_cached("DELETE FROM drafts WHERE session = ?1 AND path = ?2 RETURNING subject, body")?
        .query_row(params![id_hash, path], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Failed logins recorded under `key` since `since`.
pub fn failures_since(c: &Connection, key: &str, since: i64) -> Result<u32> {
    Ok(c.prepare_cached("SELECT count(*) FROM login_failures WHERE key = ?1 AND at >= ?2")?
        .query_row(params![key, since], |r| r.get(0))?)
}

/// Records an attempt under `key`; returns its row, for [`forget_failures`].
pub fn add_failure(c: &Connection, key: &str, now: i64) -> Result<i64> {
    c.prepare_cached("INSERT INTO login_failures(key, at) VALUES (?1, ?2)")?.execute(params![key, now])?;
    Ok(c.last_insert_rowid())
}

/// Takes back attempts recorded by [`add_failure`] (they succeeded).
pub fn forget_failures(c: &Connection, rows: &[i64]) -> Result<()> {
    let mut st = c.prepare_cached("DELETE FROM login_failures WHERE rowid = ?1")?;
    for row in rows {
        st.execute([row])?;
    }
    Ok(())
}

/// When the oldest failure under `key` since `since` happened.
pub fn oldest_failure_since(c: &Connection, key: &str, since: i64) -> Result<Option<i64>> {
    Ok(c.prepare_cached("SELECT min(at) FROM login_failures WHERE key = ?1 AND at >= ?2")?
        .query_row(params![key, since], |r| r.get(0))?)
}

/// How many seconds `key` must wait because it has `max` attempts in the
/// window of `window` seconds ending `now` (until the oldest leaves it), or
/// `None` when it may try.
pub fn limited(c: &Connection, key: &str, now: i64, window: i64, max: u32) -> Result<Option<i64>> {
    let since = now.saturating_sub(window);
    if failures_since(c, key, since)? < max {
        return Ok(None);
    }
    let oldest = oldest_failure_since(c, key, since)?.unwrap_or(now);
    Ok(Some((oldest + window - now).max(1)))
}

/// When the newest failure under `key` happened.
pub fn latest_failure(c: &Connection, key: &str) -> Result<Option<i64>> {
    Ok(c.prepare_cached("SELECT max(at) FROM login_failures WHERE key = ?1")?.query_row([key], |r| r.get(0))?)
}

/// Forgets the failures under `key` (after a successful login to that account).
pub fn clear_failures(c: &Connection, key: &str) -> Result<()> {
    c.prepare_cached("DELETE FROM login_failures WHERE key = ?1")?.execute([key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Role;
    use crate::store::testing;
    use crate::store::users::{self, NewUser};

    #[test]
    fn sessions_expire_and_failures_count_in_a_window() {
        let (db, _d) = testing::db();
        db.write(|c| {
            let u = users::create_user(
                c,
                &NewUser { email: "a@b.test", name: "", role: Role::Staff, team_id: None, password_hash: None },
                0,
            )?;
            create(c, "h1", u, "tok", 10, 100)?;
            assert_eq!(get(c, "h1", 50)?.map(|s| s.csrf), Some("tok".into()));
            assert_eq!(get(c, "h1", 100)?, None, "expired at expires_at");
            assert_eq!(get(c, "other", 50)?, None);
            for at in [5, 20, 30] {
                add_failure(c, "user:a@b.test", at)?;
            }
            assert_eq!(failures_since(c, "user:a@b.test", 10)?, 2);
            assert_eq!(failures_since(c, "addr:1.2.3.4", 0)?, 0);
            purge(c, 100, 25)?;
            assert_eq!(failures_since(c, "user:a@b.test", 0)?, 1);
            assert_eq!(get(c, "h1", 0)?, None, "purged");
            clear_failures(c, "user:a@b.test")?;
            assert_eq!(failures_since(c, "user:a@b.test", 0)?, 0);
            for at in [200, 210] {
                add_failure(c, "reset:addr:1.2.3.4", at)?;
            }
            assert_eq!(limited(c, "reset:addr:1.2.3.4", 220, 60, 3)?, None);
            assert_eq!(limited(c, "reset:addr:1.2.3.4", 220, 60, 2)?, Some(40), "until the oldest leaves the window");
            assert_eq!(limited(c, "reset:addr:1.2.3.4", 261, 60, 2)?, None);
            create(c, "h2", u, "tok", 300, 400)?;
            save_draft(c, "h2", "/t/1", "", "typed", 300)?;
            assert_eq!(take_draft(c, "h2", "/t/2")?, None, "another page");
            assert_eq!(take_draft(c, "h2", "/t/1")?, Some((String::new(), "typed".into())));
            assert_eq!(take_draft(c, "h2", "/t/1")?, None, "taken once");
            save_draft(c, "h2", "/new", "s", "b", 300)?;
            delete(c, "h2")?;
            assert_eq!(
                c.query_row("SELECT count(*) FROM drafts", [], |r| r.get::<_, i64>(0))?,
                0,
                "gone with the session"
            );
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }
}
