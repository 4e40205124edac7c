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
//! | `macro_enabled` | an Office document that carries macros, whatever its extension: OOXML with a part or relationship of a macro-enabled, VBA, macro-sheet or ActiveX type (read from the parsed `[Content_Types].xml` and `_rels/*.rels`), or a `vbaProject.bin` / `xl/macrosheets/` part; OLE with a VBA project (`Macros`/`_VBA_PROJECT_CUR`/`VBA` storages, or `_VBA_PROJECT`/`dir` streams under any storage) or a BIFF Workbook whose BOUNDSHEET records declare a macro sheet or VBA module |
//! | `content_mismatch` | the magic bytes say something other than the extension (`detected` shows what) |
//! | `not_text` | `.txt`/`.csv` that is not valid UTF-8 nor valid in the declared charset, or holds NUL or other binary control characters |
//! | `html_disguised_as_text` | `.txt`/`.csv` whose content starts as an HTML/SVG/XHTML document (`detected`: `text/html`) |
//! | `script_disguised_as_text` | `.txt`/`.csv` that starts with a `#!` interpreter line (`detected`: `text/x-shellscript`) |
//! | `too_many_attachments` | beyond the first [`crate::parse::MAX_ATTACHMENTS`] of one message: refused unread ([`too_many`]) |
//!
//! Decisions where the spec is silent:
//! - Detection uses `infer` on the whole buffer, corrected where it is known to
//!   be wrong (research notes §3): OOXML kind from the zip's central directory
//!   (`[Content_Types].xml` plus `word/document.xml` or `xl/workbook.xml`, read
//!   with the `zip` crate, zip64 included), not from infer's first-entries guess; OLE kind from stream names (`WordDocument`,
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
//!   infer's extension for the content matches (or, for `log`/`md`/`tsv`/
//!   `json`, when the content is text).
//! - Valid text is text even when a two-byte signature happens to match (a
//!   CSV starting `BM…` is not a bitmap).
//! - File names: the part after the last `/` or `\`; control, bidi and
//!   zero-width characters dropped; `<>:"|?*` replaced by `_` (Windows and
//!   NTFS streams); leading dots and trailing dots/blanks trimmed; at most
//!   [`MAX_FILENAME_BYTES`] bytes, extension kept. A part without a usable name
//!   is called `attachment`, with the extension of its content when that is
//!   known (`attachment.png` for a nameless inline logo), so it is judged by
//!   its content rather than refused for having no name.

use std::io::{Cursor, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_8};
use serde::Serialize;

use crate::config::AttachmentRules;
use crate::parse::{Part, Skipped};

/// Longest sanitised file name, in bytes.
pub const MAX_FILENAME_BYTES: usize = 200;

pub use crate::code::Refusal;

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
pub const HTML: &str = "text/html";
pub const SHELL_SCRIPT: &str = "text/x-shellscript";

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
    /// Stable reason code when refused (one of [`Refusal::ALL`]).
    pub reason: Option<Refusal>,
}

/// A short sentence for a reason code, for notices and the portal.
pub fn reason_text(code: Refusal) -> &'static str {
    match code {
        Refusal::ExtensionNotAllowed => "This type of file is not accepted.",
        Refusal::EmptyFile => "The file is empty.",
        Refusal::TooLarge => "The file is larger than the size limit.",
        Refusal::MacroEnabled => "Documents containing macros are not accepted.",
        Refusal::ContentMismatch => "The file's content does not match its name's extension.",
        Refusal::NotText => "The file is named as text but its content is not text in a known character set.",
        Refusal::HtmlDisguisedAsText => "The file is named as text but is a web page (HTML).",
        Refusal::ScriptDisguisedAsText => "The file is named as text but is a script.",
        Refusal::TooManyAttachments => "The message had more attachments than are taken from one message.",
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
        Some(Refusal::ExtensionNotAllowed)
    } else if bytes.is_empty() {
        Some(Refusal::EmptyFile)
    } else if size > rules.max_bytes {
        Some(Refusal::TooLarge)
    } else if found.macros {
        Some(Refusal::MacroEnabled)
    } else {
        let ext = ext.as_deref().unwrap_or_default();
        match expectation(ext) {
            Expect::Text => match text_verdict(bytes, part.charset.as_deref()) {
                Ok(()) => {
                    detected = Some(TEXT);
                    None
                }
                // Binary content with a recognised type is a disguise, not bad text.
                Err(Refusal::NotText) if found.mime.is_some() => Some(Refusal::ContentMismatch),
                Err(code) => {
                    detected = match code {
                        Refusal::HtmlDisguisedAsText => Some(HTML),
                        Refusal::ScriptDisguisedAsText => Some(SHELL_SCRIPT),
                        _ => detected,
                    };
                    Some(code)
                }
            },
            Expect::Zip => (!found.zip).then_some(Refusal::ContentMismatch),
            Expect::Mime(want) => (found.mime != Some(want)).then_some(Refusal::ContentMismatch),
            Expect::InferExt => (found.ext != Some(ext)).then_some(Refusal::ContentMismatch),
        }
    };
    Checked { filename, size, detected: detected.map(str::to_string), accepted: reason.is_none(), reason }
}

