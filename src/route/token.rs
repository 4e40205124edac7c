//! Per-ticket, per-recipient reply tokens and the `[#N]` subject tag.
//!
//! A token is `TICKET-USER-SIG`, where SIG is HMAC-SHA256 over the ticket id
//! and the user id with the server secret, truncated to 80 bits and written
//! in lower-case base32 (16 characters). It travels as the `+TOKEN` part of
//! the reply address. A token that fails verification is never trusted: the
//! message is then routed as if it had none.

use std::sync::LazyLock;

use regex::Regex;

use crate::signing::Keyring;

const PURPOSE: &str = "reply-token";
const SIG_BYTES: usize = 10;
/// RFC 5321's limit on an address's local part.
pub const MAX_LOCAL_PART: usize = 64;

/// Who a verified token was issued to, for which ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub ticket: i64,
    pub user: i64,
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

fn signed_data(ticket: i64, user: i64) -> String {
    format!("{ticket}:{user}")
}

/// The token for `user` on `ticket`.
pub fn issue(keys: &Keyring, ticket: i64, user: i64) -> String {
    format!("{ticket}-{user}-{}", keys.sign_b32(PURPOSE, signed_data(ticket, user).as_bytes(), SIG_BYTES))
}

/// Checks a token taken from a reply address.
pub fn verify(keys: &Keyring, token: &str) -> Result<Token, TokenError> {
    let mut parts = token.splitn(3, '-');
    let (Some(t), Some(u), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let parse = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0 && s.chars().all(|c| c.is_ascii_digit()));
    let (Some(ticket), Some(user)) = (parse(t), parse(u)) else {
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

/// `[#1234]`, as put into subjects.
pub fn subject_tag(ticket: i64) -> String {
    format!("[#{ticket}]")
}

/// The ticket number of the first `[#N]` tag in a subject.
pub fn ticket_in_subject(subject: &str) -> Option<i64> {
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
        let t = issue(&k, 123456789, 987654321);
        assert_eq!(verify(&k, &t), Ok(Token { ticket: 123456789, user: 987654321 }));
        assert_eq!(
            verify(&k, &t.to_uppercase()),
            Ok(Token { ticket: 123456789, user: 987654321 }),
            "MTAs may change case"
        );
        assert!(format!("support+{t}").len() <= MAX_LOCAL_PART);
    }

    #[test]
    fn forged_tokens_fail() {
        let k = keys();
        let t = issue(&k, 5, 6);
        let swapped = t.replacen("5-6", "5-7", 1);
        assert_eq!(verify(&k, &swapped), Err(TokenError::BadSignature));
        let other = Keyring::new(vec![b"another secret, another server..".to_vec()]);
        assert_eq!(verify(&other, &t), Err(TokenError::BadSignature));
        for bad in ["", "5-6", "x-6-aaaaaaaaaaaaaaaa", "5-6-short", "-5-6-aaaaaaaaaaaaaaaa", "+5-6-aaaaaaaaaaaaaaaa"] {
            assert!(verify(&k, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subject_tags() {
        assert_eq!(ticket_in_subject("Re: [#42] Printer"), Some(42));
        assert_eq!(ticket_in_subject("AW: Re: Printer [#7] [#8]"), Some(7));
        assert_eq!(ticket_in_subject("#42 no brackets"), None);
        assert_eq!(subject_tag(9), "[#9]");
    }
}
