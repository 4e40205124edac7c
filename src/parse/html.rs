//! HTML mail to readable text, for HTML-only messages (the posted body, the
//! search index). Block-aware: block elements and `<br>` become line breaks,
//! paragraphs and headings a blank line, `<li>` a `- ` item, table cells are
//! separated by spaces, `<a href=u>text</a>` becomes `text <u>` (just `text`
//! when the text already is the address), `<pre>` keeps its spacing. Script,
//! style, head and title contents are dropped; comments (including Outlook's
//! conditional comments) are skipped. Entities are decoded (the HTML 4 Latin-1
//! set, the common typographic ones, numeric); `&nbsp;` becomes a plain space
//! but is not collapsed away, so Outlook's `<p class=MsoNormal>&nbsp;</p>`
//! spacer stays an empty line (Word's `MsoNormal` paragraphs are margin-less
//! lines, not paragraphs).
//!
//! Quoted history is marked so that [`super::trim`] can remove it, never cut
//! here (the converted text is also the "whole body" that is kept):
//! - `<blockquote>` (Apple's and Thunderbird's `type=cite`, Gmail's and
//!   Outlook's bordered quotes) and containers with the class `gmail_quote`,
//!   `yahoo_quoted` or `protonmail_quote` become `> `-prefixed lines, nested
//!   quotes `>> `. A `<blockquote>` whose style says `border:none` is Gmail's
//!   and Outlook's *indent* button, not a quote, and stays plain text.
//! - Signature containers (Gmail's `gmail_signature`, Proton's
//!   `protonmail_signature_block`, Outlook's `Signature` id) get a `-- `
//!   delimiter line before them, so trim cuts the signature as in text mail.
//! - Outlook's reply header (`<div id="divRplyFwdMsg">`, or the
//!   `border-top:solid` separator div of Outlook desktop) and `<hr>` become a
//!   line of underscores, exactly as Outlook's own text part renders them; trim
//!   cuts there when a header block (`From:` / `Von:` …) follows.
//!
//! Never panics; time and output stay linear in the input (nesting beyond
//! 256 elements is ignored, quote prefixes stop at 8 `>`).

/// No-break spaces: content while converting, plain spaces in the output.
const NO_BREAK_SPACES: [char; 2] = ['\u{a0}', '\u{202f}'];

/// A line of underscores: how Outlook renders its reply separator as text.
pub const SEPARATOR: &str = "________________________________";

/// Deepest element nesting that is interpreted; deeper start tags are
/// ignored, which keeps hostile nesting from costing quadratic time.
const MAX_NESTING: usize = 256;
/// Most `>` written before a quoted line, however deep the quote.
const MAX_QUOTE_PREFIX: usize = 8;

/// Elements whose start and end break the line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "li",
    "main",
    "nav",
    "ol",
    "section",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];
/// Block elements that also leave a blank line around them.
const PARAGRAPHS: &[&str] = &["h1", "h2", "h3", "h4", "h5", "h6", "p", "pre"];
/// Elements whose whole content is dropped (raw text, or not shown).
const DROPPED: &[&str] = &["script", "style", "title", "head", "template", "noscript", "object", "svg"];
/// Class names of containers that hold quoted history.
const QUOTE_CLASSES: &[&str] = &["gmail_quote", "gmail_quote_container", "yahoo_quoted", "protonmail_quote"];
/// Ids of containers that start Outlook's reply header block.
const OUTLOOK_HEADER_IDS: &[&str] = &["divrplyfwdmsg"];
/// Class names of containers that hold the sender's signature.
const SIGNATURE_CLASSES: &[&str] = &["gmail_signature", "protonmail_signature_block", "moz-signature"];
/// Ids of containers that hold the sender's signature (Outlook).
const SIGNATURE_IDS: &[&str] = &["signature", "ms-outlook-mobile-signature"];

