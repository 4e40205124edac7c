//! Outbound mail against the real capture SMTP server (STARTTLS/implicit TLS + AUTH, faults on
//! demand): threading headers of every mail on a ticket, outages, 4xx and 5xx replies, and a
//! `kill -9` of the real binary in the middle of delivery.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::MessageParser;
use ticketgate::config::{Config, TlsMode, Transport};
use ticketgate::id::{TeamId, TicketId};
use ticketgate::inbound::maildir::Maildir;
use ticketgate::lifecycle::{Event, Role};
use ticketgate::notify::{self, Notifier};
use ticketgate::route::token;
use ticketgate::signing::Keyring;
use ticketgate::store::tickets::{self, NewMessage, Via};
use ticketgate::store::users::{self, NewUser, User};
use ticketgate::store::{Db, outbox};

use crate::common::{App, AppConfig, Capture, Captured, SUPPORT, TestCa, wait_until};

const LONG: Duration = Duration::from_secs(60);

fn smtp_config(data: &Path, ca: &TestCa, port: u16, tls: TlsMode) -> Config {
    let mut c = Config { data_dir: data.to_path_buf(), ..Config::default() };
    c.support.address = SUPPORT.0.into();
    c.support.public_url = "https://portal.example.test".into();
    c.outbound.transport = Transport::Smtp;
    c.outbound.eml_dir = data.join("outbox");
    c.outbound.retry_base_seconds = 1;
    c.outbound.retry_max_seconds = 1;
    c.outbound.smtp.host = "localhost".into();
    c.outbound.smtp.port = port;
    c.outbound.smtp.tls = tls;
    c.outbound.smtp.ca_file = Some(ca.ca_pem());
    c.outbound.smtp.username = SUPPORT.0.into();
    c.outbound.smtp.password = ticketgate::config::Secret(SUPPORT.1.into());
    c.outbound.smtp.timeout_seconds = 10;
    c
}

/// The delivery worker on its own runtime, as `serve` runs it.
struct Worker {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    fn start(db: &Db, config: &Config) -> Worker {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let keys = Keyring::new(vec![vec![3; 32]]);
        let task = rt.spawn(ticketgate::outbound::run(db.clone(), Arc::new(config.clone()), keys, rx));
        Worker { rt, stop, task }
    }

    fn stop(self) {
        self.stop.send(true).unwrap();
        self.rt.block_on(self.task).unwrap().unwrap();
    }
}

/// What most tests here start from: a capture server (with `faults` set before anything
/// connects), a store holding the [`Cast`], and a config that delivers to the capture over `tls`.
/// Fields drop in order: the store before its directory, the capture before its CA.
struct Rig {
    db: Db,
    config: Config,
    keys: Keyring,
    who: Cast,
    _data: tempfile::TempDir,
    capture: Capture,
    _ca: TestCa,
}

impl Rig {
    fn new(tls: TlsMode, faults: &str) -> Rig {
        let ca = TestCa::new();
        let capture = Capture::start(&ca);
        if !faults.is_empty() {
            capture.set_faults(faults);
        }
        let port = if tls == TlsMode::Implicit { capture.smtps_port() } else { capture.smtp_port() };
        let data = tempfile::tempdir().unwrap();
        let config = smtp_config(data.path(), &ca, port, tls);
        let db = Db::open(&data.path().join("t.sqlite")).unwrap();
        let who = cast(&db);
        Rig { db, config, keys: Keyring::new(vec![vec![3; 32]]), who, _data: data, capture, _ca: ca }
    }

    fn notifier(&self) -> Notifier<'_> {
        Notifier { config: &self.config, keys: &self.keys, now: ticketgate::clock::now() }
    }
}

struct Cast {
    member: User,
    admin: User,
    agent: User,
    team: TeamId,
}

fn cast(db: &Db) -> Cast {
    db.write(|c| {
        let team = users::create_team(c, "Acme", 0)?;
        let mk = |email: &str, name: &str, role, team| {
            let id = users::create_user(c, &NewUser { email, name, role, team_id: team, password_hash: None }, 0)?;
            users::by_id(c, id)
        };
        Ok::<_, ticketgate::store::StoreError>(Cast {
            member: mk("mia@acme.test", "Mia Member", Role::Member, Some(team))?,
            admin: mk("ada@acme.test", "Ada Admin", Role::Admin, Some(team))?,
            agent: mk("sam@example.test", "Sam Agent", Role::Staff, None)?,
            team,
        })
    })
    .unwrap()
}

