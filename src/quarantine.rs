//! What a person does with a quarantined message: read it, release it
//! through the same pipeline as any mail, delete it, and purge old entries.
//! Shared by the `quarantine` commands and the staff portal.
//!
//! Decisions where the issue is silent:
//! - A release is one write transaction that first marks the entry as
//!   resolved (only a waiting entry can be), so two releases of the same
//!   entry, from the portal and the command line at once, post it once.
//! - The released message is posted with its own Message-ID, raw message
//!   (its `Date:` header included), attachments through the attachment
//!   policy and the notifications of any mail, and is dated when it arrived
//!   (not by its `Date:` header, which the sender writes); the ticket is
//!   updated at the release. The idempotency record
//!   (`processed`) then holds its new outcome, so a re-delivery of the same
//!   mail is a duplicate of the posted message.
//! - Without a ticket or a team, a release threads the message as the
//!   pipeline would for its author, with the person releasing it standing
//!   in for the missing evidence: reply token, References, subject tag, else
//!   a new ticket in the author's team.
//! - `--team` with a sender who is no user enrols the sender as a member of
//!   that team (as `support.allow_unknown_senders` does with the sender's
//!   domain); a customer of another team is refused (they could not see it).
//! - A deleted entry keeps its summary and who deleted it; the message itself
//!   (and a kept file) is removed. Purging removes entries outright.

use std::path::Path;

use rusqlite::Connection;

use crate::app::App;
use crate::id::{QuarantineId, TeamId, TicketId};
use crate::lifecycle::Role;
use crate::parse::{self, Parsed};
use crate::pipeline::Outcome;
use crate::policy::sender;
use crate::route::{self, Route};
use crate::store::inbound::{self, QuarantineEntry};
use crate::store::tickets;
use crate::store::users::{self, NewUser, User};
use crate::store::{Result, StoreError};
use crate::{actions, clock};

/// Where a released message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Where the pipeline would have put it, had it been accepted.
    Thread,
    /// A reply on this ticket.
    Ticket(TicketId),
    /// A new ticket for the team of this name.
    Team(String),
}

/// A release: where to, as whom, and who does it.
#[derive(Debug, Clone)]
pub struct Release<'a> {
    pub target: Target,
    /// Post as this user (address or alias) instead of the sender.
    pub as_user: Option<&'a str>,
    /// With `as_user`: add the sender's address as that user's alias.
    pub add_alias: bool,
    /// Who releases it, for the record.
    pub by: &'a str,
}

impl App {
    /// The whole message of entry `id`: from the database, or from the file
    /// it was kept in when too large for the database. Blocking.
    pub fn quarantined_message(&self, id: QuarantineId) -> Result<Vec<u8>> {
        let entry = self.db.with(|c| inbound::entry(c, id))?;
        match &entry.raw_path {
            Some(path) if entry.resolution.is_none() => Ok(std::fs::read(path)?),
            _ => self.db.with(|c| inbound::raw(c, id)),
        }
    }

    /// Posts quarantined message `id` as `r` says and records who did it.
    /// Refusals (already resolved, no such ticket or team, an author who may
    /// not write there) are `StoreError::Conflict` with the reason. Blocking.
    pub fn release(&self, id: QuarantineId, r: &Release) -> Result<Outcome> {
        let raw = self.quarantined_message(id)?;
        let parsed = match std::panic::catch_unwind(|| parse::parse(&raw)) {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(refused(format!("the message cannot be read: {e}"))),
            Err(_) => return Err(refused("the message cannot be read: the MIME parser failed".into())),
        };
        let now = clock::now();
        let env = self.env(now);
        self.db.write(|tx| {
            let entry = inbound::entry(tx, id)?;
            let outcome = self.post_released(tx, &env, &entry, &parsed, &raw, r)?;
            let what = format!("released: {}", crate::cli::describe(&outcome));
            if !inbound::resolve(tx, id, &what, r.by, now, false)? {
                return Err(refused(format!("entry #{id} was released or deleted already")));
            }
            if let Some(key) = &entry.key {
                inbound::set_outcome(tx, key, outcome.label(), outcome.ticket())?;
            }
            if let Outcome::Opened { message, .. } | Outcome::Replied { message, .. } = &outcome {
                tickets::set_message_date(tx, *message, entry.created_at)?;
            }
            if let Some(t) = outcome.ticket() {
                let note = format!("quarantine entry #{id} ({}) released by {}", entry.reason, r.by);
                tickets::add_event(tx, t, "released", &note, now)?;
            }
            Ok(outcome)
        })
    }

