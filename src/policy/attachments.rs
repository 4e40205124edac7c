//! Attachment policy (SPEC.md "Inbound mail" 7): allow-list by extension, a
//! decoded-size cap, and content that must agree with the extension.
//!
//! Pure: no I/O, and the content is only ever borrowed (a 15 MiB attachment is
//! never copied; text is validated through a small fixed buffer).
//!
//! What is checked, in this order (the first failure is the reason):
//!
//! | code | meaning |
//! |---|---|
//! | `extension_not_allowed` | the (sanitised) name's extension is not in `allowed_extensions` |
//! | `empty_file` | zero bytes |
//! | `too_large` | more than `max_bytes` decoded bytes |
//! | `macro_enabled` | an Office document that carries macros (OOXML `vbaProject.bin`, a `macroEnabled` content type, XLM macro sheets; OLE `Macros`/`_VBA_PROJECT_CUR`/`VBA` storages), whatever its extension |
//! | `content_mismatch` | the magic bytes say something other than the extension (`detected` shows what) |
//! | `not_text` | `.txt`/`.csv` that is not valid UTF-8 nor valid in the declared charset, or holds NUL or other binary control characters |
//! | `html_disguised_as_text` | `.txt`/`.csv` whose content starts as an HTML/SVG/XHTML document |
//! | `script_disguised_as_text` | `.txt`/`.csv` that starts with a `#!` interpreter line |
//!
//! Decisions where the spec is silent:
//! - Detection uses `infer` on the whole buffer, corrected where it is known to
//!   be wrong (research notes §3): OOXML kind from the zip's central directory
//!   (`[Content_Types].xml` plus `word/document.xml` or `xl/workbook.xml`), not
//!   from infer's first-entries guess; OLE kind from stream names (`WordDocument`,
//!   `Workbook`/`Book`), not the root CLSID; tar only with a ustar magic and a
//!   valid header checksum.
//! - Text: a BOM decides the encoding (UTF-8, UTF-16LE/BE, so Notepad's
//!   "Unicode" files pass); otherwise valid UTF-8, or valid in the declared
//!   charset. Single-byte charsets decode every byte, so "binary" is judged by
//!   control characters: NUL and C0 controls other than TAB, LF, VT, FF, CR,
//!   BS, SUB and ESC are refused. `detected` is `text/plain` for valid text
//!   (content cannot tell CSV from plain text).
//! - HTML is recognised by what the text starts with (after a BOM, white space,
//!   comments and an `<?xml …?>` prolog), as browsers sniff it; a `.txt` that
//!   merely mentions `<script>` further down stays text.
//! - `.zip` takes any zip container (a `.docx` renamed `.zip` is accepted).
//!   Other extensions an operator adds to the allow-list are accepted when
//!   infer's extension for the content matches (or, for `log`/`md`/`tsv`, when
//!   the content is text).
//! - File names: the part after the last `/` or `\`; control, bidi and
//!   zero-width characters dropped; `<>:"|?*` replaced by `_` (Windows and
//!   NTFS streams); leading dots and trailing dots/blanks trimmed; at most
//!   [`MAX_FILENAME_BYTES`] bytes, extension kept. A part without a usable name
//!   is called `attachment`, with the extension of its content when that is
//!   known (`attachment.png` for a nameless inline logo), so it is judged by
//!   its content rather than refused for having no name.

use std::io::Cursor;

use encoding_rs::{DecoderResult, Encoding, UTF_8};
use serde::Serialize;

use crate::config::AttachmentRules;
use crate::parse::Part;

/// Longest sanitised file name, in bytes.
pub const MAX_FILENAME_BYTES: usize = 200;

pub const EXTENSION_NOT_ALLOWED: &str = "extension_not_allowed";
pub const EMPTY_FILE: &str = "empty_file";
pub const TOO_LARGE: &str = "too_large";
pub const MACRO_ENABLED: &str = "macro_enabled";
pub const CONTENT_MISMATCH: &str = "content_mismatch";
pub const NOT_TEXT: &str = "not_text";
pub const HTML_DISGUISED_AS_TEXT: &str = "html_disguised_as_text";
pub const SCRIPT_DISGUISED_AS_TEXT: &str = "script_disguised_as_text";

