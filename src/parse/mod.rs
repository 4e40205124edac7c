//! PARSE: raw RFC 5322 bytes → [`Parsed`], the facts the rest of the
//! pipeline uses. No I/O, no database. Wraps mail-parser (charsets, encoded
//! words, transfer encodings); caps the length and count of everything taken
//! from headers so hostile mail cannot blow up memory or the database.
//!
//! A message that cannot be parsed at all yields [`ParseError`], which the
//! pipeline turns into a quarantine entry with that reason (see [`parse`] for
//! what counts: empty input, binary data, text without mail headers).
//! Anything else, however broken its MIME, parses as far as it goes.
//!
//! Decisions:
//! - **Body** ([`Parsed::text`]): the text/plain alternative when there is
//!   one, else the HTML converted by [`html::to_text`]; inline text parts of
//!   multipart/mixed are joined; images never count as text; RFC 3676
//!   `format=flowed` is unwrapped; line endings are `\n`; C1 control
//!   characters from mislabelled ISO-8859-1 are read as Windows-1252. When
//!   broken MIME leaves no body, the unnamed parts it produced are the body.
//!   [`Parsed::body`] is that text trimmed by [`trim::split`], and
//!   [`Parsed::quoted`] what was trimmed from it.
//! - **Attachments**: every non-body part, inline images and attached
//!   messages (`.eml`) included, so that the policy decides and the sender
//!   learns what was refused; none for `multipart/report` (bounces, read
//!   receipts), whose parts are machine-readable and read by
//!   [`dsn::read`]. Bytes are the sender's file: text is not
//!   re-encoded to UTF-8, and line breaks of non-base64 text are CRLF. Past
//!   [`MAX_ATTACHMENTS`], only a part's name and size are kept
//!   ([`Parsed::skipped_attachments`]), so that it is listed as refused.

pub mod dsn;
pub mod html;
pub mod trim;

use mail_parser::{Encoding, HeaderValue, MessageParser, MimeHeaders, PartType};

use crate::code::QuarantineReason;

