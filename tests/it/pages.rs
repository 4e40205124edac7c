//! Every portal page in headless Chromium, as the role that sees it: axe-core
//! (injected through WebDriver) finds no serious or critical accessibility
//! violation at 1280 px or at 390 px, nothing is wider than a 390 px phone
//! screen or scrolls sideways inside it, the focus ring has 3:1 against the
//! page, and screenshots at 1280 px and 390 px go to
//! target/browser-artifacts/NAME-1280.png and NAME-390.png for a person to
//! look at.
//!
//! [`PAGES`] is the list: adding a page is one line. axe-core comes from npm,
//! installed by `scripts/install-test-deps` into [`AXE`]; without it the test
//! fails saying so, it never skips.

use std::collections::HashMap;
use std::time::Duration;

use fantoccini::cookies::Cookie;
use serde_json::{Value, json};

use crate::browser::{Browser, artifacts, deep_link_for, deliver};
use crate::common::{App, AppConfig, wait_until};

/// Where `scripts/install-test-deps` puts axe-core (its version is pinned there).
const AXE: &str = "/usr/local/lib/ticketgate-test/node_modules/axe-core/axe.min.js";
const PASSWORD: &str = "pages-test-pw";
const MEMBER: &str = "jane@acme.test";
const STAFF: &str = "sam@example.test";
const PHONE: u32 = 390;
const DESKTOP: u32 = 1280;

/// Who looks at a page: logged out, or logged in with a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Nobody,
    Member,
    Staff,
}

/// (name, who, path). In paths, `{ticket}` is a ticket of the member's team
/// with a long subject, a staff answer, quoted text and an attachment;
/// `{quarantine}` a quarantined mail from an unknown sender; `{alias}` the
/// path of the member's alias confirmation link. Grouped by who, so each
/// role logs in once.
const PAGES: &[(&str, Who, &str)] = &[
    ("login", Who::Nobody, "/login"),
    ("login-for-a-link", Who::Nobody, "/login?next=%2Ft%2F{ticket}"),
    ("contact-logged-out", Who::Nobody, "/contact"),
    ("link-invalid", Who::Nobody, "/l/not-a-valid-link"),
    ("forgot-password", Who::Nobody, "/password/forgot"),
    ("reset-link-invalid", Who::Nobody, "/password/reset/not-a-valid-link"),
    ("list", Who::Member, "/"),
    ("list-filtered", Who::Member, "/?q=printer&status=waiting_for_customer&sort=created"),
    ("list-no-match", Who::Member, "/?q=nothingmatchesthis"),
    ("ticket", Who::Member, "/t/{ticket}"),
    ("new-ticket", Who::Member, "/new"),
    ("contact", Who::Member, "/contact"),
    ("account", Who::Member, "/account"),
    ("alias-confirm", Who::Member, "{alias}"),
    ("not-found", Who::Member, "/t/999999"),
    ("no-such-page", Who::Member, "/no/such/page"),
    ("staff-list", Who::Staff, "/"),
    ("staff-list-filtered", Who::Staff, "/?team=1&status=closed&sort=subject"),
    ("staff-ticket", Who::Staff, "/t/{ticket}"),
    ("staff-new-ticket", Who::Staff, "/new"),
    ("quarantine", Who::Staff, "/quarantine"),
    ("quarantine-entry", Who::Staff, "/quarantine/{quarantine}"),
    ("aliases", Who::Staff, "/aliases"),
    ("users", Who::Staff, "/users"),
    ("users-of-a-team", Who::Staff, "/users?team=1"),
    ("user-new", Who::Staff, "/users/new"),
    ("user", Who::Staff, "/users/1"),
    ("teams", Who::Staff, "/teams"),
];

/// Runs axe-core on the page and hands back its violations, trimmed to what a report needs.
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] }).then(
  r => done(r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({ target: n.target.join(' '), summary: n.failureSummary })),
  }))),
  e => done({ error: String(e) }));
"#;

