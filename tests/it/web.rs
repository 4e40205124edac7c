//! The web portal's handlers, in process (`app(pipeline)` + `oneshot`): the
//! authorization matrix (member, admin, staff, another team's user,
//! anonymous) on every route, login and its limits, CSRF, deep links, the
//! list's filters, the ticket page and every action through it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use tower::ServiceExt;

use crate::common::queued_mail;

use ticketgate::actions::{self, Post};
use ticketgate::app::App;
use ticketgate::code::Refusal;
use ticketgate::config::Config;
use ticketgate::deeplink::Link;
use ticketgate::id::{MessageId, QuarantineId, TicketId, UserId};
use ticketgate::lifecycle::{Role, Status};
use ticketgate::signing::Keyring;
use ticketgate::store::users::{self, NewUser};
use ticketgate::store::{Db, StoreError, sessions};
use ticketgate::store::{outbox, tickets};

const PASSWORD: &str = "correct horse battery";

struct World {
    pipeline: App,
    app: Router,
    _dir: tempfile::TempDir,
    member: UserId,
    admin: UserId,
    staff: UserId,
    /// A member of another team.
    other: UserId,
    /// Acme's ticket, opened by `member`, with a staff answer.
    ticket: TicketId,
    answer: MessageId,
}

fn world_with(f: impl FnOnce(&mut Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    config.store.blobs = dir.path().join("blobs");
    config.support.address = "support@example.test".into();
    config.support.public_url = "http://portal.test".into();
    config.support.sales_contact = "sales@example.test".into();
    config.support.billing_contact = "billing@example.test".into();
    config.web.max_failed_logins = 3;
    f(&mut config);
    let db = Db::open(&dir.path().join("t.sqlite")).unwrap();
    let pipeline = App::new(Arc::new(config), Keyring::new(vec![vec![7; 32]]), db);
    let hash = ticketgate::password::hash(PASSWORD);
    let (member, admin, staff, other) = pipeline
        .db()
        .write(|c| {
            let acme = users::create_team(c, "Acme", 0)?;
            let globex = users::create_team(c, "Globex", 0)?;
            let mk = |email: &str, name: &str, role, team| {
                users::create_user(c, &NewUser { email, name, role, team_id: team, password_hash: Some(&hash) }, 0)
            };
            Ok::<_, StoreError>((
                mk("jane@acme.test", "Jane", Role::Member, Some(acme))?,
                mk("boss@acme.test", "", Role::Admin, Some(acme))?,
                mk("agent@example.test", "Agent", Role::Staff, None)?,
                mk("eve@globex.test", "", Role::Member, Some(globex))?,
            ))
        })
        .unwrap();
    let (ticket, answer) = pipeline
        .db()
        .write(|tx| {
            let env = pipeline.env(1_000);
            let jane = users::by_id(tx, member)?;
            let agent = users::by_id(tx, staff)?;
            let p = actions::open(
                tx,
                &env,
                jane.team_id.unwrap(),
                "Printer on fire",
                "web",
                &post(&jane, "It burns <b>bright</b>"),
            )?;
            let env = pipeline.env(2_000);
            let a =
                actions::reply(tx, &env, p.ticket, &post(&agent, "See https://help.example.test/fire?x=1&y=2 now"))?;
            Ok::<_, StoreError>((a.ticket.id, a.message))
        })
        .unwrap();
    let app = ticketgate::web::app(pipeline.clone());
    World { pipeline, app, _dir: dir, member, admin, staff, other, ticket, answer }
}

fn world() -> World {
    world_with(|_| {})
}

fn post<'a>(author: &'a users::User, body: &'a str) -> Post<'a> {
    Post::web(author, body, &[])
}

/// A logged-in browser: the session cookie and the session's CSRF token.
struct Client {
    cookie: String,
    csrf: String,
}

impl World {
    /// A session made directly in the store (the login form has its own tests).
    fn session(&self, user: UserId) -> Client {
        let token = format!("token-{user}-{}", ticketgate::signing::random_token());
        let csrf = ticketgate::signing::random_token();
        let id = ticketgate::digest::sha256_hex(token.as_bytes());
        let now = ticketgate::clock::now();
        self.pipeline.db().write(|tx| sessions::create(tx, &id, user, &csrf, now, now + 3600)).unwrap();
        Client { cookie: format!("tg_session={token}"), csrf }
    }

    fn ticket_row(&self, id: TicketId) -> tickets::Ticket {
        self.pipeline.db().with(|c| tickets::get(c, id)).unwrap()
    }

    fn messages(&self, id: TicketId) -> Vec<tickets::Message> {
        self.pipeline.db().with(|c| tickets::messages(c, id)).unwrap()
    }

    /// Every mail queued so far, oldest first, as (recipient, kind).
    fn mails(&self) -> Vec<(String, String)> {
        let rows = self.pipeline.db().with(|c| outbox::list(c, 1000)).unwrap();
        rows.into_iter().rev().map(|e| (e.recipient, e.kind.as_str().to_string())).collect()
    }

    async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str, who: Option<&Client>) -> Resp {
        let mut r = Request::get(path);
        if let Some(c) = who {
            r = r.header(header::COOKIE, &c.cookie);
        }
        self.send(r.body(Body::empty()).unwrap()).await
    }

    async fn form(&self, path: &str, who: Option<&Client>, fields: &[(&str, &str)]) -> Resp {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
        let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = who {
            r = r.header(header::COOKIE, &c.cookie);
        }
        self.send(r.body(Body::from(body.join("&"))).unwrap()).await
    }

    async fn multipart(
        &self,
        path: &str,
        who: Option<&Client>,
        fields: &[(&str, &str)],
        files: &[(&str, &[u8])],
    ) -> Resp {
        let (ct, body) = multipart_body(fields, files);
        let mut r = Request::post(path).header(header::CONTENT_TYPE, ct);
        if let Some(c) = who {
            r = r.header(header::COOKIE, &c.cookie);
        }
        self.send(r.body(Body::from(body)).unwrap()).await
    }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn cookies(&self) -> Vec<String> {
        self.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    /// The value of the first `name="csrf"` hidden field.
    fn csrf_field(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
        self.body[at..].split('"').next().unwrap().to_string()
    }

    fn is_login_redirect(&self) -> bool {
        self.status.is_redirection() && self.location().starts_with("/login")
    }
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

pub(crate) fn multipart_body(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XyZzy0123456789boundary";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    for (name, bytes) in files {
        b.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend(*bytes);
        b.extend(b"\r\n");
    }
    b.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

/// A small but real PDF (magic bytes and trailer), which the attachment policy accepts.
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n\
trailer<</Root 1 0 R>>\n%%EOF\n";

#[tokio::test]
async fn every_response_carries_the_security_headers_and_no_script() {
    let w = world();
    let jane = w.session(w.member);
    for (path, who) in [
        ("/login", None),
        ("/contact", None),
        ("/nowhere", None),
        ("/static/portal.css", None),
        ("/", Some(&jane)),
        (&*format!("/t/{}", w.ticket), Some(&jane)),
        ("/new", Some(&jane)),
    ] {
        let r = w.get(path, who).await;
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src") && !csp.contains("unsafe-inline"), "{path}: no script allowed");
        assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert!(!r.body.contains("<script"), "{path} has no script");
        assert!(
            !r.body.contains("onclick=") && !r.body.contains("style=\""),
            "{path} has no inline handlers or styles"
        );
    }
    assert_eq!(w.get("/nowhere", None).await.status, StatusCode::NOT_FOUND);
    // Error pages show the menu of whoever is logged in.
    for (path, status) in
        [("/nowhere", StatusCode::NOT_FOUND), ("/t/999", StatusCode::NOT_FOUND), ("/quarantine", StatusCode::NOT_FOUND)]
    {
        let r = w.get(path, Some(&jane)).await;
        assert_eq!(r.status, status, "{path}");
        assert!(r.body.contains("<span class=\"who\">Jane</span>") && r.body.contains("Log out"), "{path}: {}", r.body);
        assert!(!r.body.contains("href=\"/login\""), "{path}");
    }
    assert!(w.get("/nowhere", None).await.body.contains("href=\"/login\""), "anonymous");
    let r = w.form(&format!("/t/{}/reference", w.ticket), Some(&jane), &[("csrf", "stale")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Form expired") && r.body.contains("Log out"), "{}", r.body);
    let css = w.get("/static/portal.css", None).await;
    assert!(css.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn anonymous_visitors_are_sent_to_login_and_change_nothing() {
    let w = world();
    let t = w.ticket;
    for path in ["/".to_string(), format!("/t/{t}"), "/new".into(), format!("/t/{t}/a/1")] {
        let r = w.get(&path, None).await;
        assert!(r.is_login_redirect(), "{path}: {} {}", r.status, r.location());
    }
    assert_eq!(w.get(&format!("/t/{t}"), None).await.location(), format!("/login?next=%2Ft%2F{t}"));
    let before = w.messages(t).len();
    // A post without a session gets the login form, carrying what was typed.
    let r =
        w.multipart(&format!("/t/{t}/reply"), None, &[("csrf", "x"), ("body", "hi"), ("action", "close")], &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("name=\"draft_body\" value=\"hi\"") && r.body.contains("action=\"/login\""), "{}", r.body);
    let r = w.form(&format!("/t/{t}/reference"), None, &[("csrf", "x"), ("reference", "R")]).await;
    assert!(r.is_login_redirect());
    let r = w.multipart("/new", None, &[("csrf", "x"), ("subject", "s"), ("body", "b")], &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("name=\"draft_subject\" value=\"s\""), "{}", r.body);
    assert_eq!(w.messages(t).len(), before);
    assert_eq!(w.ticket_row(t).status, Status::WaitingForCustomer);
    assert_eq!(w.ticket_row(t).internal_ref, "");
    let contact = w.get("/contact", None).await;
    assert_eq!(contact.status, StatusCode::OK, "the contacts are public");
    assert!(contact.body.contains("sales@example.test") && contact.body.contains("billing@example.test"));
}

/// Logs in through the form; returns the response to the POST.
async fn login_as(w: &World, email: &str, password: &str, next: &str, addr: &str) -> Resp {
    login_with(w, email, password, next, addr, None).await
}

/// [`login_as`] from a browser that may hold a session cookie already.
async fn login_with(w: &World, email: &str, password: &str, next: &str, addr: &str, had: Option<&Client>) -> Resp {
    login_full(w, email, password, next, addr, had, None).await
}

/// [`login_as`] through a proxy at `addr` that sends `X-Forwarded-For: forwarded`.
async fn login_forwarded(w: &World, email: &str, password: &str, addr: &str, forwarded: &str) -> Resp {
    login_full(w, email, password, "/", addr, None, Some(forwarded)).await
}

async fn login_full(
    w: &World,
    email: &str,
    password: &str,
    next: &str,
    addr: &str,
    had: Option<&Client>,
    forwarded: Option<&str>,
) -> Resp {
    let page = w.get("/login", None).await;
    let csrf = page.csrf_field();
    let cookie = page.cookies().into_iter().find(|c| c.starts_with("tg_login=")).expect("login cookie");
    let mut cookie = cookie.split(';').next().unwrap().to_string();
    if let Some(c) = had {
        cookie = format!("{cookie}; {}", c.cookie);
    }
    let body = format!("csrf={}&email={}&password={}&next={}", enc(&csrf), enc(email), enc(password), enc(next));
    let mut req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie);
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut().insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    w.send(req).await
}

fn session_cookie(r: &Resp) -> Client {
    let set = r.cookies().into_iter().find(|c| c.starts_with("tg_session=")).expect("a session cookie");
    Client { cookie: set.split(';').next().unwrap().to_string(), csrf: String::new() }
}

#[tokio::test]
async fn login_sets_a_locked_down_session_cookie_and_honours_local_next_only() {
    let w = world();
    let r = login_as(&w, "  JANE@acme.test ", PASSWORD, "/t/1#m2", "10.0.0.1:5000").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/t/1#m2");
    let set = r.cookies().into_iter().find(|c| c.starts_with("tg_session=")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"), "{set}");
    let jane = session_cookie(&r);
    let list = w.get("/", Some(&jane)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Printer on fire"));
    // Logging in again replaces the session: the old cookie stops working.
    let again = login_with(&w, "jane@acme.test", PASSWORD, "/", "10.0.0.1:5000", Some(&jane)).await;
    let renewed = session_cookie(&again);
    assert_ne!(renewed.cookie, jane.cookie);
    assert!(w.get("/", Some(&jane)).await.is_login_redirect(), "the previous session ended");
    assert_eq!(w.get("/", Some(&renewed)).await.status, StatusCode::OK);

    for bad in ["//evil.test/x", "http://evil.test/", "/\\evil.test", "https:evil.test"] {
        let r = login_as(&w, "jane@acme.test", PASSWORD, bad, "10.0.0.1:5000").await;
        assert_eq!(r.location(), "/", "{bad}");
    }
    let wrong = login_as(&w, "jane@acme.test", "nope", "/", "10.0.0.1:5000").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("wrong") && wrong.cookies().iter().all(|c| !c.starts_with("tg_session=")));
    let unknown = login_as(&w, "nobody@acme.test", PASSWORD, "/", "10.0.0.1:5000").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "an unknown address looks like a wrong password");

    // The login form needs its double-submit token.
    let r = w.form("/login", None, &[("csrf", "forged"), ("email", "jane@acme.test"), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let https = world_with(|c| c.support.public_url = "https://portal.test".into());
    let r = login_as(&https, "jane@acme.test", PASSWORD, "/", "10.0.0.1:5000").await;
    assert!(r.cookies().iter().any(|c| c.starts_with("tg_session=") && c.contains("; Secure")));
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_per_address() {
    let w = world();
    for _ in 0..3 {
        assert_eq!(login_as(&w, "jane@acme.test", "guess", "/", "10.0.0.1:1").await.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_as(&w, "jane@acme.test", PASSWORD, "/", "10.0.0.2:1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the account is locked from any address");
    assert!(r.cookies().iter().all(|c| !c.starts_with("tg_session=")));
    assert!(r.body.contains("Too many failed logins"));
    // 10.0.0.1 is now limited too, for every account.
    let r = login_as(&w, "boss@acme.test", PASSWORD, "/", "10.0.0.1:2").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address and another account are unaffected.
    let r = login_as(&w, "boss@acme.test", PASSWORD, "/", "10.0.0.3:1").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forty_concurrent_guesses_get_at_most_the_limit_checked() {
    let w = &world();
    let max = w.pipeline.config().web.max_failed_logins as usize;
    // From one address, and from forty: the address limit and the account's back-off.
    for spread in [false, true] {
        let email = if spread { "boss@acme.test" } else { "jane@acme.test" };
        let guesses = (0..40).map(|i| {
            let addr = if spread { format!("10.1.0.{i}:1") } else { "10.2.0.1:1".to_string() };
            async move { login_as(w, email, &format!("guess {i}"), "/", &addr).await.status }
        });
        let statuses = futures::future::join_all(guesses).await;
        let checked = statuses.iter().filter(|s| **s != StatusCode::TOO_MANY_REQUESTS).count();
        assert!(checked <= max, "spread {spread}: {checked} of 40 were checked, limit {max}: {statuses:?}");
        let right = login_as(w, email, PASSWORD, "/", "10.3.0.1:1").await.status;
        assert_eq!(right, StatusCode::TOO_MANY_REQUESTS, "spread {spread}: the right one now waits too");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let w = world_with(|c| c.web.trusted_proxies = vec!["127.0.0.1".into(), "10.8.0.0/16".into()]);
    let proxy = "127.0.0.1:40000";
    for i in 0..3 {
        // The attacker's own X-Forwarded-For entries are left of what the proxy appends.
        let forwarded = format!("192.0.2.{i}, 203.0.113.66");
        let r = login_forwarded(&w, &format!("nobody{i}@acme.test"), "guess", proxy, &forwarded).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_forwarded(&w, "boss@acme.test", PASSWORD, proxy, "192.0.2.200, 203.0.113.66").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the guessing client is limited");
    let r = login_forwarded(&w, "jane@acme.test", PASSWORD, proxy, "198.51.100.7, 10.8.3.4").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "everyone else behind the proxy still logs in");
    // From a peer that is no trusted proxy, X-Forwarded-For is ignored.
    for i in 0..3 {
        let r = login_forwarded(&w, &format!("x{i}@acme.test"), "guess", "10.9.9.9:1", &format!("192.0.2.{i}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = login_forwarded(&w, "boss@acme.test", PASSWORD, "10.9.9.9:1", "198.51.100.8").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_new_password_or_disabling_ends_the_sessions() {
    let w = world();
    let jane = w.session(w.member);
    let boss = w.session(w.admin);
    let hash = ticketgate::password::hash("a new password");
    w.pipeline.db().write(|tx| users::set_password(tx, w.member, &hash)).unwrap();
    assert!(w.get("/", Some(&jane)).await.is_login_redirect(), "the password changed");
    assert_eq!(w.get("/", Some(&boss)).await.status, StatusCode::OK, "other users stay logged in");
    w.pipeline.db().write(|tx| users::set_disabled(tx, "boss@acme.test", true)).unwrap();
    assert!(w.get("/", Some(&boss)).await.is_login_redirect(), "disabled");
}

#[tokio::test]
async fn logout_needs_the_token_and_ends_the_session_on_the_server() {
    let w = world();
    let jane = w.session(w.member);
    let r = w.form("/logout", Some(&jane), &[("csrf", "wrong")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(w.get("/", Some(&jane)).await.status, StatusCode::OK);
    let r = w.form("/logout", Some(&jane), &[("csrf", &jane.csrf)]).await;
    assert_eq!(r.location(), "/login?done=logged_out");
    assert!(w.get(r.location(), None).await.body.contains("You have been logged out."));
    assert!(r.cookies().iter().any(|c| c.starts_with("tg_session=;") && c.contains("Max-Age=0")));
    assert!(w.get("/", Some(&jane)).await.is_login_redirect(), "the old cookie is dead");
}

#[tokio::test]
async fn the_authorization_matrix() {
    let w = world();
    let t = w.ticket;
    let (jane, boss, agent, eve) = (w.session(w.member), w.session(w.admin), w.session(w.staff), w.session(w.other));
    // Staff's default list is the queue of tickets waiting for support; this one waits for the customer.
    for (who, name, list) in [(&jane, "member", "/"), (&boss, "admin", "/"), (&agent, "staff", "/?status=any")] {
        let page = w.get(&format!("/t/{t}"), Some(who)).await;
        assert_eq!(page.status, StatusCode::OK, "{name} sees the ticket");
        assert!(page.body.contains("Printer on fire"));
        assert!(w.get(list, Some(who)).await.body.contains(&format!("/t/{t}\"")), "{name} lists it");
    }
    // Another team: every route answers "not found", revealing nothing.
    let page = w.get(&format!("/t/{t}"), Some(&eve)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("Printer"));
    assert_eq!(w.get(&format!("/t/{}", t.0 + 1000), Some(&eve)).await.body, page.body, "same as a missing ticket");
    assert!(!w.get("/", Some(&eve)).await.body.contains("Printer"));
    assert!(!w.get("/?q=printer", Some(&eve)).await.body.contains("Printer"), "search stays in the team");
    let r = w
        .multipart(
            &format!("/t/{t}/reply"),
            Some(&eve),
            &[("csrf", &eve.csrf), ("body", "mine now"), ("action", "close")],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w.form(&format!("/t/{t}/reference"), Some(&eve), &[("csrf", &eve.csrf), ("reference", "X")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(w.messages(t).len(), 2);
    assert_eq!(w.ticket_row(t).status, Status::WaitingForCustomer);
    assert_eq!(w.ticket_row(t).internal_ref, "");
    // Staff see every team and may filter; customers get no team filter.
    let all = w.get("/", Some(&agent)).await;
    assert!(all.body.contains("All teams") && all.body.contains("Globex"));
    assert!(!w.get("/", Some(&jane)).await.body.contains("All teams"));
    let globex = w.pipeline.db().with(|c| Ok(users::team_by_name(c, "Globex")?.unwrap().id)).unwrap();
    assert!(!w.get(&format!("/?team={globex}"), Some(&agent)).await.body.contains("Printer"));
    // A customer cannot widen their view with ?team=.
    assert!(!w.get(&format!("/?team={globex}"), Some(&jane)).await.body.contains("Globex"));
    assert!(w.get(&format!("/?team={globex}"), Some(&jane)).await.body.contains("Printer"));
}

#[tokio::test]
async fn mail_without_evidence_is_shown_as_sender_not_verified() {
    let w = world();
    let t = w.ticket;
    let agent = w.session(w.staff);
    let page = w.get(&format!("/t/{t}"), Some(&agent)).await;
    assert!(!page.body.contains("sender not verified"), "web posts are the logged-in user's");
    // Jane's mail threaded by its References only: posted, but marked.
    let raw = format!(
        "From: jane@acme.test\r\nTo: support@example.test\r\nSubject: Re: Printer\r\nMessage-ID: <nv@acme.test>\r\n\
         References: <{}>\r\n\r\nStill burning.\r\n",
        w.messages(t)[0].message_id.clone().unwrap()
    );
    let out = w.pipeline.ingest(raw.as_bytes(), "support").unwrap();
    assert_eq!(out.ticket(), Some(t), "{out:?}");
    let page = w.get(&format!("/t/{t}"), Some(&agent)).await;
    assert_eq!(page.body.matches("data-testid=\"unverified\"").count(), 1, "only the mailed message is marked");
    assert!(page.body.contains("sender not verified"));
}

#[tokio::test]
async fn forms_without_the_session_token_change_nothing() {
    let w = world();
    let t = w.ticket;
    let jane = w.session(w.member);
    let boss = w.session(w.admin);
    for csrf in ["", "forged", &boss.csrf] {
        let r = w
            .multipart(
                &format!("/t/{t}/reply"),
                Some(&jane),
                &[("csrf", csrf), ("body", "x"), ("action", "close")],
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{csrf:?}");
        let r = w.form(&format!("/t/{t}/reference"), Some(&jane), &[("csrf", csrf), ("reference", "R")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = w.multipart("/new", Some(&jane), &[("csrf", csrf), ("subject", "s"), ("body", "b")], &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(w.messages(t).len(), 2);
    assert_eq!(w.ticket_row(t).status, Status::WaitingForCustomer);
    let tickets: i64 =
        w.pipeline.db().with(|c| Ok(c.query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))?)).unwrap();
    assert_eq!(tickets, 1);
}

#[tokio::test]
async fn the_ticket_page_escapes_bodies_and_links_urls_safely() {
    let w = world();
    let jane = w.session(w.member);
    w.pipeline
        .db()
        .write(|tx| {
            tickets::add_event(
                tx,
                w.ticket,
                ticketgate::code::EventKind::Bounce,
                "mail to boss@acme.test bounced: 550 no such user",
                3_000,
            )?;
            tickets::add_attachment(
                tx,
                &tickets::NewAttachment {
                    ticket_id: w.ticket,
                    message_id: Some(w.answer),
                    filename: "invoice.exe",
                    size: 2048,
                    detected: None,
                    sha256: None,
                    refused: Some(Refusal::ExtensionNotAllowed),
                },
                3_000,
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let page = w.get(&format!("/t/{}", w.ticket), Some(&jane)).await;
    assert!(
        page.body.contains("It burns &#60;b&#62;bright&#60;/b&#62;") || page.body.contains("It burns &lt;b&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>bright"));
    assert!(
        page.body
            .contains("<a href=\"https://help.example.test/fire?x=1&#38;y=2\" rel=\"nofollow noopener noreferrer\">")
    );
    assert!(page.body.contains(&format!("id=\"m{}\"", w.answer)), "messages are anchors for deep links");
    assert!(page.body.contains("invoice.exe") && page.body.contains("This type of file is not accepted."));
    assert!(page.body.contains("550 no such user"), "notes are shown");
    assert!(page.body.contains("Agent") && page.body.contains("Support"), "author and role");
}

#[tokio::test]
async fn send_close_and_reopen_follow_the_life_cycle() {
    let w = world();
    let t = w.ticket;
    let (jane, agent) = (w.session(w.member), w.session(w.staff));
    let path = format!("/t/{t}/reply");
    // Close with text: the text is posted and the ticket closes, in one
    // action that mails each person once.
    let queued = w.mails().len();
    let r = w
        .multipart(&path, Some(&jane), &[("csrf", &jane.csrf), ("body", "Thanks, fixed"), ("action", "close")], &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let msgs = w.messages(t);
    assert_eq!(msgs.last().unwrap().body, "Thanks, fixed");
    assert_eq!(r.location(), format!("/t/{t}?done=sent-closed#m{}", msgs.last().unwrap().id));
    assert_eq!(w.ticket_row(t).status, Status::Closed);
    let closed = |to: &str| (to.to_string(), "closed".to_string());
    assert_eq!(w.mails()[queued..], [closed("boss@acme.test"), closed("agent@example.test")]);
    // Send on a closed ticket reopens it for support.
    let r =
        w.multipart(&path, Some(&jane), &[("csrf", &jane.csrf), ("body", "It is back"), ("action", "send")], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(w.ticket_row(t).status, Status::WaitingForSupport);
    // Staff answer: waiting for the customer.
    w.multipart(&path, Some(&agent), &[("csrf", &agent.csrf), ("body", "On it"), ("action", "send")], &[]).await;
    assert_eq!(w.ticket_row(t).status, Status::WaitingForCustomer);
    // Close without text posts nothing.
    let n = w.messages(t).len();
    let r = w.multipart(&path, Some(&agent), &[("csrf", &agent.csrf), ("body", "  "), ("action", "close")], &[]).await;
    assert_eq!(r.location(), format!("/t/{t}?done=closed"));
    assert_eq!((w.messages(t).len(), w.ticket_row(t).status), (n, Status::Closed));
    // An empty Send is refused with the form kept.
    let r = w.multipart(&path, Some(&jane), &[("csrf", &jane.csrf), ("body", ""), ("action", "send")], &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Write a message"));
    assert_eq!(w.ticket_row(t).status, Status::Closed);
    let m = &w.messages(t)[2];
    assert_eq!((m.via.as_str(), m.author_id), ("web", Some(w.member)));
}

#[tokio::test]
async fn attachments_upload_download_and_refusal() {
    let w = world();
    let t = w.ticket;
    let (jane, boss, eve) = (w.session(w.member), w.session(w.admin), w.session(w.other));
    let path = format!("/t/{t}/reply");
    let r = w
        .multipart(
            &path,
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", "the report"), ("action", "send")],
            &[("../../Report Q3.pdf", PDF)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let files = w.pipeline.db().with(|c| tickets::attachments(c, t)).unwrap();
    assert_eq!(files.len(), 1);
    let a = &files[0];
    assert!(a.refused.is_none() && !a.filename.contains('/'), "{a:?}");
    let page = w.get(&format!("/t/{t}"), Some(&boss)).await;
    assert!(page.body.contains(&format!("/t/{t}/a/{}", a.id)));
    let d = w.get(&format!("/t/{t}/a/{}", a.id), Some(&boss)).await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body.as_bytes(), PDF);
    let cd = d.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\"") && !cd.contains(".."), "{cd}");
    assert_eq!(d.headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(d.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(w.get(&format!("/t/{t}/a/{}", a.id), Some(&eve)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.get(&format!("/t/{}/a/{}", t.0 + 1, a.id), Some(&boss)).await.status, StatusCode::NOT_FOUND);
    // Attach without text: an update; the status stays.
    let before = w.ticket_row(t).status;
    let r = w
        .multipart(
            &path,
            Some(&boss),
            &[("csrf", &boss.csrf), ("body", ""), ("action", "send")],
            &[("notes.txt", b"plain notes\n")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(w.ticket_row(t).status, before);
    assert!(w.messages(t).last().unwrap().body.contains("notes.txt"));
    // A refused file: nothing is posted, the reason is shown and the text kept.
    let n = w.messages(t).len();
    let r = w
        .multipart(
            &path,
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", "keep this draft"), ("action", "send")],
            &[("run.exe", b"MZ\x90\x00")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("run.exe was not accepted") && r.body.contains("keep this draft"), "{}", r.body);
    assert_eq!(w.messages(t).len(), n);
    let r = w
        .multipart(
            &path,
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", "fake"), ("action", "send")],
            &[("fake.pdf", b"not a pdf at all")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "magic bytes must agree");
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_with_413() {
    let w = world_with(|c| c.attachments.max_bytes = 1024);
    let jane = w.session(w.member);
    let big = vec![b'a'; 1024 + 1024 * 1024 + 10];
    let r = w
        .multipart(
            &format!("/t/{}/reply", w.ticket),
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", "x"), ("action", "send")],
            &[("big.txt", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(w.messages(w.ticket).len(), 2);
    let r = w
        .multipart(
            &format!("/t/{}/reply", w.ticket),
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", "x"), ("action", "send")],
            &[("small.txt", &[b'a'; 2000])],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over max_bytes but inside the body limit: refused by policy"
    );
}

#[tokio::test]
async fn the_internal_reference_is_saved_and_searchable() {
    let w = world();
    let t = w.ticket;
    let boss = w.session(w.admin);
    let queued = w.mails().len();
    let r =
        w.form(&format!("/t/{t}/reference"), Some(&boss), &[("csrf", &boss.csrf), ("reference", "  PO-4711 ")]).await;
    assert_eq!(r.location(), format!("/t/{t}?done=reference"));
    assert_eq!(w.ticket_row(t).internal_ref, "PO-4711");
    assert_eq!(w.ticket_row(t).updated_at, 2_000, "a reference change does not move the ticket up the list");
    assert_eq!(w.mails().len(), queued, "and mails nobody");
    assert_eq!(w.ticket_row(t).status, Status::WaitingForCustomer, "an update keeps the status");
    assert!(w.get(&format!("/t/{t}"), Some(&boss)).await.body.contains("value=\"PO-4711\""));
    assert!(w.get("/?q=po-4711", Some(&boss)).await.body.contains("Printer on fire"));
}

#[tokio::test]
async fn the_list_filters_sorts_searches_and_pages() {
    let w = world();
    let jane_user = w.pipeline.db().with(|c| users::by_id(c, w.member)).unwrap();
    w.pipeline
        .db()
        .write(|tx| {
            for i in 0..60 {
                let env = w.pipeline.env(10_000 + i);
                actions::open(
                    tx,
                    &env,
                    jane_user.team_id.unwrap(),
                    &format!("Batch {i:02}"),
                    "web",
                    &post(&jane_user, "lorem"),
                )?;
            }
            let env = w.pipeline.env(20_000);
            let p = actions::open(
                tx,
                &env,
                jane_user.team_id.unwrap(),
                "Aardvark",
                "web",
                &post(&jane_user, "zebra-crossing: NEAR(\"x"),
            )?;
            actions::close(tx, &env, p.ticket, &jane_user)?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let jane = w.session(w.member);
    let first = w.get("/", Some(&jane)).await;
    let pos = |body: &str, s: &str| body.find(s).unwrap_or(usize::MAX);
    assert!(pos(&first.body, "Aardvark") < pos(&first.body, "Batch 59"), "newest update first");
    assert!(first.body.contains("rel=\"next\"") && !first.body.contains("rel=\"prev\""));
    assert!(!first.body.contains("Printer on fire"), "page 1 holds 50");
    let second = w.get("/?page=2", Some(&jane)).await;
    assert!(second.body.contains("Printer on fire") && second.body.contains("rel=\"prev\""));
    let subject = w.get("/?sort=subject", Some(&jane)).await;
    assert!(pos(&subject.body, "Aardvark") < pos(&subject.body, "Batch 00"));
    let closed = w.get("/?status=closed", Some(&jane)).await;
    assert!(closed.body.contains("Aardvark") && !closed.body.contains("Batch"));
    let by_status = w.get("/?sort=status", Some(&jane)).await;
    assert!(
        by_status.body.contains("Batch 59")
            && !by_status.body.contains("Printer")
            && !by_status.body.contains("Aardvark"),
        "waiting for support first"
    );
    let by_status = w.get("/?sort=status&page=2", Some(&jane)).await;
    assert!(pos(&by_status.body, "Batch 00") < pos(&by_status.body, "Printer on fire"));
    assert!(pos(&by_status.body, "Printer on fire") < pos(&by_status.body, "Aardvark"), "closed last");
    let created = w.get("/?sort=created&page=2", Some(&jane)).await;
    assert!(created.body.contains("Printer on fire"), "oldest on the last page");
    let found = w.get("/?q=zebra-crossing%3A+NEAR(%22x", Some(&jane)).await;
    assert_eq!(found.status, StatusCode::OK, "search syntax is quoted, never an error");
    assert!(found.body.contains("Aardvark") && !found.body.contains("Batch"));
    let body_hit = w.get("/?q=burns", Some(&jane)).await;
    assert!(
        body_hit.body.contains("Printer on fire") && !body_hit.body.contains("Batch"),
        "message bodies are searched"
    );
    let none = w.get("/?q=nothingmatches", Some(&jane)).await;
    assert!(none.body.contains("No ticket matches."));
    let next = w.get("/?q=lorem&sort=subject", Some(&jane)).await;
    assert!(
        next.body.contains("/?page=2&amp;q=lorem&amp;sort=subject")
            || next.body.contains("/?page=2&#38;q=lorem&#38;sort=subject"),
        "paging keeps the filters"
    );
}

#[tokio::test]
async fn customers_open_tickets_staff_do_not() {
    let w = world();
    let (boss, agent) = (w.session(w.admin), w.session(w.staff));
    let form = w.get("/new", Some(&boss)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Acme"));
    let r = w
        .multipart(
            "/new",
            Some(&boss),
            &[("csrf", &boss.csrf), ("subject", "VPN down\r\nBcc: x"), ("body", "since noon")],
            &[("log.txt", b"log\n")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id: TicketId = r.location().trim_start_matches("/t/").trim_end_matches("?done=created").parse().unwrap();
    let t = w.ticket_row(id);
    assert_eq!(
        (t.subject.as_str(), t.status, t.opener_id, t.source.as_str()),
        ("VPN down Bcc: x", Status::WaitingForSupport, w.admin, "web")
    );
    assert_eq!(w.pipeline.db().with(|c| tickets::attachments(c, id)).unwrap().len(), 1);
    let r = w.multipart("/new", Some(&boss), &[("csrf", &boss.csrf), ("subject", ""), ("body", "x")], &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(w.get("/new", Some(&agent)).await.status, StatusCode::FORBIDDEN);
    let r = w.multipart("/new", Some(&agent), &[("csrf", &agent.csrf), ("subject", "s"), ("body", "b")], &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deep_links_check_signature_expiry_login_and_team() {
    let w = world();
    let now = ticketgate::clock::now();
    let keys = w.pipeline.keys();
    let link = Link { ticket: w.ticket, message: w.answer, user: w.member, expires: now + 3600 };
    let token = link.token(keys);
    let path = format!("/l/{token}");
    // Anonymous: to the login page, coming back to the link.
    let r = w.get(&path, None).await;
    assert_eq!(r.location(), format!("/login?next={}", enc(&path).replace("%2E", ".")).replace("%2D", "-"));
    // Tampered: a clear page naming nothing of the ticket.
    for bad in [token.replacen(&format!("{}.", w.ticket), &format!("{}.", w.ticket.0 + 1), 1), "garbage".to_string()] {
        for who in [None, Some(&w.session(w.member))] {
            let r = w.get(&format!("/l/{bad}"), who).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
            assert!(!r.body.contains("Printer") && !r.body.contains(&format!("/t/{}", w.ticket)), "{}", r.body);
        }
    }
    // Expired: to the ticket with a note for who may see it, else to the login saying why.
    let expired = format!("/l/{}", Link { expires: now - 1, ..link }.token(keys));
    let r = w.get(&expired, None).await;
    assert_eq!(r.location(), format!("/login?next=%2Ft%2F{}&reason=expired", w.ticket));
    let login = w.get(r.location(), None).await;
    assert!(
        login.body.contains(&format!("This link has expired; log in to see ticket #{}.", w.ticket)),
        "{}",
        login.body
    );
    let jane = w.session(w.member);
    let r = w.get(&expired, Some(&jane)).await;
    assert_eq!(r.location(), format!("/t/{}?note=link_expired", w.ticket));
    assert!(w.get(r.location(), Some(&jane)).await.body.contains("The link you followed had expired"));
    assert_eq!(w.get(&expired, Some(&w.session(w.other))).await.status, StatusCode::NOT_FOUND, "another team");
    // Logged in: to the ticket, scrolled to the response, for anyone who may see it.
    for user in [w.member, w.admin, w.staff] {
        let r = w.get(&path, Some(&w.session(user))).await;
        assert_eq!(r.location(), format!("/t/{}#m{}", w.ticket, w.answer), "user {user}");
    }
    let r = w.get(&path, Some(&w.session(w.other))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.body.contains("Printer"));
}

#[tokio::test]
async fn a_deep_link_survives_the_login_form() {
    let w = world();
    let link = Link { ticket: w.ticket, message: w.answer, user: w.member, expires: ticketgate::clock::now() + 60 };
    let path = format!("/l/{}", link.token(w.pipeline.keys()));
    let to_login = w.get(&path, None).await.location().to_string();
    let next = to_login.trim_start_matches("/login?next=");
    let form = w.get(&to_login, None).await;
    assert!(form.body.contains(&format!("name=\"next\" value=\"{}\"", path)), "{next}");
    assert!(form.body.contains(&format!("Log in to see ticket #{}.", w.ticket)), "the login says why");
    let r = login_as(&w, "jane@acme.test", PASSWORD, &path, "10.0.0.9:1").await;
    assert_eq!(r.location(), path);
    let jane = session_cookie(&r);
    assert_eq!(w.get(&path, Some(&jane)).await.location(), format!("/t/{}#m{}", w.ticket, w.answer));
}

/// A stranger's mail with a PDF: quarantined as `unknown_sender`; returns the entry id and the raw message.
fn quarantine_stranger(w: &World, id: &str) -> (QuarantineId, Vec<u8>) {
    let raw = format!(
        "From: Pat <pat@home.test>\r\nTo: support@example.test\r\nSubject: Toner <low>\r\nMessage-ID: <{id}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         The toner is low.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\n\r\n{}\r\n--b--\r\n",
        String::from_utf8_lossy(PDF)
    )
    .into_bytes();
    match w.pipeline.ingest(&raw, "support").unwrap() {
        ticketgate::pipeline::Outcome::Quarantined { id, .. } => (id, raw),
        o => panic!("expected quarantine, got {o:?}"),
    }
}

#[tokio::test]
async fn the_quarantine_is_staff_only_and_a_release_posts_once() {
    let w = world();
    let t = w.ticket;
    let (q, raw) = quarantine_stranger(&w, "q1@home.test");
    let (gone, _) = quarantine_stranger(&w, "q2@home.test");
    let (jane, boss, eve, agent) = (w.session(w.member), w.session(w.admin), w.session(w.other), w.session(w.staff));
    let gets = ["/quarantine".to_string(), format!("/quarantine/{q}"), format!("/quarantine/{q}/raw")];
    let posts = [format!("/quarantine/{q}/release"), format!("/quarantine/{q}/delete")];
    for who in [&jane, &boss, &eve] {
        for path in &gets {
            let r = w.get(path, Some(who)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert!(!r.body.contains("Toner") && !r.body.contains("pat@home.test"), "{path} reveals nothing");
        }
        for path in &posts {
            let r = w.form(path, Some(who), &[("csrf", &who.csrf), ("target", "ticket"), ("ticket", "1")]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        }
        assert!(!w.get("/", Some(who)).await.body.contains("/quarantine"), "no menu entry for customers");
    }
    for path in gets.iter().chain(&posts) {
        let r = if path.ends_with("release") || path.ends_with("delete") {
            w.form(path, None, &[]).await
        } else {
            w.get(path, None).await
        };
        assert!(r.is_login_redirect() || r.status == StatusCode::FORBIDDEN, "{path}: {}", r.status);
    }

    let list = w.get("/quarantine", Some(&agent)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("unknown_sender") && list.body.contains("pat@home.test"), "{}", list.body);
    assert!(list.body.contains("Toner &#60;low&#62;") || list.body.contains("Toner &lt;low&gt;"), "escaped");
    assert!(w.get("/", Some(&agent)).await.body.contains("href=\"/quarantine\""), "staff have a menu entry");
    let page = w.get(&format!("/quarantine/{q}"), Some(&agent)).await;
    assert_eq!(page.status, StatusCode::OK);
    for r in [&list, &page] {
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !r.body.contains("<script") && !r.body.contains("style=\""));
    }
    for shown in ["The toner is low.", "scan.pdf", "accepted", "q1@home.test", "not sent: pat@home.test", ".eml"] {
        assert!(page.body.contains(shown), "the entry page shows {shown:?}: {}", page.body);
    }
    let eml = w.get(&format!("/quarantine/{q}/raw"), Some(&agent)).await;
    assert_eq!(eml.headers[header::CONTENT_TYPE], "message/rfc822");
    assert!(eml.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    assert_eq!(eml.body.as_bytes(), raw.as_slice(), "the raw message, byte for byte");

    let path = format!("/quarantine/{q}/release");
    let ticket = t.to_string();
    let fields = |csrf| {
        [("csrf", csrf), ("target", "ticket"), ("ticket", &*ticket), ("as_user", "jane@acme.test"), ("alias", "on")]
    };
    assert_eq!(w.form(&path, Some(&agent), &fields("forged")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(w.messages(t).len(), 2, "nothing posted without the token");
    let done = w.form(&path, Some(&agent), &fields(&agent.csrf)).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, &*format!("/t/{t}")));
    assert_eq!(w.messages(t).len(), 3);
    assert_eq!(w.messages(t)[2].author_id, Some(w.member), "as from Jane");
    let aliases = w.pipeline.db().with(|c| users::aliases(c, w.member)).unwrap();
    assert_eq!(aliases, vec!["pat@home.test".to_string()], "the address became Jane's alias");
    let again = w.form(&path, Some(&agent), &fields(&agent.csrf)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "released twice: {}", again.body);
    assert_eq!(w.messages(t).len(), 3, "posted once");
    let page = w.get(&format!("/quarantine/{q}"), Some(&agent)).await;
    assert!(page.body.contains("by agent@example.test") && !page.body.contains("id=\"release\""), "{}", page.body);
    assert!(w.get(&format!("/t/{t}"), Some(&jane)).await.body.contains("The toner is low."));

    let r = w.form(&format!("/quarantine/{gone}/delete"), Some(&agent), &[("csrf", "")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w.form(&format!("/quarantine/{gone}/delete"), Some(&agent), &[("csrf", &agent.csrf)]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/quarantine"));
    let list = w.get("/quarantine", Some(&agent)).await;
    assert!(!list.body.contains(&format!("/quarantine/{gone}\"")) && list.body.contains("Nothing is waiting"));
}

#[tokio::test]
async fn an_alias_counts_only_after_its_signed_link_is_confirmed_by_its_user() {
    let w = world();
    let (jane, boss, agent) = (w.session(w.member), w.session(w.admin), w.session(w.staff));
    let home = |id: &str| {
        format!(
            "From: jane@home.test\r\nTo: support@example.test\r\nSubject: From home\r\nMessage-ID: <{id}>\r\n\r\nHi\r\n"
        )
    };
    let asked = w.form("/account/aliases", Some(&jane), &[("csrf", &jane.csrf), ("alias", "Jane@Home.test")]).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.body.contains("A confirmation link was mailed to jane@home.test"), "{}", asked.body);
    let mailed: Vec<u8> = w
        .pipeline
        .db()
        .with(|c| {
            Ok(queued_mail(c, "SELECT id FROM outbox WHERE kind = 'notice' AND recipient = 'jane@home.test'", []))
        })
        .unwrap();
    let mailed = String::from_utf8_lossy(&mailed).replace("=\r\n", "");
    let at = mailed.find("http://portal.test/alias/").expect("the link is in the mail") + "http://portal.test".len();
    let path: String = mailed[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || "/.".contains(*c)).collect();
    let out = w.pipeline.ingest(home("h1@home.test").as_bytes(), "support").unwrap();
    assert_eq!(out.quarantine_reason(), Some("unknown_sender"), "not before it is confirmed");

    assert!(w.get(&path, None).await.is_login_redirect(), "the link asks for a login first");
    assert_eq!(w.get(&path, Some(&boss)).await.status, StatusCode::NOT_FOUND, "only for the user who asked");
    let confirm = w.get(&path, Some(&jane)).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("jane@home.test") && confirm.body.contains("id=\"confirm\""));
    let aliases = || w.pipeline.db().with(|c| users::aliases(c, w.member)).unwrap();
    assert!(aliases().is_empty(), "opening the link alone changes nothing");

    let last = path.chars().last().unwrap();
    let tampered = format!("{}{}", &path[..path.len() - 1], if last == 'a' { 'b' } else { 'a' });
    let expired = ticketgate::deeplink::AliasLink { user: w.member, alias: "jane@home.test".into(), expires: 1 };
    let expired = format!("/alias/{}", expired.token(w.pipeline.keys()));
    let forged_user = path.replacen(&format!("/alias/{}.", w.member), &format!("/alias/{}.", w.admin), 1);
    for (bad, status) in
        [(&tampered, StatusCode::NOT_FOUND), (&expired, StatusCode::GONE), (&forged_user, StatusCode::NOT_FOUND)]
    {
        assert_eq!(w.get(bad, Some(&jane)).await.status, status, "{bad}");
        assert_eq!(w.form(bad, Some(&jane), &[("csrf", &jane.csrf)]).await.status, status, "{bad}");
    }
    assert_eq!(w.form(&path, Some(&jane), &[("csrf", "forged")]).await.status, StatusCode::FORBIDDEN);
    assert!(aliases().is_empty(), "refused links add nothing");

    let done = w.form(&path, Some(&jane), &[("csrf", &jane.csrf)]).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, "/account"));
    assert_eq!(aliases(), vec!["jane@home.test".to_string()]);
    assert!(w.get("/account", Some(&jane)).await.body.contains("jane@home.test"));
    let out = w.pipeline.ingest(home("h2@home.test").as_bytes(), "support").unwrap();
    let ticket = out.ticket().expect("mail from the alias is Jane's");
    assert_eq!(w.ticket_row(ticket).opener_id, w.member);

    // Staff manage anyone's aliases at once; customers see nothing of it.
    assert_eq!(w.get("/aliases", Some(&jane)).await.status, StatusCode::NOT_FOUND);
    let r = w
        .form("/aliases", Some(&jane), &[("csrf", &jane.csrf), ("email", "boss@acme.test"), ("alias", "b@x.test")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = w
        .form("/aliases", Some(&agent), &[("csrf", &agent.csrf), ("email", "boss@acme.test"), ("alias", "b@x.test")])
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/aliases"));
    let list = w.get("/aliases", Some(&agent)).await;
    assert!(list.body.contains("b@x.test") && list.body.contains("jane@home.test"), "{}", list.body);
    let r = w
        .form(
            "/aliases",
            Some(&agent),
            &[("csrf", &agent.csrf), ("email", "boss@acme.test"), ("alias", "jane@home.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "another user's alias is refused");
    let r = w
        .form(
            "/aliases/remove",
            Some(&agent),
            &[("csrf", &agent.csrf), ("email", "boss@acme.test"), ("alias", "b@x.test")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(w.pipeline.db().with(|c| users::aliases(c, w.admin)).unwrap().is_empty());
}

#[tokio::test]
async fn posts_take_at_most_20_files_and_bounded_text_and_keep_what_was_typed() {
    let w = world();
    let t = w.ticket;
    let jane = w.session(w.member);
    let names: Vec<String> = (0..21).map(|i| format!("f{i}.pdf")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), PDF)).collect();
    let path = format!("/t/{t}/reply");
    let fields = [("csrf", jane.csrf.as_str()), ("body", "Typed with care"), ("action", "send")];
    let r = w.multipart(&path, Some(&jane), &fields, &files).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("A post takes at most 20 files; 21 were attached."), "{}", r.body);
    assert!(r.body.contains(">Typed with care</textarea>"), "the typed text is kept");
    let r = w.multipart("/new", Some(&jane), &[("csrf", &jane.csrf), ("subject", "s"), ("body", "b")], &files).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("at most 20 files"), "{}", r.body);
    assert_eq!(w.messages(t).len(), 2, "nothing was posted");

    let long = "x".repeat(ticketgate::web::MAX_POST_CHARS + 1);
    let r = w.multipart(&path, Some(&jane), &[("csrf", &jane.csrf), ("body", &long), ("action", "send")], &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("The message is longer than 100000 characters"), "{}", &r.body[..200]);
    assert!(r.body.contains(&long), "the typed text is kept");
    assert_eq!(w.messages(t).len(), 2);

    let r = w.multipart(&path, Some(&jane), &fields, &files[..20]).await;
    assert!(r.status.is_redirection(), "20 files are taken: {}", r.status);
    assert_eq!(w.messages(t).len(), 3);
}

#[tokio::test]
async fn search_finds_substrings_in_any_script_and_attachment_names_with_count_and_snippet() {
    let w = world();
    let jane_user = w.pipeline.db().with(|c| users::by_id(c, w.member)).unwrap();
    let invoice = w
        .pipeline
        .db()
        .write(|tx| {
            let env = w.pipeline.env(5_000);
            let body = "先月の請求書がまだ届いていません。Printer <script>alert(1)</script>";
            let p = actions::open(tx, &env, jane_user.team_id.unwrap(), "請求書の件", "web", &post(&jane_user, body))?;
            Ok::<_, StoreError>(p.ticket)
        })
        .unwrap();
    let (jane, eve) = (w.session(w.member), w.session(w.other));
    let r = w
        .multipart(
            &format!("/t/{}/reply", w.ticket),
            Some(&jane),
            &[("csrf", &jane.csrf), ("body", ""), ("action", "send")],
            &[("Lieferschein_4711.pdf", PDF)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // A Japanese word inside a sentence without spaces.
    let found = w.get(&format!("/?q={}", enc("まだ届い")), Some(&jane)).await;
    assert!(
        found.body.contains(&format!("/t/{}", invoice.id)) && !found.body.contains("Printer on fire"),
        "{}",
        found.body
    );
    assert!(found.body.contains("1 ticket matches"), "{}", found.body);
    assert!(found.body.contains("<mark>まだ届い</mark>"), "{}", found.body);
    assert!(!found.body.contains("<script>alert"), "stored HTML is never markup");
    // An attachment's name, part of it, in another case.
    let found = w.get("/?q=lieferSCHEIN_47", Some(&jane)).await;
    assert!(found.body.contains("Printer on fire") && !found.body.contains("請求書の件"), "{}", found.body);
    assert!(found.body.contains("Attachment:") && found.body.contains("<mark>Lieferschein_47</mark>11.pdf"));
    // Stored HTML around the match is escaped, the <mark> is ours.
    let found = w.get("/?q=bright", Some(&jane)).await;
    assert!(
        found.body.contains("&#60;b&#62;<mark>bright</mark>&#60;/b&#62;")
            || found.body.contains("&lt;b&gt;<mark>bright</mark>&lt;/b&gt;"),
        "{}",
        found.body
    );
    assert!(!found.body.contains("<b>bright"));
    // The count is of tickets, within the viewer's team.
    let both = w.get("/?q=PRINT", Some(&jane)).await;
    assert!(both.body.contains("2 tickets match"), "{}", both.body);
    let none = w.get(&format!("/?q={}", enc("まだ届い")), Some(&eve)).await;
    assert!(none.body.contains("0 tickets match") && none.body.contains("No ticket matches."), "{}", none.body);
    // Two characters: whole words only, and the page says how to find more.
    let short = w.get(&format!("/?q={}", enc("請求")), Some(&jane)).await;
    assert!(short.body.contains("0 tickets match") && short.body.contains("type at least 3 characters"));
    let mixed = w.get(&format!("/?q={}", enc("請求書 PC")), Some(&jane)).await;
    assert!(mixed.body.contains("1 ticket matches") && mixed.body.contains("Left out, shorter than 3 characters: PC."));
    assert!(!w.get("/", Some(&jane)).await.body.contains("tickets match"), "no count without a search");
}

mod queue;
