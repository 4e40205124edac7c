//! Attachment policy on whole messages: the size limit at its exact boundary
//! (generated in memory, never committed), several attachments with mixed
//! verdicts, nameless inline parts and transfer encodings.

use data_encoding::BASE64_MIME;
use ticketgate::config::AttachmentRules;
use ticketgate::parse::parse;
use ticketgate::policy::attachments::{Checked, Refusal, check};

/// One message with a text body and the given attachments
/// (content type, Content-Disposition value, transfer encoding, encoded body).
fn message(parts: &[(&str, &str, &str, String)]) -> Vec<u8> {
    let mut m = String::from(
        "From: Anna Kunde <anna.kunde@example.com>\r\nTo: support@example.com\r\nSubject: files\r\n\
         Message-ID: <att@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n",
    );
    for (ctype, disposition, encoding, body) in parts {
        m.push_str(&format!(
            "--b\r\nContent-Type: {ctype}\r\nContent-Disposition: {disposition}\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n"
        ));
    }
    m.push_str("--b--\r\n");
    m.into_bytes()
}

fn base64_attachment(name: &str, ctype: &str, bytes: &[u8]) -> Vec<u8> {
    let disposition = format!("attachment; filename=\"{name}\"");
    message(&[(ctype, &disposition, "base64", BASE64_MIME.encode(bytes))])
}

fn checked(raw: &[u8]) -> Vec<Checked> {
    let rules = AttachmentRules::default();
    parse(raw).expect("parses").attachments.iter().map(|p| check(p, &rules)).collect()
}

/// A PDF of exactly `len` decoded bytes.
fn pdf_of(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%".to_vec();
    v.resize(len - 6, b'x');
    v.extend_from_slice(b"%%EOF\n");
    v
}

/// Base64 (76-character lines) of `head` followed by `fill` up to `len`
/// bytes. `head` must be a multiple of 3 bytes long: then the filler encodes
/// to one repeated quantum, which keeps the 15 MiB messages cheap to build in
/// a debug test binary.
fn big_base64(head: &[u8], fill: u8, len: usize) -> String {
    assert_eq!(head.len() % 3, 0);
    let body = len - head.len();
    let mut flat = BASE64_MIME.encode(head).replace("\r\n", "");
    flat.push_str(&BASE64_MIME.encode(&[fill; 3]).trim_end().repeat(body / 3));
    flat.push_str(BASE64_MIME.encode(&vec![fill; body % 3]).trim_end());
    let mut wrapped = String::with_capacity(flat.len() + flat.len() / 38);
    for line in flat.as_bytes().chunks(76) {
        wrapped.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        wrapped.push_str("\r\n");
    }
    wrapped
}

fn big_message(name: &str, ctype: &str, head: &[u8], fill: u8, len: usize) -> Vec<u8> {
    let disposition = format!("attachment; filename=\"{name}\"");
    message(&[(ctype, &disposition, "base64", big_base64(head, fill, len))])
}

#[test]
fn base64_helper_encodes_what_it_claims() {
    let raw = big_message("a.txt", "text/plain", b"abc", b'z', 1000);
    let parsed = parse(&raw).expect("parses");
    let mut want = b"abc".to_vec();
    want.resize(1000, b'z');
    assert_eq!(parsed.attachments[0].bytes, want);
}

#[test]
fn default_limit_is_15_mib_of_decoded_bytes() {
    let limit = AttachmentRules::default().max_bytes;
    assert_eq!(limit, 15 * 1024 * 1024);

    let at_limit = checked(&big_message("big.pdf", "application/pdf", b"%PDF-1.4\n", b'x', limit as usize));
    assert_eq!(at_limit.len(), 1);
    assert_eq!(at_limit[0].size, limit);
    assert!(at_limit[0].accepted, "{:?}", at_limit[0]);

    let over = checked(&big_message("big.pdf", "application/pdf", b"%PDF-1.4\n", b'x', limit as usize + 1));
    assert_eq!(over[0].size, limit + 1);
    assert!(!over[0].accepted);
    assert_eq!(over[0].reason.map(Refusal::as_str), Some("too_large"));
    assert_eq!(over[0].detected.as_deref(), Some("application/pdf"));
}

