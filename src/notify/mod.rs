//! NOTIFY: turns a ticket change into outbox rows, inside the caller's
//! transaction, so a committed change always has its mails queued and a
//! rolled-back one never does.

use rusqlite::Connection;

use crate::config::Config;
use crate::lifecycle::Event;
use crate::policy::attachments::Checked;
use crate::signing::Keyring;
use crate::store::tickets::Ticket;
use crate::store::users::User;

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
}

/// Queues the notifications for `event` on `ticket`.
pub fn ticket_event(
    tx: &Connection,
    n: &Notifier,
    ticket: &Ticket,
    message: Option<i64>,
    event: Event,
    author: Option<&User>,
) -> crate::store::Result<()> {
    let _ = (tx, n, ticket, message, event, author);
    Ok(())
}

/// Queues a notice to `to` unless one went there recently; returns whether it was queued.
pub fn notice(
    tx: &Connection,
    n: &Notifier,
    to: &str,
    notice: &Notice,
    in_reply_to: Option<&str>,
) -> crate::store::Result<bool> {
    let _ = (tx, n, to, notice, in_reply_to);
    Ok(false)
}
