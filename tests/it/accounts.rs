//! Accounts in the portal through the real binary over HTTP: password reset
//! by mail (the link read from the `.eml` the outbox wrote), its limits and
//! its one-hour life, user administration by staff, by a customer admin and
//! (not) by a member, and a typed reply kept across an ended session.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ticketgate::deeplink::{PasswordLink, PasswordPurpose};
use ticketgate::id::UserId;
use ticketgate::signing::Keyring;

use crate::common::{App, AppConfig, wait_until};
use crate::login::{enc, http};
use crate::web::multipart_body;

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new secret";

/// One browser: its cookies, and the client address a trusted proxy reports for it.
struct Visitor<'a> {
    app: &'a App,
    client: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    head: String,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .unwrap_or("")
    }

    /// The value of the first input named `name`, unescaped.
    fn field(&self, name: &str) -> Option<String> {
        let at = format!("name=\"{name}\" value=\"");
        let v = self.body.split(&at).nth(1)?.split('"').next()?;
        Some(unescape(v))
    }

    /// The text of the element with `id`.
    fn text_of(&self, id: &str) -> String {
        let start =
            self.body.split(&format!("id=\"{id}\"")).nth(1).unwrap_or_else(|| panic!("no #{id}: {}", self.body));
        unescape(start.split_once('>').map_or("", |(_, rest)| rest).split('<').next().unwrap_or(""))
    }
}

fn unescape(s: &str) -> String {
    [("&#34;", "\""), ("&#39;", "'"), ("&#60;", "<"), ("&#62;", ">"), ("&quot;", "\""), ("&#38;", "&"), ("&amp;", "&")]
        .iter()
        .fold(s.to_string(), |acc, (from, to)| acc.replace(from, to))
}

impl<'a> Visitor<'a> {
    fn new(app: &'a App, client: &str) -> Visitor<'a> {
        Visitor { app, client: client.into(), cookies: BTreeMap::new() }
    }

    fn send(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Page {
        let cookies: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let body = String::from_utf8(body.to_vec()).expect("text bodies only");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: portal\r\nConnection: close\r\nX-Forwarded-For: {}\r\nCookie: {}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.client,
            cookies.join("; "),
            body.len()
        );
        let (status, raw) = http(self.app, &request);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        for line in head.lines() {
            let Some(c) = line.strip_prefix("set-cookie: ").or_else(|| line.strip_prefix("Set-Cookie: ")) else {
                continue;
            };
            let (name, value) = c.split(';').next().unwrap_or("").split_once('=').unwrap_or(("", ""));
            if value.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        Page { status, head: head.into(), body: body.into() }
    }

    fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, "text/plain", b"")
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        self.send("POST", path, "application/x-www-form-urlencoded", body.join("&").as_bytes())
    }

    fn multipart(&mut self, path: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Page {
        let (ct, body) = multipart_body(fields, files);
        self.send("POST", path, &ct, &body)
    }

    /// Submits `form` (a login page) with the address and password, keeping its hidden fields.
    fn log_in_on(&mut self, form: &Page, email: &str, password: &str) -> Page {
        let hidden: Vec<(&str, String)> = ["csrf", "next", "draft_subject", "draft_body"]
            .into_iter()
            .filter_map(|n| form.field(n).map(|v| (n, v)))
            .collect();
        let mut fields: Vec<(&str, &str)> = hidden.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fields.extend([("email", email), ("password", password)]);
        self.post("/login", &fields)
    }

    fn log_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/login");
        self.log_in_on(&form, email, password)
    }

    /// The session's CSRF token, from a page with a form.
    fn csrf(&mut self) -> String {
        self.get("/account").field("csrf").expect("a form with a csrf field")
    }
}

/// A portal behind a trusted proxy (the test is 127.0.0.1), so each visitor is its own client.
fn portal() -> App {
    let app = App::start(AppConfig::new().set("web.trusted_proxies", vec!["127.0.0.1".to_string()]));
    for team in ["Acme", "Globex"] {
        app.run_ok(&["team", "add", team]);
    }
    for (email, role, team) in [
        ("jane@acme.test", "member", "Acme"),
        ("boss@acme.test", "admin", "Acme"),
        ("eve@globex.test", "member", "Globex"),
    ] {
        app.run_ok(&["user", "add", email, "--role", role, "--team", team, "--password", PASSWORD]);
    }
    app.run_ok(&["user", "add", "agent@example.test", "--role", "staff", "--password", PASSWORD]);
    app
}

fn id_of(app: &App, email: &str) -> i64 {
    app.query_i64(&format!("SELECT id FROM users WHERE email = '{email}'"))
}

