//! `cargo bench --bench pipeline`: measures the inbound pipeline on a
//! generated corpus and prints figures; it never asserts them (speed is a
//! measurement, not a test). The corpus is deterministic: new tickets and
//! replies with quoted history, 20–40 KB on average, a third with an
//! attachment.
//!
//! Figures: (a) parsing alone, (b) the whole pipeline into SQLite with
//! durable commits, in batches as the Maildir and IMAP sources commit, and
//! one commit per message for comparison, (c) the peak RSS of a process
//! that ingests one message carrying a 15 MB attachment (measured in a
//! child process, since peak RSS only ever grows), (d) the "hostile" group:
//! time and peak RSS of `ticketgate ingest` on one generated attack-shaped
//! message each, every one in a fresh process and data directory (see
//! [`HOSTILE`]), (e) the "scale" group, only when asked for: the rate of a
//! 100,000-message backlog of the same corpus (replies threading by
//! References and by reply address) into an empty store and into one that
//! holds 500,000 messages of 100,000 tickets (`common::prefill`, generated
//! once into `target/scale-bench/` and copied for each run), and their ratio.
//!
//! Options (after `--`): `--messages N` (5000; `scale`: 100,000), `--batch N`
//! (100), `--group all|pipeline|hostile|scale` (all: all but scale),
//! `--prefill N` (`scale`: 500,000 messages), `--dir PATH` (`scale`: where
//! the prefilled store is kept).

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use common::{Rng, prefill};
use ticketgate::app::App;
use ticketgate::config::Config;
use ticketgate::id::{TicketId, UserId};
use ticketgate::lifecycle::Role;
use ticketgate::pipeline::Outcome;
use ticketgate::signing::Keyring;
use ticketgate::store::{Db, StoreError, users};

#[derive(Debug, Parser)]
struct BenchArgs {
    /// Messages in the generated corpus (5,000; the backlog of `scale`: 100,000).
    #[arg(long)]
    messages: Option<usize>,
    /// Messages committed together (as the Maildir and IMAP sources do).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Which figures: `pipeline` (corpus and 15 MB RSS), `hostile`, `scale`, or `all`
    /// (all but `scale`, which takes minutes).
    #[arg(long, default_value = "all")]
    group: String,
    /// `scale`: messages in the prefilled store (a fifth as many tickets).
    #[arg(long, default_value_t = 500_000)]
    prefill: usize,
    /// `scale`: where the prefilled store is kept between runs (default target/scale-bench).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: ingest one message with a 15 MB attachment and print the peak RSS.
    #[arg(long, hide = true)]
    rss_child: bool,
    /// Internal: run one hostile case in a child `ticketgate ingest` and print its figures.
    #[arg(long, hide = true)]
    hostile_case: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    if args.rss_child {
        return rss_child();
    }
    if let Some(case) = &args.hostile_case {
        return hostile_case(case);
    }
    if matches!(args.group.as_str(), "all" | "pipeline") {
        pipeline_group(&args)?;
    }
    if matches!(args.group.as_str(), "all" | "hostile") {
        hostile_group()?;
    }
    if args.group == "scale" {
        scale_group(&args)?;
    }
    Ok(())
}

const TEAMS: usize = 20;
const MEMBERS_PER_TEAM: usize = 5;
const SUPPORT: &str = "support@bench.test";

