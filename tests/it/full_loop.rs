//! The whole loop through the real binary and real mail servers: a customer's mail reaches the
//! support mailbox (Postfix → LMTP → Dovecot), `ticketgate serve` takes it over IMAP and opens a
//! ticket; the staff notification goes out through Postfix (STARTTLS + AUTH) into the staff
//! member's mailbox; the staff member answers from their mail client to the notification's
//! Reply-To; the customer's notification carries a deep link whose signature verifies; the
//! customer's reply to that lands on the same ticket. A team admin without a mailbox makes
//! Postfix bounce their notification back to its VERP envelope sender, which marks that
//! address; forged delivery reports mark nobody.

use std::process::Command;
use std::time::Duration;

use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_parser::MessageParser;
use ticketgate::deeplink::Link;
use ticketgate::signing::Keyring;

use crate::common::{App, AppConfig, CUSTOMER, Dovecot, ImapTls, Postfix, STAFF, SUPPORT, TestCa, unique};

const LONG: Duration = Duration::from_secs(60);

/// Sends through Postfix as a mail client on 127.0.0.1 would (no AUTH needed from loopback).
fn submit(postfix: &Postfix, from: &str, to: &str, raw: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let envelope = lettre::address::Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    let sent = rt.block_on(async {
        // lettre's connection pool starts a task when built: it needs the runtime.
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(postfix.smtp_port())
            .tls(Tls::None)
            .build();
        let sent = smtp.send_raw(&envelope, raw).await;
        smtp.shutdown().await;
        sent
    });
    sent.unwrap_or_else(|e| panic!("submitting to {to}: {e}"));
}

/// Every message in `user`'s INBOX, raw, fetched one by one by UID.
fn inbox(dovecot: &Dovecot, user: &str) -> Vec<Vec<u8>> {
    let uids = dovecot.doveadm(&["-f", "flow", "fetch", "-u", user, "uid", "mailbox", "INBOX"]);
    uids.lines()
        .filter_map(|l| l.trim().strip_prefix("uid="))
        .map(|uid| {
            let out = dovecot.doveadm(&["-f", "pager", "fetch", "-u", user, "text", "mailbox", "INBOX", "uid", uid]);
            let text = out.strip_prefix("text:\n").unwrap_or(&out);
            text.trim_end_matches(['\x0c', '\n']).as_bytes().to_vec()
        })
        .collect()
}

/// The first message in `user`'s INBOX whose subject contains `needle`.
fn find(dovecot: &Dovecot, user: &str, needle: &str) -> Option<mail_parser::Message<'static>> {
    inbox(dovecot, user)
        .into_iter()
        .filter_map(|raw| MessageParser::default().parse(&raw).map(|m| m.into_owned()))
        .find(|m| m.subject().is_some_and(|s| s.contains(needle)))
}

fn reply_to(m: &mail_parser::Message) -> String {
    m.reply_to().and_then(|a| a.first()).and_then(|a| a.address()).expect("Reply-To").to_string()
}

