//! Checks of the harness itself: every server starts, accepts what tests will send, and fails
//! on demand.

use std::process::Command;
use std::time::Duration;

use super::process::python;
use super::*;

/// Sends one message with Python's smtplib (STARTTLS or implicit TLS, AUTH PLAIN); returns
/// the SMTP error text, or "" on success.
fn smtplib_send(port: u16, implicit: bool, ca: &TestCa, login: Option<(&str, &str)>, to: &str, msg: &str) -> String {
    let script = r#"
import smtplib, ssl, sys
port, implicit, ca, login, pw, to, msg = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
try:
    if implicit == "1":
        s = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=20)
    else:
        s = smtplib.SMTP("localhost", int(port), timeout=20)
        s.starttls(context=ctx)
    if login:
        s.ehlo()
        s.auth("PLAIN", lambda challenge=None: "\0%s\0%s" % (login, pw), initial_response_ok=True)
    s.sendmail("support@example.test", [to], msg)
    s.quit()
except Exception as e:
    print("%s: %s" % (type(e).__name__, e))
"#;
    let (l, p) = login.unwrap_or(("", ""));
    let out = Command::new(python())
        .args(["-c", script, &port.to_string(), if implicit { "1" } else { "0" }])
        .arg(ca.ca_pem())
        .args([l, p, to, msg])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn message(id: &str) -> String {
    format!(
        "From: Customer <customer@example.test>\r\nTo: support@example.test\r\nSubject: harness {id}\r\n\
         Message-ID: <{id}@example.test>\r\n\r\nbody\r\n.leading dot\r\n"
    )
}

#[test]
fn dovecot_takes_mail_three_ways_and_restarts() {
    let ca = TestCa::new();
    let mut dovecot = Dovecot::start(&ca);
    for port in [dovecot.imap_port(), dovecot.imaps_port(), dovecot.lmtp_port(), dovecot.auth_port()] {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "port {port}");
    }
    dovecot.deliver("customer@example.test", SUPPORT.0, message("lmtp").as_bytes());
    dovecot.drop_message(SUPPORT.0, "INBOX", message("drop").as_bytes());
    dovecot.doveadm(&["mailbox", "create", "-u", SUPPORT.0, "Other"]);
    dovecot.save(SUPPORT.0, "Other", message("save").as_bytes());
    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 2);
    assert_eq!(dovecot.messages(SUPPORT.0, "Other"), 1);
    assert_eq!(dovecot.messages(SUPPORT.0, "Missing"), 0);
    let mut ids = dovecot.message_ids(SUPPORT.0, "INBOX");
    ids.sort();
    assert_eq!(ids, ["<drop@example.test>", "<lmtp@example.test>"]);

    dovecot.add_user("late@example.test", "late-secret");
    dovecot.deliver("customer@example.test", "late+tag@example.test", message("late").as_bytes());
    assert_eq!(dovecot.messages("late@example.test", "INBOX"), 1);

    dovecot.restart();
    assert_eq!(dovecot.messages(SUPPORT.0, "INBOX"), 2);
    dovecot.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", dovecot.imap_port())).is_err(), "stopped");
}

#[test]
fn capture_stores_mail_and_fails_on_demand() {
    let ca = TestCa::new();
    let capture = Capture::start(&ca);
    let login = Some(SUPPORT);
    assert_eq!(smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("c1")), "");
    assert_eq!(smtplib_send(capture.smtps_port(), true, &ca, login, "b@example.test", &message("c2")), "");
    let wrong = smtplib_send(capture.smtp_port(), false, &ca, Some((SUPPORT.0, "nope")), "a@x.test", &message("c3"));
    assert!(wrong.contains("535"), "{wrong}");
    let got = capture.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_tos(), ["a@example.test"]);
    assert_eq!(got[0].envelope["auth_login"], SUPPORT.0);
    assert_eq!(got[0].envelope["tls"], true);
    assert!(got[1].text().contains("Message-ID: <c2@example.test>"));

    capture.set_faults("tempfail DATA 2\n");
    for _ in 0..2 {
        let e = smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("t"));
        assert!(e.contains("451"), "{e}");
    }
    assert_eq!(capture.faults().trim(), "", "a counted rule is used up");
    assert_eq!(smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("t")), "");
    capture.set_faults("disconnect RCPT\n");
    let e = smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("d"));
    assert!(e.contains("Disconnected") || e.contains("closed"), "{e}");
    capture.set_faults("permfail MAIL 1\n");
    let e = smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("p"));
    assert!(e.contains("550"), "{e}");
    capture.set_faults("refuse\n");
    wait_until("capture refuses", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", capture.smtp_port())).is_err()
    });
    capture.set_faults("");
    wait_until("capture listens again", Duration::from_secs(10), || capture.listening());
    assert_eq!(smtplib_send(capture.smtp_port(), false, &ca, login, "a@example.test", &message("r")), "");
    assert_eq!(capture.messages().len(), 4);
}

#[test]
fn postfix_delivers_to_dovecot_with_auth() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let postfix = Postfix::start(&ca, &dovecot, true);
    let e = smtplib_send(postfix.smtp_port(), false, &ca, Some(SUPPORT), "customer+t1@example.test", &message("pf1"));
    assert_eq!(e, "");
    let e = smtplib_send(postfix.smtps_port(), true, &ca, Some(SUPPORT), "customer@example.test", &message("pf2"));
    assert_eq!(e, "");
    wait_until("two mails in the customer's INBOX", Duration::from_secs(20), || {
        dovecot.messages(CUSTOMER.0, "INBOX") == 2
    });
    let e = smtplib_send(postfix.smtp_port(), false, &ca, None, "customer@example.test", &message("pf3"));
    assert!(e.contains("554") || e.contains("Relay") || e.contains("Recipient"), "no AUTH must be refused: {e}");
    let e = smtplib_send(postfix.smtp_port(), false, &ca, Some(SUPPORT), "someone@elsewhere.test", &message("pf4"));
    assert!(!e.is_empty(), "other domains are refused");
}