/// Every reason code [`check`] can give.
pub const REASONS: &[&str] = &[
    EXTENSION_NOT_ALLOWED,
    EMPTY_FILE,
    TOO_LARGE,
    MACRO_ENABLED,
    CONTENT_MISMATCH,
    NOT_TEXT,
    HTML_DISGUISED_AS_TEXT,
    SCRIPT_DISGUISED_AS_TEXT,
];

pub const PDF: &str = "application/pdf";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
pub const DOCM: &str = "application/vnd.ms-word.document.macroEnabled.12";
pub const XLSM: &str = "application/vnd.ms-excel.sheet.macroEnabled.12";
pub const PPTM: &str = "application/vnd.ms-powerpoint.presentation.macroEnabled.12";
pub const DOC: &str = "application/msword";
pub const XLS: &str = "application/vnd.ms-excel";
pub const OLE: &str = "application/x-ole-storage";
pub const ZIP: &str = "application/zip";
pub const TAR: &str = "application/x-tar";
pub const JPEG: &str = "image/jpeg";
pub const PNG: &str = "image/png";
pub const BMP: &str = "image/bmp";
pub const TEXT: &str = "text/plain";

/// The verdict on one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Sanitised file name.
    pub filename: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// MIME type from the magic bytes, when recognised.
    pub detected: Option<String>,
    pub accepted: bool,
    /// Stable reason code when refused (one of [`REASONS`]).
    pub reason: Option<String>,
}

/// A short sentence for a reason code, for notices and the portal.
pub fn reason_text(code: &str) -> &'static str {
    match code {
        EXTENSION_NOT_ALLOWED => "This type of file is not accepted.",
        EMPTY_FILE => "The file is empty.",
        TOO_LARGE => "The file is larger than the size limit.",
        MACRO_ENABLED => "Documents containing macros are not accepted.",
        CONTENT_MISMATCH => "The file's content does not match its name's extension.",
        NOT_TEXT => "The file is named as text but its content is not text in a known character set.",
        HTML_DISGUISED_AS_TEXT => "The file is named as text but is a web page (HTML).",
        SCRIPT_DISGUISED_AS_TEXT => "The file is named as text but is a script.",
        _ => "The file was refused.",
    }
}

/// Judges one attachment against the rules.
pub fn check(part: &Part, rules: &AttachmentRules) -> Checked {
    let bytes = part.bytes.as_slice();
    let found = detect(bytes);
    let fallback_ext = match part.content_type.as_deref() {
        Some("text/plain") if found.mime.is_none() => Some("txt"),
        Some("text/csv") if found.mime.is_none() => Some("csv"),
        _ => found.ext,
    };
    let filename = sanitize_filename(part.filename.as_deref().unwrap_or(""), fallback_ext);
    let ext = extension(&filename);
    let size = bytes.len() as u64;

    let mut detected = found.mime;
    let reason = if !ext.as_deref().is_some_and(|e| is_allowed(e, rules)) {
        Some(EXTENSION_NOT_ALLOWED)
    } else if bytes.is_empty() {
        Some(EMPTY_FILE)
    } else if size > rules.max_bytes {
        Some(TOO_LARGE)
    } else if found.macros {
        Some(MACRO_ENABLED)
    } else {
        let ext = ext.as_deref().unwrap_or_default();
        match expectation(ext) {
            Expect::Text => match text_verdict(bytes, part.charset.as_deref()) {
                Ok(()) => {
                    detected = Some(TEXT);
                    None
                }
                // Binary content with a recognised type is a disguise, not bad text.
                Err(NOT_TEXT) if found.mime.is_some() => Some(CONTENT_MISMATCH),
                Err(code) => Some(code),
            },
            Expect::Zip => (!found.zip).then_some(CONTENT_MISMATCH),
            Expect::Mime(want) => (!want.contains(&found.mime.unwrap_or_default())).then_some(CONTENT_MISMATCH),
            Expect::InferExt => (found.ext != Some(ext)).then_some(CONTENT_MISMATCH),
        }
    };
    Checked {
        filename,
        size,
        detected: detected.map(str::to_string),
        accepted: reason.is_none(),
        reason: reason.map(str::to_string),
    }
}

