//! The production mail source: one IMAP mailbox ([`ImapConfig`]), read with async-imap.
//!
//! Per connection: connect (implicit TLS, STARTTLS, or plain only when the config says
//! `plain-insecure`; certificates are always verified, against the system roots plus
//! `ca_file`), log in, create the processed and quarantine folders when missing, SELECT the
//! watched folder, then one full pass over everything in it. After that: IDLE when the server
//! offers it and the config allows (re-issued every 25 minutes, under the 29 of RFC 2177),
//! polling every `poll_seconds` otherwise; each wake-up is an incremental pass over the UIDs
//! above the highest one seen.
//!
//! A pass takes `batch_size` messages at a time, asks their `RFC822.SIZE` first, fetches them
//! in batches of at most [`BATCH_BYTES`], hands each batch to [`App::ingest_batch`] while
//! the next batch is being fetched, and only once that batch has committed moves the messages:
//! quarantined ones to the quarantine folder, all others to the processed folder (`UID MOVE`,
//! or COPY + `\Deleted` + `UID EXPUNGE` where MOVE is missing). A message over
//! `limits.max_message_bytes` is never fetched whole: it is fetched in parts and streamed into
//! quarantine ([`App::quarantine_oversized`]). A crash between commit and move leaves the
//! message in the folder; the next pass reads it again and the pipeline recognises the
//! duplicate, which keeps its outcome: a message that had been quarantined is filed in the
//! quarantine folder again.
//!
//! The folder's UIDVALIDITY and the highest committed UID are checkpointed in SQLite after each pass
//! ([`crate::store::imap`]). A new UIDVALIDITY (folder recreated, server migrated) starts again
//! from UID 1; the pipeline's deduplication makes that safe.
//!
//! Faults (dropped connection, server restart, wrong password, a transient database error)
//! end the session; it is re-established with exponential backoff and jitter (1 s doubling to
//! 5 minutes, reset once a session got through a whole pass), never in a tight loop. Content
//! that is not a mail message is quarantined by the pipeline like any other unreadable mail;
//! a message the *server* fails on (it kills the session each time it is read) is narrowed
//! down by strikes and then left in the folder with an error in the log (see
//! [`Source::strike`]), so it cannot block the messages behind it. Every network step has a
//! timeout, so a silently dead connection is noticed too. On shutdown the batch in hand is
//! committed and moved before the source returns. The password never reaches a log line.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::{ImapConfig, TlsMode};
use crate::inbound::{BATCH_BYTES, Settle};
use crate::pipeline::{IngestError, Outcome};
use crate::store::imap::{self as checkpoint, Checkpoint};

/// IDLE is re-issued this often (servers may drop an IDLE older than 29 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one command, a whole batch FETCH included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The byte stream under the IMAP client.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Session = async_imap::Session<Conn>;

/// Reads `mailbox` until `shutdown` turns true (or its sender is dropped). Returns only then:
/// every fault is logged and followed by a reconnect.
pub async fn run(pipeline: App, mailbox: ImapConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut source = Source {
        pipeline,
        mb: mailbox,
        shutdown,
        closed: false,
        backoff: BACKOFF_MIN,
        in_hand: Vec::new(),
        strikes: HashMap::new(),
        skipped: HashSet::new(),
    };
    source.run().await
}

/// What the server offers, asked once per connection.
#[derive(Debug, Clone, Copy)]
struct Caps {
    mv: bool,
    idle: bool,
    uidplus: bool,
}

struct Source {
    pipeline: App,
    mb: ImapConfig,
    shutdown: watch::Receiver<bool>,
    /// The shutdown sender is gone: treated as a shutdown.
    closed: bool,
    backoff: Duration,
    /// UIDs fetched but not yet filed: the ones to blame when the session dies.
    in_hand: Vec<(u32, u32)>,
    /// (UIDVALIDITY, UID) -> how many sessions died while the message was in hand.
    strikes: HashMap<(u32, u32), u32>,
    /// Messages the server fails on every time, even alone: left where they are.
    skipped: HashSet<(u32, u32)>,
}

