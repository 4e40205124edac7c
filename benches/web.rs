//! Web portal load benchmark: `cargo bench --bench web`.
//!
//! Loads the portal with the store of `common::prefill` (100,000 tickets and
//! 500,000 messages with their full-text rows, by word and by trigram; every
//! tenth ticket in Japanese, without spaces; every fifth message or so with
//! an attachment), starts the portal in a second
//! process (this binary with `--serve`), and drives it over loopback with
//! keep-alive HTTP/1.1 connections from this process: list, sorted, filtered
//! and search pages (Latin and Japanese: word, substring, attachment name,
//! no match, common word), as a team member and as staff (every team). Prints p50,
//! p90, p99 and requests/s per scenario.
//!
//! Options (after `--`): `--seconds N` per scenario (default 10),
//! `--connections N` (default 4), `--only TEXT` (scenarios whose name
//! contains it), `--dir PATH` to keep and reuse the generated database
//! (default: target/web-bench).

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::params;

use common::prefill::{self, VOCABULARY, japanese_word, word};
use ticketgate::app::App;
use ticketgate::config::Config;
use ticketgate::signing::Keyring;
use ticketgate::store::{Db, sessions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if let Some(db) = value("--serve") {
        return serve(Path::new(&db));
    }
    let seconds: u64 = value("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = value("--connections").and_then(|s| s.parse().ok()).unwrap_or(4);
    let only = value("--only").unwrap_or_default();
    let dir = value("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("web-bench"));
    let db_path = prefill::store(&dir, prefill::TICKETS)?;
    let db = Db::open(&db_path)?;
    let (member, staff, rare, medium) = db.with(|c| {
        let member: ticketgate::id::UserId =
            c.query_row("SELECT id FROM users WHERE role = 'member' ORDER BY id LIMIT 1", [], |r| r.get(0))?;
        let staff: ticketgate::id::UserId =
            c.query_row("SELECT id FROM users WHERE role = 'staff' LIMIT 1", [], |r| r.get(0))?;
        Ok((member, staff, word(VOCABULARY - 7), word(400)))
    })?;
    // Attachment names to look for: one of an old ticket of the member's team, in each script.
    let attachment = |extension: &str| {
        db.with(|c| {
            Ok(c.query_row(
                "SELECT a.filename FROM attachments a JOIN tickets t ON t.id = a.ticket_id
                 WHERE t.team_id = (SELECT team_id FROM users WHERE id = ?1) AND a.filename LIKE ?2
                 ORDER BY a.id LIMIT 1 OFFSET 10",
                params![member, format!("%.{extension}")],
                |r| r.get::<_, String>(0),
            )?)
        })
    };
    let (latin_file, japanese_file) = (attachment("pdf")?, attachment("xlsx")?);
    let q = |text: &str| format!("/?q={}", utf8_percent_encode(text));
    // Words of common syllables that no text holds: the most work for the trigram index.
    let (no_match, japanese_no_match) = (word(VOCABULARY * 4), japanese_word(VOCABULARY * 4));
    let japanese_rare = japanese_word(VOCABULARY - 7);
    let searches: Vec<(&str, String)> = vec![
        ("Latin substring", q(&rare[2..rare.len() - 1])),
        ("Latin attachment name", q(&latin_file)),
        ("Latin no match", q(&no_match)),
        ("Japanese word", q(&japanese_rare)),
        ("Japanese substring", q(&format!("{}の", japanese_word(500)))),
        ("Japanese attachment name", q(&japanese_file)),
        ("Japanese no match", q(&japanese_no_match)),
        ("Japanese common word", q(&japanese_word(400))),
    ];
    let member_cookie = session(&db, member)?;
    let staff_cookie = session(&db, staff)?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .arg(&db_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("server said {line:?}"))?;

    let scenarios: Vec<(&str, &str, String)> = vec![
        ("list, member (1,000 tickets)", &member_cookie, "/".into()),
        ("list, staff (100,000 tickets)", &staff_cookie, "/?status=any&sort=updated".into()),
        ("queue, staff (waiting, oldest first: the default)", &staff_cookie, "/".into()),
        ("list page 20, staff", &staff_cookie, "/?status=any&sort=updated&page=20".into()),
        ("sorted by subject, staff", &staff_cookie, "/?status=any&sort=subject".into()),
        ("sorted by created, staff", &staff_cookie, "/?status=any&sort=created".into()),
        ("sorted by status, staff", &staff_cookie, "/?status=any&sort=status".into()),
        ("sorted by subject, member", &member_cookie, "/?sort=subject".into()),
        ("filtered closed, staff", &staff_cookie, "/?status=closed".into()),
        ("filtered waiting, member, by status", &member_cookie, "/?status=waiting_for_customer&sort=status".into()),
        ("search rare word, staff", &staff_cookie, format!("/?status=any&q={rare}")),
        ("search rare word, member", &member_cookie, format!("/?q={rare}")),
        ("search two words, staff", &staff_cookie, format!("/?status=any&q={medium}+{}", word(401))),
        ("search common word, member", &member_cookie, format!("/?q={medium}")),
        ("search common word, staff", &staff_cookie, format!("/?status=any&q={medium}")),
        ("search very common word, staff", &staff_cookie, format!("/?status=any&q={}", word(3))),
    ];
    let mut scenarios: Vec<(String, &str, String)> =
        scenarios.into_iter().map(|(name, cookie, path)| (name.to_string(), cookie, path)).collect();
    for (what, path) in &searches {
        scenarios.push((format!("search {what}, staff"), &staff_cookie, format!("{path}&status=any")));
        scenarios.push((format!("search {what}, member"), &member_cookie, path.clone()));
    }
    println!("\n{connections} connections, {seconds} s per scenario, server pid {}", child.id());
    println!("| scenario | path | requests/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut failed = None;
    for (name, cookie, path) in scenarios.iter().filter(|(name, _, _)| name.contains(only.as_str())) {
        match load(port, cookie, path, connections, Duration::from_secs(seconds)) {
            Ok(r) => println!(
                "| {name} | `{path}` | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.rps,
                r.p(0.50),
                r.p(0.90),
                r.p(0.99),
                r.p(1.0)
            ),
            Err(e) => {
                failed = Some(format!("{name}: {e}"));
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(e) = failed {
        anyhow::bail!(e);
    }
    Ok(())
}

/// The server side: the portal on an ephemeral loopback port, printed as `PORT n`.
fn serve(db_path: &Path) -> anyhow::Result<()> {
    let dir = db_path.parent().unwrap_or(Path::new("."));
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    config.store.blobs = dir.join("blobs");
    let pipeline = App::new(Arc::new(config), Keyring::new(vec![vec![7; 32]]), Db::open(db_path)?);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("PORT {}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        ticketgate::web::run(pipeline, listener, shutdown).await
    })
}

fn session(db: &Db, user: ticketgate::id::UserId) -> anyhow::Result<String> {
    let token = ticketgate::signing::random_token();
    let id = ticketgate::digest::sha256_hex(token.as_bytes());
    let now = ticketgate::clock::now();
    db.write(|tx| sessions::create(tx, &id, user, "bench", now, now + 86_400))?;
    Ok(format!("tg_session={token}"))
}

/// `text` for a URL's query: every byte outside the unreserved set as `%XX`.
fn utf8_percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Run {
    rps: f64,
    /// Latencies in milliseconds, sorted.
    ms: Vec<f64>,
}

impl Run {
    fn p(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.ms.len() as f64 * q).ceil() as usize).clamp(1, self.ms.len()) - 1;
        self.ms[i]
    }
}

/// `connections` keep-alive clients requesting `path` back to back for `length`
/// (after a one-second warm-up that is not counted).
fn load(port: u16, cookie: &str, path: &str, connections: usize, length: Duration) -> anyhow::Result<Run> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n").into_bytes();
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + length;
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut http = common::Http::connect(port)?;
                let mut ms = Vec::new();
                loop {
                    let t = Instant::now();
                    if t >= end {
                        return Ok::<_, anyhow::Error>(ms);
                    }
                    let status = http.exchange(&request)?;
                    anyhow::ensure!(status == 200, "status {status}");
                    if t >= warm_up {
                        ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            })
        })
        .collect();
    let mut ms = Vec::new();
    for c in clients {
        ms.extend(c.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Run { rps: ms.len() as f64 / length.as_secs_f64(), ms })
}
