//! NOTIFY: turns a ticket change into outbox rows, inside the caller's
//! transaction, so a committed change always has its mails queued and a
//! rolled-back one never does. Each row holds a [`draft`] of its mail (what
//! the text needs, frozen at the event) with its Message-ID fixed; the outbox
//! worker renders it when it sends it, outside the change's transaction.
//!
//! Decisions where SPEC.md is silent:
//! - One mail per recipient (never a shared To/Cc), because each carries the
//!   recipient's own signed Reply-To token and deep link.
//! - Subjects stay the same for the whole ticket (`[#N] subject`, with `Re: `
//!   on follow-ups): Gmail splits a conversation when the subject changes, so
//!   what happened is said in the first line of the body instead. Notices,
//!   which are not part of the thread, say what they are in the subject.
//! - Threading: `References` = the thread's root, the recipient's own newest
//!   mail on the ticket and the newest few ids, ending with the parent; only
//!   the ticket's stored messages and mail to that same recipient count (see
//!   [`tickets::thread_message_ids`]);
//!   `In-Reply-To` = the message being notified about (every stored message
//!   has a Message-ID, web posts get a generated one), else the recipient's
//!   own newest mail, else the thread's newest. `Thread-Topic` carries the
//!   ticket subject for Outlook; no `Thread-Index` is sent, because a made-up
//!   one that does not match Outlook's own chain splits conversations more
//!   often than a missing one (Outlook then falls back to References).
//! - Who gets which kind is the table in the README ("Notification rules"),
//!   which `tests.rs` reads and runs: one mail per person per action, in the
//!   order opener, team admins, participants, staff. Skipped: the author of
//!   the event (except the opener's acknowledgement), disabled users and
//!   addresses marked bouncing.
//! - Only the opener reads "your ticket": the others are told what happened
//!   on "ticket #N" ([`Relation`]).
//! - A mail that cannot be composed (an address lettre refuses) is marked
//!   failed by the outbox worker and recorded on the ticket as a
//!   `notify_failed` note; it never rolls back the change nor holds up the
//!   queue.
//! - A mail quotes at most [`EXCERPT_BYTES`] of the message, cut at a line
//!   end and followed by [`EXCERPT_CUT`], and lists at most [`MAX_FILES_LISTED`]
//!   attachments: its size does not grow with what was sent. Staff mails link
//!   each accepted attachment to its portal download (`/t/{ticket}/a/{id}`),
//!   which asks for a login like every portal page.
//!
//! Never sends anything itself and never reads the clock.

pub mod compose;
pub mod draft;
pub mod lang;
pub mod templates;

use rusqlite::Connection;

use crate::code::OutboxKind;
use crate::config::Config;
use crate::deeplink::Link;
use crate::id::{MessageId, TicketId, UserId};
use crate::lifecycle::Event;
use crate::policy::attachments::{Checked, Refusal};
use crate::signing::Keyring;
use crate::store::outbox::{self, NewMail};
use crate::store::tickets::{self, Ticket};
use crate::store::users::{self, User};
use crate::store::{Result, StoreError, inbound};
use draft::Draft;
use lang::Lang;
use templates::{FileLine, Kind, Mail, Relation};

/// Most bytes of a message's text quoted in a notification.
pub const EXCERPT_BYTES: usize = 4096;
/// Ends an excerpt that was cut.
pub const EXCERPT_CUT: &str = "… the full message is on the portal";
/// Most attachments listed in one mail; the rest are counted.
pub const MAX_FILES_LISTED: usize = 50;

/// What composing mail needs besides the database.
pub struct Notifier<'a> {
    pub config: &'a Config,
    pub keys: &'a Keyring,
    pub now: i64,
}

