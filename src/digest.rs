//! SHA-256 as lower-case hex: the name of an attachment file, the key of a
//! message without a Message-ID, and what the database keeps of a session
//! token. A leaf, so the store and the portal need not reach into `parse`.

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}
