//! Failed-login limits through the real binary and a real socket: behind a trusted reverse
//! proxy every client has its own limit, and forty guesses fired at once get at most the limit
//! checked (the count is taken in the same transaction that admits an attempt).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};

use crate::common::{App, AppConfig};

const PASSWORD: &str = "correct horse battery";

/// A portal with Acme's member jane@example.test and admin boss@example.test.
fn portal(config: AppConfig) -> App {
    let app = App::start(config);
    app.run_ok(&["team", "add", "Acme"]);
    for (email, role) in [("jane@example.test", "member"), ("boss@example.test", "admin")] {
        app.run_ok(&["user", "add", email, "--role", role, "--team", "Acme", "--password", PASSWORD]);
    }
    app
}

/// One HTTP/1.1 request on a fresh connection; the status and the whole response.
pub(crate) fn http(app: &App, request: &str) -> (u16, String) {
    let url = app.web_url().expect("web is on");
    let mut s = TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// The login form's double-submit token and its cookie.
fn login_form(app: &App) -> (String, String) {
    let (_, page) = http(app, "GET /login HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n");
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("csrf field");
    let cookie = page
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: tg_login=").or_else(|| l.strip_prefix("Set-Cookie: tg_login=")))
        .and_then(|v| v.split(';').next())
        .expect("login cookie");
    (csrf.to_string(), format!("tg_login={cookie}"))
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// POST /login; `forwarded` is sent as `X-Forwarded-For`. Returns the status.
fn login(app: &App, form: &(String, String), email: &str, password: &str, forwarded: Option<&str>) -> u16 {
    let body = format!("csrf={}&email={}&password={}&next=%2F", enc(&form.0), enc(email), enc(password));
    let xff = forwarded.map(|f| format!("X-Forwarded-For: {f}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: portal\r\nConnection: close\r\nCookie: {}\r\n{xff}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        form.1,
        body.len()
    );
    http(app, &request).0
}

#[test]
fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    // The test connects from 127.0.0.1, as a reverse proxy on the same host does.
    let app = portal(AppConfig::new().set("web.trusted_proxies", vec!["127.0.0.1".to_string()]));
    let form = login_form(&app);
    for i in 0..5 {
        // The guesser's own X-Forwarded-For entries stand left of what the proxy appends.
        let status = login(&app, &form, &format!("nobody{i}@example.test"), "guess", Some("10.0.0.1, 203.0.113.66"));
        assert_eq!(status, 401);
    }
    assert_eq!(login(&app, &form, "boss@example.test", PASSWORD, Some("10.0.0.2, 203.0.113.66")), 429);
    assert_eq!(login(&app, &form, "jane@example.test", PASSWORD, Some("198.51.100.7")), 303, "others log in");

    // Without trusted proxies the header means nothing: the peer is the client.
    let direct = portal(AppConfig::new());
    let form = login_form(&direct);
    for i in 0..5 {
        let forwarded = format!("192.0.2.{i}");
        assert_eq!(login(&direct, &form, &format!("x{i}@example.test"), "guess", Some(&forwarded)), 401);
    }
    assert_eq!(login(&direct, &form, "jane@example.test", PASSWORD, Some("198.51.100.7")), 429);
}

#[test]
fn forty_concurrent_guesses_get_at_most_the_limit_checked() {
    let app = Arc::new(portal(AppConfig::new()));
    let form = Arc::new(login_form(&app));
    let start = Arc::new(Barrier::new(40));
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let (app, form, start) = (app.clone(), form.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                login(&app, &form, "jane@example.test", &format!("guess {i}"), None)
            })
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|g| g.join().expect("a guess")).collect();
    let checked = statuses.iter().filter(|s| **s != 429).count();
    println!("40 concurrent logins: {checked} checked, the rest refused unchecked: {statuses:?}");
    assert!(checked <= 5, "{checked} of 40 were checked, limit 5: {statuses:?}");
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert_eq!(login(&app, &form, "jane@example.test", PASSWORD, None), 429, "the right one now waits too");
}
