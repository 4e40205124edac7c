//! The capture SMTP server (`capture_smtp.py`, aiosmtpd): stores what it receives, fails on
//! demand.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::dovecot::SUPPORT;
use super::process::{AIOSMTPD, PortBlock, python, require, tail, terminate, wait_banner, watched};
use super::tls::TestCa;

/// One stored message: the bytes as received and the envelope (`mail_from`, `rcpt_tos`,
/// `auth_login`, `tls`, `tls_version`, `helo`, ...).
#[derive(Debug, Clone)]
pub struct Captured {
    pub eml: Vec<u8>,
    pub envelope: serde_json::Value,
}

impl Captured {
    pub fn rcpt_tos(&self) -> Vec<String> {
        self.envelope["rcpt_tos"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.eml).into_owned()
    }
}

/// Options for [`Capture::start_with`].
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// `(login, password)` pairs accepted by AUTH PLAIN/LOGIN.
    pub users: Vec<(String, String)>,
    /// MAIL before AUTH gets 530.
    pub require_auth: bool,
    /// MAIL before STARTTLS is refused on the plain port.
    pub require_starttls: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            users: vec![(SUPPORT.0.into(), SUPPORT.1.into())],
            require_auth: false,
            require_starttls: false,
        }
    }
}

pub struct Capture {
    dir: tempfile::TempDir,
    ports: PortBlock,
    child: Child,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/common/capture_smtp.py");

impl Capture {
    /// SMTP (STARTTLS) on [`Capture::smtp_port`], SMTPS on [`Capture::smtps_port`]; AUTH for
    /// `support@example.test` / `secret`.
    pub fn start(ca: &TestCa) -> Capture {
        Capture::start_with(ca, CaptureOptions::default())
    }

    pub fn start_with(ca: &TestCa, opts: CaptureOptions) -> Capture {
        require(&[AIOSMTPD]);
        let dir = tempfile::Builder::new().prefix("tg-capture").tempdir().expect("temp dir");
        let ports = PortBlock::new(2);
        let d = dir.path();
        std::fs::write(d.join("faults"), "").expect("faults file");
        let log = std::fs::File::create(d.join("capture.log")).expect("log");
        let mut cmd = watched(&python());
        cmd.arg(SCRIPT)
            .arg("--port")
            .arg(ports.port(0).to_string())
            .arg("--tls-port")
            .arg(ports.port(1).to_string())
            .arg("--cert")
            .arg(ca.server_pem())
            .arg("--key")
            .arg(ca.server_key())
            .arg("--dir")
            .arg(d.join("messages"))
            .arg("--faults")
            .arg(d.join("faults"));
        for (u, p) in &opts.users {
            cmd.arg("--user").arg(format!("{u}:{p}"));
        }
        if opts.require_auth {
            cmd.arg("--require-auth");
        }
        if opts.require_starttls {
            cmd.arg("--require-starttls");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {SCRIPT}: {e}", python()));
        let capture = Capture { dir, ports, child };
        if !wait_banner(capture.smtp_port(), "220", Duration::from_secs(20)) {
            panic!("capture server did not greet:\n{}", tail(&capture.dir.path().join("capture.log"), 30));
        }
        capture
    }

    pub fn smtp_port(&self) -> u16 {
        self.ports.port(0)
    }

    pub fn smtps_port(&self) -> u16 {
        self.ports.port(1)
    }

    pub fn messages_dir(&self) -> PathBuf {
        self.dir.path().join("messages")
    }

    /// Replaces the fault rules (one per line, see `capture_smtp.py`); "" restores normal service.
    pub fn set_faults(&self, rules: &str) {
        let path = self.dir.path().join("faults");
        let tmp = self.dir.path().join("faults.new");
        std::fs::write(&tmp, rules).expect("write faults");
        std::fs::rename(tmp, path).expect("replace faults");
    }

    /// The rules left (counted rules disappear once used up).
    pub fn faults(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("faults")).unwrap_or_default()
    }

    /// Whether the listening sockets are open (they close while a `refuse` rule is in place).
    pub fn listening(&self) -> bool {
        std::fs::read_to_string(self.dir.path().join("listening")).is_ok_and(|s| s.trim() == "yes")
    }

    /// Every complete message, in arrival order.
    pub fn messages(&self) -> Vec<Captured> {
        let dir = self.messages_dir();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".json")).collect()
            })
            .unwrap_or_default();
        names.sort();
        names.iter().filter_map(|n| read_captured(&dir, n)).collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("capture.log")).unwrap_or_default()
    }
}

fn read_captured(dir: &Path, json_name: &str) -> Option<Captured> {
    let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(json_name)).ok()?).ok()?;
    let eml = std::fs::read(dir.join(envelope["eml"].as_str()?)).ok()?;
    Some(Captured { eml, envelope })
}

impl Drop for Capture {
    fn drop(&mut self) {
        terminate(self.child.id(), Duration::from_secs(5));
        let _ = self.child.wait();
    }
}
