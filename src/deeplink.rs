//! Signed links in mail: deep links in notifications name the ticket, the
//! message, the recipient and an expiry, signed with HMAC-SHA256 by the
//! server secret. A deep link is only a pointer: it never logs anyone in (the
//! portal still asks for a login and checks that the user may see the
//! ticket). Alias links confirm an address; password links set a password.

use crate::id::{MessageId, TicketId, UserId};
use crate::signing::Keyring;

const PURPOSE: &str = "deep-link";
const SIG_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub ticket: TicketId,
    /// The stored message the link points at.
    pub message: MessageId,
    /// The recipient it was made for.
    pub user: UserId,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
}

impl Link {
    fn data(&self) -> String {
        format!("{}:{}:{}:{}", self.ticket, self.message, self.user, self.expires)
    }

    /// The path segment carrying the link: `TICKET.MESSAGE.USER.EXPIRES.SIG`.
    pub fn token(&self, keys: &Keyring) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.ticket,
            self.message,
            self.user,
            self.expires,
            keys.sign_b32(PURPOSE, self.data().as_bytes(), SIG_BYTES)
        )
    }

    /// The full URL under the portal's public base.
    pub fn url(&self, base: &str, keys: &Keyring) -> String {
        format!("{}/l/{}", base.trim_end_matches('/'), self.token(keys))
    }

    /// Checks signature first, then expiry.
    pub fn verify(keys: &Keyring, token: &str, now: i64) -> Result<Link, LinkError> {
        let link = Link::signed(keys, token)?;
        if now > link.expires {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }

    /// The link if its signature holds, expired or not: an expired link we
    /// made still names its ticket, which the portal offers after a login.
    pub fn signed(keys: &Keyring, token: &str) -> Result<Link, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [t, m, u, e, sig] = parts[..] else { return Err(LinkError::Invalid) };
        let num = |s: &str| s.parse::<i64>().map_err(|_| LinkError::Invalid);
        let link =
            Link { ticket: TicketId(num(t)?), message: MessageId(num(m)?), user: UserId(num(u)?), expires: num(e)? };
        if !keys.verify_b32(PURPOSE, link.data().as_bytes(), sig, SIG_BYTES) {
            return Err(LinkError::Invalid);
        }
        Ok(link)
    }
}

const ALIAS_PURPOSE: &str = "alias-confirm";
/// Alias links grant something, so they carry the whole HMAC.
const ALIAS_SIG_BYTES: usize = 32;

/// The link mailed to an address a user asked to add as an alias: opening it
/// (logged in as that user) proves the address is theirs. Signed over the
/// user, the address and the expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasLink {
    pub user: UserId,
    /// The address, normalised.
    pub alias: String,
    pub expires: i64,
}

impl AliasLink {
    fn data(&self) -> String {
        format!("{}:{}:{}", self.user, self.alias, self.expires)
    }

    /// `USER.EXPIRES.ALIAS(base32).SIG`.
    pub fn token(&self, keys: &Keyring) -> String {
        let sig = keys.sign_b32(ALIAS_PURPOSE, self.data().as_bytes(), ALIAS_SIG_BYTES);
        format!("{}.{}.{}.{sig}", self.user, self.expires, crate::signing::b32(self.alias.as_bytes()))
    }

    pub fn url(&self, base: &str, keys: &Keyring) -> String {
        format!("{}/alias/{}", base.trim_end_matches('/'), self.token(keys))
    }

