//! MAIL OUT: delivers what the outbox holds.
//!
//! The worker takes due rows from the outbox (without their messages: each
//! is read, and rendered from its draft, only when it is sent; see
//! [`crate::notify::draft`]), hands up to `outbound.concurrency` of them to
//! the transport at once, and records each outcome afterwards. A draft that
//! cannot be made into a message is marked failed at once, with a
//! `notify_failed` note on its ticket. A mail is
//! marked sent only after the server (or the disk) accepted it. A crash
//! between acceptance and the record sends that mail again after the
//! restart, the same bytes with the same Message-ID (fixed when it was
//! queued), so a repeat is recognisable; nothing is ever lost. No more than `concurrency` mails
//! are ever accepted and not yet recorded, so a crash repeats at most that
//! many.
//!
//! Temporary failures are retried with exponential backoff
//! (`retry_base_seconds`, doubled per attempt, capped at `retry_max_seconds`)
//! until `retry_deadline_minutes` after the mail was queued; then, or at once
//! on a permanent failure, the mail is marked failed and a `delivery_failed`
//! note is put on its ticket. `ticketgate outbox retry` puts failed mail back
//! in line (a mail retried after its deadline gets one more attempt).
//!
//! Only one worker (one `serve`) may run per database: rows being delivered
//! are tracked in memory, not locked in the database, so that a restart
//! retries them at once instead of waiting for a lease to run out.
//!
//! Every mail's envelope sender is its own VERP address
//! ([`envelope_sender`]); the `.eml` transport records it as `Return-Path`.

pub mod smtp;
pub mod transport;

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::code::OutboxState;
use crate::config::{Config, OutboundConfig};
use crate::signing::Keyring;
use crate::store::outbox::{self, Due};
use crate::store::{Db, tickets};
use transport::Transport;

/// How often an idle worker looks for due mail.
const POLL: Duration = Duration::from_millis(250);
/// Rows read from the outbox at once.
const BATCH: usize = 256;
/// How long recording an outcome waits for the write lock before it tries again.
const RECORD_BUSY_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why an attempt failed; the transports say it, the worker acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again later.
    Temporary(String),
    /// The server refused this mail for good.
    Permanent(String),
    /// The queued mail cannot be made into a message; no attempt can help.
    Unbuildable(String),
}

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: i64,
    pub max: i64,
    pub deadline: i64,
}

impl Backoff {
    pub fn new(c: &OutboundConfig) -> Backoff {
        Backoff {
            base: c.retry_base_seconds.max(1) as i64,
            max: c.retry_max_seconds.max(1) as i64,
            deadline: c.retry_deadline_minutes.saturating_mul(60) as i64,
        }
    }

    /// The delay after the `attempts`-th failed attempt (1-based).
    pub fn delay(&self, attempts: i64) -> i64 {
        let doublings = (attempts - 1).clamp(0, 40) as u32;
        self.base.saturating_mul(1i64 << doublings).min(self.max)
    }

    /// `Some(next attempt time)`, or `None` when the deadline has passed.
    pub fn next(&self, created_at: i64, attempts: i64, now: i64) -> Option<i64> {
        let give_up_at = created_at.saturating_add(self.deadline);
        (now < give_up_at).then(|| now.saturating_add(self.delay(attempts)).min(give_up_at))
    }
}

/// The result of one attempt.
struct Outcome {
    row: Due,
    result: Result<(), Failure>,
}