/// Messages of one pass done so far, for the progress line.
struct Progress {
    done: usize,
    total: usize,
    started: Instant,
    shown: bool,
}

/// A batch whose transaction runs on a blocking thread while the next one is fetched.
struct InFlight {
    uids: Vec<u32>,
    job: JoinHandle<Result<Vec<Outcome>, IngestError>>,
}

/// A batch whose transaction has committed: its messages may now be filed.
struct Committed {
    uids: Vec<u32>,
    outcomes: Vec<Outcome>,
}

/// Waits for a batch's transaction. On an error nothing was committed: the messages stay in
/// the folder and the next session reads them again.
async fn committed(batch: InFlight) -> anyhow::Result<Committed> {
    let outcomes = batch
        .job
        .await
        .context("the pipeline task failed")?
        .context("the batch was not committed; it stays in the folder and is retried")?;
    Ok(Committed { uids: batch.uids, outcomes })
}

impl Source {
    async fn run(&mut self) -> anyhow::Result<()> {
        let label = self.mb.label.clone();
        loop {
            if self.stopping() {
                return Ok(());
            }
            self.in_hand.clear();
            match self.session().await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::error!(mailbox = %label, error = %format!("{e:#}"), "IMAP session ended"),
            }
            self.strike();
            let delay = self.next_backoff();
            tracing::info!(mailbox = %label, seconds = delay.as_secs_f32(), "reconnecting to IMAP after a pause");
            if self.pause(delay).await {
                return Ok(());
            }
        }
    }

    /// Blames the messages in hand for a session that died. A server restart strikes a batch
    /// once; a message the server cannot deliver (Dovecot drops the connection on a message
    /// file it cannot read) strikes again and again. From two strikes on, its batch is read one
    /// message at a time; a message that kills the session alone three times is skipped (left
    /// in the folder, logged), so one bad message never blocks the mailbox.
    fn strike(&mut self) {
        let alone = self.in_hand.len() == 1;
        for key in std::mem::take(&mut self.in_hand) {
            let n = self.strikes.entry(key).or_insert(0);
            *n += 1;
            if alone && *n >= 3 && self.skipped.insert(key) {
                tracing::error!(
                    mailbox = %self.mb.label,
                    folder = %self.mb.folder,
                    uidvalidity = key.0,
                    uid = key.1,
                    "the server fails every time it delivers this message; it is left in the folder for a person to look at"
                );
            }
        }
    }

    fn stopping(&self) -> bool {
        self.closed || *self.shutdown.borrow()
    }

    /// Sleeps for `d`; true when shutdown was requested meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            changed = self.shutdown.changed() => if changed.is_err() { self.closed = true },
        }
        self.stopping()
    }

    /// The current backoff with jitter (50-100 %), doubling the next one.
    fn next_backoff(&mut self) -> Duration {
        let current = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        let r = u64::from_le_bytes(crate::signing::random_bytes::<8>());
        current.mul_f64(0.5 + (r >> 11) as f64 / (1u64 << 53) as f64 / 2.0)
    }

    /// One connection, from connect to logout. Ok only on shutdown.
    async fn session(&mut self) -> anyhow::Result<()> {
        let mut s = connect(&self.mb).await?;
        let caps = within("CAPABILITY", s.capabilities()).await?;
        let caps = Caps { mv: caps.has_str("MOVE"), idle: caps.has_str("IDLE"), uidplus: caps.has_str("UIDPLUS") };
        for folder in [self.mb.processed_folder.clone(), self.mb.quarantine_folder.clone()] {
            ensure_folder(&mut s, &folder).await?;
        }
        let selected = within("SELECT", s.select(&self.mb.folder))
            .await
            .with_context(|| format!("cannot open folder {:?}", self.mb.folder))?;
        let uidvalidity = selected.uid_validity.ok_or_else(|| anyhow!("the server reported no UIDVALIDITY"))?;
        let known = self.load_checkpoint().await?;
        if known.is_some_and(|k| k.uidvalidity != uidvalidity) {
            tracing::warn!(
                mailbox = %self.mb.label,
                folder = %self.mb.folder,
                old = known.map(|k| k.uidvalidity),
                new = uidvalidity,
                "UIDVALIDITY changed: rescanning the folder (messages seen before are recognised as duplicates)"
            );
        }
        if known.is_none_or(|k| k.uidvalidity != uidvalidity) {
            self.save_checkpoint(Checkpoint { uidvalidity, last_uid: 0 }).await?;
        }
        tracing::info!(
            mailbox = %self.mb.label,
            host = %self.mb.host,
            folder = %self.mb.folder,
            messages = selected.exists,
            idle = caps.idle && self.mb.idle,
            "IMAP connected"
        );

        // After a (re)connect everything still in the folder is read: it is either new or was
        // committed but not yet moved when the last session ended. A pass that found mail is
        // followed by another at once, so mail that came in meanwhile is not left to IDLE.
        let mut highest: u32 = 0;
        let mut first = true;
        loop {
            let reached = self.pass(&mut s, caps, highest.saturating_add(1), uidvalidity).await?;
            crate::metrics::imap_pass(&self.mb.label);
            if first {
                // Only a session that got through a whole pass counts as recovered: a server
                // that drops every session half-way still sees the backoff grow.
                self.backoff = BACKOFF_MIN;
                first = false;
            }
            let progressed = reached > highest;
            highest = highest.max(reached);
            if self.stopping() {
                break;
            }
            if progressed {
                continue;
            }
            if caps.idle && self.mb.idle {
                s = self.idle(s).await?;
            } else if self.pause(Duration::from_secs(self.mb.poll_seconds)).await {
                break;
            }
            if self.stopping() {
                break;
            }
        }
        // Best effort: the server cleans up a vanished client as well.
        let _ = tokio::time::timeout(Duration::from_secs(5), s.logout()).await;
        tracing::info!(mailbox = %self.mb.label, "IMAP source stopped");
        Ok(())
    }

    /// Waits in IDLE until the server reports a change, the renewal time, or shutdown.
    ///
    /// Mail that arrives while a pass runs is announced (`* N EXISTS`) in the answer to some
    /// other command, or just before IDLE's continuation, where async-imap files it among the
    /// unsolicited responses; waiting then would sleep through it. So those are checked before
    /// and right after entering IDLE.
    async fn idle(&mut self, s: Session) -> anyhow::Result<Session> {
        let announced = s.unsolicited_responses.clone();
        let arrived = || {
            let mut new = false;
            while let Ok(r) = announced.try_recv() {
                new |= matches!(r, UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_));
            }
            new
        };
        if arrived() {
            return Ok(s);
        }
        let mut handle = s.idle();
        within("IDLE", handle.init()).await?;
        if !arrived() {
            let (wait, stop) = handle.wait_with_timeout(IDLE_RENEW);
            tokio::pin!(wait);
            let response = tokio::select! {
                r = &mut wait => r.context("connection lost during IDLE")?,
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        self.closed = true;
                    }
                    // Dropping the stop source ends the wait with ManualInterrupt.
                    drop(stop);
                    within("IDLE interrupt", wait.as_mut()).await?
                }
            };
            if let IdleResponse::NewData(data) = &response {
                tracing::debug!(mailbox = %self.mb.label, response = ?data.parsed(), "IDLE woke up");
            }
        }
        within("DONE", handle.done()).await
    }

    /// Processes every message with a UID of at least `from`; returns the highest UID settled
    /// (or `from - 1` when there was none). Batch N+1 is fetched while batch N commits.
    async fn pass(&mut self, s: &mut Session, caps: Caps, from: u32, uidvalidity: u32) -> anyhow::Result<u32> {
        // What the server volunteered so far (EXPUNGEs of our own moves, mostly) is covered by
        // the search below. Emptying the bounded channel leaves room for an EXISTS that comes
        // after it, which [`Source::idle`] looks for.
        while s.unsolicited_responses.try_recv().is_ok() {}
        // NOOP first, so the server's view includes mail that arrived since the last command.
        within("NOOP", s.noop()).await?;
        let found = within("UID SEARCH", s.uid_search(format!("UID {from}:*"))).await?;
        // "n:*" always includes the highest UID, even below n (RFC 3501 6.4.8).
        let mut uids: Vec<u32> =
            found.into_iter().filter(|&u| u >= from && !self.skipped.contains(&(uidvalidity, u))).collect();
        uids.sort_unstable();
        let mut highest = from.saturating_sub(1);
        if uids.is_empty() {
            return Ok(highest);
        }
        let mut progress = Progress {
            done: 0,
            total: uids.len(),
            started: Instant::now(),
            shown: uids.len() > self.mb.batch_size as usize,
        };
        if progress.shown {
            tracing::info!(mailbox = %self.mb.label, total = progress.total, "reading a backlog");
        }
        let mut in_flight: Option<InFlight> = None;
        let max = self.pipeline.config().limits.max_message_bytes;
        for chunk in uids.chunks(self.mb.batch_size.max(1) as usize) {
            let suspect = chunk.iter().any(|&u| self.strikes.get(&(uidvalidity, u)).is_some_and(|&n| n >= 2));
            let groups: Vec<&[u32]> = if suspect { chunk.chunks(1).collect() } else { vec![chunk] };
            for group in groups {
                if suspect && let Some(batch) = in_flight.take() {
                    // One message in hand at a time, so a failure names its message.
                    highest = highest.max(self.complete(s, caps, batch, &mut progress).await?);
                    if self.stopping() {
                        self.record(uidvalidity, highest).await;
                        return Ok(highest);
                    }
                }
                // Reading the size makes the server read the message too.
                self.in_hand =
                    in_flight.iter().flat_map(|b| b.uids.iter()).chain(group).map(|&u| (uidvalidity, u)).collect();
                let sizes = self.sizes(s, group).await?;
                for piece in pieces(group, &sizes, max) {
                    let piece = match piece {
                        Piece::Batch(uids) => uids,
                        Piece::Oversized(uid, size) => {
                            if let Some(batch) = in_flight.take() {
                                highest = highest.max(self.complete(s, caps, batch, &mut progress).await?);
                            }
                            self.in_hand = vec![(uidvalidity, uid)];
                            let outcome = self.quarantine_oversized(s, uid, size).await?;
                            let done = Committed { uids: vec![uid], outcomes: vec![outcome] };
                            highest = highest.max(self.file(s, caps, done, &mut progress).await?);
                            if self.stopping() {
                                self.record(uidvalidity, highest).await;
                                return Ok(highest);
                            }
                            continue;
                        }
                    };
                    self.in_hand =
                        in_flight.iter().flat_map(|b| b.uids.iter()).chain(&piece).map(|&u| (uidvalidity, u)).collect();
                    let fetched = self.fetch(s, &piece, uidvalidity).await?;
                    let ready = match in_flight.take() {
                        Some(batch) => Some(committed(batch).await?),
                        None => None,
                    };
                    // The next commit starts before the last one is filed, so the server's MOVE
                    // runs while the database works.
                    if !fetched.is_empty() && !self.stopping() {
                        in_flight = Some(self.start_batch(fetched));
                    }
                    if let Some(done) = ready {
                        highest = highest.max(self.file(s, caps, done, &mut progress).await?);
                    }
                    if self.stopping() {
                        if let Some(batch) = in_flight.take() {
                            highest = highest.max(self.complete(s, caps, batch, &mut progress).await?);
                        }
                        self.record(uidvalidity, highest).await;
                        return Ok(highest);
                    }
                }
            }
        }
        if let Some(batch) = in_flight.take() {
            highest = highest.max(self.complete(s, caps, batch, &mut progress).await?);
        }
        self.in_hand.clear();
        self.record(uidvalidity, highest).await;
        Ok(highest)
    }

    /// Waits for a batch's commit, then files it.
    async fn complete(
        &mut self,
        s: &mut Session,
        caps: Caps,
        batch: InFlight,
        p: &mut Progress,
    ) -> anyhow::Result<u32> {
        let done = committed(batch).await?;
        self.file(s, caps, done, p).await
    }

    /// Moves a committed batch's messages to the processed and quarantine folders; returns
    /// the highest UID and advances the progress line.
    async fn file(&mut self, s: &mut Session, caps: Caps, done: Committed, p: &mut Progress) -> anyhow::Result<u32> {
        let mut processed = Vec::new();
        let mut quarantined = Vec::new();
        for (&uid, outcome) in done.uids.iter().zip(&done.outcomes) {
            match Settle::of(outcome) {
                Settle::Processed => processed.push(uid),
                Settle::Quarantined => quarantined.push(uid),
                // Left in the folder; the next session's full pass tries it again.
                Settle::Leave => {}
            }
        }
        settle(s, caps, &processed, &self.mb.processed_folder).await?;
        settle(s, caps, &quarantined, &self.mb.quarantine_folder).await?;
        p.done += done.uids.len();
        if p.shown {
            self.progress(p.done, p.total, p.started);
        }
        Ok(done.uids.iter().copied().max().unwrap_or(0))
    }

    /// `RFC822.SIZE` of each message in `uids`, asked before any content is fetched.
    async fn sizes(&self, s: &mut Session, uids: &[u32]) -> anyhow::Result<HashMap<u32, u32>> {
        let set = uid_set(uids);
        let fetches: Vec<async_imap::types::Fetch> =
            within("UID FETCH", async { s.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect::<Vec<_>>().await })
                .await?;
        Ok(fetches.iter().filter_map(|f| Some((f.uid?, f.size?))).collect())
    }

    /// Quarantines a message over `limits.max_message_bytes` without holding it: it is fetched
    /// in [`PART_BYTES`] pieces (`BODY.PEEK[]<offset.length>`) that the pipeline streams into a
    /// file as they come.
    async fn quarantine_oversized(&self, s: &mut Session, uid: u32, size: u32) -> anyhow::Result<Outcome> {
        let (parts, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(2);
        let (pipeline, label) = (self.pipeline.clone(), self.mb.label.clone());
        let job = tokio::task::spawn_blocking(move || {
            pipeline.quarantine_oversized(&mut Streamed { rx, buf: Vec::new(), pos: 0 }, &label)
        });
        let fetched = async {
            let mut offset = 0u32;
            while offset < size {
                let query = format!("(UID BODY.PEEK[]<{offset}.{PART_BYTES}>)");
                let uid_text = uid.to_string();
                let got: Vec<async_imap::types::Fetch> =
                    within("UID FETCH", async { s.uid_fetch(&uid_text, &query).await?.try_collect::<Vec<_>>().await })
                        .await?;
                let part = got.iter().filter(|f| f.uid == Some(uid)).find_map(|f| f.body()).unwrap_or_default();
                if part.is_empty() {
                    break;
                }
                offset = offset.saturating_add(part.len() as u32);
                // A closed channel: the pipeline knew the message already and needs no more.
                if parts.send(Ok(part.to_vec())).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = &fetched {
            // The pipeline must not take a truncated message for the whole one.
            let _ = parts.send(Err(io::Error::other(format!("{e:#}")))).await;
        }
        drop(parts);
        let outcome = job.await.context("the pipeline task failed")?;
        fetched?;
        outcome.context("the message was not quarantined; it stays in the folder and is retried")
    }

    /// One `UID FETCH` of the whole messages in `uids` (sorted), in UID order; UIDs expunged
    /// meanwhile are simply absent.
    async fn fetch(&self, s: &mut Session, uids: &[u32], uidvalidity: u32) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
        let set = uid_set(uids);
        let fetches: Vec<async_imap::types::Fetch> =
            within("UID FETCH", async { s.uid_fetch(&set, "(UID BODY.PEEK[])").await?.try_collect::<Vec<_>>().await })
                .await?;
        let mut out: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| {
                let uid = f.uid.filter(|u| uids.binary_search(u).is_ok())?;
                let raw = match f.body() {
                    Some(b) => b.to_vec(),
                    None => self.placeholder(uid, uidvalidity, "the server sent no body"),
                };
                Some((uid, raw))
            })
            .collect();
        out.sort_by_key(|(uid, _)| *uid);
        out.dedup_by_key(|(uid, _)| *uid);
        Ok(out)
    }

    /// Stands in for a message whose content cannot be had: it has no sender, so the pipeline
    /// quarantines it, and it is unique per message, so the next one is no "duplicate" of it.
    fn placeholder(&self, uid: u32, uidvalidity: u32, why: &str) -> Vec<u8> {
        format!(
            "X-Ticketgate-Imap-Error: {why}: UID {uid} (UIDVALIDITY {uidvalidity}) of {}/{} on {}\r\n\r\n",
            self.mb.label, self.mb.folder, self.mb.host
        )
        .into_bytes()
    }

    /// Hands a fetched batch to the pipeline on a blocking thread.
    fn start_batch(&self, fetched: Vec<(u32, Vec<u8>)>) -> InFlight {
        let (uids, raws): (Vec<u32>, Vec<Vec<u8>>) = fetched.into_iter().unzip();
        let pipeline = self.pipeline.clone();
        let label = self.mb.label.clone();
        let job = tokio::task::spawn_blocking(move || pipeline.ingest_batch(&raws, &label));
        InFlight { uids, job }
    }

    fn progress(&self, done: usize, total: usize, started: Instant) {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(mailbox = %self.mb.label, done, total, rate = format!("{rate:.0} msg/s"), "backlog progress");
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let end = if done >= total { "\n" } else { "" };
            eprint!("\r{}: {done}/{total} messages, {rate:.0} msg/s{end}", self.mb.label);
        }
    }

    async fn load_checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        let (label, folder) = (self.mb.label.clone(), self.mb.folder.clone());
        Ok(self.pipeline.db().run(move |c| checkpoint::load(c, &label, &folder)).await?)
    }

    /// Checkpoints the highest UID of a pass. Once per pass, not per batch (each write is a
    /// durable commit); a failure or a crash before it only means a lag, and a lagging
    /// checkpoint is harmless: every session starts with a pass over the whole folder.
    async fn record(&self, uidvalidity: u32, last_uid: u32) {
        if let Err(e) = self.save_checkpoint(Checkpoint { uidvalidity, last_uid }).await {
            tracing::warn!(mailbox = %self.mb.label, error = %format!("{e:#}"), "could not save the IMAP checkpoint");
        }
    }

    async fn save_checkpoint(&self, cp: Checkpoint) -> anyhow::Result<()> {
        let (label, folder, db) = (self.mb.label.clone(), self.mb.folder.clone(), self.pipeline.db().clone());
        tokio::task::spawn_blocking(move || db.write(|tx| checkpoint::save(tx, &label, &folder, cp))).await??;
        Ok(())
    }
}

