//! Tickets, their messages, attachments and notes, and the full-text indexes
//! that follow them: one `search` row per subject, message body, internal
//! reference and attachment name, indexed twice under the same rowid, by
//! word (`search`) and by trigram (`search_trigram`, for substrings in any
//! script).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Result;
use crate::code::{EventKind, Refusal};
use crate::id::{MessageId, TeamId, TicketId, UserId};
use crate::lifecycle::{Event, Role, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub team_id: TeamId,
    pub opener_id: UserId,
    pub subject: String,
    pub status: Status,
    pub source: String,
    pub internal_ref: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const TICKET_COLUMNS: &str =
    "t.id, t.team_id, t.opener_id, t.subject, t.status, t.source, t.internal_ref, t.created_at, t.updated_at";

pub fn ticket_row(r: &Row) -> rusqlite::Result<Ticket> {
    let status: String = r.get(4)?;
    Ok(Ticket {
        id: r.get(0)?,
        team_id: r.get(1)?,
        opener_id: r.get(2)?,
        subject: r.get(3)?,
        status: Status::parse(&status).unwrap_or(Status::WaitingForSupport),
        source: r.get(5)?,
        internal_ref: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// How a message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Mail,
    Web,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Mail => "mail",
            Via::Web => "web",
        }
    }
}

pub fn create(c: &Connection, team: TeamId, opener: UserId, subject: &str, source: &str, now: i64) -> Result<TicketId> {
    c.prepare_cached(
        "INSERT INTO tickets(team_id, opener_id, subject, status, source, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![team, opener, subject, Status::WaitingForSupport.as_str(), source, now])?;
    let id = TicketId(c.last_insert_rowid());
    index_text(c, id, "subject", subject)?;
    Ok(id)
}

pub fn get(c: &Connection, id: TicketId) -> Result<Ticket> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = ?1");
    Ok(c.prepare_cached(&sql)?.query_row([id], ticket_row)?)
}

/// Sets the status and moves `last updated`.
pub fn set_status(c: &Connection, id: TicketId, status: Status, now: i64) -> Result<()> {
    c.prepare_cached("UPDATE tickets SET status = ?2, updated_at = max(updated_at, ?3) WHERE id = ?1")?
        .execute(params![id, status.as_str(), now])?;
    Ok(())
}

/// Sets the internal reference. `last updated` stays: a bookkeeping change
/// must not bring a ticket to the top of everyone's list.
pub fn set_internal_ref(c: &Connection, id: TicketId, reference: &str) -> Result<()> {
    c.execute("UPDATE tickets SET internal_ref = ?2 WHERE id = ?1", params![id, reference])?;
    let (lo, hi) = search_rows(id);
    for table in ["search", "search_trigram"] {
        c.execute(
            &format!("DELETE FROM {table} WHERE rowid >= ?1 AND rowid < ?2 AND kind = 'reference'"),
            params![lo, hi],
        )?;
    }
    index_text(c, id, "reference", reference)
}

/// Bits of a full-text rowid that number the texts within one ticket.
pub const SEARCH_ROW_BITS: u32 = 24;

/// The rowid range `[lo, hi)` of a ticket's full-text rows.
fn search_rows(TicketId(ticket): TicketId) -> (i64, i64) {
    (ticket << SEARCH_ROW_BITS, (ticket + 1) << SEARCH_ROW_BITS)
}

/// Adds a text (`subject`, `message`, `reference`, `attachment`) to both full-text indexes.
/// Rows are numbered `ticket << 24 | n`, so a search learns the ticket from
/// the rowid alone, without reading the stored text, and a ticket's rows
/// are one rowid range.
pub fn index_text(c: &Connection, ticket: TicketId, kind: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let (lo, hi) = search_rows(ticket);
    let last: Option<i64> = c
        .prepare_cached("SELECT rowid FROM search WHERE rowid >= ?1 AND rowid < ?2 ORDER BY rowid DESC LIMIT 1")?
        .query_row(params![lo, hi], |r| r.get(0))
        .optional()?;
    let next = last.map_or(lo, |n| n + 1);
    if next >= hi {
        return Err(super::StoreError::Conflict(format!("ticket {ticket} has too many texts to index")));
    }
    c.prepare_cached("INSERT INTO search(rowid, text, kind) VALUES (?1, ?2, ?3)")?
        .execute(params![next, text, kind])?;
    c.prepare_cached("INSERT INTO search_trigram(rowid, text, kind) VALUES (?1, ?2, ?3)")?
        .execute(params![next, text, kind])?;
    Ok(())
}

pub struct NewMessage<'a> {
    pub ticket_id: TicketId,
    pub author_id: Option<UserId>,
    pub author_role: Role,
    pub via: Via,
    pub event: Event,
    pub body: &'a str,
    /// What trimming took from a mail's text; empty for web posts.
    pub quoted: &'a str,
    pub message_id: Option<&'a str>,
    pub raw: Option<&'a [u8]>,
}