fn pipeline_group(args: &BenchArgs) -> anyhow::Result<()> {
    let corpus = Corpus::generate(args.messages.unwrap_or(5000));
    let bytes: usize = corpus.messages.iter().map(Vec::len).sum();
    println!(
        "corpus: {} messages, {:.1} KB average, {} with an attachment, {} new tickets",
        corpus.messages.len(),
        bytes as f64 / corpus.messages.len() as f64 / 1024.0,
        corpus.with_attachment,
        corpus.new_tickets
    );

    let start = Instant::now();
    for m in &corpus.messages {
        std::hint::black_box(ticketgate::parse::parse(m).ok());
    }
    let parse_rate = rate(corpus.messages.len(), start);
    println!("parse only:                 {parse_rate:>8.0} messages/s");

    let batched = pipeline_rate(&corpus, args.batch.max(1))?;
    println!(
        "pipeline, batches of {:<4}   {batched:>8.0} messages/s  ({:.0}% of parse only; durable commits)",
        args.batch.max(1),
        100.0 * batched / parse_rate
    );
    let single = pipeline_rate(&corpus, 1)?;
    println!("pipeline, one commit each:  {single:>8.0} messages/s");

    let exe = std::env::current_exe()?;
    let out = Command::new(exe).arg("--rss-child").output()?;
    anyhow::ensure!(out.status.success(), "the RSS child failed: {}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

/// The bench's signing key: reply addresses in the corpus are made with it.
fn keys() -> Keyring {
    Keyring::new(vec![vec![42; 32]])
}

/// The pipeline on the store `bench.sqlite` in `dir`, blobs beside it.
fn pipeline_in(dir: &Path) -> anyhow::Result<App> {
    let mut config = Config { data_dir: dir.to_path_buf(), ..Config::default() };
    config.store.blobs = dir.join("blobs");
    config.support.address = SUPPORT.into();
    config.limits.max_message_bytes = 64 * 1024 * 1024;
    let db = Db::open(&dir.join("bench.sqlite"))?;
    Ok(App::new(Arc::new(config), keys(), db))
}

/// A fresh store in a temp dir with the corpus's teams and users.
fn fresh_pipeline() -> anyhow::Result<(App, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let pipeline = pipeline_in(dir.path())?;
    pipeline.db().write(|tx| {
        users::create_user(
            tx,
            &users::NewUser {
                email: "agent@bench.test",
                name: "Agent",
                role: Role::Staff,
                team_id: None,
                password_hash: None,
            },
            0,
        )?;
        for t in 0..TEAMS {
            let team = users::create_team(tx, &format!("team{t}"), 0)?;
            for m in 0..MEMBERS_PER_TEAM {
                let role = if m == 0 { Role::Admin } else { Role::Member };
                let email = format!("user{m}@team{t}.test");
                users::create_user(
                    tx,
                    &users::NewUser { email: &email, name: "", role, team_id: Some(team), password_hash: None },
                    0,
                )?;
            }
        }
        Ok::<_, ticketgate::store::StoreError>(())
    })?;
    Ok((pipeline, dir))
}

fn pipeline_rate(corpus: &Corpus, batch: usize) -> anyhow::Result<f64> {
    let (pipeline, _dir) = fresh_pipeline()?;
    let start = Instant::now();
    let mut opened = 0;
    for chunk in corpus.messages.chunks(batch) {
        for o in pipeline.ingest_batch(chunk, "bench")? {
            match o {
                Outcome::Opened { .. } => opened += 1,
                Outcome::Replied { .. } => {}
                other => anyhow::bail!("unexpected outcome in the benchmark corpus: {other:?}"),
            }
        }
    }
    let r = rate(corpus.messages.len(), start);
    anyhow::ensure!(opened == corpus.new_tickets, "{opened} tickets opened, {} expected", corpus.new_tickets);
    Ok(r)
}

/// The `scale` group: the same backlog into a store holding only the teams
/// and users, and into a copy of the prefilled store (`common::prefill`),
/// where every other reply continues one of its tickets (half of those from
/// the staff agent, the author of 40 % of its messages).
fn scale_group(args: &BenchArgs) -> anyhow::Result<()> {
    let messages = args.messages.unwrap_or(100_000);
    let tickets = (args.prefill as i64 / prefill::MESSAGES_PER_TICKET).max(1);
    let dir = args.dir.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scale-bench"));
    let template = prefill::store(&dir, tickets)?;
    let batch = args.batch.max(1);
    println!("backlog: {messages} messages, batches of {batch}; the same corpus into both stores");
    let empty = backlog_rate(messages, batch, None)?;
    println!("into an empty store:                  {:>8.0} messages/s  {empty}", empty.rate);
    let full = backlog_rate(messages, batch, Some(&template))?;
    println!(
        "into a store of {:>7} messages:     {:>8.0} messages/s  {full}",
        tickets * prefill::MESSAGES_PER_TICKET,
        full.rate
    );
    println!("ratio prefilled / empty: {:.0}% (target: at least 75%)", 100.0 * full.rate / empty.rate);
    Ok(())
}

/// What one `scale` run did.
struct Backlog {
    rate: f64,
    opened: usize,
    replied: usize,
    /// Replies that continued a ticket of the prefilled store.
    on_prefilled: usize,
    /// The database file and its WAL at the end.
    bytes: u64,
}

impl std::fmt::Display for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "({} opened, {} replies of which {} on prefilled tickets; database {} MB)",
            self.opened,
            self.replied,
            self.on_prefilled,
            self.bytes / 1_000_000
        )
    }
}

