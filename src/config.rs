//! Configuration: one TOML file, built-in defaults, and environment overrides.
//!
//! Precedence, lowest first: the defaults in [`Config::default`] (which equal
//! `config/ticketgate.toml`), then the file, then environment variables. Every
//! key can be overridden: `TICKETGATE_` followed by the key path in upper case
//! with `__` between levels, e.g. `TICKETGATE_WEB__LISTEN=0.0.0.0:8080` or
//! `TICKETGATE_IMAP__0__PASSWORD=…` (array entries by index). A value is read
//! as TOML when it parses as such (numbers, booleans, arrays) and as a string
//! otherwise.
//!
//! Relative paths are resolved against `data_dir`; `data_dir` itself against
//! the working directory. [`Config::validate`] reports every problem at once,
//! each naming its key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A value that must never reach a log line.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, attachments, secret and default mail folders live.
    pub data_dir: PathBuf,
    pub support: SupportConfig,
    pub store: StoreConfig,
    pub maildir: MaildirConfig,
    /// IMAP mailboxes; none by default (the Maildir is the embedded source).
    pub imap: Vec<ImapConfig>,
    pub outbound: OutboundConfig,
    pub web: WebConfig,
    pub metrics: MetricsConfig,
    pub security: SecurityConfig,
    pub attachments: AttachmentRules,
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SupportConfig {
    /// The support address; reply addresses are `LOCAL+TOKEN@DOMAIN` of it.
    pub address: String,
    /// Display name on outgoing mail.
    pub name: String,
    /// Base URL of the web portal, used in deep links.
    pub public_url: String,
    /// Create tickets for senders who are not known users (in a team named
    /// after their domain) instead of sending them a notice.
    pub allow_unknown_senders: bool,
    pub sales_contact: String,
    pub billing_contact: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file.
    pub path: PathBuf,
    /// Content-addressed attachment files.
    pub blobs: PathBuf,
    /// How long a writer waits for the database lock before giving up
    /// (`ingest` then exits 75 so the MTA retries).
    pub busy_timeout_millis: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MaildirConfig {
    /// Watched when set to a non-empty path: new mail in `new/`, processed
    /// mail moved to `cur/`, quarantined mail to `.Quarantine/cur/`.
    pub path: PathBuf,
    pub poll_millis: u64,
    /// Label shown on tickets that came in through this source.
    pub label: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connect, then STARTTLS; refuses to continue without it.
    Starttls,
    /// No TLS at all. Only for loopback tests; must be chosen explicitly.
    PlainInsecure,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Shown on tickets from this mailbox, e.g. "support" or "billing".
    pub label: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Extra CA certificates (PEM) to trust, for private CAs.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    pub folder: String,
    pub processed_folder: String,
    pub quarantine_folder: String,
    /// Use IDLE when the server offers it.
    pub idle: bool,
    /// Polling interval when IDLE is off or missing.
    pub poll_seconds: u64,
    /// Messages fetched and committed together during a backlog.
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Write each mail as an `.eml` file into `outbound.eml_dir`.
    Eml,
    Smtp,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    pub transport: Transport,
    pub eml_dir: PathBuf,
    pub smtp: SmtpConfig,
    /// Give up on a temporarily failing mail after this long.
    pub retry_deadline_minutes: u64,
    /// First retry delay; doubled on each attempt.
    pub retry_base_seconds: u64,
    pub retry_max_seconds: u64,
    /// Mails handed to the transport concurrently.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address the portal listens on (`host:port`, the host an IP or a name
    /// resolved at start); empty disables the portal.
    pub listen: String,
    /// Mark cookies `Secure`. Defaults to true when `support.public_url` is https.
    pub secure_cookies: Option<bool>,
    /// How long a deep link in a notification stays valid.
    pub link_ttl_days: u64,
    pub session_ttl_hours: u64,
    /// Failed logins allowed per client address in `login_window_minutes`;
    /// past it, an account's logins back off instead of locking.
    pub max_failed_logins: u32,
    pub login_window_minutes: u64,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` names the
    /// client; from any other peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The IANA time zone the portal shows times in for users who chose none
    /// (each user can pick their own on "Your account").
    pub time_zone: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); empty (the default) turns it off.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// The server secret (hex); generated with mode 0600 on first start.
    pub secret_file: PathBuf,
    /// Older secrets (hex) that still verify tokens and links while being rotated out.
    pub previous_secrets: Vec<Secret>,
    /// authserv-ids whose `Authentication-Results` header is believed.
    pub trusted_authserv_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentRules {
    /// Allowed file name extensions, lower case, without the dot.
    pub allowed_extensions: Vec<String>,
    /// Largest decoded size of one attachment, in bytes.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// At most one notice (unknown sender, refusal) per address in this many minutes.
    pub notice_interval_minutes: u64,
    /// Largest raw message accepted; larger ones are quarantined.
    pub max_message_bytes: u64,
    /// `serve` removes quarantine entries (and their kept files) older than this many days; 0 keeps them.
    pub quarantine_retention_days: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            support: SupportConfig::default(),
            store: StoreConfig::default(),
            maildir: MaildirConfig::default(),
            imap: Vec::new(),
            outbound: OutboundConfig::default(),
            web: WebConfig::default(),
            metrics: MetricsConfig::default(),
            security: SecurityConfig::default(),
            attachments: AttachmentRules::default(),
            limits: Limits::default(),
        }
    }
}

impl Default for SupportConfig {
    fn default() -> Self {
        SupportConfig {
            address: "support@localhost".into(),
            name: "Support".into(),
            public_url: "http://127.0.0.1:8080".into(),
            allow_unknown_senders: false,
            sales_contact: "sales@localhost".into(),
            billing_contact: "billing@localhost".into(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { path: "ticketgate.sqlite".into(), blobs: "blobs".into(), busy_timeout_millis: 10_000 }
    }
}

impl Default for MaildirConfig {
    fn default() -> Self {
        MaildirConfig { path: "inbox".into(), poll_millis: 500, label: "support".into() }
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            label: "support".into(),
            host: String::new(),
            port: 993,
            tls: TlsMode::Implicit,
            ca_file: None,
            username: String::new(),
            password: Secret::default(),
            folder: "INBOX".into(),
            processed_folder: "Processed".into(),
            quarantine_folder: "Quarantine".into(),
            idle: true,
            poll_seconds: 60,
            batch_size: 100,
        }
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            transport: Transport::Eml,
            eml_dir: "outbox".into(),
            smtp: SmtpConfig::default(),
            retry_deadline_minutes: 48 * 60,
            retry_base_seconds: 30,
            retry_max_seconds: 3600,
            concurrency: 4,
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            tls: TlsMode::Starttls,
            ca_file: None,
            username: String::new(),
            password: Secret::default(),
            timeout_seconds: 30,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8080".into(),
            secure_cookies: None,
            link_ttl_days: 30,
            session_ttl_hours: 12,
            max_failed_logins: 5,
            login_window_minutes: 15,
            trusted_proxies: Vec::new(),
            time_zone: "UTC".into(),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig { secret_file: "secret".into(), previous_secrets: Vec::new(), trusted_authserv_ids: Vec::new() }
    }
}

/// The allow-list of SPEC.md "Attachments".
pub const DEFAULT_EXTENSIONS: &[&str] =
    &["doc", "docx", "xls", "xlsx", "csv", "txt", "pdf", "bmp", "jpg", "jpeg", "png", "tar", "zip"];

impl Default for AttachmentRules {
    fn default() -> Self {
        AttachmentRules {
            allowed_extensions: DEFAULT_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            max_bytes: 15 * 1024 * 1024,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { notice_interval_minutes: 60, max_message_bytes: 40 * 1024 * 1024, quarantine_retention_days: 30 }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

const ENV_PREFIX: &str = "TICKETGATE_";
/// Variables with the prefix that belong to the command line, not the config.
const ENV_NOT_CONFIG: &[&str] = &["TICKETGATE_CONFIG", "TICKETGATE_NEW_PASSWORD"];

impl Config {
    /// Reads `path` (or only the defaults when `None`), applies the
    /// environment overrides, resolves paths and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                let table = toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Syntax { path: p.into(), message: e.to_string() })?;
                (table, p.to_path_buf())
            }
            None => (toml::Table::new(), PathBuf::from("(defaults)")),
        };
        let mut env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_CONFIG.contains(&k.as_str()))
            .collect();
        env.sort();
        let template = key_types();
        for (var, value) in env {
            apply_override(&mut table, &template, &var, &value)?;
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { path: origin, message: e.to_string() })?;
        config.resolve_paths();
        config.validate()?;
        Ok(config)
    }

    /// Makes every relative path absolute against the data directory.
    fn resolve_paths(&mut self) {
        let base = self.data_dir.clone();
        let within = |p: &mut PathBuf| {
            if p.as_os_str().is_empty() || p.is_absolute() {
                return;
            }
            *p = base.join(&*p);
        };
        within(&mut self.store.path);
        within(&mut self.store.blobs);
        within(&mut self.maildir.path);
        within(&mut self.outbound.eml_dir);
        within(&mut self.security.secret_file);
    }

    /// Checks every value; all problems are reported together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut bad = |key: &str, why: &str| errors.push(format!("  {key}: {why}"));
        if crate::address::split(&self.support.address).is_none() {
            bad("support.address", "must be an address like support@example.com");
        } else if self.support.address.contains('+') {
            bad("support.address", "must not contain '+': it is the tag delimiter");
        }
        if !(self.support.public_url.starts_with("http://") || self.support.public_url.starts_with("https://")) {
            bad("support.public_url", "must start with http:// or https://");
        }
        for (key, listen) in [("web.listen", &self.web.listen), ("metrics.listen", &self.metrics.listen)] {
            if !listen.is_empty() && !is_host_port(listen) {
                bad(key, "must be host:port (an IP or a host name), e.g. 127.0.0.1:8080 or localhost:8080, or empty");
            }
        }
        for p in &self.web.trusted_proxies {
            if crate::proxy::Cidr::parse(p).is_none() {
                bad("web.trusted_proxies", &format!("{p:?}: an IP address or CIDR, e.g. 127.0.0.1 or 10.0.0.0/8"));
            }
        }
        if self.web.link_ttl_days == 0 {
            bad("web.link_ttl_days", "must be at least 1");
        }
        if crate::format::zone(&self.web.time_zone).is_none() {
            bad("web.time_zone", &format!("{:?}: an IANA time zone, e.g. UTC or Europe/Berlin", self.web.time_zone));
        }
        if self.attachments.max_bytes == 0 {
            bad("attachments.max_bytes", "must be more than 0");
        }
        for ext in &self.attachments.allowed_extensions {
            if ext.is_empty()
                || ext.starts_with('.')
                || ext.chars().any(|c| !c.is_ascii_lowercase() && !c.is_ascii_digit())
            {
                bad("attachments.allowed_extensions", &format!("{ext:?}: lower-case letters and digits, no dot"));
            }
        }
        for (i, s) in self.security.previous_secrets.iter().enumerate() {
            if data_encoding::HEXLOWER_PERMISSIVE.decode(s.expose().as_bytes()).map(|k| k.len() < 16).unwrap_or(true) {
                bad(&format!("security.previous_secrets[{i}]"), "must be at least 32 hex digits");
            }
        }
        if self.outbound.transport == Transport::Smtp && self.outbound.smtp.host.is_empty() {
            bad("outbound.smtp.host", "must be set when outbound.transport = \"smtp\"");
        }
        if self.outbound.concurrency == 0 {
            bad("outbound.concurrency", "must be at least 1");
        }
        let mut labels = std::collections::HashSet::new();
        for (i, m) in self.imap.iter().enumerate() {
            let key = |k: &str| format!("imap[{i}].{k}");
            if m.host.is_empty() {
                bad(&key("host"), "must be set");
            }
            if m.username.is_empty() {
                bad(&key("username"), "must be set");
            }
            if m.password.expose().is_empty() {
                bad(&key("password"), &format!("must be set (or TICKETGATE_IMAP__{i}__PASSWORD)"));
            }
            if m.label.is_empty() || !labels.insert(m.label.clone()) {
                bad(&key("label"), "must be set and unique among mailboxes");
            }
            if m.folder == m.processed_folder || m.folder == m.quarantine_folder {
                bad(&key("processed_folder"), "processed and quarantine folders must differ from the watched folder");
            }
            if m.batch_size == 0 || m.poll_seconds == 0 {
                bad(&key("batch_size"), "batch_size and poll_seconds must be at least 1");
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(errors)) }
    }

    /// Whether session cookies carry `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.web.secure_cookies.unwrap_or_else(|| self.support.public_url.starts_with("https://"))
    }
}