pub fn add_message(c: &Connection, m: &NewMessage, now: i64) -> Result<MessageId> {
    c.prepare_cached(
        "INSERT INTO messages(ticket_id, author_id, author_role, via, event, body, message_id, raw, created_at, quoted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        m.ticket_id,
        m.author_id,
        m.author_role.as_str(),
        m.via.as_str(),
        m.event.as_str(),
        m.body,
        m.message_id,
        m.raw,
        now,
        m.quoted
    ])?;
    let id = MessageId(c.last_insert_rowid());
    index_text(c, m.ticket_id, "message", m.body)?;
    Ok(id)
}

/// Dates a stored message `at` (a released quarantined mail keeps the time it arrived).
pub fn set_message_date(c: &Connection, message: MessageId, at: i64) -> Result<()> {
    c.prepare_cached("UPDATE messages SET created_at = ?2 WHERE id = ?1")?.execute(params![message, at])?;
    Ok(())
}

/// Marks a stored message as posted without evidence of its sender.
pub fn set_unverified(c: &Connection, message: MessageId) -> Result<()> {
    c.prepare_cached("UPDATE messages SET unverified = 1 WHERE id = ?1")?.execute([message])?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub ticket_id: TicketId,
    pub author_id: Option<UserId>,
    pub author_role: String,
    pub via: String,
    pub event: String,
    pub body: String,
    pub message_id: Option<String>,
    pub created_at: i64,
    /// Mail posted without evidence that its author sent it.
    pub unverified: bool,
    /// What trimming took from the mail, shown folded under the body.
    pub quoted: String,
}

const MESSAGE_COLUMNS: &str =
    "id, ticket_id, author_id, author_role, via, event, body, message_id, created_at, unverified, quoted";

fn message_row(r: &Row) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        author_id: r.get(2)?,
        author_role: r.get(3)?,
        via: r.get(4)?,
        event: r.get(5)?,
        body: r.get(6)?,
        message_id: r.get(7)?,
        created_at: r.get(8)?,
        unverified: r.get(9)?,
        quoted: r.get(10)?,
    })
}

pub fn messages(c: &Connection, ticket: TicketId) -> Result<Vec<Message>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE ticket_id = ?1 ORDER BY id");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([ticket], message_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One message of a ticket.
pub fn message(c: &Connection, ticket: TicketId, id: MessageId) -> Result<Message> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1 AND ticket_id = ?2");
    Ok(c.prepare_cached(&sql)?.query_row(params![id, ticket], message_row)?)
}

/// The id of a ticket's newest message.
pub fn latest_message_id(c: &Connection, ticket: TicketId) -> Result<Option<MessageId>> {
    Ok(c.prepare_cached("SELECT max(id) FROM messages WHERE ticket_id = ?1")?.query_row([ticket], |r| r.get(0))?)
}