/// Longest Message-ID, address or header value kept.
pub const MAX_ID_LEN: usize = 998;
/// Most Message-IDs kept from References.
pub const MAX_REFERENCES: usize = 50;
/// Most recipients kept from To/Cc/Delivered-To.
pub const MAX_RECIPIENTS: usize = 100;
/// Most attachments looked at in one message; the rest are listed in
/// [`Parsed::skipped_attachments`] (refused as `too_many_attachments`).
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
    pub fn code(&self) -> QuarantineReason {
        match self {
            ParseError::Empty => QuarantineReason::EmptyMessage,
            ParseError::NoHeaders => QuarantineReason::NoHeaders,
            ParseError::Unparseable => QuarantineReason::Unparseable,
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

/// An attachment beyond [`MAX_ATTACHMENTS`], listed so that the sender
/// learns it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// As in [`Part::filename`].
    pub filename: Option<String>,
    /// Decoded size in bytes.
    pub size: u64,
}

/// Everything the pipeline needs from one message.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// Normalised From address, as mail-parser reads it (for display; who
    /// wrote the message is decided by [`crate::policy::sender::of`]).
    pub from: Option<String>,
    /// The raw value of every `From:` header, unfolded, in order.
    pub from_headers: Vec<String>,
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
    /// What was trimmed from `text` (quoted history, signature), shown folded.
    pub quoted: String,
    pub attachments: Vec<Part>,
    /// Attachments beyond [`MAX_ATTACHMENTS`]: named and sized, content not kept.
    pub skipped_attachments: Vec<Skipped>,
    pub auto: AutoHeaders,
    /// Raw `Authentication-Results` header values.
    pub authentication_results: Vec<String>,
    /// Set when the message is a delivery status report.
    pub bounce: Option<Bounce>,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    /// The primary language subtag the mail declares, lowercase (`de` for
    /// `de-DE`): `Content-Language` of the message, else of its text part,
    /// else `Accept-Language`.
    pub language: Option<String>,
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

/// Parses one raw message.
///
/// Errors only for input that is no mail at all: nothing but whitespace
/// ([`ParseError::Empty`]); binary data where the header section should be,
/// i.e. NUL or other control bytes ([`ParseError::Unparseable`]); text where
/// mail-parser finds no header section, or none of the headers every real
/// message has ([`KNOWN_HEADERS`]), e.g. a plain text file
/// ([`ParseError::NoHeaders`]). Broken MIME (missing boundaries, bad base64,
/// truncation) is parsed as far as it goes.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    if is_binary(header_section(raw)) {
        return Err(ParseError::Unparseable);
    }
    let msg = MessageParser::default().parse(raw).ok_or(ParseError::NoHeaders)?;
    let known = |h: &mail_parser::Header| KNOWN_HEADERS.iter().any(|k| h.name().eq_ignore_ascii_case(k));
    if !msg.headers().iter().any(known) {
        return Err(ParseError::NoHeaders);
    }
    let first_addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first()).and_then(|a| a.address()).map(|s| crate::address::normalize(&cap(s)))
    };
    let from = first_addr(msg.from());
    let from_headers = msg
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("From"))
        .take(MAX_RECIPIENTS)
        .map(|h| {
            let value = raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
            cap(&String::from_utf8_lossy(value).replace(['\r', '\n'], ""))
        })
        .collect();
    // Clients that know no name repeat the address as one.
    let from_name = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(|n| cap(n.trim()))
        .filter(|n| !n.is_empty() && from.as_deref().is_none_or(|f| !n.eq_ignore_ascii_case(f)));
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

    let (text, used_as_body) = body_text(&msg);
    let trim::Trimmed { body, quoted } = trim::split(&text);

    let ct = msg.content_type();
    let top_type = ct.map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")).to_lowercase());
    // A report's parts are machine-readable (read by dsn::read), never files.
    let files: Vec<&mail_parser::MessagePart> = if top_type.as_deref() == Some("multipart/report") {
        Vec::new()
    } else {
        msg.attachments.iter().filter(|id| !used_as_body.contains(id)).filter_map(|&id| msg.part(id)).collect()
    };
    let (kept, skipped) = files.split_at(files.len().min(MAX_ATTACHMENTS));
    let skipped_attachments = skipped
        .iter()
        .map(|a| Skipped { filename: a.attachment_name().map(cap), size: a.contents().len() as u64 })
        .collect();
    let attachments = kept
        .iter()
        .map(|a| Part {
            filename: a.attachment_name().map(cap),
            content_type: a.content_type().map(|c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub).to_lowercase(),
                None => c.ctype().to_lowercase(),
            }),
            charset: a.content_type().and_then(|c| c.attribute("charset")).map(|s| s.to_lowercase()),
            bytes: part_bytes(&msg, a),
        })
        .collect();

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
        from_headers,
        from_name,
        recipients,
        subject: msg.subject().map(|s| cap(&c1_as_windows_1252(s))).unwrap_or_default(),
        date: msg.date().map(|d| d.to_timestamp()),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        text,
        body,
        quoted,
        attachments,
        skipped_attachments,
        bounce: dsn::read(&msg),
        auto,
        authentication_results,
        sha256: crate::digest::sha256_hex(raw),
        language: language(&msg),
    })
}

/// See [`Parsed::language`].
fn language(msg: &mail_parser::Message) -> Option<String> {
    let text_part = msg.text_body.first().and_then(|&id| msg.part(id));
    let declared = [msg.header_raw("Content-Language"), text_part.and_then(|p| content_language_raw(msg, p))];
    declared.into_iter().chain([msg.header_raw("Accept-Language")]).flatten().find_map(primary_subtag)
}

/// The raw `Content-Language` of one MIME part.
fn content_language_raw<'a>(msg: &'a mail_parser::Message, part: &mail_parser::MessagePart) -> Option<&'a str> {
    let h = part.headers.iter().find(|h| h.name().eq_ignore_ascii_case("Content-Language"))?;
    let raw = std::str::from_utf8(msg.raw_message.get(h.offset_start as usize..h.offset_end as usize)?).ok()?;
    Some(raw)
}

/// The first tag's primary subtag of a language list such as
/// `de-DE, en;q=0.8`; `None` when it is no language (`*`, empty, too long).
fn primary_subtag(list: &str) -> Option<String> {
    let first = list.split(',').next()?.split(';').next()?.trim();
    let primary = first.split(['-', '_']).next()?;
    ((2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

/// The bytes before the first empty line (all of `raw` without one), at
/// most 64 KiB: where headers must be.
pub fn header_section(raw: &[u8]) -> &[u8] {
    let head = &raw[..raw.len().min(64 * 1024)];
    let end = head.windows(2).position(|w| w == b"\n\n").or_else(|| head.windows(4).position(|w| w == b"\r\n\r\n"));
    &head[..end.unwrap_or(head.len())]
}

/// Header text never holds control bytes other than tab, line breaks, form
/// feed and ESC (raw ISO-2022-JP, which old Japanese mailers put in headers).
fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0c | 0x1b)) || b == 0x7f)
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

