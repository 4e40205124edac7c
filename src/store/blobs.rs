//! Content-addressed attachment files: `blobs/ab/cdef…` named by SHA-256.
//! A file is written to a temporary name, fsynced and renamed (and its
//! directory fsynced) before the transaction that references it commits, so a
//! committed row never points at a missing or partial file. Identical
//! content is stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn new(root: impl Into<PathBuf>) -> Blobs {
        Blobs { root: root.into() }
    }

    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join(&sha256[..2]).join(&sha256[2..]))
    }

    /// Stores `bytes` durably; returns the hex SHA-256 that names them.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = crate::parse::sha256_hex(bytes);
        let path = self.path_of(&sha).expect("a hex digest names a path");
        if path.exists() {
            return Ok(sha);
        }
        let dir = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp", &sha[2..], std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(sha)
    }

    /// Opens a stored file for reading.
    pub fn open(&self, sha256: &str) -> std::io::Result<std::fs::File> {
        let path = self.path_of(sha256).ok_or_else(|| std::io::Error::other("not a blob name"))?;
        std::fs::File::open(path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::new(dir.path());
        let a = b.put(b"hello").unwrap();
        assert_eq!(b.put(b"hello").unwrap(), a);
        let files: usize = walk(dir.path());
        assert_eq!(files, 1);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut b.open(&a).unwrap(), &mut s).unwrap();
        assert_eq!(s, "hello");
        assert!(b.open("../etc/passwd").is_err());
    }

    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() { walk(&e.path()) } else { 1 }
            })
            .sum()
    }
}
