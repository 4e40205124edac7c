//! Ticket actions shared by the mail pipeline and the web portal: open,
//! reply, close, attach, set the internal reference. Each runs inside the
//! caller's transaction, moves the status through
//! [`lifecycle::transition`](crate::lifecycle::transition), stores the
//! message and its attachments, and queues the notifications, so a web Send
//! and a mailed reply can never behave differently.
//!
//! One action is one notification round: a post that also closes the ticket
//! ("Send and close", staff `#close` with text) is told as a close carrying
//! the message, so nobody gets a second mail for the same click. Setting the
//! internal reference tells nobody (README "Notification rules").
//!
//! Accepted attachments are written to the blob store (fsynced) before the
//! row that names them, so a committed row never points at a missing file. A
//! rolled-back transaction can leave an unreferenced blob behind; that is
//! harmless (content-addressed, never served without a row).

use rusqlite::Connection;

use crate::code::EventKind;
use crate::config::Config;
use crate::header::{clean_subject, generate_message_id};
use crate::id::{MessageId, TeamId};
use crate::lifecycle::{Event, Role, Status, transition};
use crate::notify::{self, Notifier};
use crate::policy::attachments::Checked;
use crate::signing::Keyring;
use crate::store::tickets::{self, NewAttachment, NewMessage, Ticket, Via};
use crate::store::users::User;
use crate::store::{Blobs, Result};

/// What every action needs besides the transaction.
pub struct Env<'a> {
    pub config: &'a Config,
    pub keys: &'a Keyring,
    pub blobs: &'a Blobs,
    pub now: i64,
}

impl Env<'_> {
    fn notifier(&self) -> Notifier<'_> {
        Notifier { config: self.config, keys: self.keys, now: self.now }
    }
}

/// An attachment that went through [`crate::policy::attachments::check`], with its content.
pub struct Upload<'a> {
    pub checked: Checked,
    pub bytes: &'a [u8],
}

/// A message someone writes on a ticket.
pub struct Post<'a> {
    pub author: &'a User,
    pub body: &'a str,
    /// What trimming took from a mail (see [`crate::parse::Parsed::quoted`]).
    pub quoted: &'a str,
    pub via: Via,
    /// The inbound mail's Message-ID; `None` for web posts (one is generated,
    /// so notifications about it can reference it).
    pub message_id: Option<&'a str>,
    /// The original message, for mail.
    pub raw: Option<&'a [u8]>,
    pub attachments: &'a [Upload<'a>],
    /// Mail without evidence that the author sent it (shown as "sender not verified").
    pub unverified: bool,
    /// The author closes the ticket with this post ("Send and close", staff `#close`).
    pub close: bool,
}

impl<'a> Post<'a> {
    /// What someone writes on the portal.
    pub fn web(author: &'a User, body: &'a str, attachments: &'a [Upload<'a>]) -> Post<'a> {
        let (quoted, message_id, raw) = ("", None, None);
        Post { author, body, quoted, via: Via::Web, message_id, raw, attachments, unverified: false, close: false }
    }
}

/// The result of a post.
#[derive(Debug, Clone)]
pub struct Posted {
    pub ticket: Ticket,
    pub message: MessageId,
    /// Attachments that were refused, with their reasons.
    pub refused: Vec<Checked>,
}

/// Opens a ticket for `team` with the post as its first message.
pub fn open(tx: &Connection, env: &Env, team: TeamId, subject: &str, source: &str, post: &Post) -> Result<Posted> {
    let subject = clean_subject(subject);
    let id = tickets::create(tx, team, post.author.id, &subject, source, env.now)?;
    let ticket = tickets::get(tx, id)?;
    // A new ticket is never closed in the same breath: its opener is acknowledged.
    write_post(tx, env, ticket, &Post { close: false, ..*post }, Event::Opened)
}

/// A reply on an existing ticket, from any status (a customer's reply
/// reopens a closed ticket as waiting for support); with `post.close`, the
/// reply closes it ("Send and close").
pub fn reply(tx: &Connection, env: &Env, ticket: Ticket, post: &Post) -> Result<Posted> {
    write_post(tx, env, ticket, post, Event::reply_by(post.author.role))
}

/// Closes a ticket without a message (web Close button, or staff `#close`
/// alone); a post that closes goes through [`reply`] or [`attach`].
pub fn close(tx: &Connection, env: &Env, ticket: Ticket, author: &User) -> Result<Ticket> {
    let ticket = apply(tx, env, ticket, Event::Closed, author)?;
    notify::ticket_event(tx, &env.notifier(), &ticket, None, Event::Closed, Some(author))?;
    Ok(ticket)
}

/// Sets the internal reference: the status and `last updated` stay, and
/// nobody is mailed (it is bookkeeping, not news for the customer).
pub fn set_reference(tx: &Connection, ticket: Ticket, reference: &str) -> Result<Ticket> {
    let reference = reference.trim();
    if reference == ticket.internal_ref {
        return Ok(ticket);
    }
    tickets::set_internal_ref(tx, ticket.id, reference)?;
    tickets::get(tx, ticket.id)
}

/// Adds the post's attachments without a message text (an update: the
/// status stays, unless the post closes); the post's body is not used.
pub fn attach(tx: &Connection, env: &Env, ticket: Ticket, post: &Post) -> Result<Posted> {
    let names: Vec<&str> = post.attachments.iter().map(|u| u.checked.filename.as_str()).collect();
    let body = format!("Attached: {}", names.join(", "));
    write_post(tx, env, ticket, &Post { body: &body, ..*post }, Event::Updated)
}

