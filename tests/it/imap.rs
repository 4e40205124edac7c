//! The IMAP source against a real Dovecot started by the harness: IDLE, threading, backlogs,
//! crashes (SIGKILL of the real binary), server restarts, UIDVALIDITY changes, wrong passwords,
//! unreadable mail and several mailboxes. Waits are polls of the database or the mailbox,
//! never fixed sleeps.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ticketgate::config::{Config, ImapConfig, Secret, TlsMode};

use crate::common::{App, AppConfig, Dovecot, ImapTls, STAFF, SUPPORT, TestCa, imap_entry, unique, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// A pipeline on a fresh data dir; unknown senders may open tickets, so any test sender works.
fn pipeline(dir: &Path) -> ticketgate::app::App {
    pipeline_with(dir, |c| c)
}

/// [`pipeline`] with more settings.
fn pipeline_with(dir: &Path, more: impl FnOnce(AppConfig) -> AppConfig) -> ticketgate::app::App {
    // The source's log lines, shown for failing tests.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let toml = more(
        AppConfig::new()
            .without_web()
            .set("data_dir", dir.to_string_lossy().into_owned())
            .set("support.allow_unknown_senders", true),
    )
    .to_toml();
    let path = dir.join("ticketgate.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load_with_env(Some(&path), Vec::<(String, String)>::new()).unwrap();
    ticketgate::app::App::open(Arc::new(config)).unwrap()
}

fn mailbox(dovecot: &Dovecot, tls: ImapTls, label: &str, user: (&str, &str), folder: &str) -> ImapConfig {
    ImapConfig {
        label: label.into(),
        host: "localhost".into(),
        port: dovecot.port_for(tls),
        tls: match tls {
            ImapTls::PlainInsecure => TlsMode::PlainInsecure,
            ImapTls::Starttls => TlsMode::Starttls,
            ImapTls::Implicit => TlsMode::Implicit,
        },
        ca_file: Some(dovecot.ca_pem().to_path_buf()),
        username: user.0.into(),
        password: Secret(user.1.into()),
        folder: folder.into(),
        poll_seconds: 1,
        batch_size: 50,
        ..ImapConfig::default()
    }
}

/// `ticketgate::inbound::imap::run` on a runtime of its own, stopped like `serve` stops it.
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn start(pipeline: &ticketgate::app::App, mb: ImapConfig) -> Running {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let pipeline = pipeline.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(ticketgate::inbound::imap::run(pipeline, mb, shutdown))
        });
        Running { stop, thread: Some(thread) }
    }

    fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Requests shutdown and waits for the source to return.
    fn stop(mut self) {
        self.stop.send(true).unwrap();
        let result = self.thread.take().unwrap().join().expect("source thread panicked");
        result.expect("the source returns Ok on shutdown");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mail(from: &str, message_id: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: Test Sender <{from}>\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello support,\r\n\r\nthe printer on floor {} is on fire again.\r\n",
        SUPPORT.0,
        message_id.len()
    )
    .into_bytes()
}

fn count(p: &ticketgate::app::App, sql: &str) -> i64 {
    p.db().with(|c| Ok(c.query_row(sql, [], |r| r.get(0))?)).unwrap()
}

fn connected(p: &ticketgate::app::App, label: &str) -> bool {
    count(p, &format!("SELECT count(*) FROM imap_state WHERE mailbox = '{label}'")) > 0
}

