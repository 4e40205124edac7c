//! The outbox: mails written in the same transaction as the ticket change
//! that caused them, delivered later by `outbound`. A row is queued as a
//! draft (what the mail says, frozen at the event); the worker renders it
//! when it sends it. Rows from before drafts hold the rendered message.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use crate::code::{OutboxKind, OutboxState};
use crate::id::TicketId;

pub struct NewMail<'a> {
    /// Our Message-ID, without brackets.
    pub message_id: &'a str,
    pub ticket_id: Option<TicketId>,
    pub kind: OutboxKind,
    pub recipient: &'a str,
    /// What the mail says, for the worker to render (`notify::draft`).
    pub draft: &'a str,
}

pub fn enqueue(c: &Connection, m: &NewMail, now: i64) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO outbox(message_id, ticket_id, kind, recipient, raw, draft, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, x'', ?5, ?6, ?6)",
    )?
    .execute(params![m.message_id, m.ticket_id, m.kind, m.recipient, m.draft, now])?;
    Ok(c.last_insert_rowid())
}

/// Our newest thread mail on `ticket` to `recipient` (Message-ID, no brackets).
pub fn latest_to(c: &Connection, ticket: TicketId, recipient: &str) -> Result<Option<String>> {
    Ok(c.prepare_cached(
        "SELECT message_id FROM outbox WHERE ticket_id = ?1 AND recipient = ?2 AND kind != ?3
         ORDER BY id DESC LIMIT 1",
    )?
    .query_row(params![ticket, recipient, OutboxKind::Notice], |r| r.get(0))
    .optional()?)
}

/// The kind of our newest mail on `ticket`, leaving out notices and the kinds in `skip`.
pub fn latest_kind(c: &Connection, ticket: TicketId, skip: OutboxKind) -> Result<Option<OutboxKind>> {
    Ok(c.prepare_cached(
        "SELECT kind FROM outbox WHERE ticket_id = ?1 AND kind NOT IN (?2, ?3) ORDER BY id DESC LIMIT 1",
    )?
    .query_row(params![ticket, OutboxKind::Notice, skip], |r| r.get(0))
    .optional()?)
}

/// How much mail waits for delivery, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub count: i64,
    /// When the oldest waiting mail was queued.
    pub oldest_created_at: Option<i64>,
}

pub fn pending_depth(c: &Connection) -> Result<Depth> {
    Ok(c.prepare_cached("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'")?
        .query_row([], |r| Ok(Depth { count: r.get(0)?, oldest_created_at: r.get(1)? }))?)
}

/// Whom outbox row `id` went to: (ticket, recipient, Message-ID).
pub fn addressed(c: &Connection, id: i64) -> Result<Option<(Option<TicketId>, String, String)>> {
    Ok(c.prepare_cached("SELECT ticket_id, recipient, message_id FROM outbox WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// A mail that is due for an attempt; the message itself is read with
/// [`stored`] when it is sent.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub message_id: String,
    pub ticket_id: Option<TicketId>,
    pub recipient: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// Pending mails whose next attempt is due, oldest due first.
pub fn due(c: &Connection, now: i64, limit: usize) -> Result<Vec<Due>> {
    // `'pending'` is written out (it is `OutboxState::Pending`): SQLite uses the
    // partial index `outbox_due` only for a literal that matches its WHERE clause.
    let mut st = c.prepare_cached(
        "SELECT id, message_id, ticket_id, recipient, attempts, created_at FROM outbox
         WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
    )?;
    let rows = st.query_map(params![now, limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            message_id: r.get(1)?,
            ticket_id: r.get(2)?,
            recipient: r.get(3)?,
            attempts: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The server accepted the mail.
pub fn mark_sent(c: &Connection, id: i64, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE outbox SET state = ?3, attempts = attempts + 1, sent_at = ?2, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, now, OutboxState::Sent])?;
    Ok(())
}

/// A temporary failure: try again at `next_at`.
pub fn mark_retry(c: &Connection, id: i64, next_at: i64, error: &str) -> Result<()> {
    c.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
         WHERE id = ?1 AND state = ?4",
    )?
    .execute(params![id, next_at, error, OutboxState::Pending])?;
    Ok(())
}

/// A permanent failure, or the retry deadline passed: no more attempts.
pub fn mark_failed(c: &Connection, id: i64, error: &str) -> Result<()> {
    c.prepare_cached(
        "UPDATE outbox SET state = ?3, attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND state = ?4",
    )?
    .execute(params![id, error, OutboxState::Failed, OutboxState::Pending])?;
    Ok(())
}

/// Puts failed and waiting mails (one, or all with `None`) back in line for
/// an attempt at `now`; returns how many. Sent mail is never sent again.
pub fn retry(c: &Connection, id: Option<i64>, now: i64) -> Result<usize> {
    Ok(c.execute(
        "UPDATE outbox SET state = ?3, next_attempt_at = ?2
         WHERE state != ?4 AND (?1 IS NULL OR id = ?1)",
        params![id, now, OutboxState::Pending, OutboxState::Sent],
    )?)
}

/// One outbox row, without the message, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub message_id: String,
    pub ticket_id: Option<TicketId>,
    pub kind: OutboxKind,
    pub recipient: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// The newest `limit` rows, newest first.
pub fn list(c: &Connection, limit: i64) -> Result<Vec<Entry>> {
    let mut st = c.prepare(
        "SELECT id, message_id, ticket_id, kind, recipient, state, attempts, next_attempt_at, last_error,
                created_at, sent_at
         FROM outbox ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |r| {
        Ok(Entry {
            id: r.get(0)?,
            message_id: r.get(1)?,
            ticket_id: r.get(2)?,
            kind: r.get(3)?,
            recipient: r.get(4)?,
            state: r.get(5)?,
            attempts: r.get(6)?,
            next_attempt_at: r.get(7)?,
            last_error: r.get(8)?,
            created_at: r.get(9)?,
            sent_at: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What one row holds of its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// What the mail says, to be rendered (JSON of `notify::draft::Draft`).
    Draft(String),
    /// The rendered message (rows queued before drafts).
    Raw(Vec<u8>),
}

/// The mail of one row.
pub fn stored(c: &Connection, id: i64) -> Result<Stored> {
    Ok(c.prepare_cached("SELECT draft, raw FROM outbox WHERE id = ?1")?.query_row([id], |r| {
        Ok(match r.get::<_, Option<String>>(0)? {
            Some(draft) => Stored::Draft(draft),
            None => Stored::Raw(r.get(1)?),
        })
    })?)
}
