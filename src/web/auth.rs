//! Logging in and out, sessions, CSRF tokens and the failed-login limit.
//!
//! Failed logins: every attempt is counted, under `addr:<client>` and
//! `user:<email>`, in the same write transaction that decides whether it may
//! be checked, before argon2 runs (a success takes its count back), so N
//! concurrent guesses get at most the limit checked. Per client address the
//! limit is strict (`web.max_failed_logins` in the window). Per account it
//! is a back-off, not a lock: past the limit, the account's next attempt
//! waits 30 s after the previous one, doubling with each failure up to the
//! window, so guessing from many addresses stays slow while no single client
//! can lock every user out. The client address is the peer's, or behind a
//! `web.trusted_proxies` proxy the one [`crate::proxy::client`] finds.
//!
//! The session cookie holds a random token; the database keeps only its
//! SHA-256 ([`crate::store::sessions`]). Each session carries its own CSRF
//! token, which every form sends back and every POST handler checks with
//! [`Viewer::check_csrf`]. The login form, which comes before any session,
//! uses a double-submit token in its own short cookie.
//!
//! A reply or new ticket posted after the session ran out is not lost: the
//! login form comes back carrying the typed text in hidden fields, and a
//! successful login keeps it for the new session ([`sessions::save_draft`])
//! until the ticket or new-ticket page puts it back in the box, unsent.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::view::{Done, Draft, Login, Nav};
use super::{WebError, blocking, html};
use crate::app::App;
use crate::clock;
use crate::config::Config;
use crate::proxy::Cidr;
use crate::store::users::{self, User};
use crate::store::{Db, sessions};

const SESSION_COOKIE: &str = "tg_session";
const LOGIN_COOKIE: &str = "tg_login";

/// The logged-in user of a request, with their session's CSRF token.
pub struct Viewer {
    pub user: User,
    pub csrf: String,
    /// The session's id (the cookie's SHA-256).
    pub(super) session: String,
    /// The request's path when the viewer was taken from a request (empty
    /// from [`viewer`]), for the menu's current-page mark.
    path: String,
}

impl Viewer {
    pub fn nav(&self) -> Nav {
        Nav::of(&self.user, &self.csrf).at(&self.path)
    }

    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), WebError> {
        if same(sent.as_bytes(), self.csrf.as_bytes()) { Ok(()) } else { Err(WebError::Csrf) }
    }
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    CookieJar::from_headers(headers).get(name).map(|c| c.value().to_string())
}

/// The session user of a request, if any.
pub async fn viewer(pipeline: &App, headers: &HeaderMap) -> Result<Option<Viewer>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else { return Ok(None) };
    let session = crate::digest::sha256_hex(token.as_bytes());
    let db = pipeline.db().clone();
    blocking(move || {
        db.with(|c| {
            let Some(s) = sessions::get(c, &session, clock::now())? else { return Ok(None) };
            let user = users::by_id(c, s.user_id)?;
            Ok((!user.disabled).then_some(Viewer { user, csrf: s.csrf, session, path: String::new() }))
        })
        .map_err(WebError::from)
    })
    .await
}

/// Pages behind the login: a visitor without a session is sent to the login
/// page, and comes back to the page they asked for (GET) afterwards.
impl FromRequestParts<App> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, pipeline: &App) -> Result<Self, Self::Rejection> {
        match viewer(pipeline, &parts.headers).await {
            Ok(Some(v)) => Ok(Viewer { path: parts.uri.path().to_string(), ..v }),
            Ok(None) => {
                let next = if parts.method == Method::GET {
                    parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
                } else {
                    "/"
                };
                Err(to_login(next))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A redirect to the login page that comes back to `next`.
pub fn to_login(next: &str) -> Response {
    let target = if next == "/" { "/login".to_string() } else { format!("/login?next={}", encode(next)) };
    Redirect::to(&target).into_response()
}

/// Everything but the RFC 3986 unreserved characters.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

/// `next` when it is a path on this site: one leading `/`, no `//host`, no
/// backslashes (browsers read `/\host` as `//host`), no control characters.
pub fn local_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

/// The client address of the request (`unknown` when the server was not told the peer).
pub struct ClientAddr(pub String);

impl FromRequestParts<App> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, pipeline: &App) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(ClientAddr("unknown".into()));
        };
        let trusted: Vec<Cidr> = pipeline.config().web.trusted_proxies.iter().filter_map(|p| Cidr::parse(p)).collect();
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        Ok(ClientAddr(crate::proxy::client(peer.ip(), &forwarded, &trusted).to_string()))
    }
}

