//! Per-ticket, per-recipient reply tokens and the `[#N]` subject tag.
//!
//! A token is `TICKET-USER-SIG`, where SIG is HMAC-SHA256 over the ticket id
//! and the user id with the server secret, truncated to 80 bits and written
//! in lower-case base32 (16 characters). It travels as the `+TOKEN` part of
//! the reply address. A token that fails verification is never trusted: the
//! message is then routed as if it had none.
//!
//! The envelope sender of every notification is VERP-tagged the same way:
//! `LOCAL+b-ROW-SIG@DOMAIN`, where ROW is the outbox row and SIG the HMAC
//! over the row, its recipient and its Message-ID, so a delivery report that
//! comes back to it names, unforgeably, the one mail to the one address that
//! bounced.

use std::sync::LazyLock;

use regex::Regex;

use crate::id::{TicketId, UserId};
use crate::signing::Keyring;

const PURPOSE: &str = "reply-token";
const BOUNCE_PURPOSE: &str = "bounce";
const SIG_BYTES: usize = 10;
/// RFC 5321's limit on an address's local part.
pub const MAX_LOCAL_PART: usize = 64;

/// Who a verified token was issued to, for which ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub ticket: TicketId,
    pub user: UserId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the reply token is malformed")]
    Malformed,
    #[error("the reply token's signature does not verify")]
    BadSignature,
}

impl TokenError {
    /// Stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::BadSignature => "token_forged",
        }
    }
}

fn signed_data(ticket: TicketId, user: UserId) -> String {
    format!("{ticket}:{user}")
}

/// The token for `user` on `ticket`.
pub fn issue(keys: &Keyring, ticket: TicketId, user: UserId) -> String {
    format!("{ticket}-{user}-{}", keys.sign_b32(PURPOSE, signed_data(ticket, user).as_bytes(), SIG_BYTES))
}

/// Checks a token taken from a reply address.
pub fn verify(keys: &Keyring, token: &str) -> Result<Token, TokenError> {
    let mut parts = token.splitn(3, '-');
    let (Some(t), Some(u), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let parse = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0 && s.chars().all(|c| c.is_ascii_digit()));
    let (Some(ticket), Some(user)) = (parse(t).map(TicketId), parse(u).map(UserId)) else {
        return Err(TokenError::Malformed);
    };
    if sig.len() != 16 {
        return Err(TokenError::Malformed);
    }
    if keys.verify_b32(PURPOSE, signed_data(ticket, user).as_bytes(), sig, SIG_BYTES) {
        Ok(Token { ticket, user })
    } else {
        Err(TokenError::BadSignature)
    }
}

/// The VERP tag for outbox row `row`, a mail to `recipient` with `message_id`.
pub fn bounce_tag(keys: &Keyring, row: i64, recipient: &str, message_id: &str) -> String {
    format!("b-{row}-{}", keys.sign_b32(BOUNCE_PURPOSE, bounce_data(row, recipient, message_id).as_bytes(), SIG_BYTES))
}

fn bounce_data(row: i64, recipient: &str, message_id: &str) -> String {
    format!("{row}:{recipient}:{message_id}")
}

/// A VERP tag as read from an address: which outbox row it claims, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceTag<'a> {
    pub row: i64,
    sig: &'a str,
}

impl<'a> BounceTag<'a> {
    /// `None` unless `tag` has the shape of a VERP tag.
    pub fn parse(tag: &'a str) -> Option<BounceTag<'a>> {
        let rest = tag.strip_prefix("b-").or_else(|| tag.strip_prefix("B-"))?;
        let (row, sig) = rest.split_once('-')?;
        let row = row.parse::<i64>().ok().filter(|n| *n > 0 && row.chars().all(|c| c.is_ascii_digit()))?;
        Some(BounceTag { row, sig })
    }

    /// Whether the tag was made for that row's recipient and Message-ID.
    pub fn verify(&self, keys: &Keyring, recipient: &str, message_id: &str) -> bool {
        keys.verify_b32(BOUNCE_PURPOSE, bounce_data(self.row, recipient, message_id).as_bytes(), self.sig, SIG_BYTES)
    }
}

/// `[#1234]`, as put into subjects.
pub fn subject_tag(ticket: TicketId) -> String {
    format!("[#{ticket}]")
}

/// The ticket number of the first `[#N]` tag in a subject.
pub fn ticket_in_subject(subject: &str) -> Option<TicketId> {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[#(\d{1,18})\]").expect("valid regex"));
    TAG.captures(subject).and_then(|c| c[1].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keyring {
        Keyring::new(vec![b"0123456789abcdef0123456789abcdef".to_vec()])
    }

    #[test]
    fn issued_tokens_verify_and_fit_an_address() {
        let k = keys();
        let t = issue(&k, TicketId(123456789), UserId(987654321));
        assert_eq!(verify(&k, &t), Ok(Token { ticket: TicketId(123456789), user: UserId(987654321) }));
        assert_eq!(
            verify(&k, &t.to_uppercase()),
            Ok(Token { ticket: TicketId(123456789), user: UserId(987654321) }),
            "MTAs may change case"
        );
        assert!(format!("support+{t}").len() <= MAX_LOCAL_PART);
    }

    #[test]
    fn forged_tokens_fail() {
        let k = keys();
        let t = issue(&k, TicketId(5), UserId(6));
        let swapped = t.replacen("5-6", "5-7", 1);
        assert_eq!(verify(&k, &swapped), Err(TokenError::BadSignature));
        let other = Keyring::new(vec![b"another secret, another server..".to_vec()]);
        assert_eq!(verify(&other, &t), Err(TokenError::BadSignature));
        for bad in ["", "5-6", "x-6-aaaaaaaaaaaaaaaa", "5-6-short", "-5-6-aaaaaaaaaaaaaaaa", "+5-6-aaaaaaaaaaaaaaaa"] {
            assert!(verify(&k, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounce_tags_bind_row_recipient_and_message_id() {
        let k = keys();
        let tag = bounce_tag(&k, 42, "jane@acme.test", "n.x@support.test");
        assert!(format!("support+{tag}").len() <= MAX_LOCAL_PART);
        let parsed = BounceTag::parse(&tag).expect("a VERP tag");
        assert_eq!(parsed.row, 42);
        assert!(parsed.verify(&k, "jane@acme.test", "n.x@support.test"));
        let upper = tag.to_uppercase();
        assert!(
            BounceTag::parse(&upper).unwrap().verify(&k, "jane@acme.test", "n.x@support.test"),
            "MTAs may change case"
        );
        assert!(!parsed.verify(&k, "boss@acme.test", "n.x@support.test"), "another recipient");
        assert!(!parsed.verify(&k, "jane@acme.test", "n.y@support.test"), "another mail");
        let moved = tag.replacen("b-42-", "b-43-", 1);
        assert!(!BounceTag::parse(&moved).unwrap().verify(&k, "jane@acme.test", "n.x@support.test"), "another row");
        for bad in ["", "b-", "b-x-abc", "42-6-aaaaaaaaaaaaaaaa", "b--1-abc"] {
            assert_eq!(BounceTag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn subject_tags() {
        assert_eq!(ticket_in_subject("Re: [#42] Printer"), Some(TicketId(42)));
        assert_eq!(ticket_in_subject("AW: Re: Printer [#7] [#8]"), Some(TicketId(7)));
        assert_eq!(ticket_in_subject("#42 no brackets"), None);
        assert_eq!(subject_tag(TicketId(9)), "[#9]");
    }
}
