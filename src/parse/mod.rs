//! PARSE: raw RFC 5322 bytes → [`Parsed`], the facts the rest of the
//! pipeline uses. No I/O, no database. Wraps mail-parser (charsets, encoded
//! words, transfer encodings); caps the length and count of everything taken
//! from headers so hostile mail cannot blow up memory or the database.
//!
//! A message that cannot be parsed at all yields [`ParseError`], which the
//! pipeline turns into a quarantine entry with that reason.

pub mod html;
pub mod trim;

use mail_parser::{Encoding, HeaderValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Longest Message-ID, address or header value kept.
pub const MAX_ID_LEN: usize = 998;
/// Most Message-IDs kept from References.
pub const MAX_REFERENCES: usize = 50;
/// Most recipients kept from To/Cc/Delivered-To.
pub const MAX_RECIPIENTS: usize = 100;
/// Most attachments looked at in one message.
pub const MAX_ATTACHMENTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has no header section")]
    NoHeaders,
    #[error("the message could not be parsed as RFC 5322 / MIME")]
    Unparseable,
}

impl ParseError {
    /// Stable reason code (quarantine, `inspect`'s `error`).
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty_message",
            ParseError::NoHeaders => "no_headers",
            ParseError::Unparseable => "unparseable",
        }
    }
}

/// One MIME part that is an attachment (or a named inline part).
#[derive(Debug, Clone)]
pub struct Part {
    /// The file name as the sender gave it (RFC 2047/2231 decoded), unsanitised.
    pub filename: Option<String>,
    /// Declared `type/subtype`, lower case.
    pub content_type: Option<String>,
    /// Declared charset parameter, lower case.
    pub charset: Option<String>,
    /// Decoded content.
    pub bytes: Vec<u8>,
}

/// The headers that tell automatic mail apart (SPEC.md "Loops").
#[derive(Debug, Clone, Default)]
pub struct AutoHeaders {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub list_id: Option<String>,
    pub x_autoreply: Option<String>,
    pub x_autorespond: Option<String>,
    pub x_auto_response_suppress: Option<String>,
    /// `Return-Path`, trimmed; `Some("")` for the empty path `<>`.
    pub return_path: Option<String>,
    /// Top-level `type/subtype` and the `report-type` parameter.
    pub content_type: Option<String>,
    pub report_type: Option<String>,
}

/// A delivery status notification's essentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounce {
    /// `Final-Recipient` / `Original-Recipient` addresses, normalised.
    pub recipients: Vec<String>,
    /// Message-ID of the message that bounced, when the report includes it.
    pub original_message_id: Option<String>,
    /// Whether any recipient failed permanently (`Action: failed` / 5.x.x).
    pub permanent: bool,
}

/// Everything the pipeline needs from one message.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// Normalised From address.
    pub from: Option<String>,
    pub from_name: Option<String>,
    /// Normalised addresses from To, Cc, Delivered-To, X-Original-To, Envelope-To.
    pub recipients: Vec<String>,
    pub subject: String,
    /// Unix seconds from the Date header.
    pub date: Option<i64>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The whole text body (HTML-only mail converted to text).
    pub text: String,
    /// What the sender newly wrote: `text` with quotes and signatures trimmed.
    pub body: String,
    pub attachments: Vec<Part>,
    pub auto: AutoHeaders,
    /// Raw `Authentication-Results` header values.
    pub authentication_results: Vec<String>,
    /// Set when the message is a delivery status report.
    pub bounce: Option<Bounce>,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
}

impl Parsed {
    /// The idempotency key: the Message-ID, or the content hash without one.
    pub fn dedup_key(&self) -> String {
        match &self.message_id {
            Some(id) => format!("mid:{id}"),
            None => format!("sha256:{}", self.sha256),
        }
    }
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

/// Parses one raw message.
///
/// Errors only for input that is no mail at all: nothing but whitespace
/// ([`ParseError::Empty`]); input where mail-parser finds no header section,
/// or none of the headers every real message has ([`KNOWN_HEADERS`]), e.g.
/// a plain text file or binary garbage ([`ParseError::NoHeaders`]); input
/// mail-parser gives up on ([`ParseError::Unparseable`]). Broken MIME
/// (missing boundaries, bad base64, truncation) is parsed as far as it goes.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let msg = MessageParser::default().parse(raw).ok_or(ParseError::Unparseable)?;
    let known = |h: &mail_parser::Header| KNOWN_HEADERS.iter().any(|k| h.name().eq_ignore_ascii_case(k));
    if !msg.headers().iter().any(known) {
        return Err(ParseError::NoHeaders);
    }
    let first_addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first()).and_then(|a| a.address()).map(|s| crate::address::normalize(&cap(s)))
    };
    let from = first_addr(msg.from());
    let from_name = msg.from().and_then(|a| a.first()).and_then(|a| a.name()).map(cap);
    let mut recipients = Vec::new();
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        recipients.extend(list.iter().filter_map(|a| a.address()).map(|s| crate::address::normalize(&cap(s))));
    }
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        for v in msg.header_values(name) {
            if let Some(s) = v.as_text() {
                recipients.push(crate::address::normalize(&cap(s)));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| !r.is_empty() && seen.insert(r.clone()));
    recipients.truncate(MAX_RECIPIENTS);

    let text = body_text(&msg);
    let body = trim::new_text(&text);

    let ct = msg.content_type();
    let top_type = ct.map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_lowercase());
    // A report's parts are machine-readable (read by auto::bounce), never files.
    let attachments = if top_type.as_deref() == Some("multipart/report") {
        Vec::new()
    } else {
        msg.attachments()
            .take(MAX_ATTACHMENTS)
            .map(|a| Part {
                filename: a.attachment_name().map(cap),
                content_type: a.content_type().map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub).to_lowercase(),
                    None => c.ctype().to_lowercase(),
                }),
                charset: a.content_type().and_then(|c| c.attribute("charset")).map(|s| s.to_lowercase()),
                bytes: part_bytes(&msg, a),
            })
            .collect()
    };

    let header_text = |name: &str| msg.header(name).and_then(header_as_text).map(|s| cap(&s));
    let auto = AutoHeaders {
        auto_submitted: header_text("Auto-Submitted"),
        precedence: header_text("Precedence"),
        list_id: header_text("List-Id"),
        x_autoreply: header_text("X-Autoreply"),
        x_autorespond: header_text("X-Autorespond"),
        x_auto_response_suppress: header_text("X-Auto-Response-Suppress"),
        return_path: msg
            .header_raw("Return-Path")
            .map(|s| cap(s.trim().trim_start_matches('<').trim_end_matches('>').trim())),
        content_type: top_type,
        report_type: ct.and_then(|c| c.attribute("report-type")).map(|s| s.to_lowercase()),
    };
    let authentication_results =
        msg.header_values("Authentication-Results").filter_map(header_as_text).map(|s| cap(&s)).collect();

    Ok(Parsed {
        message_id: msg.message_id().map(clean_id).filter(|s| !s.is_empty()),
        from,
        from_name,
        recipients,
        subject: msg.subject().map(cap).unwrap_or_default(),
        date: msg.date().map(|d| d.to_timestamp()),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        text,
        body,
        attachments,
        bounce: crate::policy::auto::bounce(&msg),
        auto,
        authentication_results,
        sha256: sha256_hex(raw),
    })
}

