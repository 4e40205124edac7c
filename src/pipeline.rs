//! The per-message pipeline: parse → automatic-mail check → sender checks →
//! route (thread) → post through [`crate::actions`], all in one transaction
//! per message (or per batch, each message in its own savepoint). Nothing is
//! settled at the source until that transaction has committed; a message
//! seen before (same Message-ID, or same content hash without one) changes
//! nothing. Whatever cannot be processed is quarantined with its reason.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rusqlite::Connection;

use crate::actions::{self, Env, Post, Upload};
use crate::config::Config;
use crate::notify::{self, Notice, Notifier};
use crate::parse::{self, Parsed};
use crate::policy::{attachments, auto, sender};
use crate::route::{self, Facts, Route, token};
use crate::signing::Keyring;
use crate::store::tickets::{self, Ticket, Via};
use crate::store::users::{self, NewUser, User};
use crate::store::{Blobs, Db, StoreError, inbound};
use crate::{address, clock, lifecycle};

/// What became of one message. Every variant but `Quarantined` means the
/// source may file the message as processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new ticket was opened.
    Opened { ticket: i64, message: i64 },
    /// Posted on an existing ticket.
    Replied { ticket: i64, message: i64 },
    /// Seen before; nothing changed.
    Duplicate { ticket: Option<i64> },
    /// Automatic mail (auto-reply, list, ...): never creates a ticket or gets a reply.
    Automatic { kind: &'static str, ticket: Option<i64> },
    /// A delivery report; the addresses now marked as bouncing.
    Bounce { marked: Vec<String> },
    /// Kept aside with its reason (stable code) for a person to look at.
    Quarantined { reason: String, id: i64 },
}

impl Outcome {
    pub fn quarantine_reason(&self) -> Option<&str> {
        match self {
            Outcome::Quarantined { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn ticket(&self) -> Option<i64> {
        match self {
            Outcome::Opened { ticket, .. } | Outcome::Replied { ticket, .. } => Some(*ticket),
            Outcome::Duplicate { ticket } | Outcome::Automatic { ticket, .. } => *ticket,
            Outcome::Bounce { .. } | Outcome::Quarantined { .. } => None,
        }
    }

    /// A short stable word for logs and the `processed` table.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Opened { .. } => "opened",
            Outcome::Replied { .. } => "replied",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Automatic { .. } => "automatic",
            Outcome::Bounce { .. } => "bounce",
            Outcome::Quarantined { .. } => "quarantined",
        }
    }
}

/// A failure that leaves the message where it is, to be retried later.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Worth retrying soon (a busy database, a full disk being cleared).
    pub fn is_transient(&self) -> bool {
        match self {
            IngestError::Store(e) => e.is_transient(),
        }
    }
}

/// Why a message could not even be parsed.
#[derive(Debug, Clone)]
struct Unreadable {
    reason: &'static str,
    detail: String,
}

/// Everything a message needs on its way in; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    keys: Keyring,
    db: Db,
    blobs: Blobs,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, keys: Keyring, db: Db) -> Pipeline {
        let blobs = Blobs::new(config.store.blobs.clone());
        Pipeline { config, keys, db, blobs }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn shared_config(&self) -> Arc<Config> {
        self.config.clone()
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The context for [`crate::actions`] at time `now`.
    pub fn env(&self, now: i64) -> Env<'_> {
        Env { config: &self.config, keys: &self.keys, blobs: &self.blobs, now }
    }
}

impl Pipeline {
    /// Processes one message in one transaction. Blocking.
    pub fn ingest(&self, raw: &[u8], source: &str) -> Result<Outcome, IngestError> {
        let mut out = self.ingest_batch(&[raw], source)?;
        Ok(out.pop().expect("one outcome per message"))
    }