#[test]
fn idle_turns_new_mail_into_a_ticket_and_threads_the_reply() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::Starttls, "support", SUPPORT, "INBOX"));
    wait_until("the source connected", LONG, || connected(&p, "support"));

    let first = format!("{}@customer.test", unique("idle"));
    dovecot.deliver("customer@example.test", SUPPORT.0, &mail("customer@example.test", &first, "Printer", ""));
    wait_until("a ticket from the IDLE wake-up", LONG, || count(&p, "SELECT count(*) FROM tickets") == 1);
    let reply = format!("{}@customer.test", unique("reply"));
    let threading = format!("In-Reply-To: <{first}>\r\nReferences: <{first}>\r\n");
    dovecot.deliver(
        "customer@example.test",
        SUPPORT.0,
        &mail("customer@example.test", &reply, "Re: Printer", &threading),
    );
    wait_until("the reply posted", LONG, || count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'") == 2);
    wait_until("both filed as processed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 2);

    assert_eq!(count(&p, "SELECT count(*) FROM tickets"), 1, "the reply threads onto the first ticket");
    assert_eq!(count(&p, "SELECT count(DISTINCT ticket_id) FROM messages"), 1);
    assert_eq!(count(&p, "SELECT count(*) FROM tickets WHERE source = 'support'"), 1, "the mailbox label");
    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 0);
    assert_eq!(dovecot.messages(SUPPORT.0, "Quarantine"), 0, "created, empty");
    source.stop();
}

#[test]
fn backlog_of_500_is_processed_exactly_once() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let n = 500;
    for i in 0..n {
        let id = format!("{}@customer.test", unique(&format!("backlog{i}")));
        dovecot.drop_message(SUPPORT.0, "INBOX", &mail("customer@example.test", &id, &format!("Backlog {i}"), ""));
    }
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::Implicit, "support", SUPPORT, "INBOX"));
    wait_until("the backlog filed", LONG * 3, || dovecot.messages(SUPPORT.0, "Processed") == n);
    source.stop();

    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 0);
    assert_eq!(count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'"), n as i64);
    assert_eq!(count(&p, "SELECT count(DISTINCT message_id) FROM messages WHERE via = 'mail'"), n as i64);
    assert_eq!(count(&p, "SELECT count(*) FROM tickets"), n as i64);
    let last_uid = count(&p, "SELECT last_uid FROM imap_state WHERE mailbox = 'support' AND folder = 'INBOX'");
    assert_eq!(last_uid, n as i64, "the checkpoint reached the last UID");

    // A second session finds nothing new and changes nothing.
    let again = Running::start(&p, mailbox(&dovecot, ImapTls::Implicit, "support", SUPPORT, "INBOX"));
    let id = format!("{}@customer.test", unique("after"));
    dovecot.deliver("customer@example.test", SUPPORT.0, &mail("customer@example.test", &id, "After", ""));
    wait_until("the new one filed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == n + 1);
    again.stop();
    assert_eq!(count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'"), n as i64 + 1);
}

#[test]
fn dovecot_restart_mid_backlog_recovers_by_itself() {
    let ca = TestCa::new();
    let mut dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let n = 400;
    for i in 0..n {
        let id = format!("{}@customer.test", unique(&format!("restart{i}")));
        dovecot.drop_message(SUPPORT.0, "INBOX", &mail("customer@example.test", &id, &format!("Restart {i}"), ""));
    }
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::PlainInsecure, "support", SUPPORT, "INBOX"));
    wait_until("the backlog under way", LONG, || count(&p, "SELECT count(*) FROM tickets") > 0);
    dovecot.restart();
    wait_until("the backlog filed after the restart", LONG * 3, || dovecot.messages(SUPPORT.0, "Processed") == n);
    // The source is back in IDLE on the restarted server.
    let id = format!("{}@customer.test", unique("post-restart"));
    dovecot.deliver("customer@example.test", SUPPORT.0, &mail("customer@example.test", &id, "After restart", ""));
    wait_until("mail after the restart filed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == n + 1);
    assert!(source.is_running());
    source.stop();

    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 0);
    assert_eq!(count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'"), n as i64 + 1);
    assert_eq!(count(&p, "SELECT count(DISTINCT message_id) FROM messages WHERE via = 'mail'"), n as i64 + 1);
}

#[test]
fn a_recreated_folder_with_the_same_mail_posts_nothing_twice() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let raws: Vec<Vec<u8>> = (0..20)
        .map(|i| mail("customer@example.test", &format!("{}@customer.test", unique("uv")), &format!("UV {i}"), ""))
        .collect();
    dovecot.doveadm(&["mailbox", "create", "-u", SUPPORT.0, "Support"]);
    for raw in &raws {
        dovecot.save(SUPPORT.0, "Support", raw);
    }
    let mb = mailbox(&dovecot, ImapTls::Starttls, "support", SUPPORT, "Support");
    let source = Running::start(&p, mb.clone());
    wait_until("first round filed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 20);
    source.stop();
    let uidvalidity =
        |p: &ticketgate::app::App| count(p, "SELECT uidvalidity FROM imap_state WHERE folder = 'Support'");
    let before = uidvalidity(&p);

    dovecot.doveadm(&["mailbox", "delete", "-u", SUPPORT.0, "Support"]);
    dovecot.doveadm(&["mailbox", "create", "-u", SUPPORT.0, "Support"]);
    for raw in &raws {
        dovecot.save(SUPPORT.0, "Support", raw);
    }
    let source = Running::start(&p, mb);
    wait_until("second round filed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 40);
    source.stop();

    assert_ne!(uidvalidity(&p), before, "the folder got a new UIDVALIDITY");
    assert_eq!(dovecot.messages(SUPPORT.0, "Support"), 0);
    assert_eq!(count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'"), 20, "nothing posted twice");
    assert_eq!(count(&p, "SELECT count(*) FROM tickets"), 20);
}

#[test]
fn wrong_password_backs_off_and_recovers_once_the_login_works() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let user = ("late@example.test", "late-secret");
    let failures =
        || std::fs::read_to_string(dovecot.log_path()).unwrap_or_default().matches("late@example.test").count();
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::Implicit, "late", user, "INBOX"));
    wait_until("two refused logins", LONG, || failures() >= 2);
    assert!(source.is_running(), "a refused login is retried, not fatal");
    dovecot.add_user(user.0, user.1);
    let id = format!("{}@customer.test", unique("late"));
    dovecot.deliver("customer@example.test", user.0, &mail("customer@example.test", &id, "Late", ""));
    wait_until("mail read once the login works", LONG, || count(&p, "SELECT count(*) FROM tickets") == 1);
    // Exponential backoff: a handful of attempts, not a tight loop.
    let attempts = failures();
    assert!(attempts < 15, "{attempts} log lines about failed logins: no backoff?");
    source.stop();
}