/// Ingests `messages` generated messages in batches into a copy of
/// `template`, or into a store with only [`prefill::directory`]; times the
/// ingestion alone, not the generation.
fn backlog_rate(messages: usize, batch: usize, template: Option<&Path>) -> anyhow::Result<Backlog> {
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("bench.sqlite");
    match template {
        Some(template) => {
            std::fs::copy(template, &db_path)?;
        }
        None => {
            Db::open(&db_path)?.write(|tx| Ok::<_, StoreError>(prefill::directory(tx)?))?;
        }
    }
    let pipeline = pipeline_in(dir.path())?;
    let prefilled = prefilled_threads(pipeline.db())?;
    let last_prefilled: i64 =
        pipeline.db().with(|c| Ok(c.query_row("SELECT coalesce(max(id), 0) FROM tickets", [], |r| r.get(0))?))?;
    let mut mail = Mail::new(prefill::TEAMS, prefilled);
    let mut took = std::time::Duration::ZERO;
    let (mut opened, mut replied, mut on_prefilled) = (0, 0, 0);
    let mut left = messages;
    while left > 0 {
        let chunk: Vec<Vec<u8>> = (0..left.min(batch)).map(|_| mail.next_message()).collect();
        left -= chunk.len();
        let start = Instant::now();
        let outcomes = pipeline.ingest_batch(&chunk, "bench")?;
        took += start.elapsed();
        for o in outcomes {
            match o {
                Outcome::Opened { .. } => opened += 1,
                Outcome::Replied { ticket, .. } => {
                    replied += 1;
                    on_prefilled += usize::from(ticket.0 <= last_prefilled);
                }
                other => anyhow::bail!("unexpected outcome in the benchmark corpus: {other:?}"),
            }
        }
    }
    anyhow::ensure!(opened == mail.new_tickets, "{opened} tickets opened, {} expected", mail.new_tickets);
    anyhow::ensure!(
        on_prefilled == mail.to_prefilled,
        "{on_prefilled} replies on prefilled tickets, {} sent there",
        mail.to_prefilled
    );
    let bytes = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db_path.display())).ok())
        .map(|m| m.len())
        .sum();
    Ok(Backlog { rate: messages as f64 / took.as_secs_f64(), opened, replied, on_prefilled, bytes })
}