    /// Processes messages in one transaction, each in its own savepoint, so
    /// a backlog costs one durable commit per batch. Blocking. On `Err`
    /// nothing was committed and no message may be settled.
    ///
    /// Parsing needs no database, so the next chunk is parsed on a second
    /// thread while the current one is written: on two cores a backlog then
    /// costs about the larger of the two, not their sum.
    pub fn ingest_batch<R: AsRef<[u8]> + Sync>(&self, raws: &[R], source: &str) -> Result<Vec<Outcome>, IngestError> {
        const CHUNK: usize = 16;
        let chunks: Vec<&[R]> = raws.chunks(CHUNK).collect();
        let parse_chunk =
            |chunk: &[R]| -> Vec<Result<Parsed, Unreadable>> { chunk.iter().map(|r| self.read(r.as_ref())).collect() };
        let first = chunks.first().map(|c| parse_chunk(c)).unwrap_or_default();
        let now = clock::now();
        // One syncfs for the batch's attachment files instead of two fsyncs each.
        let blobs = self.blobs.deferred();
        let env = Env { config: &self.config, keys: &self.keys, blobs: &blobs, now };
        let outcomes = self.db.write(|tx| {
            let outcomes = std::thread::scope(|scope| {
                let mut outcomes = Vec::with_capacity(raws.len());
                let mut parsed = first;
                for (i, chunk) in chunks.iter().enumerate() {
                    let next = chunks.get(i + 1).map(|c| scope.spawn(move || parse_chunk(c)));
                    for (raw, p) in chunk.iter().zip(&parsed) {
                        outcomes.push(self.in_savepoint(tx, raw.as_ref(), p, source, &env)?);
                    }
                    // read() catches the parser's panics, so a parse thread cannot fail.
                    parsed = next.map(|h| h.join().expect("parse threads catch panics")).unwrap_or_default();
                }
                Ok::<_, StoreError>(outcomes)
            })?;
            blobs.sync()?;
            Ok::<_, StoreError>(outcomes)
        })?;
        for o in &outcomes {
            match o {
                Outcome::Quarantined { reason, id } => tracing::warn!(source, reason, id, "message quarantined"),
                o => tracing::debug!(source, outcome = o.label(), ticket = o.ticket(), "message processed"),
            }
        }
        Ok(outcomes)
    }

    fn read(&self, raw: &[u8]) -> Result<Parsed, Unreadable> {
        let max = self.config.limits.max_message_bytes;
        if raw.len() as u64 > max {
            return Err(Unreadable {
                reason: "message_too_large",
                detail: format!("{} bytes, more than limits.max_message_bytes = {max}", raw.len()),
            });
        }
        // mail-parser is not expected to panic, but hostile input must never take the process down.
        match catch_unwind(AssertUnwindSafe(|| parse::parse(raw))) {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(Unreadable { reason: e.code(), detail: e.to_string() }),
            Err(_) => {
                Err(Unreadable { reason: "parser_panic", detail: "the MIME parser failed on this message".into() })
            }
        }
    }

    /// One message inside a savepoint: a non-transient store error rolls
    /// back only this message, which is then quarantined instead.
    fn in_savepoint(
        &self,
        tx: &Connection,
        raw: &[u8],
        parsed: &Result<Parsed, Unreadable>,
        source: &str,
        env: &Env,
    ) -> Result<Outcome, StoreError> {
        let now = env.now;
        // Cached statements: execute_batch would parse these anew for every message.
        tx.prepare_cached("SAVEPOINT message")?.execute([])?;
        match self.process(tx, raw, parsed, source, env) {
            Ok(o) => {
                tx.prepare_cached("RELEASE message")?.execute([])?;
                Ok(o)
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tx.execute_batch("ROLLBACK TO message; RELEASE message")?;
                tracing::error!(error = %e, "processing failed; quarantining the message");
                let key = dedup_key(raw, parsed);
                let detail = format!("internal error: {e}");
                quarantine(tx, &key, "internal_error", &detail, source, parsed.as_ref().ok(), raw, now)
            }
        }
    }