#[test]
fn unreadable_mail_is_quarantined_and_two_mailboxes_keep_their_labels() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let garbage: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    dovecot.drop_message(SUPPORT.0, "INBOX", &garbage);
    let id = format!("{}@customer.test", unique("ok"));
    dovecot.drop_message(SUPPORT.0, "INBOX", &mail("customer@example.test", &id, "Fine", ""));
    let id2 = format!("{}@customer.test", unique("billing"));
    dovecot.drop_message(STAFF.0, "INBOX", &mail("customer@example.test", &id2, "Invoice", ""));

    let support = Running::start(&p, mailbox(&dovecot, ImapTls::Starttls, "support", SUPPORT, "INBOX"));
    let mut billing_mb = mailbox(&dovecot, ImapTls::Implicit, "billing", STAFF, "INBOX");
    billing_mb.processed_folder = "Done".into();
    billing_mb.quarantine_folder = "Rejected".into();
    let billing = Running::start(&p, billing_mb);
    wait_until("the garbage quarantined", LONG, || dovecot.messages(SUPPORT.0, "Quarantine") == 1);
    wait_until("the good one processed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 1);
    wait_until("billing processed", LONG, || dovecot.messages(STAFF.0, "Done") == 1);
    support.stop();
    billing.stop();

    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 0);
    assert_eq!(count(&p, "SELECT count(*) FROM quarantine WHERE source = 'support'"), 1);
    assert_eq!(count(&p, "SELECT count(*) FROM tickets WHERE source = 'support'"), 1);
    assert_eq!(count(&p, "SELECT count(*) FROM tickets WHERE source = 'billing'"), 1);
    assert_eq!(dovecot.messages(STAFF.0, "Rejected"), 0, "created on connect, empty");
}

fn small_batches(mut entry: toml::Table) -> toml::Table {
    // Many commits per run, so every kill lands somewhere different.
    entry.insert("batch_size".into(), 20.into());
    entry
}

