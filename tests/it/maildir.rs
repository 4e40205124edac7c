//! The embedded source and the MTA pipe through the real binary: a Maildir
//! backlog survives `kill -9` at random points with every message posted
//! exactly once, and `ingest` answers an MTA with the right exit status.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::RngExt;
use ticketgate::inbound::maildir::Maildir;
use ticketgate::lifecycle::Role;
use ticketgate::store::Db;
use ticketgate::store::users::{self, NewUser};

use crate::common::{App, AppConfig, wait_until};
use crate::pipeline::mail;

fn add_customer(db_path: &std::path::Path) {
    let db = Db::open(db_path).unwrap();
    db.write(|c| {
        let team = users::create_team(c, "Acme", 0)?;
        users::create_user(
            c,
            &NewUser {
                email: "jane@acme.test",
                name: "Jane",
                role: Role::Member,
                team_id: Some(team),
                password_hash: None,
            },
            0,
        )
    })
    .unwrap();
}

#[test]
fn a_backlog_survives_kill_9_at_random_points_exactly_once() {
    const N: usize = 400;
    let mut app = App::start(AppConfig::new().without_web());
    let db_path = app.data_dir().join("ticketgate.sqlite");
    add_customer(&db_path);
    app.kill9();
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    for i in 0..N {
        let raw = mail(
            "jane@acme.test",
            "support@example.test",
            &format!("Case {i}"),
            &format!("case{i}@acme.test"),
            "",
            "help",
        );
        inbox.deliver(&raw).unwrap();
    }
    let mut rng = rand::rng();
    let mut kills = 0;
    while kills < 6 && !inbox.pending().unwrap().is_empty() {
        app.restart();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..400)));
        app.kill9();
        kills += 1;
    }
    assert!(kills >= 5 || inbox.pending().unwrap().is_empty(), "the backlog was too small to be interrupted");
    app.restart();
    wait_until("the backlog is processed", Duration::from_secs(120), || inbox.pending().unwrap().is_empty());
    assert_eq!(app.query_i64("SELECT count(*) FROM messages"), N as i64);
    assert_eq!(app.query_i64("SELECT count(DISTINCT message_id) FROM messages"), N as i64);
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), N as i64);
    assert_eq!(app.query_i64("SELECT count(*) FROM quarantine"), 0);
    let filed = std::fs::read_dir(app.data_dir().join("inbox/cur")).unwrap().count();
    assert_eq!(filed, N, "every message filed once in cur/");
}

#[test]
fn a_dropped_message_becomes_a_ticket_and_garbage_is_quarantined_with_its_reason() {
    let app = App::start(AppConfig::new().without_web());
    add_customer(&app.data_dir().join("ticketgate.sqlite"));
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    inbox.deliver(&mail("jane@acme.test", "support@example.test", "Drop", "drop@acme.test", "", "dropped in")).unwrap();
    inbox.deliver(b"\x00\x01\x02 not a message").unwrap();
    wait_until("both settled", Duration::from_secs(20), || inbox.pending().unwrap().is_empty());
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 1);
    let reasons: Vec<_> = std::fs::read_dir(app.data_dir().join("inbox/.Quarantine/reasons")).unwrap().collect();
    assert_eq!(reasons.len(), 1);
    let reason = std::fs::read_to_string(reasons[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(app.query_i64("SELECT count(*) FROM quarantine"), 1);
    let stored: String = app.db().query_row("SELECT reason FROM quarantine", [], |r| r.get(0)).unwrap();
    assert_eq!(reason.trim(), stored);
}

fn ingest(config: &std::path::Path, args: &[&str], stdin: &[u8]) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(config)
        .arg("ingest")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ingest_tells_the_mta_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[support]\naddress = \"support@example.test\"\n[store]\nbusy_timeout_millis = 200\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let db_path = dir.path().join("data/ticketgate.sqlite");
    add_customer(&db_path);

    let raw = mail("jane@acme.test", "support@example.test", "Piped", "pipe@acme.test", "", "via postfix");
    let (code, out) = ingest(&config, &["-"], &raw);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("opened ticket #1"), "{out}");
    let (code, out) = ingest(&config, &["-"], &raw);
    assert_eq!((code, out.contains("duplicate")), (0, true), "{out}");
    let (code, out) = ingest(&config, &["-"], b"garbage without headers");
    assert_eq!((code, out.contains("quarantined")), (0, true), "quarantined is accepted: {out}");
    let (code, _) = ingest(&config, &[dir.path().join("missing.eml").to_str().unwrap()], b"");
    assert_eq!(code, 66, "an unreadable file is EX_NOINPUT");

    // A database held by another writer is a temporary failure: the MTA keeps the mail.
    let lock = rusqlite::Connection::open(&db_path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let other = mail("jane@acme.test", "support@example.test", "Busy", "busy@acme.test", "", "later");
    let (code, _) = ingest(&config, &["-"], &other);
    assert_eq!(code, 75, "EX_TEMPFAIL");
    lock.execute_batch("ROLLBACK").unwrap();
    let (code, out) = ingest(&config, &["-"], &other);
    assert_eq!(code, 0, "{out}");
    let n: i64 = rusqlite::Connection::open(&db_path)
        .unwrap()
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

/// A real per-message store error: the test database refuses tickets with one subject.
fn poison_subject(db_path: &std::path::Path, subject: &str) {
    rusqlite::Connection::open(db_path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.subject = '{subject}'
             BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END;"
        ))
        .unwrap();
}

fn customer_mail(subject: &str, id: &str) -> Vec<u8> {
    mail("jane@acme.test", "support@example.test", subject, id, "", "help")
}

