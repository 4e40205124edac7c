//! What the inbound side remembers: which messages were handled (so a
//! re-delivery changes nothing), the quarantine with its reasons, and the
//! per-address rate limit for notices.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::code::QuarantineReason;
use crate::id::QuarantineId;
use crate::id::TicketId;

/// An earlier handling of the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub outcome: String,
    pub ticket_id: Option<TicketId>,
}

pub fn seen(c: &Connection, key: &str) -> Result<Option<Seen>> {
    Ok(c.prepare_cached("SELECT outcome, ticket_id FROM processed WHERE key = ?1")?
        .query_row([key], |r| Ok(Seen { outcome: r.get(0)?, ticket_id: r.get(1)? }))
        .optional()?)
}

pub fn mark_processed(c: &Connection, key: &str, outcome: &str, ticket: Option<TicketId>, now: i64) -> Result<()> {
    c.prepare_cached("INSERT OR IGNORE INTO processed(key, outcome, ticket_id, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![key, outcome, ticket, now])?;
    Ok(())
}

pub struct Quarantined<'a> {
    pub reason: QuarantineReason,
    pub detail: &'a str,
    pub source: &'a str,
    /// The message's key in `processed`.
    pub key: &'a str,
    pub message_id: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// The whole message, or only its header section when `raw_path` holds it.
    pub raw: &'a [u8],
    /// A file with the whole message, for one too large for the database.
    pub raw_path: Option<&'a str>,
}

pub fn quarantine(c: &Connection, q: &Quarantined, now: i64) -> Result<QuarantineId> {
    c.prepare_cached(
        "INSERT INTO quarantine(reason, detail, source, message_id, sender, subject, raw, created_at, dedup_key, raw_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![q.reason, q.detail, q.source, q.message_id, q.sender, q.subject, q.raw, now, q.key, q.raw_path])?;
    Ok(QuarantineId(c.last_insert_rowid()))
}

/// The quarantine entry (id, reason) of the message with `key`, if it was quarantined.
pub fn quarantined_as(c: &Connection, key: &str) -> Result<Option<(QuarantineId, QuarantineReason)>> {
    Ok(c.prepare_cached("SELECT id, reason FROM quarantine WHERE dedup_key = ?1 ORDER BY id LIMIT 1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A quarantine entry as a person sees it.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    pub id: QuarantineId,
    pub reason: QuarantineReason,
    pub detail: String,
    pub source: String,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub created_at: i64,
    /// The message's key in `processed`.
    pub key: Option<String>,
    /// Where the whole message is kept when `raw` holds only its header.
    pub raw_path: Option<String>,
    /// Bytes in the database (the header only, when `raw_path` is set).
    pub stored_bytes: i64,
    /// What the sender was told: `sent to ADDRESS`, or `not sent: why`.
    pub notice: Option<String>,
    /// `None` while it waits for a person; what they did otherwise.
    pub resolution: Option<Resolution>,
}

/// What a person did with a quarantine entry, who and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub what: String,
    pub by: String,
    pub at: i64,
}

const ENTRY_COLUMNS: &str = "id, reason, detail, source, message_id, sender, subject, created_at, dedup_key, raw_path, \
                             length(raw), notice, resolution, resolved_by, resolved_at";

fn entry_row(r: &rusqlite::Row) -> rusqlite::Result<QuarantineEntry> {
    let what: Option<String> = r.get(12)?;
    let resolution = match what {
        Some(what) => {
            Some(Resolution { what, by: r.get::<_, Option<String>>(13)?.unwrap_or_default(), at: r.get(14)? })
        }
        None => None,
    };
    Ok(QuarantineEntry {
        id: r.get(0)?,
        reason: r.get(1)?,
        detail: r.get(2)?,
        source: r.get(3)?,
        message_id: r.get(4)?,
        sender: r.get(5)?,
        subject: r.get(6)?,
        created_at: r.get(7)?,
        key: r.get(8)?,
        raw_path: r.get(9)?,
        stored_bytes: r.get(10)?,
        notice: r.get(11)?,
        resolution,
    })
}

/// The newest entries still waiting for a person.
pub fn quarantined(c: &Connection, limit: i64) -> Result<Vec<QuarantineEntry>> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine WHERE resolution IS NULL ORDER BY id DESC LIMIT ?1");
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([limit], entry_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One entry, waiting or resolved.
pub fn entry(c: &Connection, id: QuarantineId) -> Result<QuarantineEntry> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM quarantine WHERE id = ?1");
    Ok(c.query_row(&sql, [id], entry_row)?)
}

/// The stored bytes of an entry: the whole message, or its header when `raw_path` holds it.
pub fn raw(c: &Connection, id: QuarantineId) -> Result<Vec<u8>> {
    Ok(c.query_row("SELECT raw FROM quarantine WHERE id = ?1", [id], |r| r.get(0))?)
}

/// Records what the sender of entry `id` was told.
pub fn set_notice(c: &Connection, id: QuarantineId, notice: &str) -> Result<()> {
    c.execute("UPDATE quarantine SET notice = ?2 WHERE id = ?1", params![id, notice])?;
    Ok(())
}

/// Records what a person did with a waiting entry; `false` when it was
/// resolved already (so a message is released at most once). A deleted
/// entry keeps only its headers' summary: the message itself is dropped.
pub fn resolve(c: &Connection, id: QuarantineId, what: &str, by: &str, now: i64, drop_message: bool) -> Result<bool> {
    let changed = c.execute(
        "UPDATE quarantine SET resolution = ?2, resolved_by = ?3, resolved_at = ?4,
                raw = CASE WHEN ?5 THEN x'' ELSE raw END
         WHERE id = ?1 AND resolution IS NULL",
        params![id, what, by, now, drop_message],
    )?;
    Ok(changed == 1)
}

/// Records a released message's new outcome, so a re-delivery is a duplicate of it.
pub fn set_outcome(c: &Connection, key: &str, outcome: &str, ticket: Option<TicketId>) -> Result<()> {
    c.execute("UPDATE processed SET outcome = ?2, ticket_id = ?3 WHERE key = ?1", params![key, outcome, ticket])?;
    Ok(())
}

/// Removes the entries that arrived at `before` or earlier; returns how many, and
/// the files (`raw_path`) they kept, for the caller to remove once committed.
pub fn purge(c: &Connection, before: i64) -> Result<(usize, Vec<String>)> {
    let mut st = c.prepare("DELETE FROM quarantine WHERE created_at <= ?1 RETURNING raw_path")?;
    let rows = st.query_map([before], |r| r.get::<_, Option<String>>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows.len(), rows.into_iter().flatten().collect()))
}

/// Whether a waiting entry still keeps its message in the file `path`.
pub fn file_waiting(c: &Connection, path: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM quarantine WHERE raw_path = ?1 AND resolution IS NULL)",
        [path],
        |r| r.get(0),
    )?)
}