/// The whole text of the message body, line endings `\n`, and the ids of
/// the parts listed as attachments that were used as body instead.
///
/// mail-parser lists the displayable parts in `text_body`: with
/// multipart/alternative it picks the text/plain part, for HTML-only mail the
/// HTML part, and in multipart/mixed every inline text part (Apple Mail
/// splits text around inline images) and inline images too. Images are
/// skipped; text parts are joined with a blank line; HTML parts are converted
/// by [`html::to_text`]. When the text parts are blank but an HTML
/// alternative exists (clients that send an empty text/plain), the HTML is
/// used instead.
///
/// Broken MIME can leave no body at all: mail-parser turns a part with bad
/// base64 into an unnamed text part, and a multipart without a boundary into
/// an unnamed binary part, and lists them as attachments. When the body is otherwise empty, those unnamed
/// parts are the body, as raw text (bad base64 decoded as far as it goes), so what
/// the sender wrote is shown rather than refused as a file.
fn body_text(msg: &mail_parser::Message) -> (String, Vec<u32>) {
    let render = |ids: &[u32]| {
        let texts: Vec<String> = ids
            .iter()
            .filter_map(|&id| msg.part(id))
            .filter_map(|p| match &p.body {
                PartType::Text(t) => Some(match p.content_type().filter(|c| is_flowed(c)) {
                    Some(c) => unflow(t, c.attribute("delsp").is_some_and(|d| d.eq_ignore_ascii_case("yes"))),
                    None => t.to_string(),
                }),
                PartType::Html(h) => Some(html::to_text(h)),
                _ => None,
            })
            .map(|t| c1_as_windows_1252(&t.replace("\r\n", "\n").replace('\r', "\n")).trim_matches('\n').to_string())
            .filter(|t| !t.trim().is_empty())
            .collect();
        texts.join("\n\n")
    };
    let text = render(&msg.text_body);
    if !text.trim().is_empty() {
        return (text, Vec::new());
    }
    if msg.html_body != msg.text_body {
        let html = render(&msg.html_body);
        if !html.trim().is_empty() {
            return (html, Vec::new());
        }
    }
    let unsplit =
        |p: &mail_parser::MessagePart| p.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart"));
    let (ids, texts): (Vec<u32>, Vec<String>) = msg
        .attachments
        .iter()
        .filter_map(|&id| msg.part(id).map(|p| (id, p)))
        .filter(|(_, p)| p.attachment_name().is_none())
        .filter_map(|(id, p)| match &p.body {
            PartType::Text(_) => Some((id, recover_text(p))),
            PartType::Binary(b) if unsplit(p) => Some((id, String::from_utf8_lossy(b).into_owned())),
            _ => None,
        })
        .map(|(id, t)| (id, t.replace("\r\n", "\n").replace('\r', "\n").trim_matches('\n').to_string()))
        .filter(|(_, t)| !t.trim().is_empty())
        .unzip();
    (texts.join("\n\n"), ids)
}

/// The text of an unnamed text part listed as an attachment: when
/// mail-parser could not decode its declared base64, decoded leniently (see
/// [`lenient_base64`]) in the declared charset; else as mail-parser gave it.
fn recover_text(part: &mail_parser::MessagePart) -> String {
    let base64 = part.is_encoding_problem
        && part.content_transfer_encoding().is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
    if !base64 {
        return part.text_contents().map(str::to_string).unwrap_or_default();
    }
    let bytes = lenient_base64(part.contents());
    let charset = part.content_type().and_then(|c| c.attribute("charset"));
    match charset.and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes())) {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Base64 that skips every byte outside the alphabet and stops at padding,
/// the way mail clients show damaged parts.
fn lenient_base64(raw: &[u8]) -> Vec<u8> {
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = raw.iter().take_while(|&&b| b != b'=').filter_map(|&b| value(b)).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &v)| acc | (u32::from(v) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        // 2 sextets give 1 byte, 3 give 2, 4 give 3.
        out.extend_from_slice(&bytes[1..chunk.len().max(1)]);
    }
    out
}

/// Text labelled ISO-8859-1 or ASCII is very often Windows-1252 (curly
/// quotes, dashes, €), which decodes to C1 control characters that never
/// belong in mail text; like browsers (WHATWG), read them as Windows-1252.
fn c1_as_windows_1252(s: &str) -> String {
    if s.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        s.chars().map(windows_1252).collect()
    } else {
        s.to_string()
    }
}

