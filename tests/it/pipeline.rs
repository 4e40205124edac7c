//! The inbound pipeline end to end, in process: threading by token,
//! references and subject tag; forged and misused tokens; unknown senders;
//! automatic mail and bounces; DMARC; idempotency; re-opening; attachments.

use std::sync::Arc;

use rusqlite::Connection;

use crate::common::queued_mail;
use ticketgate::app::App;
use ticketgate::config::Config;
use ticketgate::id::{TicketId, UserId};
use ticketgate::lifecycle::{Role, Status};
use ticketgate::pipeline::Outcome;
use ticketgate::policy::auto::AutoKind;
use ticketgate::route::token;
use ticketgate::signing::Keyring;
use ticketgate::store::users::{self, NewUser};
use ticketgate::store::{Db, tickets};

pub struct World {
    pub pipeline: App,
    pub _dir: tempfile::TempDir,
    pub member: UserId,
    pub admin: UserId,
    pub staff: UserId,
}

pub fn world_with(f: impl FnOnce(&mut Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.store.blobs = dir.path().join("blobs");
    config.support.address = "support@example.test".into();
    config.security.trusted_authserv_ids = vec!["mx.example.test".into()];
    f(&mut config);
    let db = Db::open(&dir.path().join("t.sqlite")).unwrap();
    let pipeline = App::new(Arc::new(config), Keyring::new(vec![vec![7; 32]]), db);
    let (member, admin, staff) = pipeline
        .db()
        .write(|c| {
            let acme = users::create_team(c, "Acme", 0)?;
            let globex = users::create_team(c, "Globex", 0)?;
            let mk = |email: &str, role, team| {
                users::create_user(c, &NewUser { email, name: "", role, team_id: team, password_hash: None }, 0)
            };
            // Eve, of another team, is only ever addressed by mail.
            mk("eve@globex.test", Role::Member, Some(globex))?;
            Ok::<_, ticketgate::store::StoreError>((
                mk("jane@acme.test", Role::Member, Some(acme))?,
                mk("boss@acme.test", Role::Admin, Some(acme))?,
                mk("agent@example.test", Role::Staff, None)?,
            ))
        })
        .unwrap();
    World { pipeline, _dir: dir, member, admin, staff }
}

pub fn world() -> World {
    world_with(|_| {})
}

/// A plain text message.
pub fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

impl World {
    pub fn ingest(&self, raw: &[u8]) -> Outcome {
        self.pipeline.ingest(raw, "support").unwrap()
    }

    pub fn db<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        self.pipeline.db().with(|c| Ok(f(c))).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
    }

    pub fn reply_address(&self, ticket: TicketId, user: UserId) -> String {
        format!("support+{}@example.test", token::issue(self.pipeline.keys(), ticket, user))
    }

    /// Jane opens a ticket; returns its id.
    pub fn open(&self) -> TicketId {
        let raw =
            mail("Jane <jane@acme.test>", "support@example.test", "Printer on fire", "open@acme.test", "", "It burns.");
        match self.ingest(&raw) {
            Outcome::Opened { ticket, .. } => ticket,
            o => panic!("expected a new ticket, got {o:?}"),
        }
    }

    pub fn status(&self, ticket: TicketId) -> Status {
        self.db(|c| tickets::get(c, ticket).unwrap().status)
    }
}

#[test]
fn a_known_sender_opens_a_ticket_and_redelivery_changes_nothing() {
    let w = world();
    let t = w.open();
    assert_eq!(w.status(t), Status::WaitingForSupport);
    let again =
        mail("Jane <jane@acme.test>", "support@example.test", "Printer on fire", "open@acme.test", "", "It burns.");
    assert_eq!(w.ingest(&again), Outcome::Duplicate { ticket: Some(t) });
    assert_eq!(w.count("SELECT count(*) FROM messages"), 1);
    assert_eq!(w.count("SELECT count(*) FROM tickets"), 1);
}