fn mails_to(app: &App, to: &str) -> i64 {
    app.query_i64(&format!("SELECT count(*) FROM outbox WHERE recipient = '{to}'"))
}

/// The set-password links in the `.eml` files the outbox wrote to `to`, once there are `n`.
fn links_to(app: &App, to: &str, n: usize) -> Vec<String> {
    let outbox = app.data_dir().join("outbox");
    let mut links = Vec::new();
    wait_until(&format!("{n} mail(s) with a link to {to}"), Duration::from_secs(30), || {
        links = read_links(&outbox, to);
        links.len() >= n
    });
    links
}

fn read_links(outbox: &Path, to: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(outbox).into_iter().flatten().flatten() {
        let Ok(raw) = std::fs::read(e.path()) else { continue };
        let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else { continue };
        let addressed =
            msg.to().and_then(|a| a.first()).and_then(|a| a.address()).is_some_and(|a| a.eq_ignore_ascii_case(to));
        let text = msg.body_text(0).unwrap_or_default();
        if let Some(link) = text.split_whitespace().find(|w| w.contains("/password/reset/")).filter(|_| addressed) {
            out.push(link.to_string());
        }
    }
    out
}

/// The path of a full link (`http://host:port/path`).
fn path_of(link: &str) -> &str {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

#[test]
fn a_reset_link_works_once_within_the_hour_and_ends_the_other_sessions() {
    let app = portal();
    app.run_ok(&["user", "disable", "eve@globex.test"]);
    let mut old = Visitor::new(&app, "198.51.100.1");
    assert_eq!(old.log_in("jane@acme.test", PASSWORD).status, 303);
    assert_eq!(old.get("/").status, 200);

    let mut v = Visitor::new(&app, "198.51.100.2");
    assert!(v.get("/login").body.contains("href=\"/password/forgot\""), "Forgot password? on the login page");
    let answers: Vec<(u16, String)> = ["jane@acme.test", "nobody@acme.test", "eve@globex.test"]
        .into_iter()
        .map(|email| {
            let p = v.post("/password/forgot", &[("email", email)]);
            (p.status, p.text_of("status"))
        })
        .collect();
    assert!(answers[0].1.starts_with("If that address has an account, a link is on its way."), "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "the same answer for every address: {answers:?}");
    let links = links_to(&app, "jane@acme.test", 1);
    assert_eq!(mails_to(&app, "eve@globex.test"), 0, "a disabled user gets no mail");
    assert_eq!(app.query_i64("SELECT count(*) FROM outbox WHERE recipient LIKE 'nobody%'"), 0);

    let link = path_of(&links[0]).to_string();
    let token = link.rsplit('/').next().unwrap();
    let expires: i64 = token.split('.').nth(2).unwrap().parse().unwrap();
    let now = ticketgate::clock::now();
    assert!((now + 3500..=now + 3600).contains(&expires), "valid for one hour: {expires} vs {now}");
    let form = v.get(&link);
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Set a new password"), "{}", form.body);
    for (password, confirm) in [("short", "short"), (NEW_PASSWORD, "something else")] {
        let p = v.post(&link, &[("password", password), ("confirm", confirm)]);
        assert_eq!(p.status, 422, "{password:?}");
    }
    assert_eq!(old.get("/").status, 200, "nothing set yet");
    let set = v.post(&link, &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)]);
    assert_eq!((set.status, set.location()), (303, "/login?done=password_set"));
    assert!(v.get(set.location()).body.contains("Your password has been set."));
    assert!(old.get("/").location().starts_with("/login"), "the other session ended");
    assert_eq!(Visitor::new(&app, "198.51.100.3").log_in("jane@acme.test", PASSWORD).status, 401);
    assert_eq!(Visitor::new(&app, "198.51.100.4").log_in("jane@acme.test", NEW_PASSWORD).status, 303);

    // Once only.
    let again = v.get(&link);
    assert_eq!(again.status, 404);
    assert!(again.body.contains("used already"), "{}", again.body);
    assert_eq!(v.post(&link, &[("password", "another one!"), ("confirm", "another one!")]).status, 404);

    // An hour: the same link made by the server's key expires when its time is past.
    let keys = Keyring::load_or_create(&app.data_dir().join("secret"), &[]).unwrap();
    let jane = id_of(&app, "jane@acme.test");
    let hash: String =
        app.db().query_row("SELECT password_hash FROM users WHERE id = ?1", [jane], |r| r.get(0)).unwrap();
    let made = |expires| {
        let l = PasswordLink { user: UserId(jane), purpose: PasswordPurpose::Reset, expires };
        format!("/password/reset/{}", l.token(&keys, Some(&hash)))
    };
    let now = ticketgate::clock::now();
    assert_eq!(v.get(&made(now + 60)).status, 200, "made like the mailed one, still valid");
    let expired = v.get(&made(now - 1));
    assert_eq!(expired.status, 410);
    assert!(expired.body.contains("This link has expired"));
}

