//! The per-message pipeline: parse (outside any transaction) → automatic-mail
//! check → sender checks → route (thread) → post through [`crate::actions`],
//! in short write transactions of a few messages, each message in its own
//! savepoint. Nothing is settled at the source until that transaction has
//! committed; a message seen before (same Message-ID, or same content hash
//! without one) changes nothing, and one that was quarantined stays so.
//! Whatever cannot be processed is quarantined with its reason; a message
//! that fails (a panic, a store error) is tried again a few times and then
//! quarantined as `internal_error`, never holding up the others.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::actions::{self, Env, Post, Upload};
use crate::app::App;
use crate::code::{EventKind, QuarantineReason, Settled};
use crate::id::{MessageId, QuarantineId, TeamId, TicketId};
use crate::notify::lang::Lang;
use crate::notify::{self, Notice, Notifier};
use crate::parse::{self, Parsed};
use crate::policy::auto::{self, AutoKind};
use crate::policy::{attachments, sender};
use crate::route::{self, Facts, Named, Route, token};
use crate::store::tickets::{self, Ticket, Via};
use crate::store::users::{self, NewUser, User};
use crate::store::{StoreError, inbound, outbox};
use crate::{address, clock, lifecycle};

/// What became of one message. Every variant but `Quarantined` means the
/// source may file the message as processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new ticket was opened.
    Opened { ticket: TicketId, message: MessageId },
    /// Posted on an existing ticket.
    Replied { ticket: TicketId, message: MessageId },
    /// Seen before; nothing changed.
    Duplicate { ticket: Option<TicketId> },
    /// Automatic mail (auto-reply, list, ...): never creates a ticket or gets a reply.
    Automatic { kind: AutoKind, ticket: Option<TicketId> },
    /// A delivery report; the addresses now marked as bouncing.
    Bounce { marked: Vec<String> },
    /// Kept aside with its reason (stable code) for a person to look at.
    Quarantined { reason: QuarantineReason, id: QuarantineId },
    /// Failed every try and could not even be quarantined: nothing was
    /// recorded, and the source leaves the message where it is.
    Failed { error: String },
}

