//! Builds one outgoing mail as raw RFC 5322 bytes: headers that thread it
//! into the ticket's conversation, `multipart/alternative` text + HTML.
//!
//! Header safety: every value that came from a user (names, subjects,
//! Message-IDs of stored mail) is either encoded by lettre (RFC 2047, so a
//! CR/LF inside a value can never start a new header) or, for Message-IDs,
//! only used when it is plain `id-left@id-right` text. Subjects are also
//! stripped of control characters here, so no client shows a broken line.
//!
//! Header lines stay within RFC 5322's 998 characters: lettre folds values at
//! spaces, and a Message-ID too long to fit on one line beside its header name
//! is not used (a stored id may be up to [`crate::parse::MAX_ID_LEN`] long).
//!
//! Cost is linear in the body: line ends are made CRLF here in one pass, so
//! lettre's own conversion (one `String::insert` per bare LF, quadratic) has
//! nothing left to do.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, MultiPartKind, SinglePart};
use lettre::{Address, Message};

/// How many of the newest thread Message-IDs go into `References` besides the root.
pub const REFERENCES_TAIL: usize = 6;

/// Longest header line RFC 5322 allows, without the CRLF.
pub const MAX_HEADER_LINE: usize = 998;
/// Longest Message-ID (no brackets) used in a header: `In-Reply-To: <id>`
/// must fit on one line, as must a folded ` <id>` of `References`.
const MAX_HEADER_ID_LEN: usize = MAX_HEADER_LINE - "In-Reply-To: <>".len();

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{0:?} is not a usable email address")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// One mail, ready to be built.
pub struct Outgoing<'a> {
    /// Support display name and address (From).
    pub from_name: &'a str,
    pub from: &'a str,
    pub to_name: &'a str,
    pub to: &'a str,
    /// The recipient's own tokenized reply address.
    pub reply_to: &'a str,
    pub subject: &'a str,
    /// Our Message-ID, without brackets.
    pub message_id: &'a str,
    /// Without brackets.
    pub in_reply_to: Option<&'a str>,
    /// Without brackets, oldest first.
    pub references: &'a [String],
    /// The ticket's subject, for Outlook's conversation grouping.
    pub thread_topic: Option<&'a str>,
    /// `auto-generated` for notifications, `auto-replied` for notices (RFC 3834).
    pub auto_submitted: &'a str,
    /// The Date (Unix seconds): when the event happened, not when the mail was built.
    pub date: i64,
    pub text: String,
    pub html: String,
}

/// Whether a Message-ID (no brackets) can go into a header as is.
pub fn is_plain_message_id(id: &str) -> bool {
    id.len() <= MAX_HEADER_ID_LEN
        && crate::address::split(id).is_some()
        && id.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'(' | b')' | b','))
}

/// `References` for a mail on a thread (Message-IDs oldest first): the root,
/// the recipient's own previous mail on the ticket (so their client surely
/// knows one of the ids), the newest few, and last the parent.
pub fn references(thread: &[String], recipient_latest: Option<&str>, parent: Option<&str>) -> Vec<String> {
    let thread: Vec<&str> = thread.iter().map(String::as_str).filter(|id| is_plain_message_id(id)).collect();
    let mut keep = vec![false; thread.len()];
    if let Some(first) = keep.first_mut() {
        *first = true;
    }
    let tail_start = thread.len().saturating_sub(REFERENCES_TAIL);
    keep[tail_start..].iter_mut().for_each(|k| *k = true);
    if let Some(mine) = recipient_latest
        && let Some(i) = thread.iter().position(|id| *id == mine)
    {
        keep[i] = true;
    }
    let parent = parent.filter(|p| is_plain_message_id(p));
    let mut out: Vec<String> =
        thread.iter().zip(keep).filter(|(id, k)| *k && Some(**id) != parent).map(|(id, _)| id.to_string()).collect();
    out.dedup();
    out.extend(parent.map(str::to_string));
    out
}

fn mailbox(name: &str, addr: &str) -> Result<Mailbox, ComposeError> {
    let address: Address = addr.parse().map_err(|_| ComposeError::Address(addr.to_string()))?;
    // lettre panics on a display name holding CR or LF, so names go through
    // the same one-line cleaning as subjects.
    let shown = name.chars().any(|c| !c.is_control() && !c.is_whitespace());
    Ok(Mailbox::new(shown.then(|| crate::header::clean_subject(name)), address))
}