/// The original raw message of a stored mail message.
pub fn raw_message(c: &Connection, message: MessageId) -> Result<Option<Vec<u8>>> {
    Ok(c.query_row("SELECT raw FROM messages WHERE id = ?1", [message], |r| r.get(0))?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: i64,
    pub ticket_id: TicketId,
    pub message_id: Option<MessageId>,
    pub filename: String,
    pub size: i64,
    pub detected: Option<String>,
    pub sha256: Option<String>,
    /// The refusal reason code; `None` when accepted.
    pub refused: Option<Refusal>,
    pub created_at: i64,
}

pub struct NewAttachment<'a> {
    pub ticket_id: TicketId,
    pub message_id: Option<MessageId>,
    pub filename: &'a str,
    pub size: u64,
    pub detected: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub refused: Option<Refusal>,
}

pub fn add_attachment(c: &Connection, a: &NewAttachment, now: i64) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO attachments(ticket_id, message_id, filename, size, detected, sha256, refused, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        a.ticket_id,
        a.message_id,
        a.filename,
        a.size as i64,
        a.detected,
        a.sha256,
        a.refused,
        now
    ])?;
    let id = c.last_insert_rowid();
    // Refused files are named on the ticket too, so their names find it.
    index_text(c, a.ticket_id, "attachment", a.filename)?;
    Ok(id)
}

pub fn attachments(c: &Connection, ticket: TicketId) -> Result<Vec<Attachment>> {
    let mut st = c.prepare_cached(
        "SELECT id, ticket_id, message_id, filename, size, detected, sha256, refused, created_at
         FROM attachments WHERE ticket_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([ticket], attachment_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn attachment(c: &Connection, id: i64) -> Result<Attachment> {
    Ok(c.query_row(
        "SELECT id, ticket_id, message_id, filename, size, detected, sha256, refused, created_at
         FROM attachments WHERE id = ?1",
        [id],
        attachment_row,
    )?)
}

fn attachment_row(r: &Row) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        message_id: r.get(2)?,
        filename: r.get(3)?,
        size: r.get(4)?,
        detected: r.get(5)?,
        sha256: r.get(6)?,
        refused: r.get(7)?,
        created_at: r.get(8)?,
    })
}

/// A note on the ticket that is not a message (refusal, delivery failure, bounce).
pub fn add_event(c: &Connection, ticket: TicketId, kind: EventKind, detail: &str, now: i64) -> Result<()> {
    c.prepare_cached("INSERT INTO ticket_events(ticket_id, kind, detail, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ticket, kind, detail, now])?;
    Ok(())
}

/// Records who closed or reopened the ticket (an [`EventKind::is_status_change`] kind),
/// after the newest message: its place in the thread, whatever the clocks say.
pub fn add_status_change(c: &Connection, ticket: TicketId, kind: EventKind, actor: UserId, now: i64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO ticket_events(ticket_id, kind, detail, created_at, actor_id, after_message_id)
         VALUES (?1, ?2, '', ?3, ?4, (SELECT max(id) FROM messages WHERE ticket_id = ?1))",
    )?
    .execute(params![ticket, kind, now, actor])?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: i64,
    pub kind: EventKind,
    pub detail: String,
    /// Who did it, for status changes.
    pub actor_id: Option<UserId>,
    /// For status changes: the newest message when it happened.
    pub after_message: Option<MessageId>,
    pub created_at: i64,
}