/// A message by `author` with the status change and notifications, in one transaction.
fn act(db: &Db, n: &Notifier, ticket: TicketId, author: &User, event: Event, body: &str, mid: Option<&str>) {
    db.write(|c| {
        let message = match mid {
            Some(mid) => Some(tickets::add_message(
                c,
                &NewMessage {
                    ticket_id: ticket,
                    author_id: Some(author.id),
                    author_role: author.role,
                    via: Via::Mail,
                    event,
                    body,
                    quoted: "",
                    message_id: Some(mid),
                    raw: None,
                },
                n.now,
            )?),
            None => None,
        };
        let t = tickets::get(c, ticket)?;
        let status = ticketgate::lifecycle::transition(Some(t.status), event).status;
        tickets::set_status(c, ticket, status, n.now)?;
        notify::ticket_event(c, n, &tickets::get(c, ticket)?, message, event, Some(author))
    })
    .unwrap();
}

fn new_ticket(db: &Db, n: &Notifier, who: &Cast, subject: &str, root: &str) -> TicketId {
    let t = db.write(|c| tickets::create(c, who.team, who.member.id, subject, "support", n.now)).unwrap();
    act(db, n, t, &who.member, Event::Opened, "The printer is on fire.", Some(root));
    t
}

fn outbox_ids(db: &Db) -> Vec<(i64, String, String)> {
    let rows = db.with(|c| outbox::list(c, 10_000)).unwrap();
    rows.into_iter().map(|e| (e.id, e.message_id, e.state.to_string())).collect()
}

fn all_sent(db: &Db) -> bool {
    outbox_ids(db).iter().all(|(_, _, s)| s == "sent")
}

fn message_id(m: &Captured) -> String {
    MessageParser::default().parse(&m.eml).and_then(|p| p.message_id().map(String::from)).unwrap_or_default()
}

