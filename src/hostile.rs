//! Hostile input across the stages a message goes through (parse → trim →
//! HTML-to-text → policy → compose → full-text index): each stage's cost
//! grows linearly with its input, and random or mutated input never panics
//! nor produces output out of proportion to it.
//!
//! Linearity is shown by comparing the cost of 1× and 4× the same input: the
//! best of several interleaved runs of each, so that load from other
//! processes hits both sides, in CPU time of the thread. Linear work gives a ratio near 4, quadratic
//! work near 16; the bound between them is generous on purpose.
//!
//! The property tests feed random and mutated messages, HTML and Office
//! packages through parse → trim → policy → compose, with a case count that
//! keeps the unit tests fast.

use std::io::{Cursor, Write};
use std::time::Duration;

use proptest::prelude::*;

use crate::lifecycle::{Event, Role};
use crate::notify::compose::{self, Outgoing};
use crate::parse::{self, html, trim};
use crate::store::tickets::{self, NewMessage, Via};

/// Above this ratio of 4× to 1× cost, a stage is not linear.
const MAX_GROWTH: f64 = 8.0;

/// CPU time of this thread: unlike the wall clock, it does not count the
/// time other processes had the CPU.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// How many times longer `run` takes on `four` than on `one` (best of 5 each).
fn growth<T>(one: &T, four: &T, run: impl Fn(&T)) -> f64 {
    let time = |input: &T| {
        let start = cpu_time();
        run(input);
        cpu_time().saturating_sub(start)
    };
    let (mut best_one, mut best_four) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        best_one = best_one.min(time(one));
        best_four = best_four.min(time(four));
    }
    best_four.as_secs_f64() / best_one.as_secs_f64().max(1e-9)
}

/// `unit` repeated to about `bytes` bytes, for 1× and 4×.
fn sizes(unit: &str, bytes: usize) -> (String, String) {
    let n = bytes.div_ceil(unit.len());
    (unit.repeat(n), unit.repeat(4 * n))
}

fn assert_linear(what: &str, ratio: f64) {
    assert!(ratio < MAX_GROWTH, "{what}: 4× the input cost {ratio:.1}× as much");
}

#[test]
fn html_to_text_is_linear() {
    for unit in ["<head><body>", "<head><title>x", "<div><blockquote><p>a", "<a href='x'>y", "&amp;<b>x</b>&#65;"] {
        let (one, four) = sizes(unit, 24 * 1024);
        assert_linear(unit, growth(&one, &four, |s| drop(html::to_text(s))));
    }
}

#[test]
fn trimming_is_linear() {
    for unit in ["short\n", "> quoted\n", "On 1 Jan x wrote:\n> q\nanswer\n", "____________\n\nFrom: a\n", "--\n"] {
        let (one, four) = sizes(unit, 16 * 1024);
        assert_linear(unit, growth(&one, &four, |s| drop(trim::split(s))));
    }
}

fn mail(content_type: &str, body: &str) -> Vec<u8> {
    format!("From: a@x.test\r\nTo: s@y.test\r\nSubject: s\r\nContent-Type: {content_type}\r\n\r\n{body}").into_bytes()
}

#[test]
fn parsing_is_linear() {
    let (one, four) = sizes("a line\r\n", 64 * 1024);
    assert_linear("text", growth(&mail("text/plain", &one), &mail("text/plain", &four), |m| drop(parse::parse(m))));
    let (one, four) = sizes("<head><body>", 24 * 1024);
    assert_linear("html", growth(&mail("text/html", &one), &mail("text/html", &four), |m| drop(parse::parse(m))));
}

fn outgoing(text: String) -> Outgoing<'static> {
    Outgoing {
        from_name: "Support",
        from: "support@help.test",
        to_name: "Mia",
        to: "mia@acme.test",
        reply_to: "support+t@help.test",
        subject: "s",
        message_id: "n1@help.test",
        in_reply_to: None,
        references: &[],
        thread_topic: None,
        auto_submitted: "auto-generated",
        date: 0,
        html: text.replace('\n', "<br>\n"),
        text,
    }
}

#[test]
fn composing_is_linear() {
    // lettre inserted one `\r` at a time: quadratic in the number of lines.
    let (one, four) = sizes("ab\n", 48 * 1024);
    let (one, four) = (outgoing(one), outgoing(four));
    assert_linear("short lines", growth(&one, &four, |o| drop(compose::build(o).unwrap())));
}

/// Both full-text indexes (words and trigrams), on spaced text and on
/// unspaced Japanese, which the word index takes as one long token and the
/// trigram index as one token per character.
#[test]
fn full_text_indexing_is_linear() {
    let (db, _dir) = crate::store::testing::db();
    for (unit, probe) in [("word another ", "\"another word\""), ("日本語の長い文章を書きます", "\"文章を書き\"")]
    {
        let (one, four) = sizes(unit, 64 * 1024);
        let (ratio, found) = db
            .write(|c| {
                let team = crate::store::users::create_team(c, unit, 0)?;
                let user = crate::store::users::create_user(
                    c,
                    &crate::store::users::NewUser {
                        email: &format!("u{}@x.test", unit.len()),
                        name: "",
                        role: Role::Member,
                        team_id: Some(team),
                        password_hash: None,
                    },
                    0,
                )?;
                let ticket = tickets::create(c, team, user, "s", "support", 0)?;
                let add = |body: &String| {
                    let m = NewMessage {
                        ticket_id: ticket,
                        author_id: Some(user),
                        author_role: Role::Member,
                        via: Via::Mail,
                        event: Event::CustomerReplied,
                        body,
                        quoted: "",
                        message_id: None,
                        raw: None,
                    };
                    tickets::add_message(c, &m, 0).unwrap();
                };
                let ratio = growth(&one, &four, add);
                let found: i64 =
                    c.query_row("SELECT count(*) FROM search_trigram WHERE search_trigram MATCH ?1", [probe], |r| {
                        r.get(0)
                    })?;
                Ok::<_, crate::store::StoreError>((ratio, found))
            })
            .unwrap();
        assert_linear(unit, ratio);
        assert_eq!(found, 10, "{unit}: every text is in the trigram index");
    }
}

