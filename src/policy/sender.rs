//! Sender authenticity: who a message names as its author, and whether the
//! headers prove it (SPEC.md "Sender checks").
//!
//! - **Exactly one sender.** The author is the one address of the one
//!   `From:` header, read from the raw header value (mail-parser merges
//!   several headers and guesses at broken ones). Several `From:` headers,
//!   several addresses, a group, or anything that is not one RFC 5322
//!   mailbox (`<ali> <ce@acme.test>`, unquoted specials in the display name,
//!   a quoted local part) is [`Problem::AmbiguousSender`]. `Sender:` and
//!   `Reply-To:` are never read.
//! - **Evidence from headers.** Only an `Authentication-Results` header whose
//!   authserv-id is configured as trusted is believed (anyone can write one
//!   into their own mail; the receiving MTA must remove headers that carry
//!   its own authserv-id, as RFC 8601 asks). It proves the author when it
//!   reports `dmarc=pass` with `header.from` equal to the author's domain, or
//!   `dkim=pass` with `header.d` (or the domain of `header.i`) equal to the
//!   author's domain or a parent of it (relaxed alignment without a public
//!   suffix list: a parent must itself contain a dot).
//!
//! The reply token, the other kind of evidence, needs the database and is
//! checked by the pipeline.

use serde::Serialize;

use crate::code::QuarantineReason;

/// How the headers prove the author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    Dmarc,
    Dkim,
}

/// Why a message names no usable author (stable code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    AmbiguousSender,
}

impl Problem {
    pub fn code(self) -> QuarantineReason {
        match self {
            Problem::AmbiguousSender => QuarantineReason::AmbiguousSender,
        }
    }
}

/// What the headers alone say about the author (`inspect`'s `sender`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    /// The one author address, normalised; null without one.
    pub address: Option<String>,
    pub authenticated: Option<Auth>,
    pub problem: Option<Problem>,
}

/// The author of a message with the raw `From:` values `from_headers` and the
/// `Authentication-Results` values `results`.
pub fn of(from_headers: &[String], results: &[String], trusted: &[String]) -> Sender {
    let address = match from_headers {
        [] => return Sender { address: None, authenticated: None, problem: None },
        [one] => single_mailbox(one),
        _ => None,
    };
    match address {
        Some(address) => {
            let authenticated = authenticated(results, trusted, crate::address::domain(&address));
            Sender { address: Some(address), authenticated, problem: None }
        }
        None => Sender { address: None, authenticated: None, problem: Some(Problem::AmbiguousSender) },
    }
}

/// Whether a trusted `Authentication-Results` header reports `dmarc=fail`.
pub fn dmarc_fails(results: &[String], trusted: &[String]) -> bool {
    trusted_results(results, trusted).any(|r| r.method == "dmarc" && r.result == "fail")
}