/// Moves the ticket's status through `event`, recording who closed or
/// reopened it for the thread.
fn apply(tx: &Connection, env: &Env, ticket: Ticket, event: Event, actor: &User) -> Result<Ticket> {
    let status = transition(Some(ticket.status), event).status;
    tickets::set_status(tx, ticket.id, status, env.now)?;
    let change = match (ticket.status == Status::Closed, status == Status::Closed) {
        (false, true) => Some(EventKind::Closed),
        (true, false) => Some(EventKind::Reopened),
        _ => None,
    };
    if let Some(kind) = change {
        tickets::add_status_change(tx, ticket.id, kind, actor.id, env.now)?;
    }
    tickets::get(tx, ticket.id)
}

fn write_post(tx: &Connection, env: &Env, ticket: Ticket, post: &Post, event: Event) -> Result<Posted> {
    let generated;
    let message_id = match post.message_id {
        Some(id) => id,
        None => {
            generated = generate_message_id(&env.config.support.address, "web");
            &generated
        }
    };
    let message = tickets::add_message(
        tx,
        &NewMessage {
            ticket_id: ticket.id,
            author_id: Some(post.author.id),
            author_role: post.author.role,
            via: post.via,
            event,
            body: post.body,
            quoted: post.quoted,
            message_id: Some(message_id),
            raw: post.raw,
        },
        env.now,
    )?;
    if post.unverified {
        tickets::set_unverified(tx, message)?;
    }
    let mut refused = Vec::new();
    for upload in post.attachments {
        let c = &upload.checked;
        let sha = if c.accepted { Some(env.blobs.put(upload.bytes)?) } else { None };
        tickets::add_attachment(
            tx,
            &NewAttachment {
                ticket_id: ticket.id,
                message_id: Some(message),
                filename: &c.filename,
                size: c.size,
                detected: c.detected.as_deref(),
                sha256: sha.as_deref(),
                refused: c.reason,
            },
            env.now,
        )?;
        if !c.accepted {
            refused.push(c.clone());
        }
    }
    // The message keeps what it is (a reply, an attachment); the ticket and
    // the one notification follow the close when the post closes.
    let outcome = if post.close { Event::Closed } else { event };
    let ticket = apply(tx, env, ticket, outcome, post.author)?;
    notify::ticket_event(tx, &env.notifier(), &ticket, Some(message), outcome, Some(post.author))?;
    Ok(Posted { ticket, message, refused })
}

/// Whether `user` may act on `ticket` (same team, or staff).
pub fn may_act(user: &User, ticket: &Ticket) -> bool {
    !user.disabled && crate::lifecycle::may_see(user.role, user.team_id, ticket.team_id)
}

/// The status a ticket would have after a reply by `role` (for display).
pub fn status_after_reply(current: Status, role: Role) -> Status {
    transition(Some(current), Event::reply_by(role)).status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;
    use crate::store::users::{self, NewUser};

    pub(crate) fn fixture(c: &Connection) -> (User, User, User) {
        let team = users::create_team(c, "Acme", 0).unwrap();
        let mk = |email: &str, role, team| {
            let id = users::create_user(c, &NewUser { email, name: "", role, team_id: team, password_hash: None }, 0)
                .unwrap();
            users::by_id(c, id).unwrap()
        };
        (
            mk("member@acme.test", Role::Member, Some(team)),
            mk("admin@acme.test", Role::Admin, Some(team)),
            mk("agent@support.test", Role::Staff, None),
        )
    }

    #[test]
    fn the_life_cycle_through_actions() {
        let (db, dir) = testing::db();
        let config = Config::default();
        let keys = Keyring::new(vec![vec![1; 32]]);
        let blobs = Blobs::new(dir.path().join("blobs"));
        db.write(|tx| {
            let (member, _admin, staff) = fixture(tx);
            let env = Env { config: &config, keys: &keys, blobs: &blobs, now: 100 };
            let post = |author, body| Post::web(author, body, &[]);
            let p = open(tx, &env, member.team_id.unwrap(), "  Printer\r\nBcc: x ", "web", &post(&member, "broken"))?;
            assert_eq!(p.ticket.subject, "Printer Bcc: x");
            assert_eq!(p.ticket.status, Status::WaitingForSupport);
            let env = Env { now: 200, ..env };
            let p = reply(tx, &env, p.ticket, &post(&staff, "try this"))?;
            assert_eq!(p.ticket.status, Status::WaitingForCustomer);
            assert_eq!(p.ticket.updated_at, 200);
            let t = close(tx, &env, p.ticket, &member)?;
            assert_eq!(t.status, Status::Closed);
            let t = set_reference(tx, t, "CRM-7")?;
            assert_eq!(t.status, Status::Closed, "an update keeps the status");
            let p = reply(tx, &env, t, &post(&member, "again"))?;
            assert_eq!(p.ticket.status, Status::WaitingForSupport, "a customer's reply reopens");
            assert_eq!(tickets::messages(tx, p.ticket.id)?.len(), 3);
            let changes: Vec<_> = tickets::events(tx, p.ticket.id)?.into_iter().map(|e| (e.kind, e.actor_id)).collect();
            assert_eq!(
                changes,
                [(EventKind::Closed, Some(member.id)), (EventKind::Reopened, Some(member.id))],
                "who closed and who reopened"
            );
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }
}
