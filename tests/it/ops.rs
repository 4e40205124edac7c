//! Running ticketgate as a service: the health check, the Prometheus
//! metrics and the request and message spans in the logs, `backup` while
//! `serve` runs and a restore of it, completions and the man page, and the
//! systemd unit.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::common::{App, AppConfig, PortBlock, unique, wait_until};
use ticketgate::config::Config;
use ticketgate::pipeline::Pipeline;
use ticketgate::signing::Keyring;
use ticketgate::store::Db;

fn ticketgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
}

/// Runs `ticketgate ARGS` and returns its standard output; panics when it fails.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run ticketgate");
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `GET path` over a fresh connection to `host:port` (any of its addresses); (status, body).
fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {head}"));
    (status, body.to_string())
}

fn mail(from: &str, id: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@example.test\r\nSubject: ops test\r\nMessage-ID: <{id}>\r\n\
         Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n\
         --b\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n\
         notes for {id}\r\n--b--\r\n"
    )
}

#[tokio::test]
async fn healthz_answers_without_login_and_fails_when_the_database_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let path = dir.path().join("t.sqlite");
    let pipeline = Pipeline::new(Arc::new(config), Keyring::new(vec![vec![7; 32]]), Db::open(&path).unwrap());
    let app = ticketgate::web::app(pipeline);
    let get = || Request::get("/healthz").body(Body::empty()).unwrap();

    let res = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The pool's open connections would go on answering from the deleted file.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let res = app.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn metrics_count_messages_and_requests_and_logs_carry_their_spans() {
    let ports = PortBlock::new(1);
    let metrics = format!("localhost:{}", ports.port(0));
    let app = App::start(
        AppConfig::new()
            .set("support.allow_unknown_senders", true)
            .set("metrics.listen", metrics.as_str())
            .env("RUST_LOG", "info"),
    );
    let web = app.web_url().expect("portal").trim_start_matches("http://").to_string();

    let (status, _) = http_get(&web, "/healthz");
    assert_eq!(status, 200);
    let (status, _) = http_get(&web, "/t/12345");
    assert_eq!(status, 303, "an anonymous visitor is sent to the login page");

    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}@acme.test", unique("metrics"));
    let file = dir.path().join("m.eml");
    std::fs::write(&file, mail("Jane <jane@acme.test>", &id, "Printer on fire")).unwrap();
    let stray = dir.path().join("stray.eml");
    std::fs::write(&stray, "no headers at all").unwrap();
    // JSON logs from `ingest`, with the message span's fields.
    let out = ticketgate()
        .arg("--config")
        .arg(app.config_path())
        .args(["--log-format", "json", "ingest", "--source", "pipe"])
        .arg(&file)
        .arg(&stray)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let logs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let opened = logs
        .iter()
        .find(|l| l["span"]["message_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no log line in the message's span: {logs:?}"));
    assert_eq!(opened["span"]["name"], "message");
    assert_eq!(opened["span"]["source"], "pipe");
    assert_eq!(opened["span"]["outcome"], "opened");
    assert!(logs.iter().any(|l| l["span"]["outcome"] == "quarantined"), "{logs:?}");

    // What serve ingests itself is counted: a message in the Maildir.
    let maildir = app.data_dir().join("inbox");
    let id2 = format!("{}@acme.test", unique("metrics"));
    std::fs::write(maildir.join("tmp/m2"), mail("Jane <jane@acme.test>", &id2, "Again")).unwrap();
    std::fs::rename(maildir.join("tmp/m2"), maildir.join("new/m2")).unwrap();
    let scrape = || http_get(&metrics, "/metrics");
    let has = |text: &str, line: &str| text.lines().any(|l| l == line);
    wait_until("the Maildir message is counted", Duration::from_secs(30), || {
        has(&scrape().1, "ticketgate_messages_ingested_total{outcome=\"opened\"} 1")
    });
    wait_until("the notifications are delivered", Duration::from_secs(30), || {
        app.query_i64("SELECT count(*) FROM outbox WHERE state != 'sent'") == 0
    });
    let sent = app.query_i64("SELECT count(*) FROM outbox");
    assert!(sent >= 4, "both tickets were acknowledged and announced to staff");
    let (status, text) = scrape();
    assert_eq!(status, 200);
    for line in [
        &format!("ticketgate_notifications_sent_total {sent}"),
        "ticketgate_outbox_pending 0",
        "ticketgate_outbox_oldest_pending_age_seconds 0",
        "ticketgate_notifications_failed_total 0",
        "ticketgate_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 1",
        "ticketgate_http_request_duration_seconds_count{method=\"GET\",route=\"/t/{id}\"} 1",
    ] {
        assert!(has(&text, line), "no line {line:?} in\n{text}");
    }

    let log = app.log();
    assert!(
        log.lines().any(|l| l.contains("request{method=GET route=/t/{id} status=303 duration_ms=")),
        "no request span in the log:\n{log}"
    );
    assert!(!log.contains('\x1b'), "no colour codes in a log that is not a terminal");
}