    fn process(
        &self,
        tx: &Connection,
        raw: &[u8],
        parsed: &Result<Parsed, Unreadable>,
        source: &str,
        env: &Env,
    ) -> Result<Outcome, StoreError> {
        let now = env.now;
        let p = match parsed {
            Ok(p) => p,
            Err(u) => {
                let key = dedup_key(raw, parsed);
                if let Some(seen) = inbound::seen(tx, &key)? {
                    return Ok(Outcome::Duplicate { ticket: seen.ticket_id });
                }
                return quarantine(tx, &key, u.reason, &u.detail, source, None, raw, now);
            }
        };
        let key = p.dedup_key();
        if let Some(seen) = inbound::seen(tx, &key)? {
            return Ok(Outcome::Duplicate { ticket: seen.ticket_id });
        }
        let notifier = Notifier { config: &self.config, keys: &self.keys, now };

        if let Some(kind) = auto::classify(p) {
            if kind == auto::AutoKind::Bounce {
                let marked = self.bounce(tx, p, now)?;
                inbound::mark_processed(tx, &key, "bounce", None, now)?;
                return Ok(Outcome::Bounce { marked });
            }
            // Automatic mail on a known ticket is noted there, so staff see
            // an out-of-office; it is never posted and never answered.
            let ticket = self.referenced_ticket(tx, p)?;
            if let Some(t) = ticket {
                let from = p.from.as_deref().unwrap_or("unknown sender");
                tickets::add_event(
                    tx,
                    t,
                    "automatic",
                    &format!("{} mail from {from} was not posted", kind.code()),
                    now,
                )?;
            }
            inbound::mark_processed(tx, &key, "automatic", ticket, now)?;
            return Ok(Outcome::Automatic { kind: kind.code(), ticket });
        }

        let Some(from) = p.from.as_deref() else {
            return quarantine(tx, &key, "no_sender", "the message has no From address", source, Some(p), raw, now);
        };
        if sender::dmarc_fails(&p.authentication_results, &self.config.security.trusted_authserv_ids) {
            notify::notice(
                tx,
                &notifier,
                from,
                &Notice::DmarcQuarantined { subject: &p.subject },
                p.message_id.as_deref(),
            )?;
            let detail = "a trusted Authentication-Results header reports dmarc=fail";
            return quarantine(tx, &key, "dmarc_fail", detail, source, Some(p), raw, now);
        }

        let sender = users::by_email(tx, from)?.filter(|u| !u.disabled);
        let facts = self.gather(tx, p, sender.as_ref())?;
        let route = route::decide(&facts);
        match route {
            Route::Existing { ticket, .. } => {
                // decide() threads onto a ticket only for a known sender who may act on it.
                let author = sender.ok_or(StoreError::NotFound)?;
                self.post_reply(tx, env, &notifier, tickets::get(tx, ticket)?, &author, p, raw, &key)
            }
            Route::NewTicket => {
                let author = match sender {
                    Some(u) => u,
                    None => self.enrol_unknown(tx, from, p.from_name.as_deref(), now)?,
                };
                let Some(team) = author.team_id else {
                    return quarantine(
                        tx,
                        &key,
                        "staff_without_ticket",
                        "staff mail names no ticket",
                        source,
                        Some(p),
                        raw,
                        now,
                    );
                };
                let uploads = self.uploads(p);
                let post = mail_post(&author, p, raw, &uploads);
                let posted = actions::open(tx, env, team, &p.subject, source, &post)?;
                self.tell_refused(tx, &notifier, &author, &posted, p)?;
                inbound::mark_processed(tx, &key, "opened", Some(posted.ticket.id), now)?;
                Ok(Outcome::Opened { ticket: posted.ticket.id, message: posted.message })
            }
            Route::UnknownSender => {
                notify::notice(
                    tx,
                    &notifier,
                    from,
                    &Notice::UnknownSender { subject: &p.subject },
                    p.message_id.as_deref(),
                )?;
                let detail = format!("{from} is not a known user");
                quarantine(tx, &key, "unknown_sender", &detail, source, Some(p), raw, now)
            }
            Route::TokenSenderMismatch { ticket } => {
                let detail = format!("{from} used the reply address of another user on ticket {ticket}");
                quarantine(tx, &key, "token_sender_mismatch", &detail, source, Some(p), raw, now)
            }
            Route::StaffWithoutTicket => {
                let detail = format!("{from} is staff and the mail names no ticket");
                quarantine(tx, &key, "staff_without_ticket", &detail, source, Some(p), raw, now)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn post_reply(
        &self,
        tx: &Connection,
        env: &Env,
        notifier: &Notifier,
        ticket: Ticket,
        author: &User,
        p: &Parsed,
        raw: &[u8],
        key: &str,
    ) -> Result<Outcome, StoreError> {
        let uploads = self.uploads(p);
        let (close, body) = staff_close_command(author, &p.body);
        let mut post = mail_post(author, p, raw, &uploads);
        post.body = body;
        let posted = actions::reply(tx, env, ticket, &post)?;
        self.tell_refused(tx, notifier, author, &posted, p)?;
        if close {
            actions::close(tx, env, posted.ticket.clone(), author)?;
        }
        inbound::mark_processed(tx, key, "replied", Some(posted.ticket.id), env.now)?;
        Ok(Outcome::Replied { ticket: posted.ticket.id, message: posted.message })
    }

    fn uploads<'p>(&self, p: &'p Parsed) -> Vec<Upload<'p>> {
        let checked =
            p.attachments.iter().map(|part| (attachments::check(part, &self.config.attachments), &part.bytes[..]));
        let skipped = p.skipped_attachments.iter().map(|s| (attachments::too_many(s), &[][..]));
        checked.chain(skipped).map(|(checked, bytes)| Upload { checked, bytes }).collect()
    }

    fn tell_refused(
        &self,
        tx: &Connection,
        notifier: &Notifier,
        author: &User,
        posted: &actions::Posted,
        p: &Parsed,
    ) -> Result<(), StoreError> {
        if !posted.refused.is_empty() {
            let notice = Notice::RefusedAttachments { ticket: &posted.ticket, files: &posted.refused };
            notify::notice(tx, notifier, &author.email, &notice, p.message_id.as_deref())?;
        }
        Ok(())
    }

    /// Collects what routing needs: token, references, subject tag, sender.
    fn gather(&self, tx: &Connection, p: &Parsed, sender: Option<&User>) -> Result<Facts, StoreError> {
        let may_act = |t: &Ticket| sender.is_some_and(|u| actions::may_act(u, t));
        let mut facts = Facts {
            sender_known: sender.is_some(),
            sender_is_staff: sender.is_some_and(|u| u.role.is_staff()),
            allow_unknown: self.config.support.allow_unknown_senders,
            ..Facts::default()
        };
        for tag in p.recipients.iter().filter_map(|r| address::tag_of(r, &self.config.support.address)) {
            match token::verify(&self.keys, tag) {
                Ok(t) => {
                    // A valid signature over a ticket or user that no longer exists is no token.
                    let (Ok(ticket), Ok(_owner)) = (tickets::get(tx, t.ticket), users::by_id(tx, t.user)) else {
                        continue;
                    };
                    facts.token = Some(t);
                    facts.sender_is_token_owner = sender.is_some_and(|u| u.id == t.user);
                    facts.sender_may_act_on_token_ticket = may_act(&ticket);
                    break;
                }
                Err(e) => tracing::warn!(tag, from = p.from.as_deref(), reason = e.code(), "reply token not trusted"),
            }
        }
        if let Some(ticket) = self.referenced_ticket(tx, p)? {
            facts.referenced = Some((ticket, may_act(&tickets::get(tx, ticket)?)));
        }
        if let Some(n) = token::ticket_in_subject(&p.subject)
            && let Ok(ticket) = tickets::get(tx, n)
        {
            let participant = match sender {
                Some(u) => tickets::is_participant(tx, n, u.id)?,
                None => false,
            };
            facts.tagged = Some((n, may_act(&ticket) || participant));
        }
        Ok(facts)
    }

    fn referenced_ticket(&self, tx: &Connection, p: &Parsed) -> Result<Option<i64>, StoreError> {
        let mut ids = p.references.clone();
        ids.extend(p.in_reply_to.iter().cloned());
        tickets::by_message_ids(tx, &ids)
    }

    /// Marks recipients of our own bounced notifications as bouncing. Only a
    /// report that names the Message-ID of a mail we sent counts, so a forged
    /// DSN cannot switch off mail to arbitrary users.
    fn bounce(&self, tx: &Connection, p: &Parsed, now: i64) -> Result<Vec<String>, StoreError> {
        let Some(b) = p.bounce.as_ref() else { return Ok(Vec::new()) };
        let Some(original) = b.original_message_id.as_deref() else { return Ok(Vec::new()) };
        let Some((ticket, recipient)) = tickets::sent_notification(tx, original)? else { return Ok(Vec::new()) };
        if !b.permanent || !b.recipients.contains(&recipient) {
            return Ok(Vec::new());
        }
        let why = format!("a notification to {recipient} bounced permanently");
        users::set_bouncing(tx, &recipient, Some(&why))?;
        if let Some(t) = ticket {
            tickets::add_event(tx, t, "bounce", &format!("{why}; no more mail goes there until it is cleared"), now)?;
        }
        Ok(vec![recipient])
    }

    /// Creates a member for an unknown sender, in a team named after their domain.
    fn enrol_unknown(&self, tx: &Connection, from: &str, name: Option<&str>, now: i64) -> Result<User, StoreError> {
        let domain = address::domain(from);
        let team = match users::team_by_name(tx, domain)? {
            Some(t) => t.id,
            None => users::create_team(tx, domain, now)?,
        };
        let new = NewUser {
            email: from,
            name: name.unwrap_or(""),
            role: lifecycle::Role::Member,
            team_id: Some(team),
            password_hash: None,
        };
        let id = users::create_user(tx, &new, now)?;
        users::by_id(tx, id)
    }
}

/// The idempotency key: the Message-ID, else the content hash (also for
/// messages that could not be parsed, so a re-delivery is recognised).
fn dedup_key(raw: &[u8], parsed: &Result<Parsed, Unreadable>) -> String {
    match parsed {
        Ok(p) => p.dedup_key(),
        Err(_) => format!("sha256:{}", parse::sha256_hex(raw)),
    }
}

fn mail_post<'a>(author: &'a User, p: &'a Parsed, raw: &'a [u8], uploads: &'a [Upload<'a>]) -> Post<'a> {
    Post {
        author,
        body: &p.body,
        via: Via::Mail,
        message_id: p.message_id.as_deref(),
        raw: Some(raw),
        attachments: uploads,
    }
}