/// Converts an HTML body to plain text.
pub fn to_text(html: &str) -> String {
    let mut w = Writer::default();
    // Open elements that change state: the element name and what it did.
    let mut stack: Vec<(String, Effect)> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            w.text(&decode_entities(rest));
            break;
        };
        if lt > 0 {
            w.text(&decode_entities(&rest[..lt]));
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            rest = rest.find('>').map_or("", |end| &rest[end + 1..]);
            continue;
        }
        let Some(tag) = Tag::parse(rest) else {
            // A lone `<` is text.
            w.text("<");
            rest = &rest[1..];
            continue;
        };
        rest = &rest[tag.len..];
        if tag.closing {
            close(&mut w, &mut stack, &tag.name);
            continue;
        }
        if DROPPED.contains(&tag.name.as_str()) && !tag.self_closing {
            rest = skip_element(rest, &tag.name);
            continue;
        }
        open(&mut w, &mut stack, &tag);
    }
    w.finish()
}

/// What an open element did to the writer, undone when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Block,
    Paragraph,
    Quote,
    Pre,
    Link,
    Cell,
}

fn open(w: &mut Writer, stack: &mut Vec<(String, Effect)>, tag: &Tag) {
    let name = tag.name.as_str();
    if stack.len() >= MAX_NESTING && !matches!(name, "br" | "hr") {
        return;
    }
    let class = tag.attr("class").unwrap_or_default().to_ascii_lowercase();
    let id = tag.attr("id").unwrap_or_default().to_ascii_lowercase();
    let style: String =
        tag.attr("style").unwrap_or_default().to_ascii_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    if OUTLOOK_HEADER_IDS.contains(&id.as_str()) || (name == "div" && style.contains("border-top:solid")) {
        w.separator();
    }
    if SIGNATURE_IDS.contains(&id.as_str()) || class.split_whitespace().any(|c| SIGNATURE_CLASSES.contains(&c)) {
        w.signature();
    }
    let is_quote = (name == "blockquote" && !style.contains("border:none"))
        || class.split_whitespace().any(|c| QUOTE_CLASSES.contains(&c));
    let effect = match name {
        "br" => {
            w.line_break();
            return;
        }
        "hr" => {
            w.separator();
            return;
        }
        "img" | "meta" | "link" | "input" | "wbr" | "col" | "area" | "base" => return,
        _ if is_quote => {
            w.block();
            w.quote_depth += 1;
            Effect::Quote
        }
        "a" => {
            w.link = Some((tag.attr("href").unwrap_or_default(), String::new()));
            Effect::Link
        }
        "td" | "th" => {
            w.space();
            Effect::Cell
        }
        "li" => {
            w.block();
            w.text("- ");
            Effect::Block
        }
        "pre" => {
            w.paragraph();
            w.pre += 1;
            Effect::Pre
        }
        // Word's paragraphs (Outlook) have no margins: they are lines.
        "p" if class.starts_with("mso") => {
            w.block();
            Effect::Block
        }
        _ if PARAGRAPHS.contains(&name) => {
            w.paragraph();
            Effect::Paragraph
        }
        _ if BLOCKS.contains(&name) => {
            w.block();
            Effect::Block
        }
        _ => return,
    };
    if !tag.self_closing {
        stack.push((name.to_string(), effect));
    }
}

fn close(w: &mut Writer, stack: &mut Vec<(String, Effect)>, name: &str) {
    // Tolerate unclosed children (`<p>` without `</p>`): close up to the match.
    let Some(pos) = stack.iter().rposition(|(n, _)| n == name) else {
        if name == "p" || BLOCKS.contains(&name) {
            w.block();
        }
        return;
    };
    for (_, effect) in stack.drain(pos..).rev() {
        match effect {
            Effect::Block => w.block(),
            Effect::Paragraph => w.paragraph(),
            Effect::Quote => {
                w.block();
                w.quote_depth = w.quote_depth.saturating_sub(1);
            }
            Effect::Pre => {
                w.pre = w.pre.saturating_sub(1);
                w.paragraph();
            }
            Effect::Link => w.end_link(),
            Effect::Cell => w.space(),
        }
    }
}

/// Skips past the end tag of a raw-text or dropped element (`</name>`), or to
/// the end of input when it is never closed; `<head>` also ends at `<body>`.
fn skip_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let close = format!("</{name}");
    // One scan for whichever comes first: looking for each separately read
    // the whole rest of the input at every `<head>` (quadratic in repeated
    // `<head><body>`).
    let end = match name {
        "head" => find_ci(rest, &[&close, "<body"]),
        _ => find_ci(rest, &[&close]),
    };
    match end {
        Some(i) => {
            let after = &rest[i..];
            if after.starts_with("</") { after.find('>').map_or("", |e| &after[e + 1..]) } else { after }
        }
        None => "",
    }
}