#[test]
fn metrics_show_the_outbox_depth_and_imap_passes() {
    let ca = crate::common::TestCa::new();
    let dovecot = crate::common::Dovecot::start(&ca);
    let ports = PortBlock::new(2);
    let metrics = format!("127.0.0.1:{}", ports.port(0));
    // Nothing listens on the SMTP port: mail waits in the outbox.
    let app = App::start(
        AppConfig::new()
            .without_web()
            .imap(&dovecot, crate::common::ImapTls::Starttls)
            .set("support.allow_unknown_senders", true)
            .set("outbound.transport", "smtp")
            .set("outbound.smtp.host", "127.0.0.1")
            .set("outbound.smtp.port", i64::from(ports.port(1)))
            .set("outbound.smtp.tls", "plain-insecure")
            .set("metrics.listen", metrics.as_str()),
    );
    let id = format!("{}@acme.test", unique("depth"));
    dovecot.deliver("jane@acme.test", crate::common::SUPPORT.0, mail("Jane <jane@acme.test>", &id, "Hello").as_bytes());
    wait_until("the IMAP message is settled", Duration::from_secs(30), || {
        app.query_i64("SELECT count(*) FROM processed") == 1
    });
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 1, "{}", app.log());
    const PASS: &str = "ticketgate_imap_last_success_timestamp_seconds{mailbox=\"support\"} ";
    wait_until("the outbox depth and the IMAP pass are shown", Duration::from_secs(30), || {
        let text = http_get(&metrics, "/metrics").1;
        text.lines().any(|l| l == "ticketgate_outbox_pending 2") && text.contains(PASS)
    });
    let text = http_get(&metrics, "/metrics").1;
    let last_pass =
        text.lines().find_map(|l| l.strip_prefix(PASS)).unwrap_or_else(|| panic!("no IMAP pass in\n{text}"));
    assert!(last_pass.parse::<i64>().unwrap() > 1_700_000_000);
    assert!(text.contains("ticketgate_outbox_oldest_pending_age_seconds "), "{text}");
}

#[test]
fn a_backup_taken_mid_ingest_restores_every_committed_message() {
    let app = App::start(AppConfig::new().without_web().set("support.allow_unknown_senders", true));
    let config = app.config_path();
    let dir = tempfile::tempdir().unwrap();
    let committed: Arc<Mutex<Vec<String>>> = Arc::default();
    let backed_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (committed, config, dir) = (committed.clone(), config.clone(), dir.path().to_path_buf());
        let backed_up = backed_up.clone();
        std::thread::spawn(move || {
            // Messages keep coming until a few after the backup is done.
            let mut after = 0;
            for n in 0.. {
                if backed_up.load(std::sync::atomic::Ordering::SeqCst) {
                    after += 1;
                    if after > 5 {
                        break;
                    }
                }
                let id = format!("{}@acme.test", unique("backup"));
                let file = dir.join(format!("m{n}.eml"));
                std::fs::write(&file, mail(&format!("user{n}@acme.test"), &id, &format!("message {n}"))).unwrap();
                output(ticketgate().arg("--config").arg(&config).arg("ingest").arg(&file));
                committed.lock().unwrap().push(id);
            }
        })
    };
    wait_until("some messages committed", Duration::from_secs(60), || committed.lock().unwrap().len() >= 10);
    let before: Vec<String> = committed.lock().unwrap().clone();
    let backup = dir.path().join("backup.sqlite");
    let blobs = dir.path().join("backup-blobs");
    output(ticketgate().arg("--config").arg(&config).arg("backup").arg(&backup).arg("--blobs").arg(&blobs));
    backed_up.store(true, std::sync::atomic::Ordering::SeqCst);
    feeder.join().unwrap();

    // The restore of the README: the copy as the database, the files as the attachments.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&backup, restored.join("ticketgate.sqlite")).unwrap();
    copy_tree(&blobs, &restored.join("blobs"));
    let restored_config = dir.path().join("restored.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let data_dir = app.data_dir().to_string_lossy().into_owned();
    std::fs::write(&restored_config, original.replace(&data_dir, &restored.to_string_lossy())).unwrap();
    std::fs::copy(app.data_dir().join("secret"), restored.join("secret")).unwrap();
    output(ticketgate().arg("--config").arg(&restored_config).arg("migrate"));

    let db = rusqlite::Connection::open(restored.join("ticketgate.sqlite")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    for id in &before {
        let n: i64 = db.query_row("SELECT count(*) FROM messages WHERE message_id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "message {id}, committed before the backup, is in it");
    }
    let mut files = db.prepare("SELECT sha256 FROM attachments WHERE sha256 IS NOT NULL").unwrap();
    let shas: Vec<String> = files.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert!(shas.len() >= before.len(), "every message has its attachment");
    for sha in shas {
        let content = std::fs::read(restored.join("blobs").join(&sha[..2]).join(&sha[2..])).unwrap();
        assert_eq!(ticketgate::parse::sha256_hex(&content), sha);
    }
    // The restored database knows what it holds: the same mail again changes nothing.
    let again = dir.path().join("m0.eml");
    let said = output(ticketgate().arg("--config").arg(&restored_config).arg("ingest").arg(&again));
    assert!(said.contains("duplicate"), "{said}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = output(ticketgate().args(["completions", shell]));
        for word in ["backup", "clear-bounce", "log-format"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let man = output(ticketgate().arg("man"));
    assert!(man.starts_with(".ie") || man.contains(".TH ticketgate 1"), "{man}");
    for word in ["backup", "completions", "quarantine", "log\\-format"] {
        assert!(man.contains(word), "the man page lacks {word}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("note: systemd-analyze is not installed; contrib/ticketgate.service not verified");
        return;
    };
    assert!(version.status.success());
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ticketgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/ticketgate --config /etc/ticketgate/ticketgate.toml serve"));
    assert!(unit.contains("User=ticketgate"));
    // verify checks that the program exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticketgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/ticketgate", env!("CARGO_BIN_EXE_ticketgate"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown or malformed settings are only warnings: none may mention the unit.
    assert!(!stderr.contains("ticketgate.service"), "{stderr}");
}