#[test]
fn reset_requests_are_limited_per_address_and_per_client_with_no_hint_of_an_account() {
    let app = portal();
    let mut refusals = Vec::new();
    for email in ["jane@acme.test", "nobody@acme.test"] {
        for i in 0..3 {
            let p = Visitor::new(&app, &format!("203.0.113.{i}")).post("/password/forgot", &[("email", email)]);
            assert_eq!(p.status, 200, "{email} #{i}");
        }
        let p = Visitor::new(&app, "203.0.113.9").post("/password/forgot", &[("email", email)]);
        assert_eq!(p.status, 429, "{email}: the fourth within the window");
        refusals.push(p.text_of("status"));
    }
    assert_eq!(refusals[0], "Too many requests. Try again in 15 minutes.");
    assert_eq!(refusals[0], refusals[1], "known and unknown addresses alike");
    assert_eq!(links_to(&app, "jane@acme.test", 3).len(), 3);
    assert_eq!(mails_to(&app, "jane@acme.test"), 3);

    // Per client: web.max_failed_logins (5) requests in the window, whatever the addresses.
    let mut guesser = Visitor::new(&app, "192.0.2.50");
    for i in 0..5 {
        assert_eq!(guesser.post("/password/forgot", &[("email", &format!("x{i}@acme.test"))]).status, 200);
    }
    let p = guesser.post("/password/forgot", &[("email", "boss@acme.test")]);
    assert_eq!(p.status, 429);
    assert_eq!(mails_to(&app, "boss@acme.test"), 0);
    assert_eq!(Visitor::new(&app, "192.0.2.51").post("/password/forgot", &[("email", "boss@acme.test")]).status, 200);
}

#[test]
fn staff_manage_teams_and_users_and_an_invitation_sets_the_password() {
    let app = portal();
    let mut staff = Visitor::new(&app, "198.51.100.10");
    assert_eq!(staff.log_in("agent@example.test", PASSWORD).status, 303);
    let home = staff.get("/");
    assert!(home.body.contains("href=\"/users\"") && home.body.contains("href=\"/teams\""), "in the menu");
    let csrf = staff.csrf();

    assert_eq!(staff.post("/teams", &[("csrf", "stale"), ("name", "Initech")]).status, 403);
    assert_eq!(staff.post("/teams", &[("csrf", &csrf), ("name", "Initech")]).status, 303);
    assert_eq!(staff.post("/teams", &[("csrf", &csrf), ("name", "initech")]).status, 422, "names are unique");
    assert!(staff.get("/teams").body.contains("Initech"));
    let initech = app.query_i64("SELECT id FROM teams WHERE name = 'Initech'").to_string();

    let form = staff.get("/users/new");
    assert!(form.body.contains("<option value=\"staff\">Support</option>"), "{}", form.body);
    assert!(form.body.contains(&format!("<option value=\"{initech}\">Initech</option>")), "{}", form.body);
    let fields = [("email", "new@initech.test"), ("name", "Newbie"), ("role", "member"), ("team", &initech)];
    let stale: Vec<(&str, &str)> = [("csrf", "stale")].into_iter().chain(fields).collect();
    assert_eq!(staff.post("/users/new", &stale).status, 403);
    assert_eq!(app.query_i64("SELECT count(*) FROM users WHERE email = 'new@initech.test'"), 0);
    let fresh: Vec<(&str, &str)> = [("csrf", csrf.as_str())].into_iter().chain(fields).collect();
    let added = staff.post("/users/new", &fresh);
    let id = id_of(&app, "new@initech.test");
    assert_eq!((added.status, added.location()), (303, &*format!("/users/{id}?done=added")));
    assert_eq!(staff.post("/users/new", &fresh).status, 422, "the address exists already");
    let list = staff.get(&format!("/users?team={initech}"));
    assert!(list.body.contains("new@initech.test") && !list.body.contains("jane@acme.test"), "{}", list.body);

    // The invitation sets the password; the new user logs in with it.
    let invite = path_of(&links_to(&app, "new@initech.test", 1)[0]).to_string();
    assert!(invite.starts_with(&format!("/password/reset/{id}.invite.")), "{invite}");
    let mut newbie = Visitor::new(&app, "198.51.100.11");
    assert!(newbie.get(&invite).body.contains("Set your password"));
    assert_eq!(newbie.post(&invite, &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)]).status, 303);
    assert_eq!(newbie.log_in("new@initech.test", NEW_PASSWORD).status, 303);

    let user = format!("/users/{id}");
    let change = |v: &mut Visitor, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        v.post(&user, &all)
    };
    assert_eq!(change(&mut staff, &[("action", "role"), ("role", "admin")]).status, 303);
    assert_eq!(app.query_i64(&format!("SELECT role = 'admin' FROM users WHERE id = {id}")), 1);
    assert_eq!(change(&mut staff, &[("action", "disable")]).status, 303);
    assert_eq!(app.query_i64(&format!("SELECT disabled FROM users WHERE id = {id}")), 1);
    assert!(newbie.get("/").location().starts_with("/login"), "disabling ends the sessions");
    assert_eq!(newbie.log_in("new@initech.test", NEW_PASSWORD).status, 401);
    let disabled = staff.get(&format!("{user}?done=disabled"));
    assert!(disabled.body.contains("Disabled") && disabled.body.contains("id=\"enable\""));
    assert_eq!(change(&mut staff, &[("action", "invite")]).location(), format!("{user}?done=not_invited"));
    assert_eq!(change(&mut staff, &[("action", "enable")]).status, 303);
    assert_eq!(change(&mut staff, &[("action", "invite")]).location(), format!("{user}?done=invited"));
    assert_eq!(links_to(&app, "new@initech.test", 2).len(), 2, "a second invitation");
    let me = format!("/users/{}", id_of(&app, "agent@example.test"));
    let own = staff.post(&me, &[("csrf", &csrf), ("action", "disable")]);
    assert_eq!(own.status, 400, "nobody disables themselves");
    assert_eq!(app.query_i64("SELECT disabled FROM users WHERE email = 'agent@example.test'"), 0);
}