    /// Checks signature first, then expiry.
    pub fn verify(keys: &Keyring, token: &str, now: i64) -> Result<AliasLink, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [u, e, a, sig] = parts[..] else { return Err(LinkError::Invalid) };
        let num = |s: &str| s.parse::<i64>().map_err(|_| LinkError::Invalid);
        let alias = data_encoding::BASE32_NOPAD
            .decode(a.to_ascii_uppercase().as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(LinkError::Invalid)?;
        let link = AliasLink { user: UserId(num(u)?), alias, expires: num(e)? };
        if !keys.verify_b32(ALIAS_PURPOSE, link.data().as_bytes(), sig, ALIAS_SIG_BYTES) {
            return Err(LinkError::Invalid);
        }
        if now > link.expires {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }
}

const PASSWORD_PURPOSE: &str = "password-link";
/// Password links grant an account, so they carry the whole HMAC.
const PASSWORD_SIG_BYTES: usize = 32;

crate::stable_code! {
    /// What a [`PasswordLink`] was mailed for: the wording differs, the mechanism not.
    pub enum PasswordPurpose {
        /// "Forgot password?": valid for an hour.
        Reset = "reset",
        /// A new user's (or a re-sent) invitation to set a password.
        Invite = "invite",
    }
}

/// The link that lets a user set a new password. It is signed over the
/// user, the purpose, the expiry and a digest of the user's password hash as
/// it was when the link was made, so it works once: setting a password (by
/// this link, another one or `user password`) changes the hash and every
/// earlier link stops verifying. Nothing is stored per link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordLink {
    pub user: UserId,
    pub purpose: PasswordPurpose,
    pub expires: i64,
}

impl PasswordLink {
    fn data(&self, hash: Option<&str>) -> String {
        let current = crate::digest::sha256_hex(hash.unwrap_or("").as_bytes());
        format!("{}:{}:{}:{current}", self.user, self.purpose.as_str(), self.expires)
    }

    /// `USER.PURPOSE.EXPIRES.SIG`; `hash` is the user's password hash now (`None`: no password yet).
    pub fn token(&self, keys: &Keyring, hash: Option<&str>) -> String {
        let sig = keys.sign_b32(PASSWORD_PURPOSE, self.data(hash).as_bytes(), PASSWORD_SIG_BYTES);
        format!("{}.{}.{}.{sig}", self.user, self.purpose.as_str(), self.expires)
    }

    pub fn url(&self, base: &str, keys: &Keyring, hash: Option<&str>) -> String {
        format!("{}/password/reset/{}", base.trim_end_matches('/'), self.token(keys, hash))
    }

    /// The user a token names, unchecked: whose password hash to load before [`PasswordLink::verify`].
    pub fn user_of(token: &str) -> Option<UserId> {
        token.split('.').next()?.parse::<i64>().ok().map(UserId)
    }

