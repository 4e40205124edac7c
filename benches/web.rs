//! Web portal load benchmark: `cargo bench --bench web`.
//!
//! Generates 100,000 tickets and 500,000 messages (with their full-text rows,
//! by word and by trigram; every tenth ticket in Japanese, without spaces;
//! every fifth message with an attachment) straight into SQLite in one
//! transaction, starts the portal in a second
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

use common::Rng;
use ticketgate::app::App;
use ticketgate::config::Config;
use ticketgate::signing::Keyring;
use ticketgate::store::tickets;
use ticketgate::store::{Db, sessions};

const TICKETS: i64 = 100_000;
const MESSAGES_PER_TICKET: i64 = 5;
const TEAMS: i64 = 100;
const VOCABULARY: usize = 20_000;
/// Every this many tickets is written in Japanese.
const JAPANESE_EVERY: i64 = 10;
/// Every this many messages carries an attachment.
const ATTACHMENT_EVERY: usize = 5;

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
    std::fs::create_dir_all(&dir)?;
    let db_path = dir.join("bench.sqlite");
    let db = Db::open(&db_path)?;
    let generated = db.with(|c| Ok(c.query_row("SELECT count(*) FROM tickets", [], |r| r.get::<_, i64>(0))?))?;
    if generated != TICKETS {
        drop(db);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
        }
        let started = Instant::now();
        generate(&Db::open(&db_path)?)?;
        println!(
            "generated {TICKETS} tickets, {} messages in {:.1?}",
            TICKETS * MESSAGES_PER_TICKET,
            started.elapsed()
        );
    }
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

/// A pronounceable pseudo-word per rank: distinct, tokenised as one FTS term.
fn word(rank: usize) -> String {
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "ve", "du", "ba", "fe", "go", "hi", "ju", "ly", "mo", "na",
        "pe", "qu",
    ];
    spell(rank, &SYL)
}

/// A Japanese pseudo-word per rank, two to four kanji; texts join them with
/// particles, never spaces, as Japanese is written.
fn japanese_word(rank: usize) -> String {
    const KANJI: [&str; 20] = [
        "請", "求", "書", "印", "刷", "東", "京", "会", "議", "室", "接", "続", "確", "認", "設", "定", "電", "話",
        "番", "号",
    ];
    spell(rank, &KANJI)
}

/// `rank` written in base 20 with `digits`, least significant first.
fn spell(rank: usize, digits: &[&str; 20]) -> String {
    let mut n = rank + 20;
    let mut w = String::new();
    while n > 0 {
        w.push_str(digits[n % 20]);
        n /= 20;
    }
    w
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

/// Repeatable text for the generated tickets.
trait Words {
    /// Zipf-like: low ranks are common, high ranks rare.
    fn word_rank(&mut self) -> usize;
    /// `words` words of `vocab`, joined by spaces, or in Japanese by particles.
    fn text(&mut self, words: usize, vocab: &[String], japanese: bool) -> String;
}

impl Words for Rng {
    fn word_rank(&mut self) -> usize {
        let u = (self.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
        ((VOCABULARY as f64).powf(u) as usize).saturating_sub(1).min(VOCABULARY - 1)
    }

    fn text(&mut self, words: usize, vocab: &[String], japanese: bool) -> String {
        const PARTICLES: [&str; 8] = ["の", "が", "を", "に", "は", "で", "と", "も"];
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push_str(if !japanese {
                    " "
                } else if i % 8 == 0 {
                    "。"
                } else {
                    PARTICLES[self.below(8)]
                });
            }
            s.push_str(&vocab[self.word_rank()]);
        }
        s
    }
}

