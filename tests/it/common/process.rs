//! Processes and ports for the harness: the prerequisite check, free port blocks, signals and
//! waiting for a process (or a daemon that detached) to exit.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install the test dependencies with `sudo scripts/install-test-deps` \
     (apt: dovecot-imapd dovecot-lmtpd postfix openssl python3; pip: aiosmtpd)";

/// What a part of the harness needs; each name is checked by [`require`].
pub const DOVECOT: &str = "dovecot";
pub const POSTFIX: &str = "postfix";
pub const OPENSSL: &str = "openssl";
pub const AIOSMTPD: &str = "aiosmtpd";

/// Fails the test with what to install when a program the harness runs is missing.
pub fn require(what: &[&str]) {
    let mut missing = Vec::new();
    for w in what {
        let ok = match *w {
            DOVECOT => {
                Path::new("/usr/sbin/dovecot").exists()
                    && Path::new("/usr/bin/doveadm").exists()
                    && Path::new("/usr/lib/dovecot/lmtp").exists()
                    && Path::new("/usr/lib/dovecot/imap").exists()
            }
            POSTFIX => Path::new("/usr/sbin/postfix").exists() && Path::new("/usr/sbin/postconf").exists(),
            OPENSSL => runs(Command::new("openssl").arg("version")),
            AIOSMTPD => runs(Command::new(python()).args(["-c", "import aiosmtpd"])),
            other => runs(Command::new(other).arg("--version")),
        };
        if !ok {
            missing.push(match *w {
                DOVECOT => "dovecot (/usr/sbin/dovecot, doveadm, lmtp, imap)",
                POSTFIX => "postfix (/usr/sbin/postfix)",
                AIOSMTPD => "python3 with the aiosmtpd module",
                other => other,
            });
        }
    }
    assert!(missing.is_empty(), "integration test prerequisites missing: {}; {INSTALL_HINT}", missing.join(", "));
    if what.iter().any(|w| [DOVECOT, POSTFIX].contains(w)) {
        assert!(is_root(), "the mail-server tests start Dovecot and Postfix as root: run them as root (e.g. in CI)");
    }
}

fn runs(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The Python that runs the capture server: `$TICKETGATE_TEST_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("TICKETGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// `len` consecutive ports on 127.0.0.1 that were free when reserved. The reservation holds
/// (against other threads and other test processes) until the block is dropped.
pub struct PortBlock {
    pub base: u16,
    pub len: u16,
    lock: PathBuf,
}

static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

impl PortBlock {
    pub fn new(len: u16) -> PortBlock {
        let lock_dir = std::env::temp_dir().join("ticketgate-test-ports");
        let _ = std::fs::create_dir_all(&lock_dir);
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        for _ in 0..500 {
            // xorshift: a different candidate each round, no dependency needed
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let base = 20000 + (seed % 2000) as u16 * 20;
            let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
            let taken = taken.get_or_insert_with(HashSet::new);
            if taken.contains(&base) {
                continue;
            }
            let lock = lock_dir.join(base.to_string());
            // a lock file older than a day belongs to a crashed run
            if let Ok(meta) = std::fs::metadata(&lock)
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(86400))
            {
                let _ = std::fs::remove_file(&lock);
            }
            if std::fs::OpenOptions::new().write(true).create_new(true).open(&lock).is_err() {
                continue;
            }
            if (base..base + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                taken.insert(base);
                return PortBlock { base, len, lock };
            }
            let _ = std::fs::remove_file(&lock);
        }
        panic!("no block of {len} free ports found on 127.0.0.1");
    }

    /// The `i`-th port of the block.
    pub fn port(&self, i: u16) -> u16 {
        assert!(i < self.len, "port {i} outside a block of {}", self.len);
        self.base + i
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
        if let Some(t) = TAKEN.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            t.remove(&self.base);
        }
    }
}

const WATCHDOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/watchdog.sh");

/// `cmd` (program and arguments) run under `watchdog.sh`: TERM to the returned command's
/// process stops it, and it stops by itself when this test process is gone.
pub fn watched(program: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(WATCHDOG).arg(std::process::id().to_string()).arg("--").arg(program);
    c
}

/// Runs `program args...` once this test process is gone (or when the returned child gets TERM).
pub fn on_exit(program: &str, args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new("bash")
        .arg(WATCHDOG)
        .arg(std::process::id().to_string())
        .arg("--on-exit")
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start watchdog.sh")
}

/// Sends `signal` (e.g. "TERM", "KILL") to `pid`; a process already gone is fine.
pub fn signal(pid: u32, signal: &str) {
    let _ =
        Command::new("kill").args([format!("-{signal}"), pid.to_string()]).stderr(std::process::Stdio::null()).status();
}

/// Whether `pid` runs (a zombie counts as gone: PID 1 may reap detached daemons late).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// TERM, wait up to `grace`, then KILL and wait again.
pub fn terminate(pid: u32, grace: Duration) {
    signal(pid, "TERM");
    let start = Instant::now();
    while alive(pid) && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        signal(pid, "KILL");
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until 127.0.0.1:`port` answers with a first line starting with `prefix`.
pub fn wait_banner(port: u16, prefix: &str, timeout: Duration) -> bool {
    use std::io::{BufRead, BufReader};
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with(prefix) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The last lines of a log file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sets the mode of `path` (the servers' unprivileged processes must traverse our dirs).
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