fn is_allowed(ext: &str, rules: &AttachmentRules) -> bool {
    rules.allowed_extensions.iter().any(|a| a.trim_start_matches('.').eq_ignore_ascii_case(ext))
}

/// What content an extension requires.
enum Expect {
    Text,
    Zip,
    Mime(&'static [&'static str]),
    /// An operator-added extension: infer's extension for the content must match.
    InferExt,
}

fn expectation(ext: &str) -> Expect {
    match ext {
        "txt" | "csv" | "tsv" | "log" | "md" => Expect::Text,
        "zip" => Expect::Zip,
        "pdf" => Expect::Mime(&[PDF]),
        "docx" => Expect::Mime(&[DOCX]),
        "xlsx" => Expect::Mime(&[XLSX]),
        "pptx" => Expect::Mime(&[PPTX]),
        "doc" => Expect::Mime(&[DOC]),
        "xls" => Expect::Mime(&[XLS]),
        "jpg" | "jpeg" | "jpe" => Expect::Mime(&[JPEG]),
        "png" => Expect::Mime(&[PNG]),
        "bmp" => Expect::Mime(&[BMP]),
        "tar" => Expect::Mime(&[TAR]),
        _ => Expect::InferExt,
    }
}

/// What the content is, as far as the magic bytes and container layout tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detected {
    pub mime: Option<&'static str>,
    /// The usual extension for `mime`.
    pub ext: Option<&'static str>,
    /// A zip container of any kind (plain, OOXML, ODF, JAR…).
    pub zip: bool,
    /// An Office document carrying macros.
    pub macros: bool,
}

/// Detects the content type of a whole file (never pass a prefix: OLE and
/// zip detection read structures anywhere in the file).
pub fn detect(bytes: &[u8]) -> Detected {
    let inferred = infer::get(bytes);
    let mut d = Detected {
        mime: inferred.map(|t| t.mime_type()),
        ext: inferred.map(|t| t.extension()),
        zip: infer::archive::is_zip(bytes),
        macros: false,
    };
    if d.zip {
        match ooxml(bytes) {
            Some(found) => d = Detected { zip: true, ..found },
            // infer names a zip docx/xlsx from its first entries alone; without the
            // package structure it is just a zip.
            None if d.mime.is_some_and(|m| m.starts_with("application/vnd.openxmlformats")) => {
                (d.mime, d.ext) = (Some(ZIP), Some("zip"));
            }
            None => {}
        }
    } else if bytes.starts_with(OLE_MAGIC) {
        d = ole(bytes, d);
    } else if d.mime == Some(TAR) && !tar_checksum_ok(bytes) {
        (d.mime, d.ext) = (None, None);
    }
    d
}

const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Tells Word from Excel by stream names and finds VBA storages. A blank or
/// unusual root CLSID makes infer say `x-ole-storage`; the streams are what
/// Word and Excel actually read.
fn ole(bytes: &[u8], mut d: Detected) -> Detected {
    (d.mime, d.ext) = (Some(OLE), Some("msi"));
    let Ok(cf) = cfb::CompoundFile::open(Cursor::new(bytes)) else {
        return d;
    };
    if cf.is_stream("/WordDocument") {
        (d.mime, d.ext) = (Some(DOC), Some("doc"));
    } else if cf.is_stream("/Workbook") || cf.is_stream("/Book") {
        (d.mime, d.ext) = (Some(XLS), Some("xls"));
    }
    d.macros = cf.walk().any(|e| {
        e.is_storage() && ["Macros", "_VBA_PROJECT_CUR", "VBA"].iter().any(|n| e.name().eq_ignore_ascii_case(n))
    });
    d
}

/// Largest `[Content_Types].xml` inflated for the macro check.
const MAX_CONTENT_TYPES_BYTES: usize = 1 << 20;

/// Word, Excel and PowerPoint packages: main part, then MIME type and
/// extension without and with macros.
const PACKAGES: &[(&str, (&str, &str), (&str, &str))] = &[
    ("word/document.xml", (DOCX, "docx"), (DOCM, "docm")),
    ("xl/workbook.xml", (XLSX, "xlsx"), (XLSM, "xlsm")),
    ("ppt/presentation.xml", (PPTX, "pptx"), (PPTM, "pptm")),
];

