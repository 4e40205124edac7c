//! The embedded default source: a local Maildir. New mail is taken from
//! `new/` (never `tmp/`, where writers are still busy), processed mail is
//! renamed into `cur/` with the Seen flag, and quarantined mail into
//! `.Quarantine/cur/` with the reason in `.Quarantine/reasons/NAME`. Renames
//! within one filesystem are atomic, so a message is always in exactly one
//! place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::App;
use crate::inbound::{BATCH_BYTES, Settle};
use crate::pipeline::{IngestError, Outcome};

/// Messages read and committed together, at most.
const BATCH: usize = 100;

pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// Opens the Maildir at `root`, creating its folders when missing.
    pub fn open(root: &Path) -> std::io::Result<Maildir> {
        for sub in ["new", "cur", "tmp", ".Quarantine/new", ".Quarantine/cur", ".Quarantine/tmp", ".Quarantine/reasons"]
        {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Maildir { root: root.to_path_buf() })
    }

    /// Names in `new/`, oldest first (Maildir names start with the delivery time).
    pub fn pending(&self) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("new"))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Processes everything in `new/` once; returns how many messages were settled.
    ///
    /// Messages are read and committed in batches bounded by bytes
    /// ([`BATCH_BYTES`]) as well as by count. A message over
    /// `limits.max_message_bytes` (known from its file size) is never read
    /// whole: [`App::quarantine_oversized`] streams it.
    pub fn pass(&self, pipeline: &App, label: &str) -> Result<usize, PassError> {
        let max = pipeline.config().limits.max_message_bytes;
        let mut settled = 0;
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut bytes = 0u64;
        for name in self.pending()? {
            let path = self.root.join("new").join(&name);
            // A file gone between listing and reading was taken by another process.
            let size = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if !batch.is_empty() && (size > max || batch.len() >= BATCH || bytes + size > BATCH_BYTES) {
                settled += self.commit(pipeline, label, std::mem::take(&mut batch))?;
                bytes = 0;
            }
            if size > max {
                let outcome = match std::fs::File::open(&path) {
                    Ok(mut file) => pipeline.quarantine_oversized(&mut file, label)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                self.settle(&name, &outcome)?;
                settled += 1;
                continue;
            }
            match std::fs::read(&path) {
                Ok(raw) => {
                    bytes += raw.len() as u64;
                    batch.push((name, raw));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        settled += self.commit(pipeline, label, batch)?;
        Ok(settled)
    }

    /// Ingests one batch and files its messages once it has committed.
    fn commit(&self, pipeline: &App, label: &str, batch: Vec<(String, Vec<u8>)>) -> Result<usize, PassError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let (names, raws): (Vec<String>, Vec<Vec<u8>>) = batch.into_iter().unzip();
        let outcomes = pipeline.ingest_batch(&raws, label)?;
        drop(raws);
        for (name, outcome) in names.iter().zip(&outcomes) {
            self.settle(name, outcome)?;
        }
        Ok(names.len())
    }

    fn settle(&self, name: &str, outcome: &Outcome) -> std::io::Result<()> {
        let from = self.root.join("new").join(name);
        let base = name.split(':').next().unwrap_or(name);
        match Settle::of(outcome) {
            Settle::Leave => Ok(()),
            Settle::Processed => std::fs::rename(from, self.root.join("cur").join(format!("{base}:2,S"))),
            Settle::Quarantined => {
                let reason = outcome.quarantine_reason().unwrap_or("unknown");
                std::fs::write(self.root.join(".Quarantine/reasons").join(base), format!("{reason}\n"))?;
                std::fs::rename(from, self.root.join(".Quarantine/cur").join(format!("{base}:2,")))
            }
        }
    }

    /// Delivers `raw` into `new/` the Maildir way (write to `tmp/`, fsync, rename).
    pub fn deliver(&self, raw: &[u8]) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let name =
            format!("{}.{}_{}.ticketgate", crate::clock::now(), std::process::id(), crate::signing::random_token());
        let tmp = self.root.join("tmp").join(&name);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(raw)?;
        f.sync_all()?;
        let dest = self.root.join("new").join(&name);
        std::fs::rename(&tmp, &dest)?;
        Ok(dest)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("maildir: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Watches the Maildir until `shutdown` turns true. A failed (or panicked)
/// pass is logged and retried at the next tick; messages stay in `new/`
/// until settled.
pub async fn run(pipeline: App, mut shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = pipeline.config().maildir.clone();
    let maildir = std::sync::Arc::new(Maildir::open(&config.path)?);
    tracing::info!(path = %config.path.display(), "watching the Maildir inbox");
    let mut tick = tokio::time::interval(Duration::from_millis(config.poll_millis.max(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        let (p, m, label) = (pipeline.clone(), maildir.clone(), config.label.clone());
        match tokio::task::spawn_blocking(move || m.pass(&p, &label)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(messages = n, "maildir pass done"),
            Ok(Err(e)) => tracing::error!(error = %e, "maildir pass failed; retrying"),
            // The pipeline catches panics per message; whatever else panics must not end the watcher.
            Err(e) => tracing::error!(error = %e, "maildir pass panicked; retrying"),
        }
    }
}