#[test]
fn text_at_the_limit_is_validated_whole() {
    let limit = AttachmentRules::default().max_bytes as usize;
    let raw = big_message("log.txt", "text/plain; charset=utf-8", "äöü\n".repeat(3).as_bytes(), b'.', limit);
    let mut parsed = parse(&raw).expect("parses");
    let part = &mut parsed.attachments[0];
    assert_eq!(part.bytes.len(), limit);
    let rules = AttachmentRules::default();
    let ok = check(part, &rules);
    assert!(ok.accepted, "{ok:?}");
    assert_eq!((ok.size, ok.detected.as_deref()), (limit as u64, Some("text/plain")));
    // One NUL as the very last byte makes it binary.
    part.bytes[limit - 1] = 0;
    assert_eq!(check(part, &rules).reason.map(Refusal::as_str), Some("not_text"));
}

#[test]
fn size_counts_decoded_bytes_not_the_encoding() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde".to_vec();
    let c = checked(&base64_attachment("a.png", "image/png", &png));
    assert_eq!(c[0].size, png.len() as u64);
    assert!(c[0].accepted);
}

#[test]
fn each_attachment_gets_its_own_verdict() {
    let exe = {
        let mut v = b"MZ\x90\0".to_vec();
        v.resize(300, 0);
        v
    };
    let raw = message(&[
        ("application/pdf", "attachment; filename=\"ok.pdf\"", "base64", BASE64_MIME.encode(&pdf_of(200))),
        ("application/pdf", "attachment; filename=\"fake.pdf\"", "base64", BASE64_MIME.encode(&exe)),
        ("application/x-msdownload", "attachment; filename=\"tool.exe\"", "base64", BASE64_MIME.encode(&exe)),
        ("text/plain; charset=utf-8", "attachment; filename=\"empty.txt\"", "base64", String::new()),
    ]);
    let c = checked(&raw);
    let summary: Vec<(&str, Option<&str>)> =
        c.iter().map(|c| (c.filename.as_str(), c.reason.map(Refusal::as_str))).collect();
    assert_eq!(
        summary,
        [
            ("ok.pdf", None),
            ("fake.pdf", Some("content_mismatch")),
            ("tool.exe", Some("extension_not_allowed")),
            ("empty.txt", Some("empty_file")),
        ]
    );
}

#[test]
fn text_attachments_keep_their_bytes_and_charset() {
    // 8bit ISO-8859-1 and quoted-printable windows-1252: judged on the
    // file's own bytes with the declared charset, sized in those bytes.
    let latin1 = b"Gr\xfc\xdfe aus K\xf6ln\r\n".to_vec();
    let mut raw = message(&[(
        "text/plain; charset=iso-8859-1",
        "attachment; filename=\"gruss.txt\"",
        "quoted-printable",
        "Gr=FC=DFe aus K=F6ln".into(),
    )]);
    let c = checked(&raw);
    assert!(c[0].accepted, "{:?}", c[0]);
    assert_eq!(c[0].size, latin1.len() as u64 - 2);

    raw = message(&[(
        "text/csv; charset=windows-1252",
        "attachment; filename=\"preise.csv\"",
        "base64",
        BASE64_MIME.encode(b"Artikel;Preis\r\nSchraube;\x80 0,10\r\n"),
    )]);
    assert!(checked(&raw)[0].accepted);

    // The same bytes with no charset are not UTF-8: refused.
    raw = base64_attachment("gruss.txt", "text/plain", &latin1);
    assert_eq!(checked(&raw)[0].reason.map(Refusal::as_str), Some("not_text"));
}

#[test]
fn nameless_inline_image_is_named_by_its_content() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde".to_vec();
    let raw = message(&[("image/png", "inline", "base64", BASE64_MIME.encode(&png))]);
    let c = checked(&raw);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].filename, "attachment.png");
    assert!(c[0].accepted);
}