#[test]
fn sigkill_during_a_backlog_loses_and_duplicates_nothing() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    // A password that cannot appear in a log line by accident.
    let user = ("kill@example.test", "pw-7f3a9c-never-logged");
    dovecot.add_user(user.0, user.1);
    let n = 1500;
    for i in 0..n {
        let id = format!("{}@customer.test", unique(&format!("kill{i}")));
        dovecot.drop_message(user.0, "INBOX", &mail("customer@example.test", &id, &format!("Kill {i}"), ""));
    }
    let config = AppConfig::new()
        .without_web()
        .set("support.allow_unknown_senders", true)
        .set("maildir.path", "")
        .imap_mailbox(small_batches(imap_entry(&dovecot, ImapTls::Starttls, "support", user.0, "INBOX")), user.1);
    let mut app = App::start(config);
    let processed = |app: &App| app.query_i64("SELECT count(*) FROM processed");
    let mut seed = u64::from(std::process::id()) | 1;
    let mut kills = 0;
    while kills < 5 {
        // A random amount of progress (at least one more committed message) before each kill.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let target = (processed(&app) + 1 + (seed % 80) as i64).min(n as i64);
        wait_until("progress before the kill", LONG, || {
            processed(&app) >= target || dovecot.messages(user.0, "INBOX") == 0
        });
        if dovecot.messages(user.0, "INBOX") == 0 {
            break;
        }
        app.restart(); // SIGKILL, then start again
        kills += 1;
    }
    wait_until("everything filed", LONG * 3, || dovecot.messages(user.0, "Processed") == n);
    app.stop();

    assert!(kills >= 5, "only {kills} kills happened before the backlog was done; make it bigger");
    assert_eq!(dovecot.messages(user.0, "INBOX"), 0, "none left in INBOX");
    assert_eq!(app.query_i64("SELECT count(*) FROM messages WHERE via = 'mail'"), n as i64, "each posted once");
    assert_eq!(app.query_i64("SELECT count(DISTINCT message_id) FROM messages WHERE via = 'mail'"), n as i64);
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), n as i64);
    let log = app.log();
    assert!(log.contains("backlog progress"), "progress lines in the log");
    assert!(!log.contains(user.1), "the password reached the log");
}

#[test]
fn shutdown_mid_backlog_leaves_the_mailbox_consistent() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let n = 1000;
    for i in 0..n {
        let id = format!("{}@customer.test", unique(&format!("term{i}")));
        dovecot.drop_message(SUPPORT.0, "INBOX", &mail("customer@example.test", &id, &format!("Term {i}"), ""));
    }
    let mut mb = mailbox(&dovecot, ImapTls::Starttls, "support", SUPPORT, "INBOX");
    mb.batch_size = 20;
    let source = Running::start(&p, mb);
    wait_until("the backlog under way", LONG, || count(&p, "SELECT count(*) FROM processed") > 0);
    source.stop();

    // Every committed message was filed, and everything filed was committed.
    let stored: std::collections::HashSet<String> = p
        .db()
        .with(|c| {
            let mut st = c.prepare("SELECT '<' || message_id || '>' FROM messages WHERE via = 'mail'")?;
            let ids = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(ids)
        })
        .unwrap();
    let inbox = dovecot.message_ids(SUPPORT.0, "INBOX");
    let processed = dovecot.message_ids(SUPPORT.0, "Processed");
    assert!(!stored.is_empty());
    assert!(inbox.len() + processed.len() == n, "no message lost or copied");
    assert!(inbox.iter().all(|id| !stored.contains(id)), "a committed message was left in INBOX");
    assert!(processed.iter().all(|id| stored.contains(id)), "a message was filed without its commit");
    assert_eq!(stored.len(), processed.len());
}