/// Staff close a ticket by mail with a first line of `#close`; the rest of
/// the text, if any, is posted first.
fn staff_close_command<'a>(author: &User, body: &'a str) -> (bool, &'a str) {
    if !author.role.is_staff() {
        return (false, body);
    }
    let trimmed = body.trim_start();
    let (first, rest) = trimmed.split_once('\n').unwrap_or((trimmed, ""));
    if first.trim().eq_ignore_ascii_case("#close") { (true, rest.trim()) } else { (false, body) }
}

#[allow(clippy::too_many_arguments)]
fn quarantine(
    tx: &Connection,
    key: &str,
    reason: &str,
    detail: &str,
    source: &str,
    p: Option<&Parsed>,
    raw: &[u8],
    now: i64,
) -> Result<Outcome, StoreError> {
    let id = inbound::quarantine(
        tx,
        &inbound::Quarantined {
            reason,
            detail,
            source,
            message_id: p.and_then(|p| p.message_id.as_deref()),
            sender: p.and_then(|p| p.from.as_deref()),
            subject: p.map(|p| p.subject.as_str()),
            raw,
        },
        now,
    )?;
    inbound::mark_processed(tx, key, "quarantined", None, now)?;
    Ok(Outcome::Quarantined { reason: reason.to_string(), id })
}