/// The verdict on an attachment beyond the per-message cap: refused, its
/// content never looked at.
pub fn too_many(skipped: &Skipped) -> Checked {
    Checked {
        filename: sanitize_filename(skipped.filename.as_deref().unwrap_or(""), None),
        size: skipped.size,
        detected: None,
        accepted: false,
        reason: Some(Refusal::TooManyAttachments),
    }
}

fn is_allowed(ext: &str, rules: &AttachmentRules) -> bool {
    rules.allowed_extensions.iter().any(|a| a.trim_start_matches('.').eq_ignore_ascii_case(ext))
}

/// What content an extension requires.
enum Expect {
    Text,
    Zip,
    Mime(&'static str),
    /// An operator-added extension: infer's extension for the content must match.
    InferExt,
}

fn expectation(ext: &str) -> Expect {
    match ext {
        "txt" | "csv" | "tsv" | "log" | "md" | "json" => Expect::Text,
        "zip" => Expect::Zip,
        "pdf" => Expect::Mime(PDF),
        "docx" => Expect::Mime(DOCX),
        "xlsx" => Expect::Mime(XLSX),
        "pptx" => Expect::Mime(PPTX),
        "doc" => Expect::Mime(DOC),
        "xls" => Expect::Mime(XLS),
        "jpg" | "jpeg" | "jpe" => Expect::Mime(JPEG),
        "png" => Expect::Mime(PNG),
        "bmp" => Expect::Mime(BMP),
        "tar" => Expect::Mime(TAR),
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

/// Tells Word from Excel by stream names and finds macros. A blank or
/// unusual root CLSID makes infer say `x-ole-storage`; the streams are what
/// Word and Excel actually read.
fn ole(bytes: &[u8], mut d: Detected) -> Detected {
    (d.mime, d.ext) = (Some(OLE), Some("msi"));
    let Ok(mut cf) = cfb::CompoundFile::open(Cursor::new(bytes)) else {
        return d;
    };
    let workbook = ["/Workbook", "/Book"].into_iter().find(|s| cf.is_stream(s));
    if cf.is_stream("/WordDocument") {
        (d.mime, d.ext) = (Some(DOC), Some("doc"));
    } else if workbook.is_some() {
        (d.mime, d.ext) = (Some(XLS), Some("xls"));
    }
    d.macros = has_vba_project(&cf)
        || workbook.is_some_and(|w| cf.open_stream(w).is_ok_and(|s| declares_macro_sheet(std::io::BufReader::new(s))));
    d
}

/// Storages that hold VBA in Word (`Macros`) and Excel (`_VBA_PROJECT_CUR`),
/// and the project's own storage (`VBA`).
const VBA_STORAGES: &[&str] = &["Macros", "_VBA_PROJECT_CUR", "VBA"];
/// Streams every VBA project storage holds (MS-OVBA 2.2), whatever the
/// storage is called.
const VBA_STREAMS: &[&str] = &["_VBA_PROJECT", "dir"];

fn has_vba_project<F>(cf: &cfb::CompoundFile<F>) -> bool {
    cf.walk().any(|e| {
        let names: &[&str] = if e.is_storage() { VBA_STORAGES } else { VBA_STREAMS };
        // A stream at the root is not inside a project storage.
        let nested = e.is_storage() || e.path().parent().is_some_and(|p| p != std::path::Path::new("/"));
        nested && names.iter().any(|n| e.name().eq_ignore_ascii_case(n))
    })
}

/// BIFF record types read from a Workbook stream.
const BIFF_EOF: u16 = 0x000A;
const BIFF_BOUNDSHEET: u16 = 0x0085;
/// BOUNDSHEET sheet types (`dt`) that hold code: an Excel 4.0 macro sheet, a VBA module.
const MACRO_SHEET_TYPES: &[u8] = &[0x01, 0x06];

/// Whether a BIFF Workbook stream's globals substream (up to its first EOF
/// record) declares a macro sheet: a BOUNDSHEET record (`lbPlyPos` u32,
/// `hsState` u8, `dt` u8, name) whose sheet type holds code.
fn declares_macro_sheet(mut stream: impl std::io::Read) -> bool {
    let mut header = [0u8; 4];
    let mut data = [0u8; 6];
    while stream.read_exact(&mut header).is_ok() {
        let kind = u16::from_le_bytes([header[0], header[1]]);
        let len = u64::from(u16::from_le_bytes([header[2], header[3]]));
        match kind {
            BIFF_EOF => return false,
            BIFF_BOUNDSHEET if len >= 6 => {
                if stream.read_exact(&mut data).is_err() {
                    return false;
                }
                if MACRO_SHEET_TYPES.contains(&data[5]) {
                    return true;
                }
                if std::io::copy(&mut (&mut stream).take(len - 6), &mut std::io::sink()).ok() != Some(len - 6) {
                    return false;
                }
            }
            _ => {
                if std::io::copy(&mut (&mut stream).take(len), &mut std::io::sink()).ok() != Some(len) {
                    return false;
                }
            }
        }
    }
    false
}

/// Largest `[Content_Types].xml` (and each relationship part) inflated for
/// the macro check.
const MAX_CONTENT_TYPES_BYTES: usize = 1 << 20;
/// Most package XML inflated for one file, all parts together; a package
/// with more (a zip bomb of relationship parts) is not verified.
const MAX_PACKAGE_XML_BYTES: usize = 8 << 20;
/// Most relationship parts read; a package with more is not verified.
const MAX_RELATIONSHIP_PARTS: usize = 1000;

/// A MIME type and its usual extension.
type Kind = (&'static str, &'static str);

/// Word, Excel and PowerPoint packages: main part, then the kind without and
/// with macros.
const PACKAGES: &[(&str, Kind, Kind)] = &[
    ("word/document.xml", (DOCX, "docx"), (DOCM, "docm")),
    ("xl/workbook.xml", (XLSX, "xlsx"), (XLSM, "xlsm")),
    ("ppt/presentation.xml", (PPTX, "pptx"), (PPTM, "pptm")),
];

/// Words in a content type or relationship type (lower case) that mean code:
/// macro-enabled main parts, VBA projects and data, XLM macro sheets, ActiveX.
const MACRO_TYPE_MARKERS: &[&str] = &["macroenabled", "macrosheet", "vba", "activex"];

fn is_macro_type(t: &str) -> bool {
    let t = t.to_ascii_lowercase();
    MACRO_TYPE_MARKERS.iter().any(|m| t.contains(m))
}

type Package<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Classifies an OPC (Office Open XML) package by what its parts are. `None`
/// when the zip is not a Word, Excel or PowerPoint package, or when its
/// package XML cannot be read (then it is just a zip).
///
/// Macros are found by meaning: `[Content_Types].xml` and every relationship
/// part (`…/_rels/*.rels`) are parsed as XML (in the encoding they declare,
/// character references resolved), and a part of a macro, VBA, macro-sheet or
/// ActiveX content type, or a relationship of such a type, refuses the file,
/// whatever the parts are called. Part names (`vbaProject.bin`,
/// `xl/macrosheets/`) count too.
fn ooxml(bytes: &[u8]) -> Option<Detected> {
    let mut package: Package = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let names: Vec<String> = package.file_names().filter_map(Result::ok).map(|n| n.to_ascii_lowercase()).collect();
    let index = |name: &str| names.iter().position(|n| n == name);
    let content_types = index("[content_types].xml")?;
    let &(_, plain, with_macros) = PACKAGES.iter().find(|(main, ..)| index(main).is_some())?;
    let macro_part = names.iter().any(|n| n.ends_with("vbaproject.bin") || n.starts_with("xl/macrosheets/"));
    let mut budget = MAX_PACKAGE_XML_BYTES;
    let types = package_xml(&mut package, content_types, &mut budget)?;
    let types = roxmltree::Document::parse(&types).ok()?;
    let extensions: std::collections::HashSet<&str> =
        names.iter().filter_map(|n| n.rsplit_once('.')).map(|(_, e)| e).collect();
    let typed_macro = types.descendants().filter(|n| n.is_element()).any(|n| {
        let macro_type = n.attribute("ContentType").is_some_and(is_macro_type);
        match n.tag_name().name() {
            "Override" => macro_type,
            // A default type applies to the parts with that extension.
            "Default" => {
                macro_type
                    && extensions.contains(n.attribute("Extension").unwrap_or_default().to_ascii_lowercase().as_str())
            }
            _ => false,
        }
    });
    let rels: Vec<usize> =
        (0..names.len()).filter(|&i| names[i].ends_with(".rels") && names[i].contains("_rels/")).collect();
    if rels.len() > MAX_RELATIONSHIP_PARTS {
        return None;
    }
    let mut related_macro = false;
    for i in rels {
        let xml = package_xml(&mut package, i, &mut budget)?;
        let doc = roxmltree::Document::parse(&xml).ok()?;
        related_macro |= doc
            .descendants()
            .any(|n| n.tag_name().name() == "Relationship" && n.attribute("Type").is_some_and(is_macro_type));
    }
    let macros = macro_part || typed_macro || related_macro;
    let (mime, ext) = if macros { with_macros } else { plain };
    Some(Detected { mime: Some(mime), ext: Some(ext), zip: true, macros })
}

/// One package XML part as text, taken from `budget`; `None` when it cannot
/// be read, is larger than [`MAX_CONTENT_TYPES_BYTES`] or what is left of the
/// budget, or is not valid in its encoding.
fn package_xml(package: &mut Package, index: usize, budget: &mut usize) -> Option<String> {
    let part = package.by_index(index).ok()?;
    let limit = MAX_CONTENT_TYPES_BYTES.min(*budget);
    let mut data = Vec::new();
    part.take(limit as u64 + 1).read_to_end(&mut data).ok()?;
    if data.len() > limit {
        return None;
    }
    *budget -= data.len();
    xml_text(&data)
}

/// Decodes an XML document: a byte order mark decides, then UTF-16 without
/// one (`<` as a 16-bit unit), then the encoding the XML declaration names,
/// else UTF-8.
fn xml_text(bytes: &[u8]) -> Option<String> {
    let (encoding, skip) = match Encoding::for_bom(bytes) {
        Some(found) => found,
        None if bytes.starts_with(b"<\0") => (encoding_rs::UTF_16LE, 0),
        None if bytes.starts_with(b"\0<") => (encoding_rs::UTF_16BE, 0),
        None => (declared_encoding(bytes).unwrap_or(UTF_8), 0),
    };
    encoding.decode_without_bom_handling_and_without_replacement(&bytes[skip..]).map(|t| t.into_owned())
}

/// The `encoding` of an `<?xml …?>` declaration (ASCII in every encoding it
/// can name without a byte order mark).
fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.strip_prefix(b"<?xml")?;
    let head = &head[..head.windows(2).position(|w| w == b"?>")?];
    let at = head.windows(8).position(|w| w == b"encoding")?;
    let rest = head[at + 8..].trim_ascii_start().strip_prefix(b"=")?.trim_ascii_start();
    let (&quote, rest) = rest.split_first()?;
    let label = &rest[..rest.iter().position(|&b| b == quote)?];
    Encoding::for_label_no_replacement(label)
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
fn text_verdict(bytes: &[u8], declared: Option<&str>) -> Result<(), Refusal> {
    let prefix = match Encoding::for_bom(bytes) {
        Some((enc, bom)) => decode_checked(enc, &bytes[bom..]),
        None => decode_checked(UTF_8, bytes).or_else(|| {
            let declared = declared.and_then(|c| Encoding::for_label_no_replacement(c.as_bytes()));
            declared.filter(|&e| e != UTF_8).and_then(|e| decode_checked(e, bytes))
        }),
    }
    .ok_or(Refusal::NotText)?;
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

fn markup_verdict(text: &str) -> Result<(), Refusal> {
    let mut rest = text.trim_start();
    if rest.starts_with("#!") {
        return Err(Refusal::ScriptDisguisedAsText);
    }
    // Skip an XML prolog (and comments after it) to the first element.
    let mut after_prolog = false;
    loop {
        if let Some(after) = rest.strip_prefix("<!--") {
            // WHATWG sniffing takes a leading comment as the mark of HTML.
            if !after_prolog {
                return Err(Refusal::HtmlDisguisedAsText);
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
    if is_html { Err(Refusal::HtmlDisguisedAsText) } else { Ok(()) }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn rules() -> AttachmentRules {
        AttachmentRules::default()
    }

    fn part(name: &str, bytes: Vec<u8>) -> Part {
        Part { filename: Some(name.to_string()), content_type: None, charset: None, bytes }
    }

    fn verdict(name: &str, bytes: Vec<u8>) -> Checked {
        check(&part(name, bytes), &rules())
    }

    fn assert_accepted(c: &Checked, detected: &str) {
        assert!(c.accepted, "{c:?}");
        assert_eq!(c.reason, None);
        assert_eq!(c.detected.as_deref(), Some(detected), "{c:?}");
    }

    fn assert_refused(c: &Checked, reason: Refusal) {
        assert!(!c.accepted, "{c:?}");
        assert_eq!(c.reason, Some(reason), "{c:?}");
    }

    /// A zip written by the `zip` crate; `deflate` compresses every entry, else stored.
    fn zip(entries: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, options).expect("entry");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    const WORD_TYPES: &[u8] = br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    const WORDM_TYPES: &[u8] = br#"<?xml version="1.0"?><Types><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>"#;

    /// docProps first, as python-docx and others write it: infer alone says zip.
    fn docx(types: &[u8], deflate: bool) -> Vec<u8> {
        zip(
            &[
                ("docProps/core.xml", b"<cp:coreProperties/>"),
                ("[Content_Types].xml", types),
                ("_rels/.rels", b"<Relationships/>"),
                ("word/document.xml", b"<w:document/>"),
            ],
            deflate,
        )
    }

    fn xlsx() -> Vec<u8> {
        zip(
            &[
                ("[Content_Types].xml", b"<Types/>"),
                ("_rels/.rels", b"<Relationships/>"),
                ("xl/workbook.xml", b"<workbook/>"),
                ("xl/worksheets/sheet1.xml", b"<worksheet/>"),
            ],
            true,
        )
    }

    fn ole(streams: &[&str], storages: &[&str]) -> Vec<u8> {
        let filled: Vec<(&str, &[u8])> = streams.iter().map(|s| (*s, &[1u8; 600][..])).collect();
        ole_streams(&filled, storages)
    }

    fn tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    fn pdf() -> Vec<u8> {
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <</Type/Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n".to_vec()
    }

    fn png() -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
        v.extend_from_slice(&[0x90, 0x77, 0x53, 0xDE]);
        v
    }

    fn jpeg() -> Vec<u8> {
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9".to_vec()
    }

    fn bmp() -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&58u32.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0]);
        v.resize(58, 0);
        v
    }

    fn exe() -> Vec<u8> {
        let mut v = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
        v.resize(256, 0);
        v
    }

    fn elf() -> Vec<u8> {
        let mut v = b"\x7fELF\x02\x01\x01".to_vec();
        v.resize(128, 0);
        v
    }

    #[test]
    fn every_allowed_type_is_accepted_with_matching_content() {
        assert_accepted(&verdict("a.pdf", pdf()), PDF);
        assert_accepted(&verdict("a.docx", docx(WORD_TYPES, true)), DOCX);
        assert_accepted(&verdict("a.docx", docx(WORD_TYPES, false)), DOCX);
        assert_accepted(&verdict("a.xlsx", xlsx()), XLSX);
        assert_accepted(&verdict("a.doc", ole(&["/WordDocument", "/1Table"], &[])), DOC);
        assert_accepted(&verdict("a.xls", ole(&["/Workbook"], &[])), XLS);
        assert_accepted(&verdict("old.xls", ole(&["/Book"], &[])), XLS);
        assert_accepted(&verdict("a.tar", tar("hello.txt", b"hello\n")), TAR);
        assert_accepted(&verdict("a.zip", zip(&[("x.txt", b"x")], true)), ZIP);
        assert_accepted(&verdict("a.jpg", jpeg()), JPEG);
        assert_accepted(&verdict("a.jpeg", jpeg()), JPEG);
        assert_accepted(&verdict("a.png", png()), PNG);
        assert_accepted(&verdict("a.bmp", bmp()), BMP);
        assert_accepted(&verdict("a.txt", "Grüße\r\n".into()), TEXT);
        assert_accepted(&verdict("a.csv", "id;name\n1;Müller\n".into()), TEXT);
    }

    #[test]
    fn extension_is_case_insensitive_and_must_be_allowed() {
        assert_accepted(&verdict("REPORT.PDF", pdf()), PDF);
        for name in ["setup.exe", "run.js", "README", "archive.tar.gz", "a.pdf.exe"] {
            assert_refused(&verdict(name, exe()), Refusal::ExtensionNotAllowed);
        }
        assert_eq!(
            verdict("setup.exe", exe()).detected.as_deref(),
            Some("application/vnd.microsoft.portable-executable")
        );
        let only_pdf = AttachmentRules { allowed_extensions: vec![".PDF".into()], ..rules() };
        assert!(check(&part("a.pdf", pdf()), &only_pdf).accepted);
        assert_refused(&check(&part("a.png", png()), &only_pdf), Refusal::ExtensionNotAllowed);
    }

    #[test]
    fn operator_added_extensions_follow_infer() {
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
        let with_gif = AttachmentRules { allowed_extensions: vec!["gif".into(), "log".into()], ..rules() };
        assert!(check(&part("a.gif", gif), &with_gif).accepted);
        assert_refused(&check(&part("a.gif", png()), &with_gif), Refusal::ContentMismatch);
        assert!(check(&part("server.log", b"ok\n".to_vec()), &with_gif).accepted);
    }

    #[test]
    fn empty_and_size_limit() {
        assert_refused(&verdict("a.txt", Vec::new()), Refusal::EmptyFile);
        let small = AttachmentRules { max_bytes: 10, ..rules() };
        let exact = check(&part("a.txt", b"0123456789".to_vec()), &small);
        assert!(exact.accepted, "{exact:?}");
        let over = check(&part("a.txt", b"0123456789a".to_vec()), &small);
        assert_refused(&over, Refusal::TooLarge);
        assert_eq!(over.size, 11);
    }

    #[test]
    fn executables_named_as_documents_show_what_they_are() {
        let c = verdict("invoice.pdf", exe());
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some("application/vnd.microsoft.portable-executable"));
        let c = verdict("invoice.pdf", elf());
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some("application/x-executable"));
        assert_refused(&verdict("photo.jpg", png()), Refusal::ContentMismatch);
        assert_refused(&verdict("scan.png", pdf()), Refusal::ContentMismatch);
        assert_refused(&verdict("a.bmp", jpeg()), Refusal::ContentMismatch);
    }

    #[test]
    fn ooxml_kind_comes_from_the_package_parts() {
        let plain = zip(&[("word/document.xml", b"<w:document/>")], false);
        // infer calls this docx from its first entry; it has no content types.
        let c = verdict("a.docx", plain.clone());
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(ZIP));
        assert_refused(&verdict("a.docx", zip(&[("notes.txt", b"hi")], true)), Refusal::ContentMismatch);
        assert_refused(&verdict("a.xlsx", docx(WORD_TYPES, true)), Refusal::ContentMismatch);
        assert_refused(&verdict("a.docx", xlsx()), Refusal::ContentMismatch);
        // Any zip is a zip, Office packages included.
        assert_accepted(&verdict("a.zip", docx(WORD_TYPES, true)), DOCX);
        assert_accepted(&verdict("a.zip", plain), ZIP);
        assert_refused(&verdict("a.zip", pdf()), Refusal::ContentMismatch);
    }