fn generate(db: &Db) -> anyhow::Result<()> {
    let latin: Vec<String> = (0..VOCABULARY).map(word).collect();
    let japanese: Vec<String> = (0..VOCABULARY).map(japanese_word).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let hash = ticketgate::password::hash("bench");
    db.write(|tx| {
        tx.execute(
            "INSERT INTO users(email, name, role, team_id, password_hash, created_at) VALUES ('agent@support.test', 'Agent', 'staff', NULL, ?1, 0)",
            [&hash],
        )?;
        let staff = tx.last_insert_rowid();
        let mut team_users = Vec::new();
        for t in 0..TEAMS {
            tx.execute("INSERT INTO teams(name, created_at) VALUES (?1, 0)", [format!("Team {t:03}")])?;
            let team = tx.last_insert_rowid();
            let mut ids = Vec::new();
            for u in 0..5 {
                let role = if u == 0 { "admin" } else { "member" };
                tx.execute(
                    "INSERT INTO users(email, name, role, team_id, password_hash, created_at) VALUES (?1, '', ?2, ?3, ?4, 0)",
                    params![format!("user{u}@team{t}.test"), role, team, hash],
                )?;
                ids.push(tx.last_insert_rowid());
            }
            team_users.push((team, ids));
        }
        let mut ticket = tx.prepare(
            "INSERT INTO tickets(team_id, opener_id, subject, status, source, internal_ref, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'support', ?5, ?6, ?7)",
        )?;
        let mut message = tx.prepare(
            "INSERT INTO messages(ticket_id, author_id, author_role, via, event, body, message_id, created_at)
             VALUES (?1, ?2, ?3, 'mail', ?4, ?5, ?6, ?7)",
        )?;
        let start = 1_700_000_000i64;
        for i in 0..TICKETS {
            let (team, users) = &team_users[(i % TEAMS) as usize];
            let opener = users[rng.below(users.len())];
            // By rounds over the teams, so that every team has Japanese tickets.
            let in_japanese = (i / TEAMS) % JAPANESE_EVERY == JAPANESE_EVERY - 1;
            let vocab = if in_japanese { &japanese } else { &latin };
            let words = 3 + rng.below(6);
            let subject = rng.text(words, vocab, in_japanese);
            let status = ["waiting_for_support", "waiting_for_customer", "closed"][rng.below(3)];
            let reference = if rng.below(4) == 0 { format!("REF-{}", rng.below(1_000_000)) } else { String::new() };
            let created = start + i * 600 + rng.below(600) as i64;
            let mut at = created;
            let mut times = Vec::new();
            for _ in 0..MESSAGES_PER_TICKET {
                times.push(at);
                at += rng.below(86_400 * 3) as i64;
            }
            ticket.execute(params![team, opener, subject, status, reference, created, times[times.len() - 1]])?;
            let id = ticketgate::id::TicketId(tx.last_insert_rowid());
            tickets::index_text(tx, id, "subject", &subject)?;
            if !reference.is_empty() {
                tickets::index_text(tx, id, "reference", &reference)?;
            }
            for (m, when) in times.iter().enumerate() {
                let by_staff = m % 2 == 1;
                let words = 20 + rng.below(60);
                let body = rng.text(words, vocab, in_japanese);
                let (author, role, event) = match (m, by_staff) {
                    (0, _) => (opener, "member", "opened"),
                    (_, true) => (staff, "staff", "staff_responded"),
                    _ => (opener, "member", "customer_replied"),
                };
                message.execute(params![id, author, role, event, body, format!("b{id}.{m}@bench.test"), when])?;
                let message_id = ticketgate::id::MessageId(tx.last_insert_rowid());
                tickets::index_text(tx, id, "message", &body)?;
                if rng.below(ATTACHMENT_EVERY) == 0 {
                    let stem = &vocab[rng.word_rank()];
                    let n = rng.below(100_000);
                    let filename = if in_japanese { format!("{stem}_{n}.xlsx") } else { format!("{stem}-{n}.pdf") };
                    let file = tickets::NewAttachment {
                        ticket_id: id,
                        message_id: Some(message_id),
                        filename: &filename,
                        size: 1000,
                        detected: None,
                        sha256: None,
                        refused: None,
                    };
                    tickets::add_attachment(tx, &file, *when)?;
                }
            }
        }
        Ok::<_, ticketgate::store::StoreError>(())
    })?;
    db.with(|c| Ok(c.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?))?;
    Ok(())
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