/// Cases per property: enough to shake out panics, few enough for `scripts/test`.
const CASES: u32 = 256;

/// Pieces random HTML is made of: tags that change the converter's state,
/// broken markup, entities and text.
const HTML_PIECES: &[&str] = &[
    "<head>",
    "<body>",
    "</head>",
    "<title>",
    "<style>",
    "</style>",
    "<script>",
    "<p>",
    "</p>",
    "<br>",
    "<hr>",
    "<div>",
    "</div>",
    "<blockquote>",
    "</blockquote>",
    "<blockquote type=cite>",
    "<pre>",
    "</pre>",
    "<li>",
    "<a href='https://x.test/'>",
    "<a href=\"",
    "</a>",
    "<td>",
    "<div class=gmail_quote>",
    "<div id=divRplyFwdMsg>",
    "<!--",
    "-->",
    "<!doctype html>",
    "<?xml?>",
    "&amp;",
    "&nbsp;",
    "&#x",
    "&#1234567;",
    "&#146;",
    "&",
    "<",
    ">",
    "\"",
    "'",
    " ",
    "\n",
    "\r",
    "text",
    "Ünïcödé",
    "\u{202e}",
    "\0",
];

fn html_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(HTML_PIECES), 0..400).prop_map(|p| p.concat())
}

/// A multipart message with an HTML alternative and an Office attachment.
fn sample_message() -> Vec<u8> {
    let mut package = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("[Content_Types].xml", &b"<Types><Override PartName='/word/document.xml' ContentType='x'/></Types>"[..]),
        ("word/_rels/document.xml.rels", b"<Relationships><Relationship Type='t' Target='a'/></Relationships>"),
        ("word/document.xml", b"<w:document/>"),
    ] {
        package.start_file(name, options).unwrap();
        package.write_all(data).unwrap();
    }
    let docx = data_encoding::BASE64_MIME.encode(&package.finish().unwrap().into_inner());
    format!(
        "From: Anna <anna@x.test>\r\nTo: support@y.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
         Message-ID: <m1@x.test>\r\nReferences: <a@x.test> <b@x.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n\
         --b2\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nHello \r\nthere.\r\n\r\n\
         On Mon, 1 Jan 2026, Bob wrote:\r\n> old\r\n-- \r\nAnna\r\n--b2\r\nContent-Type: text/html\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Hello=20<b>there</b></p><blockquote>old</blockquote>\r\n\
         --b2--\r\n--b1\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"a.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{docx}\r\n--b1--\r\n"
    )
    .into_bytes()
}

/// `base` with each edit applied: (where, byte, 0 insert / 1 replace / 2 delete / 3 duplicate a span).
fn mutate(mut base: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, byte, op) in edits {
        let at = at % (base.len() + 1);
        match op % 4 {
            0 => base.insert(at, byte),
            1 if at < base.len() => base[at] = byte,
            2 if at < base.len() => drop(base.remove(at)),
            3 => {
                let span = base[at..].iter().take(byte as usize).copied().collect::<Vec<u8>>();
                base.splice(at..at, span);
            }
            _ => {}
        }
    }
    base
}

fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..24);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        edits.prop_map(|e| mutate(sample_message(), &e)),
        html_strategy().prop_map(|h| mail("text/html; charset=utf-8", &h)),
    ]
}

/// Largest notification built from any message: the excerpt bounds the
/// quoted text, so this does not grow with the input.
const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn html_conversion_never_panics_and_stays_proportional(html in html_strategy()) {
        let text = html::to_text(&html);
        // The widest growth is a quoted `<hr>`: 4 bytes become a prefixed line of underscores.
        prop_assert!(text.len() <= 16 * html.len() + 64, "{} bytes from {}", text.len(), html.len());
    }

    #[test]
    fn messages_go_through_parse_trim_policy_compose(raw in message_strategy()) {
        let Ok(p) = parse::parse(&raw) else { return Ok(()) };
        prop_assert!(p.body.len() <= p.text.len() + 1);
        prop_assert!(trim::split(&p.text).body.len() <= p.text.len() + 1);
        let rules = crate::config::AttachmentRules::default();
        for part in &p.attachments {
            let c = crate::policy::attachments::check(part, &rules);
            prop_assert!(c.filename.len() <= crate::policy::attachments::MAX_FILENAME_BYTES);
            prop_assert_eq!(c.accepted, c.reason.is_none());
        }
        let excerpt = crate::notify::excerpt(&p.body);
        let subject = p.subject.clone();
        let o = Outgoing {
            subject: &subject,
            in_reply_to: p.message_id.as_deref(),
            references: &p.references,
            ..outgoing(excerpt)
        };
        let built = compose::build(&o).expect("a notification can always be built");
        prop_assert!(built.len() <= MAX_NOTIFICATION_BYTES, "{} bytes", built.len());
    }

    #[test]
    fn office_packages_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12)) {
        let p = parse::parse(&sample_message()).unwrap();
        let docx = mutate(p.attachments[0].bytes.clone(), &edits);
        let part = parse::Part { filename: Some("a.docx".into()), content_type: None, charset: None, bytes: docx };
        let c = crate::policy::attachments::check(&part, &crate::config::AttachmentRules::default());
        prop_assert_eq!(c.accepted, c.reason.is_none());
    }
}
