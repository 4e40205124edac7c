//! Reply trimming, scored on a corpus (`tests/fixtures/trim/`): whole
//! messages as the major clients write them in 25 languages, each run
//! through the path the pipeline uses (`parse` → `body`) and compared with
//! the hand-written new text. Prints "trim corpus: N of M exact" and fails
//! when fewer than [`EXACT_FLOOR`] cases are exact, so a regression fails it.
//!
//! `languages.toml` holds, per language, what the customer writes and each
//! client's attribution, header labels and signature in that locale; the
//! client templates below assemble one message per client and language.
//! `cases.toml` holds whole bodies written by hand for the forms that fit no
//! template (wrapped attributions, `mailto:` fragments, separators, …).
//!
//! With `TRIM_CORPUS_DIR` set, every case is also written there as
//! `<name>.eml` and `<name>.expected`, to score other trimmers on it.

use serde::Deserialize;

/// Cases that must come out exact; raise it when trimming gets better.
const EXACT_FLOOR: usize = 527;

const SUPPORT: &str = "ACME Support";
const SUPPORT_ADDR: &str = "support@acme.test";
const SUBJECT: &str = "[#42] Printer";

#[derive(Deserialize)]
struct Corpus {
    lang: Vec<Lang>,
}

#[derive(Deserialize)]
struct Lang {
    code: String,
    name: String,
    company: String,
    new: String,
    signoff: String,
    quoted: String,
    q1: String,
    a1: String,
    q2: String,
    a2: String,
    date: String,
    gmail: String,
    apple: String,
    thunderbird: String,
    /// From, Sent, To, Subject, Date.
    labels: [String; 5],
    original: String,
    mobile: String,
    other: Vec<String>,
}

#[derive(Deserialize)]
struct Handwritten {
    case: Vec<HandwrittenCase>,
}

#[derive(Deserialize)]
struct HandwrittenCase {
    name: String,
    #[serde(default)]
    html: bool,
    body: String,
    expected: String,
}

struct Case {
    name: String,
    raw: Vec<u8>,
    expected: String,
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trim")
}

