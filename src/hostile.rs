//! Hostile input across the stages a message goes through (parse → trim →
//! HTML-to-text → policy → compose → full-text index): each stage's cost
//! grows linearly with its input, and random or mutated input never panics
//! nor produces output out of proportion to it.
//!
//! Linearity is shown by comparing the cost of 1× and 4× the same input: the
//! best of several interleaved runs of each, so that load from other
//! processes hits both sides, in CPU time of the thread. Linear work gives a ratio near 4, quadratic
//! work near 16; the bound between them is generous on purpose.

use std::time::Duration;

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
        assert_linear(unit, growth(&one, &four, |s| drop(trim::new_text(s))));
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

#[test]
fn full_text_indexing_is_linear() {
    let (db, _dir) = crate::store::testing::db();
    let (one, four) = sizes("word another ", 64 * 1024);
    let ratio = db
        .write(|c| {
            let team = crate::store::users::create_team(c, "T", 0)?;
            let user = crate::store::users::create_user(
                c,
                &crate::store::users::NewUser {
                    email: "u@x.test",
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
                    message_id: None,
                    raw: None,
                };
                tickets::add_message(c, &m, 0).unwrap();
            };
            Ok::<_, crate::store::StoreError>(growth(&one, &four, add))
        })
        .unwrap();
    assert_linear("index", ratio);
}
