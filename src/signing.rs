//! The server secret and everything signed with it: reply tokens, deep links
//! and CSRF tokens all go through [`Keyring`], so there is one HMAC-SHA256
//! implementation. The first key signs; every key verifies, so a secret being
//! rotated out keeps old tokens and links valid until it is removed.
//!
//! Each use passes its own `purpose`, so a signature made for one kind of
//! token can never be replayed as another.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Server secrets: `keys[0]` signs, all of them verify.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("server secret {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("server secret {path} is not at least 32 hex digits")]
    Malformed { path: String },
}

impl Keyring {
    pub fn new(keys: Vec<Vec<u8>>) -> Keyring {
        assert!(!keys.is_empty(), "a keyring needs at least one key");
        Keyring { keys }
    }

    /// Reads the secret at `path`, creating it (32 random bytes, hex, mode
    /// 0600) when it does not exist yet, and adds the rotated-out secrets.
    pub fn load_or_create(path: &Path, previous: &[Secret]) -> Result<Keyring, KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io { path: shown.clone(), source };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let hex = data_encoding::HEXLOWER.encode(&random_bytes::<32>());
                write_private(path, hex.as_bytes()).map_err(io)?;
                hex
            }
            Err(e) => return Err(io(e)),
        };
        let current = decode_key(text.trim()).ok_or_else(|| KeyError::Malformed { path: shown.clone() })?;
        let mut keys = vec![current];
        // Validated by Config::validate, so a bad entry here is skipped, not fatal.
        keys.extend(previous.iter().filter_map(|s| decode_key(s.expose())));
        Ok(Keyring { keys })
    }

    /// The full HMAC-SHA256 of `data` under the signing key.
    pub fn sign(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        mac(&self.keys[0], purpose, data).finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC of `data` under any key, truncated to
    /// exactly `bytes` bytes: the length the signer made, never less, so a
    /// cut-down signature does not verify. Constant time per key.
    pub fn verify(&self, purpose: &str, data: &[u8], tag: &[u8], bytes: usize) -> bool {
        tag.len() == bytes
            && bytes >= 8
            && self.keys.iter().any(|k| mac(k, purpose, data).verify_truncated_left(tag).is_ok())
    }

    /// A lower-case base32 signature truncated to `bytes` bytes, for tokens
    /// that travel in addresses and URLs.
    pub fn sign_b32(&self, purpose: &str, data: &[u8], bytes: usize) -> String {
        b32(&self.sign(purpose, data)[..bytes])
    }

    /// Verifies a signature made by [`Keyring::sign_b32`] with the same `bytes`.
    pub fn verify_b32(&self, purpose: &str, data: &[u8], sig: &str, bytes: usize) -> bool {
        data_encoding::BASE32_NOPAD
            .decode(sig.to_ascii_uppercase().as_bytes())
            .map(|tag| self.verify(purpose, data, &tag, bytes))
            .unwrap_or(false)
    }
}

fn mac(key: &[u8], purpose: &str, data: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(purpose.as_bytes());
    m.update(&[0]);
    m.update(data);
    m
}

fn decode_key(hex: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).ok().filter(|k| k.len() >= 16)
}

/// Lower-case unpadded base32 (a–z, 2–7): safe in addresses, case-folded by MTAs without harm.
pub fn b32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes).to_ascii_lowercase()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    rand::rng().random()
}

/// A random opaque token (session ids, CSRF secrets): 160 bits, base32.
pub fn random_token() -> String {
    b32(&random_bytes::<20>())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_truncated_with_rotation() {
        let old = Keyring::new(vec![vec![1; 32]]);
        let new = Keyring::new(vec![vec![2; 32], vec![1; 32]]);
        let sig = old.sign_b32("reply", b"42:7", 10);
        assert!(new.verify_b32("reply", b"42:7", &sig, 10), "rotated-out key still verifies");
        assert!(!new.verify_b32("reply", b"42:8", &sig, 10));
        assert!(!new.verify_b32("link", b"42:7", &sig, 10), "purposes do not mix");
        assert!(!Keyring::new(vec![vec![3; 32]]).verify_b32("reply", b"42:7", &sig, 10));
        assert!(!new.verify("reply", b"42:7", &old.sign("reply", b"42:7")[..4], 4), "too short a tag never verifies");
        let full = old.sign("reply", b"42:7");
        assert!(old.verify("reply", b"42:7", &full[..16], 16));
        assert!(!old.verify("reply", b"42:7", &full[..8], 16), "a signature cut short does not verify");
        assert!(!old.verify("reply", b"42:7", &full, 16), "nor one longer than made");
    }

    #[test]
    fn creates_a_private_secret_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        let a = Keyring::load_or_create(&p, &[]).unwrap();
        let b = Keyring::load_or_create(&p, &[]).unwrap();
        assert_eq!(a.sign("x", b"y"), b.sign("x", b"y"));
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
