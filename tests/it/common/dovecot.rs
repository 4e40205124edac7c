//! A private Dovecot 2.3 (IMAP, IMAPS, LMTP, SASL auth) in a temp dir on loopback ports.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{DOVECOT, PortBlock, chmod, require, run, signal, tail, wait_banner, watched};
use super::tls::TestCa;

/// The gateway's mailbox (IMAP login and SMTP AUTH login).
pub const SUPPORT: (&str, &str) = ("support@example.test", "secret");
/// A customer, who reads notifications over IMAP.
pub const CUSTOMER: (&str, &str) = ("customer@example.test", "customer-secret");
/// A support agent with a mailbox of their own.
pub const STAFF: (&str, &str) = ("staff@example.test", "staff-secret");

/// How ticketgate (or a test client) talks to the IMAP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    PlainInsecure,
    Starttls,
    Implicit,
}

impl ImapTls {
    /// The value of `imap.tls` in ticketgate's config.
    pub fn config_value(self) -> &'static str {
        match self {
            ImapTls::PlainInsecure => "plain-insecure",
            ImapTls::Starttls => "starttls",
            ImapTls::Implicit => "implicit",
        }
    }
}

pub struct Dovecot {
    // dropped last (fields drop in order): the process must be gone before its files are
    dir: tempfile::TempDir,
    ports: PortBlock,
    conf: PathBuf,
    ca_pem: PathBuf,
    mail_owner: (u32, u32),
    child: Option<Child>,
}

impl Dovecot {
    /// Starts Dovecot with the three standard users; returns once IMAP greets.
    pub fn start(ca: &TestCa) -> Dovecot {
        Dovecot::start_with(ca, "")
    }

    /// [`Dovecot::start`] with `extra` appended to `dovecot.conf`, e.g.
    /// `imap_capability = IMAP4rev1 UIDPLUS` to hide MOVE and IDLE from clients.
    pub fn start_with(ca: &TestCa, extra: &str) -> Dovecot {
        require(&[DOVECOT]);
        // short: Dovecot's unix sockets live under it (108-byte limit)
        let dir = tempfile::Builder::new().prefix("tg-dv").tempdir_in("/tmp").expect("temp dir");
        let ports = PortBlock::new(4);
        let d = dir.path();
        for sub in ["run", "state", "mail", "log"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
            chmod(&d.join(sub), 0o755);
        }
        chmod(d, 0o755);
        // Dovecot refuses uid 0 for mail: as root the mail belongs to nobody
        let uid = id_of(&["-u", "nobody"]);
        let gid = id_of(&["-g", "nobody"]);
        std::os::unix::fs::chown(d.join("mail"), Some(uid), Some(gid)).expect("chown mail");
        let users: String =
            [SUPPORT, CUSTOMER, STAFF].iter().map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n")).collect();
        std::fs::write(d.join("users"), users).expect("write users");
        chmod(&d.join("users"), 0o644);
        let conf = d.join("dovecot.conf");
        std::fs::write(&conf, config(d, &ports, ca, uid, gid) + extra).expect("write dovecot.conf");
        let mut dovecot = Dovecot { dir, ports, conf, ca_pem: ca.ca_pem(), mail_owner: (uid, gid), child: None };
        dovecot.launch();
        for (user, _) in [SUPPORT, CUSTOMER, STAFF] {
            // creates the user's Maildir, so files can be dropped into it at once
            dovecot.messages(user, "INBOX");
        }
        dovecot
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log/dovecot.stderr")).expect("log file");
        let child = watched("/usr/sbin/dovecot")
            .args(["-F", "-c"])
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn dovecot");
        self.child = Some(child);
        if !wait_banner(self.imap_port(), "* OK", Duration::from_secs(15)) {
            panic!(
                "Dovecot did not greet on 127.0.0.1:{}:\n{}\n{}",
                self.imap_port(),
                tail(&self.dir.path().join("log/dovecot.stderr"), 20),
                tail(&self.log_path(), 20)
            );
        }
    }