impl Outcome {
    pub fn quarantine_reason(&self) -> Option<&'static str> {
        match self {
            Outcome::Quarantined { reason, .. } => Some(reason.as_str()),
            _ => None,
        }
    }

    pub fn ticket(&self) -> Option<TicketId> {
        match self {
            Outcome::Opened { ticket, .. } | Outcome::Replied { ticket, .. } => Some(*ticket),
            Outcome::Duplicate { ticket } | Outcome::Automatic { ticket, .. } => *ticket,
            Outcome::Bounce { .. } | Outcome::Quarantined { .. } | Outcome::Failed { .. } => None,
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
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// Messages per write transaction: enough to share a durable commit, few
/// enough that the portal's writes never wait long for the lock.
const CHUNK: usize = 16;
/// How much of a message over `limits.max_message_bytes` is read for its headers.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Tries per message before a failing one is quarantined as `internal_error`.
const ATTEMPTS: u32 = 3;
/// The pause before the second try, doubled before each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// One line about an outcome, as `ingest` and `quarantine release` print it.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Outcome::*;
        match self {
            Opened { ticket, .. } => write!(f, "opened ticket #{ticket}"),
            Replied { ticket, .. } => write!(f, "posted on ticket #{ticket}"),
            Duplicate { ticket: Some(t) } => write!(f, "duplicate (ticket #{t}); nothing changed"),
            Duplicate { ticket: None } => write!(f, "duplicate; nothing changed"),
            Automatic { kind, .. } => write!(f, "automatic mail ({kind}); not posted"),
            Bounce { marked } if marked.is_empty() => write!(f, "delivery report; nothing marked"),
            Bounce { marked } => write!(f, "delivery report; marked bouncing: {}", marked.join(", ")),
            Quarantined { reason, id } => write!(f, "quarantined #{id}: {reason}"),
            Failed { error } => write!(f, "failed, nothing recorded: {error}"),
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
    reason: QuarantineReason,
    detail: String,
}

/// The span of one message: where it came from, its Message-ID and, once
/// committed, its outcome.
fn message_span(source: &str, parsed: &Result<Parsed, Unreadable>) -> tracing::Span {
    let message_id = parsed.as_ref().ok().and_then(|p| p.message_id.as_deref());
    tracing::info_span!("message", source, message_id, outcome = tracing::field::Empty)
}

impl App {
    /// Processes one message. Blocking.
    pub fn ingest(&self, raw: &[u8], source: &str) -> Result<Outcome, IngestError> {
        let mut out = self.ingest_batch(&[raw], source)?;
        Ok(out.pop().expect("one outcome per message"))
    }

    /// Processes messages in short write transactions of [`CHUNK`] messages,
    /// each message in its own savepoint. Blocking. Returns one outcome per
    /// message once every one of them is committed; on `Err` (a transient
    /// failure: busy database, file store) no message may be settled, and a
    /// message committed before it is a duplicate the next time round.
    ///
    /// Parsing happens outside the write lock: the next chunk is parsed on a
    /// second thread while the current one is written, so a slow message
    /// never holds the lock that the portal and the other writers wait for.
    ///
    /// One bad message never stops the others: a panic or a store error while
    /// processing a message rolls back only that message, which is tried
    /// again after a pause (outside the write lock), [`ATTEMPTS`] times in
    /// all, and then quarantined as `internal_error` with the error.
    pub fn ingest_batch<R: AsRef<[u8]> + Sync>(&self, raws: &[R], source: &str) -> Result<Vec<Outcome>, IngestError> {
        let raws: Vec<&[u8]> = raws.iter().map(|r| r.as_ref()).collect();
        let mut parsed: Vec<Result<Parsed, Unreadable>> = Vec::with_capacity(raws.len());
        let mut outcomes: Vec<Option<Outcome>> = vec![None; raws.len()];
        let mut failed: Vec<(usize, String)> = Vec::new();
        let chunks: Vec<&[&[u8]]> = raws.chunks(CHUNK).collect();
        let parse_chunk =
            |chunk: &[&[u8]]| -> Vec<Result<Parsed, Unreadable>> { chunk.iter().map(|r| self.read(r)).collect() };
        std::thread::scope(|scope| {
            let mut next = chunks.first().map(|c| parse_chunk(c));
            for i in 0..chunks.len() {
                let current = next.take().unwrap_or_default();
                let ahead = chunks.get(i + 1).map(|c| scope.spawn(move || parse_chunk(c)));
                let start = parsed.len();
                parsed.extend(current);
                let which: Vec<usize> = (start..parsed.len()).collect();
                failed.extend(self.attempt(&raws, &parsed, &which, source, &mut outcomes)?);
                // read() catches the parser's panics, so a parse thread cannot fail.
                next = ahead.map(|h| h.join().expect("parse threads catch panics"));
            }
            Ok::<_, IngestError>(())
        })?;
        let mut pause = RETRY_PAUSE;
        for attempt in 2..=ATTEMPTS {
            if failed.is_empty() {
                break;
            }
            for (i, error) in &failed {
                let key = dedup_key(raws[*i], &parsed[*i]);
                tracing::warn!(source, attempt, key, error = %error, "processing a message failed; trying it again");
            }
            std::thread::sleep(pause);
            pause *= 2;
            let which: Vec<usize> = failed.iter().map(|(i, _)| *i).collect();
            failed = self.attempt(&raws, &parsed, &which, source, &mut outcomes)?;
        }
        if !failed.is_empty() {
            let now = clock::now();
            self.db.write(|tx| {
                for (i, error) in &failed {
                    let (raw, p) = (raws[*i], &parsed[*i]);
                    let key = dedup_key(raw, p);
                    tracing::error!(source, key, error = %error, "processing failed {ATTEMPTS} times; quarantining");
                    let detail = format!("internal error ({ATTEMPTS} attempts): {error}");
                    let p = p.as_ref().ok();
                    let kept = isolated(tx, || {
                        quarantine(tx, &key, QuarantineReason::InternalError, &detail, source, p, raw, now)
                    })?;
                    let failed = |e| Outcome::Failed { error: format!("{error}; quarantining it failed too: {e}") };
                    outcomes[*i] = Some(kept.unwrap_or_else(failed));
                }
                Ok::<_, StoreError>(())
            })?;
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.expect("every message has an outcome")).collect();
        // Counted and logged only now that the outcomes are committed.
        for (o, p) in outcomes.iter().zip(&parsed) {
            let span = message_span(source, p);
            span.record("outcome", o.label());
            let _in_message = span.enter();
            crate::metrics::message(o.label(), o.quarantine_reason());
            match o {
                Outcome::Quarantined { reason, id } => {
                    tracing::warn!(source, reason = reason.as_str(), id = id.0, "message quarantined")
                }
                Outcome::Failed { error } => tracing::error!(source, error, "message left at the source"),
                o => {
                    tracing::debug!(source, outcome = o.label(), ticket = o.ticket().map(|t| t.0), "message processed")
                }
            }
        }
        Ok(outcomes)
    }

    /// One write transaction over the messages `which`: fills in their
    /// outcomes and returns those that failed, with the error, rolled back.
    fn attempt(
        &self,
        raws: &[&[u8]],
        parsed: &[Result<Parsed, Unreadable>],
        which: &[usize],
        source: &str,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<Vec<(usize, String)>, IngestError> {
        let now = clock::now();
        // One syncfs for the transaction's attachment files instead of two fsyncs each.
        let blobs = self.blobs.deferred();
        let env = Env { config: &self.config, keys: &self.keys, blobs: &blobs, now };
        let results = self.db.write(|tx| {
            let mut results = Vec::with_capacity(which.len());
            for &i in which {
                let span = message_span(source, &parsed[i]);
                results.push((i, span.in_scope(|| self.in_savepoint(tx, raws[i], &parsed[i], source, &env))?));
            }
            blobs.sync()?;
            Ok::<_, StoreError>(results)
        })?;
        let mut failed = Vec::new();
        for (i, result) in results {
            match result {
                Ok(o) => outcomes[i] = Some(o),
                Err(e) => failed.push((i, e)),
            }
        }
        Ok(failed)
    }

    /// Quarantines a message larger than `limits.max_message_bytes` as
    /// `message_too_large` without ever holding it in memory: only its head
    /// (at most [`HEAD_BYTES`]) is read for the headers, which go into the
    /// quarantine entry with the size; the whole message is streamed from
    /// `content` into a file under `data_dir/quarantine/`, named by its
    /// SHA-256, whose path the entry records. A message seen before is not
    /// copied again and keeps its outcome. Blocking.
    pub fn quarantine_oversized(&self, content: &mut dyn Read, source: &str) -> Result<Outcome, IngestError> {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        (&mut *content).take(HEAD_BYTES as u64).read_to_end(&mut head).map_err(StoreError::Io)?;
        let header = parse::header_section(&head);
        let parsed = parse::parse(header).ok();
        if let Some(key) = parsed.as_ref().filter(|p| p.message_id.is_some()).map(Parsed::dedup_key)
            && let Some(seen) = self.db.with(|c| inbound::seen(c, &key))?
        {
            return Ok(self.db.with(|c| earlier(c, &key, seen))?);
        }
        let (path, size, sha) = self.keep_file(&head, content).map_err(StoreError::Io)?;
        let key = match parsed.as_ref().and_then(|p| p.message_id.as_deref()) {
            Some(id) => format!("mid:{id}"),
            None => format!("sha256:{sha}"),
        };
        let max = self.config.limits.max_message_bytes;
        let path = path.to_string_lossy();
        let detail = format!("{size} bytes, more than limits.max_message_bytes = {max}; the message is kept in {path}");
        let entry = inbound::Quarantined {
            reason: QuarantineReason::MessageTooLarge,
            detail: &detail,
            source,
            key: &key,
            message_id: parsed.as_ref().and_then(|p| p.message_id.as_deref()),
            sender: parsed.as_ref().and_then(|p| p.from.as_deref()),
            subject: parsed.as_ref().map(|p| p.subject.as_str()),
            raw: header,
            raw_path: Some(&path),
        };
        let now = clock::now();
        let outcome = self.db.write(|tx| match inbound::seen(tx, &key)? {
            Some(seen) => earlier(tx, &key, seen),
            None => record_quarantine(tx, &entry, now),
        })?;
        tracing::warn!(source, size, path = %path, "message over limits.max_message_bytes quarantined");
        Ok(outcome)
    }

    /// Streams `head` and the rest of `content` into `data_dir/quarantine/SHA256.eml`, durably;
    /// returns the path, the size and the SHA-256 (hex).
    fn keep_file(&self, head: &[u8], content: &mut dyn Read) -> std::io::Result<(PathBuf, u64, String)> {
        let dir = self.config.data_dir.join("quarantine");
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{}.tmp", crate::signing::random_token()));
        let copied = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            let mut hash = Sha256::new();
            hash.update(head);
            file.write_all(head)?;
            let mut size = head.len() as u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match content.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hash.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                size += n as u64;
            }
            file.sync_all()?;
            Ok((size, data_encoding::HEXLOWER.encode(&hash.finalize())))
        })();
        let (size, sha) = match copied {
            Ok(done) => done,
            Err(e) => {
                // A source that failed half-way tries the whole message again later.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let path = dir.join(format!("{sha}.eml"));
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok((path, size, sha))
    }

    fn read(&self, raw: &[u8]) -> Result<Parsed, Unreadable> {
        let max = self.config.limits.max_message_bytes;
        if raw.len() as u64 > max {
            return Err(Unreadable {
                reason: QuarantineReason::MessageTooLarge,
                detail: format!("{} bytes, more than limits.max_message_bytes = {max}", raw.len()),
            });
        }
        // mail-parser is not expected to panic, but hostile input must never take the process down.
        match catch_unwind(AssertUnwindSafe(|| parse::parse(raw))) {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(Unreadable { reason: e.code(), detail: e.to_string() }),
            Err(_) => Err(Unreadable {
                reason: QuarantineReason::ParserPanic,
                detail: "the MIME parser failed on this message".into(),
            }),
        }
    }

    /// One message inside a savepoint (see [`isolated`]).
    fn in_savepoint(
        &self,
        tx: &Connection,
        raw: &[u8],
        parsed: &Result<Parsed, Unreadable>,
        source: &str,
        env: &Env,
    ) -> Result<Result<Outcome, String>, StoreError> {
        isolated(tx, || self.process(tx, raw, parsed, source, env))
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
                    return earlier(tx, &key, seen);
                }
                return quarantine(tx, &key, u.reason, &u.detail, source, None, raw, now);
            }
        };
        let key = p.dedup_key();
        if let Some(seen) = inbound::seen(tx, &key)? {
            return earlier(tx, &key, seen);
        }
        let notifier = Notifier { config: &self.config, keys: &self.keys, now };
        let trusted = &self.config.security.trusted_authserv_ids;
        let named = sender::of(&p.from_headers, &p.authentication_results, trusted);
        let sender = match &named.address {
            Some(a) => users::by_address(tx, a)?.filter(|u| !u.disabled),
            None => None,
        };

        if let Some(kind) = auto::classify(p) {
            if kind == auto::AutoKind::Bounce {
                let marked = self.bounce(tx, p, now)?;
                inbound::mark_processed(tx, &key, Settled::Bounce, None, now)?;
                return Ok(Outcome::Bounce { marked });
            }
            // Automatic mail on a known ticket is noted there, so staff see
            // an out-of-office; it is never posted and never answered. Only
            // someone who may act on the ticket leaves a note: anyone else's
            // mail is handled as if it named no ticket.
            let ticket = match (self.referenced_ticket(tx, p)?, &sender) {
                (Some(t), Some(u)) if actions::may_act(u, &tickets::get(tx, t)?) => Some(t),
                _ => None,
            };
            if let Some(t) = ticket {
                let from = named.address.as_deref().unwrap_or("unknown sender");
                tickets::add_event(
                    tx,
                    t,
                    EventKind::Automatic,
                    &format!("{} mail from {from} was not posted", kind.as_str()),
                    now,
                )?;
            }
            inbound::mark_processed(tx, &key, Settled::Automatic, ticket, now)?;
            return Ok(Outcome::Automatic { kind, ticket });
        }

        if let Some(problem) = named.problem {
            let detail = "the message does not name exactly one sender (one From header with one address)";
            return quarantine(tx, &key, problem.code(), detail, source, Some(p), raw, now);
        }
        let Some(from) = named.address.as_deref() else {
            return quarantine(
                tx,
                &key,
                QuarantineReason::NoSender,
                "the message has no From address",
                source,
                Some(p),
                raw,
                now,
            );
        };
        let told = Told { tx, notifier: &notifier, to: from, known: sender.is_some(), named: &named, p };
        if sender::dmarc_fails(&p.authentication_results, trusted) {
            let notice = told.tell(&Notice::DmarcQuarantined { subject: &p.subject })?;
            let detail = "a trusted Authentication-Results header reports dmarc=fail";
            return quarantine(tx, &key, QuarantineReason::DmarcFail, detail, source, Some(p), raw, now)
                .and_then(noted(tx, &notice));
        }

        let mut facts = self.gather(tx, p, sender.as_ref())?;
        facts.sender_authenticated = named.authenticated.is_some();
        let route = route::decide(&facts);
        match route {
            Route::Existing { ticket, verified, .. } => {
                // decide() threads onto a ticket only for a known sender who may act on it.
                let author = sender.ok_or(StoreError::NotFound)?;
                // Only a proven author names themselves: a forger must not rename a user.
                let author = if verified { users::adopt_name(tx, author, p.from_name.as_deref())? } else { author };
                let ticket = tickets::get(tx, ticket)?;
                self.post_reply(tx, env, &notifier, ticket, &author, p, raw, &key, verified)
            }
            Route::StaffUnverified { ticket } => {
                let ticket = tickets::get(tx, ticket)?;
                let notice = told.tell(&Notice::StaffUnverified { ticket: &ticket, subject: &p.subject })?;
                let detail = format!(
                    "{from} is staff; the mail names ticket {} but carries no reply token and no trusted authentication",
                    ticket.id
                );
                quarantine(tx, &key, QuarantineReason::StaffUnverified, &detail, source, Some(p), raw, now)
                    .and_then(noted(tx, &notice))
            }
            Route::NewTicket { verified } => {
                let author = match sender {
                    Some(u) if verified => users::adopt_name(tx, u, p.from_name.as_deref())?,
                    Some(u) => u,
                    None => self.enrol_unknown(tx, from, p.from_name.as_deref(), now)?,
                };
                let Some(team) = author.team_id else {
                    return quarantine(
                        tx,
                        &key,
                        QuarantineReason::StaffWithoutTicket,
                        "staff mail names no ticket",
                        source,
                        Some(p),
                        raw,
                        now,
                    );
                };
                self.open_ticket(tx, env, &notifier, (team, source), &author, p, raw, &key, verified)
            }
            Route::UnknownSender => {
                let notice = told.tell(&Notice::UnknownSender { subject: &p.subject })?;
                let detail = format!("{from} is not a known user");
                quarantine(tx, &key, QuarantineReason::UnknownSender, &detail, source, Some(p), raw, now)
                    .and_then(noted(tx, &notice))
            }
            Route::TokenSenderMismatch { ticket } => {
                let notice = told.tell(&Notice::TokenSenderMismatch { subject: &p.subject })?;
                let detail = format!("{from} used the reply address of another user on ticket {ticket}");
                let outcome =
                    quarantine(tx, &key, QuarantineReason::TokenSenderMismatch, &detail, source, Some(p), raw, now)
                        .and_then(noted(tx, &notice))?;
                if let Outcome::Quarantined { id, .. } = &outcome {
                    let note = format!("{detail}; it is held as quarantine entry #{id} (notice {notice})");
                    tickets::add_event(tx, ticket, EventKind::TokenSenderMismatch, &note, now)?;
                }
                Ok(outcome)
            }
            Route::StaffWithoutTicket => {
                let notice = told.tell(&Notice::StaffWithoutTicket { subject: &p.subject })?;
                let detail = format!("{from} is staff and the mail names no ticket");
                quarantine(tx, &key, QuarantineReason::StaffWithoutTicket, &detail, source, Some(p), raw, now)
                    .and_then(noted(tx, &notice))
            }
        }
    }

    /// Opens a ticket for `team` with the message as its first post.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_ticket(
        &self,
        tx: &Connection,
        env: &Env,
        notifier: &Notifier,
        (team, source): (TeamId, &str),
        author: &User,
        p: &Parsed,
        raw: &[u8],
        key: &str,
        verified: bool,
    ) -> Result<Outcome, StoreError> {
        let uploads = self.uploads(p);
        let post = mail_post(author, p, raw, &uploads, verified);
        let posted = actions::open(tx, env, team, &p.subject, source, &post)?;
        self.tell_refused(tx, notifier, author, &posted, p)?;
        inbound::mark_processed(tx, key, Settled::Opened, Some(posted.ticket.id), env.now)?;
        Ok(Outcome::Opened { ticket: posted.ticket.id, message: posted.message })
    }

    /// Posts the message on `ticket`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn post_reply(
        &self,
        tx: &Connection,
        env: &Env,
        notifier: &Notifier,
        ticket: Ticket,
        author: &User,
        p: &Parsed,
        raw: &[u8],
        key: &str,
        verified: bool,
    ) -> Result<Outcome, StoreError> {
        let uploads = self.uploads(p);
        let (close, body) = staff_close_command(author, &p.body);
        let post = Post { body, close, ..mail_post(author, p, raw, &uploads, verified) };
        let posted = actions::reply(tx, env, ticket, &post)?;
        self.tell_refused(tx, notifier, author, &posted, p)?;
        inbound::mark_processed(tx, key, Settled::Replied, Some(posted.ticket.id), env.now)?;
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
            notify::notice(
                tx,
                notifier,
                &author.email,
                &notice,
                p.message_id.as_deref(),
                Lang::of(p.language.as_deref()),
            )?;
        }
        Ok(())
    }

    /// Collects what routing needs: token, references, subject tag, sender.
    pub(crate) fn gather(&self, tx: &Connection, p: &Parsed, sender: Option<&User>) -> Result<Facts, StoreError> {
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
                    // A valid signature over a ticket or user that no longer exists is no token;
                    // any other store error must not turn a reply into a new ticket.
                    let (Some(ticket), Some(_owner)) =
                        (found(tickets::get(tx, t.ticket))?, found(users::by_id(tx, t.user))?)
                    else {
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
            let may_act = may_act(&tickets::get(tx, ticket)?);
            facts.referenced = Some(Named { ticket, may_act, participant: false });
        }
        if let Some(n) = token::ticket_in_subject(&p.subject)
            && let Some(ticket) = found(tickets::get(tx, n))?
        {
            let participant = match sender {
                Some(u) => tickets::is_participant(tx, n, u.id)?,
                None => false,
            };
            facts.tagged = Some(Named { ticket: n, may_act: may_act(&ticket), participant });
        }
        Ok(facts)
    }

    fn referenced_ticket(&self, tx: &Connection, p: &Parsed) -> Result<Option<TicketId>, StoreError> {
        let mut ids = p.references.clone();
        ids.extend(p.in_reply_to.iter().cloned());
        tickets::by_message_ids(tx, &ids)
    }

    /// Marks the recipient of one of our bounced mails as bouncing. Only a
    /// permanent failure report that came back to the signed VERP envelope
    /// sender of a mail to that very address counts (envelope recipient from
    /// Delivered-To / X-Original-To / To), so a forged or replayed report
    /// cannot switch off mail to anyone else.
    fn bounce(&self, tx: &Connection, p: &Parsed, now: i64) -> Result<Vec<String>, StoreError> {
        let Some(b) = p.bounce.as_ref().filter(|b| b.permanent) else { return Ok(Vec::new()) };
        let support = &self.config.support.address;
        let tags = p.recipients.iter().filter_map(|r| address::tag_of(r, support)).filter_map(token::BounceTag::parse);
        let mut sent = None;
        for tag in tags {
            if let Some((ticket, recipient, message_id)) = outbox::addressed(tx, tag.row)?
                && tag.verify(&self.keys, &recipient, &message_id)
            {
                sent = Some((ticket, recipient));
                break;
            }
        }
        let Some((ticket, recipient)) = sent.filter(|(_, r)| b.recipients.contains(r)) else { return Ok(Vec::new()) };
        let why = format!("a notification to {recipient} bounced permanently");
        users::set_bouncing(tx, &recipient, Some(&why))?;
        if let Some(t) = ticket {
            tickets::add_event(
                tx,
                t,
                EventKind::Bounce,
                &format!("{why}; no more mail goes there until it is cleared"),
                now,
            )?;
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

/// What a message seen before comes to: a quarantined one stays quarantined
/// (so a source that crashed before filing it files it in quarantine after
/// the restart), anything else is a duplicate that changes nothing.
fn earlier(tx: &Connection, key: &str, seen: inbound::Seen) -> Result<Outcome, StoreError> {
    if seen.outcome == Settled::Quarantined
        && let Some((id, reason)) = inbound::quarantined_as(tx, key)?
    {
        return Ok(Outcome::Quarantined { reason, id });
    }
    Ok(Outcome::Duplicate { ticket: seen.ticket_id })
}

/// Runs `f` inside a savepoint. A panic or a non-transient store error rolls
/// back only what `f` did and comes back as `Ok(Err(text))`; a transient
/// error ends the whole transaction.
fn isolated<T>(tx: &Connection, f: impl FnOnce() -> Result<T, StoreError>) -> Result<Result<T, String>, StoreError> {
    // Cached statements: execute_batch would parse these anew for every message.
    tx.prepare_cached("SAVEPOINT message")?.execute([])?;
    let failure = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            tx.prepare_cached("RELEASE message")?.execute([])?;
            return Ok(Ok(v));
        }
        Ok(Err(e)) if e.is_transient() => return Err(e),
        Ok(Err(e)) => e.to_string(),
        Err(panic) => format!("panic: {}", panic_text(panic.as_ref())),
    };
    tx.execute_batch("ROLLBACK TO message; RELEASE message")?;
    Ok(Err(failure))
}