#[test]
fn a_failing_message_is_tried_again_then_quarantined_and_the_others_go_on() {
    let app = App::start(AppConfig::new().without_web());
    let db_path = app.data_dir().join("ticketgate.sqlite");
    add_customer(&db_path);
    poison_subject(&db_path, "Poison");
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    for (subject, id) in [("Before", "before@acme.test"), ("Poison", "poison@acme.test"), ("After", "after@acme.test")]
    {
        inbox.deliver(&customer_mail(subject, id)).unwrap();
    }
    wait_until("all settled", Duration::from_secs(60), || inbox.pending().unwrap().is_empty());
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 2, "the others were processed");
    let (reason, detail): (String, String) =
        app.db().query_row("SELECT reason, detail FROM quarantine", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(reason, "internal_error");
    assert!(detail.contains("poisoned by the test") && detail.contains("3 attempts"), "{detail}");
    assert_eq!(std::fs::read_dir(app.data_dir().join("inbox/.Quarantine/cur")).unwrap().count(), 1);
    assert!(app.log().contains("trying it again"), "{}", app.log());

    // The MTA pipe: the same, one message at a time, and the MTA is told to forget it.
    let (code, out) = ingest(&app.config_path(), &["-"], &customer_mail("Poison", "poison2@acme.test"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("internal_error"), "{out}");
}

#[test]
fn a_message_that_cannot_be_recorded_stays_in_new_and_the_others_go_on() {
    let app = App::start(AppConfig::new().without_web());
    let db_path = app.data_dir().join("ticketgate.sqlite");
    add_customer(&db_path);
    // Neither its ticket nor its quarantine entry can be committed.
    rusqlite::Connection::open(&db_path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER stuck BEFORE INSERT ON processed WHEN NEW.key = 'mid:stuck@acme.test'
             BEGIN SELECT RAISE(ABORT, 'cannot record'); END;",
        )
        .unwrap();
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    let stuck = inbox.deliver(&customer_mail("Stuck", "stuck@acme.test")).unwrap();
    for i in 0..3 {
        inbox.deliver(&customer_mail(&format!("Fine {i}"), &format!("fine{i}@acme.test"))).unwrap();
    }
    wait_until("the others are filed", Duration::from_secs(60), || {
        std::fs::read_dir(app.data_dir().join("inbox/cur")).unwrap().count() == 3
    });
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 3);
    assert_eq!(app.query_i64("SELECT count(*) FROM quarantine"), 0);
    let name = stuck.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(inbox.pending().unwrap(), vec![name], "left where it was, for a later pass");
}

#[test]
fn a_quarantined_message_seen_again_after_a_crash_is_filed_in_quarantine() {
    let app = App::start(AppConfig::new().without_web());
    add_customer(&app.data_dir().join("ticketgate.sqlite"));
    let garbage = b"\x00\x01\x02 not a message".to_vec();
    // Committed as quarantined, but (as after a kill -9 before the move) still in new/.
    let (code, out) = ingest(&app.config_path(), &["-"], &garbage);
    assert_eq!((code, out.contains("quarantined")), (0, true), "{out}");
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    inbox.deliver(&garbage).unwrap();
    wait_until("settled", Duration::from_secs(20), || inbox.pending().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(app.data_dir().join("inbox/cur")).unwrap().count(), 0, "not filed as processed");
    assert_eq!(std::fs::read_dir(app.data_dir().join("inbox/.Quarantine/cur")).unwrap().count(), 1);
    assert_eq!(app.query_i64("SELECT count(*) FROM quarantine"), 1, "quarantined once");
}

/// A message of `size` bytes or more, with a body of short lines.
fn big_mail(subject: &str, id: &str, size: usize) -> Vec<u8> {
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
    mail("jane@acme.test", "support@example.test", subject, id, "", &line.repeat(size / line.len() + 1))
}

#[test]
fn a_message_over_the_limit_is_kept_as_a_file_and_never_read_whole() {
    const LIMIT: i64 = 200_000;
    let app = App::start(AppConfig::new().without_web().set("limits.max_message_bytes", LIMIT));
    add_customer(&app.data_dir().join("ticketgate.sqlite"));
    let inbox = Maildir::open(&app.data_dir().join("inbox")).unwrap();
    let big = big_mail("Huge", "huge@acme.test", 3 * LIMIT as usize);
    inbox.deliver(&big).unwrap();
    inbox.deliver(&customer_mail("Small", "small@acme.test")).unwrap();
    wait_until("both settled", Duration::from_secs(30), || inbox.pending().unwrap().is_empty());
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 1, "the next message was processed");
    let reasons: Vec<_> = std::fs::read_dir(app.data_dir().join("inbox/.Quarantine/reasons")).unwrap().collect();
    let reason = std::fs::read_to_string(reasons[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(reason.trim(), "message_too_large");

    // The MTA pipe counts standard input; the mail is accepted (exit 0) so the MTA does not retry.
    let other = big_mail("Huge too", "huge2@acme.test", 3 * LIMIT as usize);
    let (code, out) = ingest(&app.config_path(), &["-"], &other);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("message_too_large"), "{out}");

    let rows: Vec<(String, Vec<u8>, String, String)> = {
        let db = app.db();
        let mut st = db.prepare("SELECT subject, raw, raw_path, detail FROM quarantine ORDER BY id").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(rows.len(), 2);
    for ((subject, head, path, detail), original) in rows.iter().zip([&big, &other]) {
        assert!(["Huge", "Huge too"].contains(&subject.as_str()), "the headers are read: {subject}");
        assert!(head.len() < 1000 && original.starts_with(head), "only the header section is stored");
        assert!(detail.contains(&original.len().to_string()), "the size is given: {detail}");
        assert!(std::path::Path::new(path).starts_with(app.data_dir()), "{path}");
        assert_eq!(&std::fs::read(path).unwrap(), original, "the whole message is kept as a file");
    }
}
