//! End to end in headless Chromium, driven through chromedriver's WebDriver
//! HTTP API (a small client below; no browser-automation crate). The real
//! `ticketgate serve` receives a customer's mail in its Maildir, writes the
//! acknowledgement as an `.eml` file; the test takes the deep link out of
//! that mail's HTML part, opens it logged out, logs in, lands on the message,
//! replies with an attachment, closes, reopens with Send, and saves a
//! screenshot under target/browser-artifacts/.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test
//! fails saying so (CI installs them), it never skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{App, AppConfig, PortBlock, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const PASSWORD: &str = "browser-test-pw";

/// One HTTP/1.1 exchange with `Connection: close`; returns the status and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("chromedriver on {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).expect("send to chromedriver");
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("read from chromedriver");
        assert!(n > 0, "chromedriver closed the connection mid-response");
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while raw.len() < split + len {
                let n = s.read(&mut chunk).expect("read from chromedriver");
                assert!(n > 0, "chromedriver closed the connection mid-body");
                raw.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            s.read_to_end(&mut raw).expect("read from chromedriver");
        }
    }
    let mut body = raw[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// The chromedriver process, killed on drop (also when start-up fails half-way).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver process and one browser session, both ended on drop.
struct Browser {
    // Dropped after the session is deleted in `Drop for Browser`.
    _driver: Driver,
    port: u16,
    session: String,
    _ports: PortBlock,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser test needs Debian's `{package}` (apt-get install -y chromium chromium-driver)"
            );
        }
        let ports = PortBlock::new(1);
        let port = ports.port(0);
        let driver = Driver(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        wait_until("chromedriver ready", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && http(port, "GET", "/status", None).0 == 200
        });
        let profile = tempfile::Builder::new().prefix("tg-chromium").tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1400",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let (status, body) = http(port, "POST", "/session", Some(&caps));
        assert_eq!(status, 200, "new WebDriver session: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let session = v["value"]["sessionId"].as_str().expect("a session id").to_string();
        Browser { _driver: driver, port, session, _ports: ports, _profile: profile }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).expect("json")["value"].clone()
    }

    /// [`Browser::call`] that answers `None` instead of failing, for polling
    /// while a page loads: an element found on the old page goes stale.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let (status, text) = http(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref());
        (status == 200).then(|| serde_json::from_str::<Value>(&text).ok()).flatten().map(|v| v["value"].clone())
    }

    /// The text of `css` on the current page, or `None` while it is changing.
    fn try_text(&self, css: &str) -> Option<String> {
        let found = self.try_call("POST", "/element", Some(json!({"using": "css selector", "value": css})))?;
        let e = found[ELEMENT].as_str()?.to_string();
        self.try_call("GET", &format!("/element/{e}/text"), None)?.as_str().map(str::to_string)
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap_or("").to_string()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None).as_str().unwrap_or("").to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), None).as_str().unwrap_or("").to_string()
    }

    /// Polls until `cond` holds on the current page (navigation is asynchronous).
    fn wait(&self, what: &str, cond: impl Fn(&Browser) -> bool) {
        wait_until(what, Duration::from_secs(30), || cond(self));
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = data_encoding::BASE64.decode(b64.as_str().unwrap_or("").as_bytes()).expect("base64 PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

fn cli(app: &App, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(app.config_path())
        .args(args)
        .output()
        .expect("run ticketgate");
    assert!(out.status.success(), "ticketgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Delivers a message into the Maildir the way an MTA does (tmp/, then rename into new/).
fn deliver(maildir: &Path, name: &str, raw: &str) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, raw).expect("write mail");
    std::fs::rename(&tmp, maildir.join("new").join(name)).expect("deliver mail");
}

/// The deep link in the first `.eml` in `outbox` addressed to `to`, from its HTML part.
fn deep_link_for(outbox: &Path, to: &str) -> Option<String> {
    let entries = std::fs::read_dir(outbox).ok()?;
    for e in entries.flatten() {
        let raw = std::fs::read(e.path()).ok()?;
        let msg = mail_parser::MessageParser::default().parse(&raw)?;
        let addressed =
            msg.to().and_then(|a| a.first()).and_then(|a| a.address()).is_some_and(|a| a.eq_ignore_ascii_case(to));
        if !addressed {
            continue;
        }
        let html = msg.body_html(0)?;
        let href = html.split("data-testid=\"deep-link\"").nth(1)?.split("href=\"").nth(1)?.split('"').next()?;
        return Some(href.replace("&amp;", "&"));
    }
    None
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

#[test]
fn a_customer_follows_a_notification_link_and_works_the_ticket_in_chromium() {
    let browser = Browser::start();
    let app = App::start(AppConfig::new());
    let base = app.web_url().expect("the portal is on");
    cli(&app, &["team", "add", "Acme"]);
    cli(
        &app,
        &[
            "user",
            "add",
            "jane@acme.test",
            "--role",
            "member",
            "--team",
            "Acme",
            "--name",
            "Jane",
            "--password",
            PASSWORD,
        ],
    );

    deliver(
        &app.data_dir().join("inbox"),
        "1.browser.test",
        "From: Jane <jane@acme.test>\r\nTo: support@example.test\r\nSubject: Printer on fire\r\n\
         Message-ID: <browser-1@acme.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer in room 4 is on fire.\r\n",
    );
    let outbox = app.data_dir().join("outbox");
    let mut link = None;
    wait_until("the acknowledgement .eml with a deep link", Duration::from_secs(60), || {
        link = deep_link_for(&outbox, "jane@acme.test");
        link.is_some()
    });
    let link = link.unwrap_or_default();
    assert!(link.starts_with(&format!("{base}/l/")), "{link}");

    // Logged out: the link leads to the login page, then to the message.
    browser.goto(&link);
    browser.wait("the login page", |b| b.url().starts_with(&format!("{base}/login")));
    browser.type_into("#email", "jane@acme.test");
    browser.type_into("#password", PASSWORD);
    browser.click("form.stack button[type=submit]");
    browser.wait("the ticket page", |b| b.url().contains("/t/"));
    let landed = browser.url();
    let anchor = landed.split('#').nth(1).unwrap_or_else(|| panic!("landed without an anchor: {landed}")).to_string();
    assert!(anchor.starts_with('m'), "{landed}");
    assert!(browser.text(&format!("#{anchor}")).contains("The printer in room 4 is on fire."));
    assert_eq!(
        browser.text("h1").trim_start_matches('#').split_once(' ').map(|(_, s)| s.to_string()),
        Some("Printer on fire".into())
    );
    let ticket_url = landed.split('#').next().unwrap_or_default().to_string();

    // Reply with an attachment.
    let upload = tempfile::Builder::new().prefix("tg-upload").tempdir().expect("upload dir");
    let file = upload.path().join("readings.csv");
    std::fs::write(&file, "room,celsius\n4,412\n").expect("upload file");
    browser.type_into("#body", "Here are the readings.");
    browser.type_into("#file", &file.to_string_lossy());
    browser.click("#send");
    browser.wait("the reply on the page", |b| b.source().contains("Here are the readings."));
    assert!(browser.source().contains("readings.csv</a>"), "the attachment is listed for download");
    assert_eq!(browser.text("#status"), "Waiting for support");

    // Close, then reopen with Send.
    browser.click("#close");
    browser.wait("closed", |b| b.try_text("#status").as_deref() == Some("Closed"));
    browser.type_into("#body", "Sorry, it is burning again.");
    browser.click("#send");
    browser.wait("reopened", |b| b.try_text("#status").as_deref() == Some("Waiting for support"));
    assert!(browser.source().contains("Sorry, it is burning again."));
    assert!(browser.url().starts_with(&ticket_url));

    let shot = artifacts().join("ticket.png");
    browser.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    let ticket: i64 = ticket_url.rsplit('/').next().and_then(|s| s.parse().ok()).expect("ticket id");
    assert_eq!(app.query_i64(&format!("SELECT count(*) FROM messages WHERE ticket_id = {ticket}")), 3);
    assert_eq!(
        app.query_i64(&format!("SELECT count(*) FROM attachments WHERE ticket_id = {ticket} AND refused IS NULL")),
        1
    );
}