/// Bytes of an oversized message fetched at once.
const PART_BYTES: u32 = 4 * 1024 * 1024;

/// What one step of a pass fetches.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// Messages fetched whole and committed together.
    Batch(Vec<u32>),
    /// A message over `limits.max_message_bytes` (UID, RFC822.SIZE), never fetched whole.
    Oversized(u32, u32),
}

/// Splits a chunk of UIDs into batches of at most [`BATCH_BYTES`], with each message over `max`
/// bytes on its own. A UID without a size was expunged meanwhile; the FETCH then simply finds
/// nothing.
fn pieces(chunk: &[u32], sizes: &HashMap<u32, u32>, max: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for &uid in chunk {
        let size = sizes.get(&uid).copied().unwrap_or(0);
        if u64::from(size) > max {
            if !batch.is_empty() {
                out.push(Piece::Batch(std::mem::take(&mut batch)));
            }
            out.push(Piece::Oversized(uid, size));
            continue;
        }
        if !batch.is_empty() && bytes + u64::from(size) > BATCH_BYTES {
            out.push(Piece::Batch(std::mem::take(&mut batch)));
            bytes = 0;
        }
        batch.push(uid);
        bytes += u64::from(size);
    }
    if !batch.is_empty() {
        out.push(Piece::Batch(batch));
    }
    out
}

