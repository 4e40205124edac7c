//! The quarantine seen through (issue 11): each reason tells the sender (or
//! deliberately nobody, and says so), a release goes through the pipeline
//! once and threads as if accepted first, aliases make another address the
//! user, delete and purge.

use ticketgate::id::{QuarantineId, UserId};
use ticketgate::pipeline::Outcome;
use ticketgate::quarantine::{Release, Target};
use ticketgate::store::StoreError;
use ticketgate::store::inbound;
use ticketgate::store::users;

use crate::common::queued_mail;
use crate::pipeline::{World, mail, world};

const STAFF: &str = "agent@example.test";

impl World {
    fn entry(&self, id: QuarantineId) -> inbound::QuarantineEntry {
        self.db(|c| inbound::entry(c, id).unwrap())
    }

    fn notices_to(&self, to: &str) -> i64 {
        self.count(&format!("SELECT count(*) FROM outbox WHERE kind = 'notice' AND recipient = '{to}'"))
    }

    fn quarantined(&self, raw: &[u8], reason: &str) -> QuarantineId {
        match self.ingest(raw) {
            Outcome::Quarantined { reason: r, id } if r.as_str() == reason => id,
            o => panic!("expected {reason}, got {o:?}"),
        }
    }

    fn release(&self, id: QuarantineId, target: Target, as_user: Option<&str>) -> Result<Outcome, StoreError> {
        self.pipeline.release(id, &Release { target, as_user, add_alias: false, by: STAFF })
    }

    fn mails_to(&self, to: &str, kind: &str) -> i64 {
        self.count(&format!("SELECT count(*) FROM outbox WHERE kind = '{kind}' AND recipient = '{to}'"))
    }
}

