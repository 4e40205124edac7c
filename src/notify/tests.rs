//! Who gets which mail, and what the mail's headers say.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use rusqlite::Connection;

use super::*;
use crate::actions::{self, Env, Post, Upload};
use crate::id::{TeamId, TicketId};
use crate::lifecycle::{Role, Status};
use crate::notify::lang::Lang;
use crate::store::outbox::Entry;
use crate::store::testing;
use crate::store::tickets::{NewAttachment, NewMessage, Via};
use crate::store::users::NewUser;

struct People {
    member: User,
    agent: User,
}

fn user(c: &Connection, email: &str, name: &str, role: Role, team: Option<TeamId>) -> User {
    let id = users::create_user(c, &NewUser { email, name, role, team_id: team, password_hash: None }, 0).unwrap();
    users::by_id(c, id).unwrap()
}

fn people(c: &Connection) -> People {
    let team = users::create_team(c, "Acme", 0).unwrap();
    let p = People {
        member: user(c, "member@acme.test", "Mia Member", Role::Member, Some(team)),
        agent: user(c, "agent@support.test", "Sam Agent", Role::Staff, None),
    };
    user(c, "off@support.test", "", Role::Staff, None);
    users::set_disabled(c, "off@support.test", true).unwrap();
    user(c, "bouncy@support.test", "", Role::Staff, None);
    users::set_bouncing(c, "bouncy@support.test", Some("550 no such user")).unwrap();
    p
}

fn config() -> Config {
    let mut c = Config::default();
    c.support.address = "support@help.test".into();
    c.support.public_url = "https://portal.test".into();
    c
}

fn keys() -> Keyring {
    Keyring::new(vec![vec![7; 32]])
}

/// Posts a message as `author` and runs the notification for it.
fn post(
    c: &Connection,
    n: &Notifier,
    ticket: TicketId,
    author: &User,
    event: Event,
    body: &str,
    mid: &str,
) -> MessageId {
    let message = tickets::add_message(
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
    )
    .unwrap();
    let status = crate::lifecycle::transition(Some(tickets::get(c, ticket).unwrap().status), event).status;
    tickets::set_status(c, ticket, status, n.now).unwrap();
    let t = tickets::get(c, ticket).unwrap();
    ticket_event(c, n, &t, Some(message), event, Some(author)).unwrap();
    message
}

/// Outbox rows after `since` (an id), oldest first, as (kind, recipient).
fn queued(c: &Connection, since: i64) -> Vec<(String, String)> {
    let mut rows: Vec<Entry> = outbox::list(c, 1000).unwrap().into_iter().filter(|e| e.id > since).collect();
    rows.reverse();
    rows.into_iter().map(|e| (e.kind.as_str().to_string(), e.recipient)).collect()
}

fn last_id(c: &Connection) -> i64 {
    outbox::list(c, 1).unwrap().first().map(|e| e.id).unwrap_or(0)
}

/// One row of the notification table: an event, who does it (as the README's
/// "by" column says), the status after it ("unchanged" when it stays),
/// whether `last updated` moves, and every mail queued, as (kind, the
/// recipients' names).
struct Row {
    event: &'static str,
    by: &'static str,
    status: &'static str,
    moves: bool,
    mails: &'static [(&'static str, &'static str)],
}

const fn row(
    event: &'static str,
    by: &'static str,
    status: &'static str,
    moves: bool,
    mails: &'static [(&'static str, &'static str)],
) -> Row {
    Row { event, by, status, moves, mails }
}

impl Row {
    /// Every mail as (recipient's name, kind), sorted.
    fn each_mail(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .mails
            .iter()
            .flat_map(|(kind, names)| names.split(' ').map(|name| (name.to_string(), kind.to_string())))
            .collect();
        out.sort();
        out
    }
}

