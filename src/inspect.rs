//! `ticketgate inspect PATH...`: explains how messages would be processed,
//! without a database (SPEC.md "ticketgate inspect"). Reads files, parses
//! them, classifies automatic mail and checks attachments with exactly the
//! functions the pipeline uses; never writes anything but the report.
//!
//! # Wire format (a promise to users and scripts: keys are only ever added)
//! One JSON object per message, one per line (JSON Lines), in argument order:
//!
//! | key | value |
//! |---|---|
//! | `file` | the path as given (`-` for standard input), or the path of a file inside a directory argument |
//! | `message_id` | Message-ID without angle brackets, or null |
//! | `from` | the From address, trimmed and lower case, or null |
//! | `subject` | decoded subject (`""` when missing); null when `error` is set |
//! | `auto` | null for mail written by a person, or why it is automatic: a code of [`crate::policy::auto::AutoKind`] (`auto-replied`, `auto-generated`, `bounce`, `list`, `bulk`, `read-receipt`) |
//! | `body` | the trimmed new text that would be posted; null when `error` is set |
//! | `attachments` | array of `{filename, size, detected, accepted, reason}` from [`crate::policy::attachments::check`]: sanitised name, decoded bytes, MIME type from the magic bytes or null, verdict, null or the refusal reason code |
//! | `sender` | what the headers alone show of the author ([`crate::policy::sender::of`]): `{address, authenticated, problem}`: the one From address or null, `dmarc`/`dkim`/null from a trusted `Authentication-Results` header (`security.trusted_authserv_ids`) for that address, null or `ambiguous_sender`; null when `error` is set. Reply tokens need the database and are not shown |
//! | `bounce` | for a delivery status report: `{recipients, original_message_id, permanent}`; else null |
//! | `error` | null, or why the message could not be used at all: a [`crate::parse::ParseError`] code (`empty_message`, `no_headers`, `unparseable`), `message_too_large` (over `limits.max_message_bytes`), or `unreadable: <reason>` when the file could not be read |
//!
//! When `error` is set, the other keys are null and `attachments` is empty.
//!
//! # Arguments
//! `-` reads one message from standard input. A directory means every file
//! under it, recursively (so a Maildir's `cur/` and `new/` are both covered),
//! sorted by name, depth first; entries whose name starts with `.` are skipped
//! and symbolic links to directories are not followed.
//!
//! # Exit status
//! [`run`] returns `Ok(true)` when every file could be read, `Ok(false)` when at
//! least one could not (its line carries `unreadable: …`). A message that was
//! read but cannot be parsed is reported on its line and does not change the
//! status: the tool did its job of explaining it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::parse::Bounce;
use crate::policy::attachments::Checked;
use crate::policy::auto::AutoKind;
use crate::policy::sender::Sender;

/// One line of output.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub auto: Option<AutoKind>,
    pub body: Option<String>,
    pub attachments: Vec<Checked>,
    pub sender: Option<Sender>,
    pub bounce: Option<BounceReport>,
    pub error: Option<String>,
}

/// A bounce as reported.
#[derive(Debug, Serialize)]
pub struct BounceReport {
    pub recipients: Vec<String>,
    pub original_message_id: Option<String>,
    pub permanent: bool,
}

impl From<Bounce> for BounceReport {
    fn from(b: Bounce) -> Self {
        BounceReport { recipients: b.recipients, original_message_id: b.original_message_id, permanent: b.permanent }
    }
}

impl Report {
    fn failed(file: String, error: String) -> Report {
        Report {
            file,
            message_id: None,
            from: None,
            subject: None,
            auto: None,
            body: None,
            attachments: Vec::new(),
            sender: None,
            bounce: None,
            error: Some(error),
        }
    }
}

/// Inspects every path (see the module doc); writes one JSON line per message.
pub fn run(config: &Config, paths: &[String], out: &mut dyn Write) -> std::io::Result<bool> {
    let mut all_read = true;
    for path in paths {
        let files = if path == "-" { vec![Source::Stdin] } else { expand(Path::new(path)) };
        for source in files {
            let (name, raw) = match source {
                Source::Stdin => ("-".to_string(), read_limited(std::io::stdin().lock(), config)),
                Source::File(p) => {
                    let name = p.to_string_lossy().into_owned();
                    let raw = std::fs::File::open(&p).and_then(|f| read_limited(f, config));
                    (name, raw)
                }
                Source::Unlistable(p, e) => (p.to_string_lossy().into_owned(), Err(e)),
            };
            let report = match raw {
                Ok(Some(raw)) => inspect(config, name, &raw),
                Ok(None) => Report::failed(name, "message_too_large".into()),
                Err(e) => {
                    all_read = false;
                    Report::failed(name, format!("unreadable: {}", io_reason(&e)))
                }
            };
            serde_json::to_writer(&mut *out, &report)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(all_read)
}

/// The report for one raw message.
pub fn inspect(config: &Config, file: String, raw: &[u8]) -> Report {
    match crate::parse::parse(raw) {
        Err(e) => Report::failed(file, e.code().as_str().into()),
        Ok(p) => Report {
            file,
            auto: crate::policy::auto::classify(&p),
            attachments: p
                .attachments
                .iter()
                .map(|a| crate::policy::attachments::check(a, &config.attachments))
                .chain(p.skipped_attachments.iter().map(crate::policy::attachments::too_many))
                .collect(),
            sender: Some(crate::policy::sender::of(
                &p.from_headers,
                &p.authentication_results,
                &config.security.trusted_authserv_ids,
            )),
            bounce: p.bounce.map(BounceReport::from),
            message_id: p.message_id,
            from: p.from,
            subject: Some(p.subject),
            body: Some(p.body),
            error: None,
        },
    }
}

enum Source {
    Stdin,
    File(PathBuf),
    /// A directory that could not be listed.
    Unlistable(PathBuf, std::io::Error),
}

/// A file argument as itself; a directory as its files, recursively and sorted.
fn expand(path: &Path) -> Vec<Source> {
    if !path.is_dir() {
        return vec![Source::File(path.to_path_buf())];
    }
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e),
    };
    let mut entries = match entries {
        Ok(entries) => entries,
        Err(e) => return vec![Source::Unlistable(path.to_path_buf(), e)],
    };
    entries.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for entry in entries {
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let p = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(expand(&p)),
            _ => out.push(Source::File(p)),
        }
    }
    out
}

/// Reads at most `limits.max_message_bytes`; `None` when the input is larger.
fn read_limited(r: impl Read, config: &Config) -> std::io::Result<Option<Vec<u8>>> {
    let max = config.limits.max_message_bytes;
    let mut raw = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut raw)?;
    Ok((raw.len() as u64 <= max).then_some(raw))
}

/// The OS reason without Rust's "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