fn bracketed(ids: &[String]) -> String {
    ids.iter().map(|id| format!("<{id}>")).collect::<Vec<_>>().join(" ")
}

/// `text` with every line end (LF, CR or CRLF) as CRLF, in one pass.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push_str(&rest[..i]);
        out.push_str("\r\n");
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    out.push_str(rest);
    out
}

fn raw_header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// The MIME boundary of a mail: fixed by its Message-ID, so building the
/// same mail again gives the same bytes. Quoted-printable and base64 never
/// hold `=_`, and a 7-bit text would have to guess a random id's digest.
fn boundary(message_id: &str) -> String {
    format!("=_{}", &crate::digest::sha256_hex(message_id.as_bytes())[..32])
}

/// The mail as raw bytes (CRLF, 7-bit: lettre encodes bodies and headers).
/// The same `o` always gives the same bytes.
pub fn build(o: &Outgoing) -> Result<Vec<u8>, ComposeError> {
    let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(o.date.max(0) as u64);
    let mut b = Message::builder()
        .date(date)
        .from(mailbox(o.from_name, o.from)?)
        .to(mailbox(o.to_name, o.to)?)
        .reply_to(mailbox(o.from_name, o.reply_to)?)
        .subject(crate::header::clean_subject(o.subject))
        .message_id(Some(format!("<{}>", o.message_id)));
    if let Some(parent) = o.in_reply_to.filter(|p| is_plain_message_id(p)) {
        b = b.in_reply_to(format!("<{parent}>"));
    }
    if !o.references.is_empty() {
        b = b.references(bracketed(o.references));
    }
    if let Some(topic) = o.thread_topic {
        b = b.raw_header(raw_header("Thread-Topic", &crate::header::clean_subject(topic)));
    }
    let msg = b
        .raw_header(raw_header("Auto-Submitted", o.auto_submitted))
        .raw_header(raw_header("X-Auto-Response-Suppress", "All"))
        .multipart(
            MultiPart::builder()
                .kind(MultiPartKind::Alternative)
                .boundary(boundary(o.message_id))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(crlf(&o.text)))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(crlf(&o.html))),
        )?;
    Ok(msg.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_crlf_in_one_pass() {
        assert_eq!(crlf("a\nb\r\nc\rd\n\ne"), "a\r\nb\r\nc\r\nd\r\n\r\ne");
        assert_eq!(crlf("\n\r\r\n"), "\r\n\r\n\r\n");
        assert_eq!(crlf("plain"), "plain");
    }

    #[test]
    fn header_lines_stay_within_998_characters() {
        let long_id = format!("{}@x.test", "a".repeat(crate::parse::MAX_ID_LEN - 7));
        let fitting = format!("{}@x.test", "b".repeat(MAX_HEADER_ID_LEN - 7));
        let thread = vec!["root@x.test".to_string(), long_id.clone(), fitting.clone()];
        let references = references(&thread, None, Some(&long_id));
        let name = "Nina ".repeat(400);
        let o = Outgoing {
            from_name: &name,
            from: "support@help.test",
            to_name: &name,
            to: "mia@acme.test",
            reply_to: "support+t@help.test",
            subject: &"word ".repeat(400),
            message_id: "n1@help.test",
            in_reply_to: Some(&long_id),
            references: &references,
            thread_topic: Some(&"topic ".repeat(400)),
            auto_submitted: "auto-generated",
            date: 0,
            text: "hi".into(),
            html: "hi".into(),
        };
        let raw = String::from_utf8(build(&o).unwrap()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            assert!(line.len() <= MAX_HEADER_LINE, "{} characters: {}…", line.len(), &line[..60]);
        }
        assert!(!head.contains(&long_id), "an id that cannot fit on a line is left out");
        assert!(head.contains(&fitting), "the longest id that fits is kept");
        // lettre refuses addresses that could not fit on a header line.
        let long_address = format!("m@{}acme.test", "abcdefghij.".repeat(MAX_HEADER_LINE / 11));
        assert!(matches!(build(&Outgoing { to: &long_address, ..o }), Err(ComposeError::Address(_))));
    }
}