/// Byte offset of the first ASCII-case-insensitive match of any of `needles`
/// (each starts with `<`), scanning `hay` once.
fn find_ci(hay: &str, needles: &[&str]) -> Option<usize> {
    let h = hay.as_bytes();
    let at = |i: usize, n: &str| h.get(i..i + n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n.as_bytes()));
    hay.match_indices('<').map(|(i, _)| i).find(|&i| needles.iter().any(|n| at(i, n)))
}

/// One start or end tag.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
    /// Bytes of input the tag took, `<` to `>` inclusive.
    len: usize,
}

impl Tag {
    /// Parses the tag at the start of `s` (which starts with `<`); `None`
    /// when it is not a tag (e.g. `a < b`).
    fn parse(s: &str) -> Option<Tag> {
        let bytes = s.as_bytes();
        let mut i = 1;
        let closing = bytes.get(1) == Some(&b'/');
        if closing {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b':' || bytes[i] == b'-') {
            i += 1;
        }
        if i == start || !bytes[start].is_ascii_alphabetic() {
            return None;
        }
        let name = s[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        let mut self_closing = false;
        loop {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                None => return Some(Tag { name, closing, self_closing, attrs, len: bytes.len() }),
                Some(b'>') => return Some(Tag { name, closing, self_closing, attrs, len: i + 1 }),
                Some(b'/') => {
                    self_closing = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let name_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
                i += 1;
            }
            let attr = s[name_start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(&q) if q == b'"' || q == b'\'' => {
                        let end = s[i + 1..].find(q as char).map_or(bytes.len(), |e| i + 1 + e);
                        value = decode_entities(&s[i + 1..end]);
                        i = (end + 1).min(bytes.len());
                    }
                    _ => {
                        let v_start = i;
                        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                            i += 1;
                        }
                        value = decode_entities(&s[v_start..i]);
                    }
                }
            }
            if !attr.is_empty() {
                attrs.push((attr, value));
            }
        }
    }

    fn attr(&self, name: &str) -> Option<String> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim().to_string())
    }
}

/// Builds the text line by line; each line remembers its quote depth.
#[derive(Default)]
struct Writer {
    lines: Vec<(usize, String)>,
    line: String,
    /// Quote depth of the line being written (fixed by its first character).
    line_depth: usize,
    quote_depth: usize,
    pre: usize,
    pending_space: bool,
    /// A blank line is owed before the next text.
    pending_blank: bool,
    /// An open `<a>`: its href and the text seen inside it.
    link: Option<(String, String)>,
}