/// Delivers the outbox until `shutdown` turns true; then finishes the
/// attempts under way, records them and returns.
///
/// At most `outbound.concurrency` mails are ever handed to the transport and
/// not yet recorded: while that many outcomes wait to be written (the
/// database may be locked by a long writer), no further mail is sent, so a
/// crash repeats at most that many. Outcomes are written on their own
/// connection, which waits for the lock ([`RECORD_BUSY_TIMEOUT`]) instead of
/// giving up and queueing behind every other writer again.
pub async fn run(
    db: Db,
    config: Arc<Config>,
    keys: Keyring,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let transport = Arc::new(Transport::from_config(&config.outbound)?);
    let concurrency = config.outbound.concurrency.max(1);
    let backoff = Backoff::new(&config.outbound);
    // Ids read from the outbox and not yet recorded (queued, being sent, or
    // sent and waiting to be recorded). Only this loop touches the set, and
    // only between two reads of the outbox: an id leaves it after its outcome
    // is committed, so the next read already sees the new state and can never
    // pick the mail up a second time.
    let mut in_flight: HashSet<i64> = HashSet::new();
    // Of those, the ones handed to the transport.
    let mut unrecorded = 0usize;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (recorded_tx, mut recorded_rx) = mpsc::unbounded_channel::<Vec<i64>>();
    let recorder = tokio::spawn(record(db.with_busy_timeout(RECORD_BUSY_TIMEOUT), backoff, done_rx, recorded_tx));
    let mut queue: VecDeque<Due> = VecDeque::new();
    let mut running = JoinSet::new();
    tracing::info!(transport = ?config.outbound.transport, concurrency, "outbound worker started");

    while !*shutdown.borrow() {
        while let Ok(ids) = recorded_rx.try_recv() {
            settled(&ids, &mut in_flight, &mut unrecorded);
        }
        if queue.is_empty() && unrecorded < concurrency {
            match fetch(&db, &mut in_flight).await {
                Ok(rows) => queue.extend(rows),
                Err(e) => tracing::warn!("reading the outbox: {e}"),
            }
        }
        while unrecorded < concurrency
            && let Some(row) = queue.pop_front()
        {
            unrecorded += 1;
            let (transport, done, db) = (transport.clone(), done_tx.clone(), db.clone());
            let from = envelope_sender(&config.support.address, &keys, row.id, &row.recipient, &row.message_id);
            running.spawn(async move {
                let id = row.id;
                let result = match db.run(move |c| crate::notify::draft::outgoing(c, id)).await {
                    Ok(Ok(raw)) => transport.send(&from, &row.recipient, &row.message_id, &raw).await,
                    Ok(Err(why)) => Err(Failure::Unbuildable(why)),
                    Err(e) => Err(Failure::Temporary(format!("reading the mail from the outbox: {e}"))),
                };
                // The recorder outlives every delivery, so the send cannot fail.
                let _ = done.send(Outcome { row, result });
            });
        }
        if unrecorded == 0 && queue.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        } else {
            tokio::select! {
                _ = running.join_next(), if !running.is_empty() => {}
                Some(ids) = recorded_rx.recv() => settled(&ids, &mut in_flight, &mut unrecorded),
                _ = shutdown.changed() => {}
            }
        }
    }
    while running.join_next().await.is_some() {}
    drop(done_tx);
    let recorded = recorder.await;
    transport.shutdown().await;
    recorded?;
    tracing::info!("outbound worker stopped");
    Ok(())
}

/// The VERP envelope sender of outbox row `row` (SPEC.md "Outbound mail"):
/// bounces come back to an address that names the row and is signed for its
/// recipient and Message-ID.
pub fn envelope_sender(support: &str, keys: &Keyring, row: i64, recipient: &str, message_id: &str) -> String {
    crate::address::with_tag(support, &crate::route::token::bounce_tag(keys, row, recipient, message_id))
}

/// Rows whose outcomes are committed leave the worker's books.
fn settled(ids: &[i64], in_flight: &mut HashSet<i64>, unrecorded: &mut usize) {
    *unrecorded -= ids.len();
    for id in ids {
        in_flight.remove(id);
    }
}

/// Due rows that are not already being delivered, without their messages
/// (each is read only when it is sent, so memory holds at most `concurrency`
/// of them); marks them in flight.
async fn fetch(db: &Db, in_flight: &mut HashSet<i64>) -> crate::store::Result<Vec<Due>> {
    let (now, limit) = (crate::clock::now(), BATCH + in_flight.len());
    let rows = db.run(move |c| outbox::due(c, now, limit)).await?;
    Ok(rows.into_iter().filter(|r| in_flight.insert(r.id)).take(BATCH).collect())
}