fn list(v: &mail_parser::HeaderValue) -> Vec<String> {
    v.as_text_list().map(|l| l.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
}

#[test]
fn every_mail_on_a_ticket_threads_onto_the_customers_first_message() {
    let rig = Rig::new(TlsMode::Starttls, "");
    let (db, config, who, capture) = (&rig.db, &rig.config, &rig.who, &rig.capture);
    let n = rig.notifier();

    let at = |k: i64| Notifier { now: n.now + k, ..n };
    let t = new_ticket(db, &n, who, "Printer on fire", "root.1@acme.test");
    act(db, &at(1), t, &who.agent, Event::StaffResponded, "Unplug it.", Some("web.a1@example.test"));
    act(db, &at(2), t, &who.member, Event::CustomerReplied, "Done, still smoking.", Some("c2@acme.test"));
    act(db, &at(3), t, &who.agent, Event::Closed, "", None);
    act(db, &at(4), t, &who.admin, Event::CustomerReplied, "It is back!", Some("c3@acme.test"));
    act(db, &at(5), t, &who.agent, Event::StaffResponded, "Replacing it.", Some("web.a2@example.test"));

    let worker = Worker::start(db, config);
    wait_until("every mail sent", LONG, || all_sent(db));
    worker.stop();

    let stored = db.with(|c| outbox::list(c, 100)).unwrap();
    let captured = capture.messages();
    assert_eq!(captured.len(), stored.len(), "one delivery per queued mail");
    let thread = db.with(|c| tickets::thread_message_ids(c, t, "mia@acme.test")).unwrap();
    println!("thread of ticket #{t} as mia@acme.test has seen it (oldest first): {thread:?}");
    let mut known: HashSet<String> =
        ["root.1@acme.test", "web.a1@example.test", "c2@acme.test", "c3@acme.test", "web.a2@example.test"]
            .map(String::from)
            .into();
    known.extend(stored.iter().map(|e| e.message_id.clone()));
    for m in &captured {
        let p = MessageParser::default().parse(&m.eml).unwrap();
        let id = p.message_id().unwrap().to_string();
        let row = stored.iter().find(|e| e.message_id == id).expect("the sent id is the stored id");
        let (irt, refs) = (list(p.in_reply_to()), list(p.references()));
        println!(
            "{:<16} to {:<18} Message-ID <{id}>\n    In-Reply-To {irt:?}\n    References  {refs:?}",
            row.kind, row.recipient
        );
        assert_eq!(m.rcpt_tos(), vec![row.recipient.clone()]);
        assert_eq!(m.envelope["auth_login"].as_str(), Some(SUPPORT.0), "AUTH was used");
        assert_eq!(m.envelope["tls"].as_bool(), Some(true), "STARTTLS was used");
        assert_eq!(refs.first().map(String::as_str), Some("root.1@acme.test"), "{id}: root first");
        assert_eq!(irt.len(), 1);
        assert_eq!(refs.last(), irt.first(), "{id}: References end with the parent");
        assert!(refs.iter().all(|r| known.contains(r) && *r != id), "{id}: only ids of this thread");
        assert!(
            refs.iter().all(|r| stored.iter().all(|e| e.message_id != *r || e.recipient == row.recipient)),
            "{id}: never the id of a mail to someone else"
        );
        let verp = m.envelope["mail_from"].as_str().unwrap_or_default().to_string();
        let tag = ticketgate::address::tag_of(&verp, SUPPORT.0).expect("a VERP envelope sender");
        let bounce = token::BounceTag::parse(tag).expect("a bounce tag");
        assert_eq!(bounce.row, row.id, "{verp}");
        assert!(bounce.verify(&rig.keys, &row.recipient, &row.message_id), "{verp} is signed for this mail");
        assert!(p.subject().unwrap().contains(&format!("[#{t}]")));
    }
    let irt_of = |kind: &str, to: &str| {
        let row = stored.iter().find(|e| e.kind.as_str() == kind && e.recipient == to).unwrap();
        let m = captured.iter().find(|m| message_id(m) == row.message_id).unwrap();
        list(MessageParser::default().parse(&m.eml).unwrap().in_reply_to())
    };
    assert_eq!(irt_of("ack", "mia@acme.test"), vec!["root.1@acme.test"]);
    assert_eq!(irt_of("customer_update", "sam@example.test"), vec!["c2@acme.test"]);
    assert_eq!(irt_of("reopened", "sam@example.test"), vec!["c3@acme.test"]);
    let closed_row = stored.iter().find(|e| e.kind.as_str() == "closed" && e.recipient == "mia@acme.test").unwrap();
    let previous = stored
        .iter()
        .filter(|e| e.recipient == "mia@acme.test" && e.id < closed_row.id)
        .max_by_key(|e| e.id)
        .map(|e| e.message_id.clone());
    assert_eq!(
        irt_of("closed", "mia@acme.test"),
        previous.into_iter().collect::<Vec<_>>(),
        "a Close without a message replies to the recipient's own newest mail"
    );
}

#[test]
fn implicit_tls_works_too() {
    let rig = Rig::new(TlsMode::Implicit, "");
    let (db, config, who, capture) = (&rig.db, &rig.config, &rig.who, &rig.capture);
    let n = rig.notifier();
    new_ticket(db, &n, who, "Hello", "root.2@acme.test");
    let worker = Worker::start(db, config);
    wait_until("sent", LONG, || all_sent(db));
    worker.stop();
    let got = capture.messages();
    assert_eq!(got.len(), 2, "ack + staff notification");
    assert!(got.iter().all(|m| m.envelope["auth_login"].as_str() == Some(SUPPORT.0)));
}

#[test]
fn an_outage_then_recovery_delivers_every_mail_exactly_once() {
    let rig = Rig::new(TlsMode::Starttls, "refuse\n");
    let (db, config, who, capture) = (&rig.db, &rig.config, &rig.who, &rig.capture);
    let n = rig.notifier();
    wait_until("capture refusing", LONG, || !capture.listening());
    for i in 0..8 {
        new_ticket(db, &n, who, &format!("Outage {i}"), &format!("root.o{i}@acme.test"));
    }
    let worker = Worker::start(db, config);
    let failed_twice =
        || db.with(|c| outbox::list(c, 100)).unwrap().iter().all(|e| e.attempts >= 2 && e.state.as_str() == "pending");
    wait_until("every mail tried twice while the server is down", LONG, failed_twice);
    let rows = db.with(|c| outbox::list(c, 100)).unwrap();
    assert!(rows.iter().all(|e| e.last_error.as_deref().is_some_and(|s| !s.is_empty())), "{rows:?}");
    capture.set_faults("");
    wait_until("every mail sent after the server is back", LONG, || all_sent(db));
    worker.stop();

    let sent: HashSet<String> = outbox_ids(db).into_iter().map(|(_, id, _)| id).collect();
    let got: Vec<String> = capture.messages().iter().map(message_id).collect();
    assert_eq!(got.len(), sent.len(), "no mail delivered twice");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), sent, "every mail delivered");
}