/// [`wait_until`], but a timeout shows what ticketgate did: its log, messages and outbox.
fn wait_for(app: &App, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > LONG {
            let db = app.db();
            let dump = |sql: &str| -> Vec<String> {
                let mut st = db.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map([], |r| {
                    Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join(" | "))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
            };
            panic!(
                "timed out waiting for: {what}\nmessages: {:#?}\noutbox: {:#?}\nquarantine: {:#?}\nlog:\n{}",
                dump(
                    "SELECT id, ticket_id, author_id, author_role, event, substr(body, 1, 60), message_id FROM messages"
                ),
                dump("SELECT id, kind, recipient, state, attempts, last_error FROM outbox"),
                dump("SELECT reason, detail, sender, subject FROM quarantine"),
                app.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ticketgate(app: &App, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(app.config_path())
        .args(args)
        .env("TICKETGATE_IMAP__0__PASSWORD", SUPPORT.1)
        .env("TICKETGATE_OUTBOUND__SMTP__PASSWORD", SUPPORT.1)
        .output()
        .expect("run ticketgate");
    assert!(out.status.success(), "ticketgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A team admin without a mailbox.
const GONE: &str = "gone@example.test";

/// A delivery status report as a customer could forge it: to `to`, claiming that `original`
/// to `recipient` failed permanently.
fn forged_dsn(id: &str, to: &str, recipient: &str, original: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.customer.example.test\r\nTo: <{to}>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <{id}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.test\r\nTo: {recipient}\r\n\
         Message-ID: <{original}>\r\n\r\n--B--\r\n"
    )
    .into_bytes()
}

fn mail(from: &str, to: &str, subject: &str, id: &str, in_reply_to: Option<&str>, body: &str) -> Vec<u8> {
    let threading = in_reply_to.map(|p| format!("In-Reply-To: <{p}>\r\nReferences: <{p}>\r\n")).unwrap_or_default();
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{threading}\
         Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .replace("\r\n", "\n")
    .replace('\n', "\r\n")
    .into_bytes()
}

#[test]
fn customer_mail_staff_reply_by_mail_customer_reply_one_ticket() {
    let ca = TestCa::new();
    let dovecot = Dovecot::start(&ca);
    let postfix = Postfix::start(&ca, &dovecot, false);
    let config = AppConfig::new()
        .imap(&dovecot, ImapTls::Starttls)
        .set("outbound.transport", "smtp")
        .set("outbound.smtp.host", "localhost")
        .set("outbound.smtp.port", postfix.smtp_port() as i64)
        .set("outbound.smtp.tls", "starttls")
        .set("outbound.smtp.ca_file", ca.ca_pem().to_string_lossy().into_owned())
        .set("outbound.smtp.username", SUPPORT.0)
        .env("TICKETGATE_OUTBOUND__SMTP__PASSWORD", SUPPORT.1);
    let app = App::start(config);
    ticketgate(&app, &["team", "add", "Acme"]);
    ticketgate(
        &app,
        &["user", "add", CUSTOMER.0, "--role", "member", "--team", "Acme", "--name", "Cora", "--no-password"],
    );
    ticketgate(&app, &["user", "add", STAFF.0, "--role", "staff", "--name", "Stan", "--no-password"]);
    // serve's first login (admin@example.test) has no mailbox here.
    ticketgate(&app, &["user", "disable", "admin@example.test"]);

    // 1. The customer writes to support.
    let first = format!("{}@customer.example.test", unique("first"));
    submit(
        &postfix,
        CUSTOMER.0,
        SUPPORT.0,
        &mail(CUSTOMER.0, SUPPORT.0, "Printer on fire", &first, None, "Smoke everywhere.\n"),
    );

    // 2. Staff hear of it; the customer gets the acknowledgement.
    wait_for(&app, "staff notification", || find(&dovecot, STAFF.0, "Printer on fire").is_some());
    let note = find(&dovecot, STAFF.0, "Printer on fire").unwrap();
    let ticket = app.query_i64("SELECT id FROM tickets");
    assert_eq!(note.subject(), Some(format!("[#{ticket}] Printer on fire").as_str()));
    assert_eq!(note.in_reply_to().as_text(), Some(first.as_str()));
    wait_for(&app, "acknowledgement", || find(&dovecot, CUSTOMER.0, "Printer on fire").is_some());
    // An admin of the team whose mailbox does not exist: Postfix accepts the mail for
    // example.test, Dovecot refuses it over LMTP, Postfix bounces it to the envelope sender.
    ticketgate(&app, &["user", "add", GONE, "--role", "admin", "--team", "Acme", "--name", "Gone", "--no-password"]);

    // 3. Staff answer from their mail client, to the notification's Reply-To, quoting it.
    let staff_to = reply_to(&note);
    assert!(staff_to.starts_with("support+"), "{staff_to}");
    let staff_reply = format!("{}@staff.example.test", unique("answer"));
    let body = "Please unplug it for ten seconds.\n\nOn Wed, 25 Nov 2026, Support wrote:\n> Smoke everywhere.\n";
    let subject = format!("Re: [#{ticket}] Printer on fire");
    submit(&postfix, STAFF.0, &staff_to, &mail(STAFF.0, &staff_to, &subject, &staff_reply, note.message_id(), body));

    // 4. The customer gets the response, with a deep link that verifies.
    wait_for(&app, "customer notification of the response", || {
        find(&dovecot, CUSTOMER.0, "Re: [#").is_some_and(|m| m.body_text(0).is_some_and(|t| t.contains("unplug")))
    });
    let response = find(&dovecot, CUSTOMER.0, "Re: [#").unwrap();
    let verp = response.return_address().expect("Return-Path").to_string();
    assert!(verp.starts_with("support+b-") && verp.ends_with("@example.test"), "a VERP envelope sender: {verp}");
    let text = response.body_text(0).unwrap().to_string();
    assert!(text.contains("Please unplug it for ten seconds."), "{text}");
    assert!(!text.contains("> Smoke everywhere"), "the quoted history was trimmed: {text}");
    assert_eq!(response.in_reply_to().as_text(), Some(staff_reply.as_str()));
    let html = response.body_html(0).unwrap().to_string();
    let href = html.split("data-testid=\"deep-link\" href=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let token = href.rsplit('/').next().unwrap();
    let keys = Keyring::load_or_create(&app.data_dir().join("secret"), &[]).unwrap();
    let link = Link::verify(&keys, token, ticketgate::clock::now()).expect("the deep link verifies");
    let customer_id = app.query_i64(&format!("SELECT id FROM users WHERE email = '{}'", CUSTOMER.0));
    let staff_message = app.query_i64("SELECT max(id) FROM messages");
    assert_eq!((link.ticket.0, link.user.0, link.message.0), (ticket, customer_id, staff_message));
    assert_eq!(app.query_i64("SELECT count(*) FROM messages WHERE author_role = 'staff'"), 1);

    // 5. The customer answers that mail; it threads onto the same ticket.
    let customer_to = reply_to(&response);
    let last = format!("{}@customer.example.test", unique("thanks"));
    let body = "It works now, thanks!\n\n> Please unplug it for ten seconds.\n";
    submit(
        &postfix,
        CUSTOMER.0,
        &customer_to,
        &mail(CUSTOMER.0, &customer_to, &subject, &last, response.message_id(), body),
    );
    wait_for(&app, "the customer's reply on the ticket", || app.query_i64("SELECT count(*) FROM messages") == 3);
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 1, "one ticket for the whole conversation");
    let status: String = app.db().query_row("SELECT status FROM tickets", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "waiting_for_support");
    wait_for(&app, "staff hear of the customer's reply", || {
        inbox(&dovecot, STAFF.0).iter().any(|raw| String::from_utf8_lossy(raw).contains("It works now"))
    });

    // 6. The admin's notification of the response bounced for real; it marks that address.
    let bouncing = |email: &str| {
        app.query_i64(&format!("SELECT count(*) FROM users WHERE email = '{email}' AND bouncing IS NOT NULL"))
    };
    wait_for(&app, "the real bounce marks the missing mailbox", || bouncing(GONE) == 1);

    // 7. Forged reports naming the staff address mark nobody: sent to the plain support
    // address with the Message-ID of the staff notification, and sent to the customer's
    // own VERP address (which is signed for the customer, not for staff).
    let staff_note = note.message_id().unwrap().to_string();
    for to in [SUPPORT.0, verp.as_str()] {
        let id = format!("{}@customer.example.test", unique("dsn"));
        submit(&postfix, CUSTOMER.0, to, &forged_dsn(&id, to, STAFF.0, &staff_note));
        let processed = format!("SELECT count(*) FROM processed WHERE key = 'mid:{id}' AND outcome = 'bounce'");
        wait_for(&app, "the forged report is processed", || app.query_i64(&processed) == 1);
    }
    assert_eq!(bouncing(STAFF.0), 0, "a forged report never switches staff mail off");
    assert_eq!(bouncing(CUSTOMER.0), 0);
    println!(
        "full loop: customer <{first}> -> staff note <{}> -> staff reply <{staff_reply}> -> customer note <{}> -> customer reply <{last}>; deep link {href}",
        note.message_id().unwrap(),
        response.message_id().unwrap()
    );
}