/// `None` for a row that does not exist; every other error stays an error.
fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The text of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    match panic.downcast_ref::<&str>() {
        Some(s) => s,
        None => panic.downcast_ref::<String>().map(String::as_str).unwrap_or("(no message)"),
    }
}

/// The idempotency key: the Message-ID, else the content hash (also for
/// messages that could not be parsed, so a re-delivery is recognised).
fn dedup_key(raw: &[u8], parsed: &Result<Parsed, Unreadable>) -> String {
    match parsed {
        Ok(p) => p.dedup_key(),
        Err(_) => format!("sha256:{}", crate::digest::sha256_hex(raw)),
    }
}

fn mail_post<'a>(
    author: &'a User,
    p: &'a Parsed,
    raw: &'a [u8],
    uploads: &'a [Upload<'a>],
    verified: bool,
) -> Post<'a> {
    Post {
        unverified: !verified,
        author,
        body: &p.body,
        quoted: &p.quoted,
        via: Via::Mail,
        message_id: p.message_id.as_deref(),
        raw: Some(raw),
        attachments: uploads,
        close: false,
    }
}

/// Staff close a ticket by mail with a first line of `#close`; the rest of
/// the text, if any, is posted with the close, as one action.
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
    reason: QuarantineReason,
    detail: &str,
    source: &str,
    p: Option<&Parsed>,
    raw: &[u8],
    now: i64,
) -> Result<Outcome, StoreError> {
    let entry = inbound::Quarantined {
        reason,
        detail,
        source,
        key,
        message_id: p.and_then(|p| p.message_id.as_deref()),
        sender: p.and_then(|p| p.from.as_deref()),
        subject: p.map(|p| p.subject.as_str()),
        raw,
        raw_path: None,
    };
    record_quarantine(tx, &entry, now)
}