#[test]
fn temporary_failures_are_retried_until_accepted() {
    let rig = Rig::new(TlsMode::Starttls, "tempfail DATA 2\ntempfail RCPT 1\n");
    let (db, config, who, capture) = (&rig.db, &rig.config, &rig.who, &rig.capture);
    let n = rig.notifier();
    let t = db.write(|c| tickets::create(c, who.team, who.member.id, "One mail", "support", n.now)).unwrap();
    act(db, &n, t, &who.agent, Event::StaffResponded, "Only Mia hears of this", Some("only@example.test"));
    let worker = Worker::start(db, config);
    wait_until("sent", LONG, || all_sent(db));
    worker.stop();
    let rows = db.with(|c| outbox::list(c, 10)).unwrap();
    let attempts: i64 = rows.iter().map(|e| e.attempts).sum();
    assert_eq!(attempts, rows.len() as i64 + 3, "three refusals (4xx), then each accepted once: {rows:?}");
    assert_eq!(capture.messages().len(), rows.len());
    assert_eq!(capture.faults().trim(), "", "every injected failure was met");
}

#[test]
fn permanent_failures_are_recorded_on_the_ticket_and_not_retried() {
    let rig = Rig::new(TlsMode::Starttls, "permfail RCPT 1\n");
    let (db, config, who, capture) = (&rig.db, &rig.config, &rig.who, &rig.capture);
    let n = rig.notifier();
    db.write(|c| users::set_bouncing(c, "ada@acme.test", Some("test"))).unwrap();
    let t = db.write(|c| tickets::create(c, who.team, who.member.id, "Refused", "support", n.now)).unwrap();
    act(db, &n, t, &who.agent, Event::StaffResponded, "first", Some("p1@example.test"));
    let worker = Worker::start(db, config);
    wait_until("the mail failed", LONG, || outbox_ids(db).iter().any(|(_, _, s)| s == "failed"));
    // A second mail goes through: the worker carried on, and had time to retry the first if it would.
    act(db, &n, t, &who.agent, Event::StaffResponded, "second", Some("p2@example.test"));
    wait_until("the second mail sent", LONG, || outbox_ids(db).iter().any(|(_, _, s)| s == "sent"));

    let rows = db.with(|c| outbox::list(c, 10)).unwrap();
    let failed = rows.iter().find(|e| e.state.as_str() == "failed").unwrap();
    assert_eq!(failed.attempts, 1, "a 5xx is not retried");
    assert!(failed.last_error.as_deref().unwrap().contains("550"), "{failed:?}");
    let notes = db.with(|c| tickets::events(c, t)).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].kind.as_str(), "delivery_failed");
    assert!(notes[0].detail.contains("mia@acme.test") && notes[0].detail.contains("550"), "{notes:?}");
    assert_eq!(capture.messages().len(), 1);

    // `ticketgate outbox list|retry`: the operator sees it and sends it again.
    let mut out = Vec::new();
    ticketgate::outbound::list(db, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.lines().any(|l| l.contains("failed") && l.contains("mia@acme.test") && l.contains("550")), "{out}");
    assert_eq!(ticketgate::outbound::retry(db, Some(failed.id)).unwrap(), 1);
    assert_eq!(ticketgate::outbound::retry(db, Some(failed.id + 100)).unwrap(), 0);
    wait_until("the retried mail sent", LONG, || all_sent(db));
    worker.stop();
    let got: Vec<String> = capture.messages().iter().map(message_id).collect();
    assert!(got.contains(&failed.message_id), "the retry keeps the Message-ID");
}

#[test]
fn a_deadline_turns_temporary_failures_into_a_recorded_failure() {
    let mut rig = Rig::new(TlsMode::Starttls, "tempfail MAIL\n");
    rig.config.outbound.retry_deadline_minutes = 0;
    let (db, config, who) = (&rig.db, &rig.config, &rig.who);
    let n = rig.notifier();
    let t = new_ticket(db, &n, who, "Deadline", "root.d@acme.test");
    let worker = Worker::start(db, config);
    wait_until("both failed", LONG, || outbox_ids(db).iter().all(|(_, _, s)| s == "failed"));
    worker.stop();
    let notes = db.with(|c| tickets::events(c, t)).unwrap();
    assert_eq!(notes.len(), 2);
    assert!(notes.iter().all(|n| n.detail.contains("gave up after 1 attempts")), "{notes:?}");
}

