//! The command line: one subcommand per job, each calling one function.
//! Exit statuses follow sysexits where an MTA reads them: `ingest` exits 0
//! when every message was accepted or quarantined (a message over
//! `limits.max_message_bytes` included: it is quarantined without being read
//! whole), 75 (EX_TEMPFAIL) when one hit a transient failure (the MTA
//! retries), 66 (EX_NOINPUT) for an unreadable file.
//!
//! Tables (`team list`, `user list`, `quarantine list`, `outbox list`) show
//! every value through [`cell`]: a subject or bounce text from a stranger
//! cannot send terminal escape sequences or break the tab-separated columns.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::config::Config;
use crate::format::cell;
use crate::id::{QuarantineId, TicketId};
use crate::lifecycle::Role;
use crate::store::{Db, users};

#[derive(Debug, Parser)]
#[command(name = "ticketgate", version, about = "Email-driven ticketing gateway")]
pub struct Cli {
    /// Configuration file (default: built-in defaults, as in config/ticketgate.toml).
    #[arg(long, global = true, env = "TICKETGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// How log lines on standard error look: text, or one JSON object a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, with the fields of the message or request span.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: mail sources, outbox delivery and the web portal.
    Serve,
    /// Ingest messages from files, or `-` for standard input (for MTA pipes).
    Ingest {
        /// Message files (one message each), or `-` for standard input.
        #[arg(required = true)]
        files: Vec<String>,
        /// Label shown on tickets opened by these messages.
        #[arg(long, default_value = "mail")]
        source: String,
    },
    /// Explain how messages would be processed, as JSON Lines, without a database.
    Inspect {
        /// Message files or folders (read recursively), or `-` for standard input.
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
    /// Copy the database (consistently, also while `serve` runs) and the attachment files.
    Backup {
        /// Where the copy of the database goes (replaced if it exists).
        file: PathBuf,
        /// Folder to copy the attachment files into; files already there are kept.
        #[arg(long)]
        blobs: Option<PathBuf>,
    },
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man {
        /// Instead, write ticketgate.1 and one page per subcommand (ticketgate-backup.1, ...) into this folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Add a customer team.
    Add {
        /// The team's name, unique.
        name: String,
    },
    /// List the teams.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// A customer: sees and writes on the team's tickets.
    Member,
    /// A customer who also manages the team.
    Admin,
    /// Support staff: sees every ticket.
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
        /// The user's mail address (also the login).
        email: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The customer team (members and admins).
        #[arg(long)]
        team: Option<String>,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from this option instead of a prompt.
        #[arg(long, env = "TICKETGATE_NEW_PASSWORD")]
        password: Option<String>,
        /// No password: the user only writes by mail.
        #[arg(long, conflicts_with = "password")]
        no_password: bool,
    },
    /// List the users with their role, team and marks.
    List,
    /// A user's extra addresses: mail from an alias is that user.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Stop a user from logging in and from writing by mail.
    Disable {
        /// The user's mail address.
        email: String,
    },
    /// Let a disabled user in again.
    Enable {
        /// The user's mail address.
        email: String,
    },
    /// Set a new password (prompted for unless given).
    Password {
        /// The user's mail address.
        email: String,
        /// Read the password from this option instead of a prompt.
        #[arg(long, env = "TICKETGATE_NEW_PASSWORD")]
        password: Option<String>,
    },
    /// Clear the bouncing mark so notifications go to the address again.
    ClearBounce {
        /// The user's mail address.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Make ALIAS an address of the user (it counts at once).
    Add {
        /// The user's mail address.
        email: String,
        /// The extra address.
        alias: String,
    },
    /// Remove one of the user's extra addresses.
    Remove {
        /// The user's mail address.
        email: String,
        /// The extra address.
        alias: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List the newest mails with their state.
    List,
    /// Retry failed or waiting mail now (all, or one by id).
    Retry {
        /// The outbox id (from `outbox list`); all when left out.
        id: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the newest quarantined messages with their reasons.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one entry: reason, detail, notice, size, what was done, and the headers.
    Show {
        /// The entry's id (from `quarantine list`).
        id: QuarantineId,
    },
    /// Post the message through the pipeline: where it would have gone, onto a ticket, or as a new ticket.
    Release {
        /// The entry's id (from `quarantine list`).
        id: QuarantineId,
        /// Post it as a reply on this ticket.
        #[arg(long, conflicts_with = "team")]
        ticket: Option<TicketId>,
        /// Open a new ticket for this team (a sender who is no user becomes its member).
        #[arg(long)]
        team: Option<String>,
        /// Post it as from this user instead of the sender.
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
    },
    /// Delete the message; the entry keeps who deleted it and when.
    Delete {
        /// The entry's id (from `quarantine list`).
        id: QuarantineId,
    },
    /// Remove entries (and their kept files) older than DAYS days.
    Purge {
        /// Age in days.
        #[arg(long)]
        older_than: u64,
    },
}

/// Runs the command; returns the process exit status.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            // Migrating and hashing the first password block: done before the runtime starts.
            let app = App::open(Arc::new(config))?;
            crate::serve::first_login(&app)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(crate::serve::run(app))?;
            Ok(0)
        }
        Command::Ingest { files, source } => ingest(config, &files, &source),
        Command::Inspect { paths } => {
            let stdout = std::io::stdout();
            let all_read = crate::inspect::run(&config, &paths, &mut stdout.lock())?;
            Ok(if all_read { 0 } else { 1 })
        }
        Command::Team(c) => team(open(config)?.db(), c),
        Command::User(c) => user(open(config)?.db(), c),
        Command::Outbox(c) => {
            outbox(open(config)?.db(), c)?;
            Ok(0)
        }
        Command::Quarantine(c) => quarantine(&open(config)?, c),
        Command::Migrate => {
            let app = open(config)?;
            println!("database {} is up to date", app.config().store.path.display());
            Ok(0)
        }
        Command::Backup { file, blobs } => {
            backup(&open(config)?, &file, blobs.as_deref())?;
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ticketgate", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Command::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)?;
            println!("manual pages written to {}", dir.display());
            Ok(0)
        }
    }
}

/// Who acts from the command line, for the quarantine's record.
fn cli_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    if user.is_empty() { "command line".into() } else { format!("command line ({user})") }
}