#[test]
fn a_customer_admin_manages_their_own_team_only_and_members_get_404() {
    let app = portal();
    let mut boss = Visitor::new(&app, "198.51.100.20");
    assert_eq!(boss.log_in("boss@acme.test", PASSWORD).status, 303);
    assert!(boss.get("/").body.contains("href=\"/users\""), "in the admin's menu");
    let csrf = boss.csrf();
    let list = boss.get("/users");
    assert_eq!(list.status, 200);
    assert!(list.body.contains("jane@acme.test") && list.body.contains("boss@acme.test"));
    assert!(!list.body.contains("eve@globex.test") && !list.body.contains("agent@example.test"), "{}", list.body);
    assert_eq!(boss.get("/teams").status, 404);

    // Added to the admin's own team whatever the form says; never as staff.
    let globex = app.query_i64("SELECT id FROM teams WHERE name = 'Globex'").to_string();
    let add = |v: &mut Visitor, email: &str, role: &str| {
        v.post("/users/new", &[("csrf", &csrf), ("email", email), ("role", role), ("team", &globex)])
    };
    assert_eq!(add(&mut boss, "sam@acme.test", "member").status, 303);
    assert_eq!(
        app.query_i64(
            "SELECT t.name = 'Acme' FROM users u JOIN teams t ON t.id = u.team_id WHERE email = 'sam@acme.test'"
        ),
        1
    );
    assert_eq!(links_to(&app, "sam@acme.test", 1).len(), 1, "invited");
    assert_eq!(add(&mut boss, "root@acme.test", "staff").status, 422);
    assert_eq!(app.query_i64("SELECT count(*) FROM users WHERE email = 'root@acme.test'"), 0);

    for other in ["eve@globex.test", "agent@example.test"] {
        let path = format!("/users/{}", id_of(&app, other));
        assert_eq!(boss.get(&path).status, 404, "{other}");
        assert_eq!(boss.post(&path, &[("csrf", &csrf), ("action", "disable")]).status, 404, "{other}");
        assert_eq!(boss.post(&path, &[("csrf", &csrf), ("action", "invite")]).status, 404, "{other}");
    }
    assert_eq!(app.query_i64("SELECT count(*) FROM users WHERE disabled = 1"), 0);
    assert_eq!(mails_to(&app, "eve@globex.test"), 0);
    let own = format!("/users/{}", id_of(&app, "boss@acme.test"));
    assert_eq!(boss.post(&own, &[("csrf", &csrf), ("action", "disable")]).status, 400);

    let jane = format!("/users/{}", id_of(&app, "jane@acme.test"));
    assert_eq!(boss.post(&jane, &[("csrf", &csrf), ("action", "role"), ("role", "staff")]).status, 400);
    assert_eq!(boss.post(&jane, &[("csrf", &csrf), ("action", "role"), ("role", "admin")]).status, 303);
    assert_eq!(boss.post(&jane, &[("csrf", &csrf), ("action", "disable")]).status, 303);
    assert_eq!(app.query_i64("SELECT disabled + (role = 'admin') FROM users WHERE email = 'jane@acme.test'"), 2);

    let mut member = Visitor::new(&app, "198.51.100.21");
    app.run_ok(&["user", "add", "ann@globex.test", "--role", "member", "--team", "Globex", "--password", PASSWORD]);
    assert_eq!(member.log_in("ann@globex.test", PASSWORD).status, 303);
    let member_csrf = member.csrf();
    for path in ["/users", "/users/new", "/teams", &jane, &format!("/users/{}", id_of(&app, "eve@globex.test"))] {
        assert_eq!(member.get(path).status, 404, "a member: {path}");
    }
    let p = member.post("/users/new", &[("csrf", &member_csrf), ("email", "x@globex.test"), ("role", "member")]);
    assert_eq!(p.status, 404);
    assert!(p.body.contains("Log out"), "the 404 page shows the logged-in menu");
    assert_eq!(app.query_i64("SELECT count(*) FROM users WHERE email = 'x@globex.test'"), 0);
}