    /// Checks the signature against the user's current password hash first
    /// (a used link is `Invalid`), then the expiry.
    pub fn verify(keys: &Keyring, token: &str, hash: Option<&str>, now: i64) -> Result<PasswordLink, LinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [u, p, e, sig] = parts[..] else { return Err(LinkError::Invalid) };
        let num = |s: &str| s.parse::<i64>().map_err(|_| LinkError::Invalid);
        let purpose = p.parse::<PasswordPurpose>().map_err(|_| LinkError::Invalid)?;
        let link = PasswordLink { user: UserId(num(u)?), purpose, expires: num(e)? };
        if !keys.verify_b32(PASSWORD_PURPOSE, link.data(hash).as_bytes(), sig, PASSWORD_SIG_BYTES) {
            return Err(LinkError::Invalid);
        }
        if now > link.expires {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_expire_and_resist_tampering() {
        let k = Keyring::new(vec![vec![9; 32]]);
        let link = Link { ticket: TicketId(4), message: MessageId(17), user: UserId(2), expires: 1000 };
        let tok = link.token(&k);
        assert_eq!(Link::verify(&k, &tok, 999), Ok(link));
        assert_eq!(Link::verify(&k, &tok, 1001), Err(LinkError::Expired));
        assert_eq!(Link::signed(&k, &tok), Ok(link), "an expired link still names its ticket");
        let tampered = tok.replacen("4.17", "5.17", 1);
        assert_eq!(Link::verify(&k, &tampered, 0), Err(LinkError::Invalid));
        let extended = tok.replacen(".1000.", ".9999.", 1);
        assert_eq!(Link::verify(&k, &extended, 0), Err(LinkError::Invalid), "expiry is signed");
        assert_eq!(Link::verify(&k, "garbage", 0), Err(LinkError::Invalid));
        let sig = tok.rsplit('.').next().unwrap();
        let bytes = data_encoding::BASE32_NOPAD.decode(sig.to_ascii_uppercase().as_bytes()).unwrap();
        let cut = tok.replacen(sig, &crate::signing::b32(&bytes[..8]), 1);
        assert_eq!(Link::verify(&k, &cut, 0), Err(LinkError::Invalid), "8 of 16 bytes never verify");
        assert!(link.url("http://h/", &k).starts_with("http://h/l/4.17.2.1000."));
    }

    #[test]
    fn alias_links_verify_expire_and_resist_tampering() {
        let k = Keyring::new(vec![vec![9; 32]]);
        let link = AliasLink { user: UserId(3), alias: "jane@home.test".into(), expires: 1000 };
        let tok = link.token(&k);
        assert_eq!(AliasLink::verify(&k, &tok, 1000), Ok(link.clone()));
        assert_eq!(AliasLink::verify(&k, &tok, 1001), Err(LinkError::Expired));
        let other = crate::signing::b32(b"eve@evil.test");
        let parts: Vec<&str> = tok.split('.').collect();
        for tampered in [
            tok.replacen("3.", "4.", 1),
            tok.replacen(".1000.", ".9999.", 1),
            [parts[0], parts[1], &other, parts[3]].join("."),
            tok[..tok.len() - 1].to_string(),
        ] {
            assert_eq!(AliasLink::verify(&k, &tampered, 0), Err(LinkError::Invalid), "{tampered}");
        }
        let sig = parts[3];
        assert_eq!(data_encoding::BASE32_NOPAD.decode(sig.to_ascii_uppercase().as_bytes()).unwrap().len(), 32);
        assert!(link.url("http://h/", &k).starts_with("http://h/alias/3.1000."));
    }

    #[test]
    fn password_links_work_until_the_password_changes_and_expire() {
        let k = Keyring::new(vec![vec![9; 32]]);
        let link = PasswordLink { user: UserId(3), purpose: PasswordPurpose::Reset, expires: 1000 };
        let tok = link.token(&k, Some("$argon2id$old"));
        assert_eq!(PasswordLink::user_of(&tok), Some(UserId(3)));
        assert_eq!(PasswordLink::verify(&k, &tok, Some("$argon2id$old"), 1000), Ok(link));
        assert_eq!(PasswordLink::verify(&k, &tok, Some("$argon2id$old"), 1001), Err(LinkError::Expired));
        assert_eq!(PasswordLink::verify(&k, &tok, Some("$argon2id$new"), 0), Err(LinkError::Invalid), "used once");
        assert_eq!(PasswordLink::verify(&k, &tok, None, 0), Err(LinkError::Invalid));
        for tampered in [
            tok.replacen("3.", "4.", 1),
            tok.replacen(".reset.", ".invite.", 1),
            tok.replacen(".1000.", ".9999.", 1),
            tok[..tok.len() - 1].to_string(),
            "garbage".to_string(),
        ] {
            assert_eq!(
                PasswordLink::verify(&k, &tampered, Some("$argon2id$old"), 0),
                Err(LinkError::Invalid),
                "{tampered}"
            );
        }
        let invite = PasswordLink { user: UserId(3), purpose: PasswordPurpose::Invite, expires: 1000 };
        let url = invite.url("http://h/", &k, None);
        assert!(url.starts_with("http://h/password/reset/3.invite.1000."), "{url}");
        let tok = url.rsplit('/').next().unwrap();
        assert_eq!(PasswordLink::verify(&k, tok, None, 0), Ok(invite), "no password yet");
    }
}