/// Classifies an OPC (Office Open XML) package from its zip central directory.
/// `None` when the zip is not a Word, Excel or PowerPoint package.
fn ooxml(bytes: &[u8]) -> Option<Detected> {
    let entries = zip_entries(bytes)?;
    let named = |name: &str| entries.clone().find(|e| e.name.eq_ignore_ascii_case(name.as_bytes()));
    let content_types = named("[Content_Types].xml")?;
    let &(_, plain, with_macros) = PACKAGES.iter().find(|(main, ..)| named(main).is_some())?;
    let macro_part = entries.clone().any(|e| {
        let name = e.name.to_ascii_lowercase();
        name.ends_with(b"vbaproject.bin") || name.starts_with(b"xl/macrosheets/")
    });
    let macro_type = zip_entry_data(bytes, &content_types, MAX_CONTENT_TYPES_BYTES)
        .is_some_and(|xml| contains_ignore_case(&xml, b"macroenabled") || contains_ignore_case(&xml, b"vbaproject"));
    let macros = macro_part || macro_type;
    let (mime, ext) = if macros { with_macros } else { plain };
    Some(Detected { mime: Some(mime), ext: Some(ext), zip: true, macros })
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// One central-directory entry of a zip.
#[derive(Debug, Clone)]
struct ZipEntry<'a> {
    name: &'a [u8],
    method: u16,
    compressed_size: usize,
    local_offset: usize,
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// The central directory's entries (zip64 and archives with a prefix are
/// not read: Office never writes them at these sizes).
fn zip_entries(bytes: &[u8]) -> Option<impl Iterator<Item = ZipEntry<'_>> + Clone> {
    // The end record is 22 bytes plus a comment of at most 65535.
    let tail_start = bytes.len().saturating_sub(22 + 0xFFFF);
    let eocd = tail_start + bytes[tail_start..].windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let count = le16(bytes, eocd + 10)?;
    let cd_offset = le32(bytes, eocd + 16)?;
    let mut at = cd_offset;
    let mut left = count;
    Some(std::iter::from_fn(move || {
        if left == 0 || bytes.get(at..at + 4)? != b"PK\x01\x02" {
            return None;
        }
        left -= 1;
        let name_len = le16(bytes, at + 28)?;
        let entry = ZipEntry {
            name: bytes.get(at + 46..at + 46 + name_len)?,
            method: le16(bytes, at + 10)? as u16,
            compressed_size: le32(bytes, at + 20)?,
            local_offset: le32(bytes, at + 42)?,
        };
        at += 46 + name_len + le16(bytes, at + 30)? + le16(bytes, at + 32)?;
        Some(entry)
    }))
}

/// The entry's uncompressed data (stored or deflated), at most `limit` bytes.
fn zip_entry_data(bytes: &[u8], entry: &ZipEntry<'_>, limit: usize) -> Option<Vec<u8>> {
    let at = entry.local_offset;
    if bytes.get(at..at + 4)? != b"PK\x03\x04" {
        return None;
    }
    let start = at + 30 + le16(bytes, at + 26)? + le16(bytes, at + 28)?;
    let data = bytes.get(start..start.checked_add(entry.compressed_size)?)?;
    match entry.method {
        0 => Some(data[..data.len().min(limit)].to_vec()),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, limit).ok(),
        _ => None,
    }
}

/// A tar header's checksum: the byte sum of the first 512 bytes with the
/// checksum field counted as spaces, stored as octal at offset 148.
fn tar_checksum_ok(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..512) else {
        return false;
    };
    let field = &header[148..156];
    let digits: String = field.iter().map(|&b| b as char).filter(|c| !c.is_ascii_whitespace() && *c != '\0').collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = header.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    sum == stored
}

/// `Ok` when `bytes` is text; otherwise the reason code.
fn text_verdict(bytes: &[u8], declared: Option<&str>) -> Result<(), &'static str> {
    let prefix = match Encoding::for_bom(bytes) {
        Some((enc, bom)) => decode_checked(enc, &bytes[bom..]),
        None => decode_checked(UTF_8, bytes).or_else(|| {
            let declared = declared.and_then(|c| Encoding::for_label_no_replacement(c.as_bytes()));
            declared.filter(|&e| e != UTF_8).and_then(|e| decode_checked(e, bytes))
        }),
    }
    .ok_or(NOT_TEXT)?;
    markup_verdict(&prefix)
}