#[test]
fn a_message_the_server_fails_on_does_not_block_the_others() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    for i in 0..10 {
        let id = format!("{}@customer.test", unique("around"));
        let raw = mail("customer@example.test", &id, &format!("Around {i}"), "");
        if i == 4 {
            // Dovecot drops the connection whenever it reads this file.
            dovecot.drop_unreadable(SUPPORT.0, "INBOX", &raw);
        } else {
            dovecot.drop_message(SUPPORT.0, "INBOX", &raw);
        }
    }
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::PlainInsecure, "support", SUPPORT, "INBOX"));
    wait_until("the others processed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 9);
    assert!(source.is_running());
    source.stop();
    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 1, "the bad one is left for a person");
    assert_eq!(count(&p, "SELECT count(*) FROM tickets"), 9);
}

#[test]
fn without_move_and_idle_it_copies_expunges_and_polls() {
    let ca = TestCa::new();
    // Advertised after login instead of Dovecot's full list: no MOVE, no IDLE.
    let dovecot = Dovecot::start_with(&ca, "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE UIDPLUS\n");
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    for i in 0..30 {
        let id = format!("{}@customer.test", unique("nomove"));
        dovecot.drop_message(SUPPORT.0, "INBOX", &mail("customer@example.test", &id, &format!("No move {i}"), ""));
    }
    let mut mb = mailbox(&dovecot, ImapTls::Implicit, "support", SUPPORT, "INBOX");
    mb.batch_size = 7;
    let source = Running::start(&p, mb);
    wait_until("the backlog filed", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 30);
    let id = format!("{}@customer.test", unique("polled"));
    dovecot.deliver("customer@example.test", SUPPORT.0, &mail("customer@example.test", &id, "Polled", ""));
    wait_until("new mail found by polling", LONG, || dovecot.messages(SUPPORT.0, "Processed") == 31);
    source.stop();
    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 0, "copied and expunged");
    assert_eq!(count(&p, "SELECT count(*) FROM messages WHERE via = 'mail'"), 31);
}

/// A message over `limits.max_message_bytes` is fetched in parts into a file and quarantined;
/// one that was quarantined before (the process died before the MOVE) goes to the quarantine
/// folder again, not to the processed one.
#[test]
fn oversized_mail_is_streamed_into_quarantine_and_a_quarantined_message_stays_quarantined() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_with(dir.path(), |c| c.set("limits.max_message_bytes", 100_000));
    let no_from = format!("To: {}\r\nSubject: who\r\nMessage-ID: <{}@x.test>\r\n\r\nhi\r\n", SUPPORT.0, unique("nf"));
    assert_eq!(p.ingest(no_from.as_bytes(), "support").unwrap().quarantine_reason(), Some("no_sender"));
    let mut big = mail("customer@example.test", &format!("{}@customer.test", unique("big")), "Huge", "");
    big.extend(b"0123456789 abcdefghijklmnopqrstuvwxyz 0123456789 abcdefghijklmnopqrstuvwxyz\r\n".repeat(120_000));
    dovecot.drop_message(SUPPORT.0, "INBOX", no_from.as_bytes());
    dovecot.drop_message(SUPPORT.0, "INBOX", &big);
    let small = mail("customer@example.test", &format!("{}@customer.test", unique("small")), "Small", "");
    dovecot.drop_message(SUPPORT.0, "INBOX", &small);
    let source = Running::start(&p, mailbox(&dovecot, ImapTls::PlainInsecure, "support", SUPPORT, "INBOX"));
    wait_until("all filed", LONG, || dovecot.messages(SUPPORT.0, "INBOX") == 0);
    source.stop();
    assert_eq!(dovecot.messages(SUPPORT.0, "Processed"), 1);
    assert_eq!(dovecot.messages(SUPPORT.0, "Quarantine"), 2, "the quarantined one is filed in quarantine again");
    assert_eq!(count(&p, "SELECT count(*) FROM quarantine"), 2, "quarantined once each");
    let path: String = p
        .db()
        .with(|c| {
            Ok(c.query_row("SELECT raw_path FROM quarantine WHERE reason = 'message_too_large'", [], |r| r.get(0))?)
        })
        .unwrap();
    let lf = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", "\n");
    assert_eq!(lf(&std::fs::read(path).unwrap()), lf(&big), "the whole message, in parts of 4 MiB");
}