/// Stores a quarantine entry and remembers its message as handled.
fn record_quarantine(tx: &Connection, entry: &inbound::Quarantined, now: i64) -> Result<Outcome, StoreError> {
    let id = inbound::quarantine(tx, entry, now)?;
    inbound::mark_processed(tx, entry.key, Settled::Quarantined, None, now)?;
    Ok(Outcome::Quarantined { reason: entry.reason, id })
}

/// Telling the sender of a message that was not posted, without backscatter.
struct Told<'a> {
    tx: &'a Connection,
    notifier: &'a Notifier<'a>,
    to: &'a str,
    /// The sender is a known, active user (by address or alias).
    known: bool,
    named: &'a sender::Sender,
    p: &'a Parsed,
}

impl Told<'_> {
    /// Sends `notice` when the address may receive it without backscatter
    /// (a known user, or a sender a trusted authentication check proved) and
    /// the rate limit allows; returns what the quarantine entry records.
    fn tell(&self, notice: &Notice) -> Result<String, StoreError> {
        if !self.known && self.named.authenticated.is_none() {
            return Ok(format!(
                "not sent: {} is not a known user and no trusted authentication proves the address (no backscatter)",
                self.to
            ));
        }
        Ok(
            if notify::notice(
                self.tx,
                self.notifier,
                self.to,
                notice,
                self.p.message_id.as_deref(),
                Lang::of(self.p.language.as_deref()),
            )? {
                format!("sent to {}", self.to)
            } else {
                format!("not sent: {} had a notice recently, is disabled or bounces", self.to)
            },
        )
    }
}

/// Records `notice` on the quarantine entry an outcome names.
fn noted<'a>(tx: &'a Connection, notice: &'a str) -> impl FnOnce(Outcome) -> Result<Outcome, StoreError> + 'a {
    move |outcome| {
        if let Outcome::Quarantined { id, .. } = &outcome {
            inbound::set_notice(tx, *id, notice)?;
        }
        Ok(outcome)
    }
}
