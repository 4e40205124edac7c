//! What the inbound side remembers: which messages were handled (so a
//! re-delivery changes nothing), the quarantine with its reasons, and the
//! per-address rate limit for notices.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// An earlier handling of the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub outcome: String,
    pub ticket_id: Option<i64>,
}

pub fn seen(c: &Connection, key: &str) -> Result<Option<Seen>> {
    Ok(c.prepare_cached("SELECT outcome, ticket_id FROM processed WHERE key = ?1")?
        .query_row([key], |r| Ok(Seen { outcome: r.get(0)?, ticket_id: r.get(1)? }))
        .optional()?)
}

pub fn mark_processed(c: &Connection, key: &str, outcome: &str, ticket: Option<i64>, now: i64) -> Result<()> {
    c.prepare_cached("INSERT OR IGNORE INTO processed(key, outcome, ticket_id, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![key, outcome, ticket, now])?;
    Ok(())
}

pub struct Quarantined<'a> {
    pub reason: &'a str,
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

pub fn quarantine(c: &Connection, q: &Quarantined, now: i64) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO quarantine(reason, detail, source, message_id, sender, subject, raw, created_at, dedup_key, raw_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![q.reason, q.detail, q.source, q.message_id, q.sender, q.subject, q.raw, now, q.key, q.raw_path])?;
    Ok(c.last_insert_rowid())
}

/// The quarantine entry (id, reason) of the message with `key`, if it was quarantined.
pub fn quarantined_as(c: &Connection, key: &str) -> Result<Option<(i64, String)>> {
    Ok(c.prepare_cached("SELECT id, reason FROM quarantine WHERE dedup_key = ?1 ORDER BY id LIMIT 1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    pub id: i64,
    pub reason: String,
    pub detail: String,
    pub source: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub created_at: i64,
}

pub fn quarantined(c: &Connection, limit: i64) -> Result<Vec<QuarantineEntry>> {
    let mut st = c.prepare(
        "SELECT id, reason, detail, source, sender, subject, created_at FROM quarantine ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |r| {
        Ok(QuarantineEntry {
            id: r.get(0)?,
            reason: r.get(1)?,
            detail: r.get(2)?,
            source: r.get(3)?,
            sender: r.get(4)?,
            subject: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