/// `ticketgate serve` delivering to the capture server is killed with SIGKILL while the server
/// holds messages at DATA; after the restart every mail is there, and the only repeats are
/// mails the server had already accepted when the process died, recognisable by Message-ID.
#[test]
fn kill_9_mid_delivery_loses_nothing() {
    let ca = TestCa::new();
    let capture = Capture::start(&ca);
    capture.set_faults("delay DATA 1\n");
    let config = AppConfig::new()
        .without_web()
        .set("outbound.transport", "smtp")
        .set("outbound.retry_base_seconds", 1)
        .set("outbound.retry_max_seconds", 1)
        .set("outbound.concurrency", 2)
        .set("outbound.smtp.host", "localhost")
        .set("outbound.smtp.port", capture.smtp_port() as i64)
        .set("outbound.smtp.tls", "starttls")
        .set("outbound.smtp.ca_file", ca.ca_pem().to_string_lossy().into_owned())
        .set("outbound.smtp.username", SUPPORT.0)
        .env("TICKETGATE_OUTBOUND__SMTP__PASSWORD", SUPPORT.1);
    let mut app = App::start(config);
    let db = Db::open(&app.data_dir().join("ticketgate.sqlite")).unwrap();
    let who = cast(&db);
    let (mut cfg, keys) = (Config::default(), Keyring::new(vec![vec![3; 32]]));
    cfg.support.address = SUPPORT.0.into();
    let n = Notifier { config: &cfg, keys: &keys, now: ticketgate::clock::now() };
    for i in 0..10 {
        new_ticket(&db, &n, &who, &format!("Kill {i}"), &format!("root.k{i}@acme.test"));
    }
    let queued = outbox_ids(&db).len();
    wait_until("some mail delivered", LONG, || !capture.messages().is_empty());
    app.kill9();
    let before_restart = outbox_ids(&db).iter().filter(|(_, _, s)| s == "sent").count();
    assert!(before_restart < queued, "killed mid-delivery ({before_restart} of {queued} sent)");
    capture.set_faults("");
    app.restart();
    wait_until("every mail sent after the restart", LONG, || all_sent(&db));

    let stored: HashSet<String> = outbox_ids(&db).into_iter().map(|(_, id, _)| id).collect();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for m in capture.messages() {
        *copies.entry(message_id(&m)).or_default() += 1;
    }
    println!("queued {queued}, sent before the kill {before_restart}, copies per Message-ID: {copies:?}");
    assert_eq!(copies.keys().cloned().collect::<HashSet<_>>(), stored, "nothing lost, nothing foreign");
    let repeats = copies.values().filter(|n| **n > 1).count();
    assert!(repeats <= 2, "at most the mails in flight at the kill repeat (concurrency): {copies:?}");
    assert!(copies.values().all(|n| *n <= 2), "{copies:?}");
}

/// A store in `data` holding the [`Cast`], and a config that writes `.eml` files to `data/outbox`.
fn eml_setup(data: &Path) -> (Config, Db, Keyring, Cast) {
    let mut config = Config { data_dir: data.to_path_buf(), ..Config::default() };
    config.support.address = SUPPORT.0.into();
    config.outbound.eml_dir = data.join("outbox");
    let db = Db::open(&data.join("t.sqlite")).unwrap();
    let who = cast(&db);
    (config, db, Keyring::new(vec![vec![3; 32]]), who)
}