/// A mail to someone who wrote to us but whose message was not posted as is.
#[derive(Debug, Clone)]
pub enum Notice<'a> {
    /// The sender is not a known user; nothing was created.
    UnknownSender { subject: &'a str },
    /// Some attachments of a posted message were refused.
    RefusedAttachments { ticket: &'a Ticket, files: &'a [Checked] },
    /// The receiving MTA's trusted Authentication-Results said dmarc=fail.
    DmarcQuarantined { subject: &'a str },
    /// Staff mail named a ticket without evidence that staff sent it.
    StaffUnverified { ticket: &'a Ticket, subject: &'a str },
    /// A reply address was used by someone it was not sent to.
    TokenSenderMismatch { subject: &'a str },
    /// Staff mail named no ticket.
    StaffWithoutTicket { subject: &'a str },
    /// `account` asked to add the recipient's address as an alias; `link` confirms it.
    ConfirmAlias { account: &'a str, link: &'a str },
}

/// Queues the notifications for `event` on `ticket` (as it is after the event).
pub fn ticket_event(
    tx: &Connection,
    n: &Notifier,
    ticket: &Ticket,
    message: Option<MessageId>,
    event: Event,
    author: Option<&User>,
) -> Result<()> {
    let recipients = recipients(tx, ticket, event, author)?;
    if recipients.is_empty() {
        return Ok(());
    }
    // Only the message shown is read: loading the whole thread made every
    // notification cost more the longer a ticket ran.
    let shown = message.map(|id| tickets::message(tx, ticket.id, id)).transpose()?;
    let shown = shown.as_ref();
    let author = match (author, shown.and_then(|m| m.author_id)) {
        (Some(a), _) => Some(a.clone()),
        (None, Some(id)) => Some(users::by_id(tx, id)?),
        (None, None) => None,
    };
    let portal = n.config.support.public_url.trim_end_matches('/');
    let files: Vec<FileLine> = tickets::attachments(tx, ticket.id)?
        .into_iter()
        .filter(|a| match message {
            Some(m) => a.message_id == Some(m),
            None => a.message_id.is_none() && a.created_at >= n.now,
        })
        .map(|a| FileLine {
            url: a.refused.is_none().then(|| format!("{portal}/t/{}/a/{}", ticket.id, a.id)),
            ..file_line(&a.filename, a.size.max(0) as u64, a.refused)
        })
        .collect();
    let (files, more_files) = listed(files);
    let body = shown.map(|m| excerpt(&m.body)).filter(|b| !b.trim().is_empty());
    let reopened = event == Event::CustomerReplied
        && outbox::latest_kind(tx, ticket.id, OutboxKind::Updated)? == Some(OutboxKind::Closed);
    // The link points at the new message, or at the newest one for changes without a message.
    let link_message = match message {
        Some(m) => m,
        None => tickets::latest_message_id(tx, ticket.id)?.unwrap_or_default(),
    };
    let parent = shown.and_then(|m| m.message_id.clone());
    let team = users::team(tx, ticket.team_id)?.name;
    let tag = crate::route::token::subject_tag(ticket.id);
    let support = &n.config.support;

    for (user, kind, relation) in recipients {
        let kind = if reopened && kind == Kind::CustomerUpdate { Kind::Reopened } else { kind };
        let mail = Mail {
            name: user.name.clone(),
            address: user.email.clone(),
            for_staff: user.role.is_staff(),
            relation,
            tag: tag.clone(),
            subject: ticket.subject.clone(),
            status: ticket.status.label().to_string(),
            team: team.clone(),
            internal_ref: ticket.internal_ref.clone(),
            author: author.as_ref().map(|a| author_label(a, user.role.is_staff())).unwrap_or_default(),
            by_staff: author.as_ref().is_some_and(|a| a.role.is_staff()),
            body: body.clone(),
            unverified: shown.is_some_and(|m| m.unverified),
            files: files.clone(),
            more_files,
            link: Some(deep_link(n, ticket.id, link_message, user.id)),
            support_name: support.name.clone(),
            ..Mail::default()
        };
        let follow_up = !matches!(kind, Kind::Ack | Kind::NewTicket);
        let subject = ticket_subject(&tag, &ticket.subject, follow_up);
        let thread = tickets::thread_message_ids(tx, ticket.id, &user.email)?;
        let own_latest = outbox::latest_to(tx, ticket.id, &user.email)?;
        let parent = parent.clone().or_else(|| own_latest.clone()).or_else(|| thread.last().cloned());
        let references = compose::references(&thread, own_latest.as_deref(), parent.as_deref());
        let reply_to = reply_address(n, ticket.id, user.id);
        let q = Queued {
            kind,
            lang: Lang::En,
            ticket: Some(ticket),
            user: Some(&user),
            to: &user.email,
            subject: &subject,
        };
        queue(tx, n, &q, mail, reply_to, parent.as_deref(), references, "auto-generated")?;
    }
    Ok(())
}

/// Queues a notice to `to`, written in `lang`, unless one went there
/// recently; returns whether it was queued.
pub fn notice(
    tx: &Connection,
    n: &Notifier,
    to: &str,
    notice: &Notice,
    in_reply_to: Option<&str>,
    lang: Lang,
) -> Result<bool> {
    let to = crate::address::normalize(to);
    if crate::address::split(&to).is_none() {
        return Ok(false);
    }
    let user = users::by_email(tx, &to)?;
    if user.as_ref().is_some_and(|u| u.disabled || u.bouncing.is_some()) {
        return Ok(false);
    }
    let interval = n.config.limits.notice_interval_minutes.saturating_mul(60) as i64;
    if !inbound::take_notice_slot(tx, &to, n.now, interval)? {
        return Ok(false);
    }
    let support = &n.config.support;
    let mut mail = Mail {
        name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
        address: to.clone(),
        for_staff: user.as_ref().is_some_and(|u| u.role.is_staff()),
        support_name: support.name.clone(),
        sales_contact: support.sales_contact.clone(),
        ..Mail::default()
    };
    let texts = lang.texts();
    let (kind, ticket, subject) = match notice {
        Notice::UnknownSender { subject } => {
            mail.subject = crate::header::clean_subject(subject);
            (Kind::NoticeUnknownSender, None, format!("{} {}", texts.unknown_sender.subject, mail.subject))
        }
        Notice::DmarcQuarantined { subject } => {
            mail.subject = crate::header::clean_subject(subject);
            (Kind::NoticeDmarc, None, format!("{} {}", texts.dmarc.subject, mail.subject))
        }
        Notice::TokenSenderMismatch { subject } => {
            mail.subject = crate::header::clean_subject(subject);
            (Kind::NoticeTokenMismatch, None, format!("{} {}", texts.token_mismatch.subject, mail.subject))
        }
        Notice::StaffWithoutTicket { subject } => {
            mail.subject = crate::header::clean_subject(subject);
            (Kind::NoticeStaffWithoutTicket, None, format!("{} {}", texts.staff_without_ticket.subject, mail.subject))
        }
        Notice::ConfirmAlias { account, link } => {
            mail.author = account.to_string();
            mail.link = Some(link.to_string());
            (Kind::NoticeConfirmAlias, None, "Confirm your address".to_string())
        }
        Notice::StaffUnverified { ticket, subject } => {
            mail.tag = crate::route::token::subject_tag(ticket.id);
            mail.status = ticket.status.label().to_string();
            mail.subject = crate::header::clean_subject(subject);
            let subject = format!("{} {}", texts.staff_unverified.subject, mail.subject);
            (Kind::NoticeStaffUnverified, Some(*ticket), subject)
        }
        Notice::RefusedAttachments { ticket, files } => {
            let tag = crate::route::token::subject_tag(ticket.id);
            mail.tag = tag.clone();
            mail.subject = ticket.subject.clone();
            mail.status = ticket.status.label().to_string();
            (mail.files, mail.more_files) = listed(
                files.iter().filter(|f| !f.accepted).map(|f| file_line(&f.filename, f.size, f.reason)).collect(),
            );
            let rules = &n.config.attachments;
            mail.allowed = rules.allowed_extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ");
            mail.max_size = crate::format::size(rules.max_bytes);
            if let Some(u) = &user {
                let newest = tickets::latest_message_id(tx, ticket.id)?.unwrap_or_default();
                mail.link = Some(deep_link(n, ticket.id, newest, u.id));
            }
            let subject = format!("{tag} {} {}", texts.refused.subject, ticket.subject);
            (Kind::NoticeRefused, Some(*ticket), subject)
        }
    };
    // Only a known user told of refused files gets a reply address that
    // posts; anyone else's reply comes back to the plain support address (a
    // staff user answering a notice about a forgery must not post by it).
    let reply_to = match (notice, ticket, &user) {
        (Notice::RefusedAttachments { .. }, Some(t), Some(u)) => reply_address(n, t.id, u.id),
        _ => support.address.clone(),
    };
    let references: Vec<String> = in_reply_to.map(str::to_string).into_iter().collect();
    let q = Queued { kind, lang, ticket, user: user.as_ref(), to: &to, subject: &subject };
    queue(tx, n, &q, mail, reply_to, in_reply_to, references, "auto-replied")?;
    Ok(true)
}

/// Queues the mail carrying a set-password link to `user`: a reset, or an
/// invitation naming `team`. Not rate-limited here (the portal limits
/// requests per address and client); never to a disabled or bouncing user.
/// Returns whether it was queued.
pub fn password_link(tx: &Connection, n: &Notifier, user: &User, invitation: bool, link: &str) -> Result<bool> {
    if user.disabled || user.bouncing.is_some() {
        return Ok(false);
    }
    let team = user.team_id.map(|t| users::team(tx, t)).transpose()?.map(|t| t.name).unwrap_or_default();
    let mail = Mail {
        name: user.name.clone(),
        address: user.email.clone(),
        for_staff: user.role.is_staff(),
        team,
        link: Some(link.to_string()),
        support_name: n.config.support.name.clone(),
        ..Mail::default()
    };
    let (kind, subject) = if invitation {
        (Kind::Invitation, format!("Set your password for {}", n.config.support.name))
    } else {
        (Kind::PasswordReset, "Reset your password".to_string())
    };
    let q = Queued { kind, lang: Lang::En, ticket: None, user: Some(user), to: &user.email, subject: &subject };
    queue(tx, n, &q, mail, n.config.support.address.clone(), None, Vec::new(), "auto-generated")?;
    Ok(true)
}

/// Who hears of `event`, each with the mail they get and how they stand to
/// the ticket, one entry per user (the first relation found wins).
fn recipients(
    tx: &Connection,
    ticket: &Ticket,
    event: Event,
    author: Option<&User>,
) -> Result<Vec<(User, Kind, Relation)>> {
    let audience = crate::lifecycle::transition(Some(ticket.status), event).audience;
    let kind = match event {
        Event::Opened => Kind::NewTicket,
        Event::StaffResponded => Kind::Response,
        Event::CustomerReplied => Kind::CustomerUpdate,
        Event::Closed => Kind::Closed,
        Event::Updated => Kind::Updated,
    };
    let mut out: Vec<(User, Kind, Relation)> = Vec::new();
    let mut add = |user: User, kind: Kind, relation: Relation| {
        let is_author = author.is_some_and(|a| a.id == user.id);
        let acknowledgement = kind == Kind::Ack;
        if (is_author && !acknowledgement)
            || user.disabled
            || user.bouncing.is_some()
            || out.iter().any(|(u, _, _)| u.id == user.id)
        {
            return;
        }
        out.push((user, kind, relation));
    };
    if audience.opener {
        let opener = users::by_id(tx, ticket.opener_id)?;
        add(opener, if event == Event::Opened { Kind::Ack } else { kind }, Relation::Opener);
    }
    if audience.admins {
        users::admins_of(tx, ticket.team_id)?.into_iter().for_each(|u| add(u, kind, Relation::Admin));
    }
    if audience.participants {
        let participants = users::participants_of(tx, ticket.id, ticket.team_id)?;
        participants.into_iter().for_each(|u| add(u, kind, Relation::Participant));
    }
    if audience.staff {
        users::staff(tx)?.into_iter().for_each(|u| add(u, kind, Relation::Staff));
    }
    Ok(out)
}

/// What one outbox row is about.
struct Queued<'a> {
    kind: Kind,
    /// The language a notice is written in; ticket mails are English.
    lang: Lang,
    ticket: Option<&'a Ticket>,
    user: Option<&'a User>,
    to: &'a str,
    subject: &'a str,
}

/// Enqueues one mail as a draft, for the outbox worker to render: making
/// the text and the MIME message was most of what a ticket change cost.
#[allow(clippy::too_many_arguments)]
fn queue(
    tx: &Connection,
    n: &Notifier,
    q: &Queued,
    mail: Mail,
    reply_to: String,
    parent: Option<&str>,
    references: Vec<String>,
    auto_submitted: &'static str,
) -> Result<()> {
    let support = &n.config.support;
    let message_id = crate::header::generate_message_id(&support.address, "n");
    let draft = Draft {
        kind: q.kind,
        lang: q.lang.tag().to_string(),
        mail,
        from_name: support.name.clone(),
        from: support.address.clone(),
        to_name: q.user.map(|u| u.name.clone()).unwrap_or_default(),
        to: q.to.to_string(),
        reply_to,
        subject: q.subject.to_string(),
        message_id,
        in_reply_to: parent.map(str::to_string),
        references,
        thread_topic: q.ticket.map(|t| t.subject.clone()),
        auto_submitted: auto_submitted.to_string(),
        date: n.now,
    };
    let json = serde_json::to_string(&draft).map_err(|e| StoreError::Conflict(format!("queueing a mail: {e}")))?;
    let new = NewMail {
        message_id: &draft.message_id,
        ticket_id: q.ticket.map(|t| t.id),
        kind: q.kind.outbox_kind(),
        recipient: q.to,
        draft: &json,
    };
    outbox::enqueue(tx, &new, n.now)?;
    Ok(())
}

/// How a notification names the author: by display name, and for staff
/// with the address beside it (customers see staff by name only).
fn author_label(author: &User, for_staff: bool) -> String {
    if for_staff && !author.name.is_empty() {
        format!("{} <{}>", author.name, author.email)
    } else {
        author.display().to_string()
    }
}

/// `[#N] subject`, `Re: ` on follow-ups; the tag is not repeated when the
/// subject carries it already.
fn ticket_subject(tag: &str, subject: &str, follow_up: bool) -> String {
    let subject = crate::header::clean_subject(subject);
    let tagged = if subject.contains(tag) { subject } else { format!("{tag} {subject}") };
    if follow_up { format!("Re: {tagged}") } else { tagged }
}

/// The recipient's own reply address: `support+TOKEN@domain`.
fn reply_address(n: &Notifier, ticket: TicketId, user: UserId) -> String {
    crate::address::with_tag(&n.config.support.address, &crate::route::token::issue(n.keys, ticket, user))
}

fn deep_link(n: &Notifier, ticket: TicketId, message: MessageId, user: UserId) -> String {
    let ttl = n.config.web.link_ttl_days.saturating_mul(86_400) as i64;
    Link { ticket, message, user, expires: n.now.saturating_add(ttl) }.url(&n.config.support.public_url, n.keys)
}

fn file_line(name: &str, size: u64, refused: Option<Refusal>) -> FileLine {
    FileLine {
        name: name.to_string(),
        size: crate::format::size(size),
        refused: refused.map(|code| crate::policy::attachments::reason_text(code).to_string()),
        url: None,
    }
}

/// The first [`MAX_FILES_LISTED`] files and how many more there are.
fn listed(mut files: Vec<FileLine>) -> (Vec<FileLine>, usize) {
    let more = files.len().saturating_sub(MAX_FILES_LISTED);
    files.truncate(MAX_FILES_LISTED);
    (files, more)
}

/// The start of a message's text for a notification: all of it when short,
/// else cut at the last line end within [`EXCERPT_BYTES`] (at a character
/// boundary when the first line alone is longer) and marked as cut.
pub(crate) fn excerpt(body: &str) -> String {
    if body.len() <= EXCERPT_BYTES {
        return body.to_string();
    }
    let head = &body[..body.floor_char_boundary(EXCERPT_BYTES)];
    let head = head.rfind('\n').map_or(head, |i| &head[..i]);
    format!("{}\n\n{EXCERPT_CUT}", head.trim_end())
}

#[cfg(test)]
mod tests;