pub(super) fn set_cookie(config: &Config, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path(path)
        .max_age(cookie::time::Duration::seconds(max_age))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(config.secure_cookies())
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    /// What just happened: a word of [`Done`].
    done: Option<String>,
    /// Why the visitor was sent here: `expired` (a deep link that had expired).
    reason: Option<String>,
}

/// GET /login: the form, with a fresh double-submit token.
pub async fn login_page(
    State(pipeline): State<App>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, WebError> {
    let next = q.next.as_deref().and_then(local_next).unwrap_or("/").to_string();
    if viewer(&pipeline, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let notice = match q.done.as_deref().and_then(Done::of) {
        Some(done) => Some(done.message(None)),
        None => context(&next, q.reason.as_deref() == Some("expired")),
    };
    let form = LoginPage { next, notice, ..LoginPage::default() };
    Ok(login_form(&pipeline, StatusCode::OK, form))
}

/// The ticket a `next` path leads to: `/t/N…`, or a deep link `/l/N.…`.
fn ticket_of(next: &str) -> Option<i64> {
    let rest = next.strip_prefix("/t/").or_else(|| next.strip_prefix("/l/"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

/// The sentence that says where a login leads, when it leads to a ticket.
fn context(next: &str, expired: bool) -> Option<String> {
    let n = ticket_of(next)?;
    Some(if expired {
        format!("This link has expired; log in to see ticket #{n}.")
    } else {
        format!("Log in to see ticket #{n}.")
    })
}

/// What the login form shows besides its fields.
#[derive(Default)]
struct LoginPage {
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
    draft: Draft,
}

fn login_form(pipeline: &App, status: StatusCode, p: LoginPage) -> Response {
    let csrf = crate::signing::random_token();
    let cookie = set_cookie(pipeline.config(), LOGIN_COOKIE, &csrf, "/login", 3600);
    let page = Login {
        nav: Nav::anonymous().at("/login"),
        csrf,
        next: p.next,
        email: p.email,
        error: p.error,
        notice: p.notice,
        draft: p.draft,
    };
    let mut res = html(status, &page);
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

/// The login form for a post that came without a live session: it carries
/// the typed text to `next` (`/t/N` or `/new`) through the login.
pub fn login_keeping(pipeline: &App, next: &str, draft: Draft, files: usize) -> Response {
    let mut notice = "Your session has ended, so nothing was sent. Log in again: the text you typed is kept \
                      and will be back in the form, not sent."
        .to_string();
    if files > 0 {
        notice.push_str(" Attached files cannot be kept: attach them again.");
    }
    let form = LoginPage { next: next.to_string(), notice: Some(notice), draft, ..LoginPage::default() };
    login_form(pipeline, StatusCode::UNAUTHORIZED, form)
}

/// How long to wait, in words: seconds up to a minute and a half, then minutes.
pub fn wait_text(seconds: i64) -> String {
    if seconds > 90 { format!("{} minutes", (seconds + 59) / 60) } else { format!("{seconds} seconds") }
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    draft_subject: String,
    #[serde(default)]
    draft_body: String,
}

/// Whether a draft may be kept for `path`: the pages that show one.
fn takes_drafts(path: &str) -> bool {
    path == "/new" || path.strip_prefix("/t/").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What a login attempt came to.
enum Outcome {
    LoggedIn {
        token: String,
    },
    Wrong,
    /// Refused unchecked; try again in this many seconds.
    Limited(i64),
}

/// POST /login.
pub async fn login(
    State(pipeline): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(form.csrf.as_bytes(), expected.as_bytes()) {
        return Err(WebError::Csrf);
    }
    let next = local_next(&form.next).unwrap_or("/").to_string();
    let draft = Draft { subject: form.draft_subject.clone(), body: form.draft_body.clone() };
    let email = crate::address::normalize(&form.email);
    let config = pipeline.shared_config();
    let db = pipeline.db().clone();
    let (user_key, addr_key) = (format!("user:{email}"), format!("addr:{addr}"));
    // A session this browser already had is ended by a new login (no session fixation).
    let previous = cookie(&headers, SESSION_COOKIE).map(|t| crate::digest::sha256_hex(t.as_bytes()));
    let outcome =
        blocking(move || attempt(&db, &config, &email, &form.password, &user_key, &addr_key, previous)).await?;
    let email = crate::address::normalize(&form.email);
    match outcome {
        Outcome::LoggedIn { token } => {
            if !draft.is_empty() && takes_drafts(&next) {
                let (db, session, path) =
                    (pipeline.db().clone(), crate::digest::sha256_hex(token.as_bytes()), next.clone());
                blocking(move || {
                    Ok(db.write(|tx| {
                        sessions::save_draft(tx, &session, &path, &draft.subject, &draft.body, clock::now())
                    })?)
                })
                .await?;
            }
            let ttl = ttl_seconds(pipeline.config());
            let mut res = Redirect::to(&next).into_response();
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(pipeline.config(), SESSION_COOKIE, &token, "/", ttl));
            h.append(header::SET_COOKIE, set_cookie(pipeline.config(), LOGIN_COOKIE, "", "/login", 0));
            Ok(res)
        }
        Outcome::Wrong => {
            let error = Some("The email address or the password is wrong.".into());
            Ok(login_form(&pipeline, StatusCode::UNAUTHORIZED, LoginPage { next, email, error, draft, notice: None }))
        }
        Outcome::Limited(seconds) => {
            let error = Some(format!("Too many failed logins. Please wait {} and try again.", wait_text(seconds)));
            Ok(login_form(
                &pipeline,
                StatusCode::TOO_MANY_REQUESTS,
                LoginPage { next, email, error, draft, notice: None },
            ))
        }
    }
}

pub(super) fn ttl_seconds(config: &Config) -> i64 {
    i64::try_from(config.web.session_ttl_hours.saturating_mul(3600)).unwrap_or(i64::MAX / 2)
}

/// Counts the attempt and decides whether it may be checked (one write
/// transaction), then checks the password (argon2, on this blocking thread);
/// a success takes the count back and opens a session.
fn attempt(
    db: &Db,
    config: &Config,
    email: &str,
    password: &str,
    user_key: &str,
    addr_key: &str,
    previous: Option<String>,
) -> Result<Outcome, WebError> {
    let now = clock::now();
    let window = i64::try_from(config.web.login_window_minutes.saturating_mul(60)).unwrap_or(i64::MAX / 2);
    let since = now.saturating_sub(window);
    let max = config.web.max_failed_logins;
    let admitted = db.write(|tx| {
        if let Some(wait) = wait_seconds(tx, user_key, addr_key, since, now, window, max)? {
            return Ok(Err(wait));
        }
        let counted = [sessions::add_failure(tx, user_key, now)?, sessions::add_failure(tx, addr_key, now)?];
        let user = users::by_email(tx, email)?.filter(|u| !u.disabled);
        let hash = match &user {
            Some(u) => users::password_hash(tx, u.id)?,
            None => None,
        };
        Ok::<_, WebError>(Ok((counted, user.zip(hash))))
    })?;
    let (counted, user) = match admitted {
        Ok(a) => a,
        Err(wait) => return Ok(Outcome::Limited(wait)),
    };
    // An unknown address costs the same argon2 run as a wrong password.
    let ok = match &user {
        Some((_, hash)) => crate::password::verify(hash, password),
        None => {
            crate::password::verify(dummy_hash(), password);
            false
        }
    };
    let (Some((u, _)), true) = (&user, ok) else { return Ok(Outcome::Wrong) };
    let token = crate::signing::random_token();
    db.write(|tx| {
        sessions::purge(tx, now, since)?;
        sessions::forget_failures(tx, &counted)?;
        sessions::clear_failures(tx, user_key)?;
        if let Some(previous) = &previous {
            sessions::delete(tx, previous)?;
        }
        let id = crate::digest::sha256_hex(token.as_bytes());
        let csrf = crate::signing::random_token();
        sessions::create(tx, &id, u.id, &csrf, now, now.saturating_add(ttl_seconds(config)))?;
        Ok::<_, WebError>(())
    })?;
    Ok(Outcome::LoggedIn { token })
}

/// How long an attempt must wait, or `None` when it may be checked now:
/// the client address is limited strictly, the account backs off.
fn wait_seconds(
    c: &rusqlite::Connection,
    user_key: &str,
    addr_key: &str,
    since: i64,
    now: i64,
    window: i64,
    max: u32,
) -> Result<Option<i64>, crate::store::StoreError> {
    if let Some(wait) = sessions::limited(c, addr_key, now, window, max)? {
        return Ok(Some(wait));
    }
    let failures = sessions::failures_since(c, user_key, since)?;
    if failures < max {
        return Ok(None);
    }
    let backoff = 30i64.saturating_mul(1 << (failures - max).min(20)).min(window);
    let last = sessions::latest_failure(c, user_key)?.unwrap_or(0);
    let wait = last.saturating_add(backoff) - now;
    Ok((wait > 0).then_some(wait))
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::password::hash("no such user"))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// POST /logout: ends the session on the server, then forgets the cookie.
pub async fn logout(
    State(pipeline): State<App>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let db = pipeline.db().clone();
    let session = viewer.session.clone();
    blocking(move || Ok(db.write(|tx| sessions::delete(tx, &session))?)).await?;
    let mut res = Redirect::to(&format!("/login?done={}", Done::LoggedOut)).into_response();
    res.headers_mut().append(header::SET_COOKIE, set_cookie(pipeline.config(), SESSION_COOKIE, "", "/", 0));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_local_path() {
        assert_eq!(local_next("/t/5"), Some("/t/5"));
        assert_eq!(local_next("/l/1.2.3.4.abc?x=1"), Some("/l/1.2.3.4.abc?x=1"));
        for bad in
            ["//evil.test/", "http://evil.test/", "https:evil", "/\\evil.test", "\\\\evil", "evil", "", "/a\nb", "/ x"]
        {
            assert_eq!(local_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_login_page_says_which_ticket_it_leads_to() {
        assert_eq!(context("/t/42", false).as_deref(), Some("Log in to see ticket #42."));
        assert_eq!(context("/t/42#m7", true).as_deref(), Some("This link has expired; log in to see ticket #42."));
        assert_eq!(context("/l/42.7.3.1000.abc", false).as_deref(), Some("Log in to see ticket #42."));
        for other in ["/", "/new", "/t/", "/t/x", "/users"] {
            assert_eq!(context(other, false), None, "{other}");
        }
        assert!(takes_drafts("/t/5") && takes_drafts("/new"));
        assert!(!takes_drafts("/t/5/reply") && !takes_drafts("/t/") && !takes_drafts("/users"));
        assert_eq!(wait_text(90), "90 seconds");
        assert_eq!(wait_text(91), "2 minutes");
    }

    #[test]
    fn addresses_are_limited_strictly_and_accounts_back_off() {
        let (db, _dir) = crate::store::testing::db();
        let (window, max) = (900, 3);
        let wait = |now: i64, addr: &str| {
            db.with(|c| wait_seconds(c, "user:jane@acme.test", addr, now - window, now, window, max)).unwrap()
        };
        db.with(|c| {
            for (at, addr) in [(1000, "addr:a"), (1001, "addr:b"), (1002, "addr:c")] {
                sessions::add_failure(c, "user:jane@acme.test", at)?;
                sessions::add_failure(c, addr, at)?;
            }
            sessions::add_failure(c, "addr:a", 1003)?;
            sessions::add_failure(c, "addr:a", 1004)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(wait(1005, "addr:a"), Some(895), "the address is limited for the rest of its window");
        assert_eq!(wait(1010, "addr:d"), Some(22), "the account waits 30 s after its last failure");
        assert_eq!(wait(1032, "addr:d"), None, "and no longer");
        db.with(|c| sessions::add_failure(c, "user:jane@acme.test", 1032).map(|_| ())).unwrap();
        assert_eq!(wait(1062, "addr:d"), Some(30), "each further failure doubles the wait");
        assert_eq!(wait(1092, "addr:d"), None);
        assert_eq!(wait(1005 + window, "addr:a"), None, "old failures leave the window");
    }

    #[test]
    fn cookies_and_encoding() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; tg_session=abc; b=2"));
        assert_eq!(cookie(&h, "tg_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "tg_login"), None);
        assert_eq!(encode("/t/5?q=a b&x=é"), "%2Ft%2F5%3Fq%3Da%20b%26x%3D%C3%A9");
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
