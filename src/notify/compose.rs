//! Builds one outgoing mail as raw RFC 5322 bytes: headers that thread it
//! into the ticket's conversation, `multipart/alternative` text + HTML.
//!
//! Header safety: every value that came from a user (names, subjects,
//! Message-IDs of stored mail) is either encoded by lettre (RFC 2047, so a
//! CR/LF inside a value can never start a new header) or, for Message-IDs,
//! only used when it is plain `id-left@id-right` text. Subjects are also
//! stripped of control characters here, so no client shows a broken line.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

/// How many of the newest thread Message-IDs go into `References` besides the root.
pub const REFERENCES_TAIL: usize = 6;

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
    pub auto_submitted: &'static str,
    pub text: String,
    pub html: String,
}

/// Whether a Message-ID (no brackets) can go into a header as is.
pub fn is_plain_message_id(id: &str) -> bool {
    id.len() <= crate::parse::MAX_ID_LEN
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

fn raw_header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// The mail as raw bytes (CRLF, 7-bit: lettre encodes bodies and headers).
pub fn build(o: &Outgoing) -> Result<Vec<u8>, ComposeError> {
    let mut b = Message::builder()
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
            MultiPart::alternative()
                .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(o.text.clone()))
                .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(o.html.clone())),
        )?;
    Ok(msg.formatted())
}