/// The README's "Notification rules", row for row, with the people of [`cast`]:
/// event, by, status after, whether `last updated` moves, mails (kind, to whom).
#[rustfmt::skip]
const TABLE: &[Row] = &[
    row("ticket opened by mail",              "opener",      "waiting_for_support",  true,  &[("ack", "mia"), ("new_ticket", "sam stu")]),
    row("ticket opened on the web",           "opener",      "waiting_for_support",  true,  &[("ack", "mia"), ("new_ticket", "sam stu")]),
    row("staff reply by mail",                "staff",       "waiting_for_customer", true,  &[("response", "mia ada al pat")]),
    row("staff reply on the web",             "staff",       "waiting_for_customer", true,  &[("response", "mia ada al pat")]),
    row("customer reply (Send, mail or web)", "opener",      "waiting_for_support",  true,  &[("customer_update", "ada al pat sam stu")]),
    row("customer reply (Send, mail or web)", "admin",       "waiting_for_support",  true,  &[("customer_update", "mia al pat sam stu")]),
    row("customer reply (Send, mail or web)", "participant", "waiting_for_support",  true,  &[("customer_update", "mia ada al sam stu")]),
    row("Send + Close with text",             "opener",      "closed",               true,  &[("closed", "ada al pat sam stu")]),
    row("Send + Close with text",             "staff",       "closed",               true,  &[("closed", "mia ada al pat stu")]),
    row("staff `#close` by mail with text",   "staff",       "closed",               true,  &[("closed", "mia ada al pat stu")]),
    row("Close",                              "opener",      "closed",               true,  &[("closed", "ada al pat sam stu")]),
    row("Close",                              "staff",       "closed",               true,  &[("closed", "mia ada al pat stu")]),
    row("attachments sent with Close",        "opener",      "closed",               true,  &[("closed", "ada al pat sam stu")]),
    row("reopen: Send on a closed ticket",    "participant", "waiting_for_support",  true,  &[("reopened", "mia ada al sam stu")]),
    row("attachment added without text",      "opener",      "unchanged",            true,  &[("updated", "ada al pat")]),
    row("attachment added without text",      "staff",       "unchanged",            true,  &[("updated", "mia ada al pat")]),
    row("internal reference changed",         "admin",       "unchanged",            false, &[]),
    row("internal reference changed",         "staff",       "unchanged",            false, &[]),
];

/// Everyone around the ticket of a table row, by name (`NAME@acme.test`,
/// staff `NAME@support.test`): opener mia; admins ada, al and ida (bouncing);
/// teammates who write on the ticket pat, bob (bouncing) and dan (disabled),
/// olga who never does; staff sam, stu, off (disabled) and bouncy (bouncing).
fn cast(c: &Connection) -> (TeamId, Vec<User>) {
    let team = users::create_team(c, "Acme", 0).unwrap();
    let customers = [
        ("mia", Role::Member),
        ("ada", Role::Admin),
        ("al", Role::Admin),
        ("ida", Role::Admin),
        ("pat", Role::Member),
        ("bob", Role::Member),
        ("dan", Role::Member),
        ("olga", Role::Member),
    ];
    let mut all: Vec<User> = customers
        .iter()
        .map(|(name, role)| user(c, &format!("{name}@acme.test"), &name.to_uppercase(), *role, Some(team)))
        .collect();
    for name in ["sam", "stu", "off", "bouncy"] {
        all.push(user(c, &format!("{name}@support.test"), &name.to_uppercase(), Role::Staff, None));
    }
    for address in ["ida@acme.test", "bob@acme.test", "bouncy@support.test"] {
        users::set_bouncing(c, address, Some("550 gone")).unwrap();
    }
    for address in ["dan@acme.test", "off@support.test"] {
        users::set_disabled(c, address, true).unwrap();
    }
    (team, all)
}

fn named<'a>(cast: &'a [User], name: &str) -> &'a User {
    cast.iter().find(|u| u.email.split('@').next() == Some(name)).unwrap()
}