#[test]
fn a_mail_keeps_its_trimmed_quote_and_gives_a_nameless_author_its_display_name() {
    let w = world();
    let body =
        "It burns.\r\n\r\nOn Mon, 5 Jan 2026 at 10:02, Support <support@example.test> wrote:\r\n> Is it on fire?\r\n";
    // Mail without evidence of its sender names nobody: a forger must not rename a user.
    let forged = mail("Mallory <jane@acme.test>", "support@example.test", "Hi", "q0@acme.test", "", "Hi");
    assert!(matches!(w.ingest(&forged), Outcome::Opened { .. }));
    assert_eq!(w.db(|c| users::by_id(c, w.member).unwrap().name), "", "an unverified mail sets no name");
    let from = "=?UTF-8?Q?Jane_D=C3=B6e?= <jane@acme.test>";
    let proven = "Authentication-Results: mx.example.test; dmarc=pass header.from=acme.test\r\n";
    let raw = mail(from, "support@example.test", "Printer", "q1@acme.test", proven, body);
    let Outcome::Opened { ticket, message } = w.ingest(&raw) else { panic!("a new ticket") };
    let m = w.db(|c| tickets::message(c, ticket, message).unwrap());
    assert_eq!(m.body, "It burns.");
    assert_eq!(m.quoted, "On Mon, 5 Jan 2026 at 10:02, Support <support@example.test> wrote:\n> Is it on fire?");
    assert_eq!(w.db(|c| tickets::raw_message(c, message).unwrap()), Some(raw), "the untrimmed mail is stored");
    assert_eq!(w.db(|c| users::by_id(c, w.member).unwrap().name), "Jane Döe");

    let other = mail("Someone Else <jane@acme.test>", "support@example.test", "Other", "q2@acme.test", proven, "Hi");
    assert!(matches!(w.ingest(&other), Outcome::Opened { .. }));
    assert_eq!(w.db(|c| users::by_id(c, w.member).unwrap().name), "Jane Döe", "a name once set stays");
}

#[test]
fn without_message_id_the_content_hash_deduplicates() {
    let w = world();
    let raw = b"From: jane@acme.test\r\nTo: support@example.test\r\nSubject: no id\r\n\r\nhello\r\n";
    assert!(matches!(w.ingest(raw), Outcome::Opened { .. }));
    assert!(matches!(w.ingest(raw), Outcome::Duplicate { .. }));
    let other = b"From: jane@acme.test\r\nTo: support@example.test\r\nSubject: no id\r\n\r\nhello again\r\n";
    assert!(matches!(w.ingest(other), Outcome::Opened { .. }), "different content is a different message");
}

#[test]
fn a_batch_commits_together_and_sees_its_own_duplicates() {
    let w = world();
    let a = mail("jane@acme.test", "support@example.test", "A", "a@acme.test", "", "a");
    let b = mail("jane@acme.test", "support@example.test", "B", "b@acme.test", "", "b");
    let out = w.pipeline.ingest_batch(&[a.clone(), b, a], "support").unwrap();
    assert!(matches!(out[0], Outcome::Opened { .. }));
    assert!(matches!(out[1], Outcome::Opened { .. }));
    assert!(matches!(out[2], Outcome::Duplicate { .. }));
}

#[test]
fn the_reply_token_threads_and_binds_to_its_owner() {
    let w = world();
    let t = w.open();
    let to = w.reply_address(t, w.member);
    let reply = mail("jane@acme.test", &to, "Re: whatever", "r1@acme.test", "", "More smoke.");
    assert!(matches!(w.ingest(&reply), Outcome::Replied { ticket, .. } if ticket == t));

    // A teammate may use it (recorded as the author), a stranger may not.
    let boss = mail("boss@acme.test", &to, "Re", "r2@acme.test", "", "I see it too.");
    assert!(matches!(w.ingest(&boss), Outcome::Replied { ticket, .. } if ticket == t));
    let author: UserId = w.db(|c| {
        c.query_row("SELECT author_id FROM messages WHERE message_id = 'r2@acme.test'", [], |r| r.get(0)).unwrap()
    });
    assert_eq!(author, w.admin);
    for (from, id) in [("eve@globex.test", "r3@globex.test"), ("mallory@evil.test", "r4@evil.test")] {
        let stranger = mail(from, &to, "Re", id, "", "let me in");
        assert_eq!(w.ingest(&stranger).quarantine_reason(), Some("token_sender_mismatch"), "{from}");
    }
    assert_eq!(w.count(&format!("SELECT count(*) FROM messages WHERE ticket_id = {t}")), 3);
}

