//! The shared test harness: real mail servers and the real `ticketgate` binary, each in its own
//! temp dir on its own loopback ports, stopped on `Drop`.
//!
//! Needs (checked by [`require`], which fails the test with what to install):
//! `dovecot`, `doveadm` (Debian `dovecot-imapd dovecot-lmtpd`), `postfix` (only for [`Postfix`]),
//! `openssl`, and `python3` with `aiosmtpd` (only for [`Capture`]). One command installs all of
//! it: `sudo scripts/install-test-deps`. The servers are started as root (Dovecot then keeps the
//! mail as `nobody`; Postfix's master must be root anyway).
//!
//! What there is:
//! - [`PortBlock`]: N consecutive free ports on 127.0.0.1, reserved across test threads and
//!   test processes (a lock file per block), so parallel tests never collide.
//! - [`TestCa`]: a CA and a `CA:FALSE` leaf for `localhost`, `mail.example.test` and
//!   127.0.0.1 (rustls refuses a self-signed CA used as the server certificate). Clients trust
//!   [`TestCa::ca_pem`] and use the server name `localhost`.
//! - [`Dovecot`]: IMAP (plain + STARTTLS), IMAPS, LMTP and a SASL auth port for Postfix. Users
//!   come from a passwd-file: [`SUPPORT`], [`CUSTOMER`], [`STAFF`] (login = address), more with
//!   [`Dovecot::add_user`] at run time. Mail in: [`Dovecot::deliver`] (LMTP, as an MTA would),
//!   [`Dovecot::drop_message`] (a Maildir file, fast, for big backlogs), [`Dovecot::save`],
//!   [`Dovecot::drop_unreadable`] (a file Dovecot fails on), [`Dovecot::doveadm`] for anything
//!   else (counting, deleting folders). [`Dovecot::restart`] for outage tests,
//!   [`Dovecot::start_with`] for extra settings (e.g. hiding MOVE/IDLE with
//!   `imap_capability`). No folders are auto-created: the code under test must create what it
//!   needs.
//! - [`Capture`]: an SMTP server (our own `capture_smtp.py`, aiosmtpd) with STARTTLS, implicit
//!   TLS and AUTH PLAIN/LOGIN, storing each message as `.eml` + `.json` envelope
//!   ([`Capture::messages`]); faults at run time with [`Capture::set_faults`] (see the script's
//!   doc: `tempfail DATA 2`, `disconnect RCPT`, `refuse`, ...).
//! - [`Postfix`]: SMTP/SMTPS with STARTTLS and AUTH checked by the Dovecot users; `@example.test`
//!   is delivered over LMTP into Dovecot, any other domain is refused, nothing leaves the machine.
//!   For the full loop: ticketgate sends, the test reads the customer's INBOX.
//! - [`App`]: the `ticketgate` binary with a generated config in a temp dir: start, wait for
//!   readiness by polling, `kill -9`, restart, and [`App::db`] for SQLite assertions.
//! - [`wait_until`]: poll a condition (never a fixed sleep, never a timed assertion).
//!
//! Servers run under `watchdog.sh`, which stops them when the test process is gone, so even a
//! test killed by a timeout (no `Drop`) leaves no daemon behind.
//!
//! `selftest.rs` checks the harness itself (`cargo test --test it common::`, ~15 s).
//!
//! Typical use:
//! ```ignore
//! let ca = TestCa::new();
//! let dovecot = Dovecot::start(&ca);
//! dovecot.deliver(SUPPORT.0, &raw_message);
//! let app = App::start(AppConfig::new().imap(&dovecot, ImapTls::Starttls));
//! wait_until("ticket created", Duration::from_secs(10), || app.count("SELECT count(*) FROM tickets") == 1);
//! ```
//!
//! Pitfalls handled here (measured on Debian 12 with Dovecot 2.3.19 and Postfix 3.7): state dirs
//! must be 0755 (Dovecot's auth process and Postfix's daemons are unprivileged), Dovecot's socket
//! paths must stay under 108 bytes (the run dir is kept short), Dovecot's failed-login delays are
//! switched off, Dovecot needs ~1 s to exit (stop waits for it), IDLE wakes a client ~0.5 s after
//! a delivery (wait a few seconds), Postfix re-reads a config file modified "this second" for ~2 s
//! (its files are backdated).

// Each test area uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod app;
mod capture;
mod dovecot;
mod postfix;
mod process;
mod tls;

mod selftest;

use std::time::{Duration, Instant};

pub use app::{App, AppConfig, imap_entry};
pub use capture::{Capture, Captured};
pub use dovecot::{CUSTOMER, Dovecot, ImapTls, STAFF, SUPPORT};
pub use postfix::Postfix;
pub use process::{PortBlock, require};
pub use tls::TestCa;

/// The queued mail that `query` (`SELECT id FROM outbox ...`) names, as the worker sends it.
pub fn queued_mail(c: &rusqlite::Connection, query: &str, params: impl rusqlite::Params) -> Vec<u8> {
    let id: i64 = c.query_row(query, params, |r| r.get(0)).unwrap();
    ticketgate::notify::draft::outgoing(c, id).unwrap().unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`. The timeout
/// is only a bound for a hung test, never an assertion about speed: pick it generously.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique-enough Message-ID domain part for a test, so messages from tests sharing a
/// database or mailbox never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