#[test]
fn a_typed_reply_survives_an_ended_session_and_an_expired_form() {
    let app = portal();
    let mut jane = Visitor::new(&app, "198.51.100.30");
    assert_eq!(jane.log_in("jane@acme.test", PASSWORD).status, 303);
    let csrf = jane.csrf();
    let opened = jane.multipart("/new", &[("csrf", &csrf), ("subject", "Printer"), ("body", "It burns.")], &[]);
    assert_eq!(opened.status, 303);
    // The redirect names what was done (`?done=created`): the ticket is the path.
    let ticket = opened.location().split('?').next().unwrap().to_string();
    let end_sessions = || {
        let db = rusqlite::Connection::open(app.data_dir().join("ticketgate.sqlite")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute("UPDATE sessions SET expires_at = 0", []).unwrap();
    };

    // The session times out while a reply with a file is typed.
    end_sessions();
    let typed = "Here is more: \"quotes\" & <angles>\nand a second line.";
    let reply = format!("{ticket}/reply");
    let login = jane.multipart(&reply, &[("csrf", &csrf), ("body", typed), ("action", "send")], &[("a.pdf", b"%PDF")]);
    assert_eq!(login.status, 401);
    let notice = login.text_of("login-notice");
    assert!(
        notice.contains("the text you typed is kept") && notice.contains("Attached files cannot be kept"),
        "{notice}"
    );
    let wrong = jane.log_in_on(&login, "jane@acme.test", "wrong password");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.field("draft_body").as_deref(), Some(typed), "kept through a wrong password too");
    let back = jane.log_in_on(&wrong, "jane@acme.test", PASSWORD);
    assert_eq!((back.status, back.location()), (303, ticket.as_str()));
    let page = jane.get(&ticket);
    assert!(page.text_of("notice").contains("It has not been sent yet."), "{}", page.body);
    assert_eq!(page.text_of("body"), typed, "back in the reply box");
    assert_eq!(app.query_i64("SELECT count(*) FROM messages"), 1, "not posted");
    assert_eq!(jane.get(&ticket).text_of("body"), "", "shown once");

    // An expired form (a stale token) shows the form again with the text.
    let stale = jane.multipart(&reply, &[("csrf", "stale"), ("body", typed), ("action", "send")], &[]);
    assert_eq!(stale.status, 403);
    assert!(stale.text_of("form-error").contains("This form had expired"), "{}", stale.body);
    assert_eq!(stale.text_of("body"), typed);
    assert_eq!(app.query_i64("SELECT count(*) FROM messages"), 1);

    // A new ticket keeps its subject and text the same way.
    end_sessions();
    let login = jane.multipart("/new", &[("csrf", &csrf), ("subject", "Scanner"), ("body", "Jammed.")], &[]);
    assert_eq!(login.status, 401);
    assert_eq!(jane.log_in_on(&login, "jane@acme.test", PASSWORD).location(), "/new");
    let form = jane.get("/new");
    assert!(form.body.contains("value=\"Scanner\""), "{}", form.body);
    assert_eq!(form.text_of("body"), "Jammed.");
    assert_eq!(app.query_i64("SELECT count(*) FROM tickets"), 1);
}