/// The Windows-1252 glyph for a C1 control character (encoding_rs's WHATWG
/// table); any other character, and the five C1 codes 1252 leaves
/// undefined, unchanged.
pub(crate) fn windows_1252(c: char) -> char {
    match u8::try_from(u32::from(c)) {
        Ok(byte @ 0x80..=0x9f) => {
            encoding_rs::WINDOWS_1252.decode_without_bom_handling(&[byte]).0.chars().next().unwrap_or(c)
        }
        _ => c,
    }
}

fn is_flowed(c: &mail_parser::ContentType) -> bool {
    c.attribute("format").is_some_and(|f| f.eq_ignore_ascii_case("flowed"))
}

/// Undoes RFC 3676 `format=flowed` (Thunderbird, Apple Mail, K-9): a line
/// ending in a space continues on the next line of the same quote depth;
/// space-stuffing is removed; `DelSp=yes` drops the space at the join. The
/// `-- ` signature delimiter never flows.
fn unflow(text: &str, delsp: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    // Quote depth of the last line when it still continues.
    let mut open: Option<usize> = None;
    for line in text.replace("\r\n", "\n").split('\n') {
        let depth = line.chars().take_while(|c| *c == '>').count();
        let content = &line[depth..];
        let content = content.strip_prefix(' ').unwrap_or(content);
        let soft = content.ends_with(' ') && content != "-- ";
        let piece = if soft && delsp { &content[..content.len() - 1] } else { content };
        match (open, out.last_mut()) {
            (Some(d), Some(last)) if d == depth => last.push_str(piece),
            _ => {
                let prefix = if depth > 0 { format!("{} ", ">".repeat(depth)) } else { String::new() };
                out.push(format!("{prefix}{piece}"));
            }
        }
        open = soft.then_some(depth);
    }
    out.join("\n")
}

/// An attachment's content as the sender's file had it. mail-parser decodes
/// text parts into UTF-8 (lossily); the attachment policy must see the bytes
/// in their declared charset, so text parts are decoded again from the raw
/// message (transfer encoding only). Falls back to what mail-parser decoded
/// when the raw part cannot be decoded.
///
/// Line breaks of text (and of attached messages) sent as 7bit, 8bit or
/// quoted-printable belong to the
/// transport (an MTA or a Maildir may store them as LF, IMAP serves CRLF), so
/// they are given in MIME's canonical form, CRLF: the same message gives the
/// same file however it arrived. Base64 keeps the sender's bytes exactly.
fn part_bytes(msg: &mail_parser::Message, part: &mail_parser::MessagePart) -> Vec<u8> {
    if part.is_message() && part.encoding != Encoding::Base64 {
        return crlf(part.contents());
    }
    if !part.is_text() {
        return part.contents().to_vec();
    }
    let raw = msg.raw_message().get(part.raw_body_offset() as usize..part.raw_end_offset() as usize);
    let decoded = raw.and_then(|raw| match part.encoding {
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw).map(|b| crlf(&b))
        }
        Encoding::None => Some(crlf(raw)),
    });
    decoded.unwrap_or_else(|| part.contents().to_vec())
}

