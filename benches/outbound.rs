//! Outbound throughput: notifications queued as drafts (one transaction per ticket change, as the
//! pipeline does), then rendered (askama + lettre) and delivered by the worker to the local
//! capture SMTP server (the test harness's aiosmtpd `capture_smtp.py`, which fsyncs every
//! message).
//!
//! `cargo bench --bench outbound` (optional: `BENCH_TICKETS=1000`). Prints one line per figure.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketgate::config::{Config, Secret, TlsMode, Transport as TransportKind};
use ticketgate::lifecycle::{Event, Role};
use ticketgate::notify::{self, Notifier};
use ticketgate::outbound::transport::Transport;
use ticketgate::signing::Keyring;
use ticketgate::store::Db;
use ticketgate::store::tickets::{self, NewMessage, Via};
use ticketgate::store::users::{self, NewUser};

use common::{Capture, SUPPORT, TestCa};

struct Setup {
    _dir: tempfile::TempDir,
    db: Db,
    team: ticketgate::id::TeamId,
    member: users::User,
}

fn setup() -> Setup {
    // The database stays on the real disk (CARGO_TARGET_TMPDIR), whatever TMPDIR says: its
    // fsyncs are part of what is measured.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let db = Db::open(&dir.path().join("bench.sqlite")).expect("db");
    let (team, member) = db
        .write(|c| {
            let team = users::create_team(c, "Acme", 0)?;
            let mk = |email: &str, role, team| {
                users::create_user(
                    c,
                    &NewUser { email, name: "Bench User", role, team_id: team, password_hash: None },
                    0,
                )
            };
            let member = mk("member@acme.test", Role::Member, Some(team))?;
            mk("agent@example.test", Role::Staff, None)?;
            Ok::<_, ticketgate::store::StoreError>((team, users::by_id(c, member)?))
        })
        .expect("users");
    Setup { _dir: dir, db, team, member }
}

/// Opens `tickets` tickets, one transaction each; every opening queues two mails (the
/// acknowledgement and the staff notification). Returns the number of mails queued.
fn open_tickets(s: &Setup, config: &Config, keys: &Keyring, tickets_n: usize, tag: &str) -> usize {
    let body = "The printer on the second floor prints every page twice.\n\nIt started after the update.\n".repeat(3);
    for i in 0..tickets_n {
        s.db.write(|c| {
            let now = ticketgate::clock::now();
            let n = Notifier { config, keys, now };
            let t = tickets::create(c, s.team, s.member.id, &format!("Printer {tag} {i}"), "bench", now)?;
            let mid = format!("bench.{tag}.{i}@acme.test");
            let m = tickets::add_message(
                c,
                &NewMessage {
                    ticket_id: t,
                    author_id: Some(s.member.id),
                    author_role: Role::Member,
                    via: Via::Mail,
                    event: Event::Opened,
                    body: &body,
                    quoted: "",
                    message_id: Some(&mid),
                    raw: None,
                },
                now,
            )?;
            notify::ticket_event(c, &n, &tickets::get(c, t)?, Some(m), Event::Opened, Some(&s.member))
        })
        .expect("open ticket");
    }
    tickets_n * 2
}

/// Mails not yet sent (one indexed count, so polling costs the worker little).
fn pending(db: &Db) -> i64 {
    let c = rusqlite::Connection::open(db.path()).expect("open");
    c.query_row("SELECT count(*) FROM outbox WHERE state = 'pending'", [], |r| r.get(0)).expect("count")
}

/// Polls until the outbox is empty.
fn drained(db: &Db) {
    while pending(db) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the worker until the outbox is empty; returns the elapsed time.
fn deliver(db: &Db, config: &Config) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let keys = Keyring::new(vec![vec![5; 32]]);
    let task = rt.spawn(ticketgate::outbound::run(db.clone(), Arc::new(config.clone()), keys, rx));
    drained(db);
    let elapsed = start.elapsed();
    stop.send(true).expect("stop");
    rt.block_on(task).expect("join").expect("worker");
    elapsed
}

