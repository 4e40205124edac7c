//! The outbox: mails written in the same transaction as the ticket change
//! that caused them, delivered later by `outbound`.

use rusqlite::{Connection, params};

use super::Result;

pub struct NewMail<'a> {
    /// Our Message-ID, without brackets.
    pub message_id: &'a str,
    pub ticket_id: Option<i64>,
    pub kind: &'a str,
    pub recipient: &'a str,
    /// The rendered message, headers and body.
    pub raw: &'a [u8],
}

pub fn enqueue(c: &Connection, m: &NewMail, now: i64) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO outbox(message_id, ticket_id, kind, recipient, raw, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![m.message_id, m.ticket_id, m.kind, m.recipient, m.raw, now])?;
    Ok(c.last_insert_rowid())
}