/// Who acts for the README's "by" column.
fn actor(by: &str) -> &'static str {
    match by {
        "opener" => "mia",
        "admin" => "ada",
        "participant" => "pat",
        "staff" => "sam",
        other => panic!("no one acts as {other:?}"),
    }
}

/// A ticket opened by mia, on which pat, bob and dan wrote and sam answered
/// (waiting for the customer); for a reopening, then closed by sam, who also
/// added a file after the close.
fn set_up(c: &Connection, env: &Env, team: TeamId, cast: &[User], event: &str) -> Ticket {
    let say = |who: &str, text: &'static str| Post::web(named(cast, who), text, &[]);
    let mut t = actions::open(c, env, team, "Printer", "web", &say("mia", "It is broken")).unwrap().ticket;
    for who in ["pat", "bob", "dan", "sam"] {
        t = actions::reply(c, env, t, &say(who, "Same here")).unwrap().ticket;
    }
    if event.starts_with("reopen") {
        t = actions::close(c, env, t, named(cast, "sam")).unwrap();
        let files = [upload()];
        t = actions::attach(c, env, t, &Post::web(named(cast, "sam"), "", &files)).unwrap().ticket;
    }
    t
}

fn upload() -> Upload<'static> {
    let checked = Checked { filename: "log.txt".into(), size: 5, detected: None, accepted: true, reason: None };
    Upload { checked, bytes: b"hello" }
}

/// Does `event` as `author` on `ticket` (the openings make their own ticket).
fn act(c: &Connection, env: &Env, team: TeamId, ticket: Option<Ticket>, author: &User, event: &str) -> TicketId {
    let files = [upload()];
    let web = |text| Post::web(author, text, &[]);
    let mail = |text| Post { via: Via::Mail, message_id: Some("in@acme.test"), ..web(text) };
    fn closing(post: Post) -> Post {
        Post { close: true, ..post }
    }
    let reply = |post: &Post| actions::reply(c, env, ticket.clone().unwrap(), post).unwrap().ticket.id;
    match event {
        "ticket opened by mail" => {
            actions::open(c, env, team, "Printer", "support", &mail("Broken")).unwrap().ticket.id
        }
        "ticket opened on the web" => actions::open(c, env, team, "Printer", "web", &web("Broken")).unwrap().ticket.id,
        "staff reply by mail" | "customer reply (Send, mail or web)" => reply(&mail("Try this")),
        "staff reply on the web" | "reopen: Send on a closed ticket" => reply(&web("Try this")),
        "Send + Close with text" => reply(&closing(web("Done"))),
        "staff `#close` by mail with text" => reply(&closing(mail("Fixed on site."))),
        "Close" => actions::close(c, env, ticket.unwrap(), author).unwrap().id,
        "attachments sent with Close" => {
            actions::attach(c, env, ticket.unwrap(), &closing(Post::web(author, "", &files))).unwrap().ticket.id
        }
        "attachment added without text" => {
            actions::attach(c, env, ticket.unwrap(), &Post::web(author, "", &files)).unwrap().ticket.id
        }
        "internal reference changed" => actions::set_reference(c, ticket.unwrap(), "CRM-7").unwrap().id,
        other => panic!("the table names an event the test cannot do: {other:?}"),
    }
}

