//! Inbound backlog benchmark against the real `ticketgate serve`: `cargo bench --bench backlog`.
//!
//! Default scenario: the portal while a backlog is ingested. 2,000 messages (every 50th one
//! hostile: HTML-only `<head><body>` repeated to 256 KB, 512 KB of short lines, binary
//! garbage, 300 attachments, and one message over `limits.max_message_bytes`) are dropped into
//! the Maildir at once; meanwhile one client logs in over and over and another posts replies
//! on a ticket through the portal. Prints how long the backlog took, and p50/p99/max and the
//! failures (any answer but a redirect) of login and reply.
//!
//! `-- --rss`: eight 40 MB messages (two 14 MiB attachments each) dropped at once into the
//! Maildir of a `serve` with the portal off; prints the peak RSS of the process (`VmHWM` from
//! `/proc/PID/status`) and how long they took.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ticketgate::inbound::maildir::Maildir;
use ticketgate::lifecycle::Role;
use ticketgate::store::users::{self, NewUser};
use ticketgate::store::{Db, sessions, tickets};

const BACKLOG: usize = 2_000;
const PASSWORD: &str = "a long bench password";

fn main() -> anyhow::Result<()> {
    let rss = std::env::args().any(|a| a == "--rss");
    let dir = tempfile::Builder::new().prefix("tg-backlog").tempdir()?;
    let port = free_port()?;
    let listen = if rss { String::new() } else { format!("127.0.0.1:{port}") };
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[support]\naddress = \"support@example.test\"\npublic_url = \"http://127.0.0.1:{port}\"\n[web]\nlisten = {listen:?}\n",
            dir.path().join("data")
        ),
    )?;
    let db = Db::open(&dir.path().join("data/ticketgate.sqlite"))?;
    let (jane, ticket) = db.write(|tx| {
        let team = users::create_team(tx, "Acme", 0)?;
        let hash = ticketgate::password::hash(PASSWORD);
        let user = NewUser {
            email: "jane@acme.test",
            name: "Jane",
            role: Role::Member,
            team_id: Some(team),
            password_hash: Some(&hash),
        };
        let jane = users::create_user(tx, &user, 0)?;
        let ticket = tickets::create(tx, team, jane, "Portal replies", "web", ticketgate::clock::now())?;
        Ok::<_, ticketgate::store::StoreError>((jane, ticket))
    })?;
    let inbox = Maildir::open(&dir.path().join("data/inbox"))?;
    let mut serve = Server::start(&config)?;
    if rss {
        peak_rss(&mut serve, &inbox)?;
        let opened = db.with(|c| Ok(c.query_row("SELECT count(*) FROM tickets", [], |r| r.get::<_, i64>(0))?))?;
        println!("tickets opened: {}", opened - 1);
        return Ok(());
    }
    serve.wait_for_port(port)?;
    let token = ticketgate::signing::random_token();
    let now = ticketgate::clock::now();
    db.write(|tx| {
        sessions::create(tx, &ticketgate::digest::sha256_hex(token.as_bytes()), jane, "bench", now, now + 86_400)
    })?;

    let messages = backlog();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let started = Instant::now();
    for m in &messages {
        inbox.deliver(m)?;
    }
    println!("dropped {} messages ({} MB) in {:.1?}", messages.len(), bytes / 1_000_000, started.elapsed());
    let done = Arc::new(AtomicBool::new(false));
    let login = {
        let done = done.clone();
        std::thread::spawn(move || drive(&done, || login(port)))
    };
    let reply = {
        let done = done.clone();
        std::thread::spawn(move || drive(&done, || reply(port, ticket, &token)))
    };
    while !inbox.pending()?.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (login, reply) = (login.join().expect("login thread"), reply.join().expect("reply thread"));
    println!("backlog of {BACKLOG} ingested in {took:.1?} ({:.0} msg/s)", BACKLOG as f64 / took.as_secs_f64());
    println!("| request | count | failed | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, r) in [("login", login), ("reply", reply)] {
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.1} |",
            r.times.len(),
            r.failed,
            r.p(0.5),
            r.p(0.99),
            r.p(1.0)
        );
    }
    Ok(())
}