impl Writer {
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if self.pre > 0 && c == '\n' {
                self.line_break();
            } else if self.pre > 0 && c != '\r' {
                self.push(if c == '\t' { ' ' } else { c });
            } else if c.is_whitespace() && !NO_BREAK_SPACES.contains(&c) {
                self.space();
            } else {
                self.push(c);
            }
        }
    }

    fn space(&mut self) {
        if !self.line.is_empty() {
            self.pending_space = true;
        }
    }

    fn push(&mut self, c: char) {
        if self.line.is_empty() {
            if self.pending_blank && self.lines.last().is_some_and(|(_, l)| !l.is_empty()) {
                self.lines.push((self.quote_depth.min(self.line_depth_of_last()), String::new()));
            }
            self.pending_blank = false;
            self.line_depth = self.quote_depth;
        } else if self.pending_space {
            self.line.push(' ');
            if let Some((_, t)) = &mut self.link {
                t.push(' ');
            }
        }
        self.pending_space = false;
        self.line.push(c);
        if let Some((_, t)) = &mut self.link {
            t.push(c);
        }
    }

    fn line_depth_of_last(&self) -> usize {
        self.lines.last().map_or(0, |(d, _)| *d)
    }

    /// `<br>`: ends the line even when it is empty.
    fn line_break(&mut self) {
        if self.line.is_empty() {
            self.line_depth = self.quote_depth;
        }
        self.lines.push((self.line_depth, std::mem::take(&mut self.line)));
        self.pending_space = false;
    }

    /// A block boundary: ends a non-empty line.
    fn block(&mut self) {
        if !self.line.is_empty() {
            self.line_break();
        }
        self.pending_space = false;
    }

    fn paragraph(&mut self) {
        self.block();
        self.pending_blank = true;
    }

    fn separator(&mut self) {
        self.block();
        self.line_depth = self.quote_depth;
        self.lines.push((self.quote_depth, SEPARATOR.to_string()));
    }

    /// A client's signature container: the `-- ` delimiter line before it.
    fn signature(&mut self) {
        self.block();
        self.line_depth = self.quote_depth;
        self.lines.push((self.quote_depth, "-- ".to_string()));
    }

    fn end_link(&mut self) {
        let Some((href, text)) = self.link.take() else { return };
        let shown = text.trim();
        let target = href.strip_prefix("mailto:").unwrap_or(&href);
        let useless = href.is_empty() || href.starts_with('#') || href.to_ascii_lowercase().starts_with("javascript:");
        if !useless && bare_url(shown) != bare_url(target) {
            if shown.is_empty() {
                self.text(target);
            } else {
                self.text(&format!(" <{target}>"));
            }
        }
    }

    fn finish(mut self) -> String {
        self.block();
        let mut out = String::new();
        let mut blank_run = 0;
        for (depth, line) in &self.lines {
            let line = line.replace(NO_BREAK_SPACES, " ");
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            if *depth > 0 {
                out.push_str(&">".repeat((*depth).min(MAX_QUOTE_PREFIX)));
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim_matches('\n').to_string()
    }
}

/// A URL as people write it: lower case, without the scheme, `www.` or a
/// trailing slash, so `www.x.test` and `https://www.x.test/` are the same.
fn bare_url(url: &str) -> String {
    let lower = url.trim().to_lowercase();
    let rest = ["https://", "http://", "mailto:"].iter().find_map(|p| lower.strip_prefix(p)).unwrap_or(&lower);
    let rest = rest.strip_prefix("www.").unwrap_or(rest);
    rest.trim_end_matches('/').to_string()
}

/// HTML 4 names for U+00A0..=U+00FF, in code point order.
const LATIN1: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy",
    "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm",
    "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
    "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
    "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN",
    "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
    "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
];