fn authenticated(results: &[String], trusted: &[String], domain: &str) -> Option<Auth> {
    if domain.is_empty() {
        return None;
    }
    let aligned = |d: &str| {
        let d = d.rsplit('@').next().unwrap_or_default();
        d == domain || (d.contains('.') && domain.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
    };
    let mut found = None;
    for r in trusted_results(results, trusted).filter(|r| r.result == "pass") {
        match r.method.as_str() {
            "dmarc" if r.prop("header.from") == Some(domain) => return Some(Auth::Dmarc),
            "dkim" if r.prop("header.d").is_some_and(aligned) || r.prop("header.i").is_some_and(aligned) => {
                found = Some(Auth::Dkim)
            }
            _ => {}
        }
    }
    found
}

/// One `method=result` statement of an `Authentication-Results` header,
/// lower case, with its `ptype.property=value` pairs.
struct Statement {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

impl Statement {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The statements of every header whose authserv-id is trusted.
fn trusted_results<'a>(results: &'a [String], trusted: &'a [String]) -> impl Iterator<Item = Statement> + 'a {
    results.iter().flat_map(move |header| {
        let text = without_comments(header).to_ascii_lowercase();
        let mut parts = text.split(';');
        let authserv = parts.next().unwrap_or_default().split_whitespace().next().unwrap_or_default().to_string();
        let believed = trusted.iter().any(|t| t.eq_ignore_ascii_case(&authserv));
        let statements: Vec<Statement> = if believed { parts.filter_map(statement).collect() } else { Vec::new() };
        statements
    })
}

fn statement(text: &str) -> Option<Statement> {
    let mut words = text.split_whitespace();
    let (method, result) = words.next()?.split_once('=')?;
    let props = words
        .filter_map(|w| w.split_once('='))
        .map(|(n, v)| (n.to_string(), v.trim_matches('"').to_string()))
        .collect();
    // `dkim/1=pass`: a method version is allowed.
    let method = method.split('/').next().unwrap_or_default().to_string();
    Some(Statement { method, result: result.to_string(), props })
}

/// `text` with RFC 5322 comments removed (nested, with quoted pairs).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The address of a `From:` value that is exactly one RFC 5322 mailbox,
/// `addr-spec` or `[display-name] <addr-spec>`, comments allowed; normalised.
fn single_mailbox(value: &str) -> Option<String> {
    let value = without_comments(value);
    let (mut outside, mut inside) = (String::new(), String::new());
    let (mut quoted, mut escaped, mut in_angle, mut angles) = (false, false, false, 0);
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted {
            match c {
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else {
            match c {
                '"' if in_angle || angles > 0 => return None,
                '"' => quoted = true,
                '<' if in_angle || angles > 0 => return None,
                '<' => in_angle = true,
                '>' if !in_angle => return None,
                '>' => {
                    in_angle = false;
                    angles += 1;
                }
                c if in_angle => inside.push(c),
                c if angles > 0 && !c.is_whitespace() => return None,
                c => outside.push(c),
            }
        }
    }
    if quoted || in_angle {
        return None;
    }
    let addr = if angles == 1 {
        // The display name is a phrase: no unquoted specials but '.'.
        if outside.contains(['@', ',', ';', ':', '[', ']', '\\']) {
            return None;
        }
        inside.trim().to_string()
    } else {
        if value.contains('"') {
            return None;
        }
        outside.trim().to_string()
    };
    addr_spec(&addr).then(|| crate::address::normalize(&addr))
}

/// `local@domain` with a dot-atom local part and a host name domain.
fn addr_spec(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let dot_atom = |p: &str| !p.is_empty() && !p.starts_with('.') && !p.ends_with('.') && !p.contains("..");
    dot_atom(local)
        && local.chars().all(atext)
        && dot_atom(domain)
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<String> {
        vec!["mx.example.com".to_string()]
    }

    #[test]
    fn only_trusted_headers_count() {
        let fail =
            vec!["mx.example.com; spf=pass smtp.mailfrom=x; dmarc=fail (p=reject) header.from=bank.com".to_string()];
        assert!(dmarc_fails(&fail, &trusted()));
        let forged = vec!["evil.example; dmarc=fail header.from=x".to_string()];
        assert!(!dmarc_fails(&forged, &trusted()));
        let pass = vec!["MX.example.com 1; dmarc=pass header.from=x".to_string()];
        assert!(!dmarc_fails(&pass, &trusted()));
        assert!(!dmarc_fails(&fail, &[]));
    }

    fn from(values: &[&str]) -> Sender {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        of(&values, &[], &trusted())
    }

    #[test]
    fn exactly_one_mailbox() {
        for (value, address) in [
            ("jane@acme.test", "jane@acme.test"),
            (" Jane Doe <Jane@ACME.test>", "jane@acme.test"),
            ("\"Doe, Jane\" <jane@acme.test>", "jane@acme.test"),
            ("\"a <b@c.test>\" <jane@acme.test>", "jane@acme.test"),
            ("jane@acme.test (Jane, at work)", "jane@acme.test"),
            ("=?utf-8?q?J=C3=A4ne?= <jane@acme.test>", "jane@acme.test"),
            ("J. R. Doe <jane@acme.test>", "jane@acme.test"),
        ] {
            assert_eq!(from(&[value]).address.as_deref(), Some(address), "{value}");
            assert_eq!(from(&[value]).problem, None, "{value}");
        }
        for value in [
            "<ali> <ce@acme.test>",
            "alice@acme.test, mallory@evil.test",
            "Alice <alice@acme.test>, Mallory <mallory@evil.test>",
            "alice@acme.test <mallory@evil.test>",
            "<alice@acme.test> x",
            "friends: alice@acme.test;",
            "undisclosed-recipients:;",
            "\"alice\"@acme.test",
            "alice",
            "<alice@acme.test",
            "",
        ] {
            assert_eq!(from(&[value]).problem, Some(Problem::AmbiguousSender), "{value}");
            assert_eq!(from(&[value]).address, None, "{value}");
        }
        let two = from(&["alice@acme.test", "mallory@evil.test"]);
        assert_eq!(two.problem, Some(Problem::AmbiguousSender));
        assert_eq!(from(&[]), Sender { address: None, authenticated: None, problem: None });
    }

    fn auth(result: &str, from: &str) -> Option<Auth> {
        of(&[from.to_string()], &[result.to_string()], &trusted()).authenticated
    }

    #[test]
    fn evidence_must_name_the_author_domain() {
        let jane = "jane@acme.test";
        assert_eq!(auth("mx.example.com; dmarc=pass (p=none) header.from=acme.test", jane), Some(Auth::Dmarc));
        assert_eq!(auth("mx.example.com; dmarc=pass header.from=evil.test", jane), None);
        assert_eq!(auth("mx.example.com; dmarc=fail header.from=acme.test", jane), None);
        assert_eq!(auth("evil.test; dmarc=pass header.from=acme.test", jane), None, "untrusted authserv-id");
        assert_eq!(auth("mx.example.com; dkim=pass header.d=acme.test header.s=s1", jane), Some(Auth::Dkim));
        assert_eq!(auth("mx.example.com; dkim=pass header.i=@acme.test", jane), Some(Auth::Dkim));
        assert_eq!(auth("mx.example.com; dkim=pass header.d=acme.test", "jane@eu.acme.test"), Some(Auth::Dkim));
        assert_eq!(auth("mx.example.com; dkim=pass header.d=xacme.test", jane), None);
        assert_eq!(auth("mx.example.com; dkim=pass header.d=test", jane), None, "a bare suffix is no parent");
        assert_eq!(auth("mx.example.com; dkim=pass header.d=eu.acme.test", jane), None);
        assert_eq!(auth("mx.example.com; dkim=fail header.d=acme.test", jane), None);
        assert_eq!(
            auth("mx.example.com; dkim=pass (good) header.d=acme.test; dmarc=pass header.from=acme.test", jane),
            Some(Auth::Dmarc)
        );
        assert_eq!(auth("mx.example.com; dmarc=pass (header.from=acme.test) header.from=evil.test", jane), None);
    }
}