pub fn events(c: &Connection, ticket: TicketId) -> Result<Vec<Note>> {
    let mut st = c.prepare_cached(
        "SELECT id, kind, detail, actor_id, after_message_id, created_at FROM ticket_events
         WHERE ticket_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([ticket], |r| {
        Ok(Note {
            id: r.get(0)?,
            kind: r.get(1)?,
            detail: r.get(2)?,
            actor_id: r.get(3)?,
            after_message: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The ticket that one of `ids` (Message-IDs, no brackets) belongs to: a
/// message we stored or a notification we sent. The newest reference wins.
pub fn by_message_ids(c: &Connection, ids: &[String]) -> Result<Option<TicketId>> {
    let mut in_messages = c.prepare_cached("SELECT ticket_id FROM messages WHERE message_id = ?1 LIMIT 1")?;
    let mut in_outbox =
        c.prepare_cached("SELECT ticket_id FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL")?;
    for id in ids.iter().rev() {
        if let Some(t) = in_outbox.query_row([id], |r| r.get(0)).optional()? {
            return Ok(Some(t));
        }
        if let Some(t) = in_messages.query_row([id], |r| r.get(0)).optional()? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Whether `user` opened or wrote on the ticket.
pub fn is_participant(c: &Connection, ticket: TicketId, user: UserId) -> Result<bool> {
    Ok(c.prepare_cached(PARTICIPANT)?.query_row(params![ticket, user], |r| r.get(0))?)
}

const PARTICIPANT: &str = "SELECT EXISTS(SELECT 1 FROM tickets WHERE id = ?1 AND opener_id = ?2)
                               OR EXISTS(SELECT 1 FROM messages WHERE ticket_id = ?1 AND author_id = ?2)";

/// The Message-IDs of a ticket's thread as `recipient` has seen it, oldest
/// first, for `References`: the ticket's stored messages and our
/// notifications to that recipient, never another recipient's (a Message-ID
/// of someone else's mail would let a reader forge reports about it).
pub fn thread_message_ids(c: &Connection, ticket: TicketId, recipient: &str) -> Result<Vec<String>> {
    let mut st = c.prepare_cached(
        "SELECT message_id FROM (
             SELECT message_id, created_at, 0 AS o, id FROM messages WHERE ticket_id = ?1 AND message_id IS NOT NULL
             UNION ALL
             SELECT message_id, created_at, 1 AS o, id FROM outbox
             WHERE ticket_id = ?1 AND recipient = ?2 AND kind != 'notice')
         ORDER BY created_at, o, id",
    )?;
    let rows = st.query_map(params![ticket, recipient], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, testing, users};

    /// The question is asked for every tagged reply, so its cost must not grow
    /// with how much the user wrote elsewhere (a staff agent writes on every ticket).
    #[test]
    fn is_participant_reads_a_few_rows_however_much_the_user_wrote() {
        let (db, _d) = testing::db();
        let (busy, quiet, staff) = db
            .write(|tx| {
                let team = users::create_team(tx, "Acme", 0)?;
                let user =
                    |email, role, team| users::NewUser { email, name: "", role, team_id: team, password_hash: None };
                let opener = users::create_user(tx, &user("jane@acme.test", Role::Member, Some(team)), 0)?;
                let staff = users::create_user(tx, &user("agent@support.test", Role::Staff, None), 0)?;
                let (busy, quiet) =
                    (create(tx, team, opener, "busy", "", 0)?, create(tx, team, opener, "quiet", "", 0)?);
                for (ticket, n) in [(busy, 2_000), (quiet, 1)] {
                    for _ in 0..n {
                        let m = NewMessage {
                            ticket_id: ticket,
                            author_id: Some(staff),
                            author_role: Role::Staff,
                            via: Via::Web,
                            event: Event::StaffResponded,
                            body: "On it.",
                            quoted: "",
                            message_id: None,
                            raw: None,
                        };
                        add_message(tx, &m, 0)?;
                    }
                }
                Ok::<_, StoreError>((busy, quiet, staff))
            })
            .unwrap();
        db.with(|c| {
            assert!(is_participant(c, quiet, staff)?);
            assert!(is_participant(c, busy, staff)?);
            let steps = c.prepare_cached(PARTICIPANT)?.get_status(rusqlite::StatementStatus::VmStep);
            assert!(steps < 500, "{steps} VM steps for two questions");
            Ok(())
        })
        .unwrap();
    }
}