/// Every line break (CRLF, LF or a lone CR) as CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_only_for_input_that_is_no_mail() {
        assert_eq!(parse(b" \r\n\t\n").map(|_| ()), Err(ParseError::Empty));
        assert_eq!(parse(b"just some text\nwithout headers\n").map(|_| ()), Err(ParseError::NoHeaders));
        assert_eq!(parse(&[0, 159, 146, 150, 255, 0, 1, 2, 10, 10]).map(|_| ()), Err(ParseError::Unparseable));
        assert_eq!(parse(b"Subject: ok\n\n\0binary body").map(|p| p.subject), Ok("ok".to_string()));
        let p = parse(b"Subject: only a subject\n").expect("a header is enough");
        assert_eq!((p.subject.as_str(), p.body.as_str(), p.message_id.as_deref()), ("only a subject", "", None));
        assert!(p.dedup_key().starts_with("sha256:"));
    }

    #[test]
    fn the_language_is_the_primary_subtag_of_what_the_mail_declares() {
        let lang = |raw: &[u8]| parse(raw).expect("parses").language;
        assert_eq!(lang(b"Subject: s\nContent-Language: de-DE\nAccept-Language: fr\n\nhi").as_deref(), Some("de"));
        assert_eq!(lang(b"Subject: s\nAccept-Language: fr-CH, en;q=0.8\n\nhi").as_deref(), Some("fr"));
        let part = b"Subject: s\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Language: ES\n\nhola\n--b--\n";
        assert_eq!(lang(part).as_deref(), Some("es"));
        assert_eq!(lang(b"Subject: s\nAccept-Language: *\n\nhi"), None);
        assert_eq!(lang(b"Subject: s\n\nhi"), None);
    }

    #[test]
    fn display_names_are_decoded_and_an_address_is_no_name() {
        let p = parse(b"From: =?UTF-8?Q?Jane_D=C3=B6e?= <jane@acme.test>\nSubject: s\n\nhi").expect("parses");
        assert_eq!(p.from_name.as_deref(), Some("Jane D\u{f6}e"));
        let p = parse(b"From: \"Jane@Acme.test\" <jane@acme.test>\nSubject: s\n\nhi").expect("parses");
        assert_eq!(p.from_name, None);
    }

    #[test]
    fn broken_mime_text_is_body_not_attachment() {
        let bad_b64 = b"From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nVGhlIHByaW50ZXIg*** aXMgb2ZmbGluZS4=!!!\n--b--\n";
        let p = parse(bad_b64).expect("parses");
        assert_eq!((p.text.as_str(), p.attachments.len()), ("The printer is offline.", 0));
        let no_boundary = b"From: a@example.com\nSubject: s\nContent-Type: multipart/mixed\n\n--X\n\nhello\n--X--\n";
        let p = parse(no_boundary).expect("parses");
        assert!(p.text.contains("hello"), "{}", p.text);
        assert!(p.attachments.is_empty());
        assert_eq!(lenient_base64(b"QQ"), b"A");
        assert_eq!(lenient_base64(b"QUI"), b"AB");
        assert_eq!(lenient_base64(b"Q"), b"");
    }

    #[test]
    fn mislabelled_windows_1252_is_read_as_such() {
        let raw = b"From: a@example.com\nSubject: =?iso-8859-1?Q?=93quoted=94?=\nContent-Type: text/plain; charset=iso-8859-1\n\n\x93Hi\x94 \x80 5 \x96 caf\xe9\n";
        let p = parse(raw).expect("parses");
        assert_eq!(p.subject, "“quoted”");
        assert_eq!(p.text, "“Hi” € 5 – café");
    }

    #[test]
    fn every_c1_code_maps_as_in_windows_1252() {
        let mapped: String = ('\u{80}'..='\u{9f}').map(windows_1252).collect();
        assert_eq!(mapped, "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}Ž\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}žŸ");
        assert_eq!((windows_1252('é'), windows_1252('\u{7f}'), windows_1252('\u{a0}')), ('é', '\u{7f}', '\u{a0}'));
    }

    #[test]
    fn flowed_text_is_joined() {
        assert_eq!(
            unflow("a long \nline\n>> quoted \n>> more\n-- \nsig", false),
            "a long line\n>> quoted more\n-- \nsig"
        );
        assert_eq!(unflow("split \nword\n From stuffed", true), "splitword\nFrom stuffed");
    }

    #[test]
    fn text_attachments_keep_their_charset_bytes_with_canonical_line_breaks() {
        let raw = b"From: a@example.com\nSubject: csv\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee file\n--b\nContent-Type: text/csv; charset=iso-8859-1; name=\"l.csv\"\nContent-Disposition: attachment; filename=\"l.csv\"\n\nStra\xdfe;M\xfcnchen\nx;y\n--b--\n";
        let p = parse(raw).expect("parses");
        assert_eq!(p.body, "see file");
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].bytes, b"Stra\xdfe;M\xfcnchen\r\nx;y".to_vec());
        assert_eq!(p.attachments[0].charset.as_deref(), Some("iso-8859-1"));
    }

    #[test]
    fn inline_images_are_not_body_text() {
        let raw = b"From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: image/png\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--b\nContent-Type: text/plain\n\nafter the image\n--b--\n";
        let p = parse(raw).expect("parses");
        assert_eq!(p.text, "after the image");
        assert_eq!(p.attachments.len(), 1);
        assert_eq!(p.attachments[0].filename, None);
        assert_eq!(p.attachments[0].bytes, b"\x89PNG\r\n\x1a\n".to_vec());
    }

    #[test]
    fn html_only_and_empty_text_alternative_use_the_html() {
        let html_only = b"From: a@example.com\nSubject: s\nContent-Type: text/html\n\n<p>Hi</p><p>there</p>";
        assert_eq!(parse(html_only).expect("parses").text, "Hi\n\nthere");
        let alt = b"From: a@example.com\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\n\n--b\nContent-Type: text/html\n\n<div>from html</div>\n--b--\n";
        assert_eq!(parse(alt).expect("parses").text, "from html");
    }
}