/// The messages of the backlog, hostile ones mixed in.
fn backlog() -> Vec<Vec<u8>> {
    (0..BACKLOG)
        .map(|i| {
            let id = format!("<backlog.{i}@acme.test>");
            let (subject, body) = match (i % 50 == 25).then_some(i / 50 % 5) {
                Some(0) => ("HTML", html_only(&"<head><body>".repeat(256 * 1024 / 12))),
                Some(1) => ("Lines", plain(&"short line\r\n".repeat(512 * 1024 / 12))),
                Some(2) => return format!("\x00\x01\x02 not a message at all {i}").into_bytes(),
                Some(3) => ("Attachments", attachments(300, 2_000)),
                Some(4) if i < 250 => ("Over the limit", attachments(3, 15_000_000)),
                _ => ("Help", plain("The printer is on fire again.\r\n\r\nJane")),
            };
            format!("From: jane@acme.test\r\nTo: support@example.test\r\nSubject: {subject} {i}\r\nMessage-ID: {id}\r\nDate: Wed, 2 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{body}")
                .into_bytes()
        })
        .collect()
}

fn plain(text: &str) -> String {
    format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
}

fn html_only(html: &str) -> String {
    format!("Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n")
}

/// A mail with `n` text attachments of `size` bytes each (base64 encoded).
fn attachments(n: usize, size: usize) -> String {
    let content = data_encoding::BASE64_MIME.encode("Row of a report, 0123456789\n".repeat(size / 28 + 1).as_bytes());
    let mut out = String::from(
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFiles.\r\n",
    );
    for k in 0..n {
        out.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"r{k}.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{content}\r\n"
        ));
    }
    out.push_str("--b--\r\n");
    out
}

fn peak_rss(serve: &mut Server, inbox: &Maildir) -> anyhow::Result<()> {
    let mail = format!(
        "From: jane@acme.test\r\nTo: support@example.test\r\nSubject: Big\r\nDate: Wed, 2 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{}",
        attachments(2, 14 * 1024 * 1024)
    );
    println!("eight messages of {} MB each", mail.len() / 1_000_000);
    let started = Instant::now();
    for i in 0..8 {
        inbox.deliver(
            mail.replace("Subject: Big", &format!("Subject: Big {i}\r\nMessage-ID: <big.{i}@acme.test>")).as_bytes(),
        )?;
    }
    let mut peak = 0;
    while !inbox.pending()?.is_empty() {
        peak = peak.max(serve.peak_rss_kb()?);
        std::thread::sleep(Duration::from_millis(20));
    }
    peak = peak.max(serve.peak_rss_kb()?);
    println!("all eight settled in {:.1?}; peak RSS of serve (VmHWM) {} MB", started.elapsed(), peak / 1024);
    Ok(())
}

/// Latencies (ms) of the successful requests, and how many failed.
#[derive(Default)]
struct Results {
    times: Vec<f64>,
    failed: usize,
}

impl Results {
    fn p(&self, q: f64) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        t.get(((t.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN)
    }
}

/// Repeats `request` until `done`; a request answered with anything but a redirect fails.
fn drive(done: &AtomicBool, request: impl Fn() -> std::io::Result<u16>) -> Results {
    let mut r = Results::default();
    while !done.load(Ordering::Relaxed) {
        let t = Instant::now();
        match request() {
            Ok(303 | 302) => r.times.push(t.elapsed().as_secs_f64() * 1000.0),
            Ok(status) => {
                eprintln!("HTTP {status}");
                r.failed += 1;
            }
            Err(e) => {
                eprintln!("{e}");
                r.failed += 1;
            }
        }
    }
    r
}

fn login(port: u16) -> std::io::Result<u16> {
    let body = format!("csrf=bench&email=jane%40acme.test&password={}&next=", PASSWORD.replace(' ', "+"));
    http(port, "POST /login", "tg_login=bench", "application/x-www-form-urlencoded", &body)
}

fn reply(port: u16, ticket: ticketgate::id::TicketId, token: &str) -> std::io::Result<u16> {
    let field =
        |name: &str, value: &str| format!("--f\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
    let body =
        format!("{}{}{}--f--\r\n", field("csrf", "bench"), field("action", "send"), field("body", "Still on fire."));
    http(
        port,
        &format!("POST /t/{ticket}/reply"),
        &format!("tg_session={token}"),
        "multipart/form-data; boundary=f",
        &body,
    )
}

/// One request on its own connection; returns the status code.
fn http(port: u16, request_line: &str, cookie: &str, content_type: &str, body: &str) -> std::io::Result<u16> {
    common::Http::connect(port)?.exchange(&common::request(request_line, cookie, content_type, body))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `ticketgate serve`, killed on drop.
struct Server {
    child: Child,
}

impl Server {
    fn start(config: &Path) -> anyhow::Result<Server> {
        let child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Server { child })
    }

    fn wait_for_port(&mut self, port: u16) -> anyhow::Result<()> {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(self.child.try_wait()?.is_none(), "serve exited");
            anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn peak_rss_kb(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{}/status", self.child.id())))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or_else(|| anyhow::anyhow!("no VmHWM"))?;
        Ok(line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