/// The blocking side of a message fetched in parts: reads them from the channel as they come.
struct Streamed {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl io::Read for Streamed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(part) => (self.buf, self.pos) = (part?, 0),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Moves `uids` into `folder`; a folder deleted since the session began is created again.
async fn settle(s: &mut Session, caps: Caps, uids: &[u32], folder: &str) -> anyhow::Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    match move_to(s, caps, &set, folder).await {
        Err(e) if matches!(e.downcast_ref(), Some(async_imap::error::Error::No(_))) => {
            ensure_folder(s, folder).await?;
            move_to(s, caps, &set, folder).await
        }
        other => other,
    }
    .with_context(|| format!("moving messages to {folder:?}"))
}

async fn move_to(s: &mut Session, caps: Caps, set: &str, folder: &str) -> anyhow::Result<()> {
    if caps.mv {
        return within("UID MOVE", s.uid_mv(set, folder)).await;
    }
    within("UID COPY", s.uid_copy(set, folder)).await?;
    within("UID STORE", async { s.uid_store(set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await })
        .await?;
    if caps.uidplus {
        within("UID EXPUNGE", async { s.uid_expunge(set).await?.try_collect::<Vec<_>>().await }).await?;
    } else {
        // Without UIDPLUS only a plain EXPUNGE exists; it also removes messages others flagged.
        within("EXPUNGE", async { s.expunge().await?.try_collect::<Vec<_>>().await }).await?;
    }
    Ok(())
}

/// Creates `folder` unless it exists.
async fn ensure_folder(s: &mut Session, folder: &str) -> anyhow::Result<()> {
    let pattern = quote(folder);
    let names: Vec<async_imap::types::Name> =
        within("LIST", async { s.list(Some(""), Some(&pattern)).await?.try_collect::<Vec<_>>().await }).await?;
    if names.iter().any(|n| n.name() == folder) {
        return Ok(());
    }
    match within("CREATE", s.create(folder)).await {
        Ok(()) => {
            tracing::info!(folder, "created IMAP folder");
            Ok(())
        }
        // Created by someone else in between.
        Err(e) if format!("{e:#}").contains("ALREADYEXISTS") => Ok(()),
        Err(e) => Err(e.context(format!("cannot create folder {folder:?}"))),
    }
}

/// An IMAP quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Compresses sorted UIDs into an IMAP sequence set: `1:3,7,9:10`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Runs one IMAP step with a timeout.
async fn within<T, E>(what: &str, fut: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(r) => r.with_context(|| format!("IMAP {what}")),
        Err(_) => bail!("IMAP {what}: no answer within {} s", COMMAND_TIMEOUT.as_secs()),
    }
}