fn read<T: for<'de> Deserialize<'de>>(file: &str) -> T {
    let text = std::fs::read_to_string(fixtures().join(file)).expect("corpus file is readable");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A whole message from `name`, answering the support mail.
fn message(case: &str, name: &str, html: bool, body: &str) -> Vec<u8> {
    let display = if name.is_ascii() {
        format!("\"{name}\"")
    } else {
        format!("=?UTF-8?B?{}?=", data_encoding::BASE64.encode(name.as_bytes()))
    };
    let kind = if html { "html" } else { "plain" };
    let body = if html {
        format!("<html><head><meta charset=\"utf-8\"></head><body>{body}</body></html>")
    } else {
        body.to_string()
    };
    format!(
        "From: {display} <customer@customer.test>\r\nTo: {SUPPORT} <{SUPPORT_ADDR}>\r\nSubject: Re: {SUBJECT}\r\n\
         Date: Mon, 05 Jan 2026 11:30:00 +0100\r\nMessage-ID: <{case}@customer.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/{kind}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Lines as HTML joined by `<br>`.
fn br(s: &str) -> String {
    s.lines().map(escape).collect::<Vec<_>>().join("<br>")
}

/// `> ` before every line.
fn quote(s: &str) -> String {
    s.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
}

/// Wraps at spaces to 76 columns, as Gmail's text part does with long
/// attribution lines.
fn wrap(s: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in s.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > 76 {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join("\n")
}

/// Outlook's header block, one `Label: value` a line, in `order` of the
/// label indices (From 0, Sent 1, To 2, Subject 3, Date 4).
fn header_block(l: &Lang, order: &[usize], from: &str, date: &str, sep: &str) -> String {
    let value = |i: usize| match i {
        0 => from.to_string(),
        1 | 4 => date.to_string(),
        2 => format!("{} <customer@customer.test>", l.name),
        _ => SUBJECT.to_string(),
    };
    order.iter().map(|&i| format!("{}: {}", l.labels[i], value(i))).collect::<Vec<_>>().join(sep)
}

/// One case per client for the language `l`.
fn language_cases(l: &Lang, index: usize) -> Vec<(String, bool, String, String)> {
    let (new, signoff, quoted) = (l.new.as_str(), l.signoff.as_str(), l.quoted.as_str());
    let with_signoff = format!("{new}\n\n{signoff}");
    let from = format!("{SUPPORT} <{SUPPORT_ADDR}>");
    let outlook_block = header_block(l, &[0, 1, 2, 3], &from, &l.date, "\n");
    let html_block = |order: &[usize]| {
        order
            .iter()
            .map(|&i| {
                let value = match i {
                    0 => from.clone(),
                    1 | 4 => l.date.clone(),
                    2 => l.name.clone(),
                    _ => SUBJECT.to_string(),
                };
                format!("<b>{}:</b> {}", escape(&l.labels[i]), escape(&value))
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let mobile_app = if index.is_multiple_of(2) {
        "Get Outlook for iOS<https://aka.ms/o0ukef>"
    } else {
        "Get Outlook for Android<https://aka.ms/AAb9ysg>"
    };
    let original = l.original.trim_matches('-');
    let cases = vec![
        ("gmail", false, format!("{with_signoff}\n\n{}\n\n{}\n", wrap(&l.gmail), quote(quoted)), with_signoff.clone()),
        (
            "gmail-html",
            true,
            format!(
                "<div dir=\"ltr\"><div>{}</div><div><br></div><div>{}</div><br clear=\"all\"><div><br></div>-- <br>\
                 <div dir=\"ltr\" class=\"gmail_signature\">{}<br>{}</div></div><br><div class=\"gmail_quote\">\
                 <div dir=\"ltr\" class=\"gmail_attr\">{}<br></div><blockquote class=\"gmail_quote\" style=\"margin:0px 0px \
                 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\"><div dir=\"ltr\">{}</div></blockquote></div>",
                br(new),
                br(signoff),
                escape(&l.name),
                escape(&l.company),
                escape(&l.gmail),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "apple-ios",
            false,
            format!("{new}\n\n{}\n\n> {}\n>\n{}\n", l.mobile, l.apple, quote(quoted)),
            new.to_string(),
        ),
        ("apple-mac", false, format!("{with_signoff}\n\n{}\n\n{}\n\n", l.apple, quote(quoted)), with_signoff.clone()),
        (
            "apple-mac-html",
            true,
            format!(
                "<div>{}</div><div><br></div><div>{}</div><div><br><blockquote type=\"cite\"><div>{}</div><br \
                 class=\"Apple-interchange-newline\"><div><div>{}</div></div></blockquote></div>",
                br(new),
                br(signoff),
                escape(&l.apple),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "thunderbird-bottom",
            false,
            format!("{}\n{}\n\n{with_signoff}\n\n-- \n{}\n{}\n", l.thunderbird, quote(quoted), l.name, l.company),
            with_signoff.clone(),
        ),
        (
            "thunderbird-html",
            true,
            format!(
                "<p>{}</p><p>{}</p><div class=\"moz-signature\">-- <br>{}<br>{}</div><div class=\"moz-cite-prefix\">{}<br></div>\
                 <blockquote type=\"cite\" cite=\"mid:1@acme.test\">{}</blockquote>",
                br(new),
                br(signoff),
                escape(&l.name),
                escape(&l.company),
                escape(&l.thunderbird),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        ("outlook", false, format!("{with_signoff}\n\n{outlook_block}\n\n{quoted}\n"), with_signoff.clone()),
        (
            "outlook-html",
            true,
            format!(
                "<div class=\"WordSection1\">{}<p class=\"MsoNormal\"><o:p>&nbsp;</o:p></p>{}<p class=\"MsoNormal\"><o:p>&nbsp;</o:p></p>\
                 <div><div style=\"border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm\"><p class=\"MsoNormal\">{}\
                 <o:p></o:p></p></div></div><p class=\"MsoNormal\"><o:p>&nbsp;</o:p></p>{}</div>",
                new.lines().map(|x| format!("<p class=\"MsoNormal\">{}<o:p></o:p></p>", escape(x))).collect::<String>(),
                signoff
                    .lines()
                    .map(|x| format!("<p class=\"MsoNormal\">{}<o:p></o:p></p>", escape(x)))
                    .collect::<String>(),
                html_block(&[0, 1, 2, 3]),
                quoted
                    .lines()
                    .map(|x| format!("<p class=\"MsoNormal\">{}<o:p></o:p></p>", escape(x)))
                    .collect::<String>()
            ),
            with_signoff.clone(),
        ),
        (
            "outlook-web-html",
            true,
            format!(
                "<div style=\"font-family: Aptos, sans-serif; font-size: 12pt\">{}</div><div><br></div><div>{}</div>\
                 <div id=\"appendonsend\"></div><hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\
                 <div id=\"divRplyFwdMsg\" dir=\"ltr\"><font face=\"Calibri, sans-serif\" style=\"font-size:11pt\" color=\"#000000\">{}</font>\
                 <div>&nbsp;</div></div><div>{}</div>",
                br(new),
                br(signoff),
                html_block(&[0, 1, 2, 3]),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "outlook-mobile",
            false,
            format!("{new}\n\n{mobile_app}\n________________________________\n{outlook_block}\n\n{quoted}\n"),
            new.to_string(),
        ),
        (
            "samsung",
            false,
            format!(
                "{new}\n\n\n-------- {} --------\n{}\n\n{quoted}\n",
                original.trim(),
                header_block(l, &[0, 4, 2, 3], &from, "05.01.2026 10:02 (GMT+01:00)", "\n")
            ),
            new.to_string(),
        ),
        (
            "yahoo-html",
            true,
            format!(
                "<div class=\"ydp5f3c yahoo-style-wrap\"><div>{}</div><div><br></div><div>{}</div></div><div id=\"yahoo_quoted_123\" \
                 class=\"yahoo_quoted\"><div style=\"font-family:Helvetica,Arial,sans-serif;font-size:13px;color:#26282a;\">\
                 <div>{}</div><div><br></div><div><br></div><div><div dir=\"ltr\">{}</div></div></div></div>",
                br(new),
                br(signoff),
                escape(&l.gmail),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "proton-html",
            true,
            format!(
                "<div style=\"font-family: Arial, sans-serif; font-size: 14px;\">{}<br><br>{}</div><div class=\"protonmail_signature_block\">\
                 <div class=\"protonmail_signature_block-user\">{}</div><div class=\"protonmail_signature_block-proton\">Sent with \
                 <a href=\"https://proton.me/\" target=\"_blank\">Proton Mail</a> secure email.</div></div><br>\
                 <div class=\"protonmail_quote\">{}<br><blockquote class=\"protonmail_quote\" type=\"cite\">{}</blockquote><br></div>",
                br(new),
                br(signoff),
                escape(&l.name),
                escape(&l.apple),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "zimbra-html",
            true,
            format!(
                "<html><body><div style=\"font-family: arial, helvetica, sans-serif; font-size: 12pt\"><div>{}</div><div><br></div>\
                 <div>{}</div><div><br></div><hr id=\"zwchr\" data-marker=\"__DIVIDER__\"><div data-marker=\"__HEADERS__\">{}</div>\
                 <br><div data-marker=\"__QUOTED_TEXT__\">{}</div></div></body></html>",
                br(new),
                br(signoff),
                html_block(&[0, 2, 1, 3]),
                br(quoted)
            ),
            with_signoff.clone(),
        ),
        (
            "gmx",
            false,
            format!(
                "{with_signoff}\n \n \n\n{}\n\n{quoted}\n",
                header_block(l, &[1, 0, 2, 3], &format!("\"{SUPPORT}\" <{SUPPORT_ADDR}>"), &l.date, "\n")
            ),
            with_signoff.clone(),
        ),
        (
            "inline",
            false,
            format!("{}\n{}\n\n{}\n\n{}\n\n{}\n\n{signoff}\n", l.thunderbird, quote(&l.q1), l.a1, quote(&l.q2), l.a2),
            format!("{}\n{}\n\n{}\n\n{}\n\n{}\n\n{signoff}", l.thunderbird, quote(&l.q1), l.a1, quote(&l.q2), l.a2),
        ),
        (
            "flattened",
            false,
            format!("{with_signoff}\n\n{}\n{quoted}\n", header_block(l, &[0, 1, 2, 3], &from, &l.date, " ")),
            with_signoff.clone(),
        ),
        (
            "signature-original",
            false,
            format!(
                "{with_signoff}\n-- \n{}\n{}\n\n{}\n{}\n\n{quoted}\n",
                l.name,
                l.company,
                l.original,
                header_block(l, &[0, 1, 2, 3], &from, &l.date, "\n")
            ),
            with_signoff.clone(),
        ),
    ];
    let mut cases: Vec<(String, bool, String, String)> = cases
        .into_iter()
        .map(|(client, html, body, expected)| (format!("{}-{client}", l.code), html, body, expected))
        .collect();
    for (i, attribution) in l.other.iter().enumerate() {
        let body = format!("{with_signoff}\n\n{attribution}\n{}\n", quote(quoted));
        cases.push((format!("{}-other-{}", l.code, i + 1), false, body, with_signoff.clone()));
    }
    cases
}

fn corpus() -> Vec<Case> {
    let languages: Corpus = read("languages.toml");
    let handwritten: Handwritten = read("cases.toml");
    let mut cases = Vec::new();
    for (index, l) in languages.lang.iter().enumerate() {
        for (name, html, body, expected) in language_cases(l, index) {
            cases.push(Case { raw: message(&name, &l.name, html, &body), name, expected });
        }
    }
    for c in handwritten.case {
        cases.push(Case { raw: message(&c.name, "Jane Doe", c.html, &c.body), name: c.name, expected: c.expected });
    }
    cases
}

#[test]
fn corpus_score() {
    let cases = corpus();
    let export = std::env::var_os("TRIM_CORPUS_DIR").map(std::path::PathBuf::from);
    let mut names = std::collections::HashSet::new();
    let mut misses = Vec::new();
    for case in &cases {
        assert!(names.insert(case.name.as_str()), "duplicate case name {}", case.name);
        if let Some(dir) = &export {
            std::fs::create_dir_all(dir).expect("export dir");
            std::fs::write(dir.join(format!("{}.eml", case.name)), &case.raw).expect("write case");
            std::fs::write(dir.join(format!("{}.expected", case.name)), &case.expected).expect("write expected");
        }
        let parsed = ticketgate::parse::parse(&case.raw).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if parsed.body != case.expected {
            misses.push(format!("--- {}\nexpected:\n{}\ngot:\n{}\n", case.name, case.expected, parsed.body));
        }
    }
    let exact = cases.len() - misses.len();
    println!("{}", misses.join("\n"));
    println!("trim corpus: {exact} of {} exact", cases.len());
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());
    assert!(exact >= EXACT_FLOOR, "{exact} exact, fewer than the floor of {EXACT_FLOOR}");
}
