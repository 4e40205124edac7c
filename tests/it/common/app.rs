//! The real `ticketgate` binary, run with a generated config in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::dovecot::{Dovecot, ImapTls, SUPPORT};
use super::process::{PortBlock, signal, tail};

/// A config for [`App`], built on `toml::Table` so tests set any key by its dotted path.
/// Defaults: `support.address = "support@example.test"`, the web portal on a free port,
/// outbound mail as `.eml` files in the data dir, no IMAP.
pub struct AppConfig {
    table: toml::Table,
    env: Vec<(String, String)>,
    web_ports: Option<PortBlock>,
}

impl AppConfig {
    pub fn new() -> AppConfig {
        let web_ports = PortBlock::new(1);
        let mut c = AppConfig { table: toml::Table::new(), env: Vec::new(), web_ports: None };
        c = c
            .set("support.address", SUPPORT.0)
            .set("web.listen", format!("127.0.0.1:{}", web_ports.port(0)))
            .set("support.public_url", format!("http://127.0.0.1:{}", web_ports.port(0)));
        c.web_ports = Some(web_ports);
        c
    }

    /// Sets `path` (dotted, e.g. `"outbound.smtp.port"`) to `value`.
    pub fn set(mut self, path: &str, value: impl Into<toml::Value>) -> AppConfig {
        let mut node = &mut self.table;
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().expect("non-empty key");
        for p in parts {
            node = node
                .entry(p)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{p} in {path} is not a table"));
        }
        node.insert(last.into(), value.into());
        self
    }

    /// Turns the web portal off (readiness is then "the database schema exists").
    pub fn without_web(mut self) -> AppConfig {
        self.web_ports = None;
        self.set("web.listen", "")
    }

    /// Adds an `[[imap]]` mailbox for `support@example.test` on `dovecot`, label "support",
    /// polling every second when IDLE is not used. The password goes through the environment
    /// (`TICKETGATE_IMAP__N__PASSWORD`), as in production.
    pub fn imap(self, dovecot: &Dovecot, tls: ImapTls) -> AppConfig {
        let entry = imap_entry(dovecot, tls, "support", SUPPORT.0, "INBOX");
        self.imap_mailbox(entry, SUPPORT.1)
    }

    /// Adds any `[[imap]]` table (see [`imap_entry`]) with its password.
    pub fn imap_mailbox(mut self, entry: toml::Table, password: &str) -> AppConfig {
        let list = self.table.entry("imap").or_insert_with(|| toml::Value::Array(Vec::new()));
        let list = list.as_array_mut().expect("imap is a list");
        self.env.push((format!("TICKETGATE_IMAP__{}__PASSWORD", list.len()), password.into()));
        list.push(toml::Value::Table(entry));
        self
    }

    /// An extra environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> AppConfig {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&self.table).expect("config serialises")
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig::new()
    }
}

/// An `[[imap]]` table for `user` on `dovecot`, watching `folder`, trusting the test CA.
pub fn imap_entry(dovecot: &Dovecot, tls: ImapTls, label: &str, user: &str, folder: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("label".into(), label.into());
    t.insert("host".into(), "localhost".into());
    t.insert("port".into(), i64::from(dovecot.port_for(tls)).into());
    t.insert("tls".into(), tls.config_value().into());
    t.insert("ca_file".into(), dovecot.ca_pem().to_string_lossy().into_owned().into());
    t.insert("username".into(), user.into());
    t.insert("folder".into(), folder.into());
    t.insert("poll_seconds".into(), 1.into());
    t
}

/// A running `ticketgate serve`. Dropping it kills the process (SIGKILL).
pub struct App {
    dir: tempfile::TempDir,
    config: AppConfig,
    child: Option<Child>,
}

impl App {
    /// Writes the config (with `data_dir` in a fresh temp dir), starts `ticketgate serve` and
    /// waits until it is ready.
    pub fn start(config: AppConfig) -> App {
        let dir = tempfile::Builder::new().prefix("tg-app").tempdir().expect("temp dir");
        let config = config.set("data_dir", dir.path().join("data").to_string_lossy().into_owned());
        std::fs::write(dir.path().join("ticketgate.toml"), config.to_toml()).expect("write config");
        let mut app = App { dir, config, child: None };
        app.spawn();
        app
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn ticketgate"));
        self.wait_ready();
    }

    /// Polls until the web port accepts connections (or, without web, the database schema exists).
    fn wait_ready(&mut self) {
        let web = self.config.web_ports.as_ref().map(|p| p.port(0));
        let db = self.data_dir().join("ticketgate.sqlite");
        let log = self.log_path();
        let child = self.child.as_mut().expect("spawned");
        super::wait_until("ticketgate ready", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ticketgate exited during start-up ({status}):\n{}", tail(&log, 40));
            }
            match web {
                Some(port) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                None => {
                    db.exists()
                        && rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
                            .is_ok_and(|v| v > 0)
                }
            }
        });
    }

    /// SIGKILL: no chance to clean up, like a power cut of the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut child) => {
                signal(child.id(), "TERM");
                child.wait().is_ok_and(|s| s.success())
            }
            None => true,
        }
    }

    /// Starts the process again with the same config and data.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ticketgate.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ticketgate.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn web_url(&self) -> Option<String> {
        self.config.web_ports.as_ref().map(|p| format!("http://127.0.0.1:{}", p.port(0)))
    }

    /// Runs the real binary with this app's configuration (`ticketgate --config … ARGS`):
    /// its exit status and what it printed (standard output, then standard error).
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run ticketgate");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// [`App::run`] for a command that must succeed.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(code, 0, "ticketgate {args:?}: {out}");
        out
    }

    /// A read-only connection to the database, for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        open_db(&self.data_dir().join("ticketgate.sqlite"))
    }

    /// The first column of the first row of `sql`, e.g. `SELECT count(*) FROM tickets`.
    pub fn query_i64(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Opens a ticketgate database read-only (waits for a writer instead of failing).
pub fn open_db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    c.busy_timeout(Duration::from_secs(10)).expect("busy_timeout");
    c
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill9();
    }
}