#[test]
fn forged_tokens_and_tokens_of_another_server_are_never_trusted() {
    let w = world();
    let t = w.open();
    let good = token::issue(w.pipeline.keys(), t, w.member);
    let forged = format!("{t}-{}-{}", w.member, "a".repeat(16));
    let foreign = token::issue(&Keyring::new(vec![vec![8; 32]]), t, w.member);
    assert_ne!(good, foreign);
    for (i, tok) in [forged, foreign].iter().enumerate() {
        // From a stranger: no ticket is touched, they are an unknown sender.
        let raw = mail(
            "mallory@evil.test",
            &format!("support+{tok}@example.test"),
            "Re",
            &format!("f{i}@evil.test"),
            "",
            "x",
        );
        assert_eq!(w.ingest(&raw).quarantine_reason(), Some("unknown_sender"));
        // From another team's user: their own new ticket, never the token's.
        let raw = mail(
            "eve@globex.test",
            &format!("support+{tok}@example.test"),
            "Re",
            &format!("g{i}@globex.test"),
            "",
            "x",
        );
        match w.ingest(&raw) {
            Outcome::Opened { ticket, .. } => assert_ne!(ticket, t),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(w.count(&format!("SELECT count(*) FROM messages WHERE ticket_id = {t}")), 1);
}

#[test]
fn references_thread_for_people_who_may_see_the_ticket() {
    let w = world();
    let t = w.open();
    let reply = mail(
        "boss@acme.test",
        "support@example.test",
        "Re: Printer",
        "r@acme.test",
        "In-Reply-To: <open@acme.test>\r\nReferences: <open@acme.test>\r\n",
        "ok",
    );
    assert!(matches!(w.ingest(&reply), Outcome::Replied { ticket, .. } if ticket == t));
    let outsider = mail(
        "eve@globex.test",
        "support@example.test",
        "Re: Printer",
        "e@globex.test",
        "References: <open@acme.test>\r\n",
        "me too",
    );
    assert!(matches!(w.ingest(&outsider), Outcome::Opened { ticket, .. } if ticket != t));
}

#[test]
fn the_subject_tag_needs_a_participant_or_teammate() {
    let w = world();
    let t = w.open();
    let subject = format!("Re: [#{t}] Printer");
    let boss = mail("boss@acme.test", "support@example.test", &subject, "s1@acme.test", "", "tagged");
    assert!(matches!(w.ingest(&boss), Outcome::Replied { ticket, .. } if ticket == t));
    let eve = mail("eve@globex.test", "support@example.test", &subject, "s2@globex.test", "", "tagged");
    assert!(matches!(w.ingest(&eve), Outcome::Opened { ticket, .. } if ticket != t));
}

#[test]
fn unknown_senders_are_quarantined_or_enrolled_when_allowed() {
    let w = world();
    // Proven by a trusted check, so a notice is no backscatter (tests/it/quarantine.rs: without).
    let proven = "Authentication-Results: mx.example.test; dmarc=pass header.from=fresh.test\r\n";
    let raw = mail("Stranger <new@fresh.test>", "support@example.test", "Hi", "u1@fresh.test", proven, "hello");
    assert_eq!(w.ingest(&raw).quarantine_reason(), Some("unknown_sender"));
    assert_eq!(w.count("SELECT count(*) FROM tickets"), 0);
    let kept: Vec<u8> = w.db(|c| c.query_row("SELECT raw FROM quarantine", [], |r| r.get(0)).unwrap());
    assert_eq!(kept, raw, "the quarantine keeps the whole message");
    let notices = "SELECT count(*) FROM outbox WHERE kind = 'notice' AND recipient = 'new@fresh.test'";
    assert_eq!(w.count(notices), 1, "the stranger is told, politely");
    let again = mail("new@fresh.test", "support@example.test", "Hi?", "u2@fresh.test", proven, "hello?");
    assert_eq!(w.ingest(&again).quarantine_reason(), Some("unknown_sender"));
    assert_eq!(w.count(notices), 1, "notices are rate-limited per address");

    let open = world_with(|c| c.support.allow_unknown_senders = true);
    assert!(matches!(open.ingest(&raw), Outcome::Opened { .. }));
    let team: String = open.db(|c| {
        c.query_row(
            "SELECT t.name FROM users u JOIN teams t ON t.id = u.team_id WHERE u.email = 'new@fresh.test'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(team, "fresh.test");
}

#[test]
fn automatic_mail_never_opens_a_ticket() {
    let w = world();
    let t = w.open();
    let cases = [
        "Auto-Submitted: auto-replied\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "X-Autoreply: yes\r\n",
        "Precedence: bulk\r\n",
        "Precedence: list\r\n",
        "List-Id: <news.acme.test>\r\n",
        "Return-Path: <>\r\n",
    ];
    for (i, header) in cases.iter().enumerate() {
        let raw = mail(
            "jane@acme.test",
            "support@example.test",
            "Out of office",
            &format!("auto{i}@acme.test"),
            header,
            "I am away.",
        );
        assert!(matches!(w.ingest(&raw), Outcome::Automatic { .. } | Outcome::Bounce { .. }), "{header}");
    }
    // An out-of-office answering our thread is noted on the ticket, not posted.
    let ooo = mail(
        "jane@acme.test",
        "support@example.test",
        "Re: Printer",
        "ooo@acme.test",
        "Auto-Submitted: auto-replied\r\nIn-Reply-To: <open@acme.test>\r\n",
        "away",
    );
    assert_eq!(w.ingest(&ooo), Outcome::Automatic { kind: AutoKind::AutoReplied, ticket: Some(t) });
    assert_eq!(w.count("SELECT count(*) FROM tickets"), 1);
    assert_eq!(w.count("SELECT count(*) FROM messages"), 1);
    assert_eq!(w.count(&format!("SELECT count(*) FROM ticket_events WHERE ticket_id = {t} AND kind = 'automatic'")), 1);
    assert_eq!(
        w.count("SELECT count(*) FROM outbox WHERE kind = 'notice'"),
        0,
        "no notice ever answers automatic mail"
    );
}

static REPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A delivery status report sent to `to` about `original_id` to `recipient`.
fn dsn(to: &str, original_id: &str, recipient: &str, action: &str, status: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.acme.test\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{}@mx.acme.test>\r\nReturn-Path: <>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.test\r\n\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.test\r\nTo: {recipient}\r\nMessage-ID: <{original_id}>\r\nSubject: [#1] Printer\r\n\r\n--B--\r\n",
        REPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
    .into_bytes()
}

#[test]
fn a_bounce_of_our_notification_marks_the_address() {
    let w = world();
    let t = w.open();
    let enqueue = |message_id: &str, recipient: &str| -> (i64, String) {
        let row = w
            .pipeline
            .db()
            .with(|c| {
                ticketgate::store::outbox::enqueue(
                    c,
                    &ticketgate::store::outbox::NewMail {
                        message_id,
                        ticket_id: Some(t),
                        kind: ticketgate::code::OutboxKind::Response,
                        recipient,
                        draft: "{}",
                    },
                    0,
                )
            })
            .unwrap();
        let tag = token::bounce_tag(w.pipeline.keys(), row, recipient, message_id);
        (row, ticketgate::address::with_tag("support@example.test", &tag))
    };
    let (boss_row, to_boss) = enqueue("n1@example.test", "boss@acme.test");
    let (jane_row, to_jane) = enqueue("n2@example.test", "jane@acme.test");
    let moved = to_boss.replacen(&format!("b-{boss_row}-"), &format!("b-{jane_row}-"), 1);
    let support = "support@example.test";
    // Reports that do not come back to the VERP address of a mail to that
    // very address mark nobody: naming our Message-ID is not enough.
    for (to, original, recipient) in [
        (support, "n1@example.test", "boss@acme.test"),
        (to_jane.as_str(), "n1@example.test", "boss@acme.test"),
        (to_jane.as_str(), "n2@example.test", "boss@acme.test"),
        (&moved, "n1@example.test", "boss@acme.test"),
        (&moved, "n2@example.test", "jane@acme.test"),
    ] {
        assert_eq!(
            w.ingest(&dsn(to, original, recipient, "failed", "5.1.1")),
            Outcome::Bounce { marked: vec![] },
            "{to}"
        );
    }
    // A temporary failure marks nobody either.
    assert_eq!(
        w.ingest(&dsn(&to_boss, "n1@example.test", "boss@acme.test", "delayed", "4.4.1")),
        Outcome::Bounce { marked: vec![] }
    );
    assert!(w.db(|c| users::by_id(c, w.admin).unwrap().bouncing).is_none());
    let delivered_to = format!("Delivered-To: {to_boss}\r\n");
    let mut report = delivered_to.into_bytes();
    report.extend(dsn(support, "n1@example.test", "boss@acme.test", "failed", "5.1.1"));
    let out = w.ingest(&report);
    assert_eq!(out, Outcome::Bounce { marked: vec!["boss@acme.test".into()] }, "the envelope recipient counts");
    let bouncing = w.db(|c| users::by_id(c, w.admin).unwrap().bouncing);
    assert!(bouncing.is_some());
    assert_eq!(w.count(&format!("SELECT count(*) FROM ticket_events WHERE ticket_id = {t} AND kind = 'bounce'")), 1);
    assert!(w.db(|c| users::by_id(c, w.member).unwrap().bouncing).is_none());
}

#[test]
fn a_reply_reopens_a_closed_ticket_and_staff_can_close_by_mail() {
    let w = world();
    let t = w.open();
    let staff_to = w.reply_address(t, w.staff);
    let answer = mail("agent@example.test", &staff_to, "Re", "st1@example.test", "", "Unplug it.");
    assert!(matches!(w.ingest(&answer), Outcome::Replied { .. }));
    assert_eq!(w.status(t), Status::WaitingForCustomer);
    let close = mail("agent@example.test", &staff_to, "Re", "st2@example.test", "", "#close\nFixed on site.");
    let queued = w.count("SELECT coalesce(max(id), 0) FROM outbox");
    assert!(matches!(w.ingest(&close), Outcome::Replied { .. }));
    assert_eq!(w.status(t), Status::Closed);
    let since = format!("FROM outbox WHERE id > {queued}");
    let (mails, closed) = (
        w.count(&format!("SELECT count(*) {since}")),
        w.count(&format!("SELECT count(*) {since} AND kind = 'closed'")),
    );
    let people = w.count(&format!("SELECT count(DISTINCT recipient) {since}"));
    assert_eq!(
        (mails, closed, people),
        (2, 2, 2),
        "text and close are one action: one closed mail to jane and her admin"
    );
    let last: String =
        w.db(|c| c.query_row("SELECT body FROM messages ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap());
    assert_eq!(last, "Fixed on site.");

    let reopen = mail("jane@acme.test", &w.reply_address(t, w.member), "Re", "re@acme.test", "", "It is back.");
    assert!(matches!(w.ingest(&reopen), Outcome::Replied { .. }));
    assert_eq!(w.status(t), Status::WaitingForSupport);
    // "#close" from a customer is just text.
    let fake = mail("jane@acme.test", &w.reply_address(t, w.member), "Re", "re2@acme.test", "", "#close\nplease");
    assert!(matches!(w.ingest(&fake), Outcome::Replied { .. }));
    assert_eq!(w.status(t), Status::WaitingForSupport);
}

#[test]
fn dmarc_fail_is_quarantined_only_from_a_trusted_authserv() {
    let w = world();
    let trusted = mail(
        "jane@acme.test",
        "support@example.test",
        "Pay now",
        "d1@acme.test",
        "Authentication-Results: mx.example.test; dkim=none; dmarc=fail (p=reject) header.from=acme.test\r\n",
        "wire money",
    );
    assert_eq!(w.ingest(&trusted).quarantine_reason(), Some("dmarc_fail"));
    let forged = mail(
        "jane@acme.test",
        "support@example.test",
        "Hello",
        "d2@acme.test",
        "Authentication-Results: attacker.test; dmarc=fail header.from=acme.test\r\n",
        "hi",
    );
    assert!(matches!(w.ingest(&forged), Outcome::Opened { .. }));
}

#[test]
fn unreadable_and_oversized_mail_is_quarantined_not_dropped() {
    let w = world_with(|c| c.limits.max_message_bytes = 10_000);
    assert_eq!(w.ingest(b"").quarantine_reason(), Some("empty_message"));
    let big = mail("jane@acme.test", "support@example.test", "big", "big@acme.test", "", &"x".repeat(20_000));
    let kept = w.ingest(&big);
    assert_eq!(kept.quarantine_reason(), Some("message_too_large"));
    let no_from = b"To: support@example.test\r\nSubject: who\r\nMessage-ID: <nf@x>\r\n\r\nhi\r\n";
    assert_eq!(w.ingest(no_from).quarantine_reason(), Some("no_sender"));
    assert_eq!(w.count("SELECT count(*) FROM quarantine"), 3);
    assert_eq!(w.ingest(&big), kept, "a re-delivered quarantined message keeps its outcome");
    assert_eq!(w.count("SELECT count(*) FROM quarantine"), 3, "a re-delivered quarantined message is not kept twice");
}

#[test]
fn accepted_attachments_are_stored_once_and_refused_ones_listed() {
    let w = world();
    let pdf = "%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    let b64 = |s: &[u8]| data_encoding::BASE64_MIME.encode(s);
    let part = |name: &str, ctype: &str, bytes: &[u8]| {
        format!(
            "--XX\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64(bytes)
        )
    };
    let raw = |id: &str| {
        format!(
            "From: jane@acme.test\r\nTo: support@example.test\r\nSubject: files\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n{}{}--XX--\r\n",
            part("report.pdf", "application/pdf", pdf.as_bytes()),
            part("invoice.pdf", "application/pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"),
        )
        .into_bytes()
    };
    let Outcome::Opened { ticket, .. } = w.ingest(&raw("att1@acme.test")) else { panic!() };
    let rows: Vec<(String, Option<String>, Option<String>)> = w.db(|c| {
        let mut st =
            c.prepare("SELECT filename, sha256, refused FROM attachments WHERE ticket_id = ?1 ORDER BY id").unwrap();
        st.query_map([ticket], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect()
    });
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "report.pdf");
    let sha = rows[0].1.clone().expect("the PDF is accepted and stored");
    assert!(rows[0].2.is_none());
    assert!(rows[1].1.is_none() && rows[1].2.is_some(), "the executable named .pdf is refused: {:?}", rows[1]);
    let stored = std::fs::read(w.pipeline.blobs().root().join(&sha[..2]).join(&sha[2..])).unwrap();
    assert_eq!(stored, pdf.as_bytes());
    // The same file in another message is stored once.
    w.ingest(&raw("att2@acme.test"));
    let files = std::fs::read_dir(w.pipeline.blobs().root().join(&sha[..2])).unwrap().count();
    assert_eq!(files, 1);
}

#[test]
fn attachments_beyond_the_cap_are_listed_as_refused() {
    let w = world();
    let cap = ticketgate::parse::MAX_ATTACHMENTS;
    let parts: String = (0..cap + 3)
        .map(|i| {
            format!(
                "--XX\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"f{i}.txt\"\r\n\r\nfile {i}\r\n"
            )
        })
        .collect();
    let raw = format!(
        "From: jane@acme.test\r\nTo: support@example.test\r\nSubject: many\r\nMessage-ID: <many@acme.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nAll of them.\r\n{parts}--XX--\r\n"
    );
    let Outcome::Opened { ticket, .. } = w.ingest(raw.as_bytes()) else { panic!() };
    let rows: Vec<(String, i64, Option<String>)> = w.db(|c| {
        let mut st =
            c.prepare("SELECT filename, size, refused FROM attachments WHERE ticket_id = ?1 ORDER BY id").unwrap();
        st.query_map([ticket], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(|r| r.unwrap()).collect()
    });
    assert_eq!(rows.len(), cap + 3, "every attachment is listed");
    assert!(rows[..cap].iter().all(|r| r.2.is_none()), "the first {cap} are judged on their content");
    for (i, row) in rows[cap..].iter().enumerate() {
        let want = (format!("f{}.txt", cap + i), format!("file {}", cap + i).len() as i64);
        assert_eq!((row.0.clone(), row.1), want);
        assert_eq!(row.2.as_deref(), Some("too_many_attachments"));
    }
    let report = ticketgate::inspect::inspect(w.pipeline.config(), "many".into(), raw.as_bytes());
    assert_eq!(report.attachments.len(), cap + 3);
    assert_eq!(report.attachments[cap].reason.map(|r| r.as_str()), Some("too_many_attachments"));
}

#[test]
fn quarantine_list_shows_control_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TICKETGATE_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .env("TICKETGATE_DATA_DIR", dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // Control characters reach a header only encoded (RFC 2047); raw ones make the mail unreadable.
    let escapes = "Invoice \u{1b}]0;owned\u{7}\u{1b}[2J\tdue";
    let subject = format!("=?utf-8?b?{}?=", data_encoding::BASE64.encode(escapes.as_bytes()));
    run(&["ingest", "-"], &mail("stranger@else.test", "support@example.test", &subject, "esc@else.test", "", "Pay."));
    let listed = run(&["quarantine", "list"], b"");
    assert!(!listed.contains('\u{1b}') && !listed.contains('\u{7}'), "{listed:?}");
    assert!(listed.contains(r"Invoice \u{1b}]0;owned\u{7}\u{1b}[2J\tdue"), "{listed}");
    assert_eq!(listed.lines().next().unwrap().split('\t').count(), 5, "a tab in a value cannot add a column");
}

/// A trusted authentication result proving the From domain.
const DMARC_PASS: &str = "Authentication-Results: mx.example.test; dmarc=pass header.from=example.test\r\n";

#[test]
fn staff_mail_without_evidence_never_acts() {
    let w = world();
    let t = w.open();
    let subject = format!("Re: [#{t}] Printer on fire");
    let body = "#close\nPlease log in at http://phish.evil.test/ to see the fix.";
    let refs = "In-Reply-To: <open@acme.test>\r\nReferences: <open@acme.test>\r\n";
    let untrusted = "Authentication-Results: evil.test; dmarc=pass header.from=example.test\r\n";
    let misaligned = "Authentication-Results: mx.example.test; dmarc=pass header.from=evil.test\r\n";
    for (i, extra) in ["", refs, untrusted, misaligned].iter().enumerate() {
        let forged = mail(
            "Agent <agent@example.test>",
            "support@example.test",
            &subject,
            &format!("fs{i}@evil.test"),
            extra,
            body,
        );
        assert_eq!(w.ingest(&forged).quarantine_reason(), Some("staff_unverified"), "{extra}");
    }
    assert_eq!(w.status(t), Status::WaitingForSupport, "not closed");
    assert_eq!(w.count("SELECT count(*) FROM messages"), 1, "nothing posted");
    assert_eq!(w.count("SELECT count(*) FROM outbox WHERE recipient = 'jane@acme.test' AND kind != 'ack'"), 0);
    let notice = w
        .db(|c| queued_mail(c, "SELECT id FROM outbox WHERE kind = 'notice' AND recipient = 'agent@example.test'", []));
    let notice = String::from_utf8_lossy(&notice).replace("=\r\n", "").replace("\r\n", " ");
    assert!(notice.contains("reply to the notification"), "the notice says how to answer: {notice}");
    assert!(
        notice.contains("Reply-To: Support <support@example.test>"),
        "a reply to the notice does not post: {notice}"
    );

    // With a trusted authentication result for its domain, staff mail acts.
    let proven = mail("agent@example.test", "support@example.test", &subject, "fs9@example.test", DMARC_PASS, body);
    assert!(matches!(w.ingest(&proven), Outcome::Replied { ticket, .. } if ticket == t));
    assert_eq!(w.status(t), Status::Closed);
}

#[test]
fn customer_mail_without_evidence_is_posted_as_not_verified() {
    let w = world();
    let t = w.open();
    let unverified = |id: &str| -> bool {
        w.db(|c| c.query_row("SELECT unverified FROM messages WHERE message_id = ?1", [id], |r| r.get(0)).unwrap())
    };
    assert!(unverified("open@acme.test"), "a new ticket by plain mail is not verified either");
    let refs = "References: <open@acme.test>\r\n";
    let reply = mail("boss@acme.test", "support@example.test", "Re: Printer", "u1@acme.test", refs, "Any news?");
    assert!(matches!(w.ingest(&reply), Outcome::Replied { ticket, .. } if ticket == t));
    assert!(unverified("u1@acme.test"));
    let staff_mail = w.db(|c| {
        queued_mail(c, "SELECT id FROM outbox WHERE recipient = 'agent@example.test' ORDER BY id DESC LIMIT 1", [])
    });
    let staff_mail = String::from_utf8_lossy(&staff_mail).replace("=\r\n", "");
    assert!(staff_mail.contains("sender not verified"), "staff are told: {staff_mail}");

    let dkim = "Authentication-Results: mx.example.test; dkim=pass header.d=acme.test header.s=k1\r\n";
    let proven =
        mail("boss@acme.test", "support@example.test", "Re: Printer", "u2@acme.test", &format!("{refs}{dkim}"), "ok");
    assert!(matches!(w.ingest(&proven), Outcome::Replied { .. }));
    assert!(!unverified("u2@acme.test"));
    let by_token = mail("jane@acme.test", &w.reply_address(t, w.member), "Re", "u3@acme.test", "", "thanks");
    assert!(matches!(w.ingest(&by_token), Outcome::Replied { .. }));
    assert!(!unverified("u3@acme.test"));
    // Without evidence, a customer's mail never lands on another team's ticket.
    let eve = mail("eve@globex.test", "support@example.test", &format!("Re: [#{t}]"), "u4@globex.test", refs, "x");
    assert!(matches!(w.ingest(&eve), Outcome::Opened { ticket, .. } if ticket != t));
}

#[test]
fn a_message_names_exactly_one_sender() {
    let w = world();
    let t = w.open();
    let subject = format!("Re: [#{t}] Printer");
    let cases = [
        ("jane@acme.test", "From: mallory@evil.test\r\n"),
        ("mallory@evil.test", "From: jane@acme.test\r\n"),
        ("<ali> <ce@acme.test>", ""),
        ("jane@acme.test, mallory@evil.test", ""),
        ("Jane <jane@acme.test>, Boss <boss@acme.test>", ""),
        ("jane@acme.test <mallory@evil.test>", ""),
    ];
    for (i, (from, extra)) in cases.iter().enumerate() {
        let raw = mail(from, "support@example.test", &subject, &format!("a{i}@evil.test"), extra, "hi");
        assert_eq!(w.ingest(&raw).quarantine_reason(), Some("ambiguous_sender"), "From: {from} {extra}");
    }
    // Sender: and Reply-To: never decide the author.
    let raw = mail(
        "mallory@evil.test",
        "support@example.test",
        &subject,
        "a9@evil.test",
        "Sender: jane@acme.test\r\nReply-To: jane@acme.test\r\n",
        "hi",
    );
    assert_eq!(w.ingest(&raw).quarantine_reason(), Some("unknown_sender"));
    assert_eq!(w.count("SELECT count(*) FROM messages"), 1);
}

#[test]
fn automatic_mail_notes_only_tickets_its_sender_may_act_on() {
    let w = world();
    let t = w.open();
    for (i, from) in ["eve@globex.test", "mallory@evil.test", "<x> <jane@acme.test>"].iter().enumerate() {
        let raw = mail(
            from,
            "support@example.test",
            "Out of office http://evil.test/",
            &format!("oo{i}@evil.test"),
            "Auto-Submitted: auto-replied\r\nIn-Reply-To: <open@acme.test>\r\n",
            "away",
        );
        assert_eq!(w.ingest(&raw), Outcome::Automatic { kind: AutoKind::AutoReplied, ticket: None }, "{from}");
    }
    assert_eq!(w.count(&format!("SELECT count(*) FROM ticket_events WHERE ticket_id = {t}")), 0);
}

#[test]
fn a_store_error_while_routing_never_turns_a_reply_into_a_new_ticket() {
    let w = world();
    let t = w.open();
    // A broken row: reading the token's ticket fails with an error other than "not found".
    w.db(|c| c.execute("UPDATE tickets SET created_at = 'broken' WHERE id = ?1", [t]).unwrap());
    let to = w.reply_address(t, w.member);
    let reply = mail("jane@acme.test", &to, "Re: whatever", "broken@acme.test", "", "More smoke.");
    assert_eq!(w.ingest(&reply).quarantine_reason(), Some("internal_error"));
    assert_eq!(w.count("SELECT count(*) FROM tickets"), 1, "no new ticket");
}