/// Connects, secures and logs in.
async fn connect(mb: &ImapConfig) -> anyhow::Result<Session> {
    let target = format!("{}:{}", mb.host, mb.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((mb.host.as_str(), mb.port)))
        .await
        .map_err(|_| anyhow!("connecting to {target}: timed out"))?
        .with_context(|| format!("connecting to {target}"))?;
    tcp.set_nodelay(true)?;
    let client = match mb.tls {
        TlsMode::PlainInsecure => {
            let mut c = async_imap::Client::new(Conn::Plain(tcp));
            greeting(&mut c, &target).await?;
            c
        }
        TlsMode::Implicit => {
            let tls = tls_handshake(mb, tcp).await?;
            let mut c = async_imap::Client::new(Conn::Tls(Box::new(tls)));
            greeting(&mut c, &target).await?;
            c
        }
        TlsMode::Starttls => {
            let mut c = async_imap::Client::new(tcp);
            greeting(&mut c, &target).await?;
            within("STARTTLS", c.run_command_and_check_ok("STARTTLS", None))
                .await
                .with_context(|| format!("{target} refused STARTTLS (tls = \"starttls\" requires it)"))?;
            let tls = tls_handshake(mb, c.into_inner()).await?;
            // No second greeting after STARTTLS (RFC 3501 6.2.1).
            async_imap::Client::new(Conn::Tls(Box::new(tls)))
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, client.login(&mb.username, mb.password.expose())).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(anyhow!(
            "login as {:?} on {target} failed: {e} (check imap username and password, or TICKETGATE_IMAP__N__PASSWORD)",
            mb.username
        )),
        Err(_) => bail!("login on {target}: no answer within {} s", COMMAND_TIMEOUT.as_secs()),
    }
}