#[test]
fn the_default_eml_folder_gets_one_file_per_message_id() {
    let data = tempfile::tempdir().unwrap();
    let (config, db, keys, who) = eml_setup(data.path());
    let n = Notifier { config: &config, keys: &keys, now: ticketgate::clock::now() };
    new_ticket(&db, &n, &who, "To a folder", "root.e@acme.test");
    let worker = Worker::start(&db, &config);
    wait_until("written", LONG, || all_sent(&db));
    worker.stop();
    let stored = db.with(|c| outbox::list(c, 10)).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(data.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = stored.iter().map(|e| format!("{}.eml", e.message_id)).collect();
    expected.sort();
    assert_eq!(files, expected, "one file per mail, named by its Message-ID, no temp files left");
    for e in &stored {
        let on_disk = std::fs::read(data.path().join("outbox").join(format!("{}.eml", e.message_id))).unwrap();
        // The envelope sender is recorded as an MTA would, then the stored bytes, unchanged.
        let verp = ticketgate::outbound::envelope_sender(SUPPORT.0, &keys, e.id, &e.recipient, &e.message_id);
        let mut expected = format!("Return-Path: <{verp}>\r\n").into_bytes();
        expected.extend(db.with(|c| ticketgate::notify::draft::outgoing(c, e.id)).unwrap().unwrap());
        assert_eq!(on_disk, expected, "the stored bytes, unchanged, after the VERP Return-Path");
    }
}

/// Mail is made by the worker, not inside the ticket change: the change queues drafts only, and a
/// mail that cannot be made (an address lettre refuses) is marked failed with a `notify_failed`
/// note on its ticket while the other mails of the same change go out.
#[test]
fn the_worker_renders_drafts_and_fails_only_the_mail_it_cannot_make() {
    let data = tempfile::tempdir().unwrap();
    let (config, db, keys, who) = eml_setup(data.path());
    // The store takes this address, but it cannot fit on a header line.
    let unmailable = format!("m@{}acme.test", "abcdefghij.".repeat(90));
    let staff = NewUser { email: &unmailable, name: "", role: Role::Staff, team_id: None, password_hash: None };
    db.write(|c| users::create_user(c, &staff, 0)).unwrap();
    let n = Notifier { config: &config, keys: &keys, now: ticketgate::clock::now() };
    let t = new_ticket(&db, &n, &who, "Made later", "root.d@acme.test");
    let queued: Vec<(i64, bool)> = db
        .with(|c| {
            let mut st = c.prepare("SELECT length(raw), draft IS NOT NULL FROM outbox")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    assert_eq!(queued, vec![(0, true); 3], "ack, staff and the unmailable staff: drafts, nothing rendered");

    let worker = Worker::start(&db, &config);
    wait_until("settled", LONG, || outbox_ids(&db).iter().all(|(_, _, s)| s != "pending"));
    worker.stop();
    let rows = db.with(|c| outbox::list(c, 10)).unwrap();
    let state = |to: &str| rows.iter().find(|e| e.recipient == to).map(|e| e.state.to_string());
    assert_eq!(state(&unmailable).as_deref(), Some("failed"));
    assert_eq!(state(&who.member.email).as_deref(), Some("sent"));
    assert_eq!(state(&who.agent.email).as_deref(), Some("sent"));
    let notes = db.with(|c| tickets::events(c, t)).unwrap();
    let failed: Vec<_> = notes.iter().filter(|e| e.kind.as_str() == "notify_failed").collect();
    assert_eq!(failed.len(), 1, "{notes:?}");
    assert!(failed[0].detail.starts_with(&format!("No new_ticket mail could be made for {unmailable}")), "{failed:?}");
    assert_eq!(std::fs::read_dir(data.path().join("outbox")).unwrap().count(), 2, "the two others went out");
}

/// The reproduction of issue 9: a full outbox, `serve` with no mail source, and another process
/// holding the write lock (as a long inbound batch would) while the worker delivers; `kill -9`
/// meanwhile. However long the lock is held, at most `outbound.concurrency` mails are delivered
/// and not recorded, so each kill repeats at most that many.
#[test]
fn a_held_write_lock_and_kill_9_repeat_at_most_concurrency_mails_per_kill() {
    const TICKETS: usize = 150;
    const CONCURRENCY: usize = 4;
    const KILLS: usize = 2;
    let ca = TestCa::new();
    let capture = Capture::start(&ca);
    // Slow enough that the backlog outlasts the held locks.
    capture.set_faults("delay DATA 0.05\n");
    let mut app = App::start(delivering_app(&capture, &ca, CONCURRENCY).set("maildir.path", ""));
    app.kill9();
    let db_path = app.data_dir().join("ticketgate.sqlite");
    let db = Db::open(&db_path).unwrap();
    let who = cast(&db);
    let (mut cfg, keys) = (Config::default(), Keyring::new(vec![vec![3; 32]]));
    cfg.support.address = SUPPORT.0.into();
    let n = Notifier { config: &cfg, keys: &keys, now: ticketgate::clock::now() };
    for i in 0..TICKETS {
        new_ticket(&db, &n, &who, &format!("Held {i}"), &format!("root.h{i}@acme.test"));
    }
    let queued = outbox_ids(&db).len();

    for _ in 0..KILLS {
        let before = capture.messages().len();
        app.restart();
        wait_until("deliveries under way", LONG, || capture.messages().len() > before + CONCURRENCY);
        let lock = rusqlite::Connection::open(&db_path).unwrap();
        lock.busy_timeout(LONG).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let locked_at = capture.messages().len();
        // Time for the worker to deliver far more than it may, if it would.
        std::thread::sleep(Duration::from_secs(3));
        let while_locked = capture.messages().len() - locked_at;
        app.kill9();
        lock.execute_batch("ROLLBACK").unwrap();
        println!("delivered while the lock was held: {while_locked}");
        assert!(while_locked <= CONCURRENCY, "{while_locked} mails delivered while none could be recorded");
    }
    capture.set_faults("");
    app.restart();
    wait_until("every mail sent after the restart", LONG, || all_sent(&db));

    let extra = extra_copies(&db, &capture);
    println!("queued {queued}, {KILLS} kills, extra copies {extra}");
    assert!(extra <= CONCURRENCY * KILLS, "{extra} second copies after {KILLS} kills");
}

/// The same bound while an inbound backlog competes for the write lock: `kill -9` at random
/// points of a Maildir backlog whose notifications are being delivered.
#[test]
fn kill_9_during_a_running_backlog_repeats_at_most_concurrency_mails_per_kill() {
    use rand::RngExt;
    const MESSAGES: usize = 1_000;
    const CONCURRENCY: usize = 4;
    const KILLS: usize = 5;
    let ca = TestCa::new();
    let capture = Capture::start(&ca);
    capture.set_faults("delay DATA 0.02\n");
    let mut app = App::start(delivering_app(&capture, &ca, CONCURRENCY));
    let db = Db::open(&app.data_dir().join("ticketgate.sqlite")).unwrap();
    cast(&db);
    app.kill9();
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    for i in 0..MESSAGES {
        let (subject, id) = (format!("Backlog {i}"), format!("backlog{i}@acme.test"));
        inbox.deliver(&crate::pipeline::mail("mia@acme.test", SUPPORT.0, &subject, &id, "", "help")).unwrap();
    }
    let mut rng = rand::rng();
    for _ in 0..KILLS {
        app.restart();
        std::thread::sleep(Duration::from_millis(rng.random_range(500..2000)));
        app.kill9();
    }
    capture.set_faults("");
    app.restart();
    wait_until("the backlog ingested", LONG, || inbox.pending().unwrap().is_empty());
    // The worker renders the 2,000 mails as it sends them: on a loaded machine with a debug
    // build that alone can take minutes.
    wait_until("every mail sent", 5 * LONG, || all_sent(&db));

    let extra = extra_copies(&db, &capture);
    println!("{} mails, {KILLS} kills, extra copies {extra}", outbox_ids(&db).len());
    assert!(extra <= CONCURRENCY * KILLS, "{extra} second copies after {KILLS} kills");
}

/// How many second copies `capture` received, after checking that it received every
/// mail of the outbox and nothing else (same Message-IDs).
fn extra_copies(db: &Db, capture: &Capture) -> usize {
    let stored: HashSet<String> = outbox_ids(db).into_iter().map(|(_, id, _)| id).collect();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for m in capture.messages() {
        *copies.entry(message_id(&m)).or_default() += 1;
    }
    assert_eq!(copies.keys().cloned().collect::<HashSet<_>>(), stored, "nothing lost, nothing foreign");
    copies.values().map(|n| n - 1).sum()
}

/// `serve` delivering to `capture` over STARTTLS + AUTH with `concurrency`, the portal off.
fn delivering_app(capture: &Capture, ca: &TestCa, concurrency: usize) -> AppConfig {
    AppConfig::new()
        .without_web()
        .set("outbound.transport", "smtp")
        .set("outbound.concurrency", concurrency as i64)
        .set("outbound.smtp.host", "localhost")
        .set("outbound.smtp.port", capture.smtp_port() as i64)
        .set("outbound.smtp.tls", "starttls")
        .set("outbound.smtp.ca_file", ca.ca_pem().to_string_lossy().into_owned())
        .set("outbound.smtp.username", SUPPORT.0)
        .env("TICKETGATE_OUTBOUND__SMTP__PASSWORD", SUPPORT.1)
}
