//! The command line: one subcommand per job, each calling one function.
//! Exit statuses follow sysexits where an MTA reads them: `ingest` exits 0
//! when every message was accepted or quarantined, 75 (EX_TEMPFAIL) when one
//! hit a transient failure (the MTA retries), 66 (EX_NOINPUT) for an
//! unreadable file.
//!
//! Tables (`team list`, `user list`, `quarantine list`, `outbox list`) show
//! every value through [`cell`]: a subject or bounce text from a stranger
//! cannot send terminal escape sequences or break the tab-separated columns.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::lifecycle::Role;
use crate::pipeline::Pipeline;
use crate::signing::Keyring;
use crate::store::{Db, users};

#[derive(Debug, Parser)]
#[command(name = "ticketgate", version, about = "Email-driven ticketing gateway")]
pub struct Cli {
    /// Configuration file (default: built-in defaults, as in config/ticketgate.toml).
    #[arg(long, global = true, env = "TICKETGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: mail sources, outbox delivery and the web portal.
    Serve,
    /// Ingest messages from files, or `-` for standard input (for MTA pipes).
    Ingest {
        #[arg(required = true)]
        files: Vec<String>,
        /// Label shown on tickets opened by these messages.
        #[arg(long, default_value = "mail")]
        source: String,
    },
    /// Explain how messages would be processed, as JSON Lines, without a database.
    Inspect {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Manage customer teams.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Notifications waiting or failed.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Messages kept aside, with their reasons.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Create or upgrade the database schema.
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    Add { name: String },
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Member,
    Admin,
    Staff,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Member => Role::Member,
            RoleArg::Admin => Role::Admin,
            RoleArg::Staff => Role::Staff,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is prompted for unless given.
    Add {
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The customer team (members and admins).
        #[arg(long)]
        team: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from this option instead of a prompt.
        #[arg(long, env = "TICKETGATE_NEW_PASSWORD")]
        password: Option<String>,
        /// No password: the user only writes by mail.
        #[arg(long, conflicts_with = "password")]
        no_password: bool,
    },
    List,
    Disable {
        email: String,
    },
    Enable {
        email: String,
    },
    /// Set a new password (prompted for unless given).
    Password {
        email: String,
        #[arg(long, env = "TICKETGATE_NEW_PASSWORD")]
        password: Option<String>,
    },
    /// Clear the bouncing mark so notifications go to the address again.
    ClearBounce {
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    List,
    /// Retry failed or waiting mail now (all, or one by id).
    Retry {
        id: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// Runs the command; returns the process exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(crate::serve::run(Arc::new(config)))?;
            Ok(0)
        }
        Command::Ingest { files, source } => ingest(config, &files, &source),
        Command::Inspect { paths } => {
            let stdout = std::io::stdout();
            let all_read = crate::inspect::run(&config, &paths, &mut stdout.lock())?;
            Ok(if all_read { 0 } else { 1 })
        }
        Command::Team(c) => team(&open_db(&config)?, c),
        Command::User(c) => user(&open_db(&config)?, c),
        Command::Outbox(c) => {
            let db = open_db(&config)?;
            outbox(&db, c)?;
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::List { limit }) => {
            let db = open_db(&config)?;
            let mut out = std::io::stdout().lock();
            for q in db.with(|c| crate::store::inbound::quarantined(c, limit))? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    q.id,
                    cell(&q.reason),
                    cell(q.sender.as_deref().unwrap_or("-")),
                    cell(q.subject.as_deref().unwrap_or("-")),
                    cell(&q.detail)
                )?;
            }
            Ok(0)
        }
        Command::Migrate => {
            open_db(&config)?;
            println!("database {} is up to date", config.store.path.display());
            Ok(0)
        }
    }
}

fn open_db(config: &Config) -> anyhow::Result<Db> {
    let timeout = std::time::Duration::from_millis(config.store.busy_timeout_millis);
    Db::open_with_timeout(&config.store.path, timeout)
        .with_context(|| format!("opening the database {}", config.store.path.display()))
}

/// Opens everything the pipeline needs.
pub fn pipeline(config: Arc<Config>) -> anyhow::Result<Pipeline> {
    let db = open_db(&config)?;
    let keys = Keyring::load_or_create(&config.security.secret_file, &config.security.previous_secrets)?;
    Ok(Pipeline::new(config, keys, db))
}

const EX_NOINPUT: i32 = 66;
const EX_TEMPFAIL: i32 = 75;

fn ingest(config: Config, files: &[String], source: &str) -> anyhow::Result<i32> {
    let pipeline = match pipeline(Arc::new(config)) {
        Ok(p) => p,
        Err(e) => {
            // The MTA keeps the message and retries: nothing is lost.
            eprintln!("ticketgate: {e:#}");
            return Ok(EX_TEMPFAIL);
        }
    };
    let mut status = 0;
    for file in files {
        let raw = if file == "-" {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).map(|_| buf)
        } else {
            std::fs::read(file)
        };
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("ticketgate: {file}: {e}");
                status = status.max(EX_NOINPUT);
                continue;
            }
        };
        match pipeline.ingest(&raw, source) {
            Ok(outcome) => println!("{file}\t{}", describe(&outcome)),
            Err(e) => {
                eprintln!("ticketgate: {file}: {e} (temporary; try again)");
                status = EX_TEMPFAIL;
            }
        }
    }
    Ok(status)
}