/// Threads to reply to in a prefilled store, answering our notifications as
/// a mail client does (to the ticket's reply address, with our Message-ID
/// and the `[#N]` tag): per ticket its opener answering our first mail,
/// and the staff agent answering our newest update to them.
fn prefilled_threads(db: &Db) -> anyhow::Result<Vec<Thread>> {
    let keys = keys();
    Ok(db.with(|c| {
        let mut st = c.prepare(
            "SELECT t.id, t.subject, u.id, u.email, o.message_id
             FROM tickets t JOIN outbox o ON o.ticket_id = t.id JOIN users u ON u.email = o.recipient
             WHERE (o.kind = 'ack' AND u.id = t.opener_id)
                OR o.id = (SELECT max(id) FROM outbox WHERE ticket_id = t.id AND kind = 'customer_update')
             ORDER BY o.id",
        )?;
        let rows = st.query_map([], |r| {
            let (ticket, user): (TicketId, UserId) = (r.get(0)?, r.get(2)?);
            let subject: String = r.get(1)?;
            Ok(Thread {
                parent: r.get(4)?,
                sender: r.get(3)?,
                subject: format!("{} {subject}", ticketgate::route::token::subject_tag(ticket)),
                to: ticketgate::address::with_tag(SUPPORT, &ticketgate::route::token::issue(&keys, ticket, user)),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })?)
}

fn rss_child() -> anyhow::Result<()> {
    let (pipeline, _dir) = fresh_pipeline()?;
    let before = peak_rss_kb()?;
    let attachment = {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut rng = Rng(7);
        pdf.extend((0..15 * 1000 * 1000 - 20).map(|_| b'0' + (rng.next() % 10) as u8));
        pdf.extend_from_slice(b"\n%%EOF\n");
        pdf
    };
    let raw = message_with_attachment(
        "user1@team1.test",
        "big@bench.test",
        "Scan of the contract",
        "See the scan.",
        "contract.pdf",
        &attachment,
    );
    drop(attachment);
    let outcome = pipeline.ingest(&raw, "bench")?;
    anyhow::ensure!(matches!(outcome, Outcome::Opened { .. }), "unexpected outcome {outcome:?}");
    let stored: i64 = pipeline
        .db()
        .with(|c| Ok(c.query_row("SELECT count(*) FROM attachments WHERE sha256 IS NOT NULL", [], |r| r.get(0))?))?;
    anyhow::ensure!(stored == 1, "the 15 MB attachment was not stored");
    println!(
        "peak RSS, one message with a 15 MB attachment ({:.1} MB raw): {:.1} MB (process before ingest: {:.1} MB)",
        raw.len() as f64 / 1e6,
        peak_rss_kb()? as f64 / 1024.0,
        before as f64 / 1024.0
    );
    Ok(())
}

/// VmHWM from /proc/self/status, in KiB.
fn peak_rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    Ok(line.split_whitespace().nth(1).context("malformed VmHWM")?.parse()?)
}

struct Corpus {
    messages: Vec<Vec<u8>>,
    with_attachment: usize,
    new_tickets: usize,
}

const WORDS: &[&str] = &[
    "printer",
    "invoice",
    "server",
    "login",
    "password",
    "report",
    "the",
    "is",
    "not",
    "working",
    "since",
    "yesterday",
    "please",
    "help",
    "urgent",
    "again",
    "error",
    "message",
    "shows",
    "when",
    "I",
    "try",
    "to",
    "open",
    "file",
    "our",
    "team",
    "cannot",
    "access",
    "dashboard",
    "Rechnung",
    "facture",
    "factura",
    "factuur",
    "export",
    "delivery",
];

impl Corpus {
    fn generate(n: usize) -> Corpus {
        let mut mail = Mail::new(TEAMS, Vec::new());
        let messages = (0..n).map(|_| mail.next_message()).collect();
        Corpus { messages, with_attachment: mail.with_attachment, new_tickets: mail.new_tickets }
    }
}

/// A thread a reply can continue.
#[derive(Clone)]
struct Thread {
    /// The Message-ID the reply refers to.
    parent: String,
    sender: String,
    subject: String,
    /// Where the reply goes: the support address, or the ticket's reply address.
    to: String,
}

/// The corpus's messages one by one: every third opens a ticket, the others
/// reply. Every other reply goes to a thread of `prefilled` (tickets already
/// in the store, answered as replies to our notification: to the reply
/// address, with our Message-ID) when there are any, else to a thread the
/// corpus opened; either way the same random numbers are drawn, so the
/// corpus has the same sizes with and without prefilled threads.
struct Mail {
    rng: Rng,
    teams: usize,
    sent: usize,
    threads: Vec<Thread>,
    prefilled: Vec<Thread>,
    with_attachment: usize,
    new_tickets: usize,
    /// Replies to a prefilled thread so far.
    to_prefilled: usize,
}

impl Mail {
    fn new(teams: usize, prefilled: Vec<Thread>) -> Mail {
        let rng = Rng(0x5eed);
        Mail {
            rng,
            teams,
            sent: 0,
            threads: Vec::new(),
            prefilled,
            with_attachment: 0,
            new_tickets: 0,
            to_prefilled: 0,
        }
    }

    fn next_message(&mut self) -> Vec<u8> {
        let (i, rng) = (self.sent, &mut self.rng);
        self.sent += 1;
        let team = rng.below(self.teams);
        let from = format!("user{}@team{team}.test", rng.below(MEMBERS_PER_TEAM));
        let id = format!("m{i}@team{team}.test");
        let sentences_new = 3 + rng.below(12);
        let new_text = sentences(rng, sentences_new);
        let reply_to = (i % 3 != 0 && !self.threads.is_empty()).then(|| {
            let pool = if i % 2 == 0 && !self.prefilled.is_empty() {
                self.to_prefilled += 1;
                &self.prefilled
            } else {
                &self.threads
            };
            pool[rng.below(pool.len())].clone()
        });
        let (subject, body, headers, sender, to) = match &reply_to {
            None => {
                self.new_tickets += 1;
                (
                    format!("{} {}", WORDS[rng.below(WORDS.len())], WORDS[rng.below(WORDS.len())]),
                    new_text,
                    String::new(),
                    from.clone(),
                    SUPPORT.to_string(),
                )
            }
            Some(thread) => {
                // Quoted history makes replies 20-40 KB, as real threads are.
                let mut quoted = String::new();
                let lines = 250 + rng.below(250);
                for _ in 0..lines {
                    let _ = writeln!(quoted, "> {}", sentences(rng, 1));
                }
                let body = format!("{new_text}\n\nOn Tue, 24 Nov 2026 at 10:00, Support <{SUPPORT}> wrote:\n{quoted}");
                let parent = &thread.parent;
                (
                    format!("Re: {}", thread.subject),
                    body,
                    format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
                    thread.sender.clone(),
                    thread.to.clone(),
                )
            }
        };
        let head = head(&sender, &to, &id, &subject, &headers);
        let raw = if i % 3 == 1 {
            self.with_attachment += 1;
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            let len = 8_000 + rng.below(16_000);
            png.extend((0..len).map(|_| rng.next() as u8));
            with_attachment(&head, &body, "screenshot.png", &png)
        } else {
            format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n", body.replace('\n', "\r\n"))
                .into_bytes()
        };
        if reply_to.is_none() {
            self.threads.push(Thread { parent: id, sender, subject, to });
        }
        raw
    }
}

fn sentences(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for _ in 0..n {
        for w in 0..(6 + rng.below(10)) {
            if w > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[rng.below(WORDS.len())]);
        }
        s.push_str(". ");
    }
    s
}

/// The header section up to `MIME-Version`; `extra` holds more header lines.
fn head(from: &str, to: &str, id: &str, subject: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n"
    )
}

fn message_with_attachment(from: &str, id: &str, subject: &str, body: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    with_attachment(&head(from, SUPPORT, id, subject, ""), body, name, bytes)
}

/// A message of header section `head`, text `body` and one attachment.
fn with_attachment(head: &str, body: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{head}Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--b0undary\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        body.replace('\n', "\r\n")
    )
    .into_bytes();
    raw.extend_from_slice(data_encoding::BASE64_MIME.encode(bytes).as_bytes());
    raw.extend_from_slice(b"\r\n--b0undary--\r\n");
    raw
}