fn quarantine(app: &App, c: QuarantineCommand) -> anyhow::Result<i32> {
    use crate::quarantine::{Release, Target};
    use crate::store::inbound;
    let mut out = std::io::stdout().lock();
    match c {
        QuarantineCommand::List { limit } => {
            for q in app.db().with(|c| inbound::quarantined(c, limit))? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    q.id,
                    cell(q.reason.as_str()),
                    cell(q.sender.as_deref().unwrap_or("-")),
                    cell(q.subject.as_deref().unwrap_or("-")),
                    cell(&q.detail)
                )?;
            }
        }
        QuarantineCommand::Show { id } => {
            let q = app.db().with(|c| inbound::entry(c, id)).with_context(|| format!("no quarantine entry #{id}"))?;
            writeln!(out, "entry:    #{}", q.id)?;
            writeln!(out, "reason:   {}", q.reason)?;
            writeln!(out, "detail:   {}", q.detail)?;
            writeln!(out, "source:   {}", q.source)?;
            writeln!(out, "arrived:  {}", crate::format::time(q.created_at).text)?;
            writeln!(out, "notice:   {}", crate::quarantine::notice_text(&q))?;
            match &q.raw_path {
                Some(path) => writeln!(out, "size:     kept in {path} ({} bytes of headers stored)", q.stored_bytes)?,
                None => writeln!(out, "size:     {} bytes", q.stored_bytes)?,
            }
            if let Some(r) = &q.resolution {
                writeln!(out, "done:     {} by {} at {}", r.what, r.by, crate::format::time(r.at).text)?;
            }
            writeln!(out)?;
            let raw = app.db().with(|c| inbound::raw(c, id))?;
            out.write_all(crate::parse::header_section(&raw))?;
        }
        QuarantineCommand::Release { id, ticket, team, as_user } => {
            let target = match (ticket, team) {
                (Some(n), _) => Target::Ticket(n),
                (None, Some(t)) => Target::Team(t),
                (None, None) => Target::Thread,
            };
            let by = cli_actor();
            let r = Release { target, as_user: as_user.as_deref(), add_alias: false, by: &by };
            match app.release(id, &r) {
                Ok(outcome) => writeln!(out, "#{id}\t{outcome}")?,
                Err(crate::store::StoreError::NotFound) => bail!("no quarantine entry #{id}"),
                Err(crate::store::StoreError::Conflict(why)) => bail!("#{id} not released: {why}"),
                Err(e) => return Err(e.into()),
            }
        }
        QuarantineCommand::Delete { id } => match app.delete_quarantined(id, &cli_actor()) {
            Ok(()) => writeln!(out, "#{id}\tdeleted")?,
            Err(crate::store::StoreError::NotFound) => bail!("no quarantine entry #{id}"),
            Err(e) => return Err(e.into()),
        },
        QuarantineCommand::Purge { older_than } => {
            let n = app.purge_quarantine(older_than)?;
            writeln!(out, "{n} quarantine entr{} purged", if n == 1 { "y" } else { "ies" })?;
        }
    }
    Ok(0)
}