/// `host:port` with a port number and a host that is an IP (`[::1]` in
/// brackets) or a host name; names are resolved when the listener starts.
fn is_host_port(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    port.parse::<u16>().is_ok()
        && !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && !label.starts_with('-') && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The defaults as a TOML table (with one default mailbox in `imap`): tells
/// which keys are strings, so `TICKETGATE_IMAP__0__PASSWORD=12345` stays text.
fn key_types() -> toml::Table {
    let config = Config { imap: vec![ImapConfig::default()], ..Config::default() };
    toml::Table::try_from(config).expect("the default config serialises")
}

/// Whether the template holds a string at `path` (list indices look at entry 0).
fn is_string_key(template: &toml::Table, path: &[String]) -> bool {
    let mut node = toml::Value::Table(template.clone());
    for seg in path {
        node = match (&node, seg.parse::<usize>()) {
            (toml::Value::Array(a), Ok(_)) => match a.first() {
                Some(v) => v.clone(),
                None => return false,
            },
            (toml::Value::Table(t), _) => match t.get(seg) {
                Some(v) => v.clone(),
                None => return false,
            },
            _ => return false,
        };
    }
    matches!(node, toml::Value::String(_))
}

/// Sets `TICKETGATE_A__B__C=value` into `table` at `a.b.c`.
fn apply_override(table: &mut toml::Table, template: &toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
    let err = |message: &str| ConfigError::Env { var: var.into(), message: message.into() };
    if path.iter().any(|s| s.is_empty()) {
        return Err(err("empty key segment"));
    }
    let value = if is_string_key(template, &path) {
        toml::Value::String(value.into())
    } else {
        toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.into()))
    };
    let mut node = table;
    let (last, parents) = path.split_last().expect("path has at least one segment");
    let mut i = 0;
    while i < parents.len() {
        let seg = &parents[i];
        let next_is_index = parents.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        match next_is_index {
            Some(index) => {
                let array = node
                    .entry(seg.clone())
                    .or_insert_with(|| toml::Value::Array(Vec::new()))
                    .as_array_mut()
                    .ok_or_else(|| err(&format!("{seg} is not a list")))?;
                while array.len() <= index {
                    array.push(toml::Value::Table(toml::Table::new()));
                }
                node = array[index].as_table_mut().ok_or_else(|| err("list entry is not a table"))?;
                i += 2;
            }
            None => {
                node = node
                    .entry(seg.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| err(&format!("{seg} is not a table")))?;
                i += 1;
            }
        }
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ticketgate.toml");
        let loaded = Config::load_with_env(Some(&path), env(&[])).unwrap();
        let mut defaults = Config::default();
        defaults.resolve_paths();
        assert_eq!(loaded, defaults);
    }

    #[test]
    fn production_example_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example-production.toml");
        let c = Config::load_with_env(
            Some(&path),
            env(&[("TICKETGATE_IMAP__0__PASSWORD", "pw"), ("TICKETGATE_IMAP__1__PASSWORD", "pw2")]),
        )
        .unwrap();
        assert_eq!(c.imap.len(), 2);
        assert_eq!(c.outbound.transport, Transport::Smtp);
    }

    #[test]
    fn env_overrides_win_over_file_and_reach_arrays() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("TICKETGATE_WEB__LISTEN", "127.0.0.1:9999"),
                ("TICKETGATE_ATTACHMENTS__MAX_BYTES", "1000"),
                ("TICKETGATE_IMAP__0__HOST", "imap.example.com"),
                ("TICKETGATE_IMAP__0__USERNAME", "u"),
                ("TICKETGATE_IMAP__0__PASSWORD", "12345"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.web.listen, "127.0.0.1:9999");
        assert_eq!(c.attachments.max_bytes, 1000);
        assert_eq!(c.imap[0].host, "imap.example.com");
        assert_eq!(c.imap[0].password.expose(), "12345", "a numeric-looking password stays a string");
        assert_eq!(format!("{:?}", c.imap[0].password), "***");
    }

    #[test]
    fn command_line_variables_are_not_config_keys() {
        let c = Config::load_with_env(
            None,
            env(&[("TICKETGATE_CONFIG", "/etc/tg.toml"), ("TICKETGATE_NEW_PASSWORD", "a long password")]),
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Config::load_with_env(
            None,
            env(&[
                ("TICKETGATE_SUPPORT__ADDRESS", "nope"),
                ("TICKETGATE_WEB__LISTEN", "localhost"),
                ("TICKETGATE_WEB__TIME_ZONE", "Europe/Atlantis"),
                ("TICKETGATE_IMAP__0__HOST", "h"),
            ]),
        )
        .unwrap_err()
        .to_string();
        for key in ["support.address", "web.listen", "web.time_zone", "imap[0].username", "imap[0].password"] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
    }

    #[test]
    fn listen_addresses_take_host_names() {
        for ok in ["localhost:8080", "portal.example.com:443", "127.0.0.1:8080", "[::1]:9100"] {
            let c =
                Config::load_with_env(None, env(&[("TICKETGATE_WEB__LISTEN", ok), ("TICKETGATE_METRICS__LISTEN", ok)]));
            assert!(c.is_ok(), "{ok}: {c:?}");
        }
        for bad in ["localhost", "localhost:http", ":8080", "a b:80", "host:99999"] {
            let err = Config::load_with_env(None, env(&[("TICKETGATE_METRICS__LISTEN", bad)])).unwrap_err().to_string();
            assert!(err.contains("metrics.listen"), "{bad}: {err}");
        }
        assert!(Config::default().metrics.listen.is_empty(), "metrics are off by default");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[web]\nlisen = \"x\"\n").unwrap();
        let err = Config::load_with_env(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn relative_paths_live_in_data_dir() {
        let c = Config::load_with_env(None, env(&[("TICKETGATE_DATA_DIR", "/srv/tg")])).unwrap();
        assert_eq!(c.store.path, Path::new("/srv/tg/ticketgate.sqlite"));
        assert_eq!(c.maildir.path, Path::new("/srv/tg/inbox"));
    }
}