#[test]
fn the_notification_table_is_what_happens() {
    let (db, dir) = testing::db();
    let (config, keys) = (config(), keys());
    let blobs = crate::store::Blobs::new(dir.path().join("blobs"));
    db.write(|c| {
        let (team, cast) = cast(c);
        for row in TABLE {
            let before = Env { config: &config, keys: &keys, blobs: &blobs, now: 1000 };
            let ticket = (!row.event.starts_with("ticket opened")).then(|| set_up(c, &before, team, &cast, row.event));
            let mark = last_id(c);
            let env = Env { now: 2000, ..before };
            let t = act(c, &env, team, ticket.clone(), named(&cast, actor(row.by)), row.event);

            let what = format!("{} by {}", row.event, row.by);
            let mut got: Vec<(String, String)> = queued(c, mark)
                .into_iter()
                .map(|(kind, to)| (to.split('@').next().unwrap().to_string(), kind))
                .collect();
            got.sort();
            assert_eq!(got, row.each_mail(), "{what}: exactly these mails, one per person");
            let after = tickets::get(c, t)?;
            let status = match (row.status, &ticket) {
                ("unchanged", Some(before)) => before.status,
                (s, _) => Status::parse(s).unwrap(),
            };
            assert_eq!(after.status, status, "{what}");
            let updated = if row.moves { 2000 } else { ticket.map_or(0, |t| t.updated_at) };
            assert_eq!(after.updated_at, updated, "{what}: last updated");
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

/// A table row as comparable text: event, by, status, last updated moves, the mails sorted.
type Said = (String, String, String, bool, Vec<(String, String)>);

/// The README table's rows as [`Row`]s would be written from it: each group
/// with a kind is every person in it who can get mail, but the actor (who
/// only ever gets an acknowledgement).
fn readme_rows() -> Vec<Said> {
    let readme = include_str!("../../README.md");
    let section = readme.split("\n## Notification rules\n").nth(1).expect("README has the section");
    let groups: [&[&str]; 4] = [&["mia"], &["ada", "al"], &["pat"], &["sam", "stu"]];
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 8, "{line}");
            let acting = actor(cells[1]);
            let mut mails: Vec<(String, String)> = Vec::new();
            for (cell, people) in cells[4..].iter().zip(groups) {
                let Some(kind) = cell.split('`').nth(1) else { continue };
                let told = people.iter().filter(|p| **p != acting || kind == "ack");
                mails.extend(told.map(|p| (p.to_string(), kind.to_string())));
            }
            mails.sort();
            let moves = match cells[3] {
                "moves" => true,
                "stays" => false,
                other => panic!("last updated {other:?}"),
            };
            (cells[0].to_string(), cells[1].to_string(), cells[2].to_string(), moves, mails)
        })
        .collect()
}

#[test]
fn the_notification_table_is_the_readme_table() {
    let readme = readme_rows();
    let ours: Vec<Said> = TABLE
        .iter()
        .map(|r| (r.event.to_string(), r.by.to_string(), r.status.to_string(), r.moves, r.each_mail()))
        .collect();
    assert_eq!(readme.len(), ours.len(), "as many rows in the README as in the test");
    for (doc, test) in readme.iter().zip(&ours) {
        assert_eq!(doc, test, "README row and test row differ");
    }
}

#[test]
fn only_the_opener_reads_your_ticket_and_send_close_says_both_in_one_mail() {
    let (db, dir) = testing::db();
    let (config, keys) = (config(), keys());
    let blobs = crate::store::Blobs::new(dir.path().join("blobs"));
    db.write(|c| {
        let (team, cast) = cast(c);
        let env = Env { config: &config, keys: &keys, blobs: &blobs, now: 1000 };
        let ticket = set_up(c, &env, team, &cast, "");
        let text = |kind: &str, to: &str, since: i64| {
            let rows = outbox::list(c, 1000).unwrap();
            let row = rows.iter().find(|e| e.id > since && e.kind.as_str() == kind && e.recipient.starts_with(to));
            let raw = draft::outgoing(c, row.unwrap().id).unwrap().unwrap();
            MessageParser::default().parse(&raw).unwrap().body_text(0).unwrap().replace("\r\n", "\n")
        };
        let answered = text("response", "mia@", 0);
        assert!(answered.contains("SAM from Support responded to your ticket [#1]"), "{answered}");
        for who in ["ada@", "pat@"] {
            let told = text("response", who, 0);
            assert!(told.contains("SAM from Support responded on ticket [#1]"), "{told}");
            assert!(!told.to_lowercase().contains("your ticket"), "{who} did not open it: {told}");
        }

        let mark = last_id(c);
        let done = Post { close: true, ..Post::web(named(&cast, "sam"), "Replaced the fuser.", &[]) };
        actions::reply(c, &env, ticket, &done)?;
        let closed = text("closed", "mia@", mark);
        assert!(closed.contains("SAM from Support responded to your ticket [#1] “Printer” and closed it."), "{closed}");
        assert!(closed.contains("Replaced the fuser."), "the one mail carries the message: {closed}");
        let closed = text("closed", "al@", mark);
        assert!(closed.contains("responded on ticket [#1] “Printer” and closed it."), "{closed}");
        let staff = text("closed", "stu@", mark);
        assert!(staff.contains("SAM <sam@support.test> from Support responded on ticket [#1]"), "{staff}");
        assert_eq!(queued(c, mark).iter().filter(|(_, to)| to == "mia@acme.test").count(), 1);
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

fn header_text(m: &mail_parser::Message, name: &str) -> Option<String> {
    m.header_raw(name).map(|v| v.trim().to_string())
}

fn ids(v: &HeaderValue) -> Vec<String> {
    v.as_text_list().map(|l| l.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
}

#[test]
fn headers_thread_the_mail_and_point_back_at_the_recipient() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        let p = people(c);
        let n = Notifier { config: &config, keys: &keys, now: 1000 };
        let t = tickets::create(c, p.member.team_id.unwrap(), p.member.id, "Printer on fire", "support", 1000)?;
        post(c, &n, t, &p.member, Event::Opened, "It is broken", "root@acme.test");
        let n = Notifier { now: 1001, ..n };
        let mark = last_id(c);
        let reply = post(c, &n, t, &p.agent, Event::StaffResponded, "Unplug it.\nThen wait.", "s1@help.test");
        let rows: Vec<Entry> = outbox::list(c, 100)?.into_iter().filter(|e| e.id > mark).collect();
        let to_member = rows.iter().find(|e| e.recipient == "member@acme.test").unwrap();
        let raw = draft::outgoing(c, to_member.id)?.unwrap();
        let m = MessageParser::default().parse(&raw).unwrap();

        assert_eq!(m.message_id(), Some(to_member.message_id.as_str()), "the stored id is the header's");
        assert!(to_member.message_id.ends_with("@help.test"));
        assert_eq!(m.subject(), Some("Re: [#1] Printer on fire"));
        assert_eq!(ids(m.in_reply_to()), vec!["s1@help.test"], "replies to the message notified about");
        let refs = ids(m.references());
        assert_eq!(refs.first().map(String::as_str), Some("root@acme.test"), "References start at the root");
        assert_eq!(refs.last().map(String::as_str), Some("s1@help.test"), "and end with the parent");

        let reply_to = m.reply_to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap().to_string();
        let tag = crate::address::tag_of(&reply_to, "support@help.test").unwrap();
        assert_eq!(
            crate::route::token::verify(&keys, tag),
            Ok(crate::route::token::Token { ticket: t, user: p.member.id }),
            "Reply-To carries the recipient's own token"
        );
        let from = m.from().and_then(|a| a.first()).unwrap();
        assert_eq!((from.name(), from.address()), (Some("Support"), Some("support@help.test")));
        assert_eq!(header_text(&m, "Auto-Submitted").as_deref(), Some("auto-generated"));
        assert_eq!(header_text(&m, "X-Auto-Response-Suppress").as_deref(), Some("All"));
        assert_eq!(header_text(&m, "Thread-Topic").as_deref(), Some("Printer on fire"));
        assert_eq!(m.content_type().map(|ct| (ct.ctype(), ct.subtype())), Some(("multipart", Some("alternative"))));

        let text = m.body_text(0).unwrap().replace("\r\n", "\n");
        let html = m.body_html(0).unwrap();
        assert!(text.contains("Unplug it.\nThen wait.") && html.contains("Unplug it.<br"), "{html}");
        assert!(text.contains("Reply to this email"));
        let href = html.split("data-testid=\"deep-link\" href=\"").nth(1).unwrap().split('"').next().unwrap();
        let token = href.strip_prefix("https://portal.test/l/").unwrap();
        let link = Link::verify(&keys, token, 1001).unwrap();
        assert_eq!((link.ticket, link.message, link.user), (t, reply, p.member.id));
        assert_eq!(link.expires, 1001 + 30 * 86_400);
        assert!(text.contains(href), "the text part has the same link");

        // The staff's notification of the opening thread onto the customer's mail too.
        let first_staff = outbox::list(c, 100)?.into_iter().find(|e| e.kind.as_str() == "new_ticket").unwrap();
        let m = MessageParser::default().parse(&draft::outgoing(c, first_staff.id)?.unwrap()).unwrap().into_owned();
        assert_eq!(m.subject(), Some("[#1] Printer on fire"));
        assert_eq!(ids(m.in_reply_to()), vec!["root@acme.test"]);
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

#[test]
fn authors_are_named_and_staff_see_the_address_beside_the_name() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        let p = people(c);
        let n = Notifier { config: &config, keys: &keys, now: 1000 };
        let t = tickets::create(c, p.member.team_id.unwrap(), p.member.id, "Printer", "support", 1000)?;
        post(c, &n, t, &p.member, Event::Opened, "It is broken", "m1@acme.test");
        let mark = last_id(c);
        post(c, &n, t, &p.agent, Event::StaffResponded, "Try this", "s1@help.test");
        let text = |kind: &str, since: i64| {
            let row =
                outbox::list(c, 100).unwrap().into_iter().find(|e| e.kind.as_str() == kind && e.id > since).unwrap();
            let raw = draft::outgoing(c, row.id).unwrap().unwrap();
            MessageParser::default().parse(&raw).unwrap().body_text(0).unwrap().into_owned()
        };
        assert!(
            text("new_ticket", 0).contains("Mia Member <member@acme.test> opened ticket"),
            "{}",
            text("new_ticket", 0)
        );
        assert!(text("response", mark).contains("Sam Agent from Support responded"), "{}", text("response", mark));
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

#[test]
fn user_input_never_adds_headers() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        let team = users::create_team(c, "Acme", 0)?;
        let evil = user(c, "evil@acme.test", "Eve\r\nBcc: victim@else.test", Role::Member, Some(team));
        user(c, "agent@support.test", "Sam\nX-Injected: 1", Role::Staff, None);
        let n = Notifier { config: &config, keys: &keys, now: 5 };
        let subject = "Hi\r\nBcc: victim@else.test\r\nX-Injected: yes";
        let t = tickets::create(c, team, evil.id, subject, "support", 5)?;
        post(c, &n, t, &evil, Event::Opened, "body\r\n.\r\nRCPT TO:<x@y>", "bad\r\nBcc: v@x.test");
        for e in outbox::list(c, 10)? {
            let raw = draft::outgoing(c, e.id)?.unwrap();
            let head = String::from_utf8_lossy(&raw);
            let head = head.split("\r\n\r\n").next().unwrap();
            for line in head.split("\r\n") {
                assert!(!line.starts_with("Bcc:") && !line.starts_with("X-Injected"), "{e:?}: {line}");
                assert!(!line.contains('\n') && !line.contains('\r'));
            }
            let m = MessageParser::default().parse(&raw).unwrap();
            assert_eq!(m.subject(), Some("[#1] Hi Bcc: victim@else.test X-Injected: yes"));
            assert!(m.header_raw("Bcc").is_none() && m.header_raw("X-Injected").is_none());
            assert!(m.in_reply_to().is_empty(), "a Message-ID with a line break is never used");
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

#[test]
fn notices_are_rate_limited_and_stay_out_of_the_thread() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        let p = people(c);
        let n = Notifier { config: &config, keys: &keys, now: 10_000 };
        let unknown = Notice::UnknownSender { subject: "Hello?" };
        assert!(notice(c, &n, "Stranger@Else.test", &unknown, Some("q1@else.test"), Lang::En)?);
        assert!(!notice(c, &n, "stranger@else.test", &unknown, Some("q2@else.test"), Lang::En)?, "one per interval");
        let later = Notifier { now: 10_000 + 3600, ..n };
        assert!(notice(c, &later, "stranger@else.test", &unknown, None, Lang::En)?);
        assert!(!notice(c, &n, "bouncy@support.test", &unknown, None, Lang::En)?, "never to a bouncing address");

        let t = tickets::create(c, p.member.team_id.unwrap(), p.member.id, "Files", "support", 10_000)?;
        post(c, &n, t, &p.member, Event::Opened, "see attached", "f1@acme.test");
        let ticket = tickets::get(c, t)?;
        let files = vec![Checked {
            filename: "run.exe".into(),
            size: 2048,
            detected: None,
            accepted: false,
            reason: Some(Refusal::ExtensionNotAllowed),
        }];
        let refused = Notice::RefusedAttachments { ticket: &ticket, files: &files };
        assert!(notice(c, &n, "member@acme.test", &refused, Some("f1@acme.test"), Lang::En)?);
        let row = outbox::list(c, 1)?.remove(0);
        assert_eq!((row.kind.as_str(), row.ticket_id), ("notice", Some(t)));
        assert!(
            !tickets::thread_message_ids(c, t, "member@acme.test")?.contains(&row.message_id),
            "notices are not in the thread"
        );
        let m = MessageParser::default().parse(&draft::outgoing(c, row.id)?.unwrap()).unwrap().into_owned();
        assert_eq!(m.subject(), Some("[#1] Attachments refused: Files"));
        assert_eq!(header_text(&m, "Auto-Submitted").as_deref(), Some("auto-replied"));
        let text = m.body_text(0).unwrap();
        assert!(text.contains("run.exe (2 KB): refused. This type of file is not accepted."), "{text}");
        assert_eq!(ids(m.in_reply_to()), vec!["f1@acme.test"]);

        let first = outbox::list(c, 100)?.into_iter().find(|e| e.recipient == "stranger@else.test").unwrap();
        let m = MessageParser::default().parse(&draft::outgoing(c, first.id)?.unwrap()).unwrap().into_owned();
        assert_eq!(m.subject(), Some("No ticket was created: Hello?"));
        assert_eq!(m.reply_to().and_then(|a| a.first()).and_then(|a| a.address()), Some("support@help.test"));
        assert!(!m.body_html(0).unwrap().contains("deep-link"), "no link for someone without an account");
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

#[test]
fn references_keep_root_own_and_newest() {
    let thread: Vec<String> = (0..20).map(|i| format!("m{i}@x.test")).collect();
    let refs = compose::references(&thread, Some("m3@x.test"), Some("m19@x.test"));
    assert_eq!(refs.first().map(String::as_str), Some("m0@x.test"));
    assert!(refs.contains(&"m3@x.test".to_string()));
    assert_eq!(refs.last().map(String::as_str), Some("m19@x.test"));
    assert_eq!(refs.len(), 1 + 1 + compose::REFERENCES_TAIL);
    let refs = compose::references(&["bad id@x".into(), "ok@x.test".into()], None, Some("p@x.test"));
    assert_eq!(refs, vec!["ok@x.test".to_string(), "p@x.test".to_string()]);
}

#[test]
fn mails_quote_a_bounded_excerpt_and_staff_get_download_links() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        let p = people(c);
        let n = Notifier { config: &config, keys: &keys, now: 1000 };
        let t = tickets::create(c, p.member.team_id.unwrap(), p.member.id, "Logs", "support", 1000)?;
        let body: String = (0..20_000).map(|i| format!("log line {i}\n")).collect();
        let new = NewMessage {
            ticket_id: t,
            author_id: Some(p.member.id),
            author_role: p.member.role,
            via: Via::Mail,
            event: Event::Opened,
            body: &body,
            quoted: "",
            message_id: Some("big@acme.test"),
            raw: None,
        };
        let message = tickets::add_message(c, &new, 1000)?;
        let file = |name: &'static str, refused: Option<Refusal>| NewAttachment {
            ticket_id: t,
            message_id: Some(message),
            filename: name,
            size: 2048,
            detected: None,
            sha256: refused.is_none().then_some("00"),
            refused,
        };
        let kept = tickets::add_attachment(c, &file("report.pdf", None), 1000)?;
        tickets::add_attachment(c, &file("run.exe", Some(Refusal::ExtensionNotAllowed)), 1000)?;
        for i in 0..MAX_FILES_LISTED {
            tickets::add_attachment(c, &file(if i % 2 == 0 { "a.png" } else { "b.png" }, None), 1000)?;
        }
        ticket_event(c, &n, &tickets::get(c, t)?, Some(message), Event::Opened, Some(&p.member))?;

        for e in outbox::list(c, 10)? {
            let raw = draft::outgoing(c, e.id)?.unwrap();
            assert!(raw.len() < 40_000, "{}: {} bytes for a {}-byte message", e.kind, raw.len(), body.len());
            let m = MessageParser::default().parse(&raw).unwrap();
            let text = m.body_text(0).unwrap().replace("\r\n", "\n");
            assert!(text.contains("log line 0\nlog line 1\n"), "{text}");
            assert!(!text.contains("log line 19999"), "the whole body is never copied");
            let cut = text.split(EXCERPT_CUT).next().unwrap();
            assert!(cut.ends_with("\n\n"), "cut at a line end: {:?}", &cut[cut.len() - 40..]);
            assert!(text.contains("… and 2 more, listed on the portal"), "{text}");
            let download = format!("https://portal.test/t/{t}/a/{kept}");
            let html = m.body_html(0).unwrap();
            if e.kind.as_str() == "new_ticket" {
                assert!(text.contains(&format!("report.pdf (2 KB): {download}")), "{text}");
                assert!(html.contains(&format!("href=\"{download}\"")), "{html}");
                assert!(text.contains("run.exe (2 KB): refused."), "refused files have no link");
            } else {
                assert_eq!(e.kind.as_str(), "ack");
                assert!(!text.contains("/a/") && !html.contains("/a/"), "customers get no download links");
            }
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}

#[test]
fn a_queued_draft_renders_the_same_mail_every_time_in_the_notices_language() {
    let (db, _d) = testing::db();
    let (config, keys) = (config(), keys());
    db.write(|c| {
        people(c);
        let n = Notifier { config: &config, keys: &keys, now: 1000 };
        let unknown = Notice::UnknownSender { subject: "Drucker" };
        assert!(notice(c, &n, "fremd@else.test", &unknown, Some("m1@else.test"), Lang::De)?);
        let row = outbox::list(c, 1)?.remove(0);
        let first = draft::outgoing(c, row.id)?.unwrap();
        assert_eq!(draft::outgoing(c, row.id)?.unwrap(), first, "a repeat after a crash is the same mail");
        let m = MessageParser::default().parse(&first).unwrap();
        assert_eq!(m.message_id(), Some(row.message_id.as_str()));
        assert_eq!(m.date().map(|d| d.to_timestamp()), Some(1000), "dated at the event, not when it was made");
        assert!(m.body_html(0).unwrap().contains("lang=\"de\""), "the notice's language is kept");
        assert_eq!(ids(m.in_reply_to()), vec!["m1@else.test"]);
        Ok::<_, crate::store::StoreError>(())
    })
    .unwrap();
}
