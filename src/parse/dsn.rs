//! Delivery status notifications (RFC 3464): who did not get a mail, whether
//! for good, and which mail it was. Only the report is read here; whether it
//! may mark an address is the pipeline's decision (VERP, SPEC.md "Loops").

use mail_parser::{MessageParser, MimeHeaders};

use super::{Bounce, MAX_RECIPIENTS};

/// Delivery status `Action` values that are no failure.
const DELIVERED: &[&str] = &["delivered", "relayed", "expanded"];

/// The essentials of a delivery status report: `None` unless the message has
/// a `message/delivery-status` part. Recipients whose `Action` is
/// `delivered`, `relayed` or `expanded` are left out (they did not bounce).
pub fn read(msg: &mail_parser::Message) -> Option<Bounce> {
    let is = |p: &mail_parser::MessagePart, types: &[&str]| {
        p.content_type().is_some_and(|c| {
            let t = format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()).to_ascii_lowercase();
            types.contains(&t.as_str())
        })
    };
    let status = msg.parts.iter().find(|p| is(p, &["message/delivery-status", "message/global-delivery-status"]))?;
    let mut b = Bounce::default();
    for group in field_groups(&String::from_utf8_lossy(status.contents())) {
        let get = |name: &str| group.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim().to_ascii_lowercase());
        let action = get("action").unwrap_or_default();
        if DELIVERED.contains(&action.as_str()) {
            continue;
        }
        let mut any = false;
        for (name, value) in &group {
            let recipient = name == "final-recipient" || name == "original-recipient";
            if let Some(addr) = dsn_address(value).filter(|_| recipient) {
                any = true;
                if !b.recipients.contains(&addr) && b.recipients.len() < MAX_RECIPIENTS {
                    b.recipients.push(addr);
                }
            }
        }
        if any && (action == "failed" || get("status").is_some_and(|s| s.starts_with('5'))) {
            b.permanent = true;
        }
    }
    b.original_message_id = msg.parts.iter().find_map(|p| {
        if let Some(m) = p.message() {
            return m.message_id().map(super::clean_id);
        }
        if is(p, &["text/rfc822-headers", "message/global-headers"]) {
            let headers = MessageParser::default().parse_headers(p.contents())?;
            return headers.message_id().map(super::clean_id);
        }
        None
    });
    b.original_message_id = b.original_message_id.filter(|id| !id.is_empty());
    Some(b)
}

/// `rfc822; <Jane@Example.com>` → `jane@example.com`.
fn dsn_address(value: &str) -> Option<String> {
    let addr = value.split_once(';').map_or(value, |(_, a)| a);
    let addr = crate::address::normalize(&super::cap(addr));
    addr.contains('@').then_some(addr)
}

/// The header-style field groups of a delivery-status body, separated by
/// blank lines; names lower case, continuation lines unfolded.
fn field_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in body.lines() {
        let Some(group) = groups.last_mut() else { break };
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    fn parse(raw: &str) -> crate::parse::Parsed {
        crate::parse::parse(raw.as_bytes()).expect("test message parses")
    }

    #[test]
    fn postfix_dsn() {
        let p = parse(include_str!("../../tests/fixtures/eml/auto/postfix-dsn.eml"));
        let b = p.bounce.expect("a DSN");
        assert_eq!(b.recipients, vec!["jane.doe@customer.example".to_string()]);
        assert!(b.permanent);
        assert_eq!(b.original_message_id.as_deref(), Some("t42.r7.k3j2@support.example.com"));
    }

    #[test]
    fn exchange_ndr() {
        let p = parse(include_str!("../../tests/fixtures/eml/auto/exchange-ndr.eml"));
        let b = p.bounce.expect("a DSN");
        assert_eq!(b.recipients, vec!["m.mueller@kunde.example".to_string()]);
        assert!(b.permanent);
        assert_eq!(b.original_message_id.as_deref(), Some("t17.r3.zq9x@support.example.com"));
    }

    #[test]
    fn delayed_and_delivered_recipients() {
        let raw = "From: MAILER-DAEMON@mx.example.com\r\nSubject: Delayed Mail\r\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n\
            --b\r\nContent-Type: message/delivery-status\r\n\r\n\
            Reporting-MTA: dns; mx.example.com\r\n\r\n\
            Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n\
            Final-Recipient: rfc822; ok@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
            --b--\r\n";
        let b = parse(raw).bounce.expect("a DSN");
        assert_eq!(b.recipients, vec!["slow@example.net".to_string()]);
        assert!(!b.permanent);
        assert_eq!(b.original_message_id, None);
    }
}
