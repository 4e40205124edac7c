//! The two ways a rendered mail leaves: SMTP (lettre, pooled connections,
//! STARTTLS or implicit TLS, AUTH) and a folder of `.eml` files (the embedded
//! default). Both take the stored bytes as they are: the Message-ID and every
//! header were fixed when the mail was queued.
//!
//! Failures are sorted into temporary (retry later) and permanent (give up):
//! SMTP 5xx replies about the message are permanent; 4xx replies, refused or
//! dropped connections, timeouts and TLS trouble are temporary. A 5xx on
//! AUTH (530/534/535/538) is a problem of our own configuration, not of the
//! mail, so it is treated as temporary: fixing the password then delivers
//! everything that waited instead of failing the whole outbox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{OutboundConfig, TlsMode, Transport as Kind};

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again later.
    Temporary(String),
    /// The server refused this mail for good.
    Permanent(String),
}

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in this folder.
    Eml(PathBuf),
}

impl Transport {
    pub fn from_config(c: &OutboundConfig) -> anyhow::Result<Transport> {
        match c.transport {
            Kind::Eml => {
                std::fs::create_dir_all(&c.eml_dir)
                    .with_context(|| format!("creating outbound.eml_dir {}", c.eml_dir.display()))?;
                Ok(Transport::Eml(c.eml_dir.clone()))
            }
            Kind::Smtp => {
                let s = &c.smtp;
                let tls = || -> anyhow::Result<TlsParameters> {
                    let mut b = TlsParameters::builder(s.host.clone());
                    if let Some(ca) = &s.ca_file {
                        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                        b = b.add_root_certificate(Certificate::from_pem(&pem).context("outbound.smtp.ca_file")?);
                    }
                    Ok(b.build()?)
                };
                let tls = match s.tls {
                    TlsMode::Implicit => Tls::Wrapper(tls()?),
                    TlsMode::Starttls => Tls::Required(tls()?),
                    TlsMode::PlainInsecure => Tls::None,
                };
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                    .port(s.port)
                    .tls(tls)
                    .timeout(Some(Duration::from_secs(s.timeout_seconds.max(1))))
                    .pool_config(PoolConfig::new().max_size(c.concurrency.max(1) as u32));
                if !s.username.is_empty() {
                    b = b.credentials(Credentials::new(s.username.clone(), s.password.expose().to_string()));
                }
                Ok(Transport::Smtp(b.build()))
            }
        }
    }

    /// Hands one mail over; Ok only once the server (or the disk) has it.
    pub async fn send(&self, from: &str, to: &str, message_id: &str, raw: &[u8]) -> Result<(), Failure> {
        match self {
            Transport::Smtp(smtp) => {
                let parse = |a: &str| a.parse::<Address>().map_err(|e| Failure::Permanent(format!("{a:?}: {e}")));
                let envelope = Envelope::new(Some(parse(from)?), vec![parse(to)?])
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                smtp.send_raw(&envelope, raw).await.map(drop).map_err(classify)
            }
            Transport::Eml(dir) => {
                let path = dir.join(eml_name(message_id));
                let raw = raw.to_vec();
                tokio::task::spawn_blocking(move || write_atomically(&path, &raw))
                    .await
                    .map_err(|e| Failure::Temporary(e.to_string()))?
                    .map_err(|e| Failure::Temporary(format!("writing the .eml file: {e}")))
            }
        }
    }

    /// Closes pooled connections politely.
    pub async fn shutdown(&self) {
        if let Transport::Smtp(smtp) = self {
            smtp.shutdown().await;
        }
    }
}

/// Whether an SMTP reply code is about our AUTH, not about the mail.
fn is_auth_code(code: &str) -> bool {
    matches!(code, "530" | "534" | "535" | "538")
}

fn classify(e: SmtpError) -> Failure {
    let text = e.to_string();
    let code = e.status().map(|c| c.to_string());
    if e.is_permanent() && !code.as_deref().is_some_and(is_auth_code) {
        Failure::Permanent(text)
    } else if e.is_client() {
        // lettre refused to send before talking (e.g. a non-ASCII address to
        // a server without SMTPUTF8): trying again cannot help.
        Failure::Permanent(text)
    } else {
        Failure::Temporary(text)
    }
}

/// The file name for a Message-ID: the same id always gives the same name,
/// so a repeat after a crash overwrites the first copy.
pub fn eml_name(message_id: &str) -> String {
    let safe: String = message_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') { c } else { '_' })
        .collect();
    format!("{safe}.eml")
}

/// Writes `path` so a reader never sees half a file and a power cut never
/// loses an acknowledged one: temp file, fsync, rename, fsync the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eml_files_are_named_by_message_id_and_repeats_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::Eml(dir.path().to_path_buf());
        t.send("s@x.test", "a@x.test", "n.abc@x.test", b"first").await.unwrap();
        t.send("s@x.test", "a@x.test", "n.abc@x.test", b"second").await.unwrap();
        t.send("s@x.test", "a@x.test", "../evil/../x@x.test", b"third").await.unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, vec![".._evil_.._x@x.test.eml", "n.abc@x.test.eml"]);
        assert_eq!(std::fs::read(dir.path().join("n.abc@x.test.eml")).unwrap(), b"second");
    }
}