    #[test]
    fn macro_enabled_documents_are_refused() {
        let vba = zip(
            &[
                ("[Content_Types].xml", WORD_TYPES),
                ("word/document.xml", b"<w:document/>"),
                ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0"),
            ],
            true,
        );
        let c = verdict("a.docx", vba.clone());
        assert_refused(&c, Refusal::MacroEnabled);
        assert_eq!(c.detected.as_deref(), Some(DOCM));
        assert_refused(&verdict("a.zip", vba), Refusal::MacroEnabled);
        // Declared macro-enabled in a deflated [Content_Types].xml, no vbaProject part.
        assert_refused(&verdict("a.docx", docx(WORDM_TYPES, true)), Refusal::MacroEnabled);
        assert_refused(&verdict("a.docx", docx(WORDM_TYPES, false)), Refusal::MacroEnabled);
        let xlm = zip(
            &[
                ("[Content_Types].xml", b"<Types/>"),
                ("xl/workbook.xml", b"<w/>"),
                ("xl/macrosheets/sheet1.xml", b"<m/>"),
            ],
            false,
        );
        assert_refused(&verdict("a.xlsx", xlm), Refusal::MacroEnabled);
        // Content types too large to inflate cannot hide a macro declaration.
        let mut huge = WORDM_TYPES.to_vec();
        huge.resize(MAX_CONTENT_TYPES_BYTES + 1, b' ');
        let c = verdict("a.docx", docx(&huge, true));
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(ZIP));
        assert_refused(
            &verdict("a.doc", ole(&["/WordDocument", "/Macros/VBA/dir"], &["/Macros", "/Macros/VBA"])),
            Refusal::MacroEnabled,
        );
        assert_refused(&verdict("a.xls", ole(&["/Workbook"], &["/_VBA_PROJECT_CUR"])), Refusal::MacroEnabled);
    }

    /// A Word package whose parts are `extra` besides the main document.
    fn docx_with(types: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut entries: Vec<(&str, &[u8])> =
            vec![("[Content_Types].xml", types), ("_rels/.rels", b"<Relationships/>"), ("word/document.xml", b"<w/>")];
        entries.extend_from_slice(extra);
        zip(&entries, true)
    }

    fn utf16le(text: &str) -> Vec<u8> {
        [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect()
    }

    #[test]
    fn macros_are_found_by_meaning_not_spelling() {
        // XML character references spell the VBA content type of a renamed part.
        let types = br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/data.bin" ContentType="application/vnd.ms-office.vba&#80;roject"/></Types>"#;
        let c = verdict("a.docx", docx_with(types, &[("word/data.bin", b"\xd0\xcf\x11\xe0")]));
        assert_refused(&c, Refusal::MacroEnabled);
        assert_eq!(c.detected.as_deref(), Some(DOCM));
        // UTF-16 content types, the VBA part renamed.
        let types = utf16le(
            r#"<?xml version="1.0" encoding="UTF-16"?><Types><Default Extension="dat" ContentType="application/vnd.ms-office.vbaProject"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
        );
        assert_refused(&verdict("a.docx", docx_with(&types, &[("word/stuff.dat", b"x")])), Refusal::MacroEnabled);
        // The same default type with no part of that extension declares nothing.
        assert_accepted(&verdict("a.docx", docx_with(&types, &[])), DOCX);
        // An XLM macro sheet outside xl/macrosheets/.
        let types = br#"<Types><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/other/m1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>"#;
        let xlm =
            zip(&[("[Content_Types].xml", types), ("xl/workbook.xml", b"<w/>"), ("xl/other/m1.xml", b"<m/>")], true);
        let c = verdict("a.xlsx", xlm);
        assert_refused(&c, Refusal::MacroEnabled);
        assert_eq!(c.detected.as_deref(), Some(XLSM));
        // Only a relationship says the renamed part is a VBA project.
        let rels = br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId9" Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" Target="payload.dat"/></Relationships>"#;
        let related = docx_with(WORD_TYPES, &[("word/_rels/document.xml.rels", rels), ("word/payload.dat", b"x")]);
        assert_refused(&verdict("a.docx", related), Refusal::MacroEnabled);
        // ActiveX controls.
        let types = br#"<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/activeX/activeX1.xml" ContentType="application/vnd.ms-office.activeX+xml"/></Types>"#;
        assert_refused(
            &verdict("a.docx", docx_with(types, &[("word/activeX/activeX1.xml", b"<a/>")])),
            Refusal::MacroEnabled,
        );
        // So does more package XML than the budget, however it is split.
        let mut rels = b"<Relationships>".to_vec();
        rels.resize(MAX_CONTENT_TYPES_BYTES - 32, b' ');
        rels.extend_from_slice(b"</Relationships>");
        let names: Vec<String> =
            (0..MAX_PACKAGE_XML_BYTES / rels.len() + 1).map(|i| format!("p{i}/_rels/a.rels")).collect();
        let mut entries: Vec<(&str, &[u8])> = vec![("[Content_Types].xml", WORD_TYPES), ("word/document.xml", b"<w/>")];
        entries.extend(names.iter().map(|n| (n.as_str(), rels.as_slice())));
        let c = verdict("a.docx", zip(&entries, false));
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(ZIP));
        // Package XML that is not XML leaves the package unverified: just a zip.
        let c = verdict("a.docx", docx_with(b"<Types><Override", &[]));
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(ZIP));
    }

    /// An OLE file with the given streams and their content.
    fn ole_streams(streams: &[(&str, &[u8])], storages: &[&str]) -> Vec<u8> {
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("create");
        for s in storages {
            cf.create_storage(s).expect("storage");
        }
        for (s, data) in streams {
            cf.create_stream(s).expect("stream").write_all(data).expect("write");
        }
        cf.flush().expect("flush");
        cf.into_inner().into_inner()
    }

    /// A BIFF8 Workbook stream: BOF, one BOUNDSHEET of sheet type `dt`, EOF.
    fn biff_workbook(dt: u8) -> Vec<u8> {
        let record = |kind: u16, data: &[u8]| {
            let mut r = kind.to_le_bytes().to_vec();
            r.extend_from_slice(&(data.len() as u16).to_le_bytes());
            r.extend_from_slice(data);
            r
        };
        let mut sheet = vec![0, 0, 0, 0, 0, dt, 6, 0];
        sheet.extend_from_slice(b"Macro1");
        let mut out = record(0x0809, &[0, 6, 5, 0, 0, 0, 0, 0]);
        out.extend(record(BIFF_BOUNDSHEET, &sheet));
        out.extend(record(BIFF_EOF, &[]));
        out.resize(4096, 0);
        out
    }

    #[test]
    fn ole_macros_are_found_under_any_name() {
        let renamed = ole_streams(
            &[
                ("/WordDocument", &[1; 600]),
                ("/Renamed/Proj/_VBA_PROJECT", &[1; 600]),
                ("/Renamed/Proj/dir", &[1; 600]),
            ],
            &["/Renamed", "/Renamed/Proj"],
        );
        assert_refused(&verdict("a.doc", renamed), Refusal::MacroEnabled);
        // An Excel 4.0 macro sheet declared in the Workbook stream.
        let xlm = ole_streams(&[("/Workbook", &biff_workbook(0x01))], &[]);
        assert_refused(&verdict("a.xls", xlm), Refusal::MacroEnabled);
        let worksheet = ole_streams(&[("/Workbook", &biff_workbook(0x00))], &[]);
        assert_accepted(&verdict("a.xls", worksheet), XLS);
    }

    #[test]
    fn ole_kind_comes_from_stream_names() {
        assert_refused(&verdict("a.xls", ole(&["/WordDocument"], &[])), Refusal::ContentMismatch);
        assert_refused(&verdict("a.doc", ole(&["/Workbook"], &[])), Refusal::ContentMismatch);
        let c = verdict("a.doc", ole(&["/EncryptedPackage"], &[]));
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(OLE));
        // The OLE magic alone is not a document.
        let mut broken = OLE_MAGIC.to_vec();
        broken.resize(1024, 0);
        assert_refused(&verdict("a.doc", broken), Refusal::ContentMismatch);
    }

    #[test]
    fn tar_needs_ustar_magic_and_a_valid_checksum() {
        let mut bad = tar("a.txt", b"x");
        bad[0] = b'b';
        assert_refused(&verdict("a.tar", bad), Refusal::ContentMismatch);
        let mut text = vec![b'a'; 600];
        text[257..262].copy_from_slice(b"ustar");
        assert_refused(&verdict("a.tar", text), Refusal::ContentMismatch);
    }

    #[test]
    fn text_encodings() {
        assert_accepted(&verdict("bom.csv", b"\xef\xbb\xbfa;b\n".to_vec()), TEXT);
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Grüße\r\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_accepted(&verdict("notepad.txt", utf16), TEXT);
        let latin1 = b"Gr\xfc\xdfe aus K\xf6ln\n".to_vec();
        assert_refused(&verdict("a.txt", latin1.clone()), Refusal::NotText);
        let declared = Part { charset: Some("iso-8859-1".into()), ..part("a.txt", latin1.clone()) };
        assert_accepted(&check(&declared, &rules()), TEXT);
        let cp1252 = Part { charset: Some("windows-1252".into()), ..part("a.csv", b"price;\x80 5\n".to_vec()) };
        assert_accepted(&check(&cp1252, &rules()), TEXT);
        let wrong = Part { charset: Some("utf-8".into()), ..part("a.txt", latin1) };
        assert_refused(&check(&wrong, &rules()), Refusal::NotText);
    }

    #[test]
    fn binary_is_not_text() {
        assert_refused(&verdict("a.txt", b"abc\0def".to_vec()), Refusal::NotText);
        let declared = Part { charset: Some("iso-8859-1".into()), ..part("a.txt", b"ab\x01\x02\x03\xff".to_vec()) };
        assert_refused(&check(&declared, &rules()), Refusal::NotText);
        // Tabs, form feeds and ANSI colours in logs are text.
        assert!(verdict("a.txt", b"a\tb\x0c\x1b[31mred\x1b[0m\n".to_vec()).accepted);
        // infer calls these a bitmap and a DOS program; they are text.
        assert_accepted(&verdict("cars.csv", b"BMW;320d;2019\n".to_vec()), TEXT);
        assert_accepted(&verdict("names.txt", b"MZ Muster\n".to_vec()), TEXT);
        let c = verdict("a.txt", png());
        assert_refused(&c, Refusal::ContentMismatch);
        assert_eq!(c.detected.as_deref(), Some(PNG));
        // A NUL found beyond the first decoding buffer still counts.
        let mut long = vec![b'a'; 20_000];
        long[19_000] = 0;
        assert_refused(&verdict("a.txt", long), Refusal::NotText);
    }

    #[test]
    fn html_and_scripts_named_as_text_are_refused() {
        for html in [
            "<!DOCTYPE html><html><body>hi</body></html>",
            "\n  <html>\n<script>alert(1)</script>",
            "\u{feff}<HTML lang=en>",
            "<script src=x></script>",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            "<?xml version=\"1.0\"?>\n<!-- c -->\n<html xmlns=\"http://www.w3.org/1999/xhtml\">",
            "<!-- saved from url -->",
            "<a href=x>click</a>",
        ] {
            assert_refused(&verdict("a.txt", html.into()), Refusal::HtmlDisguisedAsText);
        }
        let c = verdict("bom.txt", "\u{feff}<html>".into());
        assert_eq!(c.detected.as_deref(), Some(HTML));
        let c = verdict("run.txt", "#!/bin/sh\nrm -rf ~\n".into());
        assert_refused(&c, Refusal::ScriptDisguisedAsText);
        assert_eq!(c.detected.as_deref(), Some(SHELL_SCRIPT));
        for text in ["the page shows <script> errors\n", "<notes>\n", "a < b\n", "<?xml version=\"1.0\"?><data/>"] {
            assert!(verdict("a.txt", text.into()).accepted, "{text}");
        }
    }

    #[test]
    fn file_names_are_sanitised() {
        let s = |n: &str| sanitize_filename(n, None);
        assert_eq!(s("../../etc/passwd.txt"), "passwd.txt");
        assert_eq!(s("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(s(".htaccess"), "htaccess");
        assert_eq!(s("...  .bashrc.txt"), "bashrc.txt");
        assert_eq!(s("photo\u{202E}gpj.exe"), "photogpj.exe");
        assert_eq!(s("a\u{2066}b\u{200B}c\r\n\t.pdf"), "abc.pdf");
        assert_eq!(s("x.txt:evil.exe"), "x.txt_evil.exe");
        assert_eq!(s("report.pdf. "), "report.pdf");
        assert_eq!(s("Rechnung März.pdf"), "Rechnung März.pdf");
        assert_eq!(s(""), "attachment");
        assert_eq!(s("../"), "attachment");
        assert_eq!(sanitize_filename("", Some("png")), "attachment.png");
        let long = format!("{}.docx", "ä".repeat(150));
        let cut = s(&long);
        assert!(cut.len() <= MAX_FILENAME_BYTES && cut.len() > MAX_FILENAME_BYTES - 2, "{}", cut.len());
        assert!(cut.ends_with("ä.docx"));
        let no_ext = "b".repeat(300);
        assert_eq!(s(&no_ext), "b".repeat(MAX_FILENAME_BYTES));
        assert_eq!(extension("A.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension("pdf"), None);
        assert_eq!(extension("a."), None);
    }

    #[test]
    fn refusals_use_the_sanitised_name() {
        let c = verdict("photo\u{202E}gpj.exe", exe());
        assert_eq!(c.filename, "photogpj.exe");
        assert_refused(&c, Refusal::ExtensionNotAllowed);
        let c = verdict("../../etc/passwd.txt", b"root:x:0:0\n".to_vec());
        assert_eq!(c.filename, "passwd.txt");
        assert!(c.accepted);
    }

    #[test]
    fn nameless_parts_are_judged_by_content() {
        let c = check(
            &Part { filename: None, content_type: Some("image/png".into()), charset: None, bytes: png() },
            &rules(),
        );
        assert_eq!(c.filename, "attachment.png");
        assert!(c.accepted);
        let c = check(
            &Part { filename: None, content_type: Some("text/plain".into()), charset: None, bytes: b"hi".to_vec() },
            &rules(),
        );
        assert_eq!(c.filename, "attachment.txt");
        assert!(c.accepted);
        let c = check(&Part { filename: None, content_type: None, charset: None, bytes: exe() }, &rules());
        assert_eq!(c.filename, "attachment.exe");
        assert_refused(&c, Refusal::ExtensionNotAllowed);
        let c = check(&Part { filename: None, content_type: None, charset: None, bytes: vec![1, 2, 3] }, &rules());
        assert_eq!(c.filename, "attachment");
        assert_refused(&c, Refusal::ExtensionNotAllowed);
    }

    #[test]
    fn every_reason_has_its_own_text() {
        let texts: std::collections::HashSet<_> = Refusal::ALL.iter().map(|&r| reason_text(r)).collect();
        assert_eq!(texts.len(), Refusal::ALL.len());
    }

    /// The codes are stored with each refused attachment and shown by `inspect`: they never change.
    #[test]
    fn refusal_spellings_are_pinned() {
        let words: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        let pinned = [
            "extension_not_allowed",
            "empty_file",
            "too_large",
            "macro_enabled",
            "content_mismatch",
            "not_text",
            "html_disguised_as_text",
            "script_disguised_as_text",
            "too_many_attachments",
        ];
        assert_eq!(words, pinned);
        assert_eq!(serde_json::to_string(&Refusal::NotText).unwrap(), "\"not_text\"");
    }
}