async fn greeting<T>(c: &mut async_imap::Client<T>, target: &str) -> anyhow::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match tokio::time::timeout(CONNECT_TIMEOUT, c.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => bail!("{target} closed the connection before greeting"),
        Ok(Err(e)) => Err(anyhow!(e).context(format!("reading the greeting of {target}"))),
        Err(_) => bail!("{target} sent no greeting within {} s", CONNECT_TIMEOUT.as_secs()),
    }
}

async fn tls_handshake(mb: &ImapConfig, tcp: TcpStream) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tls_connector(mb)?;
    let name = ServerName::try_from(mb.host.clone()).with_context(|| format!("{:?} is no valid TLS name", mb.host))?;
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| anyhow!("TLS handshake with {}: timed out", mb.host))?
        .with_context(|| format!("TLS handshake with {}:{}", mb.host, mb.port))
}

/// The system's trusted roots plus `ca_file`; built per connection so a replaced CA file is
/// picked up without a restart.
fn tls_connector(mb: &ImapConfig) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let extra = match &mb.ca_file {
        Some(path) => crate::tls::read_ca_file(path, "imap.ca_file")?,
        None => Vec::new(),
    };
    crate::tls::connector(&extra, "imap.ca_file")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn uid_sets_are_compressed() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn batches_are_bounded_by_bytes_and_oversized_messages_stand_alone() {
        let mib = 1024 * 1024;
        let sizes: HashMap<u32, u32> = [(1, mib), (2, 10 * mib), (3, 10 * mib), (4, 50 * mib), (5, 1)].into();
        let max = 40 * u64::from(mib);
        assert_eq!(
            pieces(&[1, 2, 3, 4, 5, 6], &sizes, max),
            vec![
                Piece::Batch(vec![1, 2]),
                Piece::Batch(vec![3]),
                Piece::Oversized(4, 50 * mib),
                Piece::Batch(vec![5, 6])
            ]
        );
    }

    #[test]
    fn folder_names_are_quoted() {
        assert_eq!(quote(r#"A "b"\c"#), r#""A \"b\"\\c""#);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let (_tx, rx) = watch::channel(false);
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let db = crate::store::Db::open(&dir.path().join("t.sqlite")).unwrap();
        let pipeline = App::new(Arc::new(config), crate::signing::Keyring::new(vec![vec![1; 32]]), db);
        let mut s = Source {
            pipeline,
            mb: ImapConfig::default(),
            shutdown: rx,
            closed: false,
            backoff: BACKOFF_MIN,
            in_hand: Vec::new(),
            strikes: HashMap::new(),
            skipped: HashSet::new(),
        };
        let mut last = Duration::ZERO;
        for i in 0..12 {
            let d = s.next_backoff();
            let nominal = (BACKOFF_MIN * 2u32.pow(i)).min(BACKOFF_MAX);
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} outside [{:?}, {nominal:?}]", nominal / 2);
            last = d;
        }
        assert!(last >= BACKOFF_MAX / 2);
    }
}