/// Other named entities common in mail.
const NAMED: &[(&str, &str)] = &[
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("euro", "€"),
    ("hellip", "…"),
    ("mdash", "—"),
    ("ndash", "–"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("sbquo", "‚"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("bdquo", "„"),
    ("bull", "•"),
    ("trade", "™"),
    ("dagger", "†"),
    ("permil", "‰"),
    ("lsaquo", "‹"),
    ("rsaquo", "›"),
    ("OElig", "Œ"),
    ("oelig", "œ"),
    ("Scaron", "Š"),
    ("scaron", "š"),
    ("Yuml", "Ÿ"),
    ("ensp", " "),
    ("emsp", " "),
    ("thinsp", " "),
    ("zwnj", ""),
    ("zwj", ""),
    ("lrm", ""),
    ("rlm", ""),
    ("rarr", "→"),
    ("larr", "←"),
];

/// Decodes character references; unknown or malformed ones stay as written.
/// Soft hyphens disappear. No-break spaces stay (the writer keeps them from
/// collapsing, so `<p>&nbsp;</p>` is an empty line, and prints them as spaces).
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.char_indices().take(34).find(|(_, c)| *c == ';').map(|(i, _)| i);
        let decoded = end.and_then(|end| entity(&rest[1..end]).map(|d| (d, end)));
        match decoded {
            Some((d, end)) => {
                out.push_str(&d);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.replace('\u{ad}', "")
}

fn entity(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        // Windows-1252 code points sent as numbers (`&#146;`) mean the 1252 glyph.
        return char::from_u32(code).filter(|c| *c != '\0').map(|c| super::windows_1252(c).to_string());
    }
    if let Some(i) = LATIN1.iter().position(|n| *n == name) {
        return char::from_u32(0xa0 + i as u32).map(String::from);
    }
    NAMED.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_breaks_and_paragraphs() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
            <h1>Order &amp; delivery</h1><p>Hello&nbsp;there,<br>your order   #123\nshipped.</p>\
            <ul><li>Item one</li><li>Item two</li></ul><div>a</div><div><br></div><div>b</div>\
            <script>alert(1)</script></body></html>";
        assert_eq!(
            to_text(html),
            "Order & delivery\n\nHello there,\nyour order #123 shipped.\n\n- Item one\n- Item two\na\n\nb"
        );
    }

    #[test]
    fn links_show_their_target_unless_it_is_the_text() {
        assert_eq!(
            to_text(r#"See <a href="https://x.test/t?a=1&amp;b=2">tracking</a>."#),
            "See tracking <https://x.test/t?a=1&b=2>."
        );
        assert_eq!(to_text(r#"<a href="https://x.test">https://x.test</a>"#), "https://x.test");
        assert_eq!(to_text(r#"<a href="mailto:a@b.test">a@b.test</a>"#), "a@b.test");
        assert_eq!(to_text(r##"<a href="#top">top</a>"##), "top");
        assert_eq!(to_text(r#"<a href="https://www.x.test/">www.x.test</a>"#), "www.x.test");
        assert_eq!(to_text(r#"<a href="https://x.test/a"><img src="b.png"></a>"#), "https://x.test/a");
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("&euro; 5 &#8364; &#x20AC; &uuml;&szlig; &bogus; & &#146;"),
            "€ 5 € € üß &bogus; & ’"
        );
        assert_eq!(decode_entities("a&nbsp;b&shy;c"), "a\u{a0}bc");
        assert_eq!(to_text("a&nbsp;b<p>&nbsp;</p>c"), "a b\n\nc");
    }

    #[test]
    fn quotes_become_prefixed_lines() {
        let html = r#"<div dir="ltr">Thanks, fixed.</div><br><div class="gmail_quote"><div class="gmail_attr">On Mon, Jane wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204)"><div>Printer broken</div><blockquote type="cite">older</blockquote></blockquote></div>"#;
        assert_eq!(to_text(html), "Thanks, fixed.\n\n> On Mon, Jane wrote:\n>> Printer broken\n>>> older");
    }

    #[test]
    fn signature_containers_get_a_delimiter() {
        let html = r#"<div>Thanks.</div><div class="protonmail_signature_block"><div>Jane</div></div><div id="Signature">ACME</div>"#;
        assert_eq!(to_text(html), "Thanks.\n--\nJane\n--\nACME");
    }

    #[test]
    fn indent_blockquote_is_not_a_quote() {
        let html = r#"<p>Steps:</p><blockquote style="margin: 0 0 0 40px; border: none; padding: 0px">restart it</blockquote>"#;
        assert_eq!(to_text(html), "Steps:\n\nrestart it");
    }

    #[test]
    fn outlook_reply_header_gets_a_separator() {
        let html = r#"<p>Done.</p><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>From:</b> Jane<br><b>Sent:</b> Monday</p></div><p>old</p>"#;
        assert_eq!(to_text(html), format!("Done.\n{SEPARATOR}\n\nFrom: Jane\nSent: Monday\n\nold"));
    }

    #[test]
    fn pre_tables_comments_and_broken_markup() {
        assert_eq!(to_text("<pre>a  b\n  c</pre>"), "a  b\n  c");
        assert_eq!(
            to_text("<table><tr><td>Name</td><td>Value</td></tr><tr><td>x</td><td>1</td></tr></table>"),
            "Name Value\nx 1"
        );
        assert_eq!(to_text("<!--[if mso]><p>mso</p><![endif]-->ok"), "ok");
        assert_eq!(to_text("a < b and <p>c"), "a < b and\n\nc");
        assert_eq!(to_text("<p class='x"), "");
        assert_eq!(to_text("<head><meta charset=utf-8><body>hi"), "hi");
        assert_eq!(to_text("<script>never closed"), "");
        assert_eq!(to_text("<STYLE>a{}</Style >x<Script>y</SCRIPT>z"), "xz");
        let deep = format!("{}deep{}", "<blockquote>".repeat(1000), "</p>".repeat(1000));
        assert_eq!(to_text(&deep), format!("{} deep", ">".repeat(MAX_QUOTE_PREFIX)));
        assert_eq!(to_text("x &#xD800; &#99999999999; y"), "x &#xD800; &#99999999999; y");
    }
}