/// The hostile group: a name, and what the message is.
const HOSTILE: &[(&str, &str)] = &[
    ("html-head-body", "1 MB of <head><body>, HTML only"),
    ("short-lines", "2 MB of short lines"),
    ("text-40mb", "a 40 MB text mail"),
    ("attachments-2x14mib", "a 40 MB mail with two 14 MiB attachments"),
    ("over-limit-200mb", "a 200 MB mail, over max_message_bytes"),
    ("attachments-10000", "10,000 attachments"),
];

fn hostile_group() -> anyhow::Result<()> {
    println!("hostile input: `ticketgate ingest` of one message, each in a fresh process and data directory");
    println!("{:<22} {:>9} {:>8} {:>13}  outcome", "case", "size MB", "time s", "peak RSS MB");
    let exe = std::env::current_exe()?;
    for (name, what) in HOSTILE {
        let out = Command::new(&exe).args(["--hostile-case", name]).output()?;
        anyhow::ensure!(out.status.success(), "case {name} ({what}) failed: {}", String::from_utf8_lossy(&out.stderr));
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

/// One hostile case, in its own process: writes the message to a file, makes
/// a data directory whose users include the sender (so the message opens a
/// ticket and notifications are composed), then runs `ticketgate ingest` on
/// it. The time is that child's wall-clock time; the peak RSS is its
/// `getrusage(RUSAGE_CHILDREN)` maximum (this process has no other child).
fn hostile_case(name: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let file = dir.path().join("message.eml");
    let size = write_hostile(name, &mut std::io::BufWriter::new(std::fs::File::create(&file)?))?;
    let env = [
        ("TICKETGATE_DATA_DIR".to_string(), data.to_string_lossy().into_owned()),
        ("TICKETGATE_SUPPORT__ADDRESS".to_string(), SUPPORT.to_string()),
    ];
    let config = Config::load_with_env(None, env.clone())?;
    std::fs::create_dir_all(&data)?;
    Db::open(&config.store.path)?.write(|tx| {
        let team = users::create_team(tx, "team0", 0)?;
        for (email, role, team) in
            [("user1@team0.test", Role::Member, Some(team)), ("agent@bench.test", Role::Staff, None)]
        {
            users::create_user(tx, &users::NewUser { email, name: "", role, team_id: team, password_hash: None }, 0)?;
        }
        Ok::<_, ticketgate::store::StoreError>(())
    })?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketgate"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TICKETGATE_") {
            cmd.env_remove(key);
        }
    }
    let start = Instant::now();
    let out = cmd.envs(env).arg("ingest").arg(&file).output()?;
    let took = start.elapsed();
    let peak_kb = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?.max_rss();
    let outcome = String::from_utf8_lossy(&out.stdout);
    let outcome = outcome.trim().rsplit('\t').next().unwrap_or_default();
    let outcome = if out.status.success() {
        outcome.to_string()
    } else {
        format!("exit {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())
    };
    println!(
        "{name:<22} {:>9.1} {:>8.2} {:>13.1}  {outcome}",
        size as f64 / 1e6,
        took.as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
    Ok(())
}

const HEAD: &str = "From: user1@team0.test\r\nTo: support@bench.test\r\nSubject: hostile\r\nMessage-ID: <hostile@team0.test>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n";

/// Writes the message of case `name`; returns its size in bytes.
fn write_hostile(name: &str, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
    let mut counted = Counted { inner: out, bytes: 0 };
    let w = &mut counted;
    match name {
        "html-head-body" => {
            write!(w, "{HEAD}Content-Type: text/html; charset=utf-8\r\n\r\n")?;
            repeat(w, b"<head><body>", 1_000_000)?;
        }
        "short-lines" => {
            write!(w, "{HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\n")?;
            repeat(w, b"ok\r\n", 2_000_000)?;
        }
        "text-40mb" => text(w, 40_000_000)?,
        "over-limit-200mb" => text(w, 200_000_000)?,
        "attachments-2x14mib" => {
            write!(w, "{HEAD}Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n")?;
            write!(w, "--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTwo scans.\r\n")?;
            let mut rng = Rng(7);
            for i in 0..2 {
                let mut pdf = b"%PDF-1.4\n".to_vec();
                pdf.extend((0..14 * 1024 * 1024 - 16).map(|_| b'0' + (rng.next() % 10) as u8));
                pdf.extend_from_slice(b"\n%%EOF\n");
                write!(
                    w,
                    "--b0undary\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                    data_encoding::BASE64_MIME.encode(&pdf)
                )?;
            }
            write!(w, "--b0undary--\r\n")?;
        }
        "attachments-10000" => {
            write!(w, "{HEAD}Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n")?;
            write!(w, "--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMany files.\r\n")?;
            for i in 0..10_000 {
                write!(
                    w,
                    "--b0undary\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"f{i}.txt\"\r\n\r\nfile {i}\r\n"
                )?;
            }
            write!(w, "--b0undary--\r\n")?;
        }
        other => anyhow::bail!("no hostile case {other:?}"),
    }
    w.flush()?;
    Ok(counted.bytes)
}

/// A text/plain message of about `bytes` bytes of sentences.
fn text(w: &mut impl std::io::Write, bytes: u64) -> anyhow::Result<()> {
    write!(w, "{HEAD}Content-Type: text/plain; charset=utf-8\r\n\r\n")?;
    let mut rng = Rng(11);
    let mut written = 0;
    while written < bytes {
        let line = format!("{}\r\n", sentences(&mut rng, 1));
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    Ok(())
}

/// `unit` repeated to `bytes` bytes, then a line end.
fn repeat(w: &mut impl std::io::Write, unit: &[u8], bytes: usize) -> anyhow::Result<()> {
    let chunk = unit.repeat(64 * 1024 / unit.len());
    let mut left = bytes / unit.len();
    while left > 0 {
        let n = left.min(chunk.len() / unit.len());
        w.write_all(&chunk[..n * unit.len()])?;
        left -= n;
    }
    w.write_all(b"\r\n")?;
    Ok(())
}

/// A writer that counts what passes through.
struct Counted<'a, W> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