/// `ticketgate backup FILE [--blobs DIR]`: the database first, then the
/// attachment files, so every file the copied database refers to exists
/// (a file is durable before the transaction that refers to it commits).
fn backup(app: &App, file: &std::path::Path, blobs: Option<&std::path::Path>) -> anyhow::Result<()> {
    app.db().backup_to(file).with_context(|| format!("copying the database to {}", file.display()))?;
    println!("database copied to {}", file.display());
    match blobs {
        Some(dir) => {
            let (copied, present) = app
                .blobs()
                .copy_to(dir)
                .with_context(|| format!("copying the attachment files to {}", dir.display()))?;
            println!("attachment files: {copied} copied to {}, {present} already there", dir.display());
        }
        None => println!("attachment files not copied (add --blobs DIR)"),
    }
    Ok(())
}

fn open(config: Config) -> anyhow::Result<App> {
    App::open(Arc::new(config))
}

const EX_NOINPUT: i32 = 66;
const EX_TEMPFAIL: i32 = 75;

fn ingest(config: Config, files: &[String], source: &str) -> anyhow::Result<i32> {
    let app = match open(config) {
        Ok(app) => app,
        Err(e) => {
            // The MTA keeps the message and retries: nothing is lost.
            eprintln!("ticketgate: {e:#}");
            return Ok(EX_TEMPFAIL);
        }
    };
    let max = app.config().limits.max_message_bytes;
    let mut status = 0;
    for file in files {
        let outcome = if file == "-" {
            ingest_stdin(&app, max, source)
        } else {
            ingest_file(&app, std::path::Path::new(file), max, source)
        };
        match outcome {
            Ok(Ok(outcome)) => {
                println!("{file}\t{outcome}");
                if matches!(outcome, crate::pipeline::Outcome::Failed { .. }) {
                    // Nothing was recorded: the MTA keeps the message and tries again later.
                    status = EX_TEMPFAIL;
                }
            }
            Ok(Err(e)) => {
                eprintln!("ticketgate: {file}: {e} (temporary; try again)");
                status = EX_TEMPFAIL;
            }
            Err(e) => {
                eprintln!("ticketgate: {file}: {e}");
                status = status.max(EX_NOINPUT);
            }
        }
    }
    Ok(status)
}

/// The outcome of one `ingest` input: `Err` when it could not be read, `Ok(Err)` on a
/// transient failure.
type Ingested = std::io::Result<Result<crate::pipeline::Outcome, crate::pipeline::IngestError>>;

/// A file's size is known before it is read: one over `max` is streamed into quarantine.
fn ingest_file(app: &App, path: &std::path::Path, max: u64, source: &str) -> Ingested {
    if std::fs::metadata(path)?.len() > max {
        return Ok(app.quarantine_oversized(&mut std::fs::File::open(path)?, source));
    }
    Ok(app.ingest(&std::fs::read(path)?, source))
}

/// Standard input is counted while it is read: at most `max + 1` bytes are held, and a message
/// longer than that is streamed into quarantine (and accepted: the MTA must not retry it).
fn ingest_stdin(app: &App, max: u64, source: &str) -> Ingested {
    let mut stdin = std::io::stdin().lock();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut stdin, max.saturating_add(1)), &mut raw)?;
    if raw.len() as u64 > max {
        let mut all = std::io::Read::chain(std::io::Cursor::new(raw), stdin);
        return Ok(app.quarantine_oversized(&mut all, source));
    }
    Ok(app.ingest(&raw, source))
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
            let teams: std::collections::HashMap<crate::id::TeamId, String> =
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
                let aliases = db.with(|c| users::aliases(c, u.id))?;
                if !aliases.is_empty() {
                    flags.push(format!("aliases: {}", aliases.join(", ")));
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
        UserCommand::Alias(AliasCommand::Add { email, alias }) => {
            let user = db.with(|c| users::by_email(c, &email))?.context("no such user")?;
            db.with(|c| users::add_alias(c, user.id, &alias, crate::clock::now()))?;
            println!("{} is now also {}", user.email, crate::address::normalize(&alias));
        }
        UserCommand::Alias(AliasCommand::Remove { email, alias }) => {
            let user = db.with(|c| users::by_email(c, &email))?.context("no such user")?;
            db.with(|c| users::remove_alias(c, user.id, &alias)).context("no such alias of that user")?;
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

/// The given password, or one read from the terminal (echo off) or a line of standard input.
fn password_or_prompt(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return check_password(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return check_password(rpassword::prompt_password("Password: ")?);
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    check_password(line.trim_end_matches(['\r', '\n']).to_string())
}

fn check_password(p: String) -> anyhow::Result<String> {
    crate::password::check(&p).map_err(anyhow::Error::msg)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand says what it does and every option and argument what it is for,
    /// so `--help`, the man page and the completions explain everything.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "ticketgate", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
