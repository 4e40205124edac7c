//! End to end in headless Chromium, driven through chromedriver with the
//! fantoccini WebDriver client. The real `ticketgate serve` receives a
//! customer's mail in its Maildir, writes the acknowledgement as an `.eml`
//! file; the test takes the deep link out of that mail's HTML part, opens it
//! logged out, logs in, lands on the message, replies with an attachment,
//! closes, reopens with Send, and saves a screenshot under
//! target/browser-artifacts/.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test
//! fails saying so (CI installs them), it never skips.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::common::{App, AppConfig, PortBlock, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "browser-test-pw";

/// The chromedriver process, killed on drop (also when start-up fails half-way).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver process and one browser session, both ended on drop. The
/// tests are synchronous (the harness polls and sleeps), so each WebDriver
/// call runs to completion on a runtime of its own.
pub struct Browser {
    client: Client,
    runtime: tokio::runtime::Runtime,
    // Dropped after the session is closed in `Drop for Browser`.
    _driver: Driver,
    _ports: PortBlock,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
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
        wait_until("chromedriver ready", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
        let profile = tempfile::Builder::new().prefix("tg-chromium").tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Phones overlay their scrollbars: the page keeps the full width of the window.
            "--hide-scrollbars",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1400",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = runtime
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("new WebDriver session");
        Browser { client, runtime, _driver: driver, _ports: ports, _profile: profile }
    }

    /// The text of `css` on the current page, or `None` while it is changing
    /// (an element found on the old page goes stale).
    pub fn try_text(&self, css: &str) -> Option<String> {
        self.runtime.block_on(async { self.client.find(Locator::Css(css)).await.ok()?.text().await.ok() })
    }

    pub fn goto(&self, url: &str) {
        self.runtime.block_on(self.client.goto(url)).unwrap_or_else(|e| panic!("go to {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.runtime.block_on(self.client.current_url()).expect("current URL").to_string()
    }

    pub fn source(&self) -> String {
        self.runtime.block_on(self.client.source()).expect("page source")
    }

    pub fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.runtime.block_on(self.client.find(Locator::Css(css))).unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.runtime.block_on(e.send_keys(text)).unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.runtime.block_on(e.click()).unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.runtime.block_on(e.text()).unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Polls until `cond` holds on the current page (navigation is asynchronous).
    pub fn wait(&self, what: &str, cond: impl Fn(&Browser) -> bool) {
        wait_until(what, Duration::from_secs(30), || cond(self));
    }

    pub fn screenshot(&self, path: &Path) {
        let png = self.runtime.block_on(self.client.screenshot()).expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Runs `js` as a function body on the current page; `arguments` holds `args`.
    pub fn script(&self, js: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.runtime.block_on(self.client.execute(js, args)).unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Like [`Browser::script`], for scripts that finish by calling their last argument.
    pub fn script_async(&self, js: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.runtime.block_on(self.client.execute_async(js, args)).unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.runtime.block_on(self.client.set_window_size(width, height)).expect("resize the window");
    }

    /// Fills in and submits the login form on the current page.
    pub fn log_in(&self, email: &str, password: &str) {
        self.type_into("#email", email);
        self.type_into("#password", password);
        self.click("form.stack button[type=submit]");
    }

    /// The session cookie, to put back later with [`Browser::resume`].
    pub fn session(&self) -> fantoccini::cookies::Cookie<'static> {
        self.runtime.block_on(self.client.get_named_cookie("tg_session")).expect("the session cookie")
    }

    /// Forgets every cookie, then sets `session` (when given) on the current site.
    pub fn resume(&self, session: Option<&fantoccini::cookies::Cookie<'static>>) {
        self.runtime.block_on(self.client.delete_all_cookies()).expect("delete cookies");
        if let Some(c) = session {
            self.runtime.block_on(self.client.add_cookie(c.clone())).expect("set the session cookie");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.client.clone().close());
    }
}

/// Delivers a message into the Maildir the way an MTA does (tmp/, then rename into new/).
pub fn deliver(maildir: &Path, name: &str, raw: &str) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, raw).expect("write mail");
    std::fs::rename(&tmp, maildir.join("new").join(name)).expect("deliver mail");
}

/// The deep link in the first `.eml` in `outbox` addressed to `to`, from its HTML part.
pub fn deep_link_for(outbox: &Path, to: &str) -> Option<String> {
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

pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

#[test]
fn a_customer_follows_a_notification_link_and_works_the_ticket_in_chromium() {
    let browser = Browser::start();
    let app = App::start(AppConfig::new());
    let base = app.web_url().expect("the portal is on");
    app.run_ok(&["team", "add", "Acme"]);
    app.run_ok(&[
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
    ]);

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
    browser.log_in("jane@acme.test", PASSWORD);
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

    // Close (it asks first), then reopen with Send.
    browser.click("#close-confirm summary");
    browser.click("#close");
    browser.wait("closed", |b| b.try_text("#status").as_deref() == Some("Closed"));
    assert_eq!(browser.text("#notice"), "The ticket is closed.");
    assert!(browser.try_text("#close").is_none(), "a closed ticket offers no Close");
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