/// One line about an outcome, for `ingest`.
pub fn describe(o: &crate::pipeline::Outcome) -> String {
    use crate::pipeline::Outcome::*;
    match o {
        Opened { ticket, .. } => format!("opened ticket #{ticket}"),
        Replied { ticket, .. } => format!("posted on ticket #{ticket}"),
        Duplicate { ticket: Some(t) } => format!("duplicate (ticket #{t}); nothing changed"),
        Duplicate { ticket: None } => "duplicate; nothing changed".into(),
        Automatic { kind, .. } => format!("automatic mail ({kind}); not posted"),
        Bounce { marked } if marked.is_empty() => "delivery report; nothing marked".into(),
        Bounce { marked } => format!("delivery report; marked bouncing: {}", marked.join(", ")),
        Quarantined { reason, id } => format!("quarantined #{id}: {reason}"),
    }
}

fn team(db: &Db, c: TeamCommand) -> anyhow::Result<i32> {
    match c {
        TeamCommand::Add { name } => {
            let id = db.with(|c| users::create_team(c, &name, crate::clock::now()))?;
            println!("team {id}: {name}");
        }
        TeamCommand::List => {
            for t in db.with(|c| users::teams(c))? {
                println!("{}\t{}", t.id, cell(&t.name));
            }
        }
    }
    Ok(0)
}

fn user(db: &Db, c: UserCommand) -> anyhow::Result<i32> {
    match c {
        UserCommand::Add { email, role, team, name, password, no_password } => {
            let role = Role::from(role);
            let team_id = match (&team, role) {
                (Some(t), _) => {
                    Some(db.with(|c| users::team_by_name(c, t))?.with_context(|| format!("no team {t:?}"))?.id)
                }
                (None, Role::Staff) => None,
                (None, _) => bail!("members and admins need --team"),
            };
            let hash = if no_password { None } else { Some(crate::password::hash(&password_or_prompt(password)?)) };
            let new = users::NewUser { email: &email, name: &name, role, team_id, password_hash: hash.as_deref() };
            let id = db.with(|c| users::create_user(c, &new, crate::clock::now()))?;
            println!("user {id}: {} ({})", crate::address::normalize(&email), role.as_str());
        }
        UserCommand::List => {
            let teams: std::collections::HashMap<i64, String> =
                db.with(|c| users::teams(c))?.into_iter().map(|t| (t.id, t.name)).collect();
            for u in db.with(|c| users::list(c))? {
                let team = u.team_id.and_then(|t| teams.get(&t)).map(String::as_str).unwrap_or("-");
                let mut flags = Vec::new();
                if u.disabled {
                    flags.push("disabled".to_string());
                }
                if let Some(b) = &u.bouncing {
                    flags.push(format!("bouncing: {b}"));
                }
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.id,
                    cell(&u.email),
                    u.role.as_str(),
                    cell(team),
                    cell(&flags.join("; "))
                );
            }
        }
        UserCommand::Disable { email } => db.with(|c| users::set_disabled(c, &email, true)).context("no such user")?,
        UserCommand::Enable { email } => db.with(|c| users::set_disabled(c, &email, false)).context("no such user")?,
        UserCommand::Password { email, password } => {
            let user = db.with(|c| users::by_email(c, &email))?.context("no such user")?;
            let hash = crate::password::hash(&password_or_prompt(password)?);
            db.with(|c| users::set_password(c, user.id, &hash))?;
        }
        UserCommand::ClearBounce { email } => {
            if !db.with(|c| users::set_bouncing(c, &email, None))? {
                bail!("no such user");
            }
        }
    }
    Ok(0)
}

fn outbox(db: &Db, c: OutboxCommand) -> anyhow::Result<()> {
    match c {
        OutboxCommand::List => crate::outbound::list(db, &mut std::io::stdout().lock()),
        OutboxCommand::Retry { id } => {
            let n = crate::outbound::retry(db, id)?;
            println!("{n} mail(s) queued for delivery now");
            Ok(())
        }
    }
}

/// `value` safe to print as one cell of a table: control characters (escape
/// sequences, line breaks, tabs) and bidirectional overrides are shown
/// escaped (`\u{1b}`, `\n`, `\t`), everything else as it is.
pub fn cell(value: &str) -> String {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !value.chars().any(unsafe_char) {
        return value.to_string();
    }
    value.chars().map(|c| if unsafe_char(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// The given password, or one read from the terminal (echo off) or a line of standard input.
fn password_or_prompt(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return check_password(p);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("Password: ");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read?;
    check_password(line.trim_end_matches(['\r', '\n']).to_string())
}

fn check_password(p: String) -> anyhow::Result<String> {
    if p.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_escape_control_characters() {
        assert_eq!(cell("Grüße, Müller"), "Grüße, Müller");
        assert_eq!(cell("\u{1b}]0;owned\u{7}\u{1b}[2Jhi"), "\\u{1b}]0;owned\\u{7}\\u{1b}[2Jhi");
        assert_eq!(cell("a\tb\r\nc\u{9b}d"), "a\\tb\\r\\nc\\u{9b}d");
        assert_eq!(cell("photo\u{202E}gpj.exe"), "photo\\u{202e}gpj.exe");
    }
}
