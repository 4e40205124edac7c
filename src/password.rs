//! Password hashing: argon2id with the crate's default parameters, stored as
//! PHC strings so the parameters can be raised later without a migration.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// The PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> String {
    Argon2::default().hash_password(password.as_bytes()).expect("argon2 hashing with default parameters").to_string()
}

/// Whether `password` matches the stored PHC string; false for a malformed hash.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false)
}

/// Fewest characters a password may have (command line and portal alike).
pub const MIN_CHARS: usize = 8;

/// Whether `password` may be set; the reason in words when not.
pub fn check(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!("the password must have at least {MIN_CHARS} characters"));
    }
    Ok(())
}

/// A random password for generated accounts (the first admin): 16 base32 characters, 80 bits.
pub fn generate() -> String {
    crate::signing::b32(&crate::signing::random_bytes::<10>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_only_their_password() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(&h, "correct horse"));
        assert!(!super::verify(&h, "wrong"));
        assert!(!super::verify("not a hash", "x"));
        assert_eq!(super::generate().len(), 16);
        assert!(super::check("1234567").is_err() && super::check("12345678").is_ok());
        assert!(super::check("äöüßéèêë").is_ok(), "characters, not bytes");
    }
}