fn config(ca: &TestCa, capture: &Capture, tls: TlsMode, concurrency: usize) -> Config {
    let mut c = Config::default();
    c.support.address = SUPPORT.0.into();
    c.outbound.transport = TransportKind::Smtp;
    c.outbound.concurrency = concurrency;
    c.outbound.smtp.host = "localhost".into();
    c.outbound.smtp.port = if tls == TlsMode::Implicit { capture.smtps_port() } else { capture.smtp_port() };
    c.outbound.smtp.tls = tls;
    c.outbound.smtp.ca_file = Some(ca.ca_pem());
    if tls != TlsMode::PlainInsecure {
        c.outbound.smtp.username = SUPPORT.0.into();
        c.outbound.smtp.password = Secret(SUPPORT.1.into());
    }
    c
}

/// The transport alone (no rendering, no database): what the capture server and lettre allow.
fn ceiling(ca: &TestCa, capture: &Capture, mails: usize) {
    let cfg = config(ca, capture, TlsMode::Starttls, 8);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    // lettre's connection pool starts a task when built: it needs the runtime.
    let transport = Arc::new(rt.block_on(async { Transport::from_config(&cfg.outbound) }).expect("transport"));
    let raw = b"From: <support@example.test>\r\nTo: <agent@example.test>\r\nSubject: ceiling\r\nMessage-ID: <c@example.test>\r\n\r\nHello.\r\n".to_vec();
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8 {
            let (transport, raw) = (transport.clone(), raw.clone());
            tasks.spawn(async move {
                for _ in (task..mails).step_by(8) {
                    transport.send(SUPPORT.0, "agent@example.test", "c@example.test", &raw).await.expect("send");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        transport.shutdown().await;
        // Dropped inside the runtime: lettre's pool spawns its clean-up on drop.
        drop(transport);
    });
    let took = start.elapsed();
    println!(
        "transport ceiling (lettre alone, starttls+auth, 8 connections): {mails} mails in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        rate(mails, took)
    );
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let tickets_n: usize = std::env::var("BENCH_TICKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let keys = Keyring::new(vec![vec![5; 32]]);
    let ca = TestCa::new();
    let capture = Capture::start(&ca);

    println!(
        "capture server files under {} (TMPDIR; tmpfs makes its per-message fsyncs free); database under {}",
        std::env::temp_dir().display(),
        env!("CARGO_TARGET_TMPDIR")
    );
    ceiling(&ca, &capture, tickets_n * 2);

    for (label, tls, concurrency) in [
        ("starttls+auth, concurrency 4", TlsMode::Starttls, 4),
        ("starttls+auth, concurrency 8", TlsMode::Starttls, 8),
        ("implicit tls+auth, concurrency 8", TlsMode::Implicit, 8),
        ("plain, concurrency 8", TlsMode::PlainInsecure, 8),
    ] {
        let cfg = config(&ca, &capture, tls, concurrency);
        let before = capture.messages().len();

        // Queue, then render and deliver the backlog.
        let s = setup();
        let start = Instant::now();
        let mails = open_tickets(&s, &cfg, &keys, tickets_n, "a");
        let queued_in = start.elapsed();
        let delivered_in = deliver(&s.db, &cfg);
        println!(
            "{label}: queued {mails} mails in {:.2} s = {:.0}/s; rendered and delivered the backlog in {:.2} s = {:.0}/s",
            queued_in.as_secs_f64(),
            rate(mails, queued_in),
            delivered_in.as_secs_f64(),
            rate(mails, delivered_in)
        );

        // Both at once: the worker runs while ticket changes queue mail.
        let s = setup();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let (stop, rx) = tokio::sync::watch::channel(false);
        let start = Instant::now();
        let task = rt.spawn(ticketgate::outbound::run(s.db.clone(), Arc::new(cfg.clone()), keys.clone(), rx));
        let mails = open_tickets(&s, &cfg, &keys, tickets_n, "b");
        drained(&s.db);
        let total = start.elapsed();
        stop.send(true).expect("stop");
        rt.block_on(task).expect("join").expect("worker");
        println!(
            "{label}: queued, rendered and delivered {mails} mails end to end in {:.2} s = {:.0}/s",
            total.as_secs_f64(),
            rate(mails, total)
        );
        let got = capture.messages().len() - before;
        assert_eq!(got, 2 * mails, "the capture server has every mail once");
    }
}