/// Headers at least one of which every real message has; input without any
/// is not mail.
pub const KNOWN_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Received",
    "Return-Path",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Delivered-To",
    "In-Reply-To",
    "References",
];

/// The whole text of the message body, line endings `\n`.
///
/// mail-parser lists the displayable parts in `text_body`: with
/// multipart/alternative it picks the text/plain part, for HTML-only mail the
/// HTML part, and in multipart/mixed every inline text part (Apple Mail
/// splits text around inline images) and inline images too. Images are
/// skipped; text parts are joined with a blank line; HTML parts are converted
/// by [`html::to_text`]. When the text parts are blank but an HTML
/// alternative exists (clients that send an empty text/plain), the HTML is
/// used instead.
fn body_text(msg: &mail_parser::Message) -> String {
    let render = |ids: &[u32]| {
        let texts: Vec<String> = ids
            .iter()
            .filter_map(|&id| msg.part(id))
            .filter_map(|p| match &p.body {
                PartType::Text(t) => Some(t.to_string()),
                PartType::Html(h) => Some(html::to_text(h)),
                _ => None,
            })
            .map(|t| t.replace("\r\n", "\n").replace('\r', "\n").trim_matches('\n').to_string())
            .filter(|t| !t.trim().is_empty())
            .collect();
        texts.join("\n\n")
    };
    let text = render(&msg.text_body);
    if text.trim().is_empty() { render(&msg.html_body) } else { text }
}

/// An attachment's content as the sender's file had it. mail-parser decodes
/// text parts into UTF-8 (lossily); the attachment policy must see the bytes
/// in their declared charset, so text parts are decoded again from the raw
/// message (transfer encoding only). Falls back to what mail-parser decoded
/// when the raw part cannot be decoded.
fn part_bytes(msg: &mail_parser::Message, part: &mail_parser::MessagePart) -> Vec<u8> {
    if !part.is_text() {
        return part.contents().to_vec();
    }
    let raw = msg.raw_message().get(part.raw_body_offset() as usize..part.raw_end_offset() as usize);
    let decoded = raw.and_then(|raw| match part.encoding {
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        Encoding::QuotedPrintable => mail_parser::decoders::quoted_printable::quoted_printable_decode(raw),
        Encoding::None => Some(raw.to_vec()),
    });
    decoded.unwrap_or_else(|| part.contents().to_vec())
}

fn header_as_text(v: &HeaderValue) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => Some(l.join(", ")),
        HeaderValue::Address(a) => a.first().and_then(|a| a.address()).map(|s| s.to_string()),
        HeaderValue::ContentType(c) => Some(match c.subtype() {
            Some(s) => format!("{}/{s}", c.ctype()),
            None => c.ctype().to_string(),
        }),
        _ => None,
    }
}

fn ids(v: &HeaderValue) -> Vec<String> {
    let list: Vec<String> = match v {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(l) => l.iter().map(|s| clean_id(s)).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = list.into_iter().filter(|s| !s.is_empty()).collect();
    // Keep the newest references: they are the ones that name our mails.
    if out.len() > MAX_REFERENCES {
        out.drain(..out.len() - MAX_REFERENCES);
    }
    out
}

pub(crate) fn clean_id(s: &str) -> String {
    cap(s.trim().trim_start_matches('<').trim_end_matches('>').trim())
}

/// Cuts a header-derived string to [`MAX_ID_LEN`] bytes on a char boundary.
pub(crate) fn cap(s: &str) -> String {
    if s.len() <= MAX_ID_LEN {
        return s.to_string();
    }
    let mut end = MAX_ID_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