    /// Stops Dovecot (TERM, waiting for the master to exit, which takes about a second).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops and starts again on the same ports with the same mail (an outage).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn imap_port(&self) -> u16 {
        self.ports.port(0)
    }

    pub fn imaps_port(&self) -> u16 {
        self.ports.port(1)
    }

    pub fn lmtp_port(&self) -> u16 {
        self.ports.port(2)
    }

    /// Dovecot's SASL auth service (for Postfix's `smtpd_sasl_path = inet:...`).
    pub fn auth_port(&self) -> u16 {
        self.ports.port(3)
    }

    /// The port for a connection mode: IMAPS for implicit TLS, else the plain IMAP port.
    pub fn port_for(&self, tls: ImapTls) -> u16 {
        if tls == ImapTls::Implicit { self.imaps_port() } else { self.imap_port() }
    }

    /// The CA that signed the server certificate; verify against the name `localhost`.
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/dovecot.log")
    }

    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    /// Adds a user (login = address) while Dovecot runs; the next login sees it.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(self.dir.path().join("users")).expect("users file");
        writeln!(f, "{user}:{{PLAIN}}{password}::::::").expect("append user");
        drop(f);
        // Dovecot re-reads the passwd-file at most once a second, on a lookup.
        super::wait_until(&format!("Dovecot knows {user}"), Duration::from_secs(10), || {
            Command::new("/usr/bin/doveadm")
                .arg("-c")
                .arg(&self.conf)
                .args(["user", user])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        self.messages(user, "INBOX");
    }

    /// Runs `doveadm -c CONF ARGS...` and returns its stdout (panics on failure).
    pub fn doveadm(&self, args: &[&str]) -> String {
        run(Command::new("/usr/bin/doveadm").arg("-c").arg(&self.conf).args(args))
    }

    /// How many messages `folder` of `user` holds (0 when the folder does not exist).
    pub fn messages(&self, user: &str, folder: &str) -> usize {
        let out = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(["-f", "flow", "mailbox", "status", "-u", user, "messages", folder])
            .output()
            .expect("run doveadm");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(stderr.contains("Mailbox doesn't exist"), "doveadm mailbox status {user} {folder}: {stderr}");
            return 0;
        }
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix("messages="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected doveadm output: {stdout:?}"))
    }

    /// The Message-IDs (as written, brackets included) of the messages in `folder`.
    pub fn message_ids(&self, user: &str, folder: &str) -> Vec<String> {
        self.doveadm(&["-f", "flow", "fetch", "-u", user, "hdr.message-id", "mailbox", folder])
            .lines()
            .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim().to_string()))
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Delivers over LMTP, as an MTA would (Dovecot adds Return-Path from `from`).
    pub fn deliver(&self, from: &str, to: &str, raw: &[u8]) {
        lmtp_send(self.lmtp_port(), from, to, raw).unwrap_or_else(|e| panic!("LMTP delivery to {to}: {e}"));
    }

    /// Puts a message straight into `folder` ("INBOX" or another) of `user` as a Maildir file:
    /// about a hundred times faster than LMTP, for big backlogs. The folder must exist.
    pub fn drop_message(&self, user: &str, folder: &str, raw: &[u8]) {
        self.drop_file(user, folder, raw, true);
    }

    /// Like [`Dovecot::drop_message`], but the file belongs to root with mode 0600: Dovecot
    /// (which reads mail as `nobody`) fails to FETCH it ("Internal error occurred").
    pub fn drop_unreadable(&self, user: &str, folder: &str, raw: &[u8]) {
        self.drop_file(user, folder, raw, false);
    }

    fn drop_file(&self, user: &str, folder: &str, raw: &[u8], readable: bool) {
        let (local, domain) = user.split_once('@').expect("user is an address");
        let mut maildir = self.dir.path().join("mail").join(domain).join(local).join("Maildir");
        if folder != "INBOX" {
            maildir = maildir.join(format!(".{folder}"));
        }
        let name = super::unique("drop").replace(['/', ':'], "_");
        let tmp = maildir.join("tmp").join(&name);
        // Dovecot reads LF line ends in Maildir files and serves CRLF
        let lf: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        std::fs::write(&tmp, lf).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        if readable {
            chmod(&tmp, 0o644);
            std::os::unix::fs::chown(&tmp, Some(self.mail_owner.0), Some(self.mail_owner.1)).expect("chown");
        } else {
            chmod(&tmp, 0o600);
        }
        std::fs::rename(&tmp, maildir.join("new").join(&name)).expect("rename into new/");
    }

    /// Appends a message to `folder` through `doveadm save` (creates nothing; the folder must exist).
    pub fn save(&self, user: &str, folder: &str, raw: &[u8]) {
        let mut child = Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(&self.conf)
            .args(["save", "-u", user, "-m", folder])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run doveadm save");
        child.stdin.take().expect("stdin").write_all(raw).expect("write to doveadm");
        let out = child.wait_with_output().expect("doveadm save");
        assert!(out.status.success(), "doveadm save: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

fn id_of(args: &[&str]) -> u32 {
    run(Command::new("id").args(args)).trim().parse().expect("numeric id")
}

fn config(d: &Path, ports: &PortBlock, ca: &TestCa, uid: u32, gid: u32) -> String {
    let d = d.display();
    let (imap, imaps, lmtp, auth) = (ports.port(0), ports.port(1), ports.port(2), ports.port(3));
    let (cert, key) = (ca.server_pem(), ca.server_key());
    let (cert, key) = (cert.display(), key.display());
    format!(
        r#"# ticketgate test harness: Dovecot 2.3 syntax (Debian 12)
instance_name = tg-dovecot-{imap}
hostname = mail.example.test
base_dir = {d}/run
state_dir = {d}/state
protocols = imap lmtp
listen = 127.0.0.1
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
log_path = {d}/log/dovecot.log
auth_verbose = yes

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
# failed logins answer at once, and do not slow down the next (correct) login from 127.0.0.1
auth_failure_delay = 0
recipient_delimiter = +

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid={uid} gid={gid} home={d}/mail/%d/%n
}}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs

namespace inbox {{
  inbox = yes
  separator = /
}}

protocol lmtp {{
  postmaster_address = postmaster@example.test
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  inet_listener auth-postfix {{
    address = 127.0.0.1
    port = {auth}
  }}
}}
"#
    )
}

/// A minimal LMTP client (RFC 2033): one message, one recipient.
pub fn lmtp_send(port: u16, from: &str, to: &str, raw: &[u8]) -> std::io::Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let expect = |r: &mut BufReader<TcpStream>, code: &str| -> std::io::Result<()> {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            if !line.starts_with(code) {
                return Err(std::io::Error::other(format!("expected {code}, got {line:?}")));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    expect(&mut r, "220")?;
    w.write_all(b"LHLO harness.example.test\r\n")?;
    expect(&mut r, "250")?;
    write!(w, "MAIL FROM:<{from}>\r\n")?;
    expect(&mut r, "250")?;
    write!(w, "RCPT TO:<{to}>\r\n")?;
    expect(&mut r, "250")?;
    w.write_all(b"DATA\r\n")?;
    expect(&mut r, "354")?;
    let mut body = Vec::with_capacity(raw.len() + 64);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.starts_with(b".") {
            body.push(b'.');
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    w.write_all(&body)?;
    expect(&mut r, "250")?;
    w.write_all(b"QUIT\r\n")?;
    Ok(())
}