/// How much decoded text the HTML sniffing looks at.
const SNIFF_BYTES: usize = 1024;

/// Decodes `bytes` through a fixed buffer; `None` if malformed or holding
/// binary control characters, else the first [`SNIFF_BYTES`] of the text.
fn decode_checked(enc: &'static Encoding, mut bytes: &[u8]) -> Option<String> {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut buf = [0u8; 8192];
    let mut prefix: Option<String> = None;
    loop {
        let (result, read, written) = decoder.decode_to_utf8_without_replacement(bytes, &mut buf, true);
        let out = &buf[..written];
        if out.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x08 | 0x1A | 0x1B)) {
            return None;
        }
        if prefix.is_none() {
            prefix = Some(String::from_utf8_lossy(&out[..out.len().min(SNIFF_BYTES)]).into_owned());
        }
        bytes = &bytes[read..];
        match result {
            DecoderResult::InputEmpty => return prefix,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(..) => return None,
        }
    }
}

/// Elements that make a browser treat a document as HTML (WHATWG MIME
/// sniffing's list, plus SVG and a few that run code).
const HTML_STARTS: &[&str] = &[
    "!doctype html",
    "html",
    "head",
    "body",
    "script",
    "iframe",
    "frameset",
    "object",
    "embed",
    "svg",
    "meta",
    "link",
    "img",
    "form",
    "h1",
    "div",
    "font",
    "table",
    "a",
    "style",
    "title",
    "b",
    "br",
    "p",
];

fn markup_verdict(text: &str) -> Result<(), &'static str> {
    let mut rest = text.trim_start();
    if rest.starts_with("#!") {
        return Err(SCRIPT_DISGUISED_AS_TEXT);
    }
    // Skip an XML prolog (and comments after it) to the first element.
    let mut after_prolog = false;
    loop {
        if let Some(after) = rest.strip_prefix("<!--") {
            // WHATWG sniffing takes a leading comment as the mark of HTML.
            if !after_prolog {
                return Err(HTML_DISGUISED_AS_TEXT);
            }
            match after.find("-->") {
                Some(end) => rest = after[end + 3..].trim_start(),
                None => return Ok(()),
            }
        } else if let Some(after) = rest.strip_prefix("<?").and_then(|a| a.find("?>").map(|end| &a[end + 2..])) {
            rest = after.trim_start();
            after_prolog = true;
        } else {
            break;
        }
    }
    let Some(tag) = rest.strip_prefix('<') else {
        return Ok(());
    };
    let is_html = HTML_STARTS.iter().any(|name| {
        tag.get(..name.len()).is_some_and(|t| t.eq_ignore_ascii_case(name))
            && tag[name.len()..].chars().next().is_some_and(|c| c.is_ascii_whitespace() || c == '>' || c == '/')
    });
    if is_html { Err(HTML_DISGUISED_AS_TEXT) } else { Ok(()) }
}

/// Characters never kept in a file name: controls, bidi overrides and
/// isolates, zero-width and line/paragraph separators.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{061C}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// The sender's file name made safe to show and to offer for download.
/// `fallback_ext` names a nameless part (`attachment.<ext>`).
pub fn sanitize_filename(raw: &str, fallback_ext: Option<&str>) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|&c| !is_unsafe_char(c))
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| c == '.' || c.is_whitespace());
    let trimmed = trimmed.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return match fallback_ext {
            Some(ext) => format!("attachment.{ext}"),
            None => "attachment".to_string(),
        };
    }
    truncate_keeping_extension(trimmed, MAX_FILENAME_BYTES)
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    // An "extension" longer than a fifth of the budget is not one worth keeping.
    let ext = name.rfind('.').map(|i| &name[i..]).filter(|e| e.len() <= max / 5).unwrap_or("");
    let mut end = max - ext.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let stem = name[..end].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    format!("{stem}{ext}")
}

/// The lower-case extension of a sanitised name, if it has one.
pub fn extension(filename: &str) -> Option<String> {
    let (stem, ext) = filename.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_lowercase())
}