/// The page's layout width, its scroll width and height, the first elements
/// that stick out on the right, and boxes that scroll sideways inside the
/// page (a table in an `overflow-x: auto` box hides what it clips from the
/// page's own scroll width).
const MEASURE: &str = r#"
const root = document.documentElement;
const all = [...document.querySelectorAll('body *')];
const describe = e => e.outerHTML.slice(0, 100) + ' right=' + Math.round(e.getBoundingClientRect().right);
const sticking = all.filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5).slice(0, 5).map(describe);
const scrolling = all
  .filter(e => !['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName) && e.clientWidth > 1)
  .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
  .slice(0, 5).map(describe);
return {
  width: root.clientWidth, scroll: root.scrollWidth, height: root.scrollHeight,
  toolbars: window.outerHeight - window.innerHeight, sticking, scrolling,
};
"#;

/// The focus ring of a focused field and the colour of the page behind it.
const FOCUS_RING: &str = r#"
const field = document.querySelector('#email');
field.focus();
const ring = getComputedStyle(field);
return {
  outline: ring.outlineColor, style: ring.outlineStyle, width: ring.outlineWidth,
  background: getComputedStyle(document.body).backgroundColor,
};
"#;

#[test]
fn every_portal_page_passes_axe_and_fits_a_phone_in_chromium() {
    let axe_js = std::fs::read_to_string(AXE)
        .unwrap_or_else(|e| panic!("{AXE}: {e}: the page test needs axe-core (run scripts/install-test-deps)"));
    let browser = Browser::start();

    // axe itself: an image without a text alternative is a critical violation.
    browser.goto("data:text/html,<!doctype html><html lang=en><title>t</title><main><img src=x.png></main></html>");
    let found = axe(&browser, &axe_js);
    assert!(violations("self-check", &found).iter().any(|v| v.contains("image-alt")), "axe did not run: {found}");

    let app = App::start(AppConfig::new());
    let base = app.web_url().expect("the portal is on");
    let (vars, sessions) = world(&app, &browser, &base);

    let mut problems = Vec::new();
    let mut current = None;
    for &(name, who, path) in PAGES {
        if current != Some(who) {
            browser.resume(sessions.get(&who));
            current = Some(who);
        }
        let path = vars.iter().fold(path.to_string(), |p, (k, v)| p.replace(k, v));
        browser.resize(DESKTOP, 900);
        browser.goto(&format!("{base}{path}"));
        let landed = browser.url();
        if landed != format!("{base}{path}") {
            problems.push(format!("{name}: asked for {path}, landed on {landed}"));
            continue;
        }
        problems.extend(violations(name, &axe(&browser, &axe_js)));
        screenshot(&browser, name, DESKTOP);

        let fit = screenshot(&browser, name, PHONE);
        // The phone layout again: what axe finds only there (overlaps, target sizes).
        for v in violations(name, &axe(&browser, &axe_js)) {
            if !problems.contains(&v) {
                problems.push(format!("{v}\n    (at {PHONE} px)"));
            }
        }
        assert_eq!(fit["width"], json!(PHONE), "{name}: the page is not laid out {PHONE} px wide: {fit}");
        if fit["scroll"].as_u64().is_none_or(|w| w > PHONE as u64) {
            problems.push(format!("{name}: {} px wide at {PHONE} px: {}", fit["scroll"], fit["sticking"]));
        }
        if fit["scrolling"].as_array().is_none_or(|s| !s.is_empty()) {
            problems.push(format!("{name}: scrolls sideways inside at {PHONE} px: {}", fit["scrolling"]));
        }
    }
    // The focus ring against the page it sits on (WCAG 2.2 1.4.11: 3:1).
    browser.resume(None);
    browser.goto(&format!("{base}/login"));
    let ring = browser.script(FOCUS_RING, vec![]);
    let ratio = contrast(&ring["outline"], &ring["background"]);
    assert!(ring["style"] == "solid" && ring["width"] == "3px", "{ring}");
    assert!(ratio >= 3.0, "the focus ring is {ratio:.2}:1 against the page: {ring}");
    println!("focus ring {ratio:.2}:1, screenshots: {}", artifacts().display());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// Runs axe-core on the current page, injecting it first when the page has none.
fn axe(browser: &Browser, axe_js: &str) -> Value {
    if browser.script("return typeof window.axe", vec![]) != "object" {
        browser.script(axe_js, vec![]);
    }
    browser.script_async(RUN_AXE, vec![])
}

/// Sizes the window to `width` and the whole page's height, saves
/// NAME-WIDTH.png and returns the page's measurements at that width.
fn screenshot(browser: &Browser, name: &str, width: u32) -> Value {
    browser.resize(width, 900);
    let m = browser.script(MEASURE, vec![]);
    // The window's height includes what headless Chromium keeps for its toolbars.
    let height = m["height"].as_u64().unwrap_or(900).clamp(400, 6000) + m["toolbars"].as_u64().unwrap_or(0);
    browser.resize(width, height as u32);
    let measured = browser.script(MEASURE, vec![]);
    browser.screenshot(&artifacts().join(format!("{name}-{width}.png")));
    measured
}

/// The serious and critical violations in axe's answer, one readable entry
/// each; the lesser ones are printed, not failed.
fn violations(page: &str, found: &Value) -> Vec<String> {
    let Some(list) = found.as_array() else { return vec![format!("{page}: axe failed: {found}")] };
    let mut out = Vec::new();
    for v in list {
        let impact = v["impact"].as_str().unwrap_or("?");
        let nodes: Vec<String> = v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| format!("    at {}: {}", n["target"].as_str().unwrap_or("?"), n["summary"].as_str().unwrap_or("")))
            .collect();
        let entry = format!("{page}: {impact} {}: {}\n{}", v["id"], v["help"], nodes.join("\n"));
        if matches!(impact, "serious" | "critical") {
            out.push(entry);
        } else {
            println!("note, not failed: {entry}");
        }
    }
    out
}

/// A team, a member and a staff user; a ticket with the kinds of content
/// that widen pages (long subject, URL, word and address, quoted text, an
/// attachment, a staff answer), a second ticket, a quarantined mail and an
/// alias link. Returns the values of the placeholders in [`PAGES`] and the
/// member's and the staff user's sessions.
fn world(app: &App, browser: &Browser, base: &str) -> (Vec<(&'static str, String)>, HashMap<Who, Cookie<'static>>) {
    app.run_ok(&["team", "add", "Acme Corporation International"]);
    let add = |email: &str, name: &str, role: &str, team: Option<&str>| {
        let mut args = vec!["user", "add", email, "--role", role, "--name", name, "--password", PASSWORD];
        args.extend(team.map(|t| ["--team", t]).into_iter().flatten());
        app.run_ok(&args);
    };
    add(MEMBER, "Jane Doe-Featherstonehaugh", "member", Some("Acme Corporation International"));
    add(STAFF, "Sam", "staff", None);
    app.run_ok(&["user", "alias", "add", MEMBER, "jane.doe.at.home.with.a.long.address@private-mail.example.org"]);

    let inbox = app.data_dir().join("inbox");
    deliver(
        &inbox,
        "1.pages.test",
        "From: Jane <jane@acme.test>\r\nTo: support@example.test\r\n\
         Subject: The printer in the third-floor copy room catches fire after every firmware update\r\n\
         Message-ID: <pages-1@acme.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         It happened again, see https://intranet.acme.test/facilities/reports/2026/11/printer-incident-report-third-floor?ticket=42&session=0123456789abcdef\r\n\
         The error code was ERR_FUSER_OVERTEMPERATURE_SHUTDOWN_SEQUENCE_INITIATED_BY_CONTROLLER_BOARD.\r\n\r\n\
         > On Tuesday the facilities team wrote:\r\n> Please tell us when it happens again.\r\n\
         --b\r\nContent-Type: text/csv; name=\"fuser-temperature-readings-third-floor-2026-11-25.csv\"\r\n\
         Content-Disposition: attachment; filename=\"fuser-temperature-readings-third-floor-2026-11-25.csv\"\r\n\r\n\
         minute,celsius\r\n1,412\r\n--b--\r\n",
    );
    deliver(
        &inbox,
        "2.pages.test",
        "From: Jane <jane@acme.test>\r\nTo: support@example.test\r\nSubject: Drucker druckt nur leere Seiten\r\n\
         Message-ID: <pages-2@acme.test>\r\nDate: Wed, 25 Nov 2026 11:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nSeit heute Morgen kommen nur leere Seiten.\r\n",
    );
    deliver(
        &inbox,
        "3.pages.test",
        "From: Mallory <mallory@unknown-sender.example>\r\nTo: support@example.test\r\nSubject: Invoice overdue\r\n\
         Message-ID: <pages-3@unknown-sender.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nPay now.\r\n",
    );
    wait_until("two tickets and a quarantined mail", Duration::from_secs(60), || {
        app.query_i64("SELECT count(*) FROM tickets") == 2 && app.query_i64("SELECT count(*) FROM quarantine") == 1
    });
    let ticket = app.query_i64("SELECT id FROM tickets WHERE subject LIKE 'The printer%'").to_string();
    let quarantine = app.query_i64("SELECT id FROM quarantine").to_string();

    // A staff answer in the thread.
    browser.goto(&format!("{base}/login?next=%2Ft%2F{ticket}"));
    browser.log_in(STAFF, PASSWORD);
    browser.wait("the ticket page", |b| b.url().contains("/t/"));
    let mut sessions = HashMap::from([(Who::Staff, browser.session())]);
    browser.type_into("#body", "We replaced the fuser; please print a test page and tell us.");
    browser.click("#send");
    browser.wait("the answer on the page", |b| b.source().contains("please print a test page"));

    // An alias confirmation link, asked for on the account page.
    browser.resume(None);
    browser.goto(&format!("{base}/login?next=%2Faccount"));
    browser.log_in(MEMBER, PASSWORD);
    browser.wait("the account page", |b| b.url().ends_with("/account"));
    sessions.insert(Who::Member, browser.session());
    browser.type_into("#alias", "jane@home.example");
    browser.click("form.stack button[type=submit]");
    let outbox = app.data_dir().join("outbox");
    let mut link = None;
    wait_until("the alias confirmation mail", Duration::from_secs(30), || {
        link = deep_link_for(&outbox, "jane@home.example");
        link.is_some()
    });
    let alias = link.unwrap_or_default().strip_prefix(base).expect("a link to the portal").to_string();
    (vec![("{ticket}", ticket), ("{quarantine}", quarantine), ("{alias}", alias)], sessions)
}

/// The WCAG contrast ratio of two CSS `rgb(r, g, b)` colours.
fn contrast(a: &Value, b: &Value) -> f64 {
    let luminance = |c: &Value| {
        let css = c.as_str().unwrap_or_default();
        let rgb: Vec<f64> = css
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().parse::<f64>().unwrap_or_else(|_| panic!("not an rgb() colour: {css}")) / 255.0)
            .map(|v| if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) })
            .collect();
        assert_eq!(rgb.len(), 3, "not an rgb() colour: {css}");
        0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    };
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}