/// Whether a notice may go to `address` now; if so, records it. At most one
/// notice per address per `interval` seconds, so two auto-responders (or a
/// forged sender) cannot make us a mail cannon.
pub fn take_notice_slot(c: &Connection, address: &str, now: i64, interval: i64) -> Result<bool> {
    let last: Option<i64> =
        c.query_row("SELECT last_at FROM notices WHERE address = ?1", [address], |r| r.get(0)).optional()?;
    if last.is_some_and(|t| now - t < interval) {
        return Ok(false);
    }
    c.execute("INSERT OR REPLACE INTO notices(address, last_at) VALUES (?1, ?2)", params![address, now])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[test]
    fn notices_are_rate_limited_per_address() {
        let (db, _d) = testing::db();
        db.with(|c| {
            assert!(take_notice_slot(c, "a@x", 1000, 3600)?);
            assert!(!take_notice_slot(c, "a@x", 2000, 3600)?);
            assert!(take_notice_slot(c, "b@x", 2000, 3600)?);
            assert!(take_notice_slot(c, "a@x", 4601, 3600)?);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn processed_keys_are_remembered() {
        let (db, _d) = testing::db();
        db.with(|c| {
            assert_eq!(seen(c, "mid:x")?, None);
            mark_processed(c, "mid:x", "posted", None, 1)?;
            mark_processed(c, "mid:x", "other", None, 2)?;
            assert_eq!(seen(c, "mid:x")?.unwrap().outcome, "posted");
            Ok(())
        })
        .unwrap();
    }
}