    fn post_released(
        &self,
        tx: &Connection,
        env: &actions::Env,
        entry: &QuarantineEntry,
        p: &Parsed,
        raw: &[u8],
        r: &Release,
    ) -> Result<Outcome> {
        if let Some(done) = &entry.resolution {
            return Err(refused(format!("entry #{} was {} by {} already", entry.id, done.what, done.by)));
        }
        let trusted = &self.config.security.trusted_authserv_ids;
        let named = sender::of(&p.from_headers, &p.authentication_results, trusted);
        let authenticated = named.authenticated.is_some();
        let from = named.address.clone();
        let mut author = match (r.as_user, &from) {
            (Some(who), _) => Some(active(users::by_address(tx, who)?, who)?),
            (None, Some(f)) => users::by_address(tx, f)?.filter(|u| !u.disabled),
            (None, None) => None,
        };
        if r.add_alias
            && let (Some(u), Some(f)) = (&author, &from)
        {
            users::add_alias(tx, u.id, f, env.now)?;
        }
        let key = entry.key.clone().unwrap_or_else(|| p.dedup_key());
        let notifier = crate::notify::Notifier { config: &self.config, keys: &self.keys, now: env.now };
        let ticket = match &r.target {
            Target::Ticket(n) => Some(*n),
            Target::Team(name) => {
                let team = users::team_by_name(tx, name)?.ok_or_else(|| refused(format!("no team {name:?}")))?;
                let author = match author.take() {
                    Some(u) => u,
                    None => self.enrol(tx, from.as_deref(), p, team.id, env.now)?,
                };
                if author.role != Role::Staff && author.team_id != Some(team.id) {
                    return Err(refused(format!("{} is not in team {}", author.email, team.name)));
                }
                return self.open_ticket(
                    tx,
                    env,
                    &notifier,
                    (team.id, &entry.source),
                    &author,
                    p,
                    raw,
                    &key,
                    authenticated,
                );
            }
            Target::Thread => None,
        };
        let author = author.ok_or_else(|| {
            refused("the sender is not a known user: release it as from a user, or as a new ticket for a team".into())
        })?;
        let ticket = match ticket {
            Some(n) => n,
            None => {
                let mut facts = self.gather(tx, p, Some(&author))?;
                // The person releasing it vouches for the sender.
                facts.sender_authenticated = true;
                if matches!(route::decide(&facts), Route::TokenSenderMismatch { .. }) {
                    facts.token = None;
                }
                match route::decide(&facts) {
                    Route::Existing { ticket, .. } => ticket,
                    Route::NewTicket { .. } if author.team_id.is_some() => {
                        let team = author.team_id.unwrap_or_default();
                        return self.open_ticket(
                            tx,
                            env,
                            &notifier,
                            (team, &entry.source),
                            &author,
                            p,
                            raw,
                            &key,
                            authenticated,
                        );
                    }
                    _ => return Err(refused(format!("{} is staff: choose a ticket or a team", author.email))),
                }
            }
        };
        let ticket = tickets::get(tx, ticket).map_err(|e| match e {
            StoreError::NotFound => refused(format!("no ticket #{ticket}")),
            e => e,
        })?;
        if !actions::may_act(&author, &ticket) {
            return Err(refused(format!("{} may not write on ticket #{}", author.email, ticket.id)));
        }
        self.post_reply(tx, env, &notifier, ticket, &author, p, raw, &key, authenticated)
    }

    /// A member of `team` for a sender who is no user.
    fn enrol(&self, tx: &Connection, from: Option<&str>, p: &Parsed, team: TeamId, now: i64) -> Result<User> {
        let from =
            from.ok_or_else(|| refused("the message names no single sender: release it as from a user".into()))?;
        let new = NewUser {
            email: from,
            name: p.from_name.as_deref().unwrap_or(""),
            role: Role::Member,
            team_id: Some(team),
            password_hash: None,
        };
        let id = users::create_user(tx, &new, now)?;
        users::by_id(tx, id)
    }

    /// Deletes entry `id`: the message (and a kept file) goes, the record of
    /// who deleted it when stays. Blocking.
    pub fn delete_quarantined(&self, id: QuarantineId, by: &str) -> Result<()> {
        let entry = self.db.with(|c| inbound::entry(c, id))?;
        if !self.db.write(|tx| inbound::resolve(tx, id, "deleted", by, clock::now(), true))? {
            return Err(refused(format!("entry #{id} was released or deleted already")));
        }
        if let Some(path) = entry.raw_path {
            self.remove_kept(&path)?;
        }
        Ok(())
    }

    /// Removes the entries older than `days` days, with the files they
    /// kept; returns how many went. Blocking.
    pub fn purge_quarantine(&self, days: u64) -> Result<usize> {
        let before = clock::now().saturating_sub(days.saturating_mul(86_400) as i64);
        let (purged, paths) = self.db.write(|tx| inbound::purge(tx, before))?;
        for path in &paths {
            self.remove_kept(path)?;
        }
        Ok(purged)
    }

    /// Removes a kept message file unless another entry still names it (the
    /// files are named by content).
    fn remove_kept(&self, path: &str) -> Result<()> {
        if self.db.with(|c| inbound::file_waiting(c, path))? {
            return Ok(());
        }
        match std::fs::remove_file(Path::new(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// How often `serve` purges the quarantine.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// `serve`'s task: purges entries older than `limits.quarantine_retention_days`
/// (never when 0) at start and then hourly, until shutdown. A failed purge is
/// logged and tried again the next hour.
pub async fn purge_regularly(app: App, mut shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    let days = app.config().limits.quarantine_retention_days;
    if days == 0 {
        return Ok(());
    }
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
        let app = app.clone();
        match tokio::task::spawn_blocking(move || app.purge_quarantine(days)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(purged = n, days, "old quarantine entries purged"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purging the quarantine failed"),
            Err(e) => tracing::warn!(error = %e, "purging the quarantine failed"),
        }
    }
}

fn active(user: Option<User>, who: &str) -> Result<User> {
    user.filter(|u| !u.disabled).ok_or_else(|| refused(format!("no active user {who}")))
}

fn refused(why: String) -> StoreError {
    StoreError::Conflict(why)
}

/// What the sender of an entry was told, in words.
pub fn notice_text(q: &QuarantineEntry) -> &str {
    q.notice.as_deref().unwrap_or("none: no notice is sent for this reason (or the entry is older than notice records)")
}