#[test]
fn an_unknown_sender_is_told_only_when_proven_and_is_released_as_a_new_ticket_for_a_team() {
    let w = world();
    let raw = mail("Jane P <jane@home.test>", "support@example.test", "Printer jam", "p1@home.test", "", "Help");
    let id = w.quarantined(&raw, "unknown_sender");
    assert_eq!(w.notices_to("jane@home.test"), 0, "an unproven stranger is not answered (backscatter)");
    let entry = w.entry(id);
    assert!(entry.notice.as_deref().unwrap().starts_with("not sent: jane@home.test is not a known user"), "{entry:?}");

    let proven = "Authentication-Results: mx.example.test; dmarc=pass header.from=other.test\r\n";
    let other = mail("x@other.test", "support@example.test", "Hello", "p2@other.test", proven, "Hi");
    let told = w.quarantined(&other, "unknown_sender");
    assert_eq!(w.notices_to("x@other.test"), 1, "a sender a trusted check proved is told");
    assert_eq!(w.entry(told).notice.as_deref(), Some("sent to x@other.test"));

    let staff_before = w.mails_to(STAFF, "new_ticket");
    let Outcome::Opened { ticket, .. } = w.release(id, Target::Team("Acme".into()), None).unwrap() else {
        panic!("a new ticket")
    };
    let (opener, team): (String, String) = w.db(|c| {
        c.query_row(
            "SELECT u.email, m.name FROM tickets t JOIN users u ON u.id = t.opener_id JOIN teams m ON m.id = t.team_id \
             WHERE t.id = ?1",
            [ticket],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    });
    assert_eq!((opener.as_str(), team.as_str()), ("jane@home.test", "Acme"), "the sender joins the chosen team");
    let message_id: String =
        w.db(|c| c.query_row("SELECT message_id FROM messages WHERE ticket_id = ?1", [ticket], |r| r.get(0)).unwrap());
    assert_eq!(message_id, "p1@home.test", "the original Message-ID is kept");
    let dated: i64 =
        w.db(|c| c.query_row("SELECT created_at FROM messages WHERE ticket_id = ?1", [ticket], |r| r.get(0)).unwrap());
    assert_eq!(dated, w.entry(id).created_at, "dated when it arrived, not when released");
    assert_eq!(w.mails_to("jane@home.test", "ack"), 1, "the opener hears of it like any new ticket");
    assert_eq!(w.mails_to(STAFF, "new_ticket"), staff_before + 1, "staff hear of it like any new ticket");
    let resolution = w.entry(id).resolution.unwrap();
    assert_eq!(resolution.by, STAFF);
    assert!(resolution.what.contains(&format!("opened ticket #{ticket}")), "{resolution:?}");
    assert_eq!(w.count("SELECT count(*) FROM ticket_events WHERE kind = 'released'"), 1, "noted on the ticket");

    // Released twice: posted once. Delivered again: a duplicate of the posted message.
    let again = w.release(id, Target::Team("Acme".into()), None);
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(w.count(&format!("SELECT count(*) FROM messages WHERE ticket_id = {ticket}")), 1);
    assert_eq!(w.ingest(&raw), Outcome::Duplicate { ticket: Some(ticket) });

    // It threads as if it had been accepted first: a reply to it lands on the ticket.
    let refs = "In-Reply-To: <p1@home.test>\r\nReferences: <p1@home.test>\r\n";
    let reply = mail("jane@home.test", "support@example.test", "Re: Printer jam", "p3@home.test", refs, "Still");
    assert!(matches!(w.ingest(&reply), Outcome::Replied { ticket: t, .. } if t == ticket));
}

#[test]
fn a_token_used_by_someone_else_tells_the_sender_notes_the_ticket_and_releases_as_a_user() {
    let w = world();
    let t = w.open();
    let to = w.reply_address(t, w.member);
    let raw = mail("eve@globex.test", &to, "Re: Printer on fire", "m1@globex.test", "", "Jane asked me to write");
    let id = w.quarantined(&raw, "token_sender_mismatch");
    assert_eq!(w.notices_to("eve@globex.test"), 1, "the sender is told to use her own notification");
    assert_eq!(w.notices_to("jane@acme.test"), 0, "never the token's owner");
    assert_eq!(w.entry(id).notice.as_deref(), Some("sent to eve@globex.test"));
    let note: String = w.db(|c| {
        c.query_row(
            "SELECT detail FROM ticket_events WHERE kind = 'token_sender_mismatch' AND ticket_id = ?1",
            [t],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert!(note.contains(&format!("#{id}")) && note.contains("eve@globex.test"), "{note}");

    // Eve may not write on Acme's ticket; as Jane (who asked her to) it posts.
    let as_eve = w.release(id, Target::Ticket(t), None);
    assert!(matches!(&as_eve, Err(StoreError::Conflict(why)) if why.contains("may not write")), "{as_eve:?}");
    assert!(w.entry(id).resolution.is_none(), "a refused release changes nothing");
    let staff_before = w.mails_to(STAFF, "customer_update");
    let out = w.release(id, Target::Ticket(t), Some("jane@acme.test")).unwrap();
    assert!(matches!(out, Outcome::Replied { ticket, .. } if ticket == t), "{out:?}");
    assert_eq!(w.mails_to(STAFF, "customer_update"), staff_before + 1, "staff are notified as for any reply");
    let author: UserId = w.db(|c| {
        c.query_row("SELECT author_id FROM messages WHERE message_id = 'm1@globex.test'", [], |r| r.get(0)).unwrap()
    });
    assert_eq!(author, w.member);
}

#[test]
fn staff_mail_naming_no_ticket_tells_staff_and_is_released_onto_the_chosen_ticket() {
    let w = world();
    let t = w.open();
    let raw =
        mail("Agent <agent@example.test>", "support@example.test", "About the printer", "s1@x.test", "", "Fixed.");
    let id = w.quarantined(&raw, "staff_without_ticket");
    assert_eq!(w.notices_to(STAFF), 1, "staff are told to name a ticket");
    let thread = w.release(id, Target::Thread, None);
    assert!(matches!(&thread, Err(StoreError::Conflict(why)) if why.contains("choose a ticket")), "{thread:?}");
    let out = w.release(id, Target::Ticket(t), None).unwrap();
    assert!(matches!(out, Outcome::Replied { ticket, .. } if ticket == t), "{out:?}");
    assert_eq!(w.mails_to("jane@acme.test", "response"), 1, "the customer gets the response");
    assert_eq!(w.status(t), ticketgate::lifecycle::Status::WaitingForCustomer);
}

#[test]
fn without_a_single_sender_nobody_is_told_and_the_entry_says_so() {
    let w = world();
    let raw = b"To: support@example.test\r\nSubject: who\r\nMessage-ID: <nf@x.test>\r\n\r\nhi\r\n";
    let id = w.quarantined(raw, "no_sender");
    assert_eq!(w.count("SELECT count(*) FROM outbox"), 0);
    let entry = w.entry(id);
    assert!(ticketgate::quarantine::notice_text(&entry).starts_with("none: no notice is sent for this reason"));
    let out = w.release(id, Target::Thread, None);
    assert!(matches!(&out, Err(StoreError::Conflict(why)) if why.contains("not a known user")), "{out:?}");
    w.pipeline.delete_quarantined(id, STAFF).unwrap();
    let entry = w.entry(id);
    assert_eq!(entry.resolution.as_ref().map(|r| (r.what.as_str(), r.by.as_str())), Some(("deleted", STAFF)));
    assert_eq!(entry.stored_bytes, 0, "the message is gone, the record stays");
    assert!(matches!(w.release(id, Target::Thread, Some("jane@acme.test")), Err(StoreError::Conflict(_))));
}

#[test]
fn mail_from_an_alias_is_the_user_and_a_release_can_add_the_alias() {
    let w = world();
    let t = w.open();
    let raw = mail(
        "Jane <jane@home.test>",
        "support@example.test",
        format!("Re: [#{t}] Printer on fire").as_str(),
        "a1@home.test",
        "",
        "From home",
    );
    let id = w.quarantined(&raw, "unknown_sender");
    let r = Release { target: Target::Thread, as_user: Some("jane@acme.test"), add_alias: true, by: STAFF };
    let out = w.pipeline.release(id, &r).unwrap();
    assert!(matches!(out, Outcome::Replied { ticket, .. } if ticket == t), "threads by its subject tag: {out:?}");
    assert_eq!(w.db(|c| users::aliases(c, w.member).unwrap()), vec!["jane@home.test".to_string()]);

    let next = mail("jane@home.test", "support@example.test", "New printer", "a2@home.test", "", "Another one");
    let Outcome::Opened { ticket, .. } = w.ingest(&next) else { panic!("the alias is Jane") };
    let opener: UserId =
        w.db(|c| c.query_row("SELECT opener_id FROM tickets WHERE id = ?1", [ticket], |r| r.get(0)).unwrap());
    assert_eq!(opener, w.member);
    // Her reply token and a trusted check of the alias's domain are evidence for her.
    let to = w.reply_address(t, w.member);
    let by_token = mail("jane@home.test", &to, "Re: Printer on fire", "a4@home.test", "", "By token");
    assert!(matches!(w.ingest(&by_token), Outcome::Replied { ticket, .. } if ticket == t));
    let proven = "Authentication-Results: mx.example.test; dmarc=pass header.from=home.test\r\n";
    let refs = "In-Reply-To: <open@acme.test>\r\n";
    let by_ref = mail("jane@home.test", "support@example.test", "Re", "a5@home.test", &format!("{proven}{refs}"), "x");
    assert!(matches!(w.ingest(&by_ref), Outcome::Replied { ticket, .. } if ticket == t));
    let unverified: Vec<(String, bool)> = w.db(|c| {
        let mut st = c.prepare("SELECT message_id, unverified FROM messages WHERE message_id IN ('a4@home.test', 'a5@home.test') ORDER BY id").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    });
    assert_eq!(unverified, vec![("a4@home.test".into(), false), ("a5@home.test".into(), false)], "both verified");
    w.db(|c| users::remove_alias(c, w.member, "jane@home.test").unwrap());
    let after = mail("jane@home.test", "support@example.test", "Third", "a3@home.test", "", "x");
    assert_eq!(w.ingest(&after).quarantine_reason(), Some("unknown_sender"));
    let taken = w.db(|c| users::add_alias(c, w.member, "boss@acme.test", 0));
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "another user's address is no alias");
}

#[test]
fn purge_removes_old_entries_and_their_kept_files() {
    let w = ticketgate_world_small();
    let big = mail("jane@acme.test", "support@example.test", "big", "big@acme.test", "", &"x".repeat(20_000));
    let kept = w.pipeline.quarantine_oversized(&mut big.as_slice(), "support").unwrap();
    let Outcome::Quarantined { id, .. } = kept else { panic!("{kept:?}") };
    let path = w.entry(id).raw_path.unwrap();
    assert!(std::path::Path::new(&path).exists());
    assert_eq!(w.pipeline.quarantined_message(id).unwrap(), big, "the whole message, from its file");
    assert_eq!(w.pipeline.purge_quarantine(1).unwrap(), 0, "younger than a day");
    w.db(|c| c.execute("UPDATE quarantine SET created_at = created_at - 2 * 86400", []).unwrap());
    assert_eq!(w.pipeline.purge_quarantine(1).unwrap(), 1);
    assert!(!std::path::Path::new(&path).exists(), "the kept file goes too");
    assert_eq!(w.count("SELECT count(*) FROM quarantine"), 0);
}

fn ticketgate_world_small() -> World {
    crate::pipeline::world_with(|c| c.limits.max_message_bytes = 10_000)
}

#[test]
fn the_commands_show_release_delete_and_serve_purges_old_entries() {
    use crate::common::{App, AppConfig, wait_until};
    use std::time::Duration;
    let mut app = App::start(AppConfig::new().without_web().set("limits.quarantine_retention_days", 1));
    let inbox = ticketgate::inbound::maildir::Maildir::open(&app.data_dir().join("inbox")).unwrap();
    let (code, out) = app.run(&["team", "add", "Acme"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = app.run(&["user", "add", "pat@acme.test", "--role", "member", "--team", "Acme", "--no-password"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = app.run(&["user", "alias", "add", "pat@acme.test", "Pat@Home.test"]);
    assert_eq!((code, out.as_str()), (0, "pat@acme.test is now also pat@home.test\n"));
    let (_, out) = app.run(&["user", "list"]);
    assert!(out.contains("aliases: pat@home.test"), "{out}");
    let (code, _) = app.run(&["user", "alias", "remove", "pat@acme.test", "pat@home.test"]);
    assert_eq!(code, 0);
    let (code, out) = app.run(&["user", "alias", "remove", "pat@acme.test", "pat@home.test"]);
    assert!(code != 0 && out.contains("no such alias"), "{out}");
    for (i, from) in ["jane@home.test", "old@home.test", "gone@home.test"].iter().enumerate() {
        inbox.deliver(&mail(from, "support@example.test", "Printer", &format!("c{i}@home.test"), "", "Help")).unwrap();
        wait_until("quarantined", Duration::from_secs(30), || {
            app.query_i64("SELECT count(*) FROM quarantine") == i as i64 + 1
        });
    }

    let (code, out) = app.run(&["quarantine", "show", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reason:   unknown_sender") && out.contains("Message-ID: <c0@home.test>"), "{out}");
    assert!(out.contains("notice:   not sent: jane@home.test is not a known user"), "{out}");
    let (code, out) = app.run(&["quarantine", "release", "1", "--team", "Acme"]);
    assert_eq!((code, out.as_str()), (0, "#1\topened ticket #1\n"), "printed as ingest does");
    let (code, out) = app.run(&["quarantine", "release", "1", "--team", "Acme"]);
    assert!(code != 0 && out.contains("not released"), "{code} {out}");
    assert_eq!(app.query_i64("SELECT count(*) FROM messages"), 1, "released twice, posted once");
    let (code, out) = app.run(&["quarantine", "delete", "3"]);
    assert_eq!((code, out.as_str()), (0, "#3\tdeleted\n"));
    let (_, out) = app.run(&["quarantine", "show", "3"]);
    assert!(out.contains("done:     deleted by command line"), "{out}");
    let (_, out) = app.run(&["quarantine", "list"]);
    assert!(out.starts_with("2\tunknown_sender\told@home.test") && out.lines().count() == 1, "waiting ones: {out}");

    app.stop();
    let db = rusqlite::Connection::open(app.data_dir().join("ticketgate.sqlite")).unwrap();
    db.execute("UPDATE quarantine SET created_at = created_at - 2 * 86400 WHERE id = 2", []).unwrap();
    drop(db);
    app.restart();
    wait_until("serve purges the old entry", Duration::from_secs(30), || {
        app.query_i64("SELECT count(*) FROM quarantine WHERE id = 2") == 0
    });
    assert_eq!(app.query_i64("SELECT count(*) FROM quarantine"), 2, "the younger ones stay");
    let (code, out) = app.run(&["quarantine", "purge", "--older-than", "0"]);
    assert_eq!((code, out.as_str()), (0, "2 quarantine entries purged\n"));
}

#[test]
fn unverified_staff_dmarc_failures_and_ambiguous_senders_tell_the_right_address_or_nobody() {
    let w = world();
    let t = w.open();
    let subject = format!("Re: [#{t}] Printer on fire");
    let raw = mail(STAFF, "support@example.test", &subject, "su1@x.test", "", "Replace the fuser.");
    let id = w.quarantined(&raw, "staff_unverified");
    assert_eq!(w.entry(id).notice.as_deref(), Some("sent to agent@example.test"), "the staff address is told");
    let out = w.release(id, Target::Thread, None).unwrap();
    assert!(matches!(out, Outcome::Replied { ticket, .. } if ticket == t), "onto the ticket it named: {out:?}");
    assert_eq!(w.mails_to("jane@acme.test", "response"), 1, "the customer gets the response");

    let failed = |from: &str, domain: &str, id: &str| {
        let extra = format!("Authentication-Results: mx.example.test; dmarc=fail header.from={domain}\r\n");
        mail(from, "support@example.test", "Pay now", id, &extra, "Wire the money.")
    };
    let known = w.quarantined(&failed("jane@acme.test", "acme.test", "d1@acme.test"), "dmarc_fail");
    assert_eq!(w.entry(known).notice.as_deref(), Some("sent to jane@acme.test"), "the real owner hears of it");
    let stranger = w.quarantined(&failed("ceo@bank.test", "bank.test", "d2@bank.test"), "dmarc_fail");
    assert!(w.entry(stranger).notice.unwrap().starts_with("not sent: ceo@bank.test"), "a forged stranger is not");
    assert_eq!(w.notices_to("ceo@bank.test"), 0);
    let out = w.release(known, Target::Thread, None).unwrap();
    assert!(matches!(out, Outcome::Opened { .. }), "a new ticket in Jane's team: {out:?}");

    let before = w.count("SELECT count(*) FROM outbox");
    let two = b"From: jane@acme.test\r\nFrom: boss@acme.test\r\nTo: support@example.test\r\nSubject: x\r\n\
                Message-ID: <amb@acme.test>\r\n\r\nhi\r\n";
    let id = w.quarantined(two, "ambiguous_sender");
    assert_eq!(w.entry(id).notice, None, "no single sender, nobody to tell");
    assert_eq!(w.count("SELECT count(*) FROM outbox"), before);
}

/// The subject and text of the one notice to `to`, decoded.
fn notice_to(w: &World, to: &str) -> (String, String) {
    let raw = w.db(|c| queued_mail(c, "SELECT id FROM outbox WHERE kind = 'notice' AND recipient = ?1", [to]));
    let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
    (m.subject().unwrap_or_default().to_string(), m.body_text(0).unwrap_or_default().into_owned())
}

#[test]
fn the_notice_is_written_in_the_language_the_mail_declares_and_in_english_without_one() {
    let german = world();
    let raw = mail(
        "Agent <agent@example.test>",
        "support@example.test",
        "Drucker",
        "l1@example.test",
        "Content-Language: de-DE\r\n",
        "Erledigt.",
    );
    german.quarantined(&raw, "staff_without_ticket");
    let (subject, text) = notice_to(&german, STAFF);
    assert_eq!(subject, "Ihre Nachricht wurde nicht veröffentlicht: Drucker");
    assert!(text.contains("Wir haben Ihre Nachricht „Drucker“ von agent@example.test erhalten"), "{text}");
    assert!(text.contains("Diese Nachricht wurde automatisch versendet."), "{text}");

    let plain = world();
    let raw = mail("Agent <agent@example.test>", "support@example.test", "Printer", "l2@example.test", "", "Done.");
    plain.quarantined(&raw, "staff_without_ticket");
    let (subject, text) = notice_to(&plain, STAFF);
    assert_eq!(subject, "Your message was not posted: Printer");
    assert!(text.contains("We received your message “Printer” from agent@example.test"), "{text}");
}