/// Writes outcomes as they come, several per transaction when they queue up.
async fn record(
    db: Db,
    backoff: Backoff,
    mut done: mpsc::UnboundedReceiver<Outcome>,
    recorded: mpsc::UnboundedSender<Vec<i64>>,
) {
    while let Some(first) = done.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH
            && let Ok(more) = done.try_recv()
        {
            batch.push(more);
        }
        let batch = Arc::new(batch);
        // A database that is briefly unwritable must not turn a delivered
        // mail into a pending one: keep trying to record it.
        loop {
            let (db, b) = (db.clone(), batch.clone());
            let written = tokio::task::spawn_blocking(move || {
                let now = crate::clock::now();
                db.write(|tx| b.iter().map(|o| apply(tx, &backoff, o, now)).collect::<crate::store::Result<Vec<_>>>())
            })
            .await;
            match written {
                Ok(Ok(settled)) => {
                    settled.into_iter().flatten().for_each(crate::metrics::notification);
                    break;
                }
                Ok(Err(e)) => tracing::warn!("recording deliveries: {e}; retrying"),
                Err(e) => tracing::warn!("recording deliveries: {e}; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The worker loop may have stopped listening during shutdown.
        let _ = recorded.send(batch.iter().map(|o| o.row.id).collect());
    }
}

/// Records one attempt; returns whether the mail is settled as sent (`Some(true)`),
/// given up on (`Some(false)`) or waits for another attempt (`None`).
fn apply(tx: &rusqlite::Connection, backoff: &Backoff, o: &Outcome, now: i64) -> crate::store::Result<Option<bool>> {
    let row = &o.row;
    let attempts = row.attempts + 1;
    let gave_up = match &o.result {
        Ok(()) => {
            tracing::debug!(id = row.id, to = %row.recipient, "delivered");
            return outbox::mark_sent(tx, row.id, now).map(|()| Some(true));
        }
        Err(Failure::Temporary(e)) => match backoff.next(row.created_at, attempts, now) {
            Some(at) => {
                tracing::info!(id = row.id, to = %row.recipient, attempts, "temporary failure, retry in {}s: {e}", at - now);
                return outbox::mark_retry(tx, row.id, at, e).map(|()| None);
            }
            None => format!("gave up after {attempts} attempts; last error: {e}"),
        },
        Err(Failure::Permanent(e)) => format!("refused: {e}"),
        Err(Failure::Unbuildable(why)) => {
            tracing::error!(id = row.id, to = %row.recipient, "cannot compose a notification: {why}");
            outbox::mark_failed(tx, row.id, why)?;
            if let Some(ticket) = row.ticket_id {
                tickets::add_event(tx, ticket, crate::code::EventKind::NotifyFailed, why, now)?;
            }
            return Ok(Some(false));
        }
    };
    tracing::warn!(id = row.id, to = %row.recipient, "delivery failed: {gave_up}");
    outbox::mark_failed(tx, row.id, &gave_up)?;
    if let Some(ticket) = row.ticket_id {
        let detail =
            format!("Mail to {} (Message-ID <{}>) was not delivered: {gave_up}", row.recipient, row.message_id);
        tickets::add_event(tx, ticket, crate::code::EventKind::DeliveryFailed, &detail, now)?;
    }
    Ok(Some(false))
}

/// `ticketgate outbox list`: the newest mails with their state.
pub fn list(db: &Db, out: &mut dyn Write) -> anyhow::Result<()> {
    let rows = db.with(|c| outbox::list(c, 500))?;
    writeln!(
        out,
        "{:>6}  {:<7}  {:>5}  {:<15}  {:>6}  {:<30}  {:<19}  error",
        "id", "state", "tries", "kind", "ticket", "recipient", "next attempt / sent"
    )?;
    for r in rows {
        let when = match (r.state, r.sent_at) {
            (OutboxState::Sent, Some(at)) => crate::format::time(at).text,
            (OutboxState::Pending, _) => crate::format::time(r.next_attempt_at).text,
            _ => "-".to_string(),
        };
        let ticket = r.ticket_id.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        let error = crate::format::cell(&r.last_error.as_deref().unwrap_or("").replace(['\r', '\n'], " "));
        let (kind, recipient) = (crate::format::cell(r.kind.as_str()), crate::format::cell(&r.recipient));
        writeln!(
            out,
            "{:>6}  {:<7}  {:>5}  {:<15}  {:>6}  {:<30}  {:<19}  {}",
            r.id, r.state, r.attempts, kind, ticket, recipient, when, error
        )?;
    }
    Ok(())
}

/// `ticketgate outbox retry [ID]`: failed and waiting mails (or just `id`)
/// are tried again now; returns how many were put back in line.
pub fn retry(db: &Db, id: Option<i64>) -> anyhow::Result<usize> {
    let now = crate::clock::now();
    Ok(db.write(|tx| outbox::retry(tx, id, now))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_stops_at_the_deadline() {
        let b = Backoff { base: 30, max: 3600, deadline: 48 * 3600 };
        assert_eq!((b.delay(1), b.delay(2), b.delay(3)), (30, 60, 120));
        assert_eq!(b.delay(9), 3600);
        assert_eq!(b.delay(500), 3600, "no overflow");
        assert_eq!(b.next(1000, 1, 1000), Some(1030));
        assert_eq!(b.next(0, 20, 48 * 3600 - 10), Some(48 * 3600), "the last try is at the deadline");
        assert_eq!(b.next(0, 21, 48 * 3600), None);
    }
}
