//! A private Postfix 3.7 in a temp dir: SMTP (STARTTLS) and SMTPS on loopback ports, AUTH
//! checked by Dovecot's users, `@example.test` delivered over LMTP into that Dovecot.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::dovecot::Dovecot;
use super::process::{POSTFIX, PortBlock, alive, chmod, on_exit, require, tail, terminate, wait_banner};
use super::tls::TestCa;

pub struct Postfix {
    dir: tempfile::TempDir,
    ports: PortBlock,
    pid: u32,
    /// Stops Postfix should this test process die without running `Drop`.
    guard: std::process::Child,
}

impl Postfix {
    /// Starts Postfix in front of `dovecot`. Clients from 127.0.0.0/8 may send without AUTH
    /// unless `require_auth`; AUTH is offered only after STARTTLS (and on the SMTPS port).
    pub fn start(ca: &TestCa, dovecot: &Dovecot, require_auth: bool) -> Postfix {
        require(&[POSTFIX]);
        let dir = tempfile::Builder::new().prefix("tg-pf").tempdir().expect("temp dir");
        let ports = PortBlock::new(2);
        let d = dir.path();
        let conf = d.join("conf");
        for sub in ["conf", "spool", "data", "log"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
            chmod(&d.join(sub), 0o755);
        }
        chmod(d, 0o755);
        let postfix_ids = (id_of("-u"), id_of("-g"));
        std::os::unix::fs::chown(d.join("data"), Some(postfix_ids.0), Some(postfix_ids.1)).expect("chown data");
        let (smtp, smtps) = (ports.port(0), ports.port(1));
        let restrictions = if require_auth {
            "permit_sasl_authenticated, reject"
        } else {
            "permit_mynetworks, permit_sasl_authenticated, reject"
        };
        let dd = d.display();
        let (cert, key) = (ca.server_pem(), ca.server_key());
        let (cert, key) = (cert.display(), key.display());
        let (lmtp, auth) = (dovecot.lmtp_port(), dovecot.auth_port());
        let main_cf = format!(
            r#"# ticketgate test harness (Postfix 3.7)
compatibility_level = 3.6
queue_directory = {dd}/spool
data_directory = {dd}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dd}/log/postfix.log
maillog_file_prefixes = {dd}/log
syslog_name = tg-postfix-{smtp}
myhostname = mail.example.test
mydomain = example.test
myorigin = $mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
append_dot_mydomain = no
recipient_delimiter = +
smtpd_peername_lookup = no
disable_dns_lookups = yes
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
virtual_mailbox_domains = example.test
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
default_transport = error:5.7.1 test instance: no mail to the outside
relay_transport = error:5.7.1 test instance: no mail to the outside
smtpd_relay_restrictions = {restrictions}
smtpd_tls_security_level = may
smtpd_tls_chain_files = {key}, {cert}
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
delay_warning_time = 0h
in_flow_delay = 0
smtpd_error_sleep_time = 0
"#
        );
        // no chroot anywhere (it needs copies of /etc in the queue dir); postlog for maillog_file
        let master_cf = format!(
            "127.0.0.1:{smtp} inet n - n - - smtpd\n\
             127.0.0.1:{smtps} inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt\n\
             pickup unix n - n 60 1 pickup\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             tlsmgr unix - - n 1000? 1 tlsmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             proxywrite unix - - n - 1 proxymap\n\
             smtp unix - - n - - smtp\n\
             relay unix - - n - - smtp\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             lmtp unix - - n - - lmtp\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n\
             postlog unix-dgram n - n - 1 postlogd\n"
        );
        std::fs::write(conf.join("main.cf"), main_cf).expect("main.cf");
        std::fs::write(conf.join("master.cf"), master_cf).expect("master.cf");
        // Postfix waits ~2 s for a config file modified within the current second to settle
        let past = std::time::SystemTime::now() - Duration::from_secs(120);
        for f in ["main.cf", "master.cf"] {
            std::fs::File::options()
                .write(true)
                .open(conf.join(f))
                .and_then(|file| file.set_modified(past))
                .expect("backdate config");
        }
        let postfix = |action: &str| {
            Command::new("/usr/sbin/postfix")
                .arg("-c")
                .arg(&conf)
                .arg(action)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run postfix")
        };
        let check = postfix("check");
        std::fs::write(d.join("spool/quick-start"), "").expect("quick-start");
        let start = postfix("start");
        let log = d.join("log/postfix.log");
        if !check.status.success() || !start.status.success() {
            panic!(
                "postfix failed to start (check: {}, start: {}); `postfix -c {} check` shows why:\n{}",
                check.status,
                start.status,
                conf.display(),
                tail(&log, 20)
            );
        }
        let pid_file = d.join("spool/pid/master.pid");
        let mut pid = None;
        super::wait_until("postfix master.pid", Duration::from_secs(10), || {
            pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok());
            pid.is_some()
        });
        let pid = pid.expect("pid read");
        let guard = on_exit("/usr/sbin/postfix", &["-c".as_ref(), conf.as_os_str(), "stop".as_ref()]);
        let postfix = Postfix { dir, ports, pid, guard };
        if !wait_banner(smtp, "220", Duration::from_secs(15)) {
            panic!("postfix did not greet on 127.0.0.1:{smtp}:\n{}", tail(&log, 20));
        }
        postfix
    }

    pub fn smtp_port(&self) -> u16 {
        self.ports.port(0)
    }

    pub fn smtps_port(&self) -> u16 {
        self.ports.port(1)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/postfix.log")
    }

    pub fn is_running(&self) -> bool {
        alive(self.pid)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("conf"))
            .arg("stop")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        terminate(self.pid, Duration::from_secs(10));
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

fn id_of(flag: &str) -> u32 {
    super::process::run(Command::new("id").args([flag, "postfix"])).trim().parse().expect("numeric id")
}
