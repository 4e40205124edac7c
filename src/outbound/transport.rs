//! The two ways a rendered mail leaves: SMTP (see [`super::smtp`]: kept
//! connections, STARTTLS or implicit TLS, AUTH) and a folder of `.eml` files
//! (the embedded default). Both take the rendered bytes as they are: the
//! Message-ID and every header were fixed when the mail was queued.

use std::path::PathBuf;

use anyhow::Context;
use lettre::Address;
use lettre::address::Envelope;

use super::Failure;
use super::smtp::Smtp;
use crate::config::{OutboundConfig, Transport as Kind};

pub enum Transport {
    Smtp(Box<Smtp>),
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
            Kind::Smtp => Ok(Transport::Smtp(Box::new(Smtp::new(&c.smtp, c.concurrency)?))),
        }
    }

    /// Hands one mail over; Ok only once the server (or the disk) has it.
    pub async fn send(&self, from: &str, to: &str, message_id: &str, bytes: &[u8]) -> Result<(), Failure> {
        match self {
            Transport::Smtp(smtp) => {
                let parse = |a: &str| a.parse::<Address>().map_err(|e| Failure::Permanent(format!("{a:?}: {e}")));
                let envelope = Envelope::new(Some(parse(from)?), vec![parse(to)?])
                    .map_err(|e| Failure::Permanent(e.to_string()))?;
                smtp.send(&envelope, bytes).await
            }
            Transport::Eml(dir) => {
                let path = dir.join(eml_name(message_id));
                // The envelope sender, as a delivering MTA records it.
                let mut raw = format!("Return-Path: <{from}>\r\n").into_bytes();
                raw.extend_from_slice(bytes);
                tokio::task::spawn_blocking(move || crate::durable::write(&path, &raw))
                    .await
                    .map_err(|e| Failure::Temporary(e.to_string()))?
                    .map_err(|e| Failure::Temporary(format!("writing the .eml file: {e}")))
            }
        }
    }

    /// Closes kept connections politely.
    pub async fn shutdown(&self) {
        if let Transport::Smtp(smtp) = self {
            smtp.shutdown().await;
        }
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
        assert_eq!(
            std::fs::read(dir.path().join("n.abc@x.test.eml")).unwrap(),
            b"Return-Path: <s@x.test>\r\nsecond",
            "the envelope sender is recorded"
        );
    }
}
